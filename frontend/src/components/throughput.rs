//! Latency against achieved throughput across a run's load levels, with a capacity search's
//! answer marked: where latency turns up as the load grows.

use crate::view::run_title;
use leptos::html::Canvas;
use leptos::prelude::*;
use shared::api::RunSummary;
use shared::capacity::Capacity;
use shared::spec::LoadLevel;
use shared::{LiveRun, PointStats, Summary, SweepSpec};

use crate::chart::{Palette, YScale, draw};
use crate::components::charts::{ExportButtons, Metric, palette, redrawn};
use crate::components::glossary::metric_anchor;

/// Whether a run's spec has load levels to draw latency against throughput for.
pub fn shows(spec: &SweepSpec) -> bool {
    spec.load_levels().len() > 1 || spec.capacity.is_some()
}

/// The latency an open-loop point is drawn with: from the intended send time, so that a
/// client that fell behind does not hide the wait; a closed-loop point's usual latency.
fn latency(metric: Metric, point: &PointStats) -> Option<&Summary> {
    match (metric, point.ttft_intended_ms.as_ref()) {
        (Metric::Ttft, Some(intended)) => Some(intended),
        _ => metric.summary(point),
    }
}

/// The vertical axis's description.
fn y_desc(metric: Metric, open_loop: bool) -> &'static str {
    match metric {
        Metric::Ttft if open_loop => "TTFT from the intended send (ms)",
        _ => metric.axis(),
    }
}

/// How hard a load level loads, to order a curve's points.
fn weight(load: Option<LoadLevel>) -> f64 {
    match load {
        Some(LoadLevel::Concurrency(c)) => f64::from(c),
        Some(LoadLevel::Rate(rate)) => rate,
        None => 0.0,
    }
}

/// One curve per prompt length of a run, each through its settled points in load order, in
/// `colour`, labelled with `name` when given.
fn curves(
    spec: &SweepSpec,
    points: &[Option<&PointStats>],
    metric: Metric,
    colour: impl Fn(usize) -> crate::chart::Rgb,
    name: Option<&str>,
) -> Vec<draw::Curve> {
    spec.prompt_lengths
        .iter()
        .enumerate()
        .filter_map(|(i, &length)| {
            // By load, and by place in the run where loads are equal: the page carries one sort.
            let mut at: Vec<(usize, &PointStats)> =
                points.iter().flatten().copied().filter(|p| p.prompt_length == length).enumerate().collect();
            at.sort_unstable_by(|(i, a), (j, b)| weight(a.load).total_cmp(&weight(b.load)).then(i.cmp(j)));
            let at: Vec<&PointStats> = at.into_iter().map(|(_, p)| p).collect();
            let drawn: Vec<&&PointStats> = at.iter().filter(|p| latency(metric, p).is_some()).collect();
            let points: Vec<(f64, f64, f64)> = drawn
                .iter()
                .filter_map(|p| latency(metric, p).map(|s| (p.output_tokens_per_s, s.p50, s.p99)))
                .collect();
            let behind = drawn.iter().map(|p| p.lag_warning().is_some()).collect();
            let prompt = (spec.prompt_lengths.len() > 1).then(|| format!("prompt {length}"));
            let label = [name.map(str::to_string), prompt].into_iter().flatten().collect::<Vec<_>>().join(" · ");
            (!points.is_empty()).then(|| draw::Curve { label, colour: colour(i), points, behind })
        })
        .collect()
}

/// A capacity search's answer on the throughput axis: the passing probe's output tokens/s.
fn capacity_mark(
    spec: &SweepSpec,
    points: &[Option<&PointStats>],
    ended_early: bool,
    name: Option<&str>,
) -> Option<(f64, String)> {
    let passed = Capacity::of_run(spec, points.iter().copied(), ended_early)?.passed?;
    let point = points.iter().flatten().find(|p| p.load == Some(LoadLevel::Rate(passed.rate)))?;
    let words = format!("capacity {} req/s", shared::capacity::fmt_rate(passed.rate));
    Some((point.output_tokens_per_s, name.map_or(words.clone(), |name| format!("{name}: {words}"))))
}

/// The latency-throughput chart of one run's metric.
pub fn run_chart(run: &LiveRun, metric: Metric, y_scale: YScale, palette: &Palette) -> draw::ThroughputChart {
    let points: Vec<Option<&PointStats>> = run.points.iter().map(Option::as_ref).collect();
    draw::ThroughputChart {
        y_desc: y_desc(metric, run.spec.open_loop()),
        y_scale,
        curves: curves(&run.spec, &points, metric, |i| palette.run(i), None),
        capacity: capacity_mark(&run.spec, &points, ended_early(run), None).into_iter().collect(),
        empty_note: if run.status.is_some() { "no results" } else { "waiting for the first load level" },
    }
}

