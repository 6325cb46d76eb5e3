//! Runs side by side: their latency charts overlaid, one colour per run, each run's
//! statistics against the first run's (the baseline), from their settled points, and the
//! server's metrics they read, overlaid on each run's own clock.

use std::cell::Cell;
use std::rc::Rc;

use crate::view::{RunViewState, run_title};
use leptos::html::Canvas;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::wasm_split::{SplitLoaderError, wasm_split};
use shared::RunEvent;
use shared::api::{ApiError, ErrorCode, RunSummary};
use shared::telemetry::Telemetry;

use crate::api::{self, EventStream};
use crate::chart::Palette;
use crate::chart::telemetry::{MetricOption, Pick, TelemetryChart, compare_chart, default_family, shared_families};
use crate::components::ErrorBox;
use crate::components::charts::{
    self, ExportButtons, Latencies, LatencyData, LatencyFigures, Metric, ViewControls, palette, redrawn, shows,
};
use crate::components::telemetry::{self as server_metrics, options_html};
use crate::components::throughput::{self, ThroughputChart};
use crate::report::status_words;
use crate::report::{self, ReportChart};

/// What the link names that the server does not have, in words.
pub fn unknown_runs_message(unknown: &[String]) -> Option<String> {
    let quoted: Vec<String> = unknown.iter().map(|id| format!("\"{id}\"")).collect();
    match quoted.as_slice() {
        [] => None,
        [one] => Some(format!("There is no run {one}: the other runs are compared without it.")),
        [rest @ .., last] => {
            Some(format!("There are no runs {} and {last}: the other runs are compared without them.", rest.join(", ")))
        }
    }
}

/// A compared run's server metrics, as its event log brings them in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Followed {
    pub id: String,
    /// Where the run read its metrics and how often, from its spec.
    address: String,
    interval_ms: u32,
    /// Its metrics so far; `None` before the first scrape, and for a run that read none.
    pub telemetry: Option<Telemetry>,
    /// Whether its log has been read to its end.
    pub ended: bool,
}

impl Followed {
    pub fn new(id: &str) -> Followed {
        Followed { id: id.to_string(), ..Followed::default() }
    }

    /// Takes in one event of the run's log, as [`shared::LiveRun::apply`] does for what the
    /// server's metrics need; the rest is the run page's.
    pub fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Started { spec, .. } => {
                *self = Followed {
                    id: std::mem::take(&mut self.id),
                    address: spec.metrics_address().unwrap_or_default(),
                    interval_ms: spec.metrics_interval_ms(),
                    ..Followed::default()
                };
            }
            RunEvent::Telemetry(update) => {
                let (address, interval) = (&self.address, self.interval_ms);
                self.telemetry.get_or_insert_with(|| Telemetry::new(address.clone(), interval)).apply(update);
            }
            RunEvent::Finished { .. } => self.ended = true,
            _ => {}
        }
    }
}

/// The compared runs' server metrics as a chart of `family` (a list value, `family:NAME`, or
/// a name; the default family when it is `None`, names a single series, or no run has it),
/// each run in its colour; `None` when no run read metrics.
pub fn telemetry_chart(
    runs: &[RunSummary],
    followed: &[Followed],
    family: Option<&str>,
    palette: &Palette,
) -> Option<(String, TelemetryChart)> {
    let read: Vec<(usize, String, &Telemetry)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| {
            let telemetry = followed.iter().find(|f| f.id == run.id)?.telemetry.as_ref()?;
            Some((i, run_title(run), telemetry))
        })
        .collect();
    if read.is_empty() {
        return None;
    }
    let families = shared_families(read.iter().map(|r| r.2));
    let name = family
        .map(|f| match Pick::parse(f) {
            Some(Pick::Family(name)) => name,
            _ => f.to_string(),
        })
        .filter(|f| families.iter().any(|known| known.name == *f))
        .or_else(|| default_family(&families).map(|f| f.name.clone()))?;
    let chart = compare_chart(&read, &name, palette);
    Some((name, chart))
}

