//! Helpers shared by the integration tests.

use std::sync::Arc;

use server::clock::RunClock;
use server::dashboard::access::Access;
use server::dashboard::{self, AppState, DashboardConfig, Limits};
use server::engine::run_sweep_apart;
use server::sim::{self, SimConfig};
use shared::{RunReport, SweepSpec};
use tokio_util::sync::CancellationToken;

/// Timing assertions share two cores; they, and every test that loads the machine, take this
/// lock so they never run side by side.
/// Each test has its own runtime, so the lock is tokio's, which works across runtimes.
static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn timing_lock() -> tokio::sync::MutexGuard<'static, ()> {
    TIMING.lock().await
}

/// A simulator on a loopback port chosen by the system; it stops when the guard drops.
pub struct SimServer {
    pub target: String,
    /// Where it serves its Prometheus metrics, when it does.
    pub metrics: Option<String>,
    stop: CancellationToken,
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl SimServer {
    /// A simulator at `target` that `stop` stops.
    pub fn from_parts(target: String, stop: CancellationToken) -> Self {
        Self { target, metrics: None, stop }
    }
}

pub async fn start_sim(config: SimConfig) -> SimServer {
    let (addr, metrics, stop) = sim::spawn_with_metrics(config).await.expect("the simulator starts");
    SimServer { target: format!("http://{addr}"), metrics: Some(format!("http://{metrics}/metrics")), stop }
}

/// A spec with small defaults for tests.
/// The workspace's root, where `scripts/` is.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the server crate sits in the workspace").into()
}

/// Runs `stop` (a bash command; `$1`, `$2`… are `args`) once this test process has exited,
/// from a watchdog of its own session: Rust tests have no global teardown, and the servers
/// the tests start must not outlive them.
pub fn after_this_process(name: &str, stop: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let script = format!("while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; shift; {stop}");
    let watchdog = std::process::Command::new("setsid")
        .args(["bash", "-c", &script, name, &std::process::id().to_string()])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot spawn the watchdog {name} that stops a test server (setsid): {err}"))?;
    // Never waited for: it outlives this process by design, and init reaps it.
    drop(watchdog);
    Ok(())
}

pub fn spec(target: &str, model: &str) -> SweepSpec {
    SweepSpec {
        target: target.into(),
        model: model.into(),
        prompt_lengths: vec![16],
        max_tokens: 4,
        requests: 3,
        request_timeout_ms: 20_000,
        // Tests of the server's metrics ask for them.
        no_metrics: true,
        ..SweepSpec::default()
    }
}

/// Runs a sweep as the command line and the dashboard do: on the engine's own thread.
pub async fn sweep(spec: SweepSpec) -> RunReport {
    let (report, ()) =
        run_sweep_apart(RunClock::start(), spec, (), CancellationToken::new()).await.expect("the engine runs");
    report
}

/// Runs a check of timings against a schedule until it passes; the test fails after three
/// failed attempts during which the host took no CPU time, or after eight attempts in all,
/// with each attempt's failure. On a shared virtual machine the host now and then takes the
/// CPUs away for milliseconds (steal time: 3 to 30% of it, in bursts, has been seen on
/// two-core virtual machines). Such a pause only ever makes a measurement late, never early,
/// so one attempt within the bounds shows the engine keeps to the schedule, and an engine
/// that is systematically late fails every attempt, quiet or not.
pub async fn timing_attempts<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::FutureExt;
    /// Steal during an attempt from which its failure is put down to the host.
    const SPOILED_MS: u64 = 20;
    let (mut failures, mut quiet_failures) = (Vec::new(), 0);
    for attempt in 1..=8 {
        if quiet_failures == 3 {
            break;
        }
        if attempt > 1 {
            // Host pauses come in bursts of a second or more: let one pass.
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
        let steal = steal_ticks();
        match std::panic::AssertUnwindSafe(check()).catch_unwind().await {
            Ok(()) => {
                if attempt > 1 {
                    eprintln!("timing check passed at attempt {attempt}; earlier: {}", failures.join(" | "));
                }
                return;
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let stolen_ms = match (steal, steal_ticks()) {
                    (Some(before), Some(after)) => Some((after - before) * 10),
                    _ => None,
                };
                if stolen_ms.is_none_or(|ms| ms < SPOILED_MS) {
                    quiet_failures += 1;
                }
                let stolen = stolen_ms.map(|ms| format!(" (host steal meanwhile: {ms} ms)")).unwrap_or_default();
                failures.push(format!("{message}{stolen}"));
            }
        }
    }
    panic!(
        "every attempt failed ({quiet_failures} of them with under {SPOILED_MS} ms of host steal):\n{}",
        failures.join("\n")
    );
}

