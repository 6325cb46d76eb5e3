//! The command line: `tokenscope serve`, `sweep`, `sim`, `demo` and `import`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use shared::capacity::CapacitySearch;
use shared::goodput::Slo;
use shared::schedule::Arrival;
use shared::spec::parse_prompt_lengths;
use shared::{InputStyle, SweepSpec};

use crate::dashboard::access::{Access, Roles, Secret, TargetPattern, Viewers};
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

/// A parsed list of concurrencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concurrencies(pub Vec<u32>);

fn parse_concurrency_list(text: &str) -> Result<Concurrencies, String> {
    shared::spec::parse_concurrencies(text).map(Concurrencies)
}

/// A parsed list of request rates.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRates(pub Vec<f64>);

fn parse_rate_list(text: &str) -> Result<RequestRates, String> {
    shared::spec::parse_request_rates(text).map(RequestRates)
}

fn parse_slo(text: &str) -> Result<Slo, String> {
    Slo::parse(text)
}

/// Output tokens per request: a mean, and a standard deviation to draw them with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputTokens {
    pub mean: u32,
    pub stddev: Option<f64>,
}

fn parse_output_tokens(text: &str) -> Result<OutputTokens, String> {
    let (mean, stddev) = text.split_once(',').map_or((text, None), |(m, s)| (m, Some(s)));
    let mean = mean.trim().parse().map_err(|_| format!("{mean:?} is not a whole number of tokens"))?;
    let stddev = match stddev {
        Some(s) => Some(s.trim().parse::<f64>().map_err(|_| format!("{s:?} is not a standard deviation"))?),
        None => None,
    };
    Ok(OutputTokens { mean, stddev })
}

/// A parsed list of prompt lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptLengths(pub Vec<u32>);

