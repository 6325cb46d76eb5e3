//! The headless sweep: a progress bar while it runs, a table per prompt length, and files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use shared::capacity::Capacity;
use shared::server_stats::ServerPointStats;
use shared::spec::LoadLevel;
use shared::telemetry::WindowSummary;
use shared::{ModelInfo, PointStats, RequestRecord, RunReport, RunStatus, Summary, SweepSpec};
use tokio::sync::mpsc;

use crate::cli::{CsvFiles, ImportArgs, SweepArgs};
use crate::clock::{RunClock, utc_stamp};
use crate::engine::{Observer, run_sweep_with};
use crate::export::Export;
use crate::prompts::{FilePrompts, RunPrompts};

/// The files a run is written to; each one given is written, through [`Export::render`], as
/// the dashboard serves it.
#[derive(Debug, Clone, Default)]
pub struct RunFiles {
    /// The run as run.json.
    pub out: Option<PathBuf>,
    /// perf_analyzer's profile-export JSON.
    pub profile_export: Option<PathBuf>,
    pub csv: CsvFiles,
    /// The run's prompts, when they were opened before it: the profile export lists them.
    pub prompts: Option<Arc<RunPrompts>>,
}

impl RunFiles {
    /// Writes every file asked for, saying where.
    pub fn write(&self, report: &RunReport) -> anyhow::Result<()> {
        let files = [
            (Export::Run, &self.out),
            (Export::Profile, &self.profile_export),
            (Export::Requests, &self.csv.requests_csv),
            (Export::Points, &self.csv.points_csv),
            (Export::Metrics, &self.csv.metrics_csv),
        ];
        for (export, path) in files.iter().filter_map(|(export, path)| Some((*export, path.as_deref()?))) {
            write_file(path, |out| export.write_with(report, self.prompts.clone(), out))?;
            eprintln!("wrote {} ({})", path.display(), export.description());
        }
        Ok(())
    }
}

