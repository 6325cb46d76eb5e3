//! The recorder of a run: turns the engine's observer callbacks and its token and telemetry
//! taps into the run's event log, batching the frequent kinds, and writes what settles to
//! the [`Store`].
//!
//! Sends, token arrivals and finished requests are gathered for [`BATCH_INTERVAL`] and go
//! out as one `Batch`, the finished requests' records stored first in one transaction. A
//! batch or a point enters the log only once the store has it, so whatever a viewer saw
//! outlives the process.

use std::sync::Arc;
use std::time::Duration;

use shared::live::request_index;
use shared::spec::LoadLevel;
use shared::telemetry::{Telemetry, TelemetryUpdate};
use shared::{Batch, ModelInfo, PointStats, RequestDone, RequestRecord, RunEvent, SweepSpec};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::runs::RunHandle;
use crate::engine::{Observer, TelemetryTap, TokenArrival, TokenTap};
use crate::store::{Db, Store, StoreError};

/// How long sends, tokens and finished requests are gathered before they go out as one event.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(50);

/// Starts recording `run` of `spec`: answers the observer to hand the sweep, and the
/// recorder's task, which ends once the observer is dropped and all it passed on is recorded.
pub(super) fn start(run: Arc<RunHandle>, spec: &SweepSpec, store: Store) -> (Forwarder, JoinHandle<()>) {
    let (notes, notes_rx) = mpsc::unbounded_channel();
    let (tap, tap_rx) = mpsc::unbounded_channel();
    let (telemetry, telemetry_rx) = mpsc::unbounded_channel();
    let taps = Taps { tokens: tap_rx, telemetry: telemetry_rx };
    let recorder = tokio::spawn(record(run, spec.clone(), store, notes_rx, taps));
    (Forwarder { spec: spec.clone(), notes, tap, telemetry }, recorder)
}

/// What the sweep's observer hands to the recorder.
enum Note {
    Prepared { model: ModelInfo },
    PointStarted { point: u32, prompt_length: u32, load: Option<LoadLevel> },
    Sent { point: u32, seq: u32, send_ns: u64 },
    Done { done: RequestDone, record: Box<RequestRecord> },
    PointDone { point: u32, stats: Box<PointStats> },
}

/// Passes the engine's news to the recorder without blocking the sweep loop.
pub(super) struct Forwarder {
    spec: SweepSpec,
    notes: mpsc::UnboundedSender<Note>,
    tap: TokenTap,
    telemetry: TelemetryTap,
}

impl Observer for Forwarder {
    fn prepared(&mut self, model: &ModelInfo) {
        let _ = self.notes.send(Note::Prepared { model: model.clone() });
    }

    fn point_started(&mut self, point: usize, prompt_length: u32, load: LoadLevel) {
        // A capacity search's probes are not in the spec the run started with.
        let load = self.spec.capacity.is_some().then_some(load);
        let _ = self.notes.send(Note::PointStarted { point: point as u32, prompt_length, load });
    }

    fn request_sent(&mut self, point: u32, seq: u32, send_ns: u64) {
        let _ = self.notes.send(Note::Sent { point, seq, send_ns });
    }

    fn request_done(&mut self, record: &RequestRecord) {
        let done = RequestDone::of(&self.spec, record);
        let _ = self.notes.send(Note::Done { done, record: Box::new(record.clone()) });
    }

    fn point_done(&mut self, point: usize, stats: &PointStats) {
        let _ = self.notes.send(Note::PointDone { point: point as u32, stats: Box::new(stats.clone()) });
    }

    fn token_tap(&self) -> Option<TokenTap> {
        Some(self.tap.clone())
    }

    fn telemetry_tap(&self) -> Option<TelemetryTap> {
        Some(self.telemetry.clone())
    }
}

/// What reaches the recorder apart from the engine's notes: token arrivals from the
/// streams, and scrapes of the server's metrics from their thread.
struct Taps {
    tokens: mpsc::UnboundedReceiver<TokenArrival>,
    telemetry: mpsc::UnboundedReceiver<TelemetryUpdate>,
}

