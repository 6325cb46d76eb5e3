//! Runs started from the dashboard: each drives the engine in its own task and keeps an
//! append-only event log that any number of WebSockets replay and follow.
//!
//! Every run is also written to the [`Store`] as its results settle: the run when it starts,
//! what the run's recorder (`recorder`) settles as it goes and the outcome at the end.
//! Runs of earlier sessions are listed from their summaries and read in full only when
//! asked for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::ws::Utf8Bytes;
use shared::api::RunSummary;
use shared::{RunEvent, RunReport, RunStatus, SweepSpec};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::recorder;
use crate::clock::{RunClock, unix_now_ns, utc_stamp};
use crate::engine::run_sweep_apart;
use crate::store::{NewRun, RunMeta, Store, StoreError};

/// The most events a WebSocket takes from a run's log at a time: the run's lock is held
/// while they are copied, so a follower that joins a long log never holds it for long.
pub const EVENTS_PER_SEND: usize = 256;

/// Every run of this dashboard, oldest first.
pub struct Runs {
    list: List,
    shutdown: CancellationToken,
    store: Store,
    retention: Retention,
    /// How many runs' tasks are going: a run's task ends after its end is written and
    /// retention applied.
    drives: Arc<watch::Sender<usize>>,
}

/// The runs, oldest first: in the order they entered the store.
type List = Arc<Mutex<Vec<Arc<RunHandle>>>>;

/// Which finished runs the dashboard keeps; both off by default. A run in progress is never
/// deleted, nor is a run the store could not keep, which is in memory only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the newest this many finished runs.
    pub keep_runs: Option<u32>,
    /// Keep finished runs added to the store less than this many days ago.
    pub keep_days: Option<u32>,
}

impl Retention {
    /// The ids of the runs to delete at `now_unix_ns`, from `runs` given oldest first as
    /// (id, when it entered the store, whether retention may delete it).
    pub fn expired<'a>(&self, runs: &[(&'a str, i64, bool)], now_unix_ns: i64) -> Vec<&'a str> {
        let cutoff = self.keep_days.map(|days| now_unix_ns - i64::from(days) * 86_400 * 1_000_000_000);
        let deletable: Vec<&(&str, i64, bool)> = runs.iter().filter(|(_, _, deletable)| *deletable).collect();
        let surplus = self.keep_runs.map_or(0, |keep| deletable.len().saturating_sub(keep as usize));
        deletable
            .iter()
            .enumerate()
            .filter(|(index, (_, added, _))| *index < surplus || cutoff.is_some_and(|cutoff| *added < cutoff))
            .map(|(_, (id, _, _))| *id)
            .collect()
    }

    fn is_off(&self) -> bool {
        self.keep_runs.is_none() && self.keep_days.is_none()
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("run {0} is still in progress")]
    Busy(String),
}

