//! What a sweep is asked to do: the target, the model and the prompt lengths to visit.

use serde::{Deserialize, Serialize};

/// How requests are laid out for a model; each LLM serving stack names its tensors differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputStyle {
    /// Read the model's metadata and configuration and pick one of the others.
    #[default]
    Auto,
    /// The vLLM backend: `text_input`, `stream`, `sampling_parameters` (JSON); delta text out.
    Vllm,
    /// The 2023 vLLM tutorial model: `PROMPT`, `STREAM`, `SAMPLING_PARAMETERS`; `TEXT` out is
    /// cumulative with the prompt prepended.
    Tutorial,
    /// The TensorRT-LLM ensemble: `text_input`, `max_tokens` (INT32), `stream`; delta text out.
    Trtllm,
}

impl InputStyle {
    /// Every style a user can name, in the order they are listed in help and forms.
    pub const ALL: [InputStyle; 4] = [Self::Auto, Self::Vllm, Self::Tutorial, Self::Trtllm];

    /// The lowercase name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Vllm => "vllm",
            Self::Tutorial => "tutorial",
            Self::Trtllm => "trtllm",
        }
    }
}

impl std::fmt::Display for InputStyle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for InputStyle {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|style| style.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown input style {s:?}; expected one of auto, vllm, tutorial, trtllm"))
    }
}

use crate::capacity::CapacitySearch;
use crate::goodput::Slo;
use crate::lengths::{self, Drawn};
pub use crate::limits::MAX_REQUESTS;
use crate::limits::{self, MAX_PROMPT_LENGTHS};
use crate::protocol::{self, Endpoint, Protocol};
use crate::schedule::{self, Arrival};
use crate::telemetry;

/// A sweep: for each prompt length and each load level, `warmup` then `requests` requests.
/// A load level is a concurrency (closed loop) or a request rate (open loop); see
/// [`SweepSpec::load_levels`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SweepSpec {
    /// The server's address, such as `http://127.0.0.1:8001` (Triton gRPC),
    /// `triton-http://127.0.0.1:8000` or `openai://127.0.0.1:8000`: a scheme that names a
    /// protocol sets it; plain `http://` and `https://` leave it to `protocol`
    /// ([`crate::protocol::read_target`]).
    pub target: String,
    /// The protocol spoken to the server when the target's scheme does not name one.
    #[serde(skip_serializing_if = "Protocol::is_default")]
    pub protocol: Protocol,
    /// OpenAI protocol: ask `/v1/chat/completions` with the prompt as one user message
    /// instead of `/v1/completions`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub chat: bool,
    pub model: String,
    /// A model version; empty or absent means the server's choice.
    pub model_version: Option<String>,
    pub input_style: InputStyle,
    /// A Hugging Face tokenizer on the proxy's machine (its `tokenizer.json`, or a folder that
    /// holds one): prompt lengths are then exact tokens as it counts them, its special tokens
    /// included, and prompts are natural text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// A file of real prompts on the proxy's machine (JSONL of text or chat messages, or
    /// ShareGPT), sent as they are instead of made ones: each point sends the prompts whose
    /// length is nearest its own; one prompt length takes them all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts_file: Option<String>,
    /// Prompt lengths to visit: tokens by the tokenizer when there is one, else approximate
    /// tokens (words of synthetic text).
    pub prompt_lengths: Vec<u32>,
    /// Each request's prompt length is drawn around its point's from a normal distribution
    /// of this standard deviation (in the same unit), seeded by `seed`; see [`crate::lengths`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_stddev: Option<f64>,
    /// Every prompt starts with the same text of this many tokens (words without a
    /// tokenizer), which a server's prefix cache can keep; prompt lengths include it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<u32>,
    /// The output tokens asked of each request; with `output_stddev`, their mean.
    pub max_tokens: u32,
    /// Each request's `max_tokens` is drawn around `max_tokens` from a normal distribution
    /// of this standard deviation, seeded by `seed`; with `ignore_eos`, it is its output length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_stddev: Option<f64>,
    /// Ask the model to keep generating past its end-of-sequence token.
    pub ignore_eos: bool,
    /// Measured requests per prompt length.
    pub requests: u32,
    /// Requests per prompt length sent first and left out of every statistic.
    pub warmup: u32,
    /// A point's measured requests are sent for at most this many seconds from the first
    /// one's send (intended send, in open loop); `requests` still caps their number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// A point's warm-up lasts at most this many seconds; `warmup` still caps its number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_s: Option<f64>,
    /// Requests in flight at once (closed loop: a new request is sent as soon as one
    /// finishes), when `concurrencies` and `request_rates` are empty.
    pub concurrency: u32,
    /// Closed-loop load levels: each prompt length is measured at each of these
    /// concurrencies in turn. Empty: `concurrency` alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub concurrencies: Vec<u32>,
    /// Open-loop load levels, in requests per second: each prompt length is measured at each
    /// rate in turn, requests sent when a schedule says, whatever the server's pace. When
    /// given, `concurrency` and `concurrencies` are not used.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_rates: Vec<f64>,
    /// Open loop: the most requests in flight at once (at most [`limits::MAX_CONCURRENCY`],
    /// which also applies without it). A request due while as many are in flight waits for
    /// one to finish, and its schedule lag shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Open loop: how the gaps between sends are drawn.
    pub arrival: Arrival,
    /// Open loop with gamma arrivals: the shape (1 is Poisson, below 1 burstier, above more
    /// regular).
    pub burstiness: f64,
    /// The seed of random arrivals (open loop) and drawn lengths: a run with the same seed
    /// sends at the same intended instants, prompts and outputs of the same lengths.
    pub seed: u64,
    /// Service-level objectives: with them, each point reports its goodput.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
    /// Search for the highest request rate whose goodput meets a target instead of visiting
    /// given load levels: each probe is an open-loop point, and its rate is added to
    /// `request_rates` as the probe starts. Needs `slo` and one prompt length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacitySearch>,
    /// Stream tokens (`ModelStreamInfer`, for decoupled models) and time each one; or send
    /// each request with `ModelInfer` and time its single response, which then gives TTFT as
    /// the whole request's latency and no token-to-token latency.
    pub streaming: bool,
    /// A request still unfinished this long after it was sent is abandoned and counted as an error.
    pub request_timeout_ms: u64,
    /// Where the server's Prometheus metrics are read while the run goes; absent: the
    /// target's host on Triton's metrics port ([`telemetry::default_url`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
    /// The time between scrapes of the metrics, milliseconds; absent: 250.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_interval_ms: Option<u32>,
    /// Read no metrics from the server.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_metrics: bool,
    /// Run the engine's threads at normal priority; by default they ask for real-time
    /// priority, so a busy machine does not delay sends (see [`crate::report::Scheduling`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub normal_priority: bool,
}

