//! Chart components: a canvas each, redrawn when the run's data, the window's size or the
//! selection changes; a tooltip follows the pointer over the latency charts.

use crate::view::{Charts, RunViewState, Series, SeriesSet, XAxis, YAxis, run_title};
use leptos::html::Canvas;
use leptos::prelude::*;
use shared::api::RunSummary;
use shared::{LiveRun, Summary, SweepSpec};
use web_sys::HtmlCanvasElement;

use crate::report::ReportChart;

use crate::chart::{self, Palette, XScale, YScale, draw, fmt_length, fmt_ms, telemetry};
use crate::components::copy_link::CopyLink;
use crate::components::glossary::metric_anchor;
use crate::components::telemetry::TelemetryFigure;
use crate::download;

/// The colours of the page's current scheme.
pub fn palette() -> Palette {
    let dark = web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
        .is_some_and(|m| m.matches());
    if dark { Palette::DARK } else { Palette::LIGHT }
}

/// Bumped whenever the window is resized, so charts refit their canvases.
#[derive(Clone, Copy)]
pub struct Resized(pub RwSignal<u32>);

pub use crate::compare::Metric;

/// Runs `draw` now, and again whenever what it reads changes or the window is resized.
pub fn redrawn(draw: impl Fn() + 'static) {
    let resized = use_context::<Resized>().map(|r| r.0);
    Effect::new(move |_| {
        if let Some(r) = resized {
            r.track();
        }
        draw();
    });
}

/// One sample per finished measured request of the points `keep` lets through: its TTFT,
/// or its mean token gap.
fn samples(metric: Metric, run: &LiveRun, keep: impl Fn(usize) -> bool) -> Vec<(u32, f64)> {
    let mut out = Vec::new();
    for (r, request) in run.requests.iter().enumerate() {
        let Some(done) = request.done.as_ref().filter(|d| d.error.is_none()) else { continue };
        let point = run.locate(r as u32).0 as usize;
        if run.is_warmup(r as u32) || !keep(point) {
            continue;
        }
        let length = run.spec.point_length(point);
        let value = match metric {
            Metric::Ttft => done.ttft_ms,
            Metric::T2t => request.mean_gap_ms(),
        };
        if let Some(value) = value {
            out.push((length, value));
        }
    }
    out
}

/// What a latency chart shows: its axes and series.
pub type Shape = (XAxis, YAxis, SeriesSet);

/// Whether `charts` includes `metric`'s chart.
pub fn shows(charts: Charts, metric: Metric) -> bool {
    match charts {
        Charts::Both => true,
        Charts::Ttft => metric == Metric::Ttft,
        Charts::T2t => metric == Metric::T2t,
    }
}