/// Why a run could not be changed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("there is no run {0:?}")]
    NoRun(String),
    #[error("run {0} is still in progress")]
    Running(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Runs {
    /// The runs kept in `store`. Runs that were still going when their dashboard stopped are
    /// marked interrupted, with what they had finished; then `retention` is applied.
    pub async fn load(store: Store, shutdown: CancellationToken, retention: Retention) -> Result<Self, StoreError> {
        let (summaries, mut added) = store
            .call(|db| {
                let interrupted = db.interrupt_running()?;
                if interrupted > 0 {
                    tracing::warn!(runs = interrupted, "runs cut short by a stopped dashboard are marked interrupted");
                }
                Ok((db.summaries()?, db.added_times()?))
            })
            .await?;
        let list = summaries
            .into_iter()
            .map(|summary| {
                let added = added.remove(&summary.id).unwrap_or(summary.started_unix_ns);
                Arc::new(RunHandle::stored(summary, added))
            })
            .collect();
        let drives = Arc::new(watch::Sender::new(0));
        let runs = Self { list: Arc::new(Mutex::new(list)), shutdown, store, retention, drives };
        expire(&runs.list, &runs.store, retention).await;
        Ok(runs)
    }

    /// Which finished runs are kept.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    pub fn store(&self) -> &Store {
        &self.store
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
        let freed = release_memory(&list);
        let clock = RunClock::start();
        let id = unique_id(&list, clock.start_unix_ns());
        let run = Arc::new(RunHandle::new(id.clone(), &spec, clock, simulated, self.shutdown.child_token()));
        list.push(run.clone());
        // Queued before anything the run writes later, so its row is there for them.
        let new = NewRun { id, spec: spec.clone(), started_unix_ns: clock.start_unix_ns(), simulated, tool: tool() };
        self.store.submit("record the start of a run", move |db| db.insert_run(&new));
        self.drives.send_modify(|n| *n += 1);
        let keeper = Keeper {
            list: self.list.clone(),
            store: self.store.clone(),
            retention: self.retention,
            drives: self.drives.clone(),
        };
        tokio::spawn(drive(run.clone(), spec, clock, keeper));
        drop(list);
        // Freed with no lock held: freeing a large run takes a while.
        drop(freed);
        Ok(run)
    }

    /// Adds a run that finished elsewhere (read from a file), with its whole event log, once
    /// the store has it. A run the store cannot take is not listed: the file it came from is
    /// all there is of it, and the error says so.
    pub async fn add_finished(&self, report: RunReport) -> Result<Arc<RunHandle>, StoreError> {
        let report = Arc::new(report);
        let (run, stored, freed) = loop {
            let id = unique_id(&lock(&self.list), report.started_unix_ns);
            // The log of a large run takes a while to build: no lock is held meanwhile, and
            // the runtime's threads stay free for other requests.
            let build = report.clone();
            let run = tokio::task::spawn_blocking(move || RunHandle::finished(id, build))
                .await
                .expect("building a run's log does not panic");
            let mut list = lock(&self.list);
            if list.iter().any(|r| r.id == run.id) {
                // Another run of the same second took the id meanwhile: build again under another.
                continue;
            }
            let freed = release_memory(&list);
            let new = NewRun {
                id: run.id.clone(),
                spec: report.spec.clone(),
                started_unix_ns: report.started_unix_ns,
                simulated: false,
                tool: report.tool.clone(),
            };
            let run = Arc::new(run);
            let stored = report.clone();
            // Queued before the run is listed, so that a deletion, which needs the run
            // listed, is always written after it.
            let stored = self.store.queue(move |db| db.import(&new, &stored));
            list.push(run.clone());
            break (run, stored, freed);
        };
        drop(freed);
        if let Err(err) = stored.await {
            lock(&self.list).retain(|r| !Arc::ptr_eq(r, &run));
            return Err(err);
        }
        expire(&self.list, &self.store, self.retention).await;
        Ok(run)
    }

    /// Replaces a run's name, notes and tags, in the store first.
    pub async fn set_meta(&self, id: &str, meta: RunMeta) -> Result<RunSummary, ChangeError> {
        let run = self.get(id).ok_or_else(|| ChangeError::NoRun(id.into()))?;
        let stored = meta.clone();
        let key = id.to_string();
        self.store.call(move |db| db.set_meta(&key, &stored)).await?;
        run.set_meta(meta);
        Ok(run.summary())
    }

    /// Deletes a finished run from the store and from the list.
    pub async fn delete(&self, id: &str) -> Result<(), ChangeError> {
        let run = self.get(id).ok_or_else(|| ChangeError::NoRun(id.into()))?;
        if !run.is_finished() {
            return Err(ChangeError::Running(id.into()));
        }
        delete(&self.list, &self.store, id).await?;
        Ok(())
    }

    /// A finished run's whole report: from memory while it is there (see [`release_memory`]),
    /// from the store otherwise. `None` while the run is in progress.
    pub async fn report(&self, run: &RunHandle) -> Result<Option<Arc<RunReport>>, StoreError> {
        if let Some(report) = run.report() {
            return Ok(Some(report));
        }
        if !run.is_finished() {
            return Ok(None);
        }
        let id = run.id.clone();
        Ok(Some(Arc::new(self.store.call(move |db| db.report(&id)).await?)))
    }

    /// The event log of a run kept in the store only, rebuilt from its stored report.
    pub async fn stored_events(&self, run: &RunHandle) -> Result<Vec<Utf8Bytes>, StoreError> {
        let Some(report) = self.report(run).await? else { return Ok(Vec::new()) };
        let (id, simulated) = (run.id.clone(), run.summary().simulated);
        // A large run's log takes a while to build: off the runtime's threads.
        let events = tokio::task::spawn_blocking(move || {
            let events = shared::live::events_from_report(&id, &report, simulated);
            events
                .iter()
                .map(|event| Utf8Bytes::from(serde_json::to_string(event).expect("events serialize")))
                .collect()
        });
        Ok(events.await.expect("building a run's log does not panic"))
    }

    /// Waits for the run in progress, if any, to record its end.
    pub async fn until_idle(&self) {
        let _ = self.drives.subscribe().wait_for(|&going| going == 0).await;
    }

    pub fn get(&self, id: &str) -> Option<Arc<RunHandle>> {
        lock(&self.list).iter().find(|run| run.id == id).cloned()
    }

    /// Every run, newest first.
    pub fn list(&self) -> Vec<Arc<RunHandle>> {
        lock(&self.list).iter().rev().cloned().collect()
    }
}

