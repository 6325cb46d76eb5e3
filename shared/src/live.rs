//! A run as it happens: the events the proxy streams to the browser, and the state both
//! sides rebuild from them.
//!
//! Every run has one append-only event log. A WebSocket client gets the whole log on
//! connect and then every new event, so a reconnecting browser ends with exactly the state
//! of one that never left. Token arrivals, sends and finished requests are gathered into
//! [`Batch`] events with a compact encoding: integer microseconds against a base time.

use serde::{Deserialize, Serialize};

use crate::record::RequestRecord;
use crate::report::{EngineReport, ModelInfo, RunReport, RunStatus};
use crate::spec::{LoadLevel, MAX_REQUESTS, SweepSpec};
use crate::stats::PointStats;
use crate::stats::RequestMetrics;
use crate::telemetry::{Scrape, SeriesHead, Telemetry, TelemetryUpdate};

/// One entry of a run's event log, sent as one JSON text message: an object whose `type`
/// names the variant, beside the variant's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "EventFields")]
pub enum RunEvent {
    /// Always the first event.
    Started {
        id: String,
        spec: Box<SweepSpec>,
        /// Wall-clock time of the run's zero, nanoseconds since the Unix epoch.
        started_unix_ns: i64,
        /// The target is the built-in simulated Triton, not a real server.
        simulated: bool,
    },
    /// The model was found and its requests planned.
    Prepared { model: ModelInfo },
    /// A point is about to be visited. `load` is its load level, given for the probes of a
    /// capacity search, whose rates are not in the spec the run started with.
    PointStarted {
        point: u32,
        prompt_length: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        load: Option<LoadLevel>,
    },
    /// What happened since the previous batch.
    Batch(Batch),
    /// A prompt length's statistics have settled.
    PointDone { point: u32, stats: Box<PointStats> },
    /// A scrape of the server's metrics: what it changed, or why it failed.
    Telemetry(TelemetryUpdate),
    /// The run could not be written to the run store, so it is kept in the dashboard's memory
    /// only. Comes just before `Finished`.
    NotSaved { error: String },
    /// Always the last event, with what the run cost the engine when it is known.
    Finished {
        status: RunStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine: Option<EngineReport>,
    },
}

/// A [`RunEvent`] as read: every variant's fields side by side, `type` choosing which make
/// the event. Read so, in any order of its keys, an event's fields are decoded once, where
/// serde's reading of a tagged enum first copies them into a buffer of its own and then
/// decodes every type inside the event a second time from it: twice the code in the page.
#[derive(Deserialize)]
struct EventFields {
    #[serde(rename = "type")]
    kind: EventKind,
    id: Option<String>,
    spec: Option<Box<SweepSpec>>,
    started_unix_ns: Option<i64>,
    simulated: Option<bool>,
    model: Option<ModelInfo>,
    point: Option<u32>,
    prompt_length: Option<u32>,
    load: Option<LoadLevel>,
    t0: Option<u64>,
    #[serde(default)]
    sent: Vec<u64>,
    #[serde(default)]
    tok: Vec<u64>,
    #[serde(default)]
    done: Vec<RequestDone>,
    stats: Option<Box<PointStats>>,
    scrape: Option<Scrape>,
    #[serde(default)]
    new_series: Vec<SeriesHead>,
    #[serde(default)]
    values: Vec<(u32, Option<f64>)>,
    #[serde(default)]
    dropped_series: u32,
    error: Option<String>,
    status: Option<RunStatus>,
    engine: Option<EngineReport>,
}

/// The variants of [`RunEvent`], as `type` names them.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum EventKind {
    Started,
    Prepared,
    PointStarted,
    Batch,
    PointDone,
    Telemetry,
    NotSaved,
    Finished,
}

/// A field the variant read needs, or the error serde gives for one that is missing.
pub(crate) fn needed<T>(field: Option<T>, name: &str) -> Result<T, String> {
    field.ok_or_else(|| format!("missing field `{name}`"))
}

impl TryFrom<EventFields> for RunEvent {
    type Error = String;

