//! The server's metrics on a run's page: the chosen metric over the whole run or over the
//! inspected point's measured requests, redrawn as scrapes arrive, with failed scrapes marked
//! and their reasons in words; and the window means the points table shows.

use crate::view::RunViewState;
use leptos::html::Canvas;
use leptos::prelude::*;
use shared::LiveRun;
use shared::telemetry::{Telemetry, WindowSummary};

use crate::chart::telemetry::{
    MetricOption, TelemetryChart, chosen_pick, failures_within, gaps_text, measured_window, options, run_chart,
    run_window, time_range,
};
use crate::chart::{Palette, draw};
use crate::components::charts::{ExportButtons, Resized, palette};
use crate::report::escape;

/// The series names that fill the points table's columns: GPU utilisation, KV-cache use and
/// queue depth, as [`Telemetry::summary`] reads them.
const COLUMN_SERIES: [&[&str]; 3] = [
    &["nv_gpu_utilization"],
    &["vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"],
    &["nv_inference_pending_request_count", "vllm:num_requests_waiting"],
];

/// Which of the points table's server-metric columns a run's telemetry can fill: GPU
/// utilisation, KV-cache use and queue depth.
pub fn table_columns(telemetry: &Telemetry) -> [bool; 3] {
    COLUMN_SERIES.map(|names| telemetry.series.iter().any(|s| names.contains(&s.head.name.as_str())))
}

/// The means of the server's metrics over a point's measured requests, for the run's model.
// One copy for every row: the summary's code is long.
#[inline(never)]
pub fn point_summary(run: &LiveRun, point: u32) -> Option<WindowSummary> {
    let telemetry = run.telemetry.as_ref()?;
    let (from, to) = measured_window(run, point)?;
    let model = run.model.as_ref().map_or(run.spec.model.as_str(), |m| m.name.as_str());
    Some(telemetry.summary(model, from, to))
}

/// A figure's chart and what it shows beside it: the chosen metric, and its failed scrapes,
/// how many and in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    pub chart: TelemetryChart,
    /// The chosen metric's list value.
    pub pick: String,
    pub failed: usize,
    pub gaps: String,
}

/// The chart of a run's chosen metric (`choice`, else the default) over `point`'s measured
/// requests, or over the whole run; `None` while the run has read no metrics.
pub fn build(run: &LiveRun, choice: Option<&str>, point: Option<u32>, palette: &Palette) -> Option<Drawn> {
    let telemetry = run.telemetry.as_ref()?;
    let window = match point {
        Some(p) => measured_window(run, p),
        None => Some(run_window(run)),
    };
    let range = time_range(window.unwrap_or_default());
    let pick = chosen_pick(telemetry, choice);
    let mut chart = run_chart(telemetry, pick.as_ref(), range, palette);
    if window.is_none() {
        chart.lines.clear();
        chart.gaps.clear();
        chart.empty_note = "the point has sent no measured request yet".into();
    }
    let (failed, reasons) = if window.is_some() { failures_within(telemetry, range) } else { (0, Vec::new()) };
    let gaps = gaps_text(failed, &reasons).unwrap_or_else(|| "every scrape in this time answered".into());
    Some(Drawn { chart, pick: pick.map(|p| p.key()).unwrap_or_default(), failed, gaps })
}

/// Draws a server-metrics chart on its canvas; `Ok(None)` while the canvas is not laid out.
// One copy of the drawing's setup for every figure that draws server metrics.
#[inline(never)]
pub fn paint(
    canvas: &web_sys::HtmlCanvasElement,
    chart: &TelemetryChart,
    palette: &Palette,
) -> Result<Option<()>, String> {
    draw::on_canvas(canvas, palette, |root, dpr| draw::telemetry(root, chart, palette, dpr))
}

/// A server-metrics chart as an SVG document, for its download and the report.
// One copy for every download and report.
#[inline(never)]
pub fn svg(chart: &TelemetryChart, palette: &Palette) -> Result<String, String> {
    draw::to_svg(draw::EXPORT_SIZE, palette, |root| draw::telemetry(root, chart, palette, 1.0))
}