fn parse_lengths(text: &str) -> Result<PromptLengths, String> {
    parse_prompt_lengths(text).map(PromptLengths)
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("open_loop").args(["request_rate", "find_capacity"])))]
pub struct SweepArgs {
    /// The server's address. http://HOST:8001 (or https://) is Triton's gRPC;
    /// triton-http://HOST:8000 is Triton's HTTP generate stream; openai://HOST:PORT an
    /// OpenAI-compatible server (vLLM, SGLang, llama.cpp, TGI, Triton's OpenAI frontend);
    /// triton-https:// and openai-https:// add TLS.
    #[arg(long, env = "TOKENSCOPE_TARGET", default_value = "http://127.0.0.1:8001")]
    pub target: String,
    /// The protocol of a plain http:// or https:// target: triton-grpc, triton-http or openai.
    #[arg(long, default_value = "triton-grpc")]
    pub protocol: shared::protocol::Protocol,
    /// OpenAI protocol: ask /v1/chat/completions, the prompt as one user message (default:
    /// /v1/completions).
    #[arg(long)]
    pub chat: bool,
    /// The model to measure.
    #[arg(long, short)]
    pub model: String,
    /// A model version (default: the server's choice).
    #[arg(long)]
    pub model_version: Option<String>,
    /// Start from one of the guide's benchmarks; other flags override it.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Prompt lengths: a list (16,256,2048), a range (100..1000:100) or a doubling range
    /// (16..4096:x2). In approximate tokens (words of synthetic text), or with --tokenizer in
    /// exact tokens [default: 16,256,2048; with --prompts, one point at the median length of
    /// the file's prompts, which takes them all].
    #[arg(long, value_parser = parse_lengths)]
    pub prompt_lengths: Option<PromptLengths>,
    /// Output tokens asked per request [default: 64, or the preset's].
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Output tokens of each request, past end-of-sequence (sets --ignore-eos): MEAN, or
    /// MEAN,STDDEV for lengths drawn per request from a normal distribution cut at three
    /// standard deviations, seeded by --seed.
    #[arg(long, value_name = "MEAN[,STDDEV]", value_parser = parse_output_tokens, conflicts_with = "max_tokens")]
    pub output_tokens: Option<OutputTokens>,
    /// Draw each request's prompt length around its point's from a normal distribution of this
    /// standard deviation (cut at three), seeded by --seed; in the prompt lengths' unit.
    #[arg(long, value_name = "STDDEV")]
    pub prompt_stddev: Option<f64>,
    /// Start every prompt with the same text of this many tokens (words without --tokenizer),
    /// which a server's prefix cache can keep; prompt lengths include it. Compare a run with it
    /// and one without to see what the cache saves.
    #[arg(long, value_name = "TOKENS")]
    pub shared_prefix: Option<u32>,
    /// Ask the model to keep generating past its end-of-sequence token.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Measured requests per point [default: 10; with --duration, enough for the duration:
    /// 1.25 times the schedule's count and 16 more at the fastest --request-rate, 10,000 in
    /// closed loop and for --find-capacity's probes].
    #[arg(long)]
    pub requests: Option<u32>,
    /// Warm-up requests per point, left out of every statistic [default: 0; with
    /// --warmup-duration, as --requests is with --duration, 1,000 in closed loop].
    #[arg(long)]
    pub warmup: Option<u32>,
    /// Send each point's measured requests for this many seconds (from the first one's
    /// send); --requests, when given, still caps their number.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Warm each point up for this many seconds; --warmup, when given, still caps the count.
    #[arg(long, value_name = "SECONDS")]
    pub warmup_duration: Option<f64>,
    /// Requests in flight at once, closed loop: each request is sent as one finishes [default:
    /// 1]. A list or range (1,2,4..64:x2) measures every prompt length at each in turn.
    #[arg(long, value_parser = parse_concurrency_list, conflicts_with = "request_rate")]
    pub concurrency: Option<Concurrencies>,
    /// Open loop: send requests at these rates (requests per second) whatever the server's
    /// pace, each prompt length at each rate in turn: a list or range (0.5,1,2..16:x2).
    #[arg(long, value_parser = parse_rate_list)]
    pub request_rate: Option<RequestRates>,
    /// Open loop: how the gaps between sends are drawn.
    #[arg(long, default_value = "constant", requires = "open_loop")]
    pub arrival: Arrival,
    /// Open loop with --arrival gamma: the shape; 1 is Poisson, below 1 burstier, above more regular.
    #[arg(long, default_value_t = 1.0, requires = "open_loop")]
    pub burstiness: f64,
    /// The seed of random arrivals (open loop) and drawn lengths: the same seed sends at the
    /// same instants, and prompts and outputs of the same lengths.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Open loop: the most requests in flight at once [default: 1024]. A request due while as
    /// many are in flight waits, and its schedule lag shows it.
    #[arg(long, requires = "open_loop")]
    pub max_concurrency: Option<u32>,
    /// Service-level objectives, any of ttft_ms, t2t_ms (a request's mean token-to-token
    /// latency) and e2e_ms, such as ttft_ms=500,t2t_ms=50: each point then reports its goodput,
    /// the requests that met them all.
    #[arg(long, value_parser = parse_slo)]
    pub slo: Option<Slo>,
    /// Search for the highest request rate at which --goodput of the requests meet --slo (open
    /// loop, one prompt length): doubling from --start-rate while probes pass, then bisecting
    /// until the two probes that bracket it are within 5% of each other, or --probes ran.
    #[arg(long, requires = "slo", conflicts_with_all = ["concurrency", "request_rate"])]
    pub find_capacity: bool,
    /// With --find-capacity: the share of requests that must meet every objective.
    #[arg(long, default_value_t = 0.99, requires = "find_capacity")]
    pub goodput: f64,
    /// With --find-capacity: the first probe's rate, requests per second.
    #[arg(long, default_value_t = 1.0, requires = "find_capacity")]
    pub start_rate: f64,
    /// With --find-capacity: the most probes to send (each a point of the run).
    #[arg(long, default_value_t = 12, requires = "find_capacity")]
    pub probes: u32,
    /// Where to read the server's Prometheus metrics while the run goes [default: the target's
    /// host on Triton's metrics port, http://HOST:8002/metrics]. A scrape that fails is a gap
    /// with its reason and never stops the run.
    #[arg(long, value_name = "URL", conflicts_with = "no_metrics")]
    pub metrics_url: Option<String>,
    /// The time between scrapes of the server's metrics, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = shared::telemetry::DEFAULT_INTERVAL_MS)]
    pub metrics_interval_ms: u32,
    /// Read no metrics from the server.
    #[arg(long)]
    pub no_metrics: bool,
    /// Run the engine at normal priority. By default its threads ask for real-time priority
    /// (granted to root or with CAP_SYS_NICE), so a busy machine does not make sends late; the
    /// engine's line says which it got.
    #[arg(long)]
    pub normal_priority: bool,
    /// How requests are laid out for the model.
    #[arg(long, default_value = "auto")]
    pub input_style: InputStyle,
    /// A Hugging Face tokenizer: its tokenizer.json, or a folder that holds one (a model's
    /// folder, its entry in the Hugging Face cache, a Triton model's tokenizer folder). Each
    /// prompt is then natural text of exactly the prompt length in tokens as it counts them,
    /// its special tokens included (as a completions request's prompt is counted), and
    /// different from every other prompt of the run.
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<std::path::PathBuf>,
    /// Send the prompts of this file as they are: JSONL with a "text" (or "prompt") per line,
    /// JSONL with chat "messages" per line (what is asked up to the last user message), or a
    /// ShareGPT JSON array (each first human turn). Each point sends, in file order and again
    /// from the first once all were sent, the prompts whose length (by --tokenizer, else in
    /// words) is nearest its own. A file with malformed lines is refused, naming them.
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<std::path::PathBuf>,
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
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// How `https://` targets are trusted.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Also trust the CA certificates in this PEM file for https:// targets (for a server whose
    /// certificate comes from a private CA); repeatable. Public CAs are trusted without it.
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Vec<PathBuf>,
}