fn tool() -> String {
    format!("tokenscope {}", env!("CARGO_PKG_VERSION"))
}

/// Deletes a run from the store, then from the list.
async fn delete(list: &Mutex<Vec<Arc<RunHandle>>>, store: &Store, id: &str) -> Result<(), StoreError> {
    let key = id.to_string();
    match store.call(move |db| db.delete(&key)).await {
        // A run whose first write failed was never stored; it only has to leave the list.
        Ok(()) | Err(StoreError::NoRun(_)) => {}
        Err(err) => return Err(err),
    }
    let gone: Vec<Arc<RunHandle>> = {
        let mut list = lock(list);
        let (gone, kept) = std::mem::take(&mut *list).into_iter().partition(|r| r.id == id);
        *list = kept;
        gone
    };
    // A run of this session may hold its records: they are freed with no lock held.
    drop(gone);
    Ok(())
}

/// Deletes the finished runs that `retention` keeps no longer, from the store and the list.
async fn expire(list: &Mutex<Vec<Arc<RunHandle>>>, store: &Store, retention: Retention) {
    if retention.is_off() {
        return;
    }
    let expired: Vec<String> = {
        let list = lock(list);
        let runs: Vec<(&str, i64, bool)> = list
            .iter()
            .map(|run| {
                let summary = run.summary();
                (
                    run.id.as_str(),
                    run.added_unix_ns,
                    summary.status != RunStatus::Running && summary.not_saved.is_none(),
                )
            })
            .collect();
        retention.expired(&runs, unix_now_ns()).into_iter().map(String::from).collect()
    };
    for id in &expired {
        match delete(list, store, id).await {
            Ok(()) => tracing::info!(run = %id, "run deleted: the dashboard keeps no more (--keep-runs, --keep-days)"),
            Err(err) => {
                tracing::error!(run = %id, cause = %err, store = %store.path().display(), "could not delete an expired run");
            }
        }
    }
}

/// What a run's task needs to apply retention once the run has ended. Dropped when the task
/// ends, which [`Runs::until_idle`] waits for.
struct Keeper {
    list: List,
    store: Store,
    retention: Retention,
    drives: Arc<watch::Sender<usize>>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.drives.send_modify(|n| *n -= 1);
    }
}

/// Lets go of the records of every finished run the store has, before another run comes in,
/// and of its event log unless a WebSocket is following it: a long-lived dashboard holds one
/// run in memory, not every run it ever ran. Both are read back from the store when asked
/// for, as a run of an earlier session's are. A run the store could not keep keeps them.
/// Answers what was let go of, for the caller to free once it holds no lock.
fn release_memory(list: &[Arc<RunHandle>]) -> Vec<(Option<Arc<RunReport>>, Vec<Utf8Bytes>)> {
    let mut freed = Vec::new();
    for run in list {
        let mut state = lock(&run.state);
        if state.summary.status == RunStatus::Running || state.summary.not_saved.is_some() {
            continue;
        }
        let report = state.report.take();
        let mut log = Vec::new();
        // Followers subscribe under this lock (`RunHandle::follow`), so none starts meanwhile.
        if run.changed.receiver_count() == 0 {
            log = std::mem::take(&mut state.log);
            state.stored = true;
        }
        freed.push((report, log));
    }
    freed
}

