//! The server's own metrics over a run: Prometheus samples read from its metrics endpoint
//! while the run went, on the run's clock, so they line up with every token's arrival.
//!
//! A run keeps every scrape it tried (a failed one is a gap with its reason, never a zero)
//! and every series it saw. A series stores its value only where it changed: a value holds
//! until the next change, which keeps idle histogram buckets and constant gauges free. The
//! proxy sends each scrape as a [`TelemetryUpdate`], and the browser, the run store and the
//! report rebuild the same [`Telemetry`] from those updates with [`Telemetry::apply`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The series a run keeps; a server that exposes more has the rest counted, not kept.
pub const MAX_SERIES: usize = 4096;

/// The changed values a run keeps in all (16 bytes each in memory); later scrapes are
/// recorded as gaps with the reason.
pub const MAX_VALUES: usize = 4_000_000;

/// The longest reason kept for a failed scrape.
pub const MAX_REASON_BYTES: usize = 512;

/// The time between scrapes when the spec names none.
pub const DEFAULT_INTERVAL_MS: u32 = 250;

/// The shortest and longest time between scrapes a spec may ask for.
pub const INTERVAL_MS_RANGE: std::ops::RangeInclusive<u32> = 50..=60_000;

/// The port Triton serves its metrics on by default.
pub const TRITON_METRICS_PORT: u16 = 8002;

/// A Prometheus metric type, as the family's `# TYPE` line gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// One sample of a scrape, as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' name as exposed: a histogram's `_bucket`, `_sum` and `_count` are apart.
    pub name: String,
    /// The family it belongs to (the name less any such suffix).
    pub family: String,
    pub kind: MetricKind,
    /// Its labels, sorted by name.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// What identifies a series, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesHead {
    pub name: String,
    pub family: String,
    pub kind: MetricKind,
    /// Sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
}

impl SeriesHead {
    /// A label's value.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether its values only grow, so a rate per second means something: counters, and a
    /// histogram's or summary's buckets, sums and counts (not a summary's quantiles).
    pub fn cumulative(&self) -> bool {
        match self.kind {
            MetricKind::Counter => true,
            MetricKind::Histogram => true,
            MetricKind::Summary => self.label("quantile").is_none(),
            MetricKind::Gauge | MetricKind::Untyped => false,
        }
    }

    /// The series as Prometheus writes it: `name{label="value",...}`.
    pub fn display(&self) -> String {
        if self.labels.is_empty() {
            return self.name.clone();
        }
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

/// One series and the scrapes at which its value changed, written as its head's fields
/// beside `changes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "SeriesFields")]
pub struct Series {
    #[serde(flatten)]
    pub head: SeriesHead,
    /// `(scrape, value)` in scrape order, from the scrape it first appeared in: the value
    /// holds until the next entry. `None`: absent from that scrape, or not a finite number.
    pub changes: Vec<(u32, Option<f64>)>,
}

/// A [`Series`] as read: its head's fields side by side with `changes`, decoded once, where
/// serde's reading of a flattened field copies the fields into a buffer first.
#[derive(Deserialize)]
struct SeriesFields {
    name: String,
    family: String,
    kind: MetricKind,
    #[serde(default)]
    labels: Vec<(String, String)>,
    changes: Vec<(u32, Option<f64>)>,
}

impl From<SeriesFields> for Series {
    fn from(f: SeriesFields) -> Self {
        Series {
            head: SeriesHead { name: f.name, family: f.family, kind: f.kind, labels: f.labels },
            changes: f.changes,
        }
    }
}

impl Series {
    /// Its value at a scrape that succeeded: the last change at or before it.
    pub fn at(&self, scrape: u32) -> Option<f64> {
        let after = self.changes.partition_point(|&(s, _)| s <= scrape);
        after.checked_sub(1).and_then(|i| self.changes[i].1)
    }

    /// Its latest value.
    fn last(&self) -> Option<f64> {
        self.changes.last().and_then(|c| c.1)
    }
}

/// One scrape tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scrape {
    /// When it was sent, microseconds since the run's start: what its values are dated.
    pub at_us: u64,
    /// How long the answer took to arrive whole, microseconds.
    pub took_us: u64,
    /// Why it failed: nothing is known of the server at this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one scrape added: the proxy sends it live, and [`Telemetry::apply`] takes it in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TelemetryUpdate {
    pub scrape: Option<Scrape>,
    /// Series first seen in this scrape, numbered on from those before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_series: Vec<SeriesHead>,
    /// Values that changed at this scrape, by series number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<(u32, Option<f64>)>,
    /// Series left out at this scrape because the run keeps [`MAX_SERIES`] at most.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_series: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The server's metrics over a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Where they were read.
    pub url: String,
    /// The time asked for between scrapes, milliseconds.
    pub interval_ms: u32,
    /// Every scrape tried, in order.
    pub scrapes: Vec<Scrape>,
    /// Every series seen, in the order first seen.
    pub series: Vec<Series>,
    /// The most series left out of one scrape for want of room.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_series: u32,
}

/// A family of series, for a list of what a server exposes.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub kind: MetricKind,
    /// Its series' numbers.
    pub series: Vec<u32>,
}

