//! Soak benchmark: a dashboard kept at moderate load for half an hour, watching its memory.
//!
//! The dashboard runs in this process, as `tokenscope serve` runs it (with its allocator, and
//! off transparent huge pages, see [`server::small_pages`]), against the built-in simulator on
//! a port-0 listener. For `SOAK_MINUTES` (default 30, at least 3):
//!
//! - runs are started one after another through `POST /api/runs` (three prompt lengths,
//!   42 requests each, 4 at once, 64 tokens out: about 25 s a run);
//! - 20 viewers follow them over `/api/runs/ID/events`, each reading every event to the close,
//!   then following the next run;
//! - every 10 s the runs list is read and one export of a finished run rendered, in turn
//!   `run.json`, `requests.csv`, `points.csv` and `profile.json`;
//! - the process's resident memory (`VmRSS` of `/proc/self/status`, the dashboard's and this
//!   benchmark's clients' together) is sampled once a minute at a run boundary, and every 5 s
//!   whatever the run is doing.
//!
//! Within a run the memory swings by several MiB (the run's records and log grow, then are
//! let go of when the next run starts), so a sample taken at a random moment of a run measures
//! mostly where in the run it landed. The per-minute sample is therefore taken at the same
//! point of every run: at each minute mark the sampler asks the runner for a sample, and the
//! runner, which starts each run once the one before has finished, takes it the next time it
//! is about to start a run: the run before has finished and its 20 viewers have read it to the
//! close (or 10 s have passed), and the next run has not been asked for. That run then starts
//! as it would have. The every-5-s samples are printed too, each minute's as min/mean/max, so
//! the swing stays in view.
//!
//! At the end it checks that every run started is stored and completed, counts errors (any
//! answer other than 2xx, except 409 and 503 with a `Retry-After`, which are counted as
//! refusals), and compares the mean of the run-boundary samples of the last 10 minutes with
//! that of minutes 5 to 10 (with fewer than 20 minutes: the last third of the samples with the
//! middle third). It exits non-zero on an error or a growth past 10%. Linux only; not run in
//! CI. Run with `SOAK_MINUTES=30 cargo bench -p server --bench soak`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use server::dashboard::{self, AppState, DashboardConfig};
use server::sim::{self, SimConfig};
use shared::api::{EXPORTS, RunSummary};
use shared::{RunEvent, RunStatus, SweepSpec};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

/// As in the `tokenscope` binary, so that the memory measured is the allocator's it ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const VIEWERS: usize = 20;
const EXPORT_EVERY: Duration = Duration::from_secs(10);
const SAMPLE_EVERY: Duration = Duration::from_secs(60);
/// The random-phase samples, shown beside the run-boundary ones.
const PHASE_SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How long the runner waits for the viewers to read a finished run to the close before it
/// takes a run-boundary sample anyway.
const VIEWERS_WAIT: Duration = Duration::from_secs(10);
/// A viewer that waits this long for the next event counts the socket as stuck.
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);
/// A run that has not finished after this long counts as stuck.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// The most the memory mean of the last window may exceed that of the earlier one. A fall
/// passes: only growth is a leak.
const RSS_TOLERANCE: f64 = 0.10;

/// Asks the runner for a run-boundary sample: it answers the resident memory in KiB.
type SampleRequest = oneshot::Sender<u64>;

/// What the load saw, shared by its tasks.
#[derive(Default)]
struct Tally {
    runs_started: AtomicU64,
    runs_finished: AtomicU64,
    refused: AtomicU64,
    events: AtomicU64,
    follows: AtomicU64,
    exports: AtomicU64,
    export_bytes: AtomicU64,
    lists: AtomicU64,
    errors: Mutex<Vec<String>>,
    started: Mutex<Vec<String>>,
    /// The runs finished, newest last: what the exports are taken of.
    finished: Mutex<Vec<String>>,
    /// Events read per run, one entry per follow: every follow of a run must read the same.
    read_per_run: Mutex<BTreeMap<String, Vec<u64>>>,
}

