//! One run, live: progress, the charts and their controls, the inspector and the table of
//! every number; its name, notes and tags.

use std::cell::Cell;
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::wasm_split::{SplitLoaderError, wasm_split};
use shared::api::{ApiError, RunSummary};
use shared::{LiveRun, RunStatus, SweepSpec};

use crate::api::{self, EventStream, Link};
use crate::components::ErrorBox;
use crate::components::charts::{self, Inspector, Latencies, LatencyData, LatencyFigures, Metric, ViewControls};
use crate::components::points_table::PointsTable;
use crate::components::run_details::RunDetails;
use crate::components::telemetry::{self as server_metrics, TelemetryFigure};
use crate::components::throughput::{self, ThroughputChart};
use crate::report::{self, ReportChart, StatusWords, status_words};
use crate::view::{RunViewState, spec_query};

/// A live run's state in words: a run not yet ended is starting until its first result or
/// model description arrives, then running.
fn live_status(run: &LiveRun) -> StatusWords {
    match &run.status {
        None if run.finished == 0 && run.model.is_none() => {
            StatusWords { name: "starting", sentence: "starting…".into() }
        }
        None => status_words(&RunStatus::Running),
        Some(status) => status_words(status),
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
        let words = live_status(run);
        Snapshot {
            state: words.name,
            text: words.capitalised(),
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
    follow_events(&id, run, version, link);

    let snapshot = move || {
        version.track();
        run.with_value(Snapshot::of)
    };
    let files = Signal::stored(report::file_stem(std::slice::from_ref(&id)));
    let id_for_exports = id.clone();
    view! {
        <section class="run" data-run=id.clone()>
            <RunHead id=id.clone() summary=summary run=run version=version view=view/>
            <p class="spec">{move || { version.track(); run.with_value(describe_spec) }}</p>
            <RunDetails id=id.clone() summary=summary on_changed=on_changed on_deleted=on_deleted/>
            {move || { version.track(); run.with_value(|run| !run.spec.streaming) }.then(|| view! {
                <p class="note" id="non-streaming-note">"Measured without streaming (ModelInfer): each request's one response carries all its tokens, so TTFT is the whole request's latency and token-to-token latency cannot be measured."</p>
            })}
            <RunProgress id=id.clone() run=run version=version cancel_error=cancel_error/>
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
            <ThroughputCharts run=run version=version view=view stem=files/>
            <LatencyFigures data=Latencies::Run(run, version) view=view stem=files/>
            <TelemetryFigure key="telemetry" caption="Server metrics over the run" run=run version=version
                view=view run_wide=true stem=files/>
            <Inspector run=run version=version view=view stem=files/>
            <PointsTable run=run version=version/>
        </section>
    }
}

/// Follows the run's events into `run`, bumping `version` at most once per animation frame
/// (events arrive in bursts, a whole log on connect), and the socket's state into `link`. The
/// socket belongs to the calling view and closes when it goes away.
fn follow_events(id: &str, run: StoredValue<LiveRun, LocalStorage>, version: RwSignal<u64>, link: RwSignal<Link>) {
    let scheduled = Rc::new(Cell::new(false));
    let stream = EventStream::open(
        id,
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
    StoredValue::new_local(stream);
}

/// The run's throughput charts, when its sweep has load levels to chart them over. Their code
/// comes in the `throughput` chunk, which the page of a run without load levels never fetches.
#[component]
fn ThroughputCharts(
    run: StoredValue<LiveRun, LocalStorage>,
    version: RwSignal<u64>,
    view: RwSignal<RunViewState>,
    stem: Signal<String>,
) -> impl IntoView {
    view! {
        <Show when=move || { version.track(); run.with_value(|run| throughput::shows(&run.spec)) }>
            {move || crate::lazy::shown("throughput charts", throughput_charts(run, version, view, stem))}
        </Show>
    }
}

/// [`ThroughputCharts`]' charts, from the `throughput` chunk.
#[wasm_split(throughput, wasm_split_path = ::leptos::wasm_split, fallible)]
fn throughput_charts(
    run: StoredValue<LiveRun, LocalStorage>,
    version: RwSignal<u64>,
    view: RwSignal<RunViewState>,
    stem: Signal<String>,
) -> crate::lazy::Part {
    Ok(view! {
        <div class="charts" id="throughput-charts">
            {Metric::ALL.into_iter().map(|metric| {
                let chart = Signal::derive(move || {
                    version.track();
                    let y = crate::chart::YScale::chosen(view.with(|v| v.y));
                    run.with_value(|run| throughput::run_chart(run, metric, y, &charts::palette()))
                });
                view! {
                    <Show when=move || view.with(|v| charts::shows(v.charts, metric))>
                        <ThroughputChart metric=metric chart=chart stem=stem/>
                    </Show>
                }
            }).collect_view()}
        </div>
    }
    .into_any())
}

/// The run's title, and what can be done with it: rerun it, or download its report.
#[component]
fn RunHead(
    id: String,
    /// The run's description, once it has come.
    summary: RwSignal<Option<RunSummary>>,
    run: StoredValue<LiveRun, LocalStorage>,
    version: RwSignal<u64>,
    view: RwSignal<RunViewState>,
) -> impl IntoView {
    let operator = crate::components::can_operate();
    let snapshot = move || {
        version.track();
        run.with_value(Snapshot::of)
    };
    let stem = report::file_stem(std::slice::from_ref(&id));
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
                let now = js_sys::Date::now() as i64 * 1_000_000;
                let html = crate::lazy::or_failed("report", run_report(summary, run, view.get_untracked(), now).await);
                let saved =
                    html.and_then(|html| crate::download::save_text(&format!("{stem}.html"), "text/html", &html));
                report_error.set(saved.err());
            });
        }
    };
    view! {
    <div class="run-head">
        <h2 id="run-title">
            {move || summary.with(|s| s.as_ref().map(|s| s.name.trim().to_string()).filter(|n| !n.is_empty()))
                .map_or_else(|| view! { "Run " }.into_any(), |name| view! { {name} " " }.into_any())}
            <code>{id.clone()}</code>
        </h2>
        {move || snapshot().simulated.then(|| view! { <span class="badge">"simulated Triton"</span> })}
        {move || operator.get().then(|| crate::lazy::quietly("rerun link", rerun_link(run, version)))}
        <button type="button" id="download-report" on:click=download_report
            title="One HTML file with the charts, the table and the definitions, that opens without a network">"Download report"</button>
    </div>
    {move || report_error.get().map(|f| view! { <p class="error">{f}</p> })}
    }
}