/// `YYYYmmdd-HHMMSS-N`: sortable, readable, and unique within this dashboard and its store.
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
    /// The WebSockets sending this run's events now; see [`RunHandle::watch`].
    watchers: AtomicUsize,
    /// When the run entered the store, in nanoseconds since the Unix epoch, for retention.
    added_unix_ns: i64,
}

/// A WebSocket's place among a run's watchers, given back when it drops.
pub struct Watching {
    run: Arc<RunHandle>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.run.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

struct RunState {
    /// Empty when `stored`: the log is rebuilt from the store when asked for.
    log: Vec<Utf8Bytes>,
    summary: RunSummary,
    report: Option<Arc<RunReport>>,
    /// The run's log and records are in the store only: a run of an earlier session, or one
    /// whose memory was let go of ([`release_memory`]).
    stored: bool,
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
        let summary = RunSummary::starting(id.clone(), spec.clone(), started_unix_ns, simulated);
        Self {
            id,
            cancel,
            state: Mutex::new(RunState { log: Vec::new(), summary, report, stored: false }),
            changed: watch::Sender::new(0),
            watchers: AtomicUsize::new(0),
            added_unix_ns: unix_now_ns(),
        }
    }

    pub(super) fn new(
        id: String,
        spec: &SweepSpec,
        clock: RunClock,
        simulated: bool,
        cancel: CancellationToken,
    ) -> Self {
        let run = Self::empty(id.clone(), spec, clock.start_unix_ns(), simulated, cancel, None);
        run.push(&RunEvent::Started {
            id,
            spec: Box::new(spec.clone()),
            started_unix_ns: clock.start_unix_ns(),
            simulated,
        });
        run
    }

    /// A run that finished elsewhere. Its summary starts empty and is filled by replaying
    /// the run's event log, exactly as a live run's is.
    fn finished(id: String, report: Arc<RunReport>) -> Self {
        let events = shared::live::events_from_report(&id, &report, false);
        let (spec, started) = (report.spec.clone(), report.started_unix_ns);
        let run = Self::empty(id, &spec, started, false, CancellationToken::new(), Some(report));
        for event in &events {
            run.push(event);
        }
        run
    }

    /// A run of an earlier session, known by its summary until someone asks for more.
    fn stored(summary: RunSummary, added_unix_ns: i64) -> Self {
        Self {
            id: summary.id.clone(),
            cancel: CancellationToken::new(),
            state: Mutex::new(RunState { log: Vec::new(), summary, report: None, stored: true }),
            changed: watch::Sender::new(0),
            watchers: AtomicUsize::new(0),
            added_unix_ns,
        }
    }

    /// Appends an event to the log and wakes every follower.
    pub(super) fn push(&self, event: &RunEvent) {
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
            RunEvent::NotSaved { error } => summary.not_saved = Some(error.clone()),
            RunEvent::Finished { status, .. } => {
                summary.status = status.clone();
                summary.total_requests = summary.spec.requests_sent_bound(Some(summary.finished_requests));
            }
            RunEvent::PointStarted { point, load, .. } => summary.spec.add_probe(*point, *load),
            RunEvent::Started { .. } | RunEvent::Telemetry(_) => {}
        }
        state.log.push(text.into());
        let len = state.log.len();
        drop(state);
        self.changed.send_replace(len);
    }

    pub fn summary(&self) -> RunSummary {
        lock(&self.state).summary.clone()
    }

    /// The full report (every request's record), once the run has finished, while it is in
    /// memory: the latest run's is, and those of runs the store could not keep.
    pub fn report(&self) -> Option<Arc<RunReport>> {
        lock(&self.state).report.clone()
    }

    /// Subscribes to the run's event log, which stays in memory while the subscription lasts;
    /// `None` when the log is in the store only (see [`release_memory`]).
    pub fn follow(&self) -> Option<watch::Receiver<usize>> {
        let state = lock(&self.state);
        (!state.stored).then(|| self.changed.subscribe())
    }

    fn set_meta(&self, meta: RunMeta) {
        let summary = &mut lock(&self.state).summary;
        (summary.name, summary.notes, summary.tags) = (meta.name, meta.notes, meta.tags);
    }

    pub fn is_finished(&self) -> bool {
        lock(&self.state).summary.status != RunStatus::Running
    }

    /// Asks the run to stop; what it measured so far is kept.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Up to [`EVENTS_PER_SEND`] events from index `from` on, and whether they end the log
    /// of a finished run.
    pub fn events_since(&self, from: usize) -> (Vec<Utf8Bytes>, bool) {
        let state = lock(&self.state);
        let rest = state.log.get(from..).unwrap_or_default();
        let events = rest[..rest.len().min(EVENTS_PER_SEND)].to_vec();
        let complete = state.summary.status != RunStatus::Running && events.len() == rest.len();
        (events, complete)
    }

    /// Takes a place among the WebSockets sending this run's events, unless `most` are.
    pub fn watch(self: &Arc<Self>, most: usize) -> Option<Watching> {
        self.watchers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < most).then_some(n + 1))
            .ok()
            .map(|_| Watching { run: self.clone() })
    }

    /// How many WebSockets are sending this run's events.
    pub fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Acquire)
    }

    /// Wakes on every new event.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.changed.subscribe()
    }

    fn finish(&self, report: Arc<RunReport>) {
        let (status, engine) = (report.status.clone(), report.engine.clone());
        lock(&self.state).report = Some(report);
        self.push(&RunEvent::Finished { status, engine });
    }
}

