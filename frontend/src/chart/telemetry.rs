//! The server's metrics as chart lines: which metric a chart shows first, the time window it
//! covers, its values as line segments broken wherever nothing is known, and the spans of
//! failed scrapes, all pure so that they are tested natively.

use shared::LiveRun;
use shared::telemetry::{Family, MetricKind, SeriesHead, Telemetry};

use super::{Palette, Rgb};

/// The most series one chart of a run draws; a family with more is cut, and says so.
pub const MAX_LINES: usize = 6;

/// The most series of one family the metric list offers one by one.
pub const MAX_LISTED_SERIES: usize = 64;

/// The families that tell first whether requests wait at the server, in order of preference.
const QUEUE_FAMILIES: [&str; 2] = ["nv_inference_pending_request_count", "vllm:num_requests_waiting"];

/// The family a chart falls back to when the server exposes no queue.
const GPU_FAMILY: &str = "nv_gpu_utilization";

/// What a server-metrics chart shows: a whole family, or one series of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    Family(String),
    /// A series by its number in the run's telemetry.
    Series(u32),
}

impl Pick {
    /// Its value in the metric list.
    pub fn key(&self) -> String {
        match self {
            Pick::Family(name) => format!("family:{name}"),
            Pick::Series(n) => format!("series:{n}"),
        }
    }

    /// The pick a list value names; `None` for anything else.
    pub fn parse(key: &str) -> Option<Pick> {
        if let Some(name) = key.strip_prefix("family:") {
            return Some(Pick::Family(name.to_string()));
        }
        key.strip_prefix("series:")?.parse().ok().map(Pick::Series)
    }

    /// Whether `telemetry` has what it names.
    pub fn exists(&self, telemetry: &Telemetry) -> bool {
        match self {
            Pick::Family(name) => telemetry.series.iter().any(|s| &s.head.family == name),
            Pick::Series(n) => (*n as usize) < telemetry.series.len(),
        }
    }
}

/// One entry of the metric list: its value and its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricOption {
    pub key: String,
    pub text: String,
}

/// The families a run's telemetry holds, in the order first seen, each with its series: as
/// [`Telemetry::families`] gives them, without the hash map that would add its hasher to the
/// page. Series of a family mostly come one after another, so the last family is tried first.
pub fn families(telemetry: &Telemetry) -> Vec<Family> {
    let mut out: Vec<Family> = Vec::new();
    for (n, series) in telemetry.series.iter().enumerate() {
        let name = &series.head.family;
        let at = match out.last().filter(|f| &f.name == name) {
            Some(_) => Some(out.len() - 1),
            None => out.iter().position(|f| &f.name == name),
        };
        match at {
            Some(i) => out[i].series.push(n as u32),
            None => out.push(Family { name: name.clone(), kind: series.head.kind, series: vec![n as u32] }),
        }
    }
    out
}

/// Whether a family of this kind is drawn as a rate per second.
fn cumulative_kind(kind: MetricKind) -> bool {
    matches!(kind, MetricKind::Counter | MetricKind::Histogram | MetricKind::Summary)
}

/// The metric list: each family, followed by its series one by one when it has several
/// (at most [`MAX_LISTED_SERIES`] of them).
pub fn options(telemetry: &Telemetry) -> Vec<MetricOption> {
    let mut out = Vec::new();
    for family in families(telemetry) {
        let rate = if cumulative_kind(family.kind) { " (per second)" } else { "" };
        let several = family.series.len() > 1;
        let count = if several { format!(" · {} series", family.series.len()) } else { String::new() };
        out.push(MetricOption {
            key: Pick::Family(family.name.clone()).key(),
            text: format!("{}{rate}{count}", family.name),
        });
        if several {
            for &n in family.series.iter().take(MAX_LISTED_SERIES) {
                let head = &telemetry.series[n as usize].head;
                out.push(MetricOption { key: Pick::Series(n).key(), text: format!("\u{2003}{}", head.display()) });
            }
        }
    }
    out
}