/// The latency-throughput chart of several runs' metric overlaid, one colour per run; runs
/// without load levels are left out.
pub fn compare_chart(runs: &[RunSummary], metric: Metric, y_scale: YScale, palette: &Palette) -> draw::ThroughputChart {
    let (mut curves_out, mut marks) = (Vec::new(), Vec::new());
    for (i, run) in runs.iter().enumerate().filter(|(_, r)| shows(&r.spec)) {
        let points: Vec<Option<&PointStats>> = run.points.iter().map(Some).collect();
        let name = run_title(run);
        curves_out.extend(curves(&run.spec, &points, metric, |_| palette.run(i), Some(&name)));
        marks.extend(capacity_mark(&run.spec, &points, run.status.ended_early(), Some(&name)));
    }
    let open_loop = runs.iter().any(|r| r.spec.open_loop());
    draw::ThroughputChart {
        y_desc: y_desc(metric, open_loop),
        y_scale,
        curves: curves_out,
        capacity: marks,
        empty_note: "no run has load levels",
    }
}

/// A capacity search's answer in words, for the run's headline; `None` for other runs.
pub fn headline(run: &LiveRun) -> Option<String> {
    let search = run.spec.capacity?;
    Some(Capacity::of_run(&run.spec, run.points.iter().map(Option::as_ref), ended_early(run))?.headline(&search))
}

/// Whether a live run stopped before its end.
fn ended_early(run: &LiveRun) -> bool {
    run.status.as_ref().is_some_and(shared::RunStatus::ended_early)
}

/// A latency metric against achieved throughput, redrawn whenever `chart` changes.
#[component]
pub fn ThroughputChart(
    /// Which metric.
    metric: Metric,
    /// What to draw.
    #[prop(into)]
    chart: Signal<draw::ThroughputChart>,
    /// The stem of the chart's file names.
    #[prop(into)]
    stem: Signal<String>,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    let failure = RwSignal::new(None::<String>);
    redrawn(move || {
        let Some(canvas) = canvas.get() else { return };
        let palette = palette();
        let drawn = chart.with(|chart| {
            // What is drawn, for tools that read the chart: the points per curve, the marks.
            let points: Vec<String> = chart.curves.iter().map(|c| c.points.len().to_string()).collect();
            let _ = canvas.set_attribute("data-points", &points.join(","));
            let marks: Vec<&str> = chart.capacity.iter().map(|c| c.1.as_str()).collect();
            let _ = canvas.set_attribute("data-capacity", &marks.join("; "));
            let behind = chart.curves.iter().map(|c| c.behind.iter().filter(|b| **b).count()).sum::<usize>();
            let _ = canvas.set_attribute("data-behind", &behind.to_string());
            draw::on_canvas(&canvas, &palette, |root, dpr| draw::throughput(root, chart, &palette, dpr))
        });
        failure.set(drawn.err());
    });
    let key = match metric {
        Metric::Ttft => "ttft-throughput",
        Metric::T2t => "t2t-throughput",
    };
    let svg = Callback::new(move |()| {
        let palette = palette();
        chart.with_untracked(|chart| draw::throughput_svg(chart, &palette))
    });
    view! {
        <figure class="chart" data-chart=key>
            <figcaption>
                {metric.title()} " against throughput "
                <a class="define" href=format!("#{}", metric_anchor(metric.key())) title="What this metric means">"definition"</a>
                <ExportButtons key=key canvas=canvas stem=stem svg=svg/>
                <span class="legend">"p50 ● · p99 ■ · one line per prompt length, in load order"</span>
            </figcaption>
            <div class="canvas-box">
                <canvas node_ref=canvas id=format!("chart-{key}")/>
            </div>
            {move || failure.get().map(|f| view! { <p class="error">{f}</p> })}
        </figure>
    }
}