/// Means over the scrapes inside a window (a point's measured requests, say), from the
/// families that say the most about where time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowSummary {
    /// Scrapes inside the window, and how many of them failed.
    pub scrapes: u32,
    pub failed: u32,
    /// GPU utilisation, 0 to 1, the mean over GPUs (`nv_gpu_utilization`).
    pub gpu_utilization: Option<f64>,
    /// Whether that utilisation is the simulator's stand-in.
    pub gpu_simulated: bool,
    /// The share of KV-cache in use, 0 to 1 (vLLM's `gpu_cache_usage_perc`).
    pub kv_cache_usage: Option<f64>,
    /// Requests waiting: Triton's pending requests of the model, or vLLM's waiting requests.
    pub queue_depth: Option<f64>,
}

impl Telemetry {
    pub fn new(url: impl Into<String>, interval_ms: u32) -> Telemetry {
        Telemetry { url: url.into(), interval_ms, ..Telemetry::default() }
    }

    /// The empty telemetry of a run of `spec`: its metrics address and interval.
    pub fn of_spec(spec: &crate::SweepSpec) -> Telemetry {
        Telemetry::new(spec.metrics_address().unwrap_or_default(), spec.metrics_interval_ms())
    }

    /// Takes in one scrape's update.
    pub fn apply(&mut self, update: &TelemetryUpdate) {
        let Some(scrape) = &update.scrape else { return };
        let index = self.scrapes.len() as u32;
        self.scrapes.push(scrape.clone());
        for head in &update.new_series {
            self.series.push(Series { head: head.clone(), changes: Vec::new() });
        }
        for &(series, value) in &update.values {
            if let Some(series) = self.series.get_mut(series as usize) {
                series.changes.push((index, value));
            }
        }
        self.dropped_series = self.dropped_series.max(update.dropped_series);
    }

    /// The updates that build this telemetry again, one per scrape, as the proxy sent them.
    pub fn updates(&self) -> Vec<TelemetryUpdate> {
        let mut updates: Vec<TelemetryUpdate> = self
            .scrapes
            .iter()
            .map(|scrape| TelemetryUpdate { scrape: Some(scrape.clone()), ..TelemetryUpdate::default() })
            .collect();
        for (number, series) in self.series.iter().enumerate() {
            // A series is numbered at the scrape of its first value.
            let first = series.changes.first().map_or(0, |c| c.0 as usize);
            if let Some(update) = updates.get_mut(first) {
                update.new_series.push(series.head.clone());
            }
            for &(scrape, value) in &series.changes {
                if let Some(update) = updates.get_mut(scrape as usize) {
                    update.values.push((number as u32, value));
                }
            }
        }
        if let Some(first) = updates.first_mut() {
            first.dropped_series = self.dropped_series;
        }
        updates
    }

    /// Changed values kept so far.
    pub fn values(&self) -> usize {
        self.series.iter().map(|s| s.changes.len()).sum()
    }

    /// Scrapes that failed.
    pub fn failures(&self) -> usize {
        self.scrapes.iter().filter(|s| s.error.is_some()).count()
    }

