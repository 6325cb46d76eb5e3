//! One run, live: progress, the charts and their controls, the inspector and the table of
//! every number; its name, notes and tags.

use std::cell::Cell;
use std::rc::Rc;

use crate::view::{Charts, RunViewState, spec_query};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::{ApiError, RunSummary};
use shared::{LiveRun, RunStatus, Summary, SweepSpec};

use crate::api::{self, EventStream, Link};
use crate::chart::fmt_ms;
use crate::components::ErrorBox;
use crate::components::charts::{self, Inspector, LatencyChart, Metric, ViewControls, with_run_chart};
use crate::components::glossary::metric_anchor;
use crate::components::run_details::RunDetails;
use crate::components::telemetry::{self as server_metrics, TelemetryFigure};
use crate::components::throughput::{self, ThroughputChart};
use crate::report::{self, ReportChart};

/// The run's state in words, and a short machine-readable name for it.
fn status_text(run: &LiveRun) -> (&'static str, String) {
    match &run.status {
        None if run.finished == 0 && run.model.is_none() => ("starting", "Starting…".into()),
        None => ("running", "Running".into()),
        Some(RunStatus::Running) => ("running", "Running".into()),
        Some(RunStatus::Completed) => ("completed", "Completed".into()),
        Some(RunStatus::Cancelled) => ("cancelled", "Cancelled: what finished before is kept".into()),
        Some(RunStatus::Failed { error }) => {
            ("failed", format!("Stopped by a fault: {error}. What finished before is kept."))
        }
        Some(RunStatus::Interrupted) => (
            "interrupted",
            "Interrupted: the dashboard stopped before the run ended. What finished before is kept.".into(),
        ),
    }
}

/// What the run's header shows, read from the run at once.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    /// The state's short name (`data-state`).
    state: &'static str,
    /// The state in words.
    text: String,
    /// Whether the run has not ended yet.
    going: bool,
    finished: u64,
    total: u64,
    errors: u64,
    seconds_left: Option<f64>,
    simulated: bool,
}

impl Snapshot {
    fn of(run: &LiveRun) -> Snapshot {
        let (state, text) = status_text(run);
        Snapshot {
            state,
            text,
            going: run.status.as_ref().is_none_or(|s| *s == RunStatus::Running),
            finished: run.finished,
            total: run.total(),
            errors: run.errors,
            seconds_left: run.seconds_left(),
            simulated: run.simulated,
        }
    }
}

/// `about 1 min 5 s`.
pub fn fmt_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 60 { format!("{} min {} s", s / 60, s % 60) } else { format!("{s} s") }
}

/// `/new?spec=...`: the form, filled with `spec`.
pub fn rerun_path(spec: &SweepSpec) -> String {
    format!("/new{}", spec_query(&serde_json::to_string(&spec.to_rerun()).unwrap_or_default()))
}