/// The charts a comparison shows, as SVG for its report.
pub fn report_charts(runs: &[RunSummary], view: RunViewState) -> Result<Vec<ReportChart>, String> {
    let mut out = charts::report_charts(&view, LatencyData::Compared(runs))?;
    if runs.iter().any(|r| throughput::shows(&r.spec)) {
        let y = crate::chart::YScale::chosen(view.y);
        out.extend(throughput::report_charts(view.charts, |metric, palette| {
            throughput::compare_chart(runs, metric, y, palette)
        })?);
    }
    Ok(out)
}

/// The comparison's report, one HTML file; from the `report` chunk.
#[wasm_split(report, wasm_split_path = ::leptos::wasm_split, fallible)]
fn compared_report(
    runs: Vec<RunSummary>,
    view: RunViewState,
    now: i64,
) -> Result<Result<String, String>, SplitLoaderError> {
    Ok(report_charts(&runs, view).map(|charts| report::html(&runs, &charts, now)))
}

/// The comparison of the runs `ids` names.
#[component]
pub fn CompareView(
    /// The runs' ids, the baseline first.
    ids: Vec<String>,
    /// The charts' controls; the page keeps them in its address.
    view: RwSignal<RunViewState>,
    /// This view's address (path and query).
    #[prop(into)]
    address: Signal<String>,
) -> impl IntoView {
    // Each id's answer, in the link's order, once all have answered.
    let answers = RwSignal::new(None::<Vec<(String, Result<RunSummary, ApiError>)>>);
    {
        let ids = ids.clone();
        spawn_local(async move {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let answer = api::get_json::<RunSummary>(&format!("/api/runs/{}", api::encode(&id))).await;
                out.push((id, answer));
            }
            answers.set(Some(out));
        });
    }
    // Each run's server metrics come with its event log, as on its own page, live while it
    // goes; the page redraws once per frame.
    let followed = StoredValue::new_local(ids.iter().map(|id| Followed::new(id)).collect::<Vec<_>>());
    let metrics_version = RwSignal::new(0u64);
    let scheduled = Rc::new(Cell::new(false));
    let streams: Vec<EventStream> = ids
        .iter()
        .enumerate()
        .map(|(k, id)| {
            let scheduled = scheduled.clone();
            EventStream::open(
                id,
                move |event| {
                    followed.update_value(|f| f[k].apply(&event));
                    if !scheduled.replace(true) {
                        let scheduled = scheduled.clone();
                        request_animation_frame(move || {
                            scheduled.set(false);
                            metrics_version.update(|v| *v += 1);
                        });
                    }
                },
                |_| {},
            )
        })
        .collect();
    // Owned by this view: the sockets close when the view goes away.
    StoredValue::new_local(streams);
    let runs = Memo::new(move |_| {
        answers.with(|a| a.iter().flatten().filter_map(|(_, r)| r.as_ref().ok().cloned()).collect::<Vec<_>>())
    });
    // A 404 is a run the server does not have; anything else is its own failure.
    let unknown = move || {
        answers.with(|a| {
            a.iter()
                .flatten()
                .filter(|(_, r)| r.as_ref().is_err_and(|e| e.code == ErrorCode::NoRun))
                .map(|(id, _)| id.clone())
                .collect::<Vec<_>>()
        })
    };
    let failures = move || {
        answers.with(|a| {
            a.iter()
                .flatten()
                .filter_map(|(_, r)| r.as_ref().err().filter(|e| e.code != ErrorCode::NoRun).cloned())
                .collect::<Vec<_>>()
        })
    };
    let stem = Signal::derive(move || {
        runs.with(|runs| report::file_stem(&runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>()))
    });
    let report_error = RwSignal::new(None::<String>);
    let download_report = move |_| {
        let (runs, view) = (runs.get_untracked(), view.get_untracked());
        let now = js_sys::Date::now() as i64 * 1_000_000;
        spawn_local(async move {
            let saved = crate::lazy::or_failed("report", compared_report(runs, view, now).await).and_then(|html| {
                crate::download::save_text(&format!("{}.html", stem.get_untracked()), "text/html", &html)
            });
            report_error.set(saved.err());
        });
    };
    let colours = palette();
    view! {
        <section class="compare" id="compare">
            <div class="run-head">
                <h2 id="compare-title">{format!("Comparing {} runs", ids.len())}</h2>
                <button type="button" id="download-report" on:click=download_report disabled=move || runs.with(Vec::is_empty)
                    title="One HTML file with the charts, the tables and the definitions, that opens without a network">"Download report"</button>
            </div>
            {move || report_error.get().map(|f| view! { <p class="error">{f}</p> })}
            {move || unknown_runs_message(&unknown()).map(|text| view! {
                <div class="error" id="compare-unknown" role="alert"><strong>{text}</strong>
                    <p class="hint">"A run may have been deleted, or the link may come from another dashboard."</p></div>
            })}
            {move || failures().into_iter().map(|err| view! { <ErrorBox error=err/> }).collect_view()}
            {move || match answers.with(Option::is_none) {
                true => view! { <p class="placeholder">"Loading the runs…"</p> }.into_any(),
                false if runs.with(|r| r.len() < 2) => view! {
                    <p class="placeholder" id="compare-too-few">"A comparison needs two runs or more: tick them in the runs list."</p>
                }.into_any(),
                false => ().into_any(),
            }}
            <ul class="compare-legend" id="compare-legend">
                {move || runs.get().into_iter().enumerate().map(|(i, run)| {
                    let (r, g, b) = colours.run(i);
                    let href = format!("/runs/{}", run.id);
                    let model = run.model.as_ref().map_or(run.spec.model.clone(), |m| m.name.clone());
                    view! {
                        <li data-run=run.id.clone()>
                            <span class="swatch" style=format!("background:rgb({r},{g},{b})")></span>
                            <a href=href class="name">{run_title(&run)}</a>
                            {(!run.name.trim().is_empty()).then(|| view! { " " <code class="id">{run.id.clone()}</code> })}
                            " · " <span class="model">{model}</span>
                            " · " <span class="target">{run.spec.target.clone()}</span>
                            " · " <span class="protocol">{run.spec.protocol_words()}</span>
                            " · " <span class="status">{status_words(&run.status).name}</span>
                            {(i == 0).then(|| view! { " · " <strong>"baseline"</strong> })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            <ViewControls view=view address=address without_dots=true/>
            <LatencyFigures data=Latencies::Compared(runs.into()) view=view stem=stem/>
            <Show when=move || runs.with(|r| r.iter().any(|r| throughput::shows(&r.spec)))>
                <div class="charts" id="throughput-charts">
                    {Metric::ALL.into_iter().map(|metric| {
                        let chart = Signal::derive(move || {
                            let y = crate::chart::YScale::chosen(view.with(|v| v.y));
                            runs.with(|runs| throughput::compare_chart(runs, metric, y, &palette()))
                        });
                        view! {
                            <Show when=move || view.with(|v| shows(v.charts, metric))>
                                <ThroughputChart metric=metric chart=chart stem=stem/>
                            </Show>
                        }
                    }).collect_view()}
                </div>
            </Show>
            <CompareTelemetry runs=runs followed=followed version=metrics_version view=view stem=stem/>
            <div class="differences" id="differences" inner_html=move || runs.with(|r| report::differences_tables(r))></div>
        </section>
    }
}

/// Why compared runs have no line in the server-metrics chart, one sentence per run.
fn telemetry_notes(runs: &[RunSummary], followed: &[Followed]) -> Vec<String> {
    runs.iter()
        .filter_map(|run| {
            let name = run_title(run);
            if run.spec.no_metrics {
                return Some(format!("{name} read no server metrics."));
            }
            let f = followed.iter().find(|f| f.id == run.id)?;
            (f.ended && f.telemetry.is_none()).then(|| format!("{name} holds no server metrics."))
        })
        .collect()
}

/// One server metric of every run that read it, overlaid on each run's own clock.
#[component]
fn CompareTelemetry(
    /// The runs, the baseline first.
    #[prop(into)]
    runs: Signal<Vec<RunSummary>>,
    /// Each run's metrics as its events bring them.
    followed: StoredValue<Vec<Followed>, LocalStorage>,
    /// Bumped when `followed` changes.
    version: RwSignal<u64>,
    /// The page's view, whose `server_metric` names the chosen family (`None` follows the
    /// default); choosing one from the list sets it.
    view: RwSignal<RunViewState>,
    /// The stem of the chart's file names.
    #[prop(into)]
    stem: Signal<String>,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    let family = Memo::new(move |_| view.with(|v| v.server_metric.clone()));
    // Set by the drawing, in signal types the page already has, which keeps it lighter.
    let failure = RwSignal::new(None::<String>);
    let absent = RwSignal::new(true);
    let list = RwSignal::new(String::new());
    let notes = RwSignal::new(String::new());
    let tries = RwSignal::new(0u32);
    redrawn(move || {
        version.track();
        let chosen = family.get();
        let tried = tries.get();
        let palette = palette();
        let shown = runs.with(|runs| {
            followed.with_value(|f| {
                let words = telemetry_notes(runs, f).join(" ");
                if notes.with_untracked(|n| *n != words) {
                    notes.set(words);
                }
                telemetry_chart(runs, f, chosen.as_deref(), &palette).inspect(|shown| {
                    let read = f.iter().filter_map(|f| f.telemetry.as_ref());
                    let options: Vec<MetricOption> = shared_families(read)
                        .into_iter()
                        .map(|f| MetricOption { key: Pick::Family(f.name.clone()).key(), text: f.name })
                        .collect();
                    let html = options_html(&options, Some(&Pick::Family(shown.0.clone()).key()));
                    if list.with_untracked(|l| *l != html) {
                        list.set(html);
                    }
                })
            })
        });
        if absent.get_untracked() != shown.is_none() {
            absent.set(shown.is_none());
        }
        let (Some((name, chart)), Some(canvas)) = (shown, canvas.get()) else { return };
        // What is drawn, for tools that read the chart.
        let counts: Vec<String> = chart.point_counts().iter().map(ToString::to_string).collect();
        let colours: Vec<String> =
            chart.lines.iter().map(|l| format!("{},{},{}", l.colour.0, l.colour.1, l.colour.2)).collect();
        for (attribute, value) in [
            ("data-metric", name),
            ("data-lines", chart.lines.len().to_string()),
            ("data-points", counts.join(",")),
            ("data-colours", colours.join(";")),
            ("data-gaps", chart.gaps.len().to_string()),
            ("data-x-range", format!("{:.3},{:.3}", chart.x_range.0, chart.x_range.1)),
        ] {
            let _ = canvas.set_attribute(attribute, &value);
        }
        let drawn = server_metrics::paint(&canvas, &chart, &palette);
        match &drawn {
            // The figure is shown with the first run's metrics, maybe after this drawing: the
            // next frames try again, a few times.
            Ok(None) if tried < 8 => request_animation_frame(move || tries.set(tried + 1)),
            Ok(Some(())) if tried > 0 => tries.update_untracked(|n| *n = 0),
            _ => {}
        }
        failure.set(drawn.err());
    });
    let svg = Callback::new(move |()| {
        let palette = palette();
        let chosen = family.get_untracked();
        runs.with_untracked(|runs| {
            followed.with_value(|f| {
                let (_, chart) = telemetry_chart(runs, f, chosen.as_deref(), &palette)
                    .ok_or("no compared run read server metrics")?;
                server_metrics::svg(&chart, &palette)
            })
        })
    });
    view! {
        <figure class="chart" data-chart="compare-telemetry" hidden=move || absent.get()>
            <figcaption>
                "Server metrics over each run's time "
                <select id="compare-telemetry-metric" aria-label="The server metric to compare" inner_html=move || list.get()
                    on:change=move |ev| view.update(|v| v.server_metric = Some(event_target_value(&ev)))></select>
                <ExportButtons key="compare-telemetry" canvas=canvas stem=stem svg=svg/>
                <span class="legend">"one colour per run; a run's several series added up (averaged for shares) · counters as a rate per second · shaded: failed scrapes"</span>
            </figcaption>
            <div class="canvas-box"><canvas node_ref=canvas id="chart-compare-telemetry"/></div>
            {move || failure.get().map(|f| view! { <p class="error">{f}</p> })}
        </figure>
        <p class="note" id="compare-telemetry-notes" hidden=move || notes.with(String::is_empty)>{move || notes.get()}</p>
    }
}

#[cfg(test)]
mod tests {
    use shared::RunStatus;

    use super::*;

    fn summary(id: &str, status: RunStatus, no_metrics: bool) -> RunSummary {
        RunSummary {
            spec: shared::SweepSpec { no_metrics, ..shared::SweepSpec::default() },
            simulated: true,
            status,
            ..crate::view::blank_run(id)
        }
    }

    #[test]
    fn each_run_that_read_metrics_has_a_line_and_the_others_a_reason() {
        use shared::telemetry::{MetricKind, Scrape, SeriesHead, TelemetryUpdate};
        let started = |no_metrics: bool| RunEvent::Started {
            id: "x".into(),
            spec: Box::new(shared::SweepSpec { no_metrics, ..shared::SweepSpec::default() }),
            started_unix_ns: 0,
            simulated: true,
        };
        let scrape = |at_us: u64, value: f64, first: bool| {
            RunEvent::Telemetry(TelemetryUpdate {
                scrape: Some(Scrape { at_us, took_us: 1, error: None }),
                new_series: if first {
                    vec![SeriesHead {
                        name: "vllm:num_requests_waiting".into(),
                        family: "vllm:num_requests_waiting".into(),
                        kind: MetricKind::Gauge,
                        labels: Vec::new(),
                    }]
                } else {
                    Vec::new()
                },
                values: vec![(0, Some(value))],
                dropped_series: 0,
            })
        };
        let finished = RunEvent::Finished { status: RunStatus::Completed, engine: None };
        let follow = |id: &str, events: &[RunEvent]| {
            let mut f = Followed::new(id);
            for event in events {
                f.apply(event);
            }
            f
        };
        let followed = [
            follow("a", &[started(false), scrape(0, 1.0, true), scrape(250_000, 4.0, false), finished.clone()]),
            follow("off", &[started(true), finished.clone()]),
            follow("going", &[started(false)]),
            follow("old", &[started(false), finished.clone()]),
        ];
        assert_eq!(followed[0].id, "a", "a run keeps its id through its start");
        assert_eq!(followed[0].telemetry.as_ref().unwrap().url, "http://127.0.0.1:8002/metrics");
        let runs = [
            summary("a", RunStatus::Completed, false),
            summary("off", RunStatus::Completed, true),
            summary("going", RunStatus::Running, false),
            summary("old", RunStatus::Completed, false),
        ];
        let (name, chart) = telemetry_chart(&runs, &followed, None, &Palette::LIGHT).unwrap();
        assert_eq!(name, "vllm:num_requests_waiting");
        assert_eq!(chart.lines.len(), 1);
        assert_eq!(chart.lines[0].colour, Palette::LIGHT.run(0));
        assert_eq!(chart.point_counts(), vec![2]);
        let (name, _) = telemetry_chart(&runs, &followed, Some("gone"), &Palette::LIGHT).unwrap();
        assert_eq!(name, "vllm:num_requests_waiting", "a family no run has falls back to the default");
        assert!(telemetry_chart(&runs[1..], &followed, None, &Palette::LIGHT).is_none());
        assert_eq!(
            telemetry_notes(&runs, &followed),
            vec!["off read no server metrics.", "old holds no server metrics."]
        );
    }

    #[test]
    fn unknown_runs_are_named() {
        assert_eq!(unknown_runs_message(&[]), None);
        assert_eq!(
            unknown_runs_message(&["x".into()]).unwrap(),
            "There is no run \"x\": the other runs are compared without it."
        );
        assert_eq!(
            unknown_runs_message(&["x".into(), "y".into(), "z".into()]).unwrap(),
            "There are no runs \"x\", \"y\" and \"z\": the other runs are compared without them."
        );
    }
}