impl Default for SweepSpec {
    fn default() -> Self {
        Self {
            target: "http://127.0.0.1:8001".into(),
            protocol: Protocol::TritonGrpc,
            chat: false,
            model: String::new(),
            model_version: None,
            input_style: InputStyle::Auto,
            tokenizer: None,
            prompts_file: None,
            prompt_lengths: vec![16, 256, 2048],
            prompt_stddev: None,
            shared_prefix: None,
            max_tokens: 64,
            output_stddev: None,
            ignore_eos: false,
            requests: 10,
            warmup: 0,
            duration_s: None,
            warmup_s: None,
            concurrency: 1,
            concurrencies: Vec::new(),
            request_rates: Vec::new(),
            max_concurrency: None,
            arrival: Arrival::Constant,
            burstiness: 1.0,
            seed: 0,
            slo: None,
            capacity: None,
            streaming: true,
            request_timeout_ms: 60_000,
            metrics_url: None,
            metrics_interval_ms: None,
            no_metrics: false,
            normal_priority: false,
        }
    }
}

impl SweepSpec {
    /// The guide's prefill benchmark: one token out, one request at a time.
    pub fn prefill_preset(self) -> Self {
        Self { max_tokens: 1, ignore_eos: false, concurrency: 1, ..self }
    }

    /// The guide's generation benchmark: 256 tokens out past end-of-sequence, one at a time.
    pub fn generation_preset(self) -> Self {
        Self { max_tokens: 256, ignore_eos: true, concurrency: 1, ..self }
    }

