//! The command line: `tokenscope serve`, `sweep`, `sim`, `demo` and `import`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shared::spec::parse_prompt_lengths;
use shared::{InputStyle, SweepSpec};

use crate::sim::SimConfig;

/// See how fast an LLM on Triton Inference Server answers.
#[derive(Debug, Parser)]
#[command(name = "tokenscope", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the dashboard: configure sweeps in a browser and watch their charts fill in live.
    /// Without --target it starts a simulated Triton in-process and points the form at it.
    #[command(visible_alias = "dashboard")]
    Serve(ServeArgs),
    /// Sweep prompt lengths against a Triton server and report time to first token and
    /// token-to-token latency per length.
    Sweep(SweepArgs),
    /// Serve a simulated Triton whose LLMs follow a latency schedule set by flags.
    Sim(SimArgs),
    /// Start a simulated Triton in this process and run both guide benchmarks against it.
    Demo(DemoArgs),
    /// Read a perf_analyzer profile export (or a tokenscope run.json) as a run: print its
    /// table, and write it as tokenscope's run.json with --out, or as CSV with --requests-csv
    /// and --points-csv. A profile export's prompt lengths come from the requests' inputs.
    Import(ImportArgs),
}

/// The guide's two benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// max_tokens 1, one request at a time: time to first token against prompt length.
    Prefill,
    /// max_tokens 256 with ignore_eos, one at a time: token-to-token latency against prompt length.
    Generation,
}

/// A parsed list of prompt lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptLengths(pub Vec<u32>);

fn parse_lengths(text: &str) -> Result<PromptLengths, String> {
    parse_prompt_lengths(text).map(PromptLengths)
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Triton's gRPC address.
    #[arg(long, env = "TOKENSCOPE_TARGET", default_value = "http://127.0.0.1:8001")]
    pub target: String,
    /// The model to measure.
    #[arg(long, short)]
    pub model: String,
    /// A model version (default: the server's choice).
    #[arg(long)]
    pub model_version: Option<String>,
    /// Start from one of the guide's benchmarks; other flags override it.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Prompt lengths in approximate tokens: a list (16,256,2048), a range (100..1000:100) or a
    /// doubling range (16..4096:x2).
    #[arg(long, default_value = "16,256,2048", value_parser = parse_lengths)]
    pub prompt_lengths: PromptLengths,
    /// Output tokens asked per request [default: 64, or the preset's].
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Ask the model to keep generating past its end-of-sequence token.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Measured requests per prompt length.
    #[arg(long, default_value_t = 10)]
    pub requests: u32,
    /// Warm-up requests per prompt length, left out of every statistic.
    #[arg(long, default_value_t = 0)]
    pub warmup: u32,
    /// Requests in flight at once [default: 1].
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// How requests are laid out for the model.
    #[arg(long, default_value = "auto")]
    pub input_style: InputStyle,
    /// Send each request with ModelInfer and time its one response, for models that are not
    /// decoupled. TTFT is then the whole request's latency; no token-to-token latency.
    #[arg(long)]
    pub non_streaming: bool,
    /// Abandon a request with no final response after this many milliseconds.
    #[arg(long, default_value_t = 60_000)]
    pub timeout_ms: u64,
    /// Where to write the run (spec, statistics, every request) [default: a new
    /// tokenscope-MODEL-TIME.json in the current folder].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write perf_analyzer's profile-export JSON here.
    #[arg(long)]
    pub profile_export: Option<PathBuf>,
    #[command(flatten)]
    pub csv: CsvFiles,
}

/// The CSV exports, the same files as the dashboard's `/api/runs/ID/export/*.csv`.
#[derive(Debug, Clone, Default, Args)]
pub struct CsvFiles {
    /// Also write one CSV row per request here (warm-up requests included and marked): send
    /// time, TTFT, mean token-to-token latency and end-to-end latency in ms, output tokens,
    /// errors, text.
    #[arg(long, value_name = "FILE")]
    pub requests_csv: Option<PathBuf>,
    /// Also write one CSV row per prompt length here: every statistic of the table and of
    /// run.json's points (counts, mean, min, max, std, percentiles; throughput).
    #[arg(long, value_name = "FILE")]
    pub points_csv: Option<PathBuf>,
}