/// The CPU time the host has taken from this machine so far, in clock ticks (10 ms), from
/// /proc/stat where there is one.
fn steal_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().next()?.split_whitespace().nth(8)?.parse().ok()
}

/// `|measured - expected| <= max(abs, rel * expected)`, with a message that shows the numbers.
#[track_caller]
pub fn assert_close(what: &str, measured: f64, expected: f64, abs: f64, rel: f64) {
    let tolerance = abs.max(rel * expected);
    assert!(
        (measured - expected).abs() <= tolerance,
        "{what}: measured {measured:.3}, expected {expected:.3} ± {tolerance:.3}"
    );
}

/// A dashboard whose default target is an in-process simulator, keeping its runs in a
/// temporary folder of its own; all three go on drop.
pub struct Dashboard {
    pub base: String,
    pub sim: SimServer,
    pub state: AppState,
    stop: CancellationToken,
    pub data: Arc<tempfile::TempDir>,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Dashboard {
    /// Stops this dashboard (cancelling its run, if any) and starts another on the same data
    /// folder and simulator, as a restarted process would.
    pub async fn restart(self) -> Dashboard {
        self.restart_with(Limits::default()).await
    }

    /// [`Dashboard::restart`] with other limits.
    pub async fn restart_with(self, limits: Limits) -> Dashboard {
        let access = self.state.access().clone();
        let tokenizer_dirs = self.state.config().tokenizer_dirs.clone();
        let (sim, data) = self.stop().await;
        serve_with(sim, data, limits, access, tokenizer_dirs).await
    }

    /// Stops this dashboard and closes its store, handing back its simulator and data folder.
    pub async fn stop(mut self) -> (SimServer, Arc<tempfile::TempDir>) {
        self.stop.cancel();
        self.state.close().await;
        let sim = std::mem::replace(
            &mut self.sim,
            SimServer { target: String::new(), metrics: None, stop: CancellationToken::new() },
        );
        (sim, self.data.clone())
    }
}

pub async fn start_dashboard(config: SimConfig) -> Dashboard {
    start_dashboard_with(config, Limits::default()).await
}

/// [`start_dashboard`] with limits of its own.
pub async fn start_dashboard_with(config: SimConfig, limits: Limits) -> Dashboard {
    let data = Arc::new(tempfile::tempdir().expect("a temporary folder"));
    serve_on(start_sim(config).await, data, limits).await
}

/// A dashboard with access rules of its own (tokens, names, targets), made knowing its
/// simulator's address.
pub async fn start_dashboard_with_access(config: SimConfig, access: impl FnOnce(&str) -> Access) -> Dashboard {
    let data = Arc::new(tempfile::tempdir().expect("a temporary folder"));
    let sim = start_sim(config).await;
    let access = access(&sim.target);
    serve_with(sim, data, Limits::default(), access, Vec::new()).await
}

/// A dashboard whose sweeps may also name tokenizers in `tokenizer_dirs` by path.
pub async fn start_dashboard_with_tokenizers(
    config: SimConfig,
    limits: Limits,
    tokenizer_dirs: Vec<std::path::PathBuf>,
) -> Dashboard {
    let data = Arc::new(tempfile::tempdir().expect("a temporary folder"));
    serve_with(start_sim(config).await, data, limits, Access::open(), tokenizer_dirs).await
}

/// A dashboard on `data` whose default target is `sim`.
pub async fn serve_on(sim: SimServer, data: Arc<tempfile::TempDir>, limits: Limits) -> Dashboard {
    serve_with(sim, data, limits, Access::open(), Vec::new()).await
}

async fn serve_with(
    sim: SimServer,
    data: Arc<tempfile::TempDir>,
    limits: Limits,
    access: Access,
    tokenizer_dirs: Vec<std::path::PathBuf>,
) -> Dashboard {
    let stop = CancellationToken::new();
    let config = DashboardConfig {
        default_target: sim.target.clone(),
        simulator: Some(sim.target.clone()),
        simulator_protocols: Vec::new(),
        simulator_metrics: sim.metrics.clone(),
        data_dir: data.path().to_path_buf(),
        access,
        tokenizer_dirs,
    };
    let state = AppState::open_with(config, limits, stop.clone()).await.expect("the dashboard opens its store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(dashboard::serve(listener, state.clone(), stop.clone()));
    Dashboard { base, sim, state, stop, data }
}

/// A finished run of `requests` requests of `tokens` one-token responses each, at one prompt
/// length, as an import would bring in.
pub fn large_report(requests: u32, tokens: u64) -> RunReport {
    use shared::{RequestRecord, ResponseRecord, Responses, RunStatus, TokenCountSource};
    let spec = SweepSpec {
        model: "sim-vllm".into(),
        prompt_lengths: vec![16],
        requests,
        warmup: 0,
        max_tokens: tokens as u32,
        ..SweepSpec::default()
    };
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