/// The link to the sweep form filled with the run's spec, for an operator; from the `form`
/// chunk, whose form reads such links, so that viewers' pages carry no JSON writer.
#[wasm_split(form, wasm_split_path = ::leptos::wasm_split, fallible)]
fn rerun_link(run: StoredValue<LiveRun, LocalStorage>, version: RwSignal<u64>) -> crate::lazy::Part {
    Ok(view! {
        <a id="rerun" href=move || { version.track(); run.with_value(|run| rerun_path(&run.spec)) }
            title="The sweep form, filled with this run's spec: change the target to run it elsewhere">"Rerun…"</a>
    }
    .into_any())
}

/// The run's report, one HTML file; from the `report` chunk.
#[wasm_split(report, wasm_split_path = ::leptos::wasm_split, fallible)]
fn run_report(
    summary: RunSummary,
    run: StoredValue<LiveRun, LocalStorage>,
    view: RunViewState,
    now: i64,
) -> Result<Result<String, String>, SplitLoaderError> {
    let charts = run.with_value(|run| report_charts(run, view));
    Ok(charts.map(|charts| report::html(std::slice::from_ref(&summary), &charts, now)))
}

/// How far the run has come, its state in words and, while it goes, a button that cancels it.
#[component]
fn RunProgress(
    id: String,
    run: StoredValue<LiveRun, LocalStorage>,
    version: RwSignal<u64>,
    /// Set when the cancel fails.
    cancel_error: RwSignal<Option<ApiError>>,
) -> impl IntoView {
    let operator = crate::components::can_operate();
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
    view! {
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
    }
}

fn describe_spec(run: &LiveRun) -> String {
    report::spec_line(&run.spec, run.model.as_ref())
}

/// The charts a run's page shows, as SVG for its report: with server metrics, the run-wide
/// chart of the view's server metric, else of the default metric.
pub fn report_charts(run: &LiveRun, view: RunViewState) -> Result<Vec<ReportChart>, String> {
    let telemetry = view.server_metric.as_deref();
    let mut out = charts::report_charts(&view, LatencyData::Run(run))?;
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