    /// Every problem with the spec, each as a sentence a user can act on; empty when valid.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let target = self.target.trim();
        if target.is_empty() {
            out.push("the target is empty; give the server's gRPC address, such as http://127.0.0.1:8001".into());
        } else {
            match self.endpoint() {
                Ok(endpoint) if self.chat && endpoint.protocol != Protocol::OpenAi => out.push(format!(
                    "chat completions are asked of an OpenAI-compatible server, and this target speaks {}; write \
                     the target as openai://HOST:PORT, or leave chat off",
                    endpoint.protocol
                )),
                Ok(endpoint) if endpoint.protocol != Protocol::TritonGrpc && !self.streaming => out.push(format!(
                    "the {} protocol is measured streaming only; turn streaming on, or give the server's Triton \
                     gRPC address, such as http://127.0.0.1:8001, to time whole answers",
                    endpoint.protocol
                )),
                Ok(_) => {}
                Err(problem) => out.push(problem),
            }
        }
        if self.model.trim().is_empty() {
            out.push("the model name is empty".into());
        }
        if self.prompt_lengths.is_empty() {
            out.push("give at least one prompt length".into());
        }
        if self.prompt_lengths.contains(&0) {
            out.push("prompt lengths must be at least 1".into());
        }
        if self.max_tokens == 0 {
            out.push("max_tokens must be at least 1".into());
        }
        for (stddev, what) in [(self.prompt_stddev, "prompt_stddev"), (self.output_stddev, "output_stddev")] {
            if let Some(s) = stddev.filter(|s| !s.is_finite() || *s < 0.0) {
                out.push(format!("{what} is a standard deviation: a number of 0 or more, not {s}"));
            }
        }
        if let Some(prefix) = self.shared_prefix {
            if prefix == 0 {
                out.push("the shared prefix must be at least 1 token long".into());
            } else if let Some(short) = self.prompt_lengths.iter().find(|&&l| l <= prefix) {
                out.push(format!(
                    "prompt lengths include the shared prefix: each must be above its {prefix} tokens, and {short} is not"
                ));
            }
        }
        if self.prompts_file.is_some() {
            if self.prompt_stddev.is_some() {
                out.push("a prompts file's prompts keep their own lengths: give no prompt_stddev with it".into());
            }
            if self.shared_prefix.is_some() {
                out.push("a prompts file's prompts are sent as they are: give no shared prefix with it".into());
            }
        }
        if self.requests == 0 {
            out.push("requests per prompt length must be at least 1".into());
        }
        if self.concurrency == 0 || self.concurrencies.contains(&0) {
            out.push("concurrency must be at least 1".into());
        }
        if !self.request_rates.is_empty() && !self.concurrencies.is_empty() {
            out.push("give request rates (open loop) or concurrencies (closed loop), not both".into());
        }
        if let Some(&rate) = self.request_rates.iter().find(|r| !r.is_finite() || **r <= 0.0) {
            out.extend(schedule::problems(rate, self.arrival, self.burstiness));
        } else if let Some(&rate) = self.request_rates.first() {
            out.extend(schedule::problems(rate, self.arrival, self.burstiness));
        }
        if let Some(slo) = &self.slo {
            out.extend(slo.problems());
        }
        if let Some(search) = &self.capacity {
            out.extend(search.problems());
            // The probes' rates are the search's; their arrivals are checked here.
            out.extend(schedule::problems(1.0, self.arrival, self.burstiness));
            if self.slo.is_none() {
                out.push(
                    "a capacity search needs objectives to meet: give at least one of ttft_ms, t2t_ms, e2e_ms".into(),
                );
            }
            if self.prompt_lengths.len() > 1 {
                out.push("a capacity search measures one prompt length; give one, or search once per length".into());
            }
            if !self.concurrencies.is_empty() || !self.request_rates.is_empty() {
                out.push(
                    "a capacity search picks its own request rates; give no request rates or concurrencies".into(),
                );
            }
        }
        if self.max_concurrency == Some(0) {
            out.push("the most requests in flight (max_concurrency) must be at least 1".into());
        }
        for (seconds, what) in [(self.duration_s, "a point's duration"), (self.warmup_s, "a point's warm-up time")] {
            let valid = |s: &f64| s.is_finite() && *s >= 0.001 && *s <= limits::MAX_RUN_DURATION_S as f64;
            if let Some(s) = seconds.filter(|s| !valid(s)) {
                out.push(format!("{what} must be from 0.001 to {} seconds, not {s}", limits::MAX_RUN_DURATION_S));
            }
        }
        if self.request_timeout_ms == 0 {
            out.push("the request timeout must be above 0 ms".into());
        }
        if !self.no_metrics {
            if let Some(problem) = self.metrics_url.as_deref().and_then(telemetry::url_problem) {
                out.push(problem);
            }
            if let Some(ms) = self.metrics_interval_ms.filter(|ms| !telemetry::INTERVAL_MS_RANGE.contains(ms)) {
                let range = telemetry::INTERVAL_MS_RANGE;
                out.push(format!(
                    "the time between metrics scrapes must be from {} to {} ms, not {ms}",
                    range.start(),
                    range.end()
                ));
            }
        }
        // The caps (see `limits`), each refusal naming its cap.
        out.extend(limits::spec_problems(self));
        out
    }

    /// The protocol a run speaks, as a user reads it: the target's (or the spec's, where the
    /// target cannot be read), and for OpenAI which endpoint.
    pub fn protocol_words(&self) -> String {
        let protocol = self.speaks();
        match protocol {
            Protocol::OpenAi if self.chat => format!("{} chat completions", protocol.label()),
            Protocol::OpenAi => format!("{} completions", protocol.label()),
            protocol => protocol.label().to_string(),
        }
    }

    /// The protocol, address and TLS the target and `protocol` ask for; the error is a
    /// sentence for a user.
    pub fn endpoint(&self) -> Result<Endpoint, String> {
        protocol::read_target(&self.target, self.protocol)
    }

    /// The protocol the run speaks: the one its target's scheme names, else `protocol`.
    pub fn speaks(&self) -> Protocol {
        self.endpoint().map_or(self.protocol, |e| e.protocol)
    }

    /// Where the server's metrics are read during the run, if they are.
    pub fn metrics_address(&self) -> Option<String> {
        if self.no_metrics {
            return None;
        }
        self.metrics_url.clone().or_else(|| telemetry::default_url(&self.target))
    }

    /// The time between metrics scrapes.
    pub fn metrics_interval_ms(&self) -> u32 {
        self.metrics_interval_ms.unwrap_or(telemetry::DEFAULT_INTERVAL_MS)
    }

    /// What the tokenizer is called, if there is one: the folder of its `tokenizer.json`, or
    /// the folder given.
    pub fn tokenizer_name(&self) -> Option<&str> {
        let path = self.tokenizer.as_deref()?.trim_end_matches(['/', '\\']);
        let mut parts = path.rsplit(['/', '\\']).filter(|p| !p.is_empty());
        let last = parts.next().unwrap_or(path);
        Some(if last == "tokenizer.json" { parts.next().unwrap_or(last) } else { last })
    }

    /// The prompt-length axis of a chart of this sweep: what its lengths count.
    pub fn prompt_length_axis(&self) -> String {
        match self.tokenizer_name() {
            Some(name) => format!("prompt length (tokens, tokenizer {name})"),
            None => "prompt length (approx. tokens)".into(),
        }
    }

    /// The prompt length of request `seq` of point `point`, whose prompts are `length` long:
    /// that, or drawn around it with `prompt_stddev`, never below `least` (nor the shared
    /// prefix and one more).
    pub fn prompt_length_of(&self, point: u32, seq: u32, length: u32, least: u32) -> u32 {
        let least = least.max(self.shared_prefix.map_or(1, |p| p.saturating_add(1)));
        lengths::draw(length, self.prompt_stddev, least, self.seed, Drawn::Prompt, point, seq)
    }

    /// The `max_tokens` of request `seq` of point `point`: the spec's, or drawn around it with
    /// `output_stddev`, at least 1.
    pub fn max_tokens_of(&self, point: u32, seq: u32) -> u32 {
        lengths::draw(self.max_tokens, self.output_stddev, 1, self.seed, Drawn::Output, point, seq)
    }

    /// Whether requests' lengths are drawn rather than all their point's.
    pub fn draws_lengths(&self) -> bool {
        self.prompt_stddev.is_some_and(|s| s > 0.0) || self.output_stddev.is_some_and(|s| s > 0.0)
    }

    /// Requests sent per prompt length, warm-up included.
    pub fn requests_per_point(&self) -> u64 {
        u64::from(self.requests) + u64::from(self.warmup)
    }

    /// Requests sent by the whole sweep, warm-up included.
    pub fn total_requests(&self) -> u64 {
        self.requests_per_point().saturating_mul(self.point_count() as u64)
    }

    /// Requests the sweep sends, warm-up included: while it goes, the most it may send; once
    /// it `ended` with that many finished, what it sent. A capacity search that ended sent
    /// only the probes it ran; a sweep with time limits, the requests that finished.
    pub fn requests_sent_bound(&self, ended: Option<u64>) -> u64 {
        match ended {
            Some(finished) if self.duration_s.is_some() || self.warmup_s.is_some() => finished,
            Some(_) if self.capacity.is_some() => self.requests_per_point() * self.request_rates.len() as u64,
            _ => self.total_requests(),
        }
    }

    /// The load levels each prompt length is measured at, in order.
    pub fn load_levels(&self) -> Vec<LoadLevel> {
        if !self.request_rates.is_empty() {
            self.request_rates.iter().map(|&rate| LoadLevel::Rate(rate)).collect()
        } else if !self.concurrencies.is_empty() {
            self.concurrencies.iter().map(|&c| LoadLevel::Concurrency(c)).collect()
        } else {
            vec![LoadLevel::Concurrency(self.concurrency)]
        }
    }

    /// Which of the points of its prompt length point `index` is: its load level's place, or
    /// in a capacity search, its probe's.
    pub fn level_of(&self, index: usize) -> usize {
        if self.capacity.is_some() { index } else { index % self.level_count() }
    }

    fn level_count(&self) -> usize {
        if !self.request_rates.is_empty() { self.request_rates.len() } else { self.concurrencies.len().max(1) }
    }

    /// How many points the sweep visits: prompt lengths times load levels. For a capacity
    /// search, the most probes it may send.
    pub fn point_count(&self) -> usize {
        match &self.capacity {
            Some(search) => (search.probes as usize).max(self.request_rates.len()),
            None => self.prompt_lengths.len().saturating_mul(self.level_count()),
        }
    }

    /// Point `index`'s prompt length and load level: points go through every load level of
    /// the first prompt length, then of the next. None past the last point, and for a
    /// capacity search past the last probe started.
    pub fn point(&self, index: usize) -> Option<(u32, LoadLevel)> {
        if self.capacity.is_some() {
            return Some((*self.prompt_lengths.first()?, LoadLevel::Rate(*self.request_rates.get(index)?)));
        }
        let levels = self.level_count();
        let length = *self.prompt_lengths.get(index / levels)?;
        let level = index % levels;
        let load = match self.request_rates.get(level) {
            Some(&rate) => LoadLevel::Rate(rate),
            None => LoadLevel::Concurrency(self.concurrencies.get(level).copied().unwrap_or(self.concurrency)),
        };
        Some((length, load))
    }

    /// Point `index`'s prompt length, 0 past the last point.
    pub fn point_length(&self, index: usize) -> u32 {
        self.point(index).map_or(0, |(length, _)| length)
    }

    /// Whether requests are sent on a schedule (open loop) rather than as others finish.
    pub fn open_loop(&self) -> bool {
        !self.request_rates.is_empty() || self.capacity.is_some()
    }

    /// Notes a capacity search's probe as it starts: the rate of point `point`, when it is
    /// the next one. Anything else leaves the spec as it is, so replaying a finished run's
    /// events over its final spec adds nothing.
    pub fn add_probe(&mut self, point: u32, load: Option<LoadLevel>) {
        if let (Some(_), Some(LoadLevel::Rate(rate))) = (&self.capacity, load)
            && point as usize == self.request_rates.len()
        {
            self.request_rates.push(rate);
        }
    }

    /// The spec to run again: a capacity search's probes are its own, so they are left out.
    pub fn to_rerun(&self) -> SweepSpec {
        let mut spec = self.clone();
        if spec.capacity.is_some() {
            spec.request_rates.clear();
        }
        spec
    }

    /// The most requests the sweep may have in flight at once, at any of its load levels.
    pub fn most_in_flight(&self) -> u32 {
        if self.open_loop() {
            self.max_concurrency.unwrap_or(limits::MAX_CONCURRENCY).min(limits::MAX_CONCURRENCY)
        } else {
            self.concurrencies.iter().copied().max().unwrap_or(self.concurrency)
        }
    }
}

