//! Benchmark: tokenscope beside perf_analyzer, against a real Triton server.
//!
//! Starts the real tritonserver (scripts/start-triton.sh) with the test models. For the
//! guide's two presets (prefill: max_tokens 1; generation: max_tokens 256 with ignore_eos), at
//! concurrency 1 and 16, it alternates the guide's perf_analyzer command and `tokenscope sweep`
//! against the same model, round after round. Each tokenscope run sends as many requests as
//! perf_analyzer's run before it.
//!
//! Both tools leave a profile export, and both exports are read by one reader (the one behind
//! `tokenscope import`), so the means are computed the same way from the same kind of file.
//! The model writes its send time into every response (output `send_ns`), which gives each
//! tool's arrival delay: its recorded arrival minus the model's send, on this machine's clock.
//!
//! Run with `scripts/side-by-side.sh`, which installs the server and perf_analyzer first.
//! Env: `BENCH_ROUNDS` (default 4), `BENCH_PROMPT_WORDS` (default 128), `BENCH_QUICK=1` (one
//! round, fewer requests), `BENCH_ONLY=generation-16,prefill-1` (only those cells),
//! `BENCH_PIN` (see `common::pinning`).

mod common;
#[path = "../tests/it/schedule.rs"]
mod schedule;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use schedule::Schedule;
use serde_json::{Value, json};
use shared::stats::{PointStats, percentile};
use shared::{RequestRecord, RunReport};

const MODEL: &str = "vllm_like";
/// Goal: the two tools' means agree within this share.
const MEANS_WITHIN: f64 = 0.03;

#[derive(Clone, Copy)]
struct Preset {
    name: &'static str,
    max_tokens: u32,
    ignore_eos: bool,
}