/// The family a chart shows first: the server's queue (Triton's pending requests, else
/// vLLM's waiting ones), else GPU utilisation, else the first gauge, else the first family.
pub fn default_family(families: &[Family]) -> Option<&Family> {
    let named = |name: &str| families.iter().find(|f| f.name == name);
    QUEUE_FAMILIES
        .into_iter()
        .find_map(named)
        .or_else(|| named(GPU_FAMILY))
        .or_else(|| families.iter().find(|f| f.kind == MetricKind::Gauge))
        .or_else(|| families.first())
}

/// The pick a run's chart shows first, if the run read any metric.
pub fn default_pick(telemetry: &Telemetry) -> Option<Pick> {
    default_family(&families(telemetry)).map(|f| Pick::Family(f.name.clone()))
}

/// The pick `key` names if the telemetry has it, else the default.
pub fn chosen_pick(telemetry: &Telemetry, key: Option<&str>) -> Option<Pick> {
    key.and_then(Pick::parse).filter(|p| p.exists(telemetry)).or_else(|| default_pick(telemetry))
}

/// The series a family is drawn with: a histogram's or summary's counts (observations per
/// second), since its buckets, sums and counts share no unit; any other family's every series.
pub fn family_series(telemetry: &Telemetry, family: &Family) -> Vec<u32> {
    if matches!(family.kind, MetricKind::Histogram | MetricKind::Summary) {
        let count = format!("{}_count", family.name);
        let counts: Vec<u32> =
            family.series.iter().copied().filter(|&n| telemetry.series[n as usize].head.name == count).collect();
        if !counts.is_empty() {
            return counts;
        }
    }
    family.series.clone()
}

/// A series as a chart draws it: a cumulative one's rate per second, any other's values.
pub fn values(telemetry: &Telemetry, series: u32) -> Vec<(u64, Option<f64>)> {
    match telemetry.series.get(series as usize) {
        Some(s) if s.head.cumulative() => telemetry.rate(series),
        Some(_) => telemetry.samples(series),
        None => Vec::new(),
    }
}

/// Whether a family's series are shares (utilisation, a cache's use), which combine into
/// their mean; other families' series add up.
pub fn averaged(family: &str) -> bool {
    family.contains("utilization") || family.ends_with("_perc") || family.ends_with("_ratio")
}

/// Several series' values, one per scrape alike, combined at each scrape into their sum or
/// mean over those known there; `None` where none is.
pub fn combined(lines: &[Vec<(u64, Option<f64>)>], mean: bool) -> Vec<(u64, Option<f64>)> {
    let Some(first) = lines.first() else { return Vec::new() };
    (0..first.len())
        .map(|i| {
            let known: Vec<f64> = lines.iter().filter_map(|l| l.get(i).and_then(|v| v.1)).collect();
            let value = (!known.is_empty()).then(|| {
                let sum: f64 = known.iter().sum();
                if mean { sum / known.len() as f64 } else { sum }
            });
            (first[i].0, value)
        })
        .collect()
}

/// Values inside `range` (seconds since the run's start) as line segments, broken at every
/// value that is not known: a failed scrape is never drawn as a zero.
pub fn segments(values: &[(u64, Option<f64>)], range: (f64, f64)) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut open = false;
    for &(at, value) in values {
        let x = at as f64 / 1e6;
        match value.filter(|v| v.is_finite()) {
            Some(v) if x >= range.0 && x <= range.1 => {
                if !open {
                    out.push(Vec::new());
                    open = true;
                }
                if let Some(segment) = out.last_mut() {
                    segment.push((x, v));
                }
            }
            _ => open = false,
        }
    }
    out
}

