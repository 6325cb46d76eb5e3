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
//! adds to it, two ways: the peak less that of a run a quarter as long at the same rate (so
//! with as many requests in flight), over the tokens the longer run recorded beyond the
//! shorter; and, while the run goes, the slope of resident memory (read every 20 ms) against
//! the tokens recorded by then, from a tenth of the run's tokens to nine tenths.
//! Under each row, where the lag came from: how late the pacing thread woke (the operating
//! system's scheduler) and how long the engine took from then to the send.
//!
//! Goals: schedule lag p99 under 1 ms up to 80% of the engine's limit (the highest rate it
//! still sends at within 1%), and at most 32 bytes of memory per recorded token while a run
//! is going. The figures are printed, not asserted; the last lines weigh them against the
//! goals.
//!
//! The engine's threads ask for real-time priority, as by default; each row says whether they
//! got it. With `BENCH_PRIORITY=both`, each rate is run again with `--normal-priority`, and the
//! ratio of the two runs' lag p99 is printed.
//!
//! Run with `cargo bench -p server --bench load`; `BENCH_RATES=250,500` picks the rates
//! (250 to 2,000 by default, 1,600/s being what 1,024 in flight allow),
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
        .unwrap_or_else(|| {
            if quick { vec![250.0, 500.0] } else { vec![250.0, 500.0, 1000.0, 1200.0, 1400.0, 1600.0, 2000.0] }
        });
    let both_priorities = std::env::var("BENCH_PRIORITY").is_ok_and(|v| v == "both");
    let work = tempfile::tempdir().expect("a scratch folder");
    let ours = Path::new(env!("CARGO_BIN_EXE_tokenscope"));
    println!(
        "load benchmark: open loop, constant arrivals, simulator prefill 5 ms, decode 10 ms x {MAX_TOKENS} tokens, \
         at most {MOST_IN_FLIGHT} in flight, {seconds} s a point, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>7} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10}",
        "rate/s",
        "sent/s",
        "lag p50",
        "lag p99",
        "lag max",
        "tokens/s",
        "in flight",
        "peak MiB",
        "tokens",
        "B/token",
        "in-run B/t"
    );
    let mut rows = Vec::new();
    for rate in rates {
        let requests = ((rate * seconds).round() as u32).max(10);
        let warmup = (rate.round() as u32).max(1);
        let run_with = |requests: u32, warmup: u32, name: &str, extra: &[&str]| {
            let sim = Simulator::start(ours);
            let out = work.path().join(format!("{name}-{rate}.json"));
            let memory = sweep(ours, &sim.target, rate, requests, warmup, extra, &out);
            (memory, common::read_json(&out))
        };
        let run = |requests: u32, warmup: u32, name: &str| run_with(requests, warmup, name, &[]);
        let tokens_of = |report: &RunReport| -> u64 { report.requests.iter().map(|r| r.output_tokens()).sum() };
        let (base_memory, base) = run((requests / 4).max(10), warmup, "base");
        let base: RunReport = serde_json::from_value(base).expect("a run.json");
        let steal = common::Steal::start();
        let (memory, report) = run(requests, warmup, "load");
        let (base_peak, peak) = (base_memory.peak_kib, memory.peak_kib);
        let report: RunReport = serde_json::from_value(report).expect("a run.json");
        let point = &report.points[0];
        let lag = point.schedule_lag_ms.as_ref().expect("open loop has a lag");
        let tokens = tokens_of(&report);
        let in_flight = point.sent_per_s * point.e2e_ms.as_ref().map_or(0.0, |e| e.mean) / 1e3;
        let per_token =
            (peak.saturating_sub(base_peak) * 1024) as f64 / tokens.saturating_sub(tokens_of(&base)).max(1) as f64;
        let in_run = growth_per_token(&report, &memory.samples);
        rows.push(Row { rate, sent_per_s: point.sent_per_s, lag_p99_ms: lag.p99, in_run_per_token: in_run });
        println!(
            "{rate:>7} {:>9.2} {:>8.3} {:>8.3} {:>8.3} {:>9.0} {:>9.0} {:>9.1} {:>10} {:>10.1} {:>10}{}",
            point.sent_per_s,
            lag.p50,
            lag.p99,
            lag.max,
            point.output_tokens_per_s,
            in_flight,
            peak as f64 / 1024.0,
            tokens,
            per_token,
            in_run.map_or("-".into(), |b| format!("{b:.1}")),
            if point.errors > 0 { format!("  ({} errors)", point.errors) } else { String::new() }
        );
        print_engine(&report);
        steal.print();
        if both_priorities {
            let steal = common::Steal::start();
            let (_, normal) = run_with(requests, warmup, "normal", &["--normal-priority"]);
            let normal: RunReport = serde_json::from_value(normal).expect("a run.json");
            let (point, lag_rt) = (&normal.points[0], lag.p99);
            let lag = point.schedule_lag_ms.as_ref().expect("open loop has a lag");
            println!(
                "{:>27}at normal priority: sent/s {:.2}, lag p50 {:.3} p99 {:.3} max {:.3} ms; lag p99 normal / \
                 real-time = {:.1}",
                "",
                point.sent_per_s,
                lag.p50,
                lag.p99,
                lag.max,
                lag.p99 / lag_rt.max(1e-6)
            );
            print_engine(&normal);
            steal.print();
        }
    }
    println!(
        "sent/s: one less than the measured requests over the time from the first send to the last; lag: actual \
         minus intended send time, ms; B/token: peak resident memory above a run a quarter as long, per token recorded \
         beyond it; in-run B/t: resident memory's growth per token recorded while the run went"
    );
    for line in verdict(&rows) {
        println!("{line}");
    }
}