impl TlsArgs {
    /// Trusts the CAs given, for every target this process measures.
    pub fn apply(&self) -> Result<(), crate::tls::TlsError> {
        for path in &self.ca_cert {
            let count = crate::tls::trust_ca_file(path)?;
            tracing::info!(file = %path.display(), certificates = count, "trusting the CA certificates of --ca-cert");
        }
        Ok(())
    }
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
    /// Also write the server's metrics here: one CSV row per series per scrape (time since the
    /// run's start, series, value), and one per failed scrape with its reason.
    #[arg(long, value_name = "FILE")]
    pub metrics_csv: Option<PathBuf>,
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
        spec.protocol = self.protocol;
        spec.chat = self.chat;
        spec.model = self.model.clone();
        spec.model_version = self.model_version.clone().filter(|v| !v.is_empty());
        spec.input_style = self.input_style;
        let absolute =
            |path: &PathBuf| std::path::absolute(path).unwrap_or_else(|_| path.clone()).display().to_string();
        spec.tokenizer = self.tokenizer.as_ref().map(absolute);
        spec.prompts_file = self.prompts.as_ref().map(absolute);
        spec.prompt_lengths = match &self.prompt_lengths {
            Some(lengths) => lengths.0.clone(),
            // Settled once the file is read: see `sweep::file_prompt_lengths`.
            None if self.prompts.is_some() => Vec::new(),
            None => vec![16, 256, 2048],
        };
        spec.max_tokens = self.max_tokens.unwrap_or(spec.max_tokens);
        spec.ignore_eos |= self.ignore_eos;
        if let Some(OutputTokens { mean, stddev }) = self.output_tokens {
            (spec.max_tokens, spec.output_stddev, spec.ignore_eos) = (mean, stddev, true);
        }
        spec.prompt_stddev = self.prompt_stddev;
        spec.shared_prefix = self.shared_prefix;
        spec.seed = self.seed;
        spec.metrics_url = self.metrics_url.clone();
        spec.metrics_interval_ms =
            Some(self.metrics_interval_ms).filter(|&ms| ms != shared::telemetry::DEFAULT_INTERVAL_MS);
        spec.no_metrics = self.no_metrics;
        spec.normal_priority |= self.normal_priority;
        spec.duration_s = self.duration;
        spec.warmup_s = self.warmup_duration;
        match self.concurrency.as_ref().map(|c| c.0.as_slice()) {
            Some([one]) => spec.concurrency = *one,
            Some(many) => spec.concurrencies = many.to_vec(),
            None => {}
        }
        if let Some(rates) = &self.request_rate {
            spec.request_rates = rates.0.clone();
        }
        if self.find_capacity {
            let search = CapacitySearch { goodput: self.goodput, start_rate: self.start_rate, probes: self.probes };
            spec.capacity = Some(search);
        }
        if spec.open_loop() {
            spec.arrival = self.arrival;
            spec.burstiness = self.burstiness;
            spec.max_concurrency = self.max_concurrency;
        }
        spec.slo = self.slo;
        // After the load: a time limit's default count follows from the rates.
        spec.requests = self.requests.unwrap_or_else(|| self.duration.map_or(10, |s| count_for(&spec, s, 10_000)));
        spec.warmup = self.warmup.unwrap_or_else(|| self.warmup_duration.map_or(0, |s| count_for(&spec, s, 1_000)));
        spec.streaming = !self.non_streaming;
        spec.request_timeout_ms = self.timeout_ms;
        spec
    }
}