/// A request sent, as a batch carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SentRequest {
    /// The request's index in the run ([`request_index`]).
    request: u32,
    /// Microseconds since the run's start.
    at_us: u64,
}

/// Tokens that arrived for a request, as a batch carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TokensArrived {
    /// The request's index in the run ([`request_index`]).
    request: u32,
    /// Microseconds since the run's start.
    at_us: u64,
    tokens: u32,
}

/// What the next batch carries.
#[derive(Default)]
struct Pending {
    sent: Vec<SentRequest>,
    tokens: Vec<TokensArrived>,
    done: Vec<RequestDone>,
    /// The finished requests' records, written to the store in one transaction per batch.
    records: Vec<RequestRecord>,
}

impl Pending {
    /// Stores the batch's finished requests, then logs the batch.
    async fn flush(&mut self, run: &RunHandle, store: &Store) {
        if self.sent.is_empty() && self.tokens.is_empty() && self.done.is_empty() {
            return;
        }
        if !self.records.is_empty() {
            let records = std::mem::take(&mut self.records);
            let id = run.id.clone();
            persist(store, &run.id, "store finished requests", move |db| db.add_requests(&id, &records)).await;
        }
        let sent: Vec<(u32, u64)> = self.sent.drain(..).map(|s| (s.request, s.at_us)).collect();
        let tokens: Vec<(u32, u64, u32)> = self.tokens.drain(..).map(|t| (t.request, t.at_us, t.tokens)).collect();
        let batch = Batch::from_absolute(&sent, &tokens, std::mem::take(&mut self.done));
        run.push(&RunEvent::Batch(batch));
    }

    fn sent(&mut self, spec: &SweepSpec, point: u32, seq: u32, send_ns: u64) {
        self.sent.push(SentRequest { request: request_index(spec, point, seq), at_us: send_ns / 1000 });
    }

    fn token(&mut self, spec: &SweepSpec, t: TokenArrival) {
        self.tokens.push(TokensArrived {
            request: request_index(spec, t.point, t.seq),
            at_us: t.at_ns / 1000,
            tokens: t.tokens,
        });
    }

    fn done(&mut self, done: RequestDone, record: RequestRecord) {
        self.done.push(done);
        self.records.push(record);
    }

    /// Takes every token that already arrived. A request's tokens are tapped before it is
    /// reported done, so draining before each note keeps a request's tokens ahead of its end.
    fn drain(&mut self, spec: &SweepSpec, taps: &mut mpsc::UnboundedReceiver<TokenArrival>) {
        while let Ok(t) = taps.try_recv() {
            self.token(spec, t);
        }
    }
}