/// The runs a latency chart is drawn from.
#[derive(Clone, Copy)]
pub enum LatencyData<'a> {
    /// One run as it goes: its settled points and its single requests, a line per load
    /// level.
    Run(&'a LiveRun),
    /// Several runs' settled points overlaid, one colour each, the baseline first.
    Compared(&'a [RunSummary]),
}

impl LatencyData<'_> {
    /// Calls `f` with the chart of `metric` in `shape` and `palette`.
    pub fn with_chart<T>(
        self,
        metric: Metric,
        shape: Shape,
        palette: &Palette,
        f: impl FnOnce(&draw::LatencyChart<'_>) -> T,
    ) -> T {
        match self {
            LatencyData::Run(run) => with_run_chart(run, metric, shape, palette, f),
            LatencyData::Compared(runs) => with_compare_chart(runs, metric, shape, palette, f),
        }
    }
}

/// The latency charts `view` shows of `data`, as SVG for a report (light, whatever the
/// page's scheme).
pub fn report_charts(view: &RunViewState, data: LatencyData<'_>) -> Result<Vec<ReportChart>, String> {
    let palette = Palette::LIGHT;
    Metric::ALL
        .into_iter()
        .filter(|&metric| shows(view.charts, metric))
        .map(|metric| {
            Ok(ReportChart {
                key: metric.key().into(),
                caption: format!("{} against prompt length", metric.title()),
                svg: data.with_chart(metric, (view.x, view.y, view.series), &palette, |chart| {
                    draw::latency_svg(chart, &palette)
                })?,
            })
        })
        .collect()
}

/// Calls `f` with the chart of one run's metric, as its page shows it.
fn with_run_chart<T>(
    run: &LiveRun,
    metric: Metric,
    (x_axis, y_axis, series): Shape,
    palette: &Palette,
    f: impl FnOnce(&draw::LatencyChart<'_>) -> T,
) -> T {
    // A sweep over load levels draws one line per level, against prompt length.
    let levels = run.spec.load_levels();
    let layers = if levels.len() > 1 {
        levels
            .iter()
            .enumerate()
            .map(|(i, level)| {
                let of_level = |point: usize| point % levels.len() == i;
                let points = run
                    .points
                    .iter()
                    .enumerate()
                    .filter(|(point, _)| of_level(*point))
                    .filter_map(|(_, p)| p.as_ref())
                    .filter_map(|p| metric.summary(p).map(|s| (p.prompt_length, s.clone())))
                    .collect();
                let colour = palette.run(i);
                draw::Layer {
                    label: level.to_string(),
                    points,
                    samples: samples(metric, run, of_level),
                    line: colour,
                    band: colour,
                    dots: colour,
                }
            })
            .collect()
    } else {
        let points: Vec<(u32, Summary)> = run
            .points
            .iter()
            .flatten()
            .filter_map(|p| metric.summary(p).map(|s| (p.prompt_length, s.clone())))
            .collect();
        vec![draw::Layer {
            label: run.id.clone(),
            points,
            samples: samples(metric, run, |_| true),
            line: palette.line,
            band: palette.band,
            dots: palette.dots,
        }]
    };
    f(&draw::LatencyChart {
        x_desc: run.spec.prompt_length_axis(),
        y_desc: metric.axis(),
        scale: XScale::chosen(x_axis, &run.spec.prompt_lengths),
        y_scale: YScale::chosen(y_axis),
        series,
        lengths: &run.spec.prompt_lengths,
        layers,
        empty_note: if metric == Metric::T2t && run.spec.max_tokens == 1 {
            "max_tokens is 1: one token per request, so no token-to-token gaps"
        } else if run.status.is_some() {
            "no results"
        } else {
            "waiting for the first results"
        },
    })
}

/// Calls `f` with the chart of several runs' metric overlaid, one colour each, from their
/// settled statistics (a comparison draws no single requests).
fn with_compare_chart<T>(
    runs: &[RunSummary],
    metric: Metric,
    (x_axis, y_axis, series): Shape,
    palette: &Palette,
    f: impl FnOnce(&draw::LatencyChart<'_>) -> T,
) -> T {
    let lengths = crate::compare::ascending_once(runs.iter().flat_map(|r| r.spec.prompt_lengths.iter().copied()));
    let layers = runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let colour = palette.run(i);
            draw::Layer {
                label: compare_label(run),
                points: crate::report::settled(&run.points, metric),
                samples: Vec::new(),
                line: colour,
                band: colour,
                dots: colour,
            }
        })
        .collect();
    // Runs whose lengths count differently share the axis of the first.
    let x_desc =
        runs.first().map_or_else(|| SweepSpec::default().prompt_length_axis(), |r| r.spec.prompt_length_axis());
    f(&draw::LatencyChart {
        x_desc,
        y_desc: metric.axis(),
        scale: XScale::chosen(x_axis, &lengths),
        y_scale: YScale::chosen(y_axis),
        series: series.with(Series::Dots, false),
        lengths: &lengths,
        layers,
        empty_note: "no results",
    })
}

/// A run in a comparison's legend: its name (or id), model and target.
pub fn compare_label(run: &RunSummary) -> String {
    format!("{} · {} · {}", run_title(run), run.spec.model, run.spec.target)
}

/// "PNG" and "SVG" buttons that save a chart: the canvas as it is, or the same chart drawn
/// as SVG.
#[component]
pub fn ExportButtons(
    /// The chart's key: the buttons are `export-png-KEY` and `export-svg-KEY`, the files
    /// `STEM-KEY.png` and `.svg`.
    key: &'static str,
    /// The canvas the chart is drawn on.
    canvas: NodeRef<Canvas>,
    /// The files' stem, e.g. `tokenscope-ID`.
    #[prop(into)]
    stem: Signal<String>,
    /// Draws the chart as an SVG document.
    svg: Callback<(), Result<String, String>>,
) -> impl IntoView {
    let failure = RwSignal::new(None::<String>);
    let png = move |_| {
        let Some(canvas) = canvas.get_untracked() else { return };
        failure.set(download::save_png(&format!("{}-{key}.png", stem.get_untracked()), &canvas).err());
    };
    let save_svg = move |_| {
        let saved = svg.run(()).and_then(|text| {
            download::save_text(&format!("{}-{key}.svg", stem.get_untracked()), "image/svg+xml", &text)
        });
        failure.set(saved.err());
    };
    view! {
        <span class="export" aria-label="Save this chart">
            <button type="button" id=format!("export-png-{key}") title="Save the chart as a PNG image, as drawn" on:click=png>"PNG"</button>
            <button type="button" id=format!("export-svg-{key}") title="Save the chart as an SVG drawing" on:click=save_svg>"SVG"</button>
            {move || failure.get().map(|f| view! { <span class="error">{f}</span> })}
        </span>
    }
}

/// Where the data of a latency figure lives on the page.
#[derive(Clone, Copy)]
pub enum Latencies {
    /// A run rebuilt from its events, and the signal bumped when it changes.
    Run(StoredValue<LiveRun, LocalStorage>, RwSignal<u64>),
    /// The compared runs, the baseline first.
    Compared(Signal<Vec<RunSummary>>),
}

impl Latencies {
    /// Subscribes the running effect to changes of the data.
    fn track(self) {
        match self {
            Latencies::Run(_, version) => version.track(),
            Latencies::Compared(runs) => runs.track(),
        }
    }

    /// Calls `f` with the data as it is now.
    fn with<T>(self, f: impl FnOnce(LatencyData<'_>) -> T) -> T {
        match self {
            Latencies::Run(run, _) => run.with_value(|run| f(LatencyData::Run(run))),
            Latencies::Compared(runs) => runs.with_untracked(|runs| f(LatencyData::Compared(runs))),
        }
    }

    /// Whether pointing at a mean of the chart's first line tells its statistics: for a
    /// single run's chart.
    fn tooltips(self) -> bool {
        matches!(self, Latencies::Run(..))
    }

    /// The caption's words on what is drawn.
    fn legend(self, series: SeriesSet) -> String {
        match self {
            Latencies::Run(..) => legend(series),
            Latencies::Compared(_) => {
                "one colour per run: line, the mean; the legend in the chart names the runs".into()
            }
        }
    }
}

/// Writes what a latency chart draws on its canvas, for tools that read the chart: its
/// scales and series, and each line's colour.
fn describe_latency(canvas: &HtmlCanvasElement, chart: &draw::LatencyChart<'_>, (_, y_axis, series): Shape) {
    let x = if chart.scale == XScale::Log2 { "log" } else { "linear" };
    let colours: Vec<String> = chart.layers.iter().map(|l| format!("{},{},{}", l.line.0, l.line.1, l.line.2)).collect();
    for (attribute, value) in [
        ("data-x-scale", x.to_string()),
        ("data-x-axis", chart.x_desc.clone()),
        ("data-y-scale", y_axis.key().to_string()),
        ("data-series", series.encode()),
        ("data-colours", colours.join(";")),
    ] {
        let _ = canvas.set_attribute(attribute, &value);
    }
}

/// Each line's means' positions in CSS pixels, `x,y;x,y|x,y;...`, for tools that point at
/// them.
fn markers(layers: &[Vec<(f64, f64)>]) -> String {
    let lines: Vec<String> = layers
        .iter()
        .map(|at| at.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(";"))
        .collect();
    lines.join("|")
}

/// The tooltip of a mean pointed at, at `(x, y)` on a chart `width` wide: where it goes (a
/// CSS position, kept inside the chart) and what it says.
fn tooltip((length, s): &(u32, Summary), x: f64, y: f64, width: f64) -> (String, String) {
    let text = format!(
        "prompt length {length}: mean {} ms · p50 {} · p90 {} · p99 {} · n {}",
        fmt_ms(s.mean),
        fmt_ms(s.p50),
        fmt_ms(s.p90),
        fmt_ms(s.p99),
        s.count
    );
    // Right of the pointer in the chart's left half, left of it in the right half.
    let place = if x > width / 2.0 {
        format!("right:{:.0}px;top:{:.0}px", width - x + 12.0, y + 12.0)
    } else {
        format!("left:{:.0}px;top:{:.0}px", x + 12.0, y + 12.0)
    };
    (place, text)
}

/// A latency metric against prompt length, of one run or several overlaid, with its
/// definition one click away; over a single run's chart, a tooltip tells of the mean
/// pointed at.
#[component]
pub fn LatencyFigure(
    /// Which metric.
    metric: Metric,
    /// The runs drawn.
    data: Latencies,
    /// The axes and series the page asks for.
    #[prop(into)]
    view: Signal<RunViewState>,
    /// The stem of the chart's file names.
    #[prop(into)]
    stem: Signal<String>,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    // The means the tooltip tells of: where they are drawn, and their statistics.
    let targets = StoredValue::new(Vec::<(f64, f64)>::new());
    let points = StoredValue::new(Vec::<(u32, Summary)>::new());
    let tooltip_shown = RwSignal::new(None::<(String, String)>);
    let failure = RwSignal::new(None::<String>);
    // Only the axes and series redraw the chart, not the inspector's choices.
    let shape = Memo::new(move |_| view.with(|v| (v.x, v.y, v.series)));
    redrawn(move || {
        data.track();
        let shape = shape.get();
        let Some(canvas) = canvas.get() else { return };
        let palette = palette();
        let drawn = data.with(|data_now| {
            data_now.with_chart(metric, shape, &palette, |chart| {
                if data.tooltips() {
                    points.set_value(chart.layers.first().map(|l| l.points.clone()).unwrap_or_default());
                }
                describe_latency(&canvas, chart, shape);
                draw::on_canvas(&canvas, &palette, |root, dpr| draw::latency(root, chart, &palette, dpr))
            })
        });
        match drawn {
            Ok(Some(layers)) => {
                let _ = canvas.set_attribute("data-markers", &markers(&layers));
                if data.tooltips() {
                    targets.set_value(layers.into_iter().next().unwrap_or_default());
                }
                failure.set(None);
            }
            Ok(None) => {}
            Err(err) => failure.set(Some(err)),
        }
    });
    let hover = move |ev: leptos::ev::MouseEvent| {
        let (x, y) = (f64::from(ev.offset_x()), f64::from(ev.offset_y()));
        let hit = targets.with_value(|t| chart::nearest(t, x, y, 14.0));
        let width = canvas.get_untracked().map_or(0.0, |c| f64::from(c.client_width()));
        tooltip_shown.set(hit.and_then(|i| points.with_value(|p| p.get(i).map(|point| tooltip(point, x, y, width)))));
    };
    let key = metric.key();
    let svg = Callback::new(move |()| {
        let palette = palette();
        data.with(|data| data.with_chart(metric, shape.get_untracked(), &palette, |c| draw::latency_svg(c, &palette)))
    });
    view! {
        <figure class="chart" data-chart=key>
            <figcaption>
                {metric.title()} " against prompt length "
                <a class="define" href=format!("#{}", metric_anchor(key)) title="What this metric means">"definition"</a>
                <ExportButtons key=key canvas=canvas stem=stem svg=svg/>
                <span class="legend">{move || data.legend(shape.get().2)}</span>
            </figcaption>
            <div class="canvas-box">
                <canvas node_ref=canvas id=format!("chart-{key}") on:mousemove=hover on:mouseleave=move |_| tooltip_shown.set(None)/>
                {move || tooltip_shown.get().map(|(place, text)| view! { <div class="tooltip" style=place>{text}</div> })}
            </div>
            {move || failure.get().map(|f| view! { <p class="error">{f}</p> })}
        </figure>
    }
}

/// The point the inspector shows: the point `picked`, else the first at prompt length
/// `length`, when the run has it; else the run's current point, or its latest settled one.
fn inspected_point(run: &LiveRun, picked: Option<u32>, length: Option<u32>) -> u32 {
    let started = |i: usize| run.spec.point(i).is_some();
    picked
        .map(|p| p as usize)
        .filter(|&p| started(p))
        .or_else(|| length.and_then(|l| (0..run.spec.point_count()).position(|i| run.spec.point_length(i) == l)))
        .map_or_else(
            || run.current_point.unwrap_or_else(|| run.points.iter().rposition(Option::is_some).unwrap_or(0) as u32),
            |i| i as u32,
        )
}

/// The request the inspector shows at point `p`: the `request`th (1-based), else the point's
/// latest finished one. Returns its place in the point (0-based) and its index in the run.
fn inspected_request(run: &LiveRun, p: u32, request: Option<u32>) -> (u32, u32) {
    let per_point = run.spec.requests_per_point() as u32;
    let seq = request.map(|n| n - 1).unwrap_or_else(|| {
        (0..per_point)
            .rev()
            .find(|&s| run.requests.get((p * per_point + s) as usize).is_some_and(|r| r.done.is_some()))
            .unwrap_or(0)
    });
    let seq = seq.min(per_point.saturating_sub(1));
    (seq, p * per_point + seq)
}

/// One request's tokens: (ms since its send, tokens in the response).
fn timeline_tokens(run: &LiveRun, r: u32) -> Vec<(f64, u32)> {
    run.requests.get(r as usize).map_or_else(Vec::new, |req| {
        let sent = req.sent_us.unwrap_or(0);
        req.tokens.iter().map(|&(at, n)| (at.saturating_sub(sent) as f64 / 1000.0, n)).collect()
    })
}

/// A request in words: where it is, the `seq`th (0-based) of point `p`, and how it went.
fn describe_request(run: &LiveRun, p: u32, seq: u32, r: u32) -> String {
    let length = run.spec.point_length(p as usize);
    let warmup = if run.is_warmup(r) { " (warm-up)" } else { "" };
    let request = run.requests.get(r as usize);
    let state = match request.and_then(|q| q.done.as_ref()) {
        Some(done) => match (&done.error, done.ttft_ms) {
            (Some(err), _) => format!("failed: {err}"),
            (None, Some(ttft)) => format!("{} tokens, TTFT {} ms", done.tokens, fmt_ms(ttft)),
            (None, None) => "no tokens".into(),
        },
        None if request.is_some_and(|q| q.sent_us.is_some()) => "in flight".into(),
        None => "not sent yet".into(),
    };
    format!("prompt length {length}, request {}{warmup}: {state}", seq + 1)
}

/// A point in words: its prompt length, and its load level in a sweep over them.
fn point_words(run: &LiveRun, p: u32) -> String {
    match run.spec.point(p as usize) {
        Some((length, load)) if crate::components::throughput::shows(&run.spec) => {
            format!("{} at {load}", fmt_length(f64::from(length)))
        }
        _ => fmt_length(f64::from(run.spec.point_length(p as usize))),
    }
}

/// Every point of the run as the point picker lists it: its index and its words.
fn point_options(run: &LiveRun) -> Vec<(u32, String)> {
    (0..run.spec.point_count())
        .map_while(|i| run.spec.point(i).map(|(l, load)| (i as u32, format!("{} · {load}", fmt_length(f64::from(l))))))
        .collect()
}

/// The latency charts the view shows, one per metric.
#[component]
pub fn LatencyFigures(
    /// The runs drawn.
    data: Latencies,
    /// The charts, axes and series the page asks for.
    view: RwSignal<RunViewState>,
    /// The stem of the charts' file names.
    #[prop(into)]
    stem: Signal<String>,
) -> impl IntoView {
    view! {
        <div class="charts">
            {Metric::ALL.into_iter().map(|metric| view! {
                <Show when=move || view.with(|v| shows(v.charts, metric))>
                    <LatencyFigure metric=metric data=data view=view stem=stem/>
                </Show>
            }).collect_view()}
        </div>
    }
}

/// The token timeline of one request and the charts of one point: its TTFT, its requests
/// through time, the server's metrics over it, the lengths sent and received and, open loop,
/// the schedule's lag.
#[component]
pub fn Inspector(
    /// The run, rebuilt from its events.
    run: StoredValue<LiveRun, LocalStorage>,
    /// Bumped when `run` changes.
    version: RwSignal<u64>,
    /// The prompt length and request to show; `None` follows the run.
    view: RwSignal<RunViewState>,
    /// The stem of the charts' file names.
    #[prop(into)]
    stem: Signal<String>,
) -> impl IntoView {
    let picked = Memo::new(move |_| view.with(|v| (v.point, v.length)));
    let request = Memo::new(move |_| view.with(|v| v.request));
    // A point or length the run does not have follows the run too: the latest point, and
    // its latest finished request.
    let chosen_point = move || {
        version.track();
        let (point, length) = picked.get();
        run.with_value(|run| inspected_point(run, point, length))
    };
    let chosen_request = move || {
        let p = chosen_point();
        let request = request.get();
        let (seq, r) = run.with_value(|run| inspected_request(run, p, request));
        (p, seq, r)
    };
    let point = Signal::derive(chosen_point);
    let open_loop = move || {
        version.track();
        run.with_value(|run| run.spec.open_loop())
    };
    let at_length = move || {
        let p = chosen_point();
        run.with_value(|run| point_words(run, p))
    };
    let describe = move || {
        let (p, seq, r) = chosen_request();
        run.with_value(|run| describe_request(run, p, seq, r))
    };
    view! {
        <section class="inspector">
            <InspectorPickers run=run version=version view=view shown=Signal::derive(move || chosen_request().1 + 1)/>
            <TimelineFigure run=run request=Signal::derive(move || chosen_request().2) stem=stem caption=Signal::derive(describe)/>
            <PointFigure key="histogram" run=run version=version point=point stem=stem paint=ttft_histogram>
                "Time to first token at prompt length " {at_length}
                " " <a class="define" href=format!("#{}", metric_anchor("ttft"))>"definition"</a>
            </PointFigure>
            <PointFigure key="ttft-over-time" run=run version=version point=point stem=stem paint=ttft_over_time>
                "Time to first token through the point at prompt length " {at_length}
                {move || open_loop().then_some(", from each request's intended send")}
                <span class="legend">"a dot per request; a queue building up shows as a slope"</span>
            </PointFigure>
            <TelemetryFigure key="telemetry-point" run=run version=version point=point view=view stem=stem
                caption=Signal::derive(move || format!("Server metrics through the point at prompt length {}, over the same seconds as the chart above", at_length()))/>
            <PointFigure key="prompt-lengths" run=run version=version point=point stem=stem paint=prompt_length_histogram>
                "Prompt lengths sent at prompt length " {at_length}
                <span class="legend">"each request's, as drawn or read from a file; the shared prefix included"</span>
            </PointFigure>
            <PointFigure key="output-lengths" run=run version=version point=point stem=stem paint=output_length_histogram>
                "Output tokens at prompt length " {at_length}
                <span class="legend">"each finished request's"</span>
            </PointFigure>
            <Show when=open_loop>
                <PointFigure key="lag" run=run version=version point=point stem=stem paint=lag_histogram>
                    "Schedule lag at prompt length " {at_length}
                    <span class="legend">"how late each request was sent against its schedule"</span>
                </PointFigure>
            </Show>
        </section>
    }
}

/// The inspector's choice of a prompt length (or, in a sweep over load levels, a point) and
/// of a request, each written to the view.
#[component]
fn InspectorPickers(
    run: StoredValue<LiveRun, LocalStorage>,
    version: RwSignal<u64>,
    view: RwSignal<RunViewState>,
    /// The request shown, 1-based.
    #[prop(into)]
    shown: Signal<u32>,
) -> impl IntoView {
    let length = Memo::new(move |_| view.with(|v| v.length));
    let picked = Memo::new(move |_| view.with(|v| v.point));
    let lengths = move || {
        version.track();
        run.with_value(|run| run.spec.prompt_lengths.clone())
    };
    // A sweep over load levels picks a point: a prompt length at a load level.
    let by_point = move || {
        version.track();
        run.with_value(|run| crate::components::throughput::shows(&run.spec))
    };
    let points = move || {
        version.track();
        run.with_value(point_options)
    };
    view! {
        <div class="pickers">
            <Show when=move || !by_point()>
                <label>"Prompt length "
                    <select id="inspect-point" on:change=move |ev| {
                        let chosen = event_target_value(&ev).parse().ok();
                        view.update(|v| { v.length = chosen; v.point = None; v.request = None; });
                    }>
                        <option value="" selected=move || length.get().is_none()>"follow the run"</option>
                        {move || lengths().into_iter().map(|l| view! {
                            <option value=l.to_string() selected=move || length.get() == Some(l)>{fmt_length(f64::from(l))}</option>
                        }).collect_view()}
                    </select>
                </label>
            </Show>
            <Show when=by_point>
                <label>"Point "
                    <select id="inspect-load-point" on:change=move |ev| {
                        let chosen = event_target_value(&ev).parse().ok();
                        view.update(|v| { v.point = chosen; v.length = None; v.request = None; });
                    }>
                        <option value="" selected=move || picked.get().is_none()>"follow the run"</option>
                        {move || points().into_iter().map(|(i, text)| view! {
                            <option value=i.to_string() selected=move || picked.get() == Some(i)>{text}</option>
                        }).collect_view()}
                    </select>
                </label>
            </Show>
            <label>"Request # "
                <input id="inspect-request" type="number" min="1" prop:value=move || shown.get().to_string()
                    on:input=move |ev| {
                        // A field emptied to type another number keeps the request until then.
                        if let Some(n) = event_target_value(&ev).trim().parse::<u32>().ok().filter(|&n| n >= 1) {
                            view.update(|v| v.request = Some(n));
                        }
                    }/>
            </label>
        </div>
    }
}

/// One request's tokens as ticks on its time, with `caption` saying which request.
#[component]
fn TimelineFigure(
    run: StoredValue<LiveRun, LocalStorage>,
    /// The request's index in the run.
    #[prop(into)]
    request: Signal<u32>,
    #[prop(into)] stem: Signal<String>,
    #[prop(into)] caption: Signal<String>,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    redrawn(move || {
        let r = request.get();
        let Some(canvas) = canvas.get() else { return };
        let tokens = run.with_value(|run| timeline_tokens(run, r));
        let palette = palette();
        if let Err(err) = draw::on_canvas(&canvas, &palette, |root, dpr| draw::timeline(root, &tokens, &palette, dpr)) {
            leptos::logging::warn!("{err}");
        }
    });
    let svg = Callback::new(move |()| {
        let tokens = run.with_value(|run| timeline_tokens(run, request.get_untracked()));
        let palette = palette();
        draw::to_svg((draw::EXPORT_SIZE.0, 160), &palette, |root| draw::timeline(root, &tokens, &palette, 1.0))
    });
    view! {
        <figure class="chart" data-chart="timeline">
            <figcaption>"Token timeline: " {move || caption.get()}
                <ExportButtons key="timeline" canvas=canvas stem=stem svg=svg/>
                <span class="legend">"each tick a response (taller: several tokens) · shaded: time to first token"</span>
            </figcaption>
            <div class="canvas-box short"><canvas node_ref=canvas id="chart-timeline"/></div>
        </figure>
    }
}

