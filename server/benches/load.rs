//! Benchmark: open-loop load against the simulator, up to the engine's limit with up to
//! 1,024 requests in flight.
//!
//! For each request rate, a fresh simulator process (prefill 5 ms, decode 10 ms a token,
//! 64 tokens a request: about 0.64 s a request, so 1,600 requests/s keep 1,024 in flight)
//! serves `tokenscope sweep --request-rate R --max-concurrency 1024`, about `BENCH_SECONDS`
//! (default 10) of requests after a second of warm-up on the same schedule. Each row reports
//! the rate the sweep really sent at, its schedule lag (p50, p99, max), the tokens per second
//! recorded, how many requests were in flight on average (sent rate times mean end-to-end
//! latency), the sweep process's peak resident memory (VmHWM), and what each recorded token
//! adds to it: the peak less that of a run a quarter as long at the same rate (so with as
//! many requests in flight), over the tokens the longer run recorded beyond the shorter.
//! Under each row, where the lag came from: how late the pacing thread woke (the operating
//! system's scheduler) and how long the engine took from then to the send.
//!
//! Goals: schedule lag p99 under 1 ms up to 80% of the engine's limit (the highest rate it
//! still sends at within 1%), and at most 32 bytes of memory per recorded token while a run
//! is going. The figures are printed, not asserted.
//!
//! Run with `cargo bench -p server --bench load`; `BENCH_RATES=250,500` picks the rates,
//! `BENCH_SECONDS=5` the length of each point, `BENCH_QUICK=1` runs 250 and 500 requests/s
//! for 3 s.

// Only the process helpers and the steal reading; perf_analyzer is not run here.
#[allow(dead_code)]
mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use shared::RunReport;

const MAX_TOKENS: &str = "64";
const PROMPT_WORDS: &str = "16";
const MOST_IN_FLIGHT: &str = "1024";

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let seconds: f64 =
        std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(if quick { 3.0 } else { 10.0 });
    let rates: Vec<f64> = std::env::var("BENCH_RATES")
        .ok()
        .map(|text| shared::spec::parse_request_rates(&text).expect("BENCH_RATES: a list of rates"))
        .unwrap_or_else(|| if quick { vec![250.0, 500.0] } else { vec![250.0, 500.0, 1000.0, 1500.0, 2000.0] });
    let work = tempfile::tempdir().expect("a scratch folder");
    let ours = Path::new(env!("CARGO_BIN_EXE_tokenscope"));
    println!(
        "load benchmark: open loop, constant arrivals, simulator prefill 5 ms, decode 10 ms x {MAX_TOKENS} tokens, \
         at most {MOST_IN_FLIGHT} in flight, {seconds} s a point, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>7} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "rate/s", "sent/s", "lag p50", "lag p99", "lag max", "tokens/s", "in flight", "peak MiB", "tokens", "B/token"
    );
    for rate in rates {
        let requests = ((rate * seconds).round() as u32).max(10);
        let warmup = (rate.round() as u32).max(1);
        let run = |requests: u32, warmup: u32, name: &str| {
            let sim = Simulator::start(ours);
            let out = work.path().join(format!("{name}-{rate}.json"));
            let peak = sweep(ours, &sim.target, rate, requests, warmup, &out);
            (peak, common::read_json(&out))
        };
        let tokens_of = |report: &RunReport| -> u64 { report.requests.iter().map(|r| r.output_tokens()).sum() };
        let (base_peak, base) = run((requests / 4).max(10), warmup, "base");
        let base: RunReport = serde_json::from_value(base).expect("a run.json");
        let steal = common::Steal::start();
        let (peak, report) = run(requests, warmup, "load");
        let report: RunReport = serde_json::from_value(report).expect("a run.json");
        let point = &report.points[0];
        let lag = point.schedule_lag_ms.as_ref().expect("open loop has a lag");
        let tokens = tokens_of(&report);
        let in_flight = point.sent_per_s * point.e2e_ms.as_ref().map_or(0.0, |e| e.mean) / 1e3;
        let per_token =
            (peak.saturating_sub(base_peak) * 1024) as f64 / tokens.saturating_sub(tokens_of(&base)).max(1) as f64;
        println!(
            "{rate:>7} {:>9.2} {:>8.3} {:>8.3} {:>8.3} {:>9.0} {:>9.0} {:>9.1} {:>10} {:>10.1}{}",
            point.sent_per_s,
            lag.p50,
            lag.p99,
            lag.max,
            point.output_tokens_per_s,
            in_flight,
            peak as f64 / 1024.0,
            tokens,
            per_token,
            if point.errors > 0 { format!("  ({} errors)", point.errors) } else { String::new() }
        );
        if let Some(pacing) = report.engine.and_then(|e| e.pacing) {
            println!(
                "{:>27}pacing thread woke late p99 {:.3} ms (max {:.3}); sent after it woke p99 {:.3} ms (max {:.3})",
                "", pacing.woke_late_p99_ms, pacing.woke_late_max_ms, pacing.handoff_p99_ms, pacing.handoff_max_ms
            );
        }
        steal.print();
    }
    println!(
        "sent/s: one less than the measured requests over the time from the first send to the last; lag: actual \
         minus intended send time, ms; B/token: peak resident memory above a run a quarter as long, per token recorded \
         beyond it"
    );
}

/// A `tokenscope sim` process on a free loopback port, stopped when dropped.
struct Simulator {
    target: String,
    child: std::process::Child,
}

impl Simulator {
    fn start(ours: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut child = common::on_server_cores(ours)
            .args(["sim", "--listen", &format!("127.0.0.1:{port}"), "--prefill-base-ms", "5", "--decode-ms", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the simulator starts");
        let target = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { target, child };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the simulator did not listen on port {port} within 5 s");
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one open-loop sweep to its end; answers its peak resident memory in KiB, read from
/// /proc while it runs.
fn sweep(ours: &Path, target: &str, rate: f64, requests: u32, warmup: u32, out: &Path) -> u64 {
    let mut command: Command = common::on_tool_cores(ours);
    command
        .args(["sweep", "--target", target, "--model", "sim-vllm", "--prompt-lengths", PROMPT_WORDS])
        .args(["--max-tokens", MAX_TOKENS, "--ignore-eos", "--request-rate", &rate.to_string()])
        .args(["--max-concurrency", MOST_IN_FLIGHT, "--requests", &requests.to_string()])
        .args(["--warmup", &warmup.to_string(), "--timeout-ms", "60000", "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("tokenscope sweep starts");
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(hwm) = std::fs::read_to_string(&status).ok().and_then(|text| field_kib(&text, "VmHWM:")) {
            peak = peak.max(hwm);
        }
        if child.try_wait().expect("the sweep can be waited for").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    peak
}

/// A `/proc/PID/status` field in KiB.
fn field_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find(|line| line.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
}
