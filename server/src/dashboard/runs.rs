//! Runs started from the dashboard: each drives the engine in its own task and keeps an
//! append-only event log that any number of WebSockets replay and follow.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use shared::api::RunSummary;
use shared::live::request_index;
use shared::{Batch, ModelInfo, PointStats, RequestDone, RequestRecord, RunEvent, RunReport, RunStatus, SweepSpec};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{RunClock, utc_stamp};
use crate::engine::{Observer, TokenArrival, TokenTap, run_sweep_on};

/// How long sends, tokens and finished requests are gathered before they go out as one event.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(50);

/// Every run of this dashboard, oldest first.
pub struct Runs {
    list: Mutex<Vec<Arc<RunHandle>>>,
    shutdown: CancellationToken,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("run {0} is still in progress")]
    Busy(String),
}

impl Runs {
    pub fn new(shutdown: CancellationToken) -> Self {
        Self { list: Mutex::new(Vec::new()), shutdown }
    }

    /// The id of the run in progress, if any.
    pub fn busy(&self) -> Option<String> {
        lock(&self.list).iter().find(|run| !run.is_finished()).map(|run| run.id.clone())
    }

    /// Starts a run. One runs at a time, so that two runs never share the machine and
    /// distort each other's timing.
    pub fn start(&self, spec: SweepSpec, simulated: bool) -> Result<Arc<RunHandle>, StartError> {
        let mut list = lock(&self.list);
        if let Some(running) = list.iter().find(|run| !run.is_finished()) {
            return Err(StartError::Busy(running.id.clone()));
        }
        let clock = RunClock::start();
        let id = unique_id(&list, clock.start_unix_ns());
        let run = Arc::new(RunHandle::new(id, &spec, clock, simulated, self.shutdown.child_token()));
        list.push(run.clone());
        tokio::spawn(drive(run.clone(), spec, clock));
        Ok(run)
    }

    /// Adds a run that finished elsewhere (read from a file), with its whole event log.
    pub fn add_finished(&self, report: RunReport) -> Arc<RunHandle> {
        let mut list = lock(&self.list);
        let id = unique_id(&list, report.started_unix_ns);
        let run = Arc::new(RunHandle::finished(id, report));
        list.push(run.clone());
        run
    }

    pub fn get(&self, id: &str) -> Option<Arc<RunHandle>> {
        lock(&self.list).iter().find(|run| run.id == id).cloned()
    }

    /// Every run, newest first.
    pub fn list(&self) -> Vec<Arc<RunHandle>> {
        lock(&self.list).iter().rev().cloned().collect()
    }
}

/// `YYYYmmdd-HHMMSS-N`: sortable, readable, and unique within this dashboard.
fn unique_id(existing: &[Arc<RunHandle>], start_unix_ns: i64) -> String {
    let stamp = utc_stamp((start_unix_ns / 1_000_000_000) as u64);
    (1..).map(|n| format!("{stamp}-{n}")).find(|id| existing.iter().all(|run| &run.id != id)).expect("unbounded")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One run: its event log, its summary and, once finished, its full report.
pub struct RunHandle {
    pub id: String,
    cancel: CancellationToken,
    state: Mutex<RunState>,
    /// The log's length, for WebSockets waiting on new events.
    changed: watch::Sender<usize>,
}

struct RunState {
    log: Vec<Utf8Bytes>,
    summary: RunSummary,
    report: Option<Arc<RunReport>>,
}

impl RunHandle {
    /// A run with an empty log; its summary is filled by the events pushed to it.
    fn empty(
        id: String,
        spec: &SweepSpec,
        started_unix_ns: i64,
        simulated: bool,
        cancel: CancellationToken,
        report: Option<Arc<RunReport>>,
    ) -> Self {
        let summary = RunSummary {
            id: id.clone(),
            spec: spec.clone(),
            started_unix_ns,
            simulated,
            status: RunStatus::Running,
            model: None,
            total_requests: spec.total_requests(),
            finished_requests: 0,
            errors: 0,
            points: Vec::new(),
            name: String::new(),
            notes: String::new(),
            tags: Vec::new(),
        };
        Self {
            id,
            cancel,
            state: Mutex::new(RunState { log: Vec::new(), summary, report }),
            changed: watch::Sender::new(0),
        }
    }

    fn new(id: String, spec: &SweepSpec, clock: RunClock, simulated: bool, cancel: CancellationToken) -> Self {
        let run = Self::empty(id.clone(), spec, clock.start_unix_ns(), simulated, cancel, None);
        run.push(&RunEvent::Started { id, spec: spec.clone(), started_unix_ns: clock.start_unix_ns(), simulated });
        run
    }

    /// A run that finished elsewhere. Its summary starts empty and is filled by replaying
    /// the run's event log, exactly as a live run's is.
    fn finished(id: String, report: RunReport) -> Self {
        let events = shared::live::events_from_report(&id, &report, false);
        let (spec, started) = (report.spec.clone(), report.started_unix_ns);
        let run = Self::empty(id, &spec, started, false, CancellationToken::new(), Some(Arc::new(report)));
        for event in &events {
            run.push(event);
        }
        run
    }

    /// Appends an event to the log and wakes every follower.
    fn push(&self, event: &RunEvent) {
        let text = serde_json::to_string(event).expect("events serialize");
        let mut state = lock(&self.state);
        let summary = &mut state.summary;
        match event {
            RunEvent::Prepared { model } => summary.model = Some(model.clone()),
            RunEvent::Batch(batch) => {
                summary.finished_requests += batch.done.len() as u64;
                summary.errors += batch.done.iter().filter(|d| d.error.is_some()).count() as u64;
            }
            RunEvent::PointDone { stats, .. } => summary.points.push(stats.as_ref().clone()),
            RunEvent::Finished { status } => summary.status = status.clone(),
            RunEvent::Started { .. } | RunEvent::PointStarted { .. } => {}
        }
        state.log.push(text.into());
        let len = state.log.len();
        drop(state);
        self.changed.send_replace(len);
    }

    pub fn summary(&self) -> RunSummary {
        lock(&self.state).summary.clone()
    }

    /// The full report (every request's record), once the run has finished.
    pub fn report(&self) -> Option<Arc<RunReport>> {
        lock(&self.state).report.clone()
    }

    pub fn is_finished(&self) -> bool {
        lock(&self.state).summary.status != RunStatus::Running
    }

    /// Asks the run to stop; what it measured so far is kept.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Events from index `from` on, and whether the log is complete.
    pub fn events_since(&self, from: usize) -> (Vec<Utf8Bytes>, bool) {
        let state = lock(&self.state);
        let complete = state.summary.status != RunStatus::Running;
        (state.log.get(from..).unwrap_or_default().to_vec(), complete)
    }

    /// Wakes on every new event.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.changed.subscribe()
    }

    fn finish(&self, report: RunReport) {
        let status = report.status.clone();
        lock(&self.state).report = Some(Arc::new(report));
        self.push(&RunEvent::Finished { status });
    }
}