/// The spans of failed scrapes inside `range`, seconds since the run's start: from each run of
/// failures to the next scrape (or one interval on, after the last), cut to the range.
pub fn gap_spans(telemetry: &Telemetry, range: (f64, f64)) -> Vec<(f64, f64)> {
    let scrapes = &telemetry.scrapes;
    let mut spans: Vec<(f64, f64)> = Vec::new();
    let mut i = 0;
    while i < scrapes.len() {
        if scrapes[i].error.is_none() {
            i += 1;
            continue;
        }
        let from = scrapes[i].at_us;
        while i < scrapes.len() && scrapes[i].error.is_some() {
            i += 1;
        }
        let to = scrapes
            .get(i)
            .map_or_else(|| scrapes[i - 1].at_us + u64::from(telemetry.interval_ms.max(1)) * 1000, |next| next.at_us);
        let (from, to) = ((from as f64 / 1e6).max(range.0), (to as f64 / 1e6).min(range.1));
        if to > from {
            spans.push((from, to));
        }
    }
    spans
}

/// The reasons scrapes failed inside `range`, each once with how many times, most frequent
/// first, and the number of failures.
pub fn failures_within(telemetry: &Telemetry, range: (f64, f64)) -> (usize, Vec<(String, usize)>) {
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut total = 0;
    for scrape in &telemetry.scrapes {
        let x = scrape.at_us as f64 / 1e6;
        let Some(reason) = scrape.error.as_deref().filter(|_| x >= range.0 && x <= range.1) else { continue };
        total += 1;
        match counts.iter_mut().find(|(r, _)| r == reason) {
            Some((_, n)) => *n += 1,
            None => counts.push((reason.to_string(), 1)),
        }
    }
    // Most frequent first, stably; a few reasons at most, so the page carries no sort for it.
    for i in 1..counts.len() {
        let mut j = i;
        while j > 0 && counts[j - 1].1 < counts[j].1 {
            counts.swap(j - 1, j);
            j -= 1;
        }
    }
    (total, counts)
}

/// Failed scrapes in words: `3 scrapes failed: 2× connection refused; 1× timed out`, or
/// `None` when none did.
pub fn gaps_text(total: usize, reasons: &[(String, usize)]) -> Option<String> {
    if total == 0 {
        return None;
    }
    let noun = if total == 1 { "scrape" } else { "scrapes" };
    let listed: Vec<String> = reasons.iter().map(|(r, n)| format!("{n}× {r}")).collect();
    Some(format!("{total} {noun} failed and show as gaps: {}", listed.join("; ")))
}

/// The time a point's measured requests took, microseconds since the run's start: from the
/// first send to the last token (or send) of its requests after the warm-up.
pub fn measured_window(run: &LiveRun, point: u32) -> Option<(u64, u64)> {
    let per_point = run.spec.requests_per_point() as usize;
    let start = point as usize * per_point + run.spec.warmup as usize;
    let end = ((point as usize + 1) * per_point).min(run.requests.len());
    let measured = run.requests.get(start..end)?;
    let from = measured.iter().filter_map(|r| r.sent_us).min()?;
    let to = measured.iter().flat_map(|r| r.sent_us.into_iter().chain(r.tokens.iter().map(|t| t.0))).max();
    Some((from, to.unwrap_or(from).max(from)))
}

/// The whole run so far, microseconds since its start: to the latest event or scrape.
pub fn run_window(run: &LiveRun) -> (u64, u64) {
    let scraped = run.telemetry.as_ref().and_then(|t| t.scrapes.last()).map_or(0, |s| s.at_us);
    (0, run.latest_us.max(scraped))
}

/// A time axis's range in seconds for a window in microseconds: the window with a little
/// room on both sides, never before the run's start; a second when it is empty.
pub fn time_range(window: (u64, u64)) -> (f64, f64) {
    let (from, to) = (window.0 as f64 / 1e6, window.1 as f64 / 1e6);
    if to <= from {
        return ((from - 0.5).max(0.0), (from - 0.5).max(0.0) + 1.0);
    }
    let pad = (to - from) * 0.02;
    ((from - pad).max(0.0), to + pad)
}

/// The vertical range that shows every value: from zero (or the lowest value below it) to a
/// little above the highest.
pub fn value_range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let lo = lo.min(0.0);
    if hi <= lo {
        return (lo, lo + 1.0);
    }
    (lo, hi + (hi - lo) * 0.12)
}