    /// A series' value at each scrape, as `(microseconds since the run's start, value)`:
    /// `None` where the scrape failed or the series was absent, so a chart draws a gap.
    pub fn samples(&self, series: u32) -> Vec<(u64, Option<f64>)> {
        let Some(series) = self.series.get(series as usize) else { return Vec::new() };
        let mut changes = series.changes.iter().peekable();
        let mut value = None;
        self.scrapes
            .iter()
            .enumerate()
            .map(|(i, scrape)| {
                while let Some(&&(at, v)) = changes.peek() {
                    if at as usize > i {
                        break;
                    }
                    value = v;
                    changes.next();
                }
                (scrape.at_us, if scrape.error.is_some() { None } else { value })
            })
            .collect()
    }

    /// A cumulative series' rate per second between each scrape and the one before, dated at
    /// the later: `None` after a failed scrape or an absence, and where the value went down
    /// (the server restarted), which a chart shows as a gap rather than a fall.
    pub fn rate(&self, series: u32) -> Vec<(u64, Option<f64>)> {
        let samples = self.samples(series);
        let mut out = Vec::with_capacity(samples.len());
        for (i, &(at, value)) in samples.iter().enumerate() {
            let rate = match (i.checked_sub(1).map(|j| samples[j]), value) {
                (Some((before_at, Some(before))), Some(now)) if now >= before && at > before_at => {
                    Some((now - before) / ((at - before_at) as f64 / 1e6))
                }
                _ => None,
            };
            if i > 0 {
                out.push((at, rate));
            }
        }
        out
    }

    /// The families seen, in the order first seen, each with its series.
    pub fn families(&self) -> Vec<Family> {
        let mut families: Vec<Family> = Vec::new();
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for (i, series) in self.series.iter().enumerate() {
            let at = *by_name.entry(&series.head.family).or_insert_with(|| {
                families.push(Family { name: series.head.family.clone(), kind: series.head.kind, series: Vec::new() });
                families.len() - 1
            });
            families[at].series.push(i as u32);
        }
        families
    }

    /// Scrapes whose time falls in `[from_us, to_us]`.
    fn scrapes_within(&self, from_us: u64, to_us: u64) -> std::ops::Range<usize> {
        let start = self.scrapes.partition_point(|s| s.at_us < from_us);
        let end = self.scrapes.partition_point(|s| s.at_us <= to_us);
        start..end.max(start)
    }

    /// The mean over the window's successful scrapes of the series that `pick` chooses,
    /// summed over those series at each scrape (or averaged, with `mean`).
    fn window_mean(
        &self,
        scrapes: &std::ops::Range<usize>,
        pick: impl Fn(&SeriesHead) -> bool,
        mean: bool,
    ) -> Option<f64> {
        let chosen: Vec<&Series> = self.series.iter().filter(|s| pick(&s.head)).collect();
        if chosen.is_empty() {
            return None;
        }
        let mut total = 0.0;
        let mut counted = 0u32;
        for i in scrapes.clone() {
            if self.scrapes[i].error.is_some() {
                continue;
            }
            let values: Vec<f64> = chosen.iter().filter_map(|s| s.at(i as u32)).collect();
            if values.is_empty() {
                continue;
            }
            let sum: f64 = values.iter().sum();
            total += if mean { sum / values.len() as f64 } else { sum };
            counted += 1;
        }
        (counted > 0).then(|| total / f64::from(counted))
    }

    /// Means over the scrapes from `from_us` to `to_us` of GPU utilisation, KV-cache usage
    /// and queue depth, for `model` where a series names its model.
    pub fn summary(&self, model: &str, from_us: u64, to_us: u64) -> WindowSummary {
        let scrapes = self.scrapes_within(from_us, to_us);
        let failed = self.scrapes[scrapes.clone()].iter().filter(|s| s.error.is_some()).count() as u32;
        let of_model = |head: &SeriesHead| {
            [head.label("model"), head.label("model_name")].into_iter().flatten().all(|m| m == model)
        };
        let gpu = |head: &SeriesHead| head.name == "nv_gpu_utilization";
        let kv = |head: &SeriesHead| {
            matches!(head.name.as_str(), "vllm:gpu_cache_usage_perc" | "vllm:kv_cache_usage_perc") && of_model(head)
        };
        let triton_queue = |head: &SeriesHead| head.name == "nv_inference_pending_request_count" && of_model(head);
        let vllm_queue = |head: &SeriesHead| head.name == "vllm:num_requests_waiting" && of_model(head);
        let queue_depth =
            self.window_mean(&scrapes, triton_queue, false).or_else(|| self.window_mean(&scrapes, vllm_queue, false));
        WindowSummary {
            scrapes: scrapes.len() as u32,
            failed,
            gpu_utilization: self.window_mean(&scrapes, gpu, true),
            gpu_simulated: self.series.iter().any(|s| gpu(&s.head) && s.head.label("simulated") == Some("true")),
            kv_cache_usage: self.window_mean(&scrapes, kv, true),
            queue_depth,
        }
    }