/// Every field a spec has in JSON, those left out when empty included: what a spec read
/// from a client may name.
pub const SPEC_FIELDS: &[&str] = &[
    "target",
    "protocol",
    "chat",
    "model",
    "model_version",
    "input_style",
    "tokenizer",
    "prompts_file",
    "prompt_lengths",
    "prompt_stddev",
    "shared_prefix",
    "max_tokens",
    "output_stddev",
    "ignore_eos",
    "requests",
    "warmup",
    "duration_s",
    "warmup_s",
    "concurrency",
    "concurrencies",
    "request_rates",
    "max_concurrency",
    "arrival",
    "burstiness",
    "seed",
    "slo",
    "capacity",
    "streaming",
    "request_timeout_ms",
    "metrics_url",
    "metrics_interval_ms",
    "no_metrics",
    "normal_priority",
];

/// How hard a point loads the server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadLevel {
    /// Closed loop: this many requests in flight, each sent as soon as one finishes.
    Concurrency(u32),
    /// Open loop: requests sent at this rate (requests per second) on a schedule.
    Rate(f64),
}

impl std::fmt::Display for LoadLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Concurrency(c) => write!(f, "concurrency {c}"),
            Self::Rate(rate) => write!(f, "{rate} req/s"),
        }
    }
}

/// Parses a list of prompt lengths: `16,256,2048`, a linear range `100..1000:100`, or a
/// doubling range `16..4096:x2`. Parts may be mixed with commas; the result is sorted and
/// without repeats.
pub fn parse_prompt_lengths(text: &str) -> Result<Vec<u32>, String> {
    parse_counts(text, "prompt length", MAX_PROMPT_LENGTHS)
}