/// Draws a chart of one point of a run: the surface, the run, the point, the colours and the
/// device pixel ratio. Returns the seconds its time axis spans, if it has one.
type PointDrawing = fn(&draw::Area<'_>, &LiveRun, u32, &Palette, f64) -> Result<Option<(f64, f64)>, String>;

/// What a histogram of a point returns: no time axis.
type Untimed = Result<Option<(f64, f64)>, String>;

fn ttft_histogram(root: &draw::Area<'_>, run: &LiveRun, point: u32, palette: &Palette, dpr: f64) -> Untimed {
    let bins = chart::histogram(&run.ttft_samples(point), 40);
    draw::histogram(root, &bins, "time to first token (ms)", palette, dpr).map(|()| None)
}

fn prompt_length_histogram(root: &draw::Area<'_>, run: &LiveRun, point: u32, palette: &Palette, dpr: f64) -> Untimed {
    let bins = chart::histogram(&run.length_samples(point).0, 40);
    draw::histogram(root, &bins, &run.spec.prompt_length_axis(), palette, dpr).map(|()| None)
}

fn output_length_histogram(root: &draw::Area<'_>, run: &LiveRun, point: u32, palette: &Palette, dpr: f64) -> Untimed {
    let bins = chart::histogram(&run.length_samples(point).1, 40);
    draw::histogram(root, &bins, "output tokens", palette, dpr).map(|()| None)
}

fn lag_histogram(root: &draw::Area<'_>, run: &LiveRun, point: u32, palette: &Palette, dpr: f64) -> Untimed {
    let bins = chart::histogram(&run.lag_samples(point), 40);
    draw::histogram(root, &bins, "schedule lag (ms)", palette, dpr).map(|()| None)
}

/// The point's requests by when they were sent, in seconds since the run's start over the
/// point's measured time, which its server-metrics chart below shares.
fn ttft_over_time(root: &draw::Area<'_>, run: &LiveRun, point: u32, palette: &Palette, dpr: f64) -> Untimed {
    let y_desc = if run.spec.open_loop() { "TTFT from the intended send (ms)" } else { Metric::Ttft.axis() };
    let window = telemetry::measured_window(run, point);
    let range = telemetry::time_range(window.unwrap_or_default());
    // The run's own samples count from the point's first measured send, the window's start.
    let first = window.map_or(0.0, |w| w.0 as f64 / 1e6);
    let dots: Vec<(f64, f64)> = run.ttft_over_time(point).into_iter().map(|(at, ttft)| (first + at, ttft)).collect();
    draw::scatter(root, &dots, range, y_desc, palette, dpr).map(|()| Some(range))
}

/// A chart of the point the inspector shows, redrawn as the run goes, with its export buttons.
#[component]
fn PointFigure(
    /// The chart's key: its canvas is `chart-KEY`.
    key: &'static str,
    run: StoredValue<LiveRun, LocalStorage>,
    version: RwSignal<u64>,
    /// The point shown.
    point: Signal<u32>,
    #[prop(into)] stem: Signal<String>,
    paint: PointDrawing,
    /// The caption.
    children: Children,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    redrawn(move || {
        version.track();
        let p = point.get();
        let Some(canvas) = canvas.get() else { return };
        let palette = palette();
        let drawn =
            run.with_value(|run| draw::on_canvas(&canvas, &palette, |root, dpr| paint(root, run, p, &palette, dpr)));
        match drawn {
            // The seconds a time axis spans, for tools that check that charts line up.
            Ok(Some(Some((from, to)))) => {
                let _ = canvas.set_attribute("data-x-range", &format!("{from:.3},{to:.3}"));
            }
            Ok(_) => {}
            Err(err) => leptos::logging::warn!("{err}"),
        }
    });
    let svg = Callback::new(move |()| {
        let palette = palette();
        let p = point.get_untracked();
        run.with_value(|run| {
            draw::to_svg(draw::EXPORT_SIZE, &palette, |root| paint(root, run, p, &palette, 1.0).map(drop))
        })
    });
    view! {
        <figure class="chart" data-chart=key>
            <figcaption>
                {children()}
                <ExportButtons key=key canvas=canvas stem=stem svg=svg/>
            </figcaption>
            <div class="canvas-box"><canvas node_ref=canvas id=format!("chart-{key}")/></div>
        </figure>
    }
}

/// The legend of what a latency chart draws.
pub fn legend(series: SeriesSet) -> String {
    let mut parts = Vec::new();
    if series.contains(Series::Mean) {
        parts.push("line: mean".to_string());
    }
    let percentiles: Vec<&str> =
        [Series::P50, Series::P90, Series::P99].into_iter().filter(|&s| series.contains(s)).map(Series::key).collect();
    if !percentiles.is_empty() {
        parts.push(format!("thin lines: {}", percentiles.join(", ")));
    }
    if series.contains(Series::Band) {
        parts.push("band: p50 to p99".into());
    }
    if series.contains(Series::Dots) {
        parts.push("dots: single requests".into());
    }
    if parts.is_empty() { "nothing chosen to draw".into() } else { parts.join(" · ") }
}

/// A select of a choice's options (each with its text); the option values are the
/// choice's query names, and picking one calls `set` with it.
fn choice_select<T: Copy + PartialEq + Send + Sync + 'static>(
    id: &'static str,
    options: &'static [(T, &'static str)],
    key: fn(T) -> &'static str,
    current: impl Fn() -> T + Copy + Send + Sync + 'static,
    set: impl Fn(&str) + 'static,
) -> impl IntoView {
    view! {
        <select id=id on:change=move |ev| set(&event_target_value(&ev))>
            {options.iter().map(|&(value, text)| view! {
                <option value=key(value) selected=move || current() == value>{text}</option>
            }).collect_view()}
        </select>
    }
}