    /// Why scrapes failed, each reason once with how many times, most frequent first.
    pub fn failure_reasons(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for reason in self.scrapes.iter().filter_map(|s| s.error.as_deref()) {
            match counts.iter_mut().find(|(r, _)| r == reason) {
                Some((_, n)) => *n += 1,
                None => counts.push((reason.to_string(), 1)),
            }
        }
        // Ties keep the order first seen in.
        let mut ranked: Vec<(usize, (String, usize))> = counts.into_iter().enumerate().collect();
        ranked.sort_unstable_by_key(|(first, c)| (std::cmp::Reverse(c.1), *first));
        ranked.into_iter().map(|(_, c)| c).collect()
    }

    /// The run's scraping in one line: how many scrapes, how many failed and why.
    pub fn describe(&self) -> String {
        self.describe_failures(self.failures(), &self.failure_reasons())
    }

    /// [`Telemetry::describe`]'s line, given how many scrapes failed and why, most frequent
    /// first (the page counts them without a sort).
    pub fn describe_failures(&self, failed: usize, reasons: &[(String, usize)]) -> String {
        let mut line = format!(
            "server metrics: {} scrapes of {} every {} ms, {} series",
            self.scrapes.len(),
            self.url,
            self.interval_ms,
            self.series.len()
        );
        if failed > 0 {
            let reasons: Vec<String> = reasons.iter().take(3).map(|(r, n)| format!("{n}× {r}")).collect();
            line.push_str(&format!("; {failed} failed and show as gaps ({})", reasons.join("; ")));
        }
        if self.dropped_series > 0 {
            line.push_str(&format!("; {} series beyond the first {MAX_SERIES} were not kept", self.dropped_series));
        }
        line
    }
}

/// Turns scrapes into updates: remembers which series it has numbered and their last
/// values, so an update carries only what changed.
#[derive(Debug, Default)]
pub struct Recorder {
    telemetry: Telemetry,
    numbers: HashMap<(String, Vec<(String, String)>), u32>,
    /// Series present at the last successful scrape.
    present: Vec<bool>,
    /// Whether the store of values is full; later scrapes are gaps.
    full: bool,
}