/// Runs the sweep, then records how it ended. A panic in the engine fails the run with a
/// message instead of leaving it running forever.
async fn drive(run: Arc<RunHandle>, spec: SweepSpec, clock: RunClock, keeper: Keeper) {
    let store = keeper.store.clone();
    let (observer, recorder) = recorder::start(run.clone(), &spec, store.clone());
    let cancel = run.cancel.clone();
    // Dropping the observer closes the recorder's queues.
    let outcome = run_sweep_apart(clock, spec, observer, cancel).await.map(|(report, _observer)| report);
    let _ = recorder.await;
    let report = outcome.unwrap_or_else(|err| {
        tracing::error!(run = %run.id, cause = %err, "the sweep died");
        let error = format!("internal error in tokenscope: {err}; please report it");
        // The spec as the run's events left it: with the rates of the probes that started.
        let spec = run.summary().spec;
        RunReport { status: RunStatus::Failed { error }, ..RunReport::new(tool(), spec, clock.start_unix_ns()) }
    });
    let report = Arc::new(report);
    let stored = report.clone();
    let id = run.id.clone();
    // The end is written with every record, whatever earlier writes missed: whether it is
    // stored decides whether the run outlives this dashboard, so viewers are told.
    if let Err(err) = store.call(move |db| db.finish(&id, &stored)).await {
        tracing::error!(run = %run.id, cause = %err, store = %store.path().display(), "could not store the end of a run; the run is kept in memory only");
        // Viewers are told why without the local path, which the log has.
        run.push(&RunEvent::NotSaved { error: format!("the run store could not take it: {}", err.for_client()) });
    }
    run.finish(report);
    expire(&keeper.list, &keeper.store, keeper.retention).await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use shared::{RequestRecord, ResponseRecord, Responses, TokenCountSource};

    use super::*;

    /// A finished run of `requests` requests of `tokens` tokens each.
    fn large_report(requests: u32, tokens: u64) -> RunReport {
        let spec = SweepSpec { prompt_lengths: vec![16], requests, max_tokens: tokens as u32, ..SweepSpec::default() };
        let requests = (0..requests)
            .map(|seq| {
                let send_ns = u64::from(seq) * 1_000_000;
                let texts: Vec<String> = (1..=tokens).map(|i| format!(" w{i}")).collect();
                let responses: Responses = (1..)
                    .zip(&texts)
                    .map(|(i, text)| ResponseRecord {
                        at_ns: send_ns + i * 100_000,
                        tokens: 1,
                        text,
                        server_send_unix_ns: None,
                    })
                    .collect();
                RequestRecord {
                    point: 0,
                    seq,
                    warmup: false,
                    id: format!("0-{seq}"),
                    prompt_words: 16,
                    num_input_tokens: None,
                    send_ns,
                    intended_ns: None,
                    server_recv_unix_ns: None,
                    final_ns: responses.last().map(|r| r.at_ns),
                    responses,
                    token_source: TokenCountSource::Responses,
                    error: None,
                    finish_reason: None,
                }
            })
            .collect();
        let mut report = RunReport {
            status: RunStatus::Completed,
            requests,
            ..RunReport::new("tokenscope test".into(), spec, 1_700_000_000_000_000_000)
        };
        report.recompute_points();
        report
    }

    #[test]
    fn retention_deletes_the_oldest_finished_runs_past_the_limits() {
        const DAY: i64 = 86_400 * 1_000_000_000;
        let now = 100 * DAY;
        // Oldest first: (id, added, deletable); "run" is in progress.
        let runs = [("a", 10 * DAY, true), ("run", 20 * DAY, false), ("b", 95 * DAY, true), ("c", 99 * DAY, true)];
        let off = Retention::default();
        assert!(off.is_off() && off.expired(&runs, now).is_empty());
        let keep = |runs, days| Retention { keep_runs: runs, keep_days: days };
        assert_eq!(keep(Some(2), None).expired(&runs, now), ["a"], "a run in progress is not counted");
        assert_eq!(keep(Some(1), None).expired(&runs, now), ["a", "b"]);
        assert!(keep(Some(3), None).expired(&runs, now).is_empty());
        assert_eq!(keep(None, Some(30)).expired(&runs, now), ["a"], "a run in progress is never deleted");
        assert_eq!(keep(None, Some(3)).expired(&runs, now), ["a", "b"]);
        assert_eq!(keep(Some(2), Some(3)).expired(&runs, now), ["a", "b"], "either limit deletes");
        assert!(keep(Some(5), Some(365)).expired(&runs, now).is_empty());
    }

    #[test]
    fn a_follower_joining_a_long_log_takes_it_a_part_at_a_time() {
        let run = RunHandle::finished("r".into(), Arc::new(large_report(3, 2)));
        for i in 0..(2 * EVENTS_PER_SEND) {
            run.push(&RunEvent::PointStarted { point: 0, prompt_length: i as u32, load: None });
        }
        let total = lock(&run.state).log.len();
        let (mut taken, mut parts) = (0, 0);
        loop {
            let (events, complete) = run.events_since(taken);
            assert!(events.len() <= EVENTS_PER_SEND);
            taken += events.len();
            parts += 1;
            if complete {
                break;
            }
        }
        assert_eq!((taken, parts), (total, total.div_ceil(EVENTS_PER_SEND)));
    }

    #[test]
    fn a_run_serves_at_most_the_websockets_it_is_allowed() {
        let run = Arc::new(RunHandle::finished("r".into(), Arc::new(large_report(1, 1))));
        let first = run.watch(2).expect("a first place");
        let second = run.watch(2).expect("a second place");
        assert!(run.watch(2).is_none());
        assert_eq!(run.watchers(), 2);
        drop(first);
        let _third = run.watch(2).expect("a freed place");
        drop(second);
        assert_eq!(run.watchers(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_list_answers_while_a_large_imports_log_is_built() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let runs = Arc::new(Runs::load(store, CancellationToken::new(), Retention::default()).await.unwrap());
        // A run whose log takes long enough to build that a list waiting for it would notice,
        // however fast this machine is: doubled until it takes 200 ms on its own.
        let mut requests = 1_000;
        let (report, build) = loop {
            let report = large_report(requests, 200);
            let started = Instant::now();
            drop(RunHandle::finished("20240101-000000-9".into(), Arc::new(report.clone())));
            let build = started.elapsed();
            if build > Duration::from_millis(200) || requests >= 64_000 {
                break (report, build);
            }
            requests *= 2;
        };

        let done = Arc::new(AtomicBool::new(false));
        let lister = std::thread::spawn({
            let (runs, done) = (runs.clone(), done.clone());
            move || {
                let mut longest = Duration::ZERO;
                while !done.load(Ordering::Relaxed) {
                    let asked = Instant::now();
                    let _ = runs.list();
                    longest = longest.max(asked.elapsed());
                    std::thread::sleep(Duration::from_millis(1));
                }
                longest
            }
        });
        let run = runs.add_finished(report).await.unwrap();
        done.store(true, Ordering::Relaxed);
        let longest = lister.join().unwrap();
        // Holding the lock, the list would wait the whole build; a busy machine's pauses are
        // far shorter than half of it.
        assert!(longest < build / 2, "listing waited {longest:?} while a log that takes {build:?} was built");
        assert_eq!(runs.list()[0].id, run.id);
        assert_eq!(run.summary().finished_requests, u64::from(requests));
    }
}