/// Turns the engine's news into the run's event log, batching the frequent kinds.
async fn record(
    run: Arc<RunHandle>,
    mut spec: SweepSpec,
    store: Store,
    mut notes: mpsc::UnboundedReceiver<Note>,
    taps: Taps,
) {
    let Taps { tokens: mut taps, telemetry: mut scrapes } = taps;
    // The metrics so far, stored as each point settles so a run cut short keeps them.
    let mut telemetry: Option<Telemetry> = None;
    let mut pending = Pending::default();
    let mut tick = tokio::time::interval(BATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Notes first: a request's send is noted before it is written, so before its tokens.
        tokio::select! {
            biased;
            note = notes.recv() => {
                pending.drain(&spec, &mut taps);
                let event = match note {
                    None => break,
                    Some(Note::Sent { point, seq, send_ns }) => {
                        pending.sent(&spec, point, seq, send_ns);
                        continue;
                    }
                    Some(Note::Done { done, record }) => {
                        pending.done(done, *record);
                        continue;
                    }
                    Some(Note::Prepared { model }) => RunEvent::Prepared { model },
                    Some(Note::PointStarted { point, prompt_length, load }) => {
                        if load.is_some() {
                            // A probe's rate is stored as it starts, so that a run cut short
                            // by a crash still knows the load of each point it has.
                            spec.add_probe(point, load);
                            let (id, spec) = (run.id.clone(), spec.clone());
                            persist(&store, &run.id, "store a probe's rate", move |db| db.set_spec(&id, &spec)).await;
                        }
                        RunEvent::PointStarted { point, prompt_length, load }
                    }
                    Some(Note::PointDone { point, stats }) => {
                        if let Some(telemetry) = telemetry.clone() {
                            let id = run.id.clone();
                            persist(&store, &run.id, "store the server's metrics", move |db| db.set_telemetry(&id, &telemetry)).await;
                        }
                        RunEvent::PointDone { point, stats }
                    }
                };
                pending.flush(&run, &store).await;
                store_event(&run, &store, &event).await;
                run.push(&event);
            }
            Some(t) = taps.recv() => pending.token(&spec, t),
            Some(update) = scrapes.recv() => scraped(&run, &spec, &mut telemetry, update),
            _ = tick.tick() => pending.flush(&run, &store).await,
        }
    }
    pending.drain(&spec, &mut taps);
    pending.flush(&run, &store).await;
    // The last scrapes, recorded before the sweep handed back its report.
    while let Ok(update) = scrapes.try_recv() {
        scraped(&run, &spec, &mut telemetry, update);
    }
}

/// Logs a scrape of the server's metrics and keeps it in the run's telemetry so far.
fn scraped(run: &RunHandle, spec: &SweepSpec, telemetry: &mut Option<Telemetry>, update: TelemetryUpdate) {
    telemetry.get_or_insert_with(|| Telemetry::of_spec(spec)).apply(&update);
    run.push(&RunEvent::Telemetry(update));
}

/// Writes what an event settles: the model, or a point's statistics.
async fn store_event(run: &RunHandle, store: &Store, event: &RunEvent) {
    let id = run.id.clone();
    match event {
        RunEvent::Prepared { model } => {
            let model = model.clone();
            persist(store, &run.id, "store the model", move |db| db.set_model(&id, &model)).await;
        }
        RunEvent::PointDone { point, stats } => {
            let (point, stats) = (*point, stats.clone());
            persist(store, &run.id, "store a point's statistics", move |db| db.set_point(&id, point, &stats)).await;
        }
        _ => {}
    }
}

/// Waits for a write and logs its failure: the run goes on in memory whatever the disk does.
async fn persist(
    store: &Store,
    run: &str,
    what: &str,
    job: impl FnOnce(&mut Db) -> Result<(), StoreError> + Send + 'static,
) {
    if let Err(err) = store.call(job).await {
        tracing::error!(run = %run, cause = %err, store = %store.path().display(), "could not {what}; the run is kept in memory only");
    }
}

#[cfg(test)]
mod tests {
    use shared::telemetry::{MetricKind, Recorder, Sample};
    use shared::{ResponseRecord, RunReport, TokenCountSource};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::clock::RunClock;
    use crate::store::NewRun;

    const ID: &str = "20250101-000000-1";

    /// Two points of one warm-up and three measured requests: point 1's requests are 4 to 7.
    fn spec() -> SweepSpec {
        SweepSpec { prompt_lengths: vec![16, 32], requests: 3, warmup: 1, ..SweepSpec::default() }
    }

    /// A run in progress whose row the store has, and its recorder.
    struct Recording {
        run: Arc<RunHandle>,
        store: Store,
        observer: Forwarder,
        tap: TokenTap,
        recorder: JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    async fn recording(spec: &SweepSpec) -> Recording {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let clock = RunClock::start();
        let new = NewRun {
            id: ID.into(),
            spec: spec.clone(),
            started_unix_ns: clock.start_unix_ns(),
            simulated: true,
            tool: "tokenscope test".into(),
        };
        store.call(move |db| db.insert_run(&new)).await.unwrap();
        let run = Arc::new(RunHandle::new(ID.into(), spec, clock, true, CancellationToken::new()));
        let (observer, recorder) = start(run.clone(), spec, store.clone());
        let tap = observer.token_tap().unwrap();
        // The recorder starts, and its first tick, at once, passes with nothing to send.
        tokio::time::sleep(Duration::from_millis(1)).await;
        Recording { run, store, observer, tap, recorder, _dir: dir }
    }