const PREFILL: Preset = Preset { name: "prefill", max_tokens: 1, ignore_eos: false };
const GENERATION: Preset = Preset { name: "generation", max_tokens: 256, ignore_eos: true };

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let rounds = if quick { 1 } else { env_number("BENCH_ROUNDS", 4).max(1) };
    let words = env_number("BENCH_PROMPT_WORDS", 128).max(1);
    let Some(perf_analyzer) = common::find_perf_analyzer() else {
        eprintln!("perf_analyzer not found: run scripts/side-by-side.sh, which installs it");
        std::process::exit(2);
    };
    let work = std::env::temp_dir().join(format!("tokenscope-side-by-side-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("a scratch folder");
    let triton = Triton::start(&work.join("triton"));
    let schedule = Schedule::of(MODEL);
    println!(
        "side by side: real tritonserver, model {MODEL} (schedule: first token {:.2} ms after the request reaches \
         the model at {words} words, then a token every {} ms), {rounds} round(s) per tool, alternating, {} cores, {}",
        schedule.prefill_ms(words),
        schedule.decode_ms,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        common::pinning()
            .map_or("shared by server and tools".into(), |(s, c)| format!("server on cores {s}, tools on {c}")),
    );
    println!(
        "means: from each tool's profile export, read by the same reader. TTFT = way in (the model's recv_ns - the \
         tool's send) + model (its first send_ns - recv_ns) + the first token's delay; delay: arrival - send_ns"
    );
    println!(
        "{:<10} {:>4} {:<14} {:>8} {:>11} {:>11} {:>9} {:>9} {:>10} {:>10} {:>8}  TTFT mean per round",
        "preset",
        "conc",
        "tool",
        "requests",
        "TTFT mean",
        "T2T mean",
        "way in",
        "model",
        "delay p50",
        "delay p99",
        "CPU"
    );
    // Warms the model (the first requests after a start take longer), measured by no one.
    tokenscope(&triton.target, GENERATION, words, 1, 4, &work, "warm");

    let mut verdicts = Vec::new();
    for (preset, concurrency, window) in
        [(PREFILL, 1, 30u32), (PREFILL, 16, 64), (GENERATION, 1, 8), (GENERATION, 16, 32)]
    {
        let cell = format!("{}-{concurrency}", preset.name);
        if std::env::var("BENCH_ONLY").is_ok_and(|only| !only.split(',').any(|c| c.trim() == cell)) {
            continue;
        }
        let window = if quick { window.div_ceil(2) } else { window };
        let steal = common::Steal::start();
        let (mut pa, mut ours) = (Tool::default(), Tool::default());
        for round in 0..rounds {
            let tag = format!("{}-{concurrency}-{round}", preset.name);
            let export = work.join(format!("pa-{tag}.json"));
            let data = prompts(preset, words);
            let run = common::PerfAnalyzer {
                target: &triton.target,
                model: MODEL,
                version: None,
                data: &data,
                concurrency,
                window_requests: window,
            };
            let cpu = run.run(common::on_tool_cores(&perf_analyzer), &work, &export).unwrap_or_else(|err| {
                panic!("perf_analyzer failed ({} at concurrency {concurrency}): {err}", preset.name)
            });
            let sent = pa.add(&export, cpu);
            let (export, cpu) = tokenscope(&triton.target, preset, words, concurrency, sent, &work, &tag);
            ours.add(&export, cpu);
        }
        let (theirs, mine) = (pa.figures(words), ours.figures(words));
        theirs.print(preset, concurrency, "perf_analyzer");
        mine.print(preset, concurrency, "tokenscope");
        steal.print();
        verdicts.push(compare(preset, concurrency, &theirs, &mine));
    }
    println!();
    for verdict in verdicts {
        println!("{verdict}");
    }
    drop(triton);
    let _ = std::fs::remove_dir_all(&work);
}

/// perf_analyzer's input data: distinct prompts of `words` words, so no two requests in a row
/// share a prompt, as tokenscope's own prompts differ per request. The optional inputs
/// tokenscope sets (leave the prompt out, report token counts) are set too, so both tools
/// ask the model for the same work: under load, each extra output costs the model time.
fn prompts(preset: Preset, words: u32) -> Value {
    let sampling = server::convention::sampling_json(preset.max_tokens, preset.ignore_eos);
    let data: Vec<Value> = (0..64)
        .map(|seq| {
            let prompt = shared::prompt::synthetic_prompt(0, seq, words);
            json!({
                "text_input": [prompt],
                "stream": [true],
                "sampling_parameters": [sampling],
                "exclude_input_in_output": [true],
                "return_num_input_tokens": [true],
                "return_num_output_tokens": [true],
            })
        })
        .collect();
    json!({ "data": data })
}

/// Runs `tokenscope sweep`; returns its profile export and the CPU seconds it used.
fn tokenscope(
    target: &str,
    preset: Preset,
    words: u32,
    concurrency: u32,
    requests: u32,
    work: &Path,
    tag: &str,
) -> (PathBuf, f64) {
    let export = work.join(format!("ours-{tag}.json"));
    let mut command = common::on_tool_cores(Path::new(env!("CARGO_BIN_EXE_tokenscope")));
    command
        .args(["sweep", "--target", target, "--model", MODEL, "--prompt-lengths", &words.to_string()])
        .args(["--max-tokens", &preset.max_tokens.to_string(), "--requests", &requests.to_string()])
        .args(["--warmup", "0", "--concurrency", &concurrency.to_string()])
        .arg("--out")
        .arg(work.join(format!("ours-{tag}-run.json")))
        .arg("--profile-export")
        .arg(&export);
    if preset.ignore_eos {
        command.arg("--ignore-eos");
    }
    let (status, cpu) =
        common::run_measured(command.stdout(Stdio::null()).stderr(Stdio::null()), None).expect("tokenscope runs");
    assert!(status.is_some_and(|s| s.success()), "tokenscope sweep failed ({tag})");
    (export, cpu)
}

/// Everything one tool recorded over its rounds.
#[derive(Default)]
struct Tool {
    records: Vec<RequestRecord>,
    delays: Vec<f64>,
    /// Each round's TTFT mean, to show how much the server itself varies between rounds.
    round_ttft: Vec<f64>,
    /// Per request: from the tool's recorded send to the model's receipt (`recv_ns`).
    way_in: Vec<f64>,
    /// Per request: from the model's receipt to its send of the first token.
    model: Vec<f64>,
    /// CPU seconds the tool's process used.
    cpu_s: f64,
}

impl Tool {
    /// Reads one profile export, of a run that used `cpu_s` CPU seconds; returns how many
    /// requests it holds.
    fn add(&mut self, export: &Path, cpu_s: f64) -> u32 {
        self.cpu_s += cpu_s;
        let report: RunReport = server::import::profile_to_report(&common::read_json(export), "export")
            .unwrap_or_else(|e| panic!("{}: {e}", export.display()));
        self.delays.extend(report.arrival_delays_ms());
        for record in &report.requests {
            let first_sent = record.token_responses().next().and_then(|c| c.server_send_unix_ns);
            if let (Some(received), Some(sent)) = (record.server_recv_unix_ns, first_sent) {
                let asked = report.started_unix_ns + record.send_ns as i64;
                self.way_in.push((received - asked) as f64 / 1e6);
                self.model.push((sent - received) as f64 / 1e6);
            }
        }
        if let Some(ttft) = report.points.first().and_then(|p| p.ttft_ms.as_ref()) {
            self.round_ttft.push(ttft.mean);
        }
        let count = report.requests.len() as u32;
        self.records.extend(report.requests.into_iter().map(|r| RequestRecord { point: 0, ..r }));
        count
    }

    fn figures(mut self, words: u32) -> Figures {
        self.delays.sort_by(f64::total_cmp);
        let stats = PointStats::compute(words, &self.records);
        Figures {
            requests: stats.count,
            errors: stats.errors,
            ttft_mean: stats.ttft_ms.map(|s| s.mean),
            t2t_mean: stats.t2t_ms.map(|s| s.mean),
            delay_p50: if self.delays.is_empty() { f64::NAN } else { percentile(&self.delays, 50.0) },
            delay_p99: if self.delays.is_empty() { f64::NAN } else { percentile(&self.delays, 99.0) },
            round_ttft: self.round_ttft,
            cpu_s: self.cpu_s,
            way_in: mean(&self.way_in),
            model: mean(&self.model),
        }
    }
}

struct Figures {
    requests: u64,
    errors: u64,
    ttft_mean: Option<f64>,
    t2t_mean: Option<f64>,
    delay_p50: f64,
    delay_p99: f64,
    round_ttft: Vec<f64>,
    way_in: f64,
    model: f64,
    cpu_s: f64,
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

impl Figures {
    fn print(&self, preset: Preset, concurrency: u32, tool: &str) {
        let ms = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| format!("{v:.3} ms"));
        println!(
            "{:<10} {concurrency:>4} {tool:<14} {:>8} {:>11} {:>11} {:>6.3} ms {:>6.3} ms {:>7.3} ms {:>7.3} ms {:>6.2} s  {}{}",
            preset.name,
            self.requests,
            ms(self.ttft_mean),
            ms(self.t2t_mean),
            self.way_in,
            self.model,
            self.delay_p50,
            self.delay_p99,
            self.cpu_s,
            self.round_ttft.iter().map(|m| format!("{m:.2}")).collect::<Vec<_>>().join(" "),
            if self.errors > 0 { format!("  ({} errors)", self.errors) } else { String::new() },
        );
    }
}

/// One line per cell: the difference of the means and the ratio of the delays, against the goals.
fn compare(preset: Preset, concurrency: u32, pa: &Figures, ours: &Figures) -> String {
    let diff = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / a?);
    let mean_note = |name: &str, d: Option<f64>| match d {
        Some(d) => {
            format!("{name} {:+.2}% ({})", d * 100.0, if d.abs() <= MEANS_WITHIN { "within 3%" } else { "OUTSIDE 3%" })
        }
        None => format!("{name} —"),
    };
    let ratio =
        |name: &str, a: f64, b: f64| format!("{name} {:.2}x ({})", b / a, if b <= a { "no worse" } else { "WORSE" });
    // How far apart two tools' TTFT means could be from the server's own swings alone: 95% of
    // the spread of a difference of two means of round means.
    let noise = match (standard_error(&pa.round_ttft), standard_error(&ours.round_ttft), pa.ttft_mean) {
        (Some(a), Some(b), Some(mean)) => format!(
            "; rounds of one tool vary: a difference up to {:.1}% is within the server's own variation (95%)",
            1.96 * (a * a + b * b).sqrt() / mean * 100.0
        ),
        _ => String::new(),
    };
    format!(
        "{} at concurrency {concurrency}, tokenscope against perf_analyzer: {}, {}; delay {}, {}{noise}",
        preset.name,
        mean_note("TTFT", diff(pa.ttft_mean, ours.ttft_mean)),
        mean_note("T2T", diff(pa.t2t_mean, ours.t2t_mean)),
        ratio("p50", pa.delay_p50, ours.delay_p50),
        ratio("p99", pa.delay_p99, ours.delay_p99),
    )
}

/// The standard error of the mean of `values` (sample standard deviation over the root of
/// their count); none below two values.
fn standard_error(values: &[f64]) -> Option<f64> {
    let n = values.len() as f64;
    if values.len() < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((variance / n).sqrt())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// A real tritonserver with the test models, stopped on drop.
struct Triton {
    state: PathBuf,
    target: String,
}

impl Triton {
    fn start(state: &Path) -> Self {
        let root = repo_root();
        let mut command = common::on_server_cores(Path::new("bash"));
        let output = command
            .arg(root.join("scripts/start-triton.sh"))
            .arg(root.join("server/tests/triton_models"))
            .env("TRITON_STATE_DIR", state)
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/start-triton.sh runs");
        let mut started = Self { state: state.to_path_buf(), target: String::new() };
        assert!(output.status.success(), "the real tritonserver did not start (see above)");
        let text = String::from_utf8_lossy(&output.stdout);
        let grpc = text.lines().find_map(|l| l.strip_prefix("TRITON_GRPC=")).expect("TRITON_GRPC from start-triton.sh");
        started.target = format!("http://{grpc}");
        started
    }
}

impl Drop for Triton {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/stop-triton.sh"))
            .arg(&self.state)
            .stderr(Stdio::null())
            .status();
    }
}