/// The metric list's options as HTML, the current one selected: set as the list's inner
/// HTML, which keeps the page lighter than a view per option.
pub fn options_html(options: &[MetricOption], current: Option<&str>) -> String {
    let mut out = String::new();
    for option in options {
        let selected = if current == Some(option.key.as_str()) { " selected" } else { "" };
        out.push_str(&format!("<option value=\"{}\"{selected}>{}</option>", escape(&option.key), escape(&option.text)));
    }
    out
}

/// A chart of the server's metrics, redrawn as the run goes, with its export buttons and its
/// failed scrapes in words (`#KEY-gaps`); run-wide, also the metric list and the run's
/// scraping in one line. Hidden while the run has read no metrics.
#[component]
pub fn TelemetryFigure(
    /// The chart's key: the figure's `data-chart`, its canvas `chart-KEY`.
    key: &'static str,
    /// The caption.
    #[prop(into)]
    caption: Signal<String>,
    /// The run, rebuilt from its events.
    run: StoredValue<LiveRun, LocalStorage>,
    /// Bumped when `run` changes.
    version: RwSignal<u64>,
    /// The point whose measured requests' time it spans; the whole run without one.
    #[prop(optional, into)]
    point: Option<Signal<u32>>,
    /// The page's view, whose `server_metric` is the chosen metric's list value (`None`
    /// follows the default); choosing one from the list sets it.
    view: RwSignal<RunViewState>,
    /// Whether the figure holds the metric list (`#telemetry-metric`) and the run's scraping
    /// in words (`#telemetry-describe`).
    #[prop(optional)]
    run_wide: bool,
    /// The stem of the chart's file names.
    #[prop(into)]
    stem: Signal<String>,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    let resized = use_context::<Resized>().map(|r| r.0);
    let choice = Memo::new(move |_| view.with(|v| v.server_metric.clone()));
    // Set by the drawing, in signal types the page already has, which keeps it lighter.
    let failure = RwSignal::new(None::<String>);
    let gaps = RwSignal::new(String::new());
    let failed = RwSignal::new(String::new());
    let simulated = RwSignal::new(false);
    // Tries to draw while the figure, just shown, is not laid out yet.
    let tries = RwSignal::new(0u32);
    let list = RwSignal::new(String::new());
    let line = RwSignal::new(String::new());
    let set = |signal: RwSignal<String>, value: String| {
        if signal.with_untracked(|v| *v != value) {
            signal.set(value);
        }
    };
    Effect::new(move |_| {
        version.track();
        if let Some(r) = resized {
            r.track();
        }
        let chosen = choice.get();
        let p = point.map(|p| p.get());
        let tried = tries.get();
        let palette = palette();
        let shown = run.with_value(|run| {
            let telemetry = run.telemetry.as_ref()?;
            if run_wide {
                let current = chosen_pick(telemetry, chosen.as_deref()).map(|p| p.key());
                set(list, options_html(&options(telemetry), current.as_deref()));
                set(line, describe(telemetry));
            }
            build(run, chosen.as_deref(), p, &palette)
        });
        let (Some(shown), Some(canvas)) = (shown, canvas.get()) else { return };
        // What is drawn, for tools that read the chart.
        let chart = &shown.chart;
        let counts: Vec<String> = chart.point_counts().iter().map(ToString::to_string).collect();
        for (name, value) in [
            ("data-metric", shown.pick.clone()),
            ("data-y-desc", chart.y_desc.clone()),
            ("data-lines", chart.lines.len().to_string()),
            ("data-points", counts.join(",")),
            ("data-gaps", chart.gaps.len().to_string()),
            ("data-x-range", format!("{:.3},{:.3}", chart.x_range.0, chart.x_range.1)),
            ("data-simulated", chart.simulated.to_string()),
        ] {
            let _ = canvas.set_attribute(name, &value);
        }
        let drawn = paint(&canvas, chart, &palette);
        match &drawn {
            // The figure is shown once the first scrape is in, maybe after this drawing: the
            // next frames try again, a few times.
            Ok(None) if tried < 8 => request_animation_frame(move || tries.set(tried + 1)),
            Ok(Some(())) if tried > 0 => tries.update_untracked(|n| *n = 0),
            _ => {}
        }
        failure.set(drawn.err());
        set(gaps, shown.gaps);
        set(failed, shown.failed.to_string());
        if simulated.get_untracked() != chart.simulated {
            simulated.set(chart.simulated);
        }
    });
    let export = Callback::new(move |()| {
        let palette = palette();
        let (chosen, p) = (choice.get_untracked(), point.map(|p| p.get_untracked()));
        run.with_value(|run| {
            let shown = build(run, chosen.as_deref(), p, &palette).ok_or("the run has read no metrics")?;
            svg(&shown.chart, &palette)
        })
    });
    let absent = move || {
        version.track();
        run.with_value(|run| run.telemetry.is_none())
    };
    view! {
        <figure class="chart" data-chart=key hidden=absent>
            <figcaption>
                {move || caption.get()}
                {run_wide.then(|| view! {
                    " " <select id="telemetry-metric" aria-label="The server metric to show" inner_html=move || list.get()
                        on:change=move |ev| view.update(|v| v.server_metric = Some(event_target_value(&ev)))></select>
                    <span class="legend" id="telemetry-describe">{move || line.get()}</span>
                })}
                <ExportButtons key=key canvas=canvas stem=stem svg=export/>
                <span class="legend">"counters as a rate per second · shaded, marked along the bottom: failed scrapes, where nothing is known"</span>
            </figcaption>
            <div class="canvas-box"><canvas node_ref=canvas id=format!("chart-{key}")/></div>
            {move || failure.get().map(|f| view! { <p class="error">{f}</p> })}
            <p class="note" id=format!("{key}-gaps") data-failed=move || failed.get()>{move || gaps.get()}</p>
            <p class="note" id=format!("{key}-simulated") hidden=move || !simulated.get()>
                "GPU figures here are the simulator's stand-in (simulated=\"true\"), not a GPU's."
            </p>
        </figure>
    }
}