/// A live run.
#[component]
pub fn RunView(
    /// The run's id.
    id: String,
    /// What the charts and the inspector show; the page keeps it in its address.
    view: RwSignal<RunViewState>,
    /// This view's address (path and query).
    #[prop(into)]
    address: Signal<String>,
    /// Called with the run's description after its name, notes or tags changed.
    on_changed: Callback<RunSummary>,
    /// Called once the run has been deleted.
    on_deleted: Callback<()>,
) -> impl IntoView {
    let summary = RwSignal::new(None::<RunSummary>);
    {
        let url = format!("/api/runs/{}", api::encode(&id));
        spawn_local(async move {
            if let Ok(run) = api::get_json::<RunSummary>(&url).await {
                summary.set(Some(run));
            }
        });
    }
    let run = StoredValue::new_local(LiveRun::default());
    let version = RwSignal::new(0u64);
    let link = RwSignal::new(Link::Connecting);
    let cancel_error = RwSignal::new(None::<ApiError>);
    let operator = crate::components::can_operate();
    // Events arrive in bursts (a whole log on connect); the page redraws once per frame.
    let scheduled = Rc::new(Cell::new(false));
    let stream = EventStream::open(
        &id,
        move |event| {
            run.update_value(|run| run.apply(&event));
            if !scheduled.replace(true) {
                let scheduled = scheduled.clone();
                request_animation_frame(move || {
                    scheduled.set(false);
                    version.update(|v| *v += 1);
                });
            }
        },
        move |state| link.set(state),
    );
    // Owned by this view: the socket closes when the view goes away.
    StoredValue::new_local(stream);

    let snapshot = move || {
        version.track();
        run.with_value(Snapshot::of)
    };
    let cancel = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            spawn_local(async move {
                if let Err(err) =
                    api::post_json::<RunSummary>(&format!("/api/runs/{}/cancel", api::encode(&id)), &()).await
                {
                    cancel_error.set(Some(err));
                }
            });
        }
    };
    let stem = report::file_stem(std::slice::from_ref(&id));
    let files = Signal::stored(stem.clone());
    let id_for_exports = id.clone();
    let report_error = RwSignal::new(None::<String>);
    let download_report = {
        let id = id.clone();
        let stem = stem.clone();
        move |_| {
            let (id, stem) = (id.clone(), stem.clone());
            report_error.set(None);
            spawn_local(async move {
                // The run as the server has it now; what this page saw if it cannot answer.
                let fresh = api::get_json::<RunSummary>(&format!("/api/runs/{}", api::encode(&id))).await.ok();
                let Some(summary) = fresh.or_else(|| summary.get_untracked()) else {
                    report_error.set(Some("the run's description has not arrived yet; try again".into()));
                    return;
                };
                let charts = run.with_value(|run| report_charts(run, view.get_untracked()));
                let now = js_sys::Date::now() as i64 * 1_000_000;
                let html = charts.map(|charts| report::html(std::slice::from_ref(&summary), &charts, now));
                let saved =
                    html.and_then(|html| crate::download::save_text(&format!("{stem}.html"), "text/html", &html));
                report_error.set(saved.err());
            });
        }
    };
    view! {
        <section class="run" data-run=id.clone()>
            <div class="run-head">
                <h2 id="run-title">
                    {move || summary.with(|s| s.as_ref().map(|s| s.name.trim().to_string()).filter(|n| !n.is_empty()))
                        .map_or_else(|| view! { "Run " }.into_any(), |name| view! { {name} " " }.into_any())}
                    <code>{id.clone()}</code>
                </h2>
                {move || snapshot().simulated.then(|| view! { <span class="badge">"simulated Triton"</span> })}
                <Show when=move || operator.get()>
                    <a id="rerun" href=move || { version.track(); run.with_value(|run| rerun_path(&run.spec)) }
                        title="The sweep form, filled with this run's spec: change the target to run it elsewhere">"Rerun…"</a>
                </Show>
                <button type="button" id="download-report" on:click=download_report
                    title="One HTML file with the charts, the table and the definitions, that opens without a network">"Download report"</button>
            </div>
            {move || report_error.get().map(|f| view! { <p class="error">{f}</p> })}
            <p class="spec">{move || { version.track(); run.with_value(describe_spec) }}</p>
            <RunDetails id=id.clone() summary=summary on_changed=on_changed on_deleted=on_deleted/>
            {move || { version.track(); run.with_value(|run| !run.spec.streaming) }.then(|| view! {
                <p class="note" id="non-streaming-note">"Measured without streaming (ModelInfer): each request's one response carries all its tokens, so TTFT is the whole request's latency and token-to-token latency cannot be measured."</p>
            })}
            <div class="progress">
                <progress max=move || snapshot().total.max(1) value=move || snapshot().finished></progress>
                <span id="progress-text">{move || {
                    let Snapshot { finished: done, total, errors, seconds_left: left, .. } = snapshot();
                    let left = left.filter(|_| done < total).map(|s| format!(" · about {} left", fmt_duration(s))).unwrap_or_default();
                    format!("{done} / {total} requests · {errors} errors{left}")
                }}</span>
                <Show when=move || snapshot().going && operator.get()>
                    <button type="button" id="cancel" on:click=cancel.clone()>"Cancel"</button>
                </Show>
            </div>
            <p id="run-status" class="status" data-state=move || snapshot().state>{move || snapshot().text}</p>
            {move || { version.track(); run.with_value(|run| run.engine.clone()) }.filter(|e| e.responses > 0).map(|engine| view! {
                <p id="engine-load" class="note" data-busy=engine.busy() title="The thread that sends requests and stamps responses: near a full core, it stamps arrivals late">
                    {engine.describe()}
                </p>
            })}
            <Show when=move || !snapshot().going>
                <p class="exports" id="exports">"Exports: "
                    {shared::api::EXPORTS.map(|(file, what)| view! {
                        <a class="export" href=format!("/api/runs/{}/export/{file}", api::encode(&id_for_exports)) download="" title=what>{file}</a>
                        " "
                    }).collect_view()}
                </p>
            </Show>
            {move || { version.track(); run.with_value(|run| run.not_saved.clone()) }.map(|why| view! {
                <p id="run-not-saved" class="error">{format!(
                    "Not saved: the run store {why}. The run stays in this dashboard until the dashboard stops; download its exports to keep it."
                )}</p>
            })}
            {move || match link.get() {
                Link::Retrying(why) => Some(view! { <p class="note">{format!("Live updates lost ({why}); reconnecting. A run goes on on the server while no page watches.")}</p> }.into_any()),
                Link::Gone(err) => Some(view! { <ErrorBox error=err/> }.into_any()),
                _ => None,
            }}
            {move || cancel_error.get().map(|err| view! { <ErrorBox error=err/> })}
            {move || { version.track(); run.with_value(throughput::headline) }.map(|words| view! {
                <p id="capacity" class="headline">{words}</p>
            })}
            <ViewControls view=view address=address/>
            <Show when=move || { version.track(); run.with_value(|run| throughput::shows(&run.spec)) }>
                <div class="charts" id="throughput-charts">
                    {Metric::ALL.into_iter().map(|metric| {
                        let chart = Signal::derive(move || {
                            version.track();
                            let y = crate::chart::YScale::chosen(view.with(|v| v.y));
                            run.with_value(|run| throughput::run_chart(run, metric, y, &charts::palette()))
                        });
                        view! {
                            <Show when=move || view.with(|v| charts::shows(v.charts, metric))>
                                <ThroughputChart metric=metric chart=chart stem=files/>
                            </Show>
                        }
                    }).collect_view()}
                </div>
            </Show>
            <div class="charts">
                <Show when=move || view.with(|v| v.charts != Charts::T2t)>
                    <LatencyChart metric=Metric::Ttft run=run version=version view=view stem=files/>
                </Show>
                <Show when=move || view.with(|v| v.charts != Charts::Ttft)>
                    <LatencyChart metric=Metric::T2t run=run version=version view=view stem=files/>
                </Show>
            </div>
            <TelemetryFigure key="telemetry" caption="Server metrics over the run" run=run version=version
                view=view run_wide=true stem=files/>
            <Inspector run=run version=version view=view stem=files/>
            <PointsTable run=run version=version/>
        </section>
    }
}

