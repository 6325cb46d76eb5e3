//! Soak benchmark: a dashboard kept at moderate load for half an hour, watching its memory.
//!
//! The dashboard runs in this process, as `tokenscope serve` runs it, against the built-in
//! simulator on a port-0 listener. For `SOAK_MINUTES` (default 30, at least 3):
//!
//! - runs are started one after another through `POST /api/runs` (three prompt lengths,
//!   42 requests each, 4 at once, 64 tokens out: about 25 s a run);
//! - 20 viewers follow them over `/api/runs/ID/events`, each reading every event to the close,
//!   then following the next run;
//! - every 10 s the runs list is read and one export of a finished run rendered, in turn
//!   `run.json`, `requests.csv`, `points.csv` and `profile.json`;
//! - the process's resident memory (`VmRSS` of `/proc/self/status`, the dashboard's and this
//!   benchmark's clients' together) is sampled every minute.
//!
//! At the end it checks that every run started is stored and completed, counts errors (any
//! answer other than 2xx, except 409 and 503 with a `Retry-After`, which are counted as
//! refusals), and compares the mean memory of the last 10 samples with that of minutes 5 to 10
//! (with fewer than 20 minutes: the last third of the samples with the middle third). It exits
//! non-zero on an error or a growth past 10%. Linux only; not run in CI. Run with
//! `SOAK_MINUTES=30 cargo bench -p server --bench soak`.

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
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

/// As in the `tokenscope` binary, so that the memory measured is the allocator's it ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const VIEWERS: usize = 20;
const EXPORT_EVERY: Duration = Duration::from_secs(10);
const SAMPLE_EVERY: Duration = Duration::from_secs(60);
/// A viewer that waits this long for the next event counts the socket as stuck.
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);
/// A run that has not finished after this long counts as stuck.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// The most the memory mean of the last window may exceed that of the earlier one. A fall
/// passes: a single sample lands anywhere in a run, so the means move with the runs' phases,
/// and only growth is a leak.
const RSS_TOLERANCE: f64 = 0.10;

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
         the load's clients together"
    );

    let stop = CancellationToken::new();
    let (sim_addr, sim_stop) = sim::spawn(SimConfig::default()).await.expect("the simulator starts");
    let target = format!("http://{sim_addr}");
    let data = tempfile::tempdir().expect("a temporary folder");
    let config = DashboardConfig {
        default_target: target.clone(),
        simulator: Some(target.clone()),
        data_dir: data.path().into(),
        access: dashboard::access::Access::open(),
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

    let runner = tokio::spawn(start_runs(
        http.clone(),
        base.clone(),
        spec,
        current.clone(),
        tally.clone(),
        winding_down.clone(),
        done.clone(),
    ));
    let viewers: Vec<_> = (0..VIEWERS)
        .map(|n| tokio::spawn(view(n, base.clone(), current.subscribe(), tally.clone(), done.clone())))
        .collect();
    let exporter = tokio::spawn(export(http.clone(), base.clone(), tally.clone(), done.clone()));

    let started = Instant::now();
    let mut rss = vec![rss_at_start];
    println!("minute  0: RSS {}", mib(rss_at_start));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + SAMPLE_EVERY, SAMPLE_EVERY);
    for minute in 1..=minutes {
        tick.tick().await;
        let now = rss_kib().unwrap_or(0);
        rss.push(now);
        println!(
            "minute {minute:>2}: RSS {}; runs {} started, {} finished; {} events read; {} exports; {} refusals; {} errors",
            mib(now),
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
    let mut tasks = vec![("the runs", runner), ("the exports", exporter)];
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
    let series: Vec<String> = rss.iter().map(|&kib| format!("{:.1}", kib as f64 / 1024.0)).collect();
    println!("RSS series (MiB, minute 0 to {minutes}): {}", series.join(" "));
    println!("RSS after the last run and the viewers finished: {}", mib(rss_after));
    let pass = rss_check(&rss);
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
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// "minute 3" or "minutes 2-4".
fn span(first: usize, last: usize) -> String {
    if first == last { format!("minute {first}") } else { format!("minutes {first}-{last}") }
}

fn mean(samples: &[u64]) -> f64 {
    samples.iter().sum::<u64>() as f64 / samples.len().max(1) as f64
}

/// Compares the last stretch of the per-minute samples (index = minute) with an earlier one
/// after start-up, prints the verdict and returns whether it passed.
fn rss_check(rss: &[u64]) -> bool {
    let minutes = rss.len() - 1;
    let (label, earlier, last) = if minutes >= 20 {
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
    };
    let (earlier, last) = (mean(earlier), mean(last));
    let change = last / earlier - 1.0;
    let pass = change <= RSS_TOLERANCE;
    println!(
        "RSS check, {label}: {:.1} MiB vs {:.1} MiB, {:+.1}% (limit +{:.0}%; a fall is no leak and passes): {}",
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
/// then cancels `done`.
async fn start_runs(
    http: reqwest::Client,
    base: String,
    spec: SweepSpec,
    current: Arc<watch::Sender<Option<String>>>,
    tally: Arc<Tally>,
    winding_down: CancellationToken,
    done: CancellationToken,
) {
    while !winding_down.is_cancelled() {
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
    done.cancel();
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
            Ok(RunEvent::Finished { status }) => finished = Some(status),
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