/// Runs `tokenscope sweep`.
pub async fn command(args: SweepArgs) -> anyhow::Result<ExitCode> {
    args.tls.apply()?;
    let mut spec = args.spec();
    let prompts = match open_prompts(&mut spec, args.requests.is_some() || args.duration.is_some()) {
        Ok(prompts) => prompts.map(Arc::new),
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let files = RunFiles {
        out: Some(args.out.clone().unwrap_or_else(|| default_out(&spec.model))),
        profile_export: args.profile_export,
        csv: args.csv,
        prompts: prompts.clone(),
    };
    run_and_report(spec, prompts, &files).await
}

/// Opens a sweep's tokenizer or prompts file once, before anything is sent, so one that
/// cannot be used runs nothing and the run does not read it again; `None` when there is
/// neither, or the spec has problems the run will name. A sweep of a prompts file without
/// prompt lengths gets one, the median of the file's, whose point takes every prompt and,
/// unless `counted` (a request count or a duration was given), sends each once; what each
/// point will send is printed.
fn open_prompts(spec: &mut SweepSpec, counted: bool) -> Result<Option<RunPrompts>, String> {
    if spec.prompts_file.is_none() {
        let opens = spec.tokenizer.is_some() && spec.problems().is_empty();
        return if opens { RunPrompts::open(spec).map(Some) } else { Ok(None) };
    }
    let mut prompts = RunPrompts::open(spec)?;
    if spec.prompt_lengths.is_empty() {
        let file = prompts.file().expect("the spec has a prompts file");
        spec.prompt_lengths = vec![file.median_length()];
        if !counted {
            let most = usize::try_from(shared::limits::MAX_REQUESTS_PER_POINT).unwrap_or(usize::MAX);
            spec.requests = u32::try_from(file.count().min(most)).unwrap_or(u32::MAX);
        }
        prompts = prompts.grouped(&spec.prompt_lengths)?;
    }
    eprintln!("{}", file_summary(spec, prompts.file().expect("the spec has a prompts file")));
    Ok(Some(prompts))
}

/// What each point of a sweep of a prompts file sends.
fn file_summary(spec: &SweepSpec, file: &FilePrompts) -> String {
    let per_length = spec.point_count() as u64 / spec.prompt_lengths.len().max(1) as u64 * spec.requests_per_point();
    let mut summary = format!(
        "{}: {} prompts, lengths in {}",
        spec.prompts_file.as_deref().unwrap_or_default(),
        file.count(),
        file.unit()
    );
    for (length, count, [least, median, most]) in file.groups() {
        let _ = write!(summary, "\n  {length}: {count} prompts, {least} to {most} (median {median})");
        if per_length > count as u64 {
            let _ = write!(
                summary,
                "; {per_length} requests at this length send some more than once, which a prefix cache can answer \
                 faster"
            );
        }
    }
    summary
}

/// Runs a sweep with a progress bar, prints its table and writes its files. A run that
/// failed part-way still writes everything it measured.
pub async fn run_and_report(
    spec: SweepSpec,
    prompts: Option<Arc<RunPrompts>>,
    files: &RunFiles,
) -> anyhow::Result<ExitCode> {
    // SIGTERM, as a batch system or a container sends, stops the run as Ctrl-C does.
    let cancel = crate::signals::stop_token(|name| eprintln!("\n{name}: stopping and keeping what finished"));
    let (progress, news) = Progress::new(&spec);
    let bar = tokio::spawn(draw_progress(spec.total_requests(), news));
    let (report, progress) = run_sweep_with(RunClock::start(), spec, prompts, progress, cancel).await?;
    drop(progress);
    let _ = bar.await;
    if report.model.is_some() {
        println!("{}", format_table(&report));
    }
    if let Some(engine) = report.engine.as_ref().filter(|e| e.responses > 0) {
        eprintln!("{}", engine.describe());
    }
    if let Some(telemetry) = &report.telemetry {
        eprintln!("{}", telemetry.describe());
    }
    if !report.requests.is_empty() {
        files.write(&report)?;
    }
    Ok(match report.status {
        RunStatus::Completed => ExitCode::SUCCESS,
        RunStatus::Cancelled => {
            eprintln!("the run was cancelled");
            ExitCode::from(130)
        }
        RunStatus::Failed { error } => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
        RunStatus::Running | RunStatus::Interrupted => unreachable!("a returned run has ended in this process"),
    })
}

/// `tokenscope import`: reads a profile export, prints its table, writes the files asked for.
pub fn import_command(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let name = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {name}"))?;
    let report = crate::import::bytes_to_report(bytes, &name)?;
    // A profile export's prompt lengths are counted here; a run.json's are its own.
    let counted = report.tool.starts_with("imported from") || report.tool == "perf_analyzer";
    eprintln!(
        "{name}: {} requests at {} prompt lengths{}",
        report.requests.len(),
        report.spec.prompt_lengths.len(),
        if counted { " (words of each request's text input)" } else { "" }
    );
    println!("{}", format_table(&report));
    RunFiles { out: args.out, profile_export: None, csv: args.csv, prompts: None }.write(&report)?;
    Ok(ExitCode::SUCCESS)
}

/// The sweep's progress as the engine tells it; drawn by [`draw_progress`] off the engine's
/// thread, so that a slow terminal never delays a measurement.
struct Progress {
    news: mpsc::UnboundedSender<News>,
    /// What the sweep's prompt lengths count, in words.
    unit: String,
}

enum News {
    /// A line to print above the bar.
    Line(String),
    /// A request finished; whether it counts as an error.
    Done { error: bool },
}

impl Progress {
    fn new(spec: &SweepSpec) -> (Self, mpsc::UnboundedReceiver<News>) {
        let (news, receiver) = mpsc::unbounded_channel();
        let unit = match (spec.tokenizer_name(), &spec.prompts_file) {
            (Some(name), None) => format!("exact tokens by the tokenizer {name}"),
            (Some(name), Some(_)) => format!("tokens of the file's prompts by the tokenizer {name}"),
            (None, Some(_)) => "words of the file's prompts".into(),
            (None, None) => "approximate tokens (words of synthetic text)".into(),
        };
        (Self { news, unit }, receiver)
    }

    fn line(&self, line: String) {
        let _ = self.news.send(News::Line(line));
    }
}

impl Observer for Progress {
    fn prepared(&mut self, model: &ModelInfo) {
        self.line(format!(
            "model {} ({} style{}); prompt lengths are {}",
            model.name,
            model.input_style,
            if model.batched { ", batched inputs" } else { "" },
            self.unit
        ));
    }

    fn request_done(&mut self, record: &RequestRecord) {
        let _ = self.news.send(News::Done { error: record.error.is_some() && !record.warmup });
    }

    fn point_done(&mut self, _point: usize, stats: &PointStats) {
        let load = stats.load.map(|l| format!(" at {l}")).unwrap_or_default();
        let good = stats.goodput.map(|g| format!(", {:.1}% met the objectives", g.share * 100.0)).unwrap_or_default();
        self.line(format!(
            "prompt {:>6}{load}: TTFT mean {} ms, token-to-token mean {} ms{good}",
            stats.prompt_length,
            ms(stats.ttft_ms.as_ref().map(|s| s.mean)),
            ms(stats.t2t_ms.as_ref().map(|s| s.mean)),
        ));
    }
}

/// Draws the progress bar until the sweep's observer is gone, then clears it.
async fn draw_progress(total: u64, mut news: mpsc::UnboundedReceiver<News>) {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} requests, {msg} (eta {eta})")
            .expect("a valid template"),
    );
    bar.set_message("0 errors");
    let mut errors = 0u64;
    while let Some(news) = news.recv().await {
        match news {
            News::Line(line) => bar.println(line),
            News::Done { error } => {
                if error {
                    errors += 1;
                    bar.set_message(format!("{errors} errors"));
                }
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

/// The table printed after a sweep: one row per point. A sweep over load levels gets a load
/// column; an open-loop one the rate it sent at, its schedule lag and TTFT from the intended
/// send time; one with objectives its goodput. Points whose client fell behind its schedule
/// are named below the table, in words.
pub fn format_table(report: &RunReport) -> String {
    type Cell = Box<dyn Fn(usize, &PointStats) -> String>;
    let spec = &report.spec;
    let summary = |pick: fn(&PointStats) -> Option<&Summary>, stat: fn(&Summary) -> f64| -> Cell {
        Box::new(move |_: usize, p: &PointStats| ms(pick(p).map(stat)))
    };
    let mut columns: Vec<(&str, usize, Cell)> = Vec::new();
    if spec.load_levels().len() > 1 || spec.open_loop() {
        let load: Cell = Box::new(|_: usize, p: &PointStats| match p.load {
            Some(LoadLevel::Concurrency(c)) => format!("c={c}"),
            Some(LoadLevel::Rate(rate)) => format!("{rate}/s"),
            None => String::new(),
        });
        columns.push(("load", 8, load));
    }
    columns.push(("prompt", 7, Box::new(|_: usize, p: &PointStats| p.prompt_length.to_string())));
    columns.push(("count", 6, Box::new(|_: usize, p: &PointStats| p.count.to_string())));
    columns.push(("errors", 6, Box::new(|_: usize, p: &PointStats| p.errors.to_string())));
    columns.push(("TTFT mean", 9, summary(|p| p.ttft_ms.as_ref(), |s| s.mean)));
    columns.push(("p50", 9, summary(|p| p.ttft_ms.as_ref(), |s| s.p50)));
    columns.push(("p90", 9, summary(|p| p.ttft_ms.as_ref(), |s| s.p90)));
    columns.push(("p99", 9, summary(|p| p.ttft_ms.as_ref(), |s| s.p99)));
    columns.push(("T2T mean", 8, summary(|p| p.t2t_ms.as_ref(), |s| s.mean)));
    columns.push(("p50", 8, summary(|p| p.t2t_ms.as_ref(), |s| s.p50)));
    columns.push(("p90", 8, summary(|p| p.t2t_ms.as_ref(), |s| s.p90)));
    columns.push(("p99", 8, summary(|p| p.t2t_ms.as_ref(), |s| s.p99)));
    columns.push(("out tok/s", 10, Box::new(|_: usize, p: &PointStats| format!("{:.1}", p.output_tokens_per_s))));
    if spec.open_loop() {
        columns.push(("sent/s", 8, Box::new(|_: usize, p: &PointStats| format!("{:.2}", p.sent_per_s))));
        columns.push(("lag p99", 8, summary(|p| p.schedule_lag_ms.as_ref(), |s| s.p99)));
        columns.push(("TTFT* p50", 9, summary(|p| p.ttft_intended_ms.as_ref(), |s| s.p50)));
        columns.push(("p99", 9, summary(|p| p.ttft_intended_ms.as_ref(), |s| s.p99)));
    }
    if spec.slo.is_some() {
        let share: Cell = Box::new(|_: usize, p: &PointStats| {
            p.goodput.map_or_else(|| "-".into(), |g| format!("{:.1}%", g.share * 100.0))
        });
        let rate: Cell = Box::new(|_: usize, p: &PointStats| {
            p.goodput.map_or_else(|| "-".into(), |g| format!("{:.2}", g.requests_per_s))
        });
        columns.push(("good", 6, share));
        columns.push(("good/s", 8, rate));
    }
    let server = report.points.iter().any(|p| p.server.is_some());
    if server {
        let server_ms = |stat: fn(&ServerPointStats) -> f64| -> Cell {
            Box::new(move |_, p: &PointStats| ms(p.server.as_ref().map(stat)))
        };
        columns.push(("srv queue", 9, server_ms(|s| s.queue_ms)));
        columns.push(("compute", 9, server_ms(ServerPointStats::compute_ms)));
    }
    // The server's metrics over each point's measured requests, where the run has them.
    let windows = report.telemetry_by_point();
    let has = |pick: fn(&WindowSummary) -> Option<f64>| windows.iter().flatten().any(|w| pick(w).is_some());
    let window_cell = |pick: fn(&WindowSummary) -> Option<f64>, percent: bool| -> Cell {
        let values: Vec<Option<f64>> = windows.iter().map(|w| w.as_ref().and_then(pick)).collect();
        Box::new(move |point: usize, _: &PointStats| match values.get(point).copied().flatten() {
            Some(v) if percent => format!("{:.0}%", v * 100.0),
            Some(v) => format!("{v:.1}"),
            None => "-".into(),
        })
    };
    let metrics = [
        ("gpu util", (|w: &WindowSummary| w.gpu_utilization) as fn(&WindowSummary) -> Option<f64>, true),
        ("kv cache", |w: &WindowSummary| w.kv_cache_usage, true),
        ("queue", |w: &WindowSummary| w.queue_depth, false),
    ];
    let shown: Vec<&str> = metrics.iter().filter(|m| has(m.1)).map(|m| m.0).collect();
    for (name, pick, percent) in metrics {
        if has(pick) {
            columns.push((name, 8, window_cell(pick, percent)));
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>| -> String {
        let widths = columns.iter().map(|(_, width, _)| *width);
        let padded: Vec<String> = cells.iter().zip(widths).map(|(cell, width)| format!("{cell:>width$}")).collect();
        padded.join(" ").trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(columns.iter().map(|(name, _, _)| name.to_string()).collect()));
    for (i, p) in report.points.iter().enumerate() {
        let _ = writeln!(out, "{}", line(columns.iter().map(|(_, _, cell)| cell(i, p)).collect()));
    }
    let _ = write!(out, "times in ms; prompt lengths in {}; T2T = token-to-token latency", report.prompt_length_unit());
    if spec.open_loop() {
        out.push_str(
            "\nopen loop: sent/s = requests sent per second; lag = actual minus intended send time; TTFT* = TTFT \
             from the intended send time, which includes the lag",
        );
    }
    if server {
        out.push_str(
            "\nsrv queue, compute = the server's own mean time per request in its queue and computing (Triton's \
             model statistics over the point, warm-up included)",
        );
    }
    if !shown.is_empty() {
        let simulated = windows.iter().flatten().any(|w| w.gpu_simulated);
        let _ = write!(
            out,
            "\n{} = the server's metrics, the mean over the scrapes during each point's measured requests{}",
            shown.join(", "),
            if simulated { " (the simulator's GPU utilisation is its busy time)" } else { "" }
        );
    }
    if let Some(missing) = report.points.iter().find_map(|p| p.server_missing.as_ref()) {
        let _ = write!(out, "\nthe server's statistics are missing: {missing}");
    }
    if let Some(slo) = &spec.slo {
        let _ = write!(out, "\ngood = share of requests that met every objective ({slo}); good/s = their rate");
    }
    for p in &report.points {
        if let Some(warning) = p.lag_warning() {
            let load = p.load.map(|l| format!(" at {l}")).unwrap_or_default();
            let _ = write!(out, "\nprompt {}{load}: {warning}", p.prompt_length);
        }
    }
    if let Some(prefix) = spec.shared_prefix {
        let unit = if spec.tokenizer.is_some() { "tokens" } else { "words" };
        let _ = write!(out, "\nevery prompt starts with the same {prefix} {unit}, which a prefix cache can keep");
    }
    for p in &report.points {
        if let Some(lengths) = lengths_sent(spec, p) {
            let load = p.load.filter(|_| spec.load_levels().len() > 1).map(|l| format!(" at {l}")).unwrap_or_default();
            let _ = write!(out, "\nprompt {}{load}: {lengths}", p.prompt_length);
        }
    }
    if let (Some(search), Some(capacity)) =
        (&spec.capacity, Capacity::of_run(spec, report.points.iter().map(Some), report.status.ended_early()))
    {
        let _ = write!(out, "\n{}", capacity.headline(search));
    }
    if !spec.streaming {
        out.push_str(
            "\nwithout streaming, each request's one response carries every token: TTFT is its whole latency, \
             and there is no token-to-token latency",
        );
    }
    out
}

/// The lengths a point sent and got, when they were not all the same: prompts drawn or from
/// a file, outputs drawn.
fn lengths_sent(spec: &SweepSpec, p: &PointStats) -> Option<String> {
    let range = |s: &Summary| format!("{} to {} (median {})", s.min, s.max, s.p50);
    let mut parts = Vec::new();
    if let Some(sent) = &p.prompt_lengths_sent {
        parts.push(format!("prompts of {}", range(sent)));
    }
    if let Some(output) = p.output_tokens.as_ref().filter(|_| spec.output_stddev.is_some_and(|s| s > 0.0)) {
        parts.push(format!("outputs of {} tokens", range(output)));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Writes a file through a temporary one beside it, so a crash never leaves half a file.
pub fn write_file(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp).and_then(|file| {
        let mut out = std::io::BufWriter::new(file);
        write(&mut out)?;
        out.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()
    });
    written.with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

/// `tokenscope-MODEL-YYYYmmdd-HHMMSS.json` in the current folder, named so as not to overwrite.
fn default_out(model: &str) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let safe: String = model.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    PathBuf::from(format!("tokenscope-{safe}-{}.json", utc_stamp(secs)))
}