impl Tally {
    fn error(&self, what: String) {
        eprintln!("error: {what}");
        lock(&self.errors).push(what);
    }

    fn error_count(&self) -> usize {
        lock(&self.errors).len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    server::small_pages();
    let minutes = match soak_minutes() {
        Ok(minutes) => minutes,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let Some(rss_at_start) = rss_kib() else {
        eprintln!("error: /proc/self/status has no VmRSS line; the soak benchmark measures memory on Linux only");
        return ExitCode::from(2);
    };
    println!(
        "soak benchmark: {minutes} min, {VIEWERS} viewers, an export and the runs list every {} s ({} cores)",
        EXPORT_EVERY.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "memory is the resident set (VmRSS) of this process, which runs the dashboard, the simulator and \
         the load's clients together; transparent huge pages {}",
        if status_value("THP_enabled:") == Some(0) { "off, as in tokenscope" } else { "ON, unlike tokenscope" }
    );

    let stop = CancellationToken::new();
    let (sim_addr, sim_stop) = sim::spawn(SimConfig::default()).await.expect("the simulator starts");
    let target = format!("http://{sim_addr}");
    let data = tempfile::tempdir().expect("a temporary folder");
    let config = DashboardConfig {
        default_target: target.clone(),
        simulator: Some(target.clone()),
        simulator_protocols: Vec::new(),
        simulator_metrics: None,
        data_dir: data.path().into(),
        access: dashboard::access::Access::open(),
        tokenizer_dirs: Vec::new(),
    };
    let state = AppState::open(config, stop.clone()).await.expect("the dashboard opens its store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("a local address"));
    let server = tokio::spawn(dashboard::serve(listener, state.clone(), stop.clone()));

    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("an HTTP client");
    let tally = Arc::new(Tally::default());
    // No new run after `winding_down`; everything stops at `done`, once the last run finished.
    let winding_down = CancellationToken::new();
    let done = CancellationToken::new();
    let (current, _) = watch::channel(None::<String>);
    let current = Arc::new(current);
    let spec = SweepSpec {
        target: target.clone(),
        model: "sim-vllm".into(),
        prompt_lengths: vec![16, 256, 1024],
        max_tokens: 64,
        ignore_eos: true,
        requests: 40,
        warmup: 2,
        concurrency: 4,
        ..SweepSpec::default()
    };

    let (ask_sample, sample_requests) = mpsc::unbounded_channel::<SampleRequest>();
    let runner = tokio::spawn({
        let runs = start_runs(
            http.clone(),
            base.clone(),
            spec,
            current.clone(),
            tally.clone(),
            sample_requests,
            winding_down.clone(),
        );
        let done = done.clone();
        async move {
            runs.await;
            done.cancel();
        }
    });
    let viewers: Vec<_> = (0..VIEWERS)
        .map(|n| tokio::spawn(view(n, base.clone(), current.subscribe(), tally.clone(), done.clone())))
        .collect();
    let exporter = tokio::spawn(export(http.clone(), base.clone(), tally.clone(), done.clone()));

    let started = Instant::now();
    let phases = Arc::new(Mutex::new(Vec::new()));
    let phase_sampler = tokio::spawn(sample_phases(started, phases.clone(), done.clone()));
    // Index = minute: the run-boundary samples, and each minute's random-phase (min, mean, max).
    let mut rss = vec![rss_at_start];
    let mut spread = vec![(rss_at_start as f64, rss_at_start as f64, rss_at_start as f64)];
    println!("minute  0: RSS {}, before any run", mib(rss_at_start));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + SAMPLE_EVERY, SAMPLE_EVERY);
    for minute in 1..=minutes {
        let mark = tick.tick().await;
        let (reply, answer) = oneshot::channel();
        let _ = ask_sample.send(reply);
        let now = match tokio::time::timeout(RUN_TIMEOUT + VIEWERS_WAIT + SAMPLE_EVERY, answer).await {
            Ok(Ok(kib)) => kib,
            Ok(Err(_)) | Err(_) => {
                tally.error(format!("minute {minute}: the runner took no run-boundary sample; sampled now instead"));
                rss_kib().unwrap_or(0)
            }
        };
        let lag = mark.elapsed();
        rss.push(now);
        let minute_spread = phase_spread(&lock(&phases), minute);
        spread.push(minute_spread);
        let (least, average, most) = minute_spread;
        println!(
            "minute {minute:>2}: RSS {} at a run boundary {:.0} s after the mark; every 5 s {:.1}/{:.1}/{:.1} MiB \
             (min/mean/max); {} threads; runs {} started, {} finished; {} events read; {} exports; {} refusals; \
             {} errors",
            mib(now),
            lag.as_secs_f64(),
            least / 1024.0,
            average / 1024.0,
            most / 1024.0,
            threads().unwrap_or(0),
            tally.runs_started.load(Ordering::Relaxed),
            tally.runs_finished.load(Ordering::Relaxed),
            tally.events.load(Ordering::Relaxed),
            tally.exports.load(Ordering::Relaxed),
            tally.refused.load(Ordering::Relaxed),
            tally.error_count(),
        );
    }
    let load_s = started.elapsed().as_secs_f64();

    // The run in progress ends as it would; the viewers read it to the close.
    winding_down.cancel();
    let mut tasks = vec![("the runs", runner), ("the exports", exporter), ("the memory samples", phase_sampler)];
    tasks.extend(viewers.into_iter().map(|v| ("a viewer", v)));
    for (name, task) in tasks {
        if let Err(err) = task.await {
            tally.error(format!("{name} task stopped: {err}"));
        }
    }
    let wind_down_s = started.elapsed().as_secs_f64() - load_s;
    let rss_after = rss_kib().unwrap_or(0);
    let stored = check_stored(&http, &base, &tally).await;
    check_follows(&tally);

    stop.cancel();
    sim_stop.cancel();
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => tally.error(format!("the dashboard stopped with an error: {err}")),
        Ok(Err(err)) => tally.error(format!("the dashboard task stopped: {err}")),
        Err(_) => tally.error("the dashboard did not stop within 10 s of shutdown".into()),
    }

    println!();
    println!("duration: {load_s:.0} s of load ({minutes} min), then {wind_down_s:.0} s for the last run to finish");
    println!(
        "runs: {} started, {} finished",
        tally.runs_started.load(Ordering::Relaxed),
        tally.runs_finished.load(Ordering::Relaxed)
    );
    println!("runs stored: {stored}");
    println!(
        "WebSocket: {} events read in {} follows of a run by {VIEWERS} viewers",
        tally.events.load(Ordering::Relaxed),
        tally.follows.load(Ordering::Relaxed)
    );
    println!(
        "exports: {} done ({} B), runs list read {} times",
        tally.exports.load(Ordering::Relaxed),
        tally.export_bytes.load(Ordering::Relaxed),
        tally.lists.load(Ordering::Relaxed)
    );
    println!("refusals (409, or 503 with Retry-After; retried): {}", tally.refused.load(Ordering::Relaxed));
    let errors = lock(&tally.errors).clone();
    println!("errors: {}", errors.len());
    for error in errors.iter().take(20) {
        println!("  {error}");
    }
    if errors.len() > 20 {
        println!("  ... and {} more", errors.len() - 20);
    }
    let series = |values: &mut dyn Iterator<Item = f64>| {
        values.map(|kib| format!("{:.1}", kib / 1024.0)).collect::<Vec<_>>().join(" ")
    };
    println!("RSS at run boundaries (MiB, minute 0 to {minutes}): {}", series(&mut rss.iter().map(|&kib| kib as f64)));
    println!(
        "RSS every 5 s, each minute's min (MiB, minute 1 to {minutes}): {}",
        series(&mut spread[1..].iter().map(|s| s.0))
    );
    println!("RSS every 5 s, each minute's mean: {}", series(&mut spread[1..].iter().map(|s| s.1)));
    println!("RSS every 5 s, each minute's max: {}", series(&mut spread[1..].iter().map(|s| s.2)));
    println!("RSS after the last run and the viewers finished: {}", mib(rss_after));
    let means: Vec<f64> = spread.iter().map(|s| s.1).collect();
    let (label, earlier, last) = windows(&means);
    println!(
        "for comparison only, the same windows of the every-5-s means, {label}: {:.1} MiB vs {:.1} MiB, {:+.1}%",
        mean(last) / 1024.0,
        mean(earlier) / 1024.0,
        (mean(last) / mean(earlier) - 1.0) * 100.0
    );
    let boundary: Vec<f64> = rss.iter().map(|&kib| kib as f64).collect();
    let pass = rss_check(&boundary);
    if errors.is_empty() && pass { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// `SOAK_MINUTES`, 30 by default.
fn soak_minutes() -> Result<usize, String> {
    let Ok(text) = std::env::var("SOAK_MINUTES") else { return Ok(30) };
    match text.trim().parse::<usize>() {
        Ok(minutes) if minutes >= 3 => Ok(minutes),
        _ => Err(format!(
            "SOAK_MINUTES={text:?} is not a whole number of minutes of at least 3 (the memory check compares \
             thirds of the per-minute samples); give one such as SOAK_MINUTES=30"
        )),
    }
}

/// This process's resident memory in KiB.
fn rss_kib() -> Option<u64> {
    status_value("VmRSS:")
}

/// This process's threads.
fn threads() -> Option<u64> {
    status_value("Threads:")
}

/// The number on the line of `/proc/self/status` that starts with `key`.
fn status_value(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples the resident memory every [`PHASE_SAMPLE_EVERY`], wherever the runs are, as
/// (seconds since `started`, KiB), until `done`.
async fn sample_phases(started: Instant, samples: Arc<Mutex<Vec<(f64, u64)>>>, done: CancellationToken) {
    let mut tick = tokio::time::interval(PHASE_SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = done.cancelled() => return,
        }
        if let Some(kib) = rss_kib() {
            lock(&samples).push((started.elapsed().as_secs_f64(), kib));
        }
    }
}

/// The min, mean and max of the random-phase samples of `minute` (those after its start).
fn phase_spread(samples: &[(f64, u64)], minute: usize) -> (f64, f64, f64) {
    let end = minute as f64 * SAMPLE_EVERY.as_secs_f64();
    let start = end - SAMPLE_EVERY.as_secs_f64();
    let kib: Vec<f64> =
        samples.iter().filter(|(at, _)| *at > start && *at <= end).map(|&(_, kib)| kib as f64).collect();
    let least = kib.iter().copied().fold(f64::INFINITY, f64::min);
    let most = kib.iter().copied().fold(0.0, f64::max);
    (if kib.is_empty() { 0.0 } else { least }, mean(&kib), most)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// "minute 3" or "minutes 2-4".
fn span(first: usize, last: usize) -> String {
    if first == last { format!("minute {first}") } else { format!("minutes {first}-{last}") }
}

fn mean(samples: &[f64]) -> f64 {
    samples.iter().sum::<f64>() / samples.len().max(1) as f64
}

/// The windows compared, of per-minute samples (index = minute): what they are, the earlier
/// one and the last one.
fn windows(rss: &[f64]) -> (String, &[f64], &[f64]) {
    let minutes = rss.len() - 1;
    if minutes >= 20 {
        let last = &rss[rss.len() - 10..];
        (
            format!("mean RSS of the last 10 samples ({}) vs minutes 5-10", span(minutes - 9, minutes)),
            &rss[5..=10],
            last,
        )
    } else {
        // Minute 0 is before any load: the thirds are of minutes 1 to the end.
        let third = minutes / 3;
        let earlier = &rss[1 + third..1 + 2 * third];
        let last = &rss[rss.len() - third..];
        (
            format!(
                "fewer than 20 minutes, so the last third ({}) vs the middle third ({})",
                span(minutes + 1 - third, minutes),
                span(1 + third, 2 * third)
            ),
            earlier,
            last,
        )
    }
}

/// Compares the last stretch of the run-boundary samples (index = minute) with an earlier one
/// after start-up, prints the verdict and returns whether it passed.
fn rss_check(rss: &[f64]) -> bool {
    let (label, earlier, last) = windows(rss);
    let (earlier, last) = (mean(earlier), mean(last));
    let change = last / earlier - 1.0;
    let pass = change <= RSS_TOLERANCE;
    println!(
        "RSS check at run boundaries, {label}: {:.1} MiB vs {:.1} MiB, {:+.1}% (limit +{:.0}%; a fall is no leak and passes): {}",
        last / 1024.0,
        earlier / 1024.0,
        change * 100.0,
        RSS_TOLERANCE * 100.0,
        if pass { "PASS" } else { "FAIL" }
    );
    pass
}

/// Whether an answer is a refusal the load expects and retries: a run already in progress
/// (409) or a limit reached (503 with a time to retry). Its wait, if so.
fn refusal(status: u16, retry_after: Option<&str>) -> Option<Duration> {
    match (status, retry_after) {
        (409, _) => Some(Duration::from_secs(1)),
        (503, Some(seconds)) => Some(Duration::from_secs(seconds.trim().parse().unwrap_or(5))),
        _ => None,
    }
}

/// Starts runs one after another until `winding_down`, each when the one before has finished;
/// before each start it answers the run-boundary sample asked for, if any: once the viewers
/// have read the run before to the close, or [`VIEWERS_WAIT`] has passed.
async fn start_runs(
    http: reqwest::Client,
    base: String,
    spec: SweepSpec,
    current: Arc<watch::Sender<Option<String>>>,
    tally: Arc<Tally>,
    mut sample_requests: mpsc::UnboundedReceiver<SampleRequest>,
    winding_down: CancellationToken,
) {
    let mut last_run: Option<String> = None;
    while !winding_down.is_cancelled() {
        if let Ok(reply) = sample_requests.try_recv() {
            if let Some(id) = &last_run {
                viewers_closed(&tally, id).await;
            }
            let _ = reply.send(rss_kib().unwrap_or(0));
        }
        let id = match http.post(format!("{base}/api/runs")).json(&spec).send().await {
            Ok(response) if response.status().as_u16() == 201 => {
                match response
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|body| body["id"].as_str().map(String::from))
                {
                    Some(id) => id,
                    None => {
                        tally.error("POST /api/runs answered 201 without a run id".into());
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(String::from);
                let body = response.text().await.unwrap_or_default();
                match refusal(status, retry.as_deref()) {
                    Some(wait) => {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        tally.error(format!("POST /api/runs answered {status}: {body}"));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                continue;
            }
            Err(err) => {
                tally.error(format!("POST /api/runs failed: {err}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        tally.runs_started.fetch_add(1, Ordering::Relaxed);
        lock(&tally.started).push(id.clone());
        current.send_replace(Some(id.clone()));
        last_run = Some(id.clone());
        if let Some(summary) = wait_finished(&http, &base, &id, &tally).await {
            tally.runs_finished.fetch_add(1, Ordering::Relaxed);
            match summary.status {
                RunStatus::Completed if summary.errors == 0 => lock(&tally.finished).push(id),
                RunStatus::Completed => {
                    tally.error(format!("run {id} completed with {} failed requests", summary.errors));
                    lock(&tally.finished).push(id);
                }
                status => tally.error(format!("run {id} ended {status:?}, not completed")),
            }
        }
    }
}

/// Waits until every viewer has read run `id` to the close, or [`VIEWERS_WAIT`] has passed.
async fn viewers_closed(tally: &Tally, id: &str) {
    let started = Instant::now();
    while started.elapsed() < VIEWERS_WAIT {
        if lock(&tally.read_per_run).get(id).map_or(0, Vec::len) >= VIEWERS {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the run until it has finished; its summary, or `None` after an error.
async fn wait_finished(http: &reqwest::Client, base: &str, id: &str, tally: &Tally) -> Option<RunSummary> {
    let started = Instant::now();
    while started.elapsed() < RUN_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let response = match http.get(format!("{base}/api/runs/{id}")).send().await {
            Ok(response) => response,
            Err(err) => {
                tally.error(format!("GET /api/runs/{id} failed: {err}"));
                continue;
            }
        };
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            tally.error(format!("GET /api/runs/{id} answered {status}: {body}"));
            continue;
        }
        match response.json::<RunSummary>().await {
            Ok(summary) if summary.status == RunStatus::Running => {}
            Ok(summary) => return Some(summary),
            Err(err) => tally.error(format!("GET /api/runs/{id} answered no summary: {err}")),
        }
    }
    tally.error(format!("run {id} did not finish within {} s", RUN_TIMEOUT.as_secs()));
    None
}

/// A viewer: follows each run started, reading every event to the close.
async fn view(
    viewer: usize,
    base: String,
    mut current: watch::Receiver<Option<String>>,
    tally: Arc<Tally>,
    done: CancellationToken,
) {
    let mut last = None;
    loop {
        let id = loop {
            let now = current.borrow_and_update().clone();
            if now.is_some() && now != last {
                break now.unwrap_or_default();
            }
            tokio::select! {
                changed = current.changed() => if changed.is_err() { return },
                () = done.cancelled() => return,
            }
        };
        follow(viewer, &base, &id, &tally).await;
        last = Some(id);
    }
}

/// Reads one run's events to the close, retrying a refusal.
async fn follow(viewer: usize, base: &str, id: &str, tally: &Tally) {
    let url = format!("{}/api/runs/{id}/events", base.replace("http://", "ws://"));
    let mut socket = loop {
        match tokio_tungstenite::connect_async(&url).await {
            Ok((socket, _)) => break socket,
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok());
                match refusal(status, retry) {
                    Some(wait) => {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
                        tally.error(format!("viewer {viewer}: the events of run {id} answered {status}: {body}"));
                        return;
                    }
                }
            }
            Err(err) => {
                tally.error(format!("viewer {viewer}: the events of run {id} did not open: {err}"));
                return;
            }
        }
    };
    let (mut read, mut first, mut finished) = (0u64, true, None);
    loop {
        let message = match tokio::time::timeout(EVENT_TIMEOUT, socket.next()).await {
            Err(_) => {
                tally.error(format!(
                    "viewer {viewer}: no event of run {id} for {} s after {read}",
                    EVENT_TIMEOUT.as_secs()
                ));
                return;
            }
            Ok(None | Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(err))) => {
                tally.error(format!("viewer {viewer}: the events of run {id} failed after {read}: {err}"));
                return;
            }
        };
        read += 1;
        tally.events.fetch_add(1, Ordering::Relaxed);
        match serde_json::from_str::<RunEvent>(&message) {
            Ok(RunEvent::Started { .. }) if first => {}
            Ok(_) if first => tally.error(format!("viewer {viewer}: run {id}'s first event is not Started")),
            Ok(RunEvent::Finished { status, .. }) => finished = Some(status),
            Ok(_) if finished.is_some() => {
                tally.error(format!("viewer {viewer}: run {id} sent an event after Finished"));
            }
            Ok(_) => {}
            Err(err) => tally.error(format!("viewer {viewer}: run {id} sent an event that does not parse: {err}")),
        }
        first = false;
    }
    match finished {
        Some(RunStatus::Completed) => {}
        Some(status) => tally.error(format!("viewer {viewer}: run {id} finished {status:?}")),
        None => tally.error(format!("viewer {viewer}: run {id}'s events closed after {read} without Finished")),
    }
    tally.follows.fetch_add(1, Ordering::Relaxed);
    lock(&tally.read_per_run).entry(id.to_string()).or_default().push(read);
}

/// Every [`EXPORT_EVERY`]: reads the runs list and renders one export of the newest finished
/// run, the four files in turn.
async fn export(http: reqwest::Client, base: String, tally: Arc<Tally>, done: CancellationToken) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + EXPORT_EVERY, EXPORT_EVERY);
    let mut turn = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = done.cancelled() => return,
        }
        match http.get(format!("{base}/api/runs")).send().await {
            Ok(response) if response.status().is_success() => match response.json::<Vec<RunSummary>>().await {
                Ok(_) => {
                    tally.lists.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => tally.error(format!("GET /api/runs answered no list: {err}")),
            },
            Ok(response) => tally.error(format!("GET /api/runs answered {}", response.status())),
            Err(err) => tally.error(format!("GET /api/runs failed: {err}")),
        }
        let Some(id) = lock(&tally.finished).last().cloned() else { continue };
        let file = EXPORTS[turn % EXPORTS.len()].0;
        turn += 1;
        let path = format!("/api/runs/{id}/export/{file}");
        match http.get(format!("{base}{path}")).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(String::from);
                match response.bytes().await {
                    Ok(body) if status == 200 && !body.is_empty() => {
                        tally.exports.fetch_add(1, Ordering::Relaxed);
                        tally.export_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    }
                    Ok(body) if refusal(status, retry.as_deref()).is_none() => {
                        tally.error(format!("GET {path} answered {status}: {}", String::from_utf8_lossy(&body)));
                    }
                    Ok(_) => {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => tally.error(format!("GET {path} failed while reading: {err}")),
                }
            }
            Err(err) => tally.error(format!("GET {path} failed: {err}")),
        }
    }
}

/// Compares the runs list with the runs started: every one listed, completed, and no other.
async fn check_stored(http: &reqwest::Client, base: &str, tally: &Tally) -> String {
    let listed = match http.get(format!("{base}/api/runs")).send().await {
        Ok(response) => match response.json::<Vec<RunSummary>>().await {
            Ok(listed) => listed,
            Err(err) => {
                tally.error(format!("the final GET /api/runs answered no list: {err}"));
                return "not read".into();
            }
        },
        Err(err) => {
            tally.error(format!("the final GET /api/runs failed: {err}"));
            return "not read".into();
        }
    };
    let started = lock(&tally.started).clone();
    let mut problems = Vec::new();
    for id in &started {
        match listed.iter().find(|run| &run.id == id) {
            None => problems.push(format!("run {id} is not listed")),
            Some(run) if run.status != RunStatus::Completed => {
                problems.push(format!("run {id} is listed {:?}", run.status));
            }
            Some(_) => {}
        }
    }
    for run in listed.iter().filter(|run| !started.contains(&run.id)) {
        problems.push(format!("run {} is listed but was never started", run.id));
    }
    let completed = listed.iter().filter(|run| run.status == RunStatus::Completed).count();
    let line = format!("{} listed of {} started, {completed} of them completed", listed.len(), started.len());
    if problems.is_empty() {
        format!("{line}: all stored and completed")
    } else {
        for problem in problems {
            tally.error(problem);
        }
        line
    }
}

/// Every follow of a run read the same number of events.
fn check_follows(tally: &Tally) {
    let read = lock(&tally.read_per_run).clone();
    for (id, counts) in read {
        let (least, most) = (counts.iter().min(), counts.iter().max());
        if least != most {
            tally.error(format!("the follows of run {id} read from {least:?} to {most:?} events"));
        }
    }
}