impl Recorder {
    pub fn new(url: impl Into<String>, interval_ms: u32) -> Recorder {
        Recorder { telemetry: Telemetry::new(url, interval_ms), ..Recorder::default() }
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    pub fn into_telemetry(self) -> Telemetry {
        self.telemetry
    }

    /// Records a scrape sent at `at_us` that took `took_us`: its samples, or why it failed.
    pub fn record(&mut self, at_us: u64, took_us: u64, outcome: Result<Vec<Sample>, String>) -> TelemetryUpdate {
        let outcome = match outcome {
            Ok(_) if self.full => Err(format!(
                "the run already keeps {MAX_VALUES} metric values, the most it keeps; later scrapes are not kept"
            )),
            other => other,
        };
        let update = match outcome {
            Err(reason) => TelemetryUpdate {
                scrape: Some(Scrape { at_us, took_us, error: Some(clip(reason)) }),
                ..TelemetryUpdate::default()
            },
            Ok(samples) => self.changes(at_us, took_us, samples),
        };
        self.telemetry.apply(&update);
        self.full = self.full || self.telemetry.values() >= MAX_VALUES;
        update
    }

    fn changes(&mut self, at_us: u64, took_us: u64, samples: Vec<Sample>) -> TelemetryUpdate {
        let mut update =
            TelemetryUpdate { scrape: Some(Scrape { at_us, took_us, error: None }), ..TelemetryUpdate::default() };
        let mut seen = vec![false; self.present.len()];
        let mut dropped = 0u32;
        for sample in samples {
            let value = Some(sample.value).filter(|v| v.is_finite());
            let key = (sample.name, sample.labels);
            let number = match self.numbers.get(&key) {
                Some(&n) => n,
                None if self.numbers.len() < MAX_SERIES => {
                    let n = self.numbers.len() as u32;
                    let head = SeriesHead {
                        name: key.0.clone(),
                        family: sample.family,
                        kind: sample.kind,
                        labels: key.1.clone(),
                    };
                    self.numbers.insert(key, n);
                    update.new_series.push(head);
                    self.present.push(false);
                    seen.push(false);
                    update.values.push((n, value));
                    seen[n as usize] = true;
                    continue;
                }
                None => {
                    dropped += 1;
                    continue;
                }
            };
            let i = number as usize;
            if seen[i] {
                // A series written twice in one body: the first counts.
                continue;
            }
            seen[i] = true;
            let series = &self.telemetry.series[i];
            if !self.present[i] || series.last() != value {
                update.values.push((number, value));
            }
        }
        for (i, (&was, &now)) in self.present.iter().zip(&seen).enumerate() {
            if was && !now {
                update.values.push((i as u32, None));
            }
        }
        self.present = seen;
        update.dropped_series = dropped;
        update
    }
}

/// A reason cut to [`MAX_REASON_BYTES`] on a character boundary.
fn clip(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        reason.truncate(crate::limits::cut_at_char(&reason, MAX_REASON_BYTES).len());
        reason.push('…');
    }
    reason
}

/// The metrics address of a Triton whose gRPC endpoint is `target`: the same host, on
/// Triton's metrics port, over plain HTTP (Triton serves its metrics without TLS).
pub fn default_url(target: &str) -> Option<String> {
    let (scheme, rest) = target.split_once("://").unwrap_or(("http", target));
    let authority = rest.split(['/', '?', '#']).next()?;
    // OpenAI-compatible servers (vLLM, SGLang, llama.cpp) serve their metrics beside the API.
    if scheme.eq_ignore_ascii_case("openai") && !authority.is_empty() && !authority.starts_with(':') {
        return Some(format!("http://{authority}/metrics"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next()?),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host).to_string(),
    };
    (!host.is_empty() && host != "[]").then(|| format!("http://{host}:{TRITON_METRICS_PORT}/metrics"))
}