/// The controls of what the charts show, and a link that reproduces it.
#[component]
pub fn ViewControls(
    /// The page's view state; every control reads and writes it.
    view: RwSignal<RunViewState>,
    /// This view's address (path and query), for the copy button.
    #[prop(into)]
    address: Signal<String>,
    /// Leaves out the single requests' checkbox (a comparison draws none).
    #[prop(optional)]
    without_dots: bool,
) -> impl IntoView {
    const CHARTS: &[(Charts, &str)] =
        &[(Charts::Both, "both"), (Charts::Ttft, "TTFT only"), (Charts::T2t, "token-to-token only")];
    const X: &[(XAxis, &str)] = &[(XAxis::Auto, "automatic"), (XAxis::Linear, "linear"), (XAxis::Log, "log")];
    const Y: &[(YAxis, &str)] = &[(YAxis::Linear, "linear from 0"), (YAxis::Log, "log")];
    view! {
        <div class="view-controls" id="view-controls">
            <label>"Charts "
                {choice_select("view-metric", CHARTS, Charts::key, move || view.with(|v| v.charts),
                    move |key| view.update(|v| v.charts = Charts::parse(key).unwrap_or_default()))}
            </label>
            <label title="Automatic: log when the lengths span a factor of 8 or more">"Prompt length axis "
                {choice_select("view-x", X, XAxis::key, move || view.with(|v| v.x),
                    move |key| view.update(|v| v.x = XAxis::parse(key).unwrap_or_default()))}
            </label>
            <label>"Latency axis "
                {choice_select("view-y", Y, YAxis::key, move || view.with(|v| v.y),
                    move |key| view.update(|v| v.y = YAxis::parse(key).unwrap_or_default()))}
            </label>
            <span class="series">"Show: "
                {Series::ALL.into_iter().filter(move |&s| !(without_dots && s == Series::Dots)).map(|s| view! {
                    <label class="check">
                        <input type="checkbox" id=format!("series-{}", s.key())
                            prop:checked=move || view.with(|v| v.series.contains(s))
                            on:change=move |ev| {
                                let shown = event_target_checked(&ev);
                                view.update(|v| v.series = v.series.with(s, shown));
                            }/>
                        {s.label()}
                    </label>
                }).collect_view()}
            </span>
            <CopyLink id="copy-link" label="Copy link" path=address/>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_names_what_is_drawn() {
        assert_eq!(legend(SeriesSet::default()), "line: mean · band: p50 to p99 · dots: single requests");
        assert_eq!(legend(SeriesSet::of(&[Series::P90, Series::P99])), "thin lines: p90, p99");
        assert_eq!(legend(SeriesSet::NONE), "nothing chosen to draw");
    }
}