/// How many requests a point given `seconds` needs at most: in open loop 1.25 times what its
/// fastest rate schedules in that time and 16 more (random arrivals come in bunches); in
/// closed loop, whose pace is the server's, `closed`.
fn count_for(spec: &SweepSpec, seconds: f64, closed: u32) -> u32 {
    let fastest = spec.request_rates.iter().copied().fold(0.0_f64, f64::max);
    if spec.capacity.is_some() || fastest <= 0.0 || !seconds.is_finite() {
        return closed;
    }
    let count = (fastest * seconds * 1.25).ceil() + 16.0;
    count.min(f64::from(u32::MAX)) as u32
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
    /// A folder of this machine whose Hugging Face tokenizers (tokenizer.json files, or
    /// folders holding one) sweeps may name by path (repeatable). Paths are resolved, links
    /// included, and a tokenizer outside every such folder is refused; tokenizers uploaded in
    /// the dashboard are kept in the data folder and need no folder of their own.
    #[arg(long = "tokenizer-dir", value_name = "DIR")]
    pub tokenizer_dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Who may use the dashboard. On a loopback address everyone is an operator unless tokens
/// are given; on any other address the dashboard starts only with an operator token and a
/// viewer policy, or with --insecure-open.
#[derive(Debug, Clone, Default, Args)]
pub struct AccessArgs {
    /// The token operators sign in with (or send as `Authorization: Bearer TOKEN`): they start,
    /// cancel, change, delete and import runs. At least 16 characters.
    #[arg(long, env = "TOKENSCOPE_OPERATOR_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub operator_token: Option<String>,
    /// Read the operator token from this file (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "operator_token")]
    pub operator_token_file: Option<PathBuf>,
    /// Make a random operator token and print it once at start.
    #[arg(long, conflicts_with_all = ["operator_token", "operator_token_file"])]
    pub generate_operator_token: bool,
    /// Who may view runs without the operator token: `open` lets anyone who can reach the
    /// dashboard view (the default on loopback); otherwise give --viewer-token.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub viewers: Option<ViewerPolicy>,
    /// The token viewers sign in with: they open runs, comparisons, exports and reports.
    #[arg(
        long,
        env = "TOKENSCOPE_VIEWER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        conflicts_with = "viewers"
    )]
    pub viewer_token: Option<String>,
    /// Read the viewer token from this file (its first line).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["viewers", "viewer_token"])]
    pub viewer_token_file: Option<PathBuf>,
    /// Let anyone who can reach the dashboard operate it, on any address. Only for a network
    /// where everyone is trusted.
    #[arg(long, conflicts_with_all = ["operator_token", "operator_token_file", "generate_operator_token", "viewers", "viewer_token", "viewer_token_file"])]
    pub insecure_open: bool,
    /// The address users open the dashboard at, such as https://tokenscope.lab.example behind
    /// a reverse proxy: its name is answered to and its pages may change things.
    #[arg(long, env = "TOKENSCOPE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Another name the dashboard answers to (repeatable). IP addresses and localhost are
    /// always answered; any other name only when given here or in --public-url.
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// A target the form and the API may measure, HOST:PORT (repeatable; `*` in the host
    /// matches any part of it, a port of `*` any port; `*:*` allows every target)
    /// [default: the --target given, or the built-in simulator].
    #[arg(long = "allow-target", value_name = "HOST:PORT")]
    pub allowed_targets: Vec<String>,
}

/// Who may view a dashboard that has an operator token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ViewerPolicy {
    /// Anyone who can reach the dashboard may view runs.
    Open,
}