    fn try_from(f: EventFields) -> Result<Self, String> {
        Ok(match f.kind {
            EventKind::Started => RunEvent::Started {
                id: needed(f.id, "id")?,
                spec: needed(f.spec, "spec")?,
                started_unix_ns: needed(f.started_unix_ns, "started_unix_ns")?,
                simulated: needed(f.simulated, "simulated")?,
            },
            EventKind::Prepared => RunEvent::Prepared { model: needed(f.model, "model")? },
            EventKind::PointStarted => RunEvent::PointStarted {
                point: needed(f.point, "point")?,
                prompt_length: needed(f.prompt_length, "prompt_length")?,
                load: f.load,
            },
            EventKind::Batch => {
                RunEvent::Batch(Batch { t0: needed(f.t0, "t0")?, sent: f.sent, tok: f.tok, done: f.done })
            }
            EventKind::PointDone => {
                RunEvent::PointDone { point: needed(f.point, "point")?, stats: needed(f.stats, "stats")? }
            }
            EventKind::Telemetry => RunEvent::Telemetry(TelemetryUpdate {
                scrape: f.scrape,
                new_series: f.new_series,
                values: f.values,
                dropped_series: f.dropped_series,
            }),
            EventKind::NotSaved => RunEvent::NotSaved { error: needed(f.error, "error")? },
            EventKind::Finished => RunEvent::Finished { status: needed(f.status, "status")?, engine: f.engine },
        })
    }
}

/// Requests sent, tokens received and requests finished during one batching interval.
///
/// Requests are named by their index in the run, [`request_index`]. Times are microseconds
/// since the run's start, written as offsets from `t0` so that each number stays short.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The base of every offset in this batch: microseconds since the run's start.
    pub t0: u64,
    /// Sent requests, flattened `(request, offset)` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent: Vec<u64>,
    /// Token-bearing responses, flattened `(request, offset, tokens)` triples.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tok: Vec<u64>,
    /// Finished requests with their metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<RequestDone>,
}

impl Batch {
    /// Builds a batch from absolute times (microseconds since the run's start).
    pub fn from_absolute(sent: &[(u32, u64)], tokens: &[(u32, u64, u32)], done: Vec<RequestDone>) -> Batch {
        let t0 = sent.iter().map(|s| s.1).chain(tokens.iter().map(|t| t.1)).min().unwrap_or(0);
        Batch {
            t0,
            sent: sent.iter().flat_map(|&(r, at)| [u64::from(r), at - t0]).collect(),
            tok: tokens.iter().flat_map(|&(r, at, n)| [u64::from(r), at - t0, u64::from(n)]).collect(),
            done,
        }
    }

    /// The sent requests as `(request, microseconds since the run's start)`.
    pub fn sends(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.sent.chunks_exact(2).map(|c| (c[0] as u32, self.t0 + c[1]))
    }

    /// The token arrivals as `(request, microseconds since the run's start, tokens)`.
    pub fn tokens(&self) -> impl Iterator<Item = (u32, u64, u32)> + '_ {
        self.tok.chunks_exact(3).map(|c| (c[0] as u32, self.t0 + c[1], c[2] as u32))
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty() && self.tok.is_empty() && self.done.is_empty()
    }
}

/// A finished request and its metrics, computed from nanosecond times on the proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestDone {
    /// The request's index in the run ([`request_index`]).
    pub r: u32,
    /// Time to first token, when a token came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Output tokens received.
    pub tokens: u64,
    /// What went wrong, when something did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Open loop: how late the request was sent against its schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<f64>,
    /// The prompt's length as sent, when it is not its point's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<u32>,
}

impl RequestDone {
    /// A finished request's entry, from its record.
    pub fn of(spec: &SweepSpec, record: &RequestRecord) -> RequestDone {
        RequestDone {
            r: request_index(spec, record.point, record.seq),
            ttft_ms: RequestMetrics::of(record).map(|m| m.ttft_ns as f64 / 1e6),
            tokens: record.output_tokens(),
            error: record.error.clone(),
            lag_ms: record.lag_ns().map(|ns| ns as f64 / 1e6),
            prompt: Some(record.prompt_words).filter(|&l| l != spec.point_length(record.point as usize)),
        }
    }
}