/// Parses a list of concurrencies as [`parse_prompt_lengths`] does lengths: `1,2,4`,
/// `8..64:8` or `1..64:x2`.
pub fn parse_concurrencies(text: &str) -> Result<Vec<u32>, String> {
    parse_counts(text, "concurrency", limits::MAX_LOAD_LEVELS)
}

/// Parses request rates in requests per second: a list (`0.5,1,2.5`), a linear range
/// (`1..10:1`) or a multiplying range (`0.5..16:x2`); sorted and without repeats.
pub fn parse_request_rates(text: &str) -> Result<Vec<f64>, String> {
    let mut out: Vec<f64> = Vec::new();
    let push = |out: &mut Vec<f64>, rate: f64| {
        if out.len() >= limits::MAX_LOAD_LEVELS {
            return Err(format!("too many request rates; at most {}", limits::MAX_LOAD_LEVELS));
        }
        out.push(rate);
        Ok(())
    };
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((range, step)) = part.split_once(':') {
            let (from, to) = range
                .split_once("..")
                .ok_or_else(|| format!("{part:?}: a range is written FROM..TO:STEP or FROM..TO:x2"))?;
            let (from, to) = (parse_rate(from)?, parse_rate(to)?);
            if from > to {
                return Err(format!("{part:?}: the range starts above its end"));
            }
            let step = step.trim();
            let (factor, add) = match step.strip_prefix('x') {
                Some(factor) => (parse_rate(factor)?, 0.0),
                None => (1.0, parse_rate(step)?),
            };
            if add == 0.0 && factor < 1.01 {
                return Err(format!("{part:?}: a multiplying step must be above x1"));
            }
            // Each rate from the range's start, not by adding up steps: no drift.
            for k in 0.. {
                let rate = if add > 0.0 { from + add * f64::from(k) } else { from * factor.powi(k) };
                if rate > to * (1.0 + 1e-9) {
                    break;
                }
                push(&mut out, rate)?;
            }
        } else {
            push(&mut out, parse_rate(part)?)?;
        }
    }
    if out.is_empty() {
        return Err("give at least one request rate".into());
    }
    // Equal under `total_cmp` is equal bit for bit, so no sort can tell them apart.
    out.sort_unstable_by(f64::total_cmp);
    out.dedup();
    Ok(out)
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match crate::number::parse_f64(text.trim()) {
        Some(rate) if rate.is_finite() && rate > 0.0 && rate <= limits::MAX_REQUEST_RATE => Ok(rate),
        Some(_) => Err(format!(
            "{:?}: a request rate must be above 0 and at most {} requests/s",
            text.trim(),
            limits::MAX_REQUEST_RATE
        )),
        None => Err(format!("{:?} is not a number of requests per second", text.trim())),
    }
}