/// The access rules a dashboard starts with, and a token made for it that must be shown.
#[derive(Debug)]
pub struct StartAccess {
    pub access: Access,
    pub generated: Option<Secret>,
}

impl AccessArgs {
    /// The access rules for a dashboard on `listen`, or why it must not start so. Without
    /// `--allow-target`, it may measure `default_targets`: the target its form starts at, and
    /// the built-in simulator's other protocols.
    pub fn access(&self, listen: &SocketAddr, default_targets: &[String]) -> Result<StartAccess, String> {
        let read = |path: &PathBuf, what: &str| {
            std::fs::read_to_string(path)
                .map_err(|err| format!("the {what} file {} cannot be read: {err}", path.display()))
                .map(|text| text.lines().next().unwrap_or_default().to_string())
        };
        let token = |text: String, what: &str| Secret::new(&text).map_err(|err| format!("the {what}: {err}"));
        let mut generated = None;
        let operator = match (&self.operator_token, &self.operator_token_file) {
            (Some(text), _) => Some(token(text.clone(), "operator token")?),
            (None, Some(path)) => Some(token(read(path, "operator token")?, "operator token")?),
            (None, None) if self.generate_operator_token => {
                let secret = Secret::generate()?;
                generated = Some(secret.clone());
                Some(secret)
            }
            (None, None) => None,
        };
        let viewer = match (&self.viewer_token, &self.viewer_token_file) {
            (Some(text), _) => Some(token(text.clone(), "viewer token")?),
            (None, Some(path)) => Some(token(read(path, "viewer token")?, "viewer token")?),
            (None, None) => None,
        };
        let mut hosts: Vec<String> = Vec::new();
        for name in &self.allowed_hosts {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() || name.contains(['/', ':', '@', ' ']) {
                return Err(format!("--allowed-host {name:?}: give a host name without scheme or port"));
            }
            hosts.push(name);
        }
        let public_url = match &self.public_url {
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_string();
                let uri: axum::http::Uri =
                    url.parse().map_err(|_| format!("--public-url {url:?} is not an address such as https://host"))?;
                let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
                    return Err(format!("--public-url {url:?} needs a scheme and a host, such as https://host"));
                };
                if !matches!(scheme, "http" | "https") || uri.path() != "/" {
                    return Err(format!(
                        "--public-url {url:?}: give http:// or https:// and a host, without a path (the dashboard \
                            is served at the root)"
                    ));
                }
                hosts.push(host.to_ascii_lowercase());
                Some(url)
            }
            None => None,
        };
        // Behind a proxy (a public URL), a loopback address is reached by everyone the proxy serves.
        let loopback = listen.ip().is_loopback() && self.public_url.is_none();
        let roles = match (operator, viewer) {
            (None, Some(_)) => {
                return Err("a viewer token needs an operator token too: give --operator-token (or \
                    --operator-token-file, or --generate-operator-token)"
                    .into());
            }
            (None, None) if self.viewers.is_some() => {
                return Err("--viewers needs an operator token: give --operator-token (or --operator-token-file, \
                    or --generate-operator-token)"
                    .into());
            }
            (None, None) if loopback || self.insecure_open => Roles::Open,
            (None, None) => {
                return Err(format!(
                    "{} can be reached from other machines, and this dashboard has no access rules: give \
                        --operator-token TOKEN (or --operator-token-file FILE, or --generate-operator-token) and \
                        --viewers open or --viewer-token TOKEN; or --insecure-open to let anyone who reaches it \
                        operate it; or listen on 127.0.0.1",
                    self.public_url.as_deref().map_or_else(|| listen.to_string(), str::to_string)
                ));
            }
            (Some(operator), Some(viewer)) => {
                if operator == viewer {
                    return Err("the viewer token must differ from the operator token".into());
                }
                Roles::Tokens { operator, viewers: Viewers::Token(viewer) }
            }
            (Some(operator), None) if self.viewers.is_some() || loopback => {
                Roles::Tokens { operator, viewers: Viewers::Open }
            }
            (Some(_), None) => {
                return Err(format!(
                    "{listen} can be reached from other machines: say who may view runs, with --viewers open \
                        (anyone who reaches it) or --viewer-token TOKEN"
                ));
            }
        };
        let mut patterns = self.allowed_targets.clone();
        if patterns.is_empty() {
            patterns.extend(default_targets.iter().cloned());
        }
        let targets = if patterns.iter().any(|p| p.trim() == "*:*" || p.trim() == "*") {
            Vec::new()
        } else {
            patterns
                .iter()
                .map(|p| TargetPattern::parse(p).map_err(|e| format!("--allow-target {e}")))
                .collect::<Result<_, _>>()?
        };
        Ok(StartAccess { access: Access { roles, hosts, public_url, targets }, generated })
    }
}