fn describe_spec(run: &LiveRun) -> String {
    report::spec_line(&run.spec, run.model.as_ref())
}

/// The charts a run's page shows, as SVG for its report: with server metrics, the run-wide
/// chart of the view's server metric, else of the default metric.
pub fn report_charts(run: &LiveRun, view: RunViewState) -> Result<Vec<ReportChart>, String> {
    let telemetry = view.server_metric.as_deref();
    let mut out = charts::report_charts(&view, &|metric, shape, palette, draw| {
        with_run_chart(run, metric, shape, palette, draw)
    })?;
    if throughput::shows(&run.spec) {
        let y = crate::chart::YScale::chosen(view.y);
        out.extend(throughput::report_charts(view.charts, |metric, palette| {
            throughput::run_chart(run, metric, y, palette)
        })?);
    }
    let palette = crate::chart::Palette::LIGHT;
    if let (Some(shown), Some(telemetry)) = (server_metrics::build(run, telemetry, None, &palette), &run.telemetry) {
        out.push(ReportChart {
            key: "telemetry".into(),
            caption: format!(
                "Server metrics over the run: {}. The {}.",
                shown.chart.y_desc,
                server_metrics::describe(telemetry)
            ),
            svg: server_metrics::svg(&shown.chart, &palette)?,
        });
    }
    Ok(out)
}

/// The cells of one metric's summary; each carries its exact value for tools to read.
fn summary_cells(metric: &'static str, summary: Option<Summary>) -> impl IntoView {
    stat_cells(metric, ["mean", "p50", "p90", "p99"], summary.map(|s| [s.mean, s.p50, s.p90, s.p99]))
}