impl SweepArgs {
    /// The sweep these arguments ask for: defaults, then the preset, then explicit flags.
    pub fn spec(&self) -> SweepSpec {
        let base = SweepSpec::default();
        let mut spec = match self.preset {
            Some(Preset::Prefill) => base.prefill_preset(),
            Some(Preset::Generation) => base.generation_preset(),
            None => base,
        };
        spec.target = self.target.clone();
        spec.model = self.model.clone();
        spec.model_version = self.model_version.clone().filter(|v| !v.is_empty());
        spec.input_style = self.input_style;
        spec.prompt_lengths = self.prompt_lengths.0.clone();
        spec.max_tokens = self.max_tokens.unwrap_or(spec.max_tokens);
        spec.ignore_eos |= self.ignore_eos;
        spec.requests = self.requests;
        spec.warmup = self.warmup;
        spec.concurrency = self.concurrency.unwrap_or(spec.concurrency);
        spec.streaming = !self.non_streaming;
        spec.request_timeout_ms = self.timeout_ms;
        spec
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the dashboard listens on (port 0 picks a free port).
    #[arg(long, env = "TOKENSCOPE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The Triton gRPC address the form starts with [default: a built-in simulated Triton].
    #[arg(long, env = "TOKENSCOPE_TARGET")]
    pub target: Option<String>,
    /// The folder that keeps every run [default: the platform's data folder, such as
    /// ~/.local/share/tokenscope].
    #[arg(long, env = "TOKENSCOPE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The built-in simulator's schedule (used when no --target is given).
    #[command(flatten)]
    pub sim: SimConfig,
    /// Keep only this many finished runs: older ones are deleted from the data folder at start
    /// and whenever a run finishes or is imported [default: all].
    #[arg(long, env = "TOKENSCOPE_KEEP_RUNS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_runs: Option<u32>,
    /// Delete finished runs stored more than this many days ago, at start and whenever a run
    /// finishes or is imported [default: never].
    #[arg(long, env = "TOKENSCOPE_KEEP_DAYS", value_name = "D", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_days: Option<u32>,
}

impl ServeArgs {
    /// Where runs are kept: `--data-dir`, else the platform's data folder, else a folder in
    /// the current one (with a warning, since it moves with the working directory).
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        match dirs::data_dir() {
            Some(base) => base.join("tokenscope"),
            None => {
                tracing::warn!(
                    "this system names no data folder: runs are kept in ./tokenscope-data; pass --data-dir to choose"
                );
                PathBuf::from("tokenscope-data")
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8001")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub config: SimConfig,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The profile export, as written by `perf_analyzer --profile-export-file`, or a
    /// tokenscope run.json.
    pub file: PathBuf,
    /// Where to write the run as tokenscope's run.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub csv: CsvFiles,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub config: SimConfig,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("tokenscope").chain(args.iter().copied()))
    }

    #[test]
    fn presets_then_flags() {
        let Command::Sweep(args) =
            parse(&["sweep", "-m", "llm", "--preset", "generation", "--concurrency", "4"]).command
        else {
            panic!("a sweep")
        };
        let spec = args.spec();
        assert_eq!((spec.max_tokens, spec.ignore_eos, spec.concurrency), (256, true, 4));
        let Command::Sweep(args) =
            parse(&["sweep", "-m", "llm", "--preset", "prefill", "--prompt-lengths", "8..32:x2"]).command
        else {
            panic!("a sweep")
        };
        let spec = args.spec();
        assert_eq!((spec.max_tokens, spec.prompt_lengths.clone()), (1, vec![8, 16, 32]));
    }

    #[test]
    fn the_dashboard_keeps_runs_where_it_is_told() {
        let Command::Serve(args) = parse(&["dashboard", "--data-dir", "/tmp/runs"]).command else {
            panic!("the dashboard")
        };
        assert_eq!(args.data_dir(), PathBuf::from("/tmp/runs"));
        let Command::Serve(args) = parse(&["serve"]).command else { panic!("the dashboard") };
        assert!(args.data_dir().ends_with("tokenscope") || args.data_dir().ends_with("tokenscope-data"));
    }

    #[test]
    fn retention_is_off_unless_asked_and_keeps_at_least_one() {
        let Command::Serve(args) = parse(&["serve"]).command else { panic!("the dashboard") };
        assert_eq!((args.keep_runs, args.keep_days), (None, None));
        let Command::Serve(args) = parse(&["serve", "--keep-runs", "50", "--keep-days", "30"]).command else {
            panic!("the dashboard")
        };
        assert_eq!((args.keep_runs, args.keep_days), (Some(50), Some(30)));
        for flag in ["--keep-runs", "--keep-days"] {
            let err = Cli::try_parse_from(["tokenscope", "serve", flag, "0"]).unwrap_err().to_string();
            assert!(err.contains("0") && err.contains("1.."), "{flag}: {err}");
        }
    }

    #[test]
    fn sweeps_and_imports_write_csv_where_they_are_told() {
        let Command::Sweep(args) =
            parse(&["sweep", "-m", "m", "--requests-csv", "r.csv", "--points-csv", "p.csv"]).command
        else {
            panic!("a sweep")
        };
        assert_eq!(args.csv.requests_csv, Some(PathBuf::from("r.csv")));
        assert_eq!(args.csv.points_csv, Some(PathBuf::from("p.csv")));
        let Command::Import(args) = parse(&["import", "pa.json", "--points-csv", "p.csv"]).command else {
            panic!("an import")
        };
        assert_eq!((args.csv.requests_csv, args.csv.points_csv), (None, Some(PathBuf::from("p.csv"))));
    }

    #[test]
    fn bad_lengths_are_refused() {
        let err = Cli::try_parse_from(["tokenscope", "sweep", "-m", "x", "--prompt-lengths", "0"]).unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
    }
}