/// The index of request `seq` of sweep point `point` in the run: points in order, each with
/// its warm-up requests first.
pub fn request_index(spec: &SweepSpec, point: u32, seq: u32) -> u32 {
    point * spec.requests_per_point() as u32 + seq
}

/// The event log of a finished run, as it would have been recorded live: for a run read
/// from a file, or kept from an earlier session. One batch per prompt length.
pub fn events_from_report(id: &str, report: &RunReport, simulated: bool) -> Vec<RunEvent> {
    let spec = &report.spec;
    let mut events = vec![RunEvent::Started {
        id: id.into(),
        spec: Box::new(spec.clone()),
        started_unix_ns: report.started_unix_ns,
        simulated,
    }];
    if let Some(model) = &report.model {
        events.push(RunEvent::Prepared { model: model.clone() });
    }
    for point in 0..spec.point_count() as u32 {
        let Some((prompt_length, load)) = spec.point(point as usize) else { break };
        let records: Vec<&RequestRecord> = report.requests.iter().filter(|r| r.point == point).collect();
        if records.is_empty() {
            continue;
        }
        let probe = spec.capacity.is_some().then_some(load);
        events.push(RunEvent::PointStarted { point, prompt_length, load: probe });
        let sent: Vec<(u32, u64)> =
            records.iter().map(|r| (request_index(spec, r.point, r.seq), r.send_ns / 1000)).collect();
        let tokens: Vec<(u32, u64, u32)> = records
            .iter()
            .flat_map(|r| r.token_responses().map(|c| (request_index(spec, r.point, r.seq), c.at_ns / 1000, c.tokens)))
            .collect();
        let done = records.iter().map(|r| RequestDone::of(spec, r)).collect();
        events.push(RunEvent::Batch(Batch::from_absolute(&sent, &tokens, done)));
        // Runs from before load levels have one point per prompt length and no load in it.
        let stats = report.points.iter().find(|p| p.prompt_length == prompt_length && p.load.is_none_or(|l| l == load));
        if let Some(stats) = stats {
            events.push(RunEvent::PointDone { point, stats: Box::new(stats.clone()) });
        }
    }
    if let Some(telemetry) = &report.telemetry {
        events.extend(telemetry.updates().into_iter().map(RunEvent::Telemetry));
    }
    events.push(RunEvent::Finished { status: report.status.clone(), engine: report.engine.clone() });
    events
}

/// What the browser knows of one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveRequest {
    /// Microseconds since the run's start.
    pub sent_us: Option<u64>,
    /// Token-bearing responses as (microseconds since the run's start, tokens), in arrival order.
    pub tokens: Vec<(u64, u32)>,
    pub done: Option<RequestDone>,
}

impl LiveRequest {
    /// The mean token-to-token gap of this request in milliseconds (microsecond times):
    /// `(t(c_k) - t(c_1))` over the tokens after the first response; `None` below two responses.
    pub fn mean_gap_ms(&self) -> Option<f64> {
        let (first, rest) = self.tokens.split_first()?;
        let last = rest.last()?;
        let after_first: u64 = rest.iter().map(|&(_, n)| u64::from(n)).sum();
        Some(last.0.saturating_sub(first.0) as f64 / 1000.0 / after_first as f64)
    }
}

/// A run rebuilt from its events: what the dashboard shows, and what tests compare.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveRun {
    pub id: String,
    pub spec: SweepSpec,
    pub started_unix_ns: i64,
    pub simulated: bool,
    pub model: Option<ModelInfo>,
    /// `None` until the run finishes.
    pub status: Option<RunStatus>,
    /// The point being visited.
    pub current_point: Option<u32>,
    /// Settled statistics, by point index.
    pub points: Vec<Option<PointStats>>,
    /// Every request, by [`request_index`].
    pub requests: Vec<LiveRequest>,
    /// Requests finished, warm-up included.
    pub finished: u64,
    /// Finished requests that ended in an error.
    pub errors: u64,
    pub output_tokens: u64,
    /// The latest time any event mentioned, microseconds since the run's start.
    pub latest_us: u64,
    /// The first send, microseconds since the run's start.
    pub first_send_us: Option<u64>,
    /// Why the run is not in the run store, if it could not be written there.
    pub not_saved: Option<String>,
    /// What the run cost the engine, once it has ended.
    pub engine: Option<EngineReport>,
    /// The server's metrics so far, once the first scrape is in.
    pub telemetry: Option<Telemetry>,
}

