//! Benchmark: what each protocol costs per token. The same simulated model is measured over
//! Triton's gRPC, Triton's HTTP generate stream and an OpenAI-compatible stream, at
//! concurrency 1 and 64, by one simulator process serving all three (`tokenscope sim
//! --http-listen --openai-listen --stamp-text`).
//!
//! The simulator writes each token's send time into its text, so every protocol's delay from
//! the simulator's send to tokenscope's recorded arrival is read from the runs the same way;
//! the engine's CPU per token comes from the run's own report of its thread's CPU time.
//!
//! Run with `cargo bench -p server --bench protocols`; `BENCH_QUICK=1` runs a short version,
//! `BENCH_REPEATS=N` (default 3) repeats each row, the protocols taking turns, and the repeat
//! with the median p99 delay is compared with gRPC's.

// Only the process helpers and the steal reading; perf_analyzer is not run here.
#[allow(dead_code)]
mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use shared::RunReport;

const MAX_TOKENS: u32 = 64;
const PROMPT_WORDS: u32 = 16;
const DECODE_MS: f64 = 2.0;

/// The protocols measured, as their targets are written.
const PROTOCOLS: [(&str, &str); 3] = [("triton-grpc", "http"), ("triton-http", "triton-http"), ("openai", "openai")];

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let repeats: usize = std::env::var("BENCH_REPEATS").ok().and_then(|r| r.parse().ok()).unwrap_or(3).max(1);
    let work = std::env::temp_dir().join(format!("tokenscope-protocols-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("a scratch folder");
    println!(
        "protocols benchmark: simulator prefill 1 ms, decode {DECODE_MS} ms, {MAX_TOKENS} tokens per request, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "{:>11} {:>12} {:>8} {:>8} {:>11} {:>11} {:>14} {:>10}",
        "concurrency", "protocol", "requests", "tokens", "delay p50", "delay p99", "CPU per token", "TTFT mean"
    );
    for (concurrency, requests) in [(1u32, 100u32), (64, 640)] {
        let requests = if quick { requests.div_ceil(4).max(concurrency) } else { requests };
        let mut runs: Vec<Vec<Figures>> = PROTOCOLS.iter().map(|_| Vec::new()).collect();
        for repeat in 0..repeats {
            let mut order: Vec<usize> = (0..PROTOCOLS.len()).collect();
            order.rotate_left(repeat % PROTOCOLS.len());
            for i in order {
                let sim = Sim::start();
                let (name, scheme) = PROTOCOLS[i];
                let port = match name {
                    "triton-grpc" => sim.grpc,
                    "triton-http" => sim.http,
                    _ => sim.openai,
                };
                let target = format!("{scheme}://127.0.0.1:{port}");
                let out = work.join(format!("{name}-{concurrency}-{repeat}.json"));
                let steal = common::Steal::start();
                let figures = sweep(&target, concurrency, requests, &out);
                figures.print(concurrency, name);
                steal.print();
                runs[i].push(figures);
            }
        }
        let medians: Vec<Figures> = runs.into_iter().map(Figures::median_p99).collect();
        let grpc = &medians[0];
        for (figures, (name, _)) in medians.iter().zip(PROTOCOLS).skip(1) {
            println!(
                "{concurrency:>11} {name:>12} against gRPC, median-p99 repeats: CPU per token {:.2}x (goal at most \
                 1.5x), delay p50 {:+.3} ms (goal within 0.1 ms), p99 {:+.3} ms",
                figures.cpu_per_token_us / grpc.cpu_per_token_us,
                figures.delay_p50_ms - grpc.delay_p50_ms,
                figures.delay_p99_ms - grpc.delay_p99_ms,
            );
        }
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// One `tokenscope sweep` of `requests` at `concurrency` to `target`, its run kept at `out`.
fn sweep(target: &str, concurrency: u32, requests: u32, out: &Path) -> Figures {
    let output = common::on_tool_cores(Path::new(env!("CARGO_BIN_EXE_tokenscope")))
        .args(["sweep", "--target", target, "--model", "sim-vllm", "--ignore-eos", "--no-metrics"])
        .args(["--prompt-lengths", &PROMPT_WORDS.to_string(), "--max-tokens", &MAX_TOKENS.to_string()])
        .args(["--requests", &requests.to_string(), "--concurrency", &concurrency.to_string()])
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .output()
        .expect("tokenscope runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tokenscope sweep of {target} failed: {stderr}");
    let report: RunReport = serde_json::from_slice(&std::fs::read(out).expect("the run is written")).expect("a run");
    Figures::of(&report)
}

/// A simulator process serving all three protocols on free loopback ports, killed on drop.
struct Sim {
    child: Child,
    grpc: u16,
    http: u16,
    openai: u16,
}

impl Sim {
    fn start() -> Self {
        let free = || TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let (grpc, http, openai) = (free(), free(), free());
        let at = |port: u16| format!("127.0.0.1:{port}");
        let child = common::on_server_cores(Path::new(env!("CARGO_BIN_EXE_tokenscope")))
            .args(["sim", "--listen", &at(grpc), "--http-listen", &at(http), "--openai-listen", &at(openai)])
            .args(["--stamp-text", "--prefill-base-ms", "1", "--prefill-per-token-ms", "0"])
            .args(["--decode-ms", &DECODE_MS.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .expect("the simulator starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [grpc, http, openai] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "the simulator did not listen within 10 s");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Self { child, grpc, http, openai }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one run shows.
struct Figures {
    requests: usize,
    tokens: u64,
    delay_p50_ms: f64,
    delay_p99_ms: f64,
    cpu_per_token_us: f64,
    ttft_mean_ms: f64,
}

impl Figures {
    /// The repeat with the median p99 delay.
    fn median_p99(mut runs: Vec<Figures>) -> Figures {
        runs.sort_by(|a, b| a.delay_p99_ms.total_cmp(&b.delay_p99_ms));
        runs.swap_remove(runs.len() / 2)
    }

    /// Reads a run whose token texts hold the simulator's send stamps (`@NS`, Unix time).
    fn of(report: &RunReport) -> Self {
        let (mut delays, mut ttft, mut requests, mut tokens) = (Vec::new(), Vec::new(), 0, 0u64);
        for record in report.requests.iter().filter(|r| r.error.is_none() && !r.warmup) {
            let mut first = None;
            for response in record.token_responses() {
                let stamp = response.text.split_whitespace().find_map(|w| w.strip_prefix('@')?.parse::<i64>().ok());
                if let Some(stamp) = stamp {
                    let arrival = report.started_unix_ns + response.at_ns as i64;
                    delays.push((arrival - stamp) as f64 / 1e6);
                    first.get_or_insert(response.at_ns);
                }
            }
            if let Some(first) = first {
                requests += 1;
                ttft.push(first.saturating_sub(record.send_ns) as f64 / 1e6);
            }
            tokens += record.output_tokens();
        }
        assert!(!delays.is_empty(), "the run's texts hold no send stamps: is the simulator started with --stamp-text?");
        delays.sort_by(f64::total_cmp);
        let cpu_s = report.engine.as_ref().map_or(f64::NAN, |e| e.cpu_s);
        Self {
            requests,
            tokens,
            delay_p50_ms: shared::stats::percentile(&delays, 50.0),
            delay_p99_ms: shared::stats::percentile(&delays, 99.0),
            cpu_per_token_us: cpu_s * 1e6 / tokens.max(1) as f64,
            ttft_mean_ms: ttft.iter().sum::<f64>() / ttft.len().max(1) as f64,
        }
    }

    fn print(&self, concurrency: u32, protocol: &str) {
        println!(
            "{concurrency:>11} {protocol:>12} {:>8} {:>8} {:>8.3} ms {:>8.3} ms {:>11.2} µs {:>7.3} ms",
            self.requests, self.tokens, self.delay_p50_ms, self.delay_p99_ms, self.cpu_per_token_us, self.ttft_mean_ms
        );
    }
}