/// What one rate's run measured, for the verdict.
struct Row {
    rate: f64,
    sent_per_s: f64,
    lag_p99_ms: f64,
    in_run_per_token: Option<f64>,
}

/// The runs weighed against the goals: the engine's limit (the highest rate sent within 1%),
/// the worst lag p99 at or below 80% of it, and the most memory per token while a run went.
fn verdict(rows: &[Row]) -> Vec<String> {
    let kept = |row: &&Row| row.sent_per_s >= row.rate * 0.99;
    let Some(limit) = rows.iter().filter(kept).map(|row| row.rate).reduce(f64::max) else {
        return vec!["goals: no rate was sent within 1%, so the engine's limit is below every rate run".into()];
    };
    let missed = rows.iter().filter(|row| !kept(row) && row.rate > limit).map(|row| row.rate).reduce(f64::min);
    let mut lines = vec![match missed {
        Some(missed) => format!("engine's limit: {limit}/s sent within 1%, {missed}/s not"),
        None => format!("engine's limit: at least {limit}/s (no higher rate was run)"),
    }];
    let below = limit * 0.8;
    let worst = rows.iter().filter(|row| row.rate <= below).max_by(|a, b| a.lag_p99_ms.total_cmp(&b.lag_p99_ms));
    lines.push(match worst {
        Some(row) => format!(
            "goal, lag p99 under 1 ms up to 80% of the limit ({below}/s): {}, worst {:.3} ms at {}/s",
            if row.lag_p99_ms < 1.0 { "met" } else { "not met" },
            row.lag_p99_ms,
            row.rate
        ),
        None => format!("goal, lag p99 under 1 ms up to 80% of the limit ({below}/s): no rate run at or below it"),
    });
    let most = rows.iter().filter_map(|row| row.in_run_per_token).reduce(f64::max);
    lines.push(match most {
        Some(most) => format!(
            "goal, at most 32 B per token while a run goes: {}, most {most:.1} B",
            if most <= 32.0 { "met" } else { "not met" }
        ),
        None => "goal, at most 32 B per token while a run goes: no run was long enough to tell".into(),
    });
    lines
}