/// Each series' name in a legend: the labels that tell it from the others (its name when
/// none do).
pub fn legend_labels(heads: &[&SeriesHead]) -> Vec<String> {
    let differs = |key: &str| {
        let first = heads.first().and_then(|h| h.label(key));
        heads.iter().any(|h| h.label(key) != first)
    };
    heads
        .iter()
        .map(|head| {
            let parts: Vec<String> =
                head.labels.iter().filter(|(k, _)| differs(k)).map(|(k, v)| format!("{k}={v}")).collect();
            if parts.is_empty() { head.name.clone() } else { parts.join(", ") }
        })
        .collect()
}

/// One line of a server-metrics chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its name in the legend.
    pub label: String,
    pub colour: Rgb,
    /// Its values, seconds since the run's start against the metric, broken at gaps.
    pub segments: Vec<Vec<(f64, f64)>>,
}

/// A span of failed scrapes, seconds since the run's start, shaded in `colour`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    pub from: f64,
    pub to: f64,
    pub colour: Rgb,
}

/// A chart of server metrics over time, as the drawing takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryChart {
    /// Seconds since the run's start.
    pub x_range: (f64, f64),
    pub y_desc: String,
    pub lines: Vec<Line>,
    pub gaps: Vec<Gap>,
    /// Whether the lines are named in a legend.
    pub legend: bool,
    /// Shown in the middle of the chart when no line has a value.
    pub empty_note: String,
    /// Shown in a corner: what the chart leaves out or stands in for.
    pub note: Option<String>,
    /// Whether a drawn series is the simulator's stand-in for a GPU (`simulated="true"`).
    pub simulated: bool,
}

impl TelemetryChart {
    /// Values drawn, line by line.
    pub fn point_counts(&self) -> Vec<usize> {
        self.lines.iter().map(|l| l.segments.iter().map(Vec::len).sum()).collect()
    }
}

/// A run's chart of `pick` over `range` (seconds since the run's start): one line per
/// series, the first [`MAX_LINES`] of a family, failed scrapes shaded; without a pick (no
/// series read yet), the gaps alone and why there is nothing else.
pub fn run_chart(telemetry: &Telemetry, pick: Option<&Pick>, range: (f64, f64), palette: &Palette) -> TelemetryChart {
    let (drawn, family, cut) = match pick {
        None => (Vec::new(), String::new(), 0),
        Some(Pick::Series(n)) => {
            let family = telemetry.series.get(*n as usize).map(|s| s.head.family.clone()).unwrap_or_default();
            (vec![*n], family, 0)
        }
        Some(Pick::Family(name)) => {
            let all = families(telemetry)
                .into_iter()
                .find(|f| &f.name == name)
                .map(|f| family_series(telemetry, &f))
                .unwrap_or_default();
            let cut = all.len().saturating_sub(MAX_LINES);
            (all.into_iter().take(MAX_LINES).collect::<Vec<u32>>(), name.clone(), cut)
        }
    };
    let heads: Vec<&SeriesHead> =
        drawn.iter().filter_map(|&n| telemetry.series.get(n as usize)).map(|s| &s.head).collect();
    let labels = legend_labels(&heads);
    let lines: Vec<Line> = drawn
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (&n, label))| Line {
            label,
            colour: if i == 0 { palette.line } else { palette.run(i) },
            segments: segments(&values(telemetry, n), range),
        })
        .collect();
    let first_name = heads.first().map(|h| h.name.clone());
    let name = match &first_name {
        Some(first) if heads.iter().all(|h| &h.name == first) => first.clone(),
        _ => family,
    };
    let per_second = heads.first().is_some_and(|h| h.cumulative());
    let simulated = heads.iter().any(|h| h.label("simulated") == Some("true"));
    let mut notes = Vec::new();
    if simulated {
        notes.push("simulated: the simulator's stand-in, not a GPU's".to_string());
    }
    if cut > 0 {
        notes.push(format!("the first {MAX_LINES} of {} series; pick one in the list", cut + MAX_LINES));
    }
    let empty_note = if telemetry.scrapes.is_empty() {
        "waiting for the first scrape of the server's metrics"
    } else if telemetry.series.is_empty() {
        "no scrape has answered with metrics yet"
    } else {
        "no value of this metric in this time"
    };
    TelemetryChart {
        x_range: range,
        y_desc: if per_second { format!("{name} /s") } else { name },
        legend: lines.len() > 1,
        lines,
        gaps: gap_spans(telemetry, range)
            .into_iter()
            .map(|(from, to)| Gap { from, to, colour: palette.error })
            .collect(),
        empty_note: empty_note.into(),
        note: (!notes.is_empty()).then(|| notes.join(" · ")),
        simulated,
    }
}

