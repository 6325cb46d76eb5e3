//! What the benchmarks share: finding and running the real perf_analyzer, and reading the
//! send times a server wrote into its responses.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

/// `BENCH_PIN=SERVER/TOOLS` (taskset core lists, such as `0/1`) runs the server and the tools
/// on separate cores, so that neither the server's CPU use nor a tool's own delays the other.
/// By default all share the cores, as the guide's workflow does.
pub fn pinning() -> Option<(String, String)> {
    let pin = std::env::var("BENCH_PIN").ok()?;
    let (server, tools) = pin.split_once('/')?;
    Some((server.to_string(), tools.to_string()))
}

/// `program` on the server's cores when pinned.
pub fn on_server_cores(program: &Path) -> Command {
    on_cores(program, pinning().map(|(server, _)| server))
}

/// `program` on the tools' cores when pinned.
pub fn on_tool_cores(program: &Path) -> Command {
    on_cores(program, pinning().map(|(_, tools)| tools))
}

fn on_cores(program: &Path, cpus: Option<String>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut command = Command::new("taskset");
            command.args(["-c", &cpus]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// perf_analyzer as scripts/triton-tools.sh installs it, if it is there.
pub fn find_perf_analyzer() -> Option<PathBuf> {
    let tools = std::env::var_os("TOKENSCOPE_TOOLS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tokenscope")))?;
    let candidate = tools.join("bin/perf_analyzer");
    candidate.exists().then_some(candidate)
}

/// One run of the guide's perf_analyzer command.
pub struct PerfAnalyzer<'a> {
    /// `host:port` or `http://host:port` of the gRPC endpoint.
    pub target: &'a str,
    pub model: &'a str,
    /// Named with `-x` when given.
    pub version: Option<&'a str>,
    /// perf_analyzer's `--input-data` JSON: `{"data": [{INPUT: [VALUE], ...}]}`.
    pub data: &'a Value,
    pub concurrency: u32,
    /// `--measurement-request-count`: requests per measurement window.
    pub window_requests: u32,
}

impl PerfAnalyzer<'_> {
    /// Runs it (streaming, `count_windows`, every window accepted) and leaves its profile
    /// export at `export`; returns the CPU seconds it used. On failure, returns the last
    /// lines it printed.
    /// `command` is perf_analyzer itself, or a launcher of it such as `taskset`.
    pub fn run(&self, mut command: Command, work: &Path, export: &Path) -> Result<f64, String> {
        let input = work.join(format!("prompts-{}.json", std::process::id()));
        std::fs::write(&input, self.data.to_string()).map_err(|e| e.to_string())?;
        let log = work.join(format!("perf_analyzer-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let stderr = file.try_clone().map_err(|e| e.to_string())?;
        command.args(["-m", self.model]);
        if let Some(version) = self.version {
            command.args(["-x", version]);
        }
        command
            .args(["-i", "grpc", "-u", self.target.trim_start_matches("http://"), "--async", "--streaming"])
            .arg(format!("--input-data={}", input.display()))
            .arg(format!("--profile-export-file={}", export.display()))
            .args([
                "--measurement-mode=count_windows",
                &format!("--measurement-request-count={}", self.window_requests),
            ])
            .args(["--stability-percentage=999", &format!("--concurrency-range={}", self.concurrency)])
            .stdout(file)
            .stderr(stderr);
        let (status, cpu) = run_measured(&mut command, Some(PERF_ANALYZER_LIMIT))
            .map_err(|e| format!("cannot run perf_analyzer: {e}"))?;
        let Some(status) = status else {
            return Err(format!("still running after {} s; stopped", PERF_ANALYZER_LIMIT.as_secs()));
        };
        if !status.success() || !export.exists() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(text.lines().rev().take(5).collect::<Vec<_>>().join(" | "));
        }
        Ok(cpu)
    }
}

/// How long one perf_analyzer run may take. Where it cannot keep up (concurrency 512 on two
/// cores) it grows to gigabytes and runs for many minutes before giving up.
const PERF_ANALYZER_LIMIT: Duration = Duration::from_secs(150);

/// Runs a command to its end, or kills it after `limit`; returns how it ended (`None`:
/// killed) and the CPU seconds (user and system) it used. The times are read from /proc
/// while the finished process waits to be reaped, in the kernel's clock ticks (100 per
/// second on Linux).
pub fn run_measured(command: &mut Command, limit: Option<Duration>) -> std::io::Result<(Option<ExitStatus>, f64)> {
    let mut child = command.stdin(Stdio::null()).spawn()?;
    let stat = format!("/proc/{}/stat", child.id());
    let started = std::time::Instant::now();
    let mut cpu = f64::NAN;
    while let Ok(text) = std::fs::read_to_string(&stat) {
        if limit.is_some_and(|limit| started.elapsed() > limit) {
            child.kill()?;
            child.wait()?;
            return Ok((None, cpu));
        }
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = text.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        if fields.first() == Some(&"Z") {
            // utime and stime: fields 14 and 15 of the line, 12 and 13 after the name.
            let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(f64::NAN);
            cpu = (ticks(11) + ticks(12)) / 100.0;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok((Some(child.wait()?), cpu))
}

/// Reads a JSON file, or stops the benchmark saying which file.
pub fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Time the hypervisor took from this machine's CPUs (steal), which no tool can help: on a
/// virtual machine it comes in bursts of milliseconds and shows in every tail latency.
pub struct Steal {
    start: Option<(u64, u64)>,
}

impl Steal {
    pub fn start() -> Self {
        Self { start: cpu_ticks() }
    }

    /// Prints the share of CPU time stolen since `start`.
    pub fn print(&self) {
        if let (Some((steal0, total0)), Some((steal1, total1))) = (self.start, cpu_ticks()) {
            let share = (steal1 - steal0) as f64 / (total1 - total0).max(1) as f64;
            println!("{:>26} host steal {:.1}% of CPU time during the run", "", share * 100.0);
        }
    }
}

/// Steal and total ticks over all CPUs, from /proc/stat.
fn cpu_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = text.lines().next()?.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    Some((*fields.get(7)?, fields.iter().sum()))
}