/// One cell per statistic of a metric in ms, or dashes.
fn stat_cells<const N: usize>(
    metric: &'static str,
    stats: [&'static str; N],
    values: Option<[f64; N]>,
) -> impl IntoView {
    stats
        .into_iter()
        .enumerate()
        .map(|(i, stat)| {
            let value = values.map(|v| v[i]);
            view! {
                <td data-metric=format!("{metric}-{stat}") data-value=value.map(|v| v.to_string()).unwrap_or_default()>
                    {value.map_or("–".to_string(), fmt_ms)}
                </td>
            }
        })
        .collect_view()
}

/// A server metric's mean over a point, with `decimals`, or a dash; the cell carries its exact
/// value (percentages as percent) for tools to read.
fn metric_cell(metric: &'static str, value: Option<f64>, decimals: usize) -> impl IntoView {
    view! {
        <td data-metric=metric data-value=value.map(|v| v.to_string()).unwrap_or_default()>
            {value.map_or("–".to_string(), |v| format!("{v:.decimals$}"))}
        </td>
    }
}

/// Every number the charts show, one row per settled point. A sweep over load levels shows
/// each point's load; an open-loop one the rate it sent at, its schedule lag and TTFT from
/// the intended send time; one with objectives its goodput; one that read the server's
/// metrics their means over the point's measured requests. Points whose client fell behind
/// its schedule are named under the table, in words.
#[component]
fn PointsTable(
    /// The run, rebuilt from its events.
    run: StoredValue<LiveRun, LocalStorage>,
    /// Bumped when `run` changes.
    version: RwSignal<u64>,
) -> impl IntoView {
    let rows = move || {
        version.track();
        run.with_value(|run| {
            run.points.iter().enumerate().filter_map(|(i, p)| p.clone().map(|p| (i as u32, p))).collect::<Vec<_>>()
        })
    };
    // The server-metric columns the run's metrics can fill, and whether its GPU figure is
    // the simulator's.
    let metric_columns = move || {
        version.track();
        run.with_value(|run| {
            run.telemetry.as_ref().map_or(([false; 3], false), |t| {
                let simulated = t.series.iter().any(|s| s.head.label("simulated") == Some("true"));
                (server_metrics::table_columns(t), simulated)
            })
        })
    };
    let shape = move || {
        version.track();
        run.with_value(|run| {
            let spec = &run.spec;
            let server = run.points.iter().flatten().any(|p| p.server.is_some());
            (spec.load_levels().len() > 1 || spec.open_loop(), spec.open_loop(), spec.slo.is_some(), server)
        })
    };
    let warnings = move || {
        rows()
            .into_iter()
            .filter_map(|(_, p)| {
                let load = p.load.map(|l| format!(" at {l}")).unwrap_or_default();
                p.lag_warning().map(|w| format!("Prompt length {}{load}: {w}.", p.prompt_length))
            })
            .collect::<Vec<_>>()
    };
    view! {
        <table class="points" id="points-table">
            <thead>
                <tr>
                    {move || shape().0.then(|| view! { <th rowspan="2">"load"</th> })}
                    <th rowspan="2">"prompt length"</th>
                    <th rowspan="2">"requests"</th>
                    <th rowspan="2">"errors"</th>
                    <th colspan="4"><a href=format!("#{}", metric_anchor("ttft"))>"TTFT (ms)"</a></th>
                    <th colspan="4"><a href=format!("#{}", metric_anchor("t2t"))>"token-to-token (ms)"</a></th>
                    <th rowspan="2"><a href=format!("#{}", metric_anchor("throughput"))>"output tokens/s"</a></th>
                    {move || shape().1.then(|| view! {
                        <th rowspan="2">"sent/s"</th>
                        <th colspan="2"><a href=format!("#{}", metric_anchor("lag"))>"schedule lag (ms)"</a></th>
                        <th colspan="2"><a href=format!("#{}", metric_anchor("ttft_intended"))>"TTFT from intended (ms)"</a></th>
                    })}
                    {move || shape().2.then(|| view! {
                        <th colspan="2"><a href=format!("#{}", metric_anchor("goodput"))>"goodput"</a></th>
                    })}
                    {move || shape().3.then(|| view! {
                        <th colspan="2" title="Triton's own statistics of the model over the point, warm-up included">
                            "server, per request (ms)"</th>
                    })}
                    {move || {
                        let shown = metric_columns().0.iter().filter(|c| **c).count();
                        (shown > 0).then(|| view! {
                            <th colspan=shown.to_string() title="Means over the scrapes of the server's metrics during each point's measured requests, warm-up left out">
                                "server metrics (mean)"</th>
                        })
                    }}
                </tr>
                <tr>
                    <th>"mean"</th><th>"p50"</th><th>"p90"</th><th>"p99"</th>
                    <th>"mean"</th><th>"p50"</th><th>"p90"</th><th>"p99"</th>
                    {move || shape().1.then(|| view! { <th>"p50"</th><th>"p99"</th><th>"p50"</th><th>"p99"</th> })}
                    {move || shape().2.then(|| view! { <th>"met"</th><th>"per s"</th> })}
                    {move || shape().3.then(|| view! { <th>"queue"</th><th>"compute"</th> })}
                    {move || {
                        let ([gpu, kv, queue], simulated) = metric_columns();
                        let gpu_title = if simulated { "the simulator's stand-in for a GPU's utilisation" } else { "nv_gpu_utilization, the mean over GPUs" };
                        view! {
                            {gpu.then(|| view! { <th title=gpu_title>{if simulated { "GPU util (%, simulated)" } else { "GPU util (%)" }}</th> })}
                            {kv.then(|| view! { <th title="vLLM's share of KV-cache in use">"KV cache (%)"</th> })}
                            {queue.then(|| view! { <th title="Requests waiting at the server: Triton's pending requests of the model, else vLLM's waiting requests">"queue depth"</th> })}
                        }
                    }}
                </tr>
            </thead>
            <tbody>
                {move || {
                    let (levels, open, slo, server) = shape();
                    let ([gpu, kv, queue], _) = metric_columns();
                    let with_metrics = gpu || kv || queue;
                    rows().into_iter().map(|(i, p)| {
                        let metrics = with_metrics.then(|| run.with_value(|run| server_metrics::point_summary(run, i))).flatten();
                        let lag = p.schedule_lag_ms.as_ref().map(|s| [s.p50, s.p99]);
                        let due = p.ttft_intended_ms.as_ref().map(|s| [s.p50, s.p99]);
                        let flagged = p.lag_warning().is_some();
                        view! {
                            <tr data-prompt-length=p.prompt_length.to_string() class:behind=flagged>
                                {levels.then(|| view! { <td data-metric="load">{p.load.map(|l| l.to_string()).unwrap_or_default()}</td> })}
                                <td>{p.prompt_length}</td>
                                <td data-metric="count" data-value=p.count.to_string()>{p.count}</td>
                                <td data-metric="errors" data-value=p.errors.to_string()>{p.errors}</td>
                                {summary_cells("ttft", p.ttft_ms.clone())}
                                {summary_cells("t2t", p.t2t_ms.clone())}
                                <td data-metric="tokens-per-s" data-value=p.output_tokens_per_s.to_string()>{format!("{:.1}", p.output_tokens_per_s)}</td>
                                {open.then(|| view! {
                                    <td data-metric="sent-per-s" data-value=p.sent_per_s.to_string()>{format!("{:.2}", p.sent_per_s)}</td>
                                    {stat_cells("lag", ["p50", "p99"], lag)}
                                    {stat_cells("ttft-intended", ["p50", "p99"], due)}
                                })}
                                {slo.then(|| {
                                    let share = p.goodput.map(|g| g.share);
                                    let rate = p.goodput.map(|g| g.requests_per_s);
                                    view! {
                                        <td data-metric="goodput-share" data-value=share.map(|v| v.to_string()).unwrap_or_default()>
                                            {share.map_or("–".to_string(), |v| format!("{:.1}%", v * 100.0))}</td>
                                        <td data-metric="goodput-per-s" data-value=rate.map(|v| v.to_string()).unwrap_or_default()>
                                            {rate.map_or("–".to_string(), |v| format!("{v:.2}"))}</td>
                                    }
                                })}
                                {server.then(|| stat_cells(
                                    "server",
                                    ["queue", "compute"],
                                    p.server.map(|s| [s.queue_ms, s.compute_ms()]),
                                ))}
                                {gpu.then(|| metric_cell("gpu-util", metrics.and_then(|m| m.gpu_utilization).map(|v| v * 100.0), 1))}
                                {kv.then(|| metric_cell("kv-cache", metrics.and_then(|m| m.kv_cache_usage).map(|v| v * 100.0), 1))}
                                {queue.then(|| metric_cell("queue-depth", metrics.and_then(|m| m.queue_depth), 2))}
                            </tr>
                        }
                    }).collect_view()
                }}
            </tbody>
        </table>
        <ul class="lag-warnings" id="lag-warnings">
            {move || warnings().into_iter().map(|w| view! { <li class="warning">{w}</li> }).collect_view()}
        </ul>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_says_whether_the_run_goes_on() {
        let mut run = LiveRun::default();
        let starting = Snapshot::of(&run);
        assert_eq!((starting.state, starting.going), ("starting", true));
        run.status = Some(RunStatus::Cancelled);
        let cancelled = Snapshot::of(&run);
        assert_eq!((cancelled.state, cancelled.going), ("cancelled", false));
        assert!(cancelled.text.starts_with("Cancelled"));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_duration(4.4), "4 s");
        assert_eq!(fmt_duration(65.0), "1 min 5 s");
    }
}