/// The families of several runs' telemetry, each once, in the order first seen.
pub fn shared_families<'a>(runs: impl IntoIterator<Item = &'a Telemetry>) -> Vec<Family> {
    let mut out: Vec<Family> = Vec::new();
    for telemetry in runs {
        for family in families(telemetry) {
            if !out.iter().any(|f| f.name == family.name) {
                out.push(Family { series: Vec::new(), ..family });
            }
        }
    }
    out
}

/// Several runs' `family` overlaid, x in seconds since each run's start: one line per run
/// in its colour (`runs` give each its colour's index, its name and its telemetry), its
/// series added up (averaged for shares); a run without the family says so in the legend.
pub fn compare_chart(runs: &[(usize, String, &Telemetry)], family: &str, palette: &Palette) -> TelemetryChart {
    let end = runs.iter().filter_map(|(_, _, t)| t.scrapes.last()).map(|s| s.at_us).max().unwrap_or(0);
    let range = time_range((0, end));
    let mut lines = Vec::new();
    let mut gaps = Vec::new();
    let mut per_second = false;
    let mut simulated = false;
    for (colour, label, telemetry) in runs {
        let colour = palette.run(*colour);
        let found = families(telemetry).into_iter().find(|f| f.name == family);
        let segments = found.map_or_else(Vec::new, |found| {
            let drawn = family_series(telemetry, &found);
            let heads: Vec<&SeriesHead> = drawn.iter().map(|&n| &telemetry.series[n as usize].head).collect();
            per_second |= heads.iter().any(|h| h.cumulative());
            simulated |= heads.iter().any(|h| h.label("simulated") == Some("true"));
            let each: Vec<Vec<(u64, Option<f64>)>> = drawn.iter().map(|&n| values(telemetry, n)).collect();
            segments(&combined(&each, averaged(family)), range)
        });
        let label = if segments.is_empty() { format!("{label} (no values)") } else { label.clone() };
        gaps.extend(gap_spans(telemetry, range).into_iter().map(|(from, to)| Gap { from, to, colour }));
        lines.push(Line { label, colour, segments });
    }
    let how = if averaged(family) { "mean" } else { "sum" };
    TelemetryChart {
        x_range: range,
        y_desc: if per_second {
            format!("{family} /s ({how} over series)")
        } else {
            format!("{family} ({how} over series)")
        },
        legend: true,
        lines,
        gaps,
        empty_note: "no compared run read this metric".into(),
        note: simulated.then(|| "simulated: the simulator's stand-in, not a GPU's".to_string()),
        simulated,
    }
}

#[cfg(test)]
mod tests {
    use shared::SweepSpec;
    use shared::live::{LiveRequest, RunEvent};
    use shared::telemetry::{Recorder, Sample};

    use super::*;