impl LiveRun {
    /// Applies one event.
    pub fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Started { id, spec, started_unix_ns, simulated } => {
                *self = LiveRun {
                    id: id.clone(),
                    spec: spec.as_ref().clone(),
                    started_unix_ns: *started_unix_ns,
                    simulated: *simulated,
                    points: vec![None; spec.point_count().min(crate::limits::MAX_PROMPT_LENGTHS)],
                    requests: vec![LiveRequest::default(); spec.total_requests().min(MAX_REQUESTS) as usize],
                    ..LiveRun::default()
                };
            }
            RunEvent::Prepared { model } => self.model = Some(model.clone()),
            RunEvent::PointStarted { point, load, .. } => {
                self.current_point = Some(*point);
                self.spec.add_probe(*point, *load);
            }
            RunEvent::Batch(batch) => self.apply_batch(batch),
            RunEvent::PointDone { point, stats } => {
                if let Some(slot) = self.points.get_mut(*point as usize) {
                    *slot = Some(stats.as_ref().clone());
                }
            }
            RunEvent::Telemetry(update) => {
                self.telemetry.get_or_insert_with(|| Telemetry::of_spec(&self.spec)).apply(update);
            }
            RunEvent::NotSaved { error } => self.not_saved = Some(error.clone()),
            RunEvent::Finished { status, engine } => {
                self.status = Some(status.clone());
                self.engine.clone_from(engine);
                self.current_point = None;
            }
        }
    }

    fn apply_batch(&mut self, batch: &Batch) {
        for (r, at) in batch.sends() {
            self.first_send_us = Some(self.first_send_us.map_or(at, |first| first.min(at)));
            self.latest_us = self.latest_us.max(at);
            if let Some(request) = self.requests.get_mut(r as usize) {
                request.sent_us = Some(at);
            }
        }
        for (r, at, n) in batch.tokens() {
            self.latest_us = self.latest_us.max(at);
            self.output_tokens += u64::from(n);
            if let Some(request) = self.requests.get_mut(r as usize) {
                request.tokens.push((at, n));
            }
        }
        for done in &batch.done {
            self.finished += 1;
            self.errors += u64::from(done.error.is_some());
            if let Some(request) = self.requests.get_mut(done.r as usize) {
                request.done = Some(done.clone());
            }
        }
    }

    /// Builds the state from a whole event log.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a RunEvent>) -> LiveRun {
        let mut run = LiveRun::default();
        for event in events {
            run.apply(event);
        }
        run
    }

    /// Requests the run will send in all, warm-up included.
    pub fn total(&self) -> u64 {
        self.spec.requests_sent_bound(self.status.is_some().then_some(self.finished))
    }

    /// The sweep point and sequence number of a request index.
    pub fn locate(&self, r: u32) -> (u32, u32) {
        let per_point = self.spec.requests_per_point().max(1) as u32;
        (r / per_point, r % per_point)
    }

    /// Whether a request index is a warm-up request.
    pub fn is_warmup(&self, r: u32) -> bool {
        self.locate(r).1 < self.spec.warmup
    }

    /// Seconds left, estimated from the pace so far; `None` before any request finished.
    pub fn seconds_left(&self) -> Option<f64> {
        if self.status.is_some() {
            return Some(0.0);
        }
        let first = self.first_send_us?;
        if self.finished == 0 {
            return None;
        }
        let elapsed = self.latest_us.saturating_sub(first) as f64 / 1e6;
        let left = self.total().saturating_sub(self.finished) as f64;
        Some(elapsed / self.finished as f64 * left)
    }

    /// A point's measured (not warm-up) requests.
    fn measured(&self, point: u32) -> &[LiveRequest] {
        let per_point = self.spec.requests_per_point() as usize;
        let start = point as usize * per_point + self.spec.warmup as usize;
        let end = (point as usize + 1) * per_point;
        self.requests.get(start..end.min(self.requests.len())).unwrap_or_default()
    }

    /// The measured (not warm-up) time-to-first-token samples of a point, in milliseconds.
    pub fn ttft_samples(&self, point: u32) -> Vec<f64> {
        self.measured(point)
            .iter()
            .filter_map(|r| r.done.as_ref().filter(|d| d.error.is_none()).and_then(|d| d.ttft_ms))
            .collect()
    }

    /// A point's measured requests' TTFT against when they were sent: seconds since the
    /// point's first measured send, and milliseconds of TTFT, from the intended send in open
    /// loop (so a queue building up shows as a slope).
    pub fn ttft_over_time(&self, point: u32) -> Vec<(f64, f64)> {
        let measured = self.measured(point);
        let Some(first) = measured.iter().filter_map(|r| r.sent_us).min() else { return Vec::new() };
        measured
            .iter()
            .filter_map(|r| {
                let done = r.done.as_ref().filter(|d| d.error.is_none())?;
                let at = r.sent_us?.saturating_sub(first) as f64 / 1e6;
                Some((at, done.ttft_ms? + done.lag_ms.unwrap_or(0.0)))
            })
            .collect()
    }

    /// A point's measured requests' prompt lengths as sent and output tokens, of those that
    /// finished without error.
    pub fn length_samples(&self, point: u32) -> (Vec<f64>, Vec<f64>) {
        let length = self.spec.point_length(point as usize);
        self.measured(point)
            .iter()
            .filter_map(|r| r.done.as_ref().filter(|d| d.error.is_none()))
            .map(|d| (f64::from(d.prompt.unwrap_or(length)), d.tokens as f64))
            .unzip()
    }

    /// A point's measured requests' schedule lag, in milliseconds (open loop).
    pub fn lag_samples(&self, point: u32) -> Vec<f64> {
        self.measured(point).iter().filter_map(|r| r.done.as_ref().and_then(|d| d.lag_ms)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SweepSpec {
        SweepSpec { prompt_lengths: vec![16, 32], requests: 2, warmup: 1, ..SweepSpec::default() }
    }

    fn started() -> RunEvent {
        RunEvent::Started { id: "r1".into(), spec: Box::new(spec()), started_unix_ns: 5, simulated: true }
    }

    #[test]
    fn request_indices_count_warmup_first() {
        let spec = spec();
        assert_eq!(request_index(&spec, 0, 0), 0);
        assert_eq!(request_index(&spec, 1, 0), 3);
        assert_eq!(request_index(&spec, 1, 2), 5);
        let run = LiveRun::from_events(&[started()]);
        assert_eq!(run.locate(4), (1, 1));
        assert!(run.is_warmup(3));
        assert!(!run.is_warmup(4));
        assert_eq!(run.total(), 6);
    }

    #[test]
    fn batch_offsets_round_trip_and_stay_short() {
        let batch = Batch::from_absolute(&[(3, 1_000_500)], &[(3, 1_000_900, 1), (2, 1_000_400, 2)], Vec::new());
        assert_eq!(batch.t0, 1_000_400);
        assert_eq!(batch.sends().collect::<Vec<_>>(), vec![(3, 1_000_500)]);
        assert_eq!(batch.tokens().collect::<Vec<_>>(), vec![(3, 1_000_900, 1), (2, 1_000_400, 2)]);
        let json = serde_json::to_string(&RunEvent::Batch(batch)).unwrap();
        assert_eq!(json, r#"{"type":"batch","t0":1000400,"sent":[3,100],"tok":[3,500,1,2,0,2]}"#);
    }

    #[test]
    fn folding_events_tracks_progress_and_samples() {
        let done = |r, ttft: Option<f64>, error: Option<&str>| RequestDone {
            r,
            ttft_ms: ttft,
            tokens: u64::from(ttft.is_some()),
            error: error.map(Into::into),
            lag_ms: (r == 1).then_some(0.5),
            prompt: (r == 1).then_some(20),
        };
        let events = vec![
            started(),
            RunEvent::PointStarted { point: 0, prompt_length: 16, load: None },
            RunEvent::Batch(Batch::from_absolute(&[(0, 100)], &[(0, 1100, 1)], vec![done(0, Some(1.0), None)])),
            RunEvent::Batch(Batch::from_absolute(
                &[(1, 1200), (2, 1300)],
                &[(1, 3200, 1)],
                vec![done(1, Some(2.0), None), done(2, None, Some("boom"))],
            )),
        ];
        let run = LiveRun::from_events(&events);
        assert_eq!(run.current_point, Some(0));
        assert_eq!((run.finished, run.errors, run.output_tokens), (3, 1, 2));
        assert_eq!(run.first_send_us, Some(100));
        assert_eq!(run.latest_us, 3200);
        // The warm-up request (index 0) and the failed one are not samples.
        assert_eq!(run.ttft_samples(0), vec![2.0]);
        // The first measured request, its 0.5 ms lag in its TTFT from the intended send.
        assert_eq!(run.ttft_over_time(0), vec![(0.0, 2.5)]);
        assert_eq!(run.lag_samples(0), vec![0.5]);
        assert_eq!(run.length_samples(0), (vec![20.0], vec![1.0]), "the length sent, else the point's");
        assert_eq!(run.requests[1].tokens, vec![(3200, 1)]);
        assert_eq!(run.requests[1].mean_gap_ms(), None);
        let request = LiveRequest { tokens: vec![(1000, 1), (3000, 1), (7000, 3)], ..LiveRequest::default() };
        assert_eq!(request.mean_gap_ms(), Some(1.5));
        // 3 of 6 finished in 3.1 ms: about 3.1 ms to go.
        assert!((run.seconds_left().unwrap() - 0.0031).abs() < 1e-9);
    }

    /// A finished run of `spec` with one measured request per point, each at its point's index
    /// in milliseconds; goodput is met at the first point only.
    fn report_of(spec: SweepSpec) -> RunReport {
        let requests = (0..spec.point_count() as u32)
            .take_while(|&p| spec.point(p as usize).is_some())
            .map(|point| {
                let mut record = crate::stats::tests::record(0, &[(u64::from(point + 1) * 1_000_000, 1)]);
                record.point = point;
                record
            })
            .collect();
        let mut report = RunReport { status: RunStatus::Completed, requests, ..RunReport::new("test".into(), spec, 0) };
        report.recompute_points();
        report
    }

    #[test]
    fn a_finished_run_replays_each_point_with_its_own_statistics() {
        let spec = SweepSpec { concurrencies: vec![1, 2], warmup: 0, requests: 1, ..spec() };
        let report = report_of(spec);
        let run = LiveRun::from_events(&events_from_report("r", &report, false));
        let ttft: Vec<f64> = run.points.iter().map(|p| p.as_ref().unwrap().ttft_ms.as_ref().unwrap().mean).collect();
        assert_eq!(ttft, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(run.points[1].as_ref().unwrap().load, Some(LoadLevel::Concurrency(2)));
    }

    #[test]
    fn a_capacity_search_adds_each_probe_as_it_starts() {
        let search = crate::capacity::CapacitySearch { probes: 4, ..Default::default() };
        let spec = SweepSpec {
            prompt_lengths: vec![16],
            warmup: 0,
            requests: 1,
            capacity: Some(search),
            slo: Some(crate::goodput::Slo { ttft_ms: Some(1.5), ..Default::default() }),
            ..spec()
        };
        let live = |point, rate| RunEvent::PointStarted { point, prompt_length: 16, load: Some(LoadLevel::Rate(rate)) };
        let mut run = LiveRun::from_events(&[RunEvent::Started {
            id: "r".into(),
            spec: Box::new(spec.clone()),
            started_unix_ns: 0,
            simulated: false,
        }]);
        assert_eq!((run.points.len(), run.requests.len()), (4, 4));
        run.apply(&live(0, 1.0));
        run.apply(&live(1, 2.0));
        run.apply(&live(1, 2.0));
        assert_eq!(run.spec.request_rates, [1.0, 2.0]);
        // A finished search replays over its final spec without adding its probes again.
        let report = report_of(SweepSpec { request_rates: vec![1.0, 2.0], ..spec });
        assert_eq!(report.points.len(), 2);
        let replayed = LiveRun::from_events(&events_from_report("r", &report, false));
        assert_eq!(replayed.spec.request_rates, [1.0, 2.0]);
        let capacity =
            crate::capacity::Capacity::of_run(&replayed.spec, replayed.points.iter().map(Option::as_ref), false)
                .unwrap();
        assert_eq!((capacity.passed.unwrap().rate, capacity.missed.unwrap().rate), (1.0, 2.0));
    }

    #[test]
    fn events_survive_json() {
        let event = RunEvent::Finished { status: RunStatus::Failed { error: "gone".into() }, engine: None };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<RunEvent>(&json).unwrap(), event);
    }

    #[test]
    fn every_kind_of_event_reads_back_as_written() {
        let mut report = report_of(SweepSpec { concurrencies: vec![1, 2], warmup: 0, requests: 2, ..spec() });
        report.model = Some(ModelInfo {
            name: "m".into(),
            version: Some("1".into()),
            input_style: crate::spec::InputStyle::Vllm,
            decoupled: true,
            batched: false,
            inputs: vec!["text_input: BYTES [1]".into()],
            outputs: vec!["text_output: BYTES [-1]".into()],
        });
        let mut events = events_from_report("r", &report, true);
        let head = crate::telemetry::SeriesHead {
            name: "nv_inference_count".into(),
            family: "nv_inference_count".into(),
            kind: crate::telemetry::MetricKind::Counter,
            labels: vec![("model".into(), "m".into())],
        };
        events.push(RunEvent::Telemetry(TelemetryUpdate {
            scrape: Some(Scrape { at_us: 5, took_us: 1500, error: None }),
            new_series: vec![head],
            values: vec![(0, Some(3.0)), (1, None)],
            dropped_series: 2,
        }));
        events.push(RunEvent::Telemetry(TelemetryUpdate::default()));
        events.push(RunEvent::NotSaved { error: "the disk is full".into() });
        let kinds: std::collections::HashSet<&str> = events.iter().map(|e| kind_of(e)).collect();
        assert_eq!(kinds.len(), 8, "every variant is tried: {kinds:?}");
        for event in events {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<RunEvent>(&json).unwrap(), event, "{json}");
        }
    }

    fn kind_of(event: &RunEvent) -> &'static str {
        match event {
            RunEvent::Started { .. } => "started",
            RunEvent::Prepared { .. } => "prepared",
            RunEvent::PointStarted { .. } => "point_started",
            RunEvent::Batch(_) => "batch",
            RunEvent::PointDone { .. } => "point_done",
            RunEvent::Telemetry(_) => "telemetry",
            RunEvent::NotSaved { .. } => "not_saved",
            RunEvent::Finished { .. } => "finished",
        }
    }

    #[test]
    fn an_event_reads_in_any_order_of_its_keys_and_says_what_it_lacks() {
        let read = |json: &str| serde_json::from_str::<RunEvent>(json).map_err(|e| e.to_string());
        assert_eq!(
            read(r#"{"point": 3, "prompt_length": 16, "type": "point_started"}"#).unwrap(),
            RunEvent::PointStarted { point: 3, prompt_length: 16, load: None }
        );
        assert_eq!(
            read(r#"{"status": {"error": "gone", "state": "failed"}, "type": "finished"}"#).unwrap(),
            RunEvent::Finished { status: RunStatus::Failed { error: "gone".into() }, engine: None }
        );
        let missing = read(r#"{"type": "point_started", "point": 3}"#).unwrap_err();
        assert!(missing.contains("missing field `prompt_length`"), "{missing}");
        let unknown = read(r#"{"type": "restarted"}"#).unwrap_err();
        assert!(unknown.contains("unknown variant `restarted`"), "{unknown}");
        let untyped = read(r#"{"point": 3}"#).unwrap_err();
        assert!(untyped.contains("missing field `type`"), "{untyped}");
        let failed = serde_json::from_str::<RunStatus>(r#"{"state": "failed"}"#).unwrap_err().to_string();
        assert!(failed.contains("missing field `error`"), "{failed}");
    }
}