    /// A finished request of `point` whose one response of `tokens` tokens came at `at_ns`.
    fn finished(point: u32, seq: u32, send_ns: u64, at_ns: u64, tokens: u32) -> RequestRecord {
        RequestRecord {
            point,
            seq,
            warmup: seq == 0,
            id: format!("{point}-{seq}"),
            prompt_words: 32,
            num_input_tokens: None,
            send_ns,
            intended_ns: None,
            server_recv_unix_ns: None,
            responses: vec![ResponseRecord { at_ns, tokens, text: " w", server_send_unix_ns: None }].into(),
            final_ns: Some(at_ns),
            token_source: TokenCountSource::Responses,
            error: None,
            finish_reason: None,
        }
    }

    fn logged(run: &RunHandle) -> Vec<RunEvent> {
        let (events, _) = run.events_since(0);
        events.iter().map(|text| serde_json::from_str(text).unwrap()).collect()
    }

    fn batches(run: &RunHandle) -> Vec<Batch> {
        logged(run)
            .into_iter()
            .filter_map(|event| match event {
                RunEvent::Batch(batch) => Some(batch),
                _ => None,
            })
            .collect()
    }

    async fn stored_report(store: &Store) -> RunReport {
        store.call(|db| db.report(ID)).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn what_one_interval_gathers_goes_out_as_one_batch_in_order() {
        let spec = spec();
        let Recording { run, store, mut observer, tap, recorder, _dir } = recording(&spec).await;
        observer.request_sent(1, 0, 2_000_000);
        observer.request_sent(1, 1, 3_000_999);
        tokio::time::sleep(Duration::from_millis(10)).await;
        tap.send(TokenArrival { point: 1, seq: 1, at_ns: 4_000_000, tokens: 2 }).unwrap();
        tap.send(TokenArrival { point: 1, seq: 0, at_ns: 4_500_000, tokens: 1 }).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        observer.request_done(&finished(1, 0, 2_000_000, 4_500_000, 1));
        // The interval ends, and the next one gathers a send of its own.
        tokio::time::sleep(BATCH_INTERVAL).await;
        observer.request_sent(1, 2, 9_000_000);
        drop((observer, tap));
        recorder.await.unwrap();

        let batches = batches(&run);
        assert_eq!(batches.len(), 2, "{batches:?}");
        assert_eq!(batches[0].sends().collect::<Vec<_>>(), [(4, 2_000), (5, 3_000)]);
        assert_eq!(batches[0].tokens().collect::<Vec<_>>(), [(5, 4_000, 2), (4, 4_500, 1)]);
        assert_eq!(batches[0].done.iter().map(|d| (d.r, d.tokens)).collect::<Vec<_>>(), [(4, 1)]);
        assert_eq!(batches[1].sends().collect::<Vec<_>>(), [(6, 9_000)]);
        assert!(batches[1].tokens().next().is_none() && batches[1].done.is_empty());
        let stored = stored_report(&store).await;
        assert_eq!(stored.requests.iter().map(|r| (r.point, r.seq)).collect::<Vec<_>>(), [(1, 0)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_and_a_point_enter_the_log_only_once_the_store_has_them() {
        let spec = spec();
        let Recording { run, store, mut observer, recorder, _dir, .. } = recording(&spec).await;
        // The store's thread waits until it is let go.
        let (release, held) = std::sync::mpsc::channel::<()>();
        store.submit("wait", move |_| {
            let _ = held.recv();
            Ok(())
        });
        let stats = PointStats { prompt_length: 16, count: 1, requests_per_s: 2.5, ..PointStats::default() };
        observer.request_sent(0, 1, 1_000_000);
        observer.request_done(&finished(0, 1, 1_000_000, 2_000_000, 1));
        observer.point_done(0, &stats);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let held_back = logged(&run);
        assert!(
            !held_back.iter().any(|e| matches!(e, RunEvent::Batch(_) | RunEvent::PointDone { .. })),
            "logged before the store had it: {held_back:?}"
        );

        release.send(()).unwrap();
        drop(observer);
        recorder.await.unwrap();
        let kinds: Vec<&str> = logged(&run)
            .iter()
            .map(|event| match event {
                RunEvent::Started { .. } => "started",
                RunEvent::Batch(_) => "batch",
                RunEvent::PointDone { .. } => "point",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["started", "batch", "point"]);
        let stored = stored_report(&store).await;
        assert_eq!((stored.requests.len(), stored.points), (1, vec![stats]));
    }

    #[test]
    fn token_taps_count_into_their_point_and_request() {
        let spec = spec();
        let (tap, mut taps) = mpsc::unbounded_channel();
        for (point, seq, at_ns, tokens) in [(1, 2, 7_500_999, 3), (0, 3, 8_000, 1), (1, 0, 9_000, 4)] {
            tap.send(TokenArrival { point, seq, at_ns, tokens }).unwrap();
        }
        let mut pending = Pending::default();
        pending.drain(&spec, &mut taps);
        pending.sent(&spec, 1, 3, 12_345_678);
        let tokens = |request, at_us, tokens| TokensArrived { request, at_us, tokens };
        assert_eq!(pending.tokens, [tokens(6, 7_500, 3), tokens(3, 8, 1), tokens(4, 9, 4)]);
        assert_eq!(pending.sent, [SentRequest { request: 7, at_us: 12_345 }]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_requests_tokens_go_out_no_later_than_its_end() {
        let spec = spec();
        let Recording { run, mut observer, tap, recorder, _dir, .. } = recording(&spec).await;
        // Tapped in the stream, then reported by the sweep loop with its point's end, before
        // the recorder runs again.
        tap.send(TokenArrival { point: 0, seq: 1, at_ns: 2_000_000, tokens: 1 }).unwrap();
        observer.request_done(&finished(0, 1, 1_000_000, 2_000_000, 1));
        observer.point_done(0, &PointStats::default());
        drop((observer, tap));
        recorder.await.unwrap();
        let batches = batches(&run);
        assert_eq!(batches.len(), 1, "{batches:?}");
        assert_eq!(batches[0].tokens().collect::<Vec<_>>(), [(1, 2_000, 1)]);
        assert_eq!(batches[0].done.iter().map(|d| d.r).collect::<Vec<_>>(), [1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_telemetry_update_reaches_the_log_and_is_stored_with_the_next_point() {
        let spec = spec();
        let Recording { run, store, mut observer, recorder, _dir, .. } = recording(&spec).await;
        let sample = Sample {
            name: "nv_inference_pending_request_count".into(),
            family: "nv_inference_pending_request_count".into(),
            kind: MetricKind::Gauge,
            labels: vec![("model".into(), "m".into())],
            value: 3.0,
        };
        let update = Recorder::new("http://127.0.0.1:8002/metrics", 250).record(1_000, 300, Ok(vec![sample]));
        observer.telemetry_tap().unwrap().send(update.clone()).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        observer.point_done(0, &PointStats::default());
        drop(observer);
        recorder.await.unwrap();

        let events = logged(&run);
        let at = |wanted: fn(&RunEvent) -> bool| events.iter().position(wanted);
        let scrape = at(|e| matches!(e, RunEvent::Telemetry(_))).expect("the update is logged");
        assert_eq!(events[scrape], RunEvent::Telemetry(update.clone()));
        assert!(scrape < at(|e| matches!(e, RunEvent::PointDone { .. })).unwrap());
        let mut expected = Telemetry::of_spec(&spec);
        expected.apply(&update);
        assert!(!expected.scrapes.is_empty());
        assert_eq!(stored_report(&store).await.telemetry, Some(expected));
    }
}