    fn sample(name: &str, family: &str, kind: MetricKind, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            family: family.into(),
            kind,
            labels: labels.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
            value,
        }
    }

    /// Four scrapes half a second apart, the third failed: a queue per model, GPUs, a counter
    /// and a histogram.
    fn telemetry() -> Telemetry {
        let mut recorder = Recorder::new("http://h:8002/metrics", 500);
        for i in 0..4u64 {
            let at = i * 500_000;
            if i == 2 {
                recorder.record(at, 1, Err("connection refused".into()));
                continue;
            }
            let v = i as f64;
            let gauge = MetricKind::Gauge;
            recorder.record(
                at,
                1,
                Ok(vec![
                    sample(
                        "nv_gpu_utilization",
                        "nv_gpu_utilization",
                        gauge,
                        &[("gpu_uuid", "A"), ("simulated", "true")],
                        0.5,
                    ),
                    sample(
                        "nv_inference_pending_request_count",
                        "nv_inference_pending_request_count",
                        gauge,
                        &[("model", "m")],
                        v,
                    ),
                    sample(
                        "nv_inference_pending_request_count",
                        "nv_inference_pending_request_count",
                        gauge,
                        &[("model", "n")],
                        1.0,
                    ),
                    sample("nv_inference_count", "nv_inference_count", MetricKind::Counter, &[], v * 10.0),
                    sample("lat_bucket", "lat", MetricKind::Histogram, &[("le", "1")], v),
                    sample("lat_sum", "lat", MetricKind::Histogram, &[], v * 3.0),
                    sample("lat_count", "lat", MetricKind::Histogram, &[], v * 2.0),
                ]),
            );
        }
        recorder.into_telemetry()
    }

    #[test]
    fn the_queue_is_shown_first_then_the_gpu_then_a_gauge() {
        let t = telemetry();
        assert_eq!(default_pick(&t), Some(Pick::Family("nv_inference_pending_request_count".into())));
        let family = |name: &str, kind| Family { name: name.into(), kind, series: Vec::new() };
        let gpu = [family("c", MetricKind::Counter), family("nv_gpu_utilization", MetricKind::Gauge)];
        assert_eq!(default_family(&gpu).unwrap().name, "nv_gpu_utilization");
        let vllm =
            [family("nv_gpu_utilization", MetricKind::Gauge), family("vllm:num_requests_waiting", MetricKind::Gauge)];
        assert_eq!(default_family(&vllm).unwrap().name, "vllm:num_requests_waiting");
        let plain = [family("c", MetricKind::Counter), family("g", MetricKind::Gauge)];
        assert_eq!(default_family(&plain).unwrap().name, "g");
        assert_eq!(default_family(&plain[..1]).unwrap().name, "c");
        assert_eq!(default_family(&[]), None);
        // A pick the run does not have falls back to the default.
        assert_eq!(chosen_pick(&t, Some("series:99")), default_pick(&t));
        assert_eq!(chosen_pick(&t, Some("series:3")), Some(Pick::Series(3)));
        assert_eq!(Pick::parse(&Pick::Family("vllm:x".into()).key()), Some(Pick::Family("vllm:x".into())));
        assert_eq!(Pick::parse("junk"), None);
    }

    #[test]
    fn families_are_those_the_telemetry_gives() {
        let t = telemetry();
        assert_eq!(families(&t), t.families());
        let (_, reasons) = failures_within(&t, (0.0, 10.0));
        assert_eq!(reasons, t.failure_reasons());
    }

    #[test]
    fn the_list_names_families_then_their_series() {
        let texts: Vec<String> = options(&telemetry()).into_iter().map(|o| o.text).collect();
        assert_eq!(texts[0], "nv_gpu_utilization");
        assert_eq!(texts[1], "nv_inference_pending_request_count · 2 series");
        assert!(texts[2].ends_with("nv_inference_pending_request_count{model=\"m\"}"), "{texts:?}");
        assert!(texts.contains(&"nv_inference_count (per second)".to_string()), "{texts:?}");
        assert!(texts.contains(&"lat (per second) · 3 series".to_string()), "{texts:?}");
    }

    #[test]
    fn failed_scrapes_are_gaps_never_zeros() {
        let t = telemetry();
        let queue = 1; // model m's pending requests: 0, 1, failed, 3
        let lines = segments(&values(&t, queue), (0.0, 10.0));
        assert_eq!(lines, vec![vec![(0.0, 0.0), (0.5, 1.0)], vec![(1.5, 3.0)]]);
        // Only what lies inside the range.
        assert_eq!(segments(&values(&t, queue), (0.4, 1.0)), vec![vec![(0.5, 1.0)]]);
        // The counter as a rate: 20/s, then nothing across the failure.
        let rates = segments(&values(&t, 3), (0.0, 10.0));
        assert_eq!(rates, vec![vec![(0.5, 20.0)]]);
        assert_eq!(gap_spans(&t, (0.0, 10.0)), vec![(1.0, 1.5)]);
        assert_eq!(gap_spans(&t, (1.2, 10.0)), vec![(1.2, 1.5)]);
        assert!(gap_spans(&t, (0.0, 0.9)).is_empty());
        let (total, reasons) = failures_within(&t, (0.0, 10.0));
        assert_eq!(gaps_text(total, &reasons).unwrap(), "1 scrape failed and show as gaps: 1× connection refused");
        assert_eq!(failures_within(&t, (0.0, 0.9)).0, 0);
        assert_eq!(gaps_text(0, &[]), None);
    }

    #[test]
    fn a_last_failure_spans_one_interval() {
        let mut recorder = Recorder::new("u", 250);
        recorder.record(0, 1, Ok(Vec::new()));
        recorder.record(250_000, 1, Err("timed out".into()));
        recorder.record(500_000, 1, Err("timed out".into()));
        assert_eq!(gap_spans(recorder.telemetry(), (0.0, 10.0)), vec![(0.25, 0.75)]);
    }

    #[test]
    fn a_family_draws_its_series_and_a_histogram_its_counts() {
        let t = telemetry();
        let palette = Palette::LIGHT;
        let queue =
            run_chart(&t, Some(&Pick::Family("nv_inference_pending_request_count".into())), (0.0, 2.0), &palette);
        assert_eq!(queue.lines.len(), 2);
        assert_eq!((queue.lines[0].label.as_str(), queue.lines[1].label.as_str()), ("model=m", "model=n"));
        assert_eq!(queue.lines[0].colour, palette.line);
        assert!(queue.legend && !queue.simulated);
        assert_eq!(queue.y_desc, "nv_inference_pending_request_count");
        assert_eq!(queue.gaps, vec![Gap { from: 1.0, to: 1.5, colour: palette.error }]);
        assert_eq!(queue.point_counts(), vec![3, 3]);
        let lat = run_chart(&t, Some(&Pick::Family("lat".into())), (0.0, 2.0), &palette);
        assert_eq!(lat.lines.len(), 1, "the count only");
        assert_eq!(lat.y_desc, "lat_count /s");
        assert!(!lat.legend);
        let gpu = run_chart(&t, Some(&Pick::Family("nv_gpu_utilization".into())), (0.0, 2.0), &palette);
        assert!(gpu.simulated && gpu.note.as_deref().unwrap().contains("stand-in"));
        let one = run_chart(&t, Some(&Pick::Series(4)), (0.0, 2.0), &palette);
        assert_eq!(one.y_desc, "lat_bucket /s");
        assert!(run_chart(&Telemetry::default(), None, (0.0, 1.0), &palette).empty_note.contains("first scrape"));
    }

    #[test]
    fn a_wide_family_is_cut_and_says_so() {
        let mut recorder = Recorder::new("u", 250);
        let many: Vec<Sample> =
            (0..9).map(|i| sample("g", "g", MetricKind::Gauge, &[("i", &i.to_string())], 1.0)).collect();
        recorder.record(0, 1, Ok(many));
        let chart = run_chart(recorder.telemetry(), Some(&Pick::Family("g".into())), (0.0, 1.0), &Palette::DARK);
        assert_eq!(chart.lines.len(), MAX_LINES);
        assert_eq!(chart.note.as_deref(), Some("the first 6 of 9 series; pick one in the list"));
    }

    #[test]
    fn runs_compare_one_line_each_summed_or_averaged() {
        let t = telemetry();
        let other = Telemetry::new("u", 250);
        let palette = Palette::LIGHT;
        let runs = [(0, "a".to_string(), &t), (1, "b".to_string(), &other)];
        let chart = compare_chart(&runs, "nv_inference_pending_request_count", &palette);
        assert_eq!(chart.lines.len(), 2);
        // Models m and n added up: 0+1, 1+1, gap, 3+1.
        assert_eq!(chart.lines[0].segments, vec![vec![(0.0, 1.0), (0.5, 2.0)], vec![(1.5, 4.0)]]);
        assert_eq!(chart.lines[1].label, "b (no values)");
        assert_eq!(chart.lines[1].colour, palette.run(1));
        assert_eq!(chart.y_desc, "nv_inference_pending_request_count (sum over series)");
        assert_eq!(chart.gaps.len(), 1);
        assert_eq!(chart.x_range, time_range((0, 1_500_000)));
        let gpu = compare_chart(&runs, "nv_gpu_utilization", &palette);
        assert!(gpu.y_desc.contains("mean") && gpu.simulated);
        assert_eq!(
            combined(&[vec![(0, Some(1.0)), (1, None)], vec![(0, Some(3.0)), (1, None)]], true),
            vec![(0, Some(2.0)), (1, None)]
        );
        let names: Vec<String> = shared_families([&t, &other, &t]).into_iter().map(|f| f.name).collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }

    #[test]
    fn a_points_window_is_its_measured_requests_time() {
        let spec = SweepSpec { prompt_lengths: vec![16, 32], requests: 2, warmup: 1, ..SweepSpec::default() };
        let mut run = LiveRun::from_events(&[RunEvent::Started {
            id: "r".into(),
            spec: Box::new(spec),
            started_unix_ns: 0,
            simulated: true,
        }]);
        let request = |sent: u64, tokens: &[u64]| LiveRequest {
            sent_us: Some(sent),
            tokens: tokens.iter().map(|&t| (t, 1)).collect(),
            done: None,
        };
        // Point 1: its warm-up (index 3) is left out; the last token ends it.
        run.requests[3] = request(1_000_000, &[9_000_000]);
        run.requests[4] = request(2_000_000, &[2_500_000, 3_000_000]);
        run.requests[5] = request(2_200_000, &[]);
        assert_eq!(measured_window(&run, 1), Some((2_000_000, 3_000_000)));
        assert_eq!(measured_window(&run, 0), None, "nothing sent yet");
        assert_eq!(measured_window(&run, 7), None);
        run.latest_us = 9_000_000;
        assert_eq!(run_window(&run), (0, 9_000_000));
        let (lo, hi) = time_range((2_000_000, 3_000_000));
        assert!((lo - 1.98).abs() < 1e-9 && (hi - 3.02).abs() < 1e-9, "{lo}..{hi}");
        assert_eq!(time_range((0, 0)), (0.0, 1.0));
        assert_eq!(time_range((0, 1_000_000)).0, 0.0, "never before the start");
    }

    #[test]
    fn values_fit_from_zero() {
        let near = |(lo, hi): (f64, f64), (a, b): (f64, f64)| (lo - a).abs() < 1e-9 && (hi - b).abs() < 1e-9;
        assert!(near(value_range([1.0, 10.0]), (0.0, 11.2)));
        assert_eq!(value_range([]), (0.0, 1.0));
        assert_eq!(value_range([0.0, 0.0]), (0.0, 1.0));
        assert!(near(value_range([-2.0, 2.0]), (-2.0, 2.48)));
        let head = |labels: &[(&str, &str)]| SeriesHead {
            name: "x".into(),
            family: "x".into(),
            kind: MetricKind::Gauge,
            labels: labels.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
        };
        let (a, b) = (head(&[("gpu", "0"), ("host", "h")]), head(&[("gpu", "1"), ("host", "h")]));
        assert_eq!(legend_labels(&[&a, &b]), vec!["gpu=0", "gpu=1"]);
        assert_eq!(legend_labels(&[&a]), vec!["x"]);
        assert!(averaged("nv_gpu_utilization") && averaged("vllm:gpu_cache_usage_perc") && !averaged("q"));
    }
}