/// Parses whole numbers, lists and ranges of them, for [`parse_prompt_lengths`] and
/// [`parse_concurrencies`]; `what` names one in errors, `most` caps how many.
fn parse_counts(text: &str, what: &str, most: usize) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((range, step)) = part.split_once(':') {
            let (from, to) = range
                .split_once("..")
                .ok_or_else(|| format!("{part:?}: a range is written FROM..TO:STEP or FROM..TO:x2"))?;
            let from = parse_len(from)?;
            let to = parse_len(to)?;
            if from > to {
                return Err(format!("{part:?}: the range starts above its end"));
            }
            let step = step.trim();
            if let Some(factor) = step.strip_prefix('x') {
                let factor = parse_len(factor)?;
                if factor < 2 {
                    return Err(format!("{part:?}: a multiplying step must be x2 or more"));
                }
                let mut n = from;
                while n <= to {
                    push_count(&mut out, n, what, most)?;
                    n = match n.checked_mul(factor) {
                        Some(next) => next,
                        None => break,
                    };
                }
            } else {
                let step = parse_len(step)?;
                let mut n = from;
                while n <= to {
                    push_count(&mut out, n, what, most)?;
                    n = match n.checked_add(step) {
                        Some(next) => next,
                        None => break,
                    };
                }
            }
        } else {
            push_count(&mut out, parse_len(part)?, what, most)?;
        }
    }
    if out.is_empty() {
        return Err(format!("give at least one {what}"));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Adds a count, refusing to grow past `most` (so a huge range fails at once instead of
/// filling memory).
fn push_count(out: &mut Vec<u32>, n: u32, what: &str, most: usize) -> Result<(), String> {
    if out.len() >= most {
        let plural = match what.strip_suffix('y') {
            Some(stem) => format!("{stem}ies"),
            None => format!("{what}s"),
        };
        return Err(format!("too many {plural}; at most {most}"));
    }
    out.push(n);
    Ok(())
}

fn parse_len(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(0) => Err("numbers and steps must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{:?} is not a whole number", text.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokenizer_is_named_after_its_folder() {
        let name = |path: &str| {
            SweepSpec { tokenizer: Some(path.into()), ..SweepSpec::default() }.tokenizer_name().map(String::from)
        };
        assert_eq!(name("/models/llama-3/tokenizer.json").as_deref(), Some("llama-3"));
        assert_eq!(name("/models/llama-3/").as_deref(), Some("llama-3"));
        assert_eq!(name(r"C:\models\gpt2\tokenizer.json").as_deref(), Some("gpt2"));
        assert_eq!(name("tokenizer.json").as_deref(), Some("tokenizer.json"));
        assert_eq!(SweepSpec::default().tokenizer_name(), None);
    }

    #[test]
    fn lists_ranges_and_doubling_mix() {
        assert_eq!(parse_prompt_lengths("2048, 16,256").unwrap(), vec![16, 256, 2048]);
        assert_eq!(parse_prompt_lengths("100..400:100").unwrap(), vec![100, 200, 300, 400]);
        assert_eq!(parse_prompt_lengths("16..100:x2,16").unwrap(), vec![16, 32, 64]);
    }

    #[test]
    fn bad_lengths_say_why() {
        assert!(parse_prompt_lengths("").unwrap_err().contains("at least one"));
        assert!(parse_prompt_lengths("0").unwrap_err().contains("at least 1"));
        assert!(parse_prompt_lengths("abc").unwrap_err().contains("not a whole number"));
        assert!(parse_prompt_lengths("5..1:1").unwrap_err().contains("starts above"));
        assert!(parse_prompt_lengths("1..9:x1").unwrap_err().contains("x2 or more"));
        assert!(parse_prompt_lengths("1..100000:1").unwrap_err().contains("too many"));
        // Refused without building four billion lengths first.
        assert!(parse_prompt_lengths("1..4000000000:1").unwrap_err().contains("too many"));
    }

    #[test]
    fn concurrencies_and_rates_parse_like_lengths() {
        assert_eq!(parse_concurrencies("1,2,4..16:x2").unwrap(), vec![1, 2, 4, 8, 16]);
        assert!(parse_concurrencies("1..100000:1").unwrap_err().contains("too many concurrencies"));
        assert_eq!(parse_request_rates("2, 0.5,1").unwrap(), vec![0.5, 1.0, 2.0]);
        assert_eq!(parse_request_rates("0.5..4:x2").unwrap(), vec![0.5, 1.0, 2.0, 4.0]);
        assert_eq!(parse_request_rates("1..2:0.25").unwrap(), vec![1.0, 1.25, 1.5, 1.75, 2.0]);
        assert!(parse_request_rates("0").unwrap_err().contains("above 0"));
        let bad = SweepSpec { model: "m".into(), request_rates: vec![1.0, 0.0], ..SweepSpec::default() };
        assert!(bad.problems().iter().any(|p| p.contains("above 0")), "{:?}", bad.problems());
        assert!(parse_request_rates("fast").unwrap_err().contains("not a number"));
        assert!(parse_request_rates("1..2:x1").unwrap_err().contains("above x1"));
        assert!(parse_request_rates("0.001..100000:0.001").unwrap_err().contains("too many request rates"));
    }

    #[test]
    fn a_capacity_search_has_a_point_per_probe_started() {
        let slo = Some(Slo { ttft_ms: Some(500.0), ..Slo::default() });
        let mut spec = SweepSpec {
            model: "m".into(),
            prompt_lengths: vec![64],
            slo,
            capacity: Some(CapacitySearch { probes: 5, ..CapacitySearch::default() }),
            ..SweepSpec::default()
        };
        assert!(spec.problems().is_empty(), "{:?}", spec.problems());
        assert!(spec.open_loop());
        assert_eq!(spec.point_count(), 5);
        assert_eq!(spec.point(0), None);
        spec.request_rates = vec![1.0, 2.0];
        assert_eq!(spec.point(1), Some((64, LoadLevel::Rate(2.0))));
        assert_eq!(spec.point(2), None);
        assert_eq!((spec.requests_sent_bound(None), spec.requests_sent_bound(Some(19))), (50, 20));
        let timed = SweepSpec { duration_s: Some(5.0), ..spec.clone() };
        assert_eq!((timed.requests_sent_bound(None), timed.requests_sent_bound(Some(19))), (50, 19));
        assert!(spec.to_rerun().request_rates.is_empty());
        assert!(spec.to_rerun().problems().is_empty());
        let problems = SweepSpec { prompt_lengths: vec![16, 32], slo: None, ..spec.clone() }.problems();
        assert!(problems.iter().any(|p| p.contains("needs objectives")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("one prompt length")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("picks its own request rates")), "{problems:?}");
        // The probes' arrivals are checked before any probe is sent.
        let flat = SweepSpec { arrival: Arrival::Gamma, burstiness: 0.0, ..spec.to_rerun() };
        assert!(flat.problems().iter().any(|p| p.contains("burstiness")), "{:?}", flat.problems());
        let moment = SweepSpec { duration_s: Some(1e-10), ..spec.to_rerun() };
        assert!(moment.problems().iter().any(|p| p.contains("from 0.001")), "{:?}", moment.problems());
    }

    #[test]
    fn points_cross_prompt_lengths_with_load_levels() {
        let spec = SweepSpec { prompt_lengths: vec![16, 256], concurrencies: vec![1, 4, 8], ..SweepSpec::default() };
        assert_eq!(spec.point_count(), 6);
        assert_eq!(spec.point(0), Some((16, LoadLevel::Concurrency(1))));
        assert_eq!(spec.point(2), Some((16, LoadLevel::Concurrency(8))));
        assert_eq!(spec.point(4), Some((256, LoadLevel::Concurrency(4))));
        assert_eq!(spec.point(6), None);
        assert_eq!(spec.point_length(5), 256);
        assert_eq!(spec.most_in_flight(), 8);
        assert_eq!(spec.total_requests(), 60);
        let open = SweepSpec { request_rates: vec![0.5, 2.0], max_concurrency: Some(64), ..spec.clone() };
        assert!(open.open_loop());
        assert_eq!(open.point(3), Some((256, LoadLevel::Rate(2.0))));
        assert_eq!(open.most_in_flight(), 64);
        assert!(open.problems().iter().any(|p| p.contains("not both")));
        let single = SweepSpec { concurrency: 3, ..SweepSpec::default() };
        assert_eq!(single.load_levels(), vec![LoadLevel::Concurrency(3)]);
        assert_eq!(single.point_count(), 3);
        assert_eq!(serde_json::to_string(&LoadLevel::Rate(2.5)).unwrap(), r#"{"rate":2.5}"#);
    }

    #[test]
    fn requests_draw_their_lengths_and_a_shared_prefix_fits_inside_them() {
        let spec = SweepSpec {
            prompt_lengths: vec![100, 1000],
            prompt_stddev: Some(50.0),
            output_stddev: Some(8.0),
            max_tokens: 32,
            shared_prefix: Some(90),
            seed: 5,
            model: "m".into(),
            ..SweepSpec::default()
        };
        assert!(spec.problems().is_empty(), "{:?}", spec.problems());
        assert!(spec.draws_lengths());
        let short: Vec<u32> = (0..200).map(|seq| spec.prompt_length_of(0, seq, 100, 1)).collect();
        assert!(short.iter().all(|&l| (91..=250).contains(&l)), "above the prefix, within 3 sigma: {short:?}");
        assert!(short.iter().any(|&l| l > 100) && short.contains(&91), "spread both ways, cut at the prefix");
        let long: Vec<u32> = (0..200).map(|seq| spec.prompt_length_of(1, seq, 1000, 1)).collect();
        assert!(long.iter().all(|&l| (850..=1150).contains(&l)) && long.iter().any(|&l| l != 1000));
        let outputs: Vec<u32> = (0..200).map(|seq| spec.max_tokens_of(1, seq)).collect();
        assert!(outputs.iter().all(|&t| (8..=56).contains(&t)) && outputs.iter().any(|&t| t != 32));
        let plain = SweepSpec::default();
        assert_eq!((plain.prompt_length_of(1, 3, 256, 1), plain.max_tokens_of(1, 3)), (256, 64));

        let bad = SweepSpec {
            prompt_stddev: Some(-1.0),
            output_stddev: Some(f64::NAN),
            shared_prefix: Some(16),
            prompts_file: Some("p.jsonl".into()),
            ..SweepSpec::default()
        };
        let problems = bad.problems().join("\n");
        for expected in ["prompt_stddev is a standard deviation", "output_stddev is a standard deviation", "16 is not"]
        {
            assert!(problems.contains(expected), "{expected:?} in {problems}");
        }
        assert!(problems.contains("no prompt_stddev with it") && problems.contains("no shared prefix with it"));
        let too_many = SweepSpec { max_tokens: limits::MAX_OUTPUT_TOKENS, output_stddev: Some(1.0), ..plain };
        assert!(too_many.problems().iter().any(|p| p.contains("max_tokens up to")), "draws are capped too");
    }

    #[test]
    fn the_field_list_names_every_field() {
        let full = SweepSpec {
            protocol: Protocol::OpenAi,
            chat: true,
            model_version: Some("1".into()),
            concurrencies: vec![1],
            request_rates: vec![1.0],
            max_concurrency: Some(1),
            duration_s: Some(1.0),
            warmup_s: Some(1.0),
            slo: Some(Slo::default()),
            capacity: Some(CapacitySearch::default()),
            tokenizer: Some("tokenizer.json".into()),
            prompts_file: Some("prompts.jsonl".into()),
            prompt_stddev: Some(1.0),
            output_stddev: Some(1.0),
            shared_prefix: Some(1),
            metrics_url: Some("http://h:8002/metrics".into()),
            metrics_interval_ms: Some(250),
            no_metrics: true,
            normal_priority: true,
            ..SweepSpec::default()
        };
        let serde_json::Value::Object(fields) = serde_json::to_value(full).unwrap() else { panic!("an object") };
        let mut named: Vec<&str> = fields.keys().map(String::as_str).collect();
        let mut listed = SPEC_FIELDS.to_vec();
        named.sort_unstable();
        listed.sort_unstable();
        assert_eq!(named, listed);
    }

    #[test]
    fn styles_round_trip_by_name() {
        for style in InputStyle::ALL {
            assert_eq!(style.name().parse::<InputStyle>().unwrap(), style);
        }
        assert!("onnx".parse::<InputStyle>().unwrap_err().contains("unknown input style"));
    }

    #[test]
    fn metrics_are_read_from_the_targets_host_unless_told_otherwise() {
        let spec = SweepSpec { target: "http://10.1.2.3:8001".into(), model: "m".into(), ..SweepSpec::default() };
        assert_eq!(spec.metrics_address().as_deref(), Some("http://10.1.2.3:8002/metrics"));
        assert_eq!(spec.metrics_interval_ms(), telemetry::DEFAULT_INTERVAL_MS);
        let elsewhere = SweepSpec { metrics_url: Some("http://m:9400/metrics".into()), ..spec.clone() };
        assert_eq!(elsewhere.metrics_address().as_deref(), Some("http://m:9400/metrics"));
        assert!(SweepSpec { no_metrics: true, ..elsewhere }.metrics_address().is_none());
        let bad = SweepSpec { metrics_url: Some("https://m/metrics".into()), metrics_interval_ms: Some(10), ..spec };
        let problems = bad.problems().join("; ");
        assert!(problems.contains("must start with http://"), "{problems}");
        assert!(problems.contains("from 50 to 60000 ms, not 10"), "{problems}");
        // Turned off, its address and interval do not matter.
        assert!(SweepSpec { no_metrics: true, ..bad }.problems().is_empty());
    }

    #[test]
    fn spec_problems_are_listed() {
        let spec = SweepSpec { model: String::new(), requests: 0, ..SweepSpec::default() };
        let problems = spec.problems();
        assert!(problems.iter().any(|p| p.contains("model name")));
        assert!(problems.iter().any(|p| p.contains("requests per prompt length")));
        let ok = SweepSpec { model: "m".into(), ..SweepSpec::default() };
        assert!(ok.problems().is_empty());
    }

    #[test]
    fn the_protocol_comes_from_the_target_or_the_spec() {
        let spec = SweepSpec { model: "m".into(), ..SweepSpec::default() };
        assert_eq!(spec.endpoint().unwrap().protocol, Protocol::TritonGrpc);
        let openai = SweepSpec { target: "openai://h:9000".into(), chat: true, ..spec.clone() };
        assert_eq!(openai.problems(), Vec::<String>::new());
        let whole = SweepSpec { streaming: false, ..openai.clone() };
        assert_eq!(
            whole.problems(),
            ["the openai protocol is measured streaming only; turn streaming on, or give the server's Triton gRPC \
              address, such as http://127.0.0.1:8001, to time whole answers"]
        );
        assert_eq!(openai.endpoint().unwrap().base_url, "http://h:9000");
        assert_eq!((spec.speaks(), openai.speaks()), (Protocol::TritonGrpc, Protocol::OpenAi));
        let imported = SweepSpec { target: "profile export.json".into(), protocol: Protocol::OpenAi, ..spec.clone() };
        assert_eq!(imported.speaks(), Protocol::OpenAi, "a file's name names no protocol");
        let asked = SweepSpec { target: "https://h".into(), protocol: Protocol::TritonHttp, ..spec.clone() };
        assert_eq!(asked.endpoint().unwrap().protocol, Protocol::TritonHttp);
        let chat = SweepSpec { chat: true, ..asked.clone() };
        let problems = chat.problems().join("; ");
        assert!(problems.contains("this target speaks triton-http; write the target as openai://"), "{problems}");
        let contradiction = SweepSpec { target: "openai://h".into(), ..asked };
        let problems = contradiction.problems().join("; ");
        assert!(problems.contains("write triton-http://h to speak triton-http"), "{problems}");
        assert_eq!(spec.protocol_words(), "Triton gRPC");
        assert_eq!(openai.protocol_words(), "OpenAI/SSE chat completions");
        assert_eq!(SweepSpec { chat: false, ..openai }.protocol_words(), "OpenAI/SSE completions");
        let unknown = SweepSpec { target: "ftp://h".into(), ..spec };
        assert!(unknown.problems().iter().any(|p| p.contains("names no protocol")), "{:?}", unknown.problems());
    }

    #[test]
    fn a_grpc_spec_reads_and_writes_as_before_the_protocol_was_added() {
        let json = serde_json::to_value(SweepSpec::default()).unwrap();
        assert!(json.get("protocol").is_none() && json.get("chat").is_none(), "{json}");
        let spec: SweepSpec = serde_json::from_str(r#"{"model":"m","target":"http://h:8001"}"#).unwrap();
        assert_eq!((spec.protocol, spec.chat), (Protocol::TritonGrpc, false));
        let spec: SweepSpec = serde_json::from_str(r#"{"model":"m","protocol":"openai","chat":true}"#).unwrap();
        assert_eq!((spec.protocol, spec.chat), (Protocol::OpenAi, true));
    }

    #[test]
    fn spec_reads_with_defaults() {
        let spec: SweepSpec = serde_json::from_str(r#"{"model":"m","input_style":"trtllm"}"#).unwrap();
        assert_eq!(spec.input_style, InputStyle::Trtllm);
        assert_eq!(spec.concurrency, 1);
    }
}
