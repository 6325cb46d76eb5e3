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

pub use crate::limits::MAX_REQUESTS;
use crate::limits::{self, MAX_PROMPT_LENGTHS};

/// A sweep: for each prompt length, `warmup` then `requests` requests, `concurrency` at a time
/// (closed loop: a new request is sent as soon as one finishes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SweepSpec {
    /// The Triton gRPC endpoint, such as `http://127.0.0.1:8001`.
    pub target: String,
    pub model: String,
    /// A model version; empty or absent means the server's choice.
    pub model_version: Option<String>,
    pub input_style: InputStyle,
    /// Prompt lengths to visit, in approximate tokens (words of synthetic text).
    pub prompt_lengths: Vec<u32>,
    pub max_tokens: u32,
    /// Ask the model to keep generating past its end-of-sequence token.
    pub ignore_eos: bool,
    /// Measured requests per prompt length.
    pub requests: u32,
    /// Requests per prompt length sent first and left out of every statistic.
    pub warmup: u32,
    /// Requests in flight at once.
    pub concurrency: u32,
    /// Stream tokens (`ModelStreamInfer`, for decoupled models) and time each one; or send
    /// each request with `ModelInfer` and time its single response, which then gives TTFT as
    /// the whole request's latency and no token-to-token latency.
    pub streaming: bool,
    /// A request still unfinished this long after it was sent is abandoned and counted as an error.
    pub request_timeout_ms: u64,
}

impl Default for SweepSpec {
    fn default() -> Self {
        Self {
            target: "http://127.0.0.1:8001".into(),
            model: String::new(),
            model_version: None,
            input_style: InputStyle::Auto,
            prompt_lengths: vec![16, 256, 2048],
            max_tokens: 64,
            ignore_eos: false,
            requests: 10,
            warmup: 0,
            concurrency: 1,
            streaming: true,
            request_timeout_ms: 60_000,
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
        } else if !(target.starts_with("http://") || target.starts_with("https://")) && target.contains("://") {
            out.push(format!("the target {target:?} is not an http:// or https:// address"));
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
        if self.requests == 0 {
            out.push("requests per prompt length must be at least 1".into());
        }
        if self.concurrency == 0 {
            out.push("concurrency must be at least 1".into());
        }
        if self.request_timeout_ms == 0 {
            out.push("the request timeout must be above 0 ms".into());
        }
        // The caps (see `limits`), each refusal naming its cap.
        out.extend(limits::spec_problems(self));
        out
    }

    /// Requests sent per prompt length, warm-up included.
    pub fn requests_per_point(&self) -> u64 {
        u64::from(self.requests) + u64::from(self.warmup)
    }

    /// Requests sent by the whole sweep, warm-up included.
    pub fn total_requests(&self) -> u64 {
        self.requests_per_point() * self.prompt_lengths.len() as u64
    }
}

/// Parses a list of prompt lengths: `16,256,2048`, a linear range `100..1000:100`, or a
/// doubling range `16..4096:x2`. Parts may be mixed with commas; the result is sorted and
/// without repeats.
pub fn parse_prompt_lengths(text: &str) -> Result<Vec<u32>, String> {
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
                    push_length(&mut out, n)?;
                    n = match n.checked_mul(factor) {
                        Some(next) => next,
                        None => break,
                    };
                }
            } else {
                let step = parse_len(step)?;
                let mut n = from;
                while n <= to {
                    push_length(&mut out, n)?;
                    n = match n.checked_add(step) {
                        Some(next) => next,
                        None => break,
                    };
                }
            }
        } else {
            push_length(&mut out, parse_len(part)?)?;
        }
    }
    if out.is_empty() {
        return Err("give at least one prompt length".into());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Adds a length, refusing to grow past [`MAX_PROMPT_LENGTHS`] (so a huge range fails at once
/// instead of filling memory).
fn push_length(out: &mut Vec<u32>, n: u32) -> Result<(), String> {
    if out.len() >= MAX_PROMPT_LENGTHS {
        return Err(format!("too many prompt lengths; at most {MAX_PROMPT_LENGTHS}"));
    }
    out.push(n);
    Ok(())
}

fn parse_len(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(0) => Err("prompt lengths and steps must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{:?} is not a whole number", text.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn styles_round_trip_by_name() {
        for style in InputStyle::ALL {
            assert_eq!(style.name().parse::<InputStyle>().unwrap(), style);
        }
        assert!("onnx".parse::<InputStyle>().unwrap_err().contains("unknown input style"));
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
    fn spec_reads_with_defaults() {
        let spec: SweepSpec = serde_json::from_str(r#"{"model":"m","input_style":"trtllm"}"#).unwrap();
        assert_eq!(spec.input_style, InputStyle::Trtllm);
        assert_eq!(spec.concurrency, 1);
    }
}