/// The latency-throughput charts as SVG for a report, for the metrics `charts` shows.
pub fn report_charts(
    charts: crate::view::Charts,
    build: impl Fn(Metric, &Palette) -> draw::ThroughputChart,
) -> Result<Vec<crate::report::ReportChart>, String> {
    let palette = Palette::LIGHT;
    Metric::ALL
        .into_iter()
        .filter(|&metric| crate::components::charts::shows(charts, metric))
        .map(|metric| {
            let chart = build(metric, &palette);
            let svg = draw::throughput_svg(&chart, &palette)?;
            Ok(crate::report::ReportChart {
                key: format!("{}-throughput", metric.key()),
                caption: format!("{} against achieved throughput, one line per prompt length", metric.title()),
                svg,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use shared::capacity::CapacitySearch;
    use shared::goodput::{Goodput, Slo};

    use super::*;

    fn point(length: u32, load: LoadLevel, tokens_per_s: f64, ttft: f64, share: f64) -> PointStats {
        let summary = Summary::of(&mut [ttft, ttft, ttft * 2.0]).unwrap();
        PointStats {
            prompt_length: length,
            load: Some(load),
            output_tokens_per_s: tokens_per_s,
            ttft_intended_ms: Some(summary.clone()),
            ttft_ms: Some(summary),
            goodput: Some(Goodput { met: 0, measured: 10, share, requests_per_s: 0.0 }),
            ..PointStats::default()
        }
    }

    #[test]
    fn a_curve_per_prompt_length_in_load_order() {
        let spec = SweepSpec { prompt_lengths: vec![16, 256], request_rates: vec![1.0, 2.0], ..SweepSpec::default() };
        let rate = LoadLevel::Rate;
        let late =
            PointStats { schedule_lag_ms: Summary::of(&mut [4.0, 6.0]), ..point(16, rate(2.0), 200.0, 12.0, 1.0) };
        let points = [
            Some(late),
            Some(point(16, rate(1.0), 100.0, 10.0, 1.0)),
            Some(point(256, rate(1.0), 90.0, 30.0, 1.0)),
            None,
        ];
        let points: Vec<Option<&PointStats>> = points.iter().map(Option::as_ref).collect();
        let palette = Palette::LIGHT;
        let drawn = curves(&spec, &points, Metric::Ttft, |i| palette.run(i), None);
        assert_eq!(drawn.len(), 2);
        assert_eq!(drawn[0].label, "prompt 16");
        let p99 = |ttft: f64| Summary::of(&mut [ttft, ttft, ttft * 2.0]).unwrap().p99;
        assert_eq!(drawn[0].points, vec![(100.0, 10.0, p99(10.0)), (200.0, 12.0, p99(12.0))]);
        assert_eq!(drawn[1].points, vec![(90.0, 30.0, p99(30.0))]);
        assert_eq!(drawn[0].behind, [false, true], "the client fell behind at 2 req/s");
        let chart = draw::ThroughputChart {
            y_desc: "TTFT (ms)",
            y_scale: YScale::Linear,
            curves: drawn,
            capacity: Vec::new(),
            empty_note: "none",
        };
        let svg = draw::throughput_svg(&chart, &palette).unwrap();
        assert!(svg.contains("ringed: the client fell behind its schedule"), "the chart says what the ring means");
        assert!(curves(&spec, &points, Metric::T2t, |i| palette.run(i), None).is_empty(), "no token-to-token samples");
        assert!(shows(&spec) && !shows(&SweepSpec::default()));
    }

    #[test]
    fn a_comparison_draws_each_runs_curves_in_its_colour() {
        let summary = |id: &str, spec: SweepSpec, points: Vec<PointStats>| RunSummary {
            spec,
            points,
            ..crate::view::blank_run(id)
        };

        let rates = SweepSpec { prompt_lengths: vec![16], request_rates: vec![1.0, 2.0], ..SweepSpec::default() };
        let rate = LoadLevel::Rate;
        let runs = [
            summary(
                "a",
                rates.clone(),
                vec![point(16, rate(1.0), 10.0, 5.0, 1.0), point(16, rate(2.0), 20.0, 6.0, 1.0)],
            ),
            summary("plain", SweepSpec::default(), vec![point(16, LoadLevel::Concurrency(1), 9.0, 4.0, 1.0)]),
            summary("b", rates, vec![point(16, rate(1.0), 11.0, 7.0, 1.0)]),
        ];
        let chart = compare_chart(&runs, Metric::Ttft, YScale::Linear, &Palette::LIGHT);
        let labels: Vec<&str> = chart.curves.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["a", "b"], "a run without load levels is left out");
        assert_eq!(chart.curves[0].colour, Palette::LIGHT.run(0));
        assert_eq!(chart.curves[1].colour, Palette::LIGHT.run(2), "each run keeps its colour of the legend");
        assert_eq!(chart.curves[0].points.len(), 2);
    }

    #[test]
    fn the_capacity_is_marked_at_the_passing_probes_throughput() {
        let spec = SweepSpec {
            prompt_lengths: vec![16],
            request_rates: vec![10.0, 20.0, 15.0],
            capacity: Some(CapacitySearch::default()),
            slo: Some(Slo { ttft_ms: Some(50.0), ..Slo::default() }),
            ..SweepSpec::default()
        };
        let rate = LoadLevel::Rate;
        let points = vec![
            Some(point(16, rate(10.0), 100.0, 10.0, 1.0)),
            Some(point(16, rate(20.0), 150.0, 90.0, 0.4)),
            Some(point(16, rate(15.0), 140.0, 20.0, 0.995)),
        ];
        let refs: Vec<Option<&PointStats>> = points.iter().map(Option::as_ref).collect();
        assert_eq!(capacity_mark(&spec, &refs, false, None), Some((140.0, "capacity 15.0 req/s".into())));
        // A run cut short settled its last point with what had finished: no probe.
        assert_eq!(capacity_mark(&spec, &refs, true, None), Some((100.0, "capacity 10.0 req/s".into())));
        let run = LiveRun { spec, points, ..LiveRun::default() };
        let words = headline(&run).unwrap();
        assert!(words.starts_with("capacity between 15.0 and 20.0 req/s at 99% goodput so far"), "{words}");
        let chart = run_chart(&run, Metric::Ttft, YScale::Linear, &Palette::LIGHT);
        let svg = draw::to_svg(draw::EXPORT_SIZE, &Palette::LIGHT, |root| {
            draw::throughput(root, &chart, &Palette::LIGHT, 1.0).map(drop)
        })
        .unwrap();
        for text in
            ["achieved output tokens/s", "TTFT from the intended send (ms)", "capacity 15.0 req/s", "p50", "p99"]
        {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
    }
}