/// Where a run's schedule lag came from, and how its engine's threads were scheduled.
fn print_engine(report: &RunReport) {
    let Some(engine) = &report.engine else { return };
    if let Some(pacing) = engine.pacing {
        println!(
            "{:>27}pacing thread woke late p99 {:.3} ms (max {:.3}); sent after it woke p99 {:.3} ms (max {:.3})",
            "", pacing.woke_late_p99_ms, pacing.woke_late_max_ms, pacing.handoff_p99_ms, pacing.handoff_max_ms
        );
    }
    if let Some(scheduling) = &engine.scheduling {
        println!("{:>27}{}", "", scheduling.describe());
    }
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

/// What a sweep process held: its peak resident memory in KiB, and its resident memory in
/// KiB at moments of the run (Unix nanoseconds).
struct Memory {
    peak_kib: u64,
    samples: Vec<(i64, u64)>,
}

/// Runs one open-loop sweep to its end, reading its memory from /proc while it runs.
fn sweep(ours: &Path, target: &str, rate: f64, requests: u32, warmup: u32, extra: &[&str], out: &Path) -> Memory {
    let mut command: Command = common::on_tool_cores(ours);
    command
        .args(["sweep", "--target", target, "--model", "sim-vllm", "--prompt-lengths", PROMPT_WORDS])
        .args(["--max-tokens", MAX_TOKENS, "--ignore-eos", "--request-rate", &rate.to_string()])
        .args(["--max-concurrency", MOST_IN_FLIGHT, "--requests", &requests.to_string()])
        .args(["--warmup", &warmup.to_string(), "--timeout-ms", "60000"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("tokenscope sweep starts");
    let status = format!("/proc/{}/status", child.id());
    let mut memory = Memory { peak_kib: 0, samples: Vec::new() };
    loop {
        if let Ok(text) = std::fs::read_to_string(&status) {
            memory.peak_kib = memory.peak_kib.max(field_kib(&text, "VmHWM:").unwrap_or(0));
            if let Some(rss) = field_kib(&text, "VmRSS:") {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
                memory.samples.push((now.as_nanos() as i64, rss));
            }
        }
        if child.try_wait().expect("the sweep can be waited for").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    memory
}

/// Bytes of resident memory per token recorded while the run went: the least-squares slope
/// of the samples against the tokens the run had recorded at each, over the samples from a
/// tenth of its tokens to nine tenths (before the end of the point works out its statistics).
fn growth_per_token(report: &RunReport, samples: &[(i64, u64)]) -> Option<f64> {
    let mut arrivals: Vec<(u64, u64)> =
        report.requests.iter().flat_map(|r| r.token_responses().map(|c| (c.at_ns, u64::from(c.tokens)))).collect();
    arrivals.sort_unstable();
    let total: u64 = arrivals.iter().map(|&(_, tokens)| tokens).sum();
    let mut recorded = Vec::with_capacity(arrivals.len());
    let mut sum = 0;
    for &(at, tokens) in &arrivals {
        sum += tokens;
        recorded.push((at, sum));
    }
    let tokens_by = |unix_ns: i64| {
        let at = unix_ns.saturating_sub(report.started_unix_ns).max(0) as u64;
        recorded.partition_point(|&(t, _)| t <= at).checked_sub(1).map_or(0, |i| recorded[i].1)
    };
    let points: Vec<(f64, f64)> = samples
        .iter()
        .map(|&(unix_ns, kib)| (tokens_by(unix_ns) as f64, (kib * 1024) as f64))
        .filter(|&(tokens, _)| tokens >= total as f64 / 10.0 && tokens <= total as f64 * 0.9)
        .collect();
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (points.len() >= 10 && sxx > 0.0).then(|| sxy / sxx)
}

/// A `/proc/PID/status` field in KiB.
fn field_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find(|line| line.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
}