/// The run's scraping in one line, as [`Telemetry::describe`] words it, with the failures
/// counted without the sort that would add to the page's weight.
pub fn describe(telemetry: &Telemetry) -> String {
    let (failed, reasons) = failures_within(telemetry, (0.0, f64::INFINITY));
    telemetry.describe_failures(failed, &reasons)
}

#[cfg(test)]
mod tests {
    use shared::live::{LiveRequest, RunEvent};
    use shared::telemetry::{MetricKind, Recorder, Sample};
    use shared::{ModelInfo, SweepSpec};

    use super::*;

    fn gauge(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            family: name.into(),
            kind: MetricKind::Gauge,
            labels: labels.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
            value,
        }
    }

    /// A run of one point (one warm-up, two measured requests) whose server queued 1, then
    /// failed a scrape, then queued 3 of its model and 50 of another.
    fn run() -> LiveRun {
        let spec =
            SweepSpec { model: "m".into(), prompt_lengths: vec![16], requests: 2, warmup: 1, ..SweepSpec::default() };
        let mut run = LiveRun::from_events(&[RunEvent::Started {
            id: "r".into(),
            spec: Box::new(spec),
            started_unix_ns: 0,
            simulated: true,
        }]);
        run.requests[0] = LiveRequest { sent_us: Some(0), tokens: vec![(400_000, 1)], done: None };
        run.requests[1] = LiveRequest { sent_us: Some(1_000_000), tokens: vec![(1_500_000, 1)], done: None };
        run.requests[2] = LiveRequest { sent_us: Some(1_200_000), tokens: vec![(2_000_000, 1)], done: None };
        run.latest_us = 2_000_000;
        let mut recorder = Recorder::new("http://h:8002/metrics", 500);
        let queue = |m: &str, v: f64| gauge("nv_inference_pending_request_count", &[("model", m)], v);
        for (at, outcome) in [
            (0, Ok(vec![queue("m", 7.0)])),
            (1_000_000, Ok(vec![queue("m", 1.0), gauge("nv_gpu_utilization", &[("simulated", "true")], 0.5)])),
            (1_500_000, Err("connection refused".to_string())),
            (2_000_000, Ok(vec![queue("m", 3.0), queue("other", 50.0)])),
        ] {
            recorder.record(at, 1, outcome);
        }
        run.telemetry = Some(recorder.into_telemetry());
        run
    }

    #[test]
    fn the_table_fills_the_columns_the_server_has_over_each_points_measured_time() {
        let mut run = run();
        assert_eq!(table_columns(run.telemetry.as_ref().unwrap()), [true, false, true]);
        let summary = point_summary(&run, 0).unwrap();
        // Scrapes at 1.0, 1.5 (failed) and 2.0 s: the warm-up's scrape at 0 is left out, and so
        // is the other model's queue.
        assert_eq!((summary.scrapes, summary.failed), (3, 1));
        assert_eq!(summary.queue_depth, Some(2.0));
        assert_eq!(summary.gpu_utilization, Some(0.5));
        assert!(summary.gpu_simulated);
        run.model = Some(ModelInfo {
            name: "other".into(),
            version: None,
            input_style: shared::InputStyle::Vllm,
            decoupled: true,
            batched: false,
            inputs: Vec::new(),
            outputs: Vec::new(),
        });
        assert_eq!(point_summary(&run, 0).unwrap().queue_depth, Some(50.0), "the model the server named");
        assert_eq!(point_summary(&run, 1), None);
    }

    #[test]
    fn the_scraping_is_described_as_the_telemetry_describes_it() {
        let mut t = run().telemetry.unwrap();
        assert_eq!(describe(&t), t.describe());
        let mut recorder = Recorder::new("u", 250);
        for reason in ["a", "b", "b", "c", "d", "d", "d"] {
            recorder.record(0, 1, Err(reason.into()));
        }
        t = recorder.into_telemetry();
        t.dropped_series = 3;
        assert_eq!(describe(&t), t.describe());
        assert!(describe(&t).contains("(3× d; 2× b; 1× a)"), "{}", describe(&t));
    }

    #[test]
    fn the_list_is_escaped_html_with_the_current_metric_selected() {
        let list = [
            MetricOption { key: "family:a".into(), text: "a".into() },
            MetricOption { key: "series:1".into(), text: "a{le=\"<1\"}".into() },
        ];
        assert_eq!(
            options_html(&list, Some("series:1")),
            "<option value=\"family:a\">a</option><option value=\"series:1\" selected>a{le=&quot;&lt;1&quot;}</option>"
        );
    }

    #[test]
    fn a_figure_shows_the_default_metric_over_its_time_and_names_its_failures() {
        let run = run();
        let palette = Palette::LIGHT;
        let whole = build(&run, None, None, &palette).unwrap();
        assert_eq!(whole.pick, "family:nv_inference_pending_request_count");
        assert_eq!(whole.chart.x_range, time_range((0, 2_000_000)));
        assert_eq!((whole.failed, whole.gaps.as_str()), (1, "1 scrape failed and show as gaps: 1× connection refused"));
        let point = build(&run, Some("family:nv_gpu_utilization"), Some(0), &palette).unwrap();
        assert_eq!(point.chart.x_range, time_range((1_000_000, 2_000_000)));
        assert!(point.chart.simulated);
        let unknown = build(&run, Some("family:gone"), Some(0), &palette).unwrap();
        assert_eq!(unknown.pick, whole.pick, "a metric the run lacks falls back to the default");
        let none = build(&LiveRun::default(), None, None, &palette);
        assert!(none.is_none());
    }
}