/// What is wrong with a metrics address, as a sentence; `None` when it can be scraped.
pub fn url_problem(url: &str) -> Option<String> {
    if url.len() > crate::limits::MAX_NAME_BYTES {
        return Some(format!("the metrics address is longer than {} bytes", crate::limits::MAX_NAME_BYTES));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Some(format!(
            "the metrics address {url:?} must start with http:// (Triton serves its metrics over plain HTTP); \
             or turn metrics off"
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.starts_with(':') {
        return Some(format!("the metrics address {url:?} names no host"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            family: name.trim_end_matches("_total").into(),
            kind: if name.ends_with("_count") { MetricKind::Counter } else { MetricKind::Gauge },
            labels: labels.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
            value,
        }
    }

    #[test]
    fn series_read_back_as_written_with_their_head_beside_their_changes() {
        let mut recorder = Recorder::new("http://h:8002/metrics", 250);
        let mut telemetry = Telemetry::new("http://h:8002/metrics", 250);
        telemetry.apply(&recorder.record(0, 900, Ok(vec![sample("a", &[], 1.0), sample("b", &[("gpu", "0")], 5.0)])));
        let json = serde_json::to_value(&telemetry).unwrap();
        assert_eq!(json["series"][1]["labels"], serde_json::json!([["gpu", "0"]]));
        assert_eq!(json["series"][1]["changes"], serde_json::json!([[0, 5.0]]));
        assert!(json["series"][0].get("labels").is_none());
        assert_eq!(serde_json::from_value::<Telemetry>(json).unwrap(), telemetry);
    }

    #[test]
    fn updates_carry_only_what_changed_and_rebuild_the_same_telemetry() {
        let mut recorder = Recorder::new("http://h:8002/metrics", 250);
        let mut rebuilt = Telemetry::new("http://h:8002/metrics", 250);
        let first = recorder.record(0, 900, Ok(vec![sample("a", &[], 1.0), sample("b", &[("gpu", "0")], 5.0)]));
        assert_eq!(first.new_series.len(), 2);
        assert_eq!(first.values, vec![(0, Some(1.0)), (1, Some(5.0))]);
        // Unchanged values are not sent again; a changed one is.
        let second = recorder.record(250_000, 800, Ok(vec![sample("a", &[], 1.0), sample("b", &[("gpu", "0")], 6.0)]));
        assert!(second.new_series.is_empty());
        assert_eq!(second.values, vec![(1, Some(6.0))]);
        // A failed scrape is a gap with its reason, and changes nothing.
        let third = recorder.record(500_000, 1_000_000, Err("timed out".into()));
        assert_eq!(third.scrape.as_ref().unwrap().error.as_deref(), Some("timed out"));
        assert!(third.values.is_empty());
        // A series that leaves the body is marked absent; NaN is no number.
        let fourth = recorder.record(750_000, 700, Ok(vec![sample("b", &[("gpu", "0")], f64::NAN)]));
        assert_eq!(fourth.values, vec![(1, None), (0, None)]);
        for update in [&first, &second, &third, &fourth] {
            rebuilt.apply(update);
        }
        assert_eq!(&rebuilt, recorder.telemetry());
        // And again from the updates the telemetry gives back, as a stored run's event log.
        let mut again = Telemetry::new("http://h:8002/metrics", 250);
        for update in rebuilt.updates() {
            again.apply(&update);
        }
        assert_eq!(again, rebuilt);
        let a = rebuilt.samples(0);
        assert_eq!(a, vec![(0, Some(1.0)), (250_000, Some(1.0)), (500_000, None), (750_000, None)]);
        assert_eq!(rebuilt.samples(1)[1], (250_000, Some(6.0)));
        assert_eq!(rebuilt.failures(), 1);
        // Through serde and back, as run.json and the store keep it.
        let json = serde_json::to_string(&rebuilt).unwrap();
        assert_eq!(serde_json::from_str::<Telemetry>(&json).unwrap(), rebuilt);
    }

    #[test]
    fn a_server_with_too_many_series_has_the_rest_counted() {
        let mut recorder = Recorder::new("u", 250);
        let many: Vec<Sample> = (0..MAX_SERIES + 10).map(|i| sample("s", &[("i", &i.to_string())], 1.0)).collect();
        let update = recorder.record(0, 1, Ok(many));
        assert_eq!(update.new_series.len(), MAX_SERIES);
        assert_eq!(update.dropped_series, 10);
        assert_eq!(recorder.telemetry().dropped_series, 10);
        assert!(recorder.telemetry().describe().contains("10 series beyond"));
    }

    #[test]
    fn counters_become_rates_with_gaps_where_nothing_is_known_or_the_server_restarted() {
        let mut recorder = Recorder::new("u", 250);
        let counter = |v: f64| Ok(vec![sample("n_count", &[], v)]);
        recorder.record(0, 1, counter(0.0));
        recorder.record(500_000, 1, counter(10.0));
        recorder.record(1_000_000, 1, Err("refused".into()));
        recorder.record(1_500_000, 1, counter(30.0));
        recorder.record(2_000_000, 1, counter(35.0));
        recorder.record(2_500_000, 1, counter(2.0));
        let rates = recorder.telemetry().rate(0);
        assert_eq!(
            rates,
            vec![
                (500_000, Some(20.0)),
                (1_000_000, None),
                (1_500_000, None),
                (2_000_000, Some(10.0)),
                (2_500_000, None)
            ]
        );
    }

    #[test]
    fn a_window_summary_takes_means_over_its_scrapes_for_the_runs_model() {
        let mut recorder = Recorder::new("u", 250);
        for (i, util) in [0.2, 0.4, 0.6, 0.8].into_iter().enumerate() {
            recorder.record(
                i as u64 * 1000,
                1,
                Ok(vec![
                    sample("nv_gpu_utilization", &[("gpu_uuid", "A")], util),
                    sample("nv_gpu_utilization", &[("gpu_uuid", "B")], 0.0),
                    sample("nv_inference_pending_request_count", &[("model", "m"), ("version", "1")], i as f64),
                    sample("nv_inference_pending_request_count", &[("model", "other"), ("version", "1")], 100.0),
                ]),
            );
        }
        let summary = recorder.telemetry().summary("m", 1000, 2000);
        assert_eq!(summary.scrapes, 2);
        assert_eq!(summary.failed, 0);
        // Scrapes 1 and 2: GPUs average (0.4+0)/2 and (0.6+0)/2.
        assert!((summary.gpu_utilization.unwrap() - 0.25).abs() < 1e-12);
        assert_eq!(summary.queue_depth, Some(1.5));
        assert_eq!(summary.kv_cache_usage, None);
        assert!(!summary.gpu_simulated);
        // A window with no scrape knows nothing.
        assert_eq!(recorder.telemetry().summary("m", 5000, 6000).gpu_utilization, None);
    }

    #[test]
    fn reasons_are_clipped_and_counted() {
        let mut recorder = Recorder::new("u", 250);
        recorder.record(0, 1, Err("x".repeat(10_000)));
        recorder.record(1, 1, Err("refused".into()));
        recorder.record(2, 1, Err("refused".into()));
        let telemetry = recorder.telemetry();
        assert!(telemetry.scrapes[0].error.as_ref().unwrap().len() <= MAX_REASON_BYTES + '…'.len_utf8());
        assert_eq!(telemetry.failure_reasons()[0], ("refused".to_string(), 2));
        assert!(telemetry.describe().contains("3 failed and show as gaps (2× refused"));
        // Reasons as frequent as each other keep the order they were first seen in.
        for (scrape, reason) in [(3, "timed out"), (4, "reset"), (5, "reset"), (6, "timed out"), (7, "late")] {
            recorder.record(scrape, 1, Err(reason.into()));
        }
        let reasons: Vec<(String, usize)> =
            recorder.telemetry().failure_reasons().into_iter().map(|(r, n)| (r.chars().take(9).collect(), n)).collect();
        let expected = [("refused", 2), ("timed out", 2), ("reset", 2), ("xxxxxxxxx", 1), ("late", 1)];
        assert_eq!(reasons, expected.map(|(r, n)| (r.to_string(), n)));
    }

    #[test]
    fn the_default_address_is_the_targets_host_on_tritons_metrics_port() {
        assert_eq!(default_url("http://10.0.0.5:8001").as_deref(), Some("http://10.0.0.5:8002/metrics"));
        assert_eq!(default_url("https://triton.example:443/x").as_deref(), Some("http://triton.example:8002/metrics"));
        assert_eq!(default_url("[::1]:8001").as_deref(), Some("http://[::1]:8002/metrics"));
        assert_eq!(default_url("http://:8001"), None);
        assert_eq!(default_url("triton-http://h:8000").as_deref(), Some("http://h:8002/metrics"));
        assert_eq!(default_url("openai://h:9000/v1").as_deref(), Some("http://h:9000/metrics"));
        assert_eq!(url_problem("http://h:8002/metrics"), None);
        assert!(url_problem("https://h/metrics").unwrap().contains("http://"));
        assert!(url_problem("http:///metrics").unwrap().contains("no host"));
    }

    #[test]
    fn summaries_quantiles_are_not_cumulative() {
        let head = |kind, labels: &[(&str, &str)]| SeriesHead {
            name: "x".into(),
            family: "x".into(),
            kind,
            labels: labels.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
        };
        assert!(head(MetricKind::Counter, &[]).cumulative());
        assert!(head(MetricKind::Histogram, &[("le", "1")]).cumulative());
        assert!(!head(MetricKind::Summary, &[("quantile", "0.5")]).cumulative());
        assert!(!head(MetricKind::Gauge, &[]).cumulative());
        assert_eq!(head(MetricKind::Gauge, &[("a", "1"), ("b", "2")]).display(), "x{a=\"1\",b=\"2\"}");
    }
}