/// Runs the sweep, then records how it ended. A panic in the engine fails the run with a
/// message instead of leaving it running forever.
async fn drive(run: Arc<RunHandle>, spec: SweepSpec, clock: RunClock) {
    let (notes, notes_rx) = mpsc::unbounded_channel();
    let (tap, tap_rx) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(record(run.clone(), spec.clone(), notes_rx, tap_rx));
    let cancel = run.cancel.clone();
    let sweep_spec = spec.clone();
    let sweep = tokio::spawn(async move {
        let mut observer = Forwarder { spec: sweep_spec.clone(), notes, tap };
        run_sweep_on(clock, sweep_spec, &mut observer, cancel).await
    });
    let report = match sweep.await {
        Ok(report) => report,
        Err(err) => {
            tracing::error!(run = %run.id, cause = %err, "the sweep task died");
            RunReport {
                tool: format!("tokenscope {}", env!("CARGO_PKG_VERSION")),
                spec,
                started_unix_ns: clock.start_unix_ns(),
                model: None,
                status: RunStatus::Failed { error: format!("internal error in tokenscope: {err}; please report it") },
                prompt_lengths_approximate: true,
                points: Vec::new(),
                requests: Vec::new(),
            }
        }
    };
    let _ = recorder.await;
    run.finish(report);
}

/// What the sweep's observer hands to the recorder.
enum Note {
    Prepared(ModelInfo),
    PointStarted(u32, u32),
    Sent(u32, u64),
    Done(RequestDone),
    PointDone(u32, Box<PointStats>),
}

/// Passes the engine's news to the recorder without blocking the sweep loop.
struct Forwarder {
    spec: SweepSpec,
    notes: mpsc::UnboundedSender<Note>,
    tap: TokenTap,
}

impl Observer for Forwarder {
    fn prepared(&mut self, model: &ModelInfo) {
        let _ = self.notes.send(Note::Prepared(model.clone()));
    }

    fn point_started(&mut self, point: usize, prompt_length: u32) {
        let _ = self.notes.send(Note::PointStarted(point as u32, prompt_length));
    }

    fn request_sent(&mut self, point: u32, seq: u32, send_ns: u64) {
        let _ = self.notes.send(Note::Sent(request_index(&self.spec, point, seq), send_ns / 1000));
    }

    fn request_done(&mut self, record: &RequestRecord) {
        let _ = self.notes.send(Note::Done(RequestDone::of(&self.spec, record)));
    }

    fn point_done(&mut self, point: usize, stats: &PointStats) {
        let _ = self.notes.send(Note::PointDone(point as u32, Box::new(stats.clone())));
    }

    fn token_tap(&self) -> Option<TokenTap> {
        Some(self.tap.clone())
    }
}

#[derive(Default)]
struct Pending {
    sent: Vec<(u32, u64)>,
    tokens: Vec<(u32, u64, u32)>,
    done: Vec<RequestDone>,
}

impl Pending {
    fn flush(&mut self, run: &RunHandle) {
        if self.sent.is_empty() && self.tokens.is_empty() && self.done.is_empty() {
            return;
        }
        let batch = Batch::from_absolute(&self.sent, &self.tokens, std::mem::take(&mut self.done));
        self.sent.clear();
        self.tokens.clear();
        run.push(&RunEvent::Batch(batch));
    }

    fn token(&mut self, spec: &SweepSpec, t: TokenArrival) {
        self.tokens.push((request_index(spec, t.point, t.seq), t.at_ns / 1000, t.tokens));
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
    spec: SweepSpec,
    mut notes: mpsc::UnboundedReceiver<Note>,
    mut taps: mpsc::UnboundedReceiver<TokenArrival>,
) {
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
                    Some(Note::Sent(r, at)) => { pending.sent.push((r, at)); continue; }
                    Some(Note::Done(done)) => { pending.done.push(done); continue; }
                    Some(Note::Prepared(model)) => RunEvent::Prepared { model },
                    Some(Note::PointStarted(point, prompt_length)) => RunEvent::PointStarted { point, prompt_length },
                    Some(Note::PointDone(point, stats)) => RunEvent::PointDone { point, stats },
                };
                pending.flush(&run);
                run.push(&event);
            }
            Some(t) = taps.recv() => pending.token(&spec, t),
            _ = tick.tick() => pending.flush(&run),
        }
    }
    pending.drain(&spec, &mut taps);
    pending.flush(&run);
}