impl ServeArgs {
    /// The `--tokenizer-dir` folders, each checked to be a folder that exists.
    pub fn tokenizer_dirs(&self) -> Result<Vec<PathBuf>, String> {
        self.tokenizer_dirs
            .iter()
            .map(|dir| match dir.canonicalize() {
                Ok(resolved) if resolved.is_dir() => Ok(resolved),
                Ok(_) => Err(format!(
                    "--tokenizer-dir {}: not a folder; give the folder that holds tokenizers",
                    dir.display()
                )),
                Err(err) => Err(format!("--tokenizer-dir {}: {err}", dir.display())),
            })
            .collect()
    }

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
    /// Serve TLS with this PEM certificate chain (with --tls-key), as a Triton started with
    /// --grpc-use-ssl does.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve Triton's Prometheus metrics at http://ADDR/metrics, as Triton does on port 8002.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve Triton's HTTP/REST protocol at http://ADDR/v2/..., with the generate extension's
    /// generate_stream, as Triton does on port 8000; plain HTTP even with --tls-cert.
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// Serve OpenAI-compatible completions and chat completions at http://ADDR/v1/..., as
    /// vLLM's server answers them, from the same models and schedule; plain HTTP.
    #[arg(long, value_name = "ADDR")]
    pub openai_listen: Option<SocketAddr>,
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
    fn drawn_lengths_and_a_shared_prefix_are_asked_for() {
        let sweep = |extra: &[&str]| {
            let mut all = vec!["sweep", "-m", "llm"];
            all.extend_from_slice(extra);
            let Command::Sweep(args) = parse(&all).command else { panic!("a sweep") };
            args.spec()
        };
        let spec =
            sweep(&["--output-tokens", "128,16", "--prompt-stddev", "20", "--shared-prefix", "8", "--seed", "3"]);
        assert_eq!((spec.max_tokens, spec.output_stddev, spec.ignore_eos), (128, Some(16.0), true));
        assert_eq!((spec.prompt_stddev, spec.shared_prefix, spec.seed), (Some(20.0), Some(8), 3));
        assert!(!spec.open_loop(), "a seed alone does not make the load open");
        let spec = sweep(&["--output-tokens", "32"]);
        assert_eq!((spec.max_tokens, spec.output_stddev, spec.ignore_eos), (32, None, true));
        let bad = |args: &[&str]| {
            let all: Vec<&str> = ["tokenscope", "sweep", "-m", "llm"].iter().chain(args).copied().collect();
            Cli::try_parse_from(all).unwrap_err().to_string()
        };
        assert!(bad(&["--output-tokens", "x"]).contains("\"x\" is not a whole number"));
        assert!(bad(&["--output-tokens", "8,wide"]).contains("is not a standard deviation"));
        assert!(bad(&["--output-tokens", "8", "--max-tokens", "9"]).contains("cannot be used with"));
        assert!(!sweep(&[]).normal_priority, "real-time priority is asked for by default");
        assert!(sweep(&["--normal-priority"]).normal_priority);
    }

    #[test]
    fn the_dashboard_keeps_runs_where_it_is_told() {
        let Command::Serve(args) = parse(&["dashboard", "--data-dir", "/tmp/runs"]).command else {
            panic!("the dashboard")
        };
        assert_eq!(args.data_dir(), PathBuf::from("/tmp/runs"));
        let Command::Serve(args) = parse(&["serve"]).command else { panic!("the dashboard") };
        assert!(args.data_dir().ends_with("tokenscope") || args.data_dir().ends_with("tokenscope-data"));
        assert_eq!(args.tokenizer_dirs(), Ok(Vec::new()));
    }

    #[test]
    fn tokenizer_folders_must_be_folders() {
        let scratch = tempfile::tempdir().unwrap();
        let file = scratch.path().join("tokenizer.json");
        std::fs::write(&file, "{}").unwrap();
        let dirs = |extra: &[&str]| {
            let mut all = vec!["serve"];
            all.extend_from_slice(extra);
            let Command::Serve(args) = parse(&all).command else { panic!("the dashboard") };
            args.tokenizer_dirs()
        };
        let folder = scratch.path().to_str().unwrap();
        let found = dirs(&["--tokenizer-dir", folder, "--tokenizer-dir", folder]).unwrap();
        assert_eq!(found, vec![scratch.path().canonicalize().unwrap(); 2]);
        assert!(dirs(&["--tokenizer-dir", file.to_str().unwrap()]).unwrap_err().contains("not a folder"));
        assert!(dirs(&["--tokenizer-dir", "/no/such/folder"]).unwrap_err().contains("/no/such/folder"));
    }

    fn access(args: &[&str], listen: &str) -> Result<StartAccess, String> {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        let Command::Serve(serve) = parse(&all).command else { panic!("the dashboard") };
        serve.access.access(&listen.parse().unwrap(), &["http://127.0.0.1:8001".into()])
    }

    #[test]
    fn a_reachable_dashboard_starts_only_with_access_rules() {
        let open = access(&[], "127.0.0.1:8080").unwrap().access;
        assert_eq!(open.roles, Roles::Open);
        assert!(open.may_measure("http://127.0.0.1:8001") && !open.may_measure("http://10.0.0.1:8001"));
        let refused = access(&[], "0.0.0.0:8080").unwrap_err();
        assert!(refused.contains("--operator-token") && refused.contains("--insecure-open"), "{refused}");
        let token = "a-long-operator-token";
        let refused = access(&["--operator-token", token], "0.0.0.0:8080").unwrap_err();
        assert!(refused.contains("--viewers open"), "{refused}");
        let lab = access(&["--operator-token", token, "--viewers", "open"], "0.0.0.0:8080").unwrap().access;
        assert!(matches!(lab.roles, Roles::Tokens { viewers: Viewers::Open, .. }));
        let both = access(&["--operator-token", token, "--viewer-token", "a-long-viewer-token"], "0.0.0.0:8080");
        assert!(matches!(both.unwrap().access.roles, Roles::Tokens { viewers: Viewers::Token(_), .. }));
        assert!(access(&["--insecure-open"], "0.0.0.0:8080").unwrap().access.roles == Roles::Open);
        assert!(access(&["--operator-token", "short"], "127.0.0.1:8080").unwrap_err().contains("16"));
        assert!(access(&["--viewer-token", "a-long-viewer-token"], "127.0.0.1:1").unwrap_err().contains("operator"));
        let generated = access(&["--generate-operator-token", "--viewers", "open"], "[::]:8080").unwrap();
        assert_eq!(generated.generated.unwrap().reveal().len(), 64);
    }

    #[test]
    fn names_and_targets_are_read_from_flags() {
        let started = access(
            &[
                "--public-url",
                "https://TS.lab.example/",
                "--allowed-host",
                "ts",
                "--allow-target",
                "*.lab:8001",
                "--operator-token",
                "a-long-operator-token",
                "--viewers",
                "open",
            ],
            "127.0.0.1:8080",
        )
        .unwrap()
        .access;
        assert_eq!(started.hosts, vec!["ts".to_string(), "ts.lab.example".to_string()]);
        assert_eq!(started.public_url.as_deref(), Some("https://TS.lab.example"));
        assert!(started.may_measure("http://a.lab:8001") && !started.may_measure("http://127.0.0.1:8001"));
        assert!(access(&["--allow-target", "*:*"], "127.0.0.1:1").unwrap().access.may_measure("http://x:1"));
        assert!(access(&["--public-url", "https://x/sub"], "127.0.0.1:1").unwrap_err().contains("path"));
        assert!(access(&["--allowed-host", "http://x"], "127.0.0.1:1").is_err());
        let proxied = access(&["--public-url", "https://ts.lab"], "127.0.0.1:8080").unwrap_err();
        assert!(proxied.contains("https://ts.lab can be reached"), "{proxied}");
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
