//! The simulated models: their declared tensors, their latency schedule and how they answer.

use std::collections::HashMap;
use std::time::Duration;

use shared::InputStyle;

use super::wire::{self, Encoded, Output, Raw};
use crate::bytes::{decode_raw, encode_raw_one};
use crate::convention::{
    Convention, DataType, Declared, MAX_OUTPUTS, MaxTokensInput, NUM_INPUT_TOKENS, NUM_OUTPUT_TOKENS, OUTPUT_IDS,
    RETURN_NUM_INPUT_TOKENS, RETURN_NUM_OUTPUT_TOKENS, TextForm, read_sampling,
};
use crate::pb;
use crate::pb::infer_parameter::ParameterChoice;
use crate::pb::model_infer_response::InferOutputTensor;
use crate::tokenizer::{SharedTokenizer, Tokenizer};

/// The latency model, set from the command line.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SimConfig {
    /// Prefill time of an empty prompt, in milliseconds.
    #[arg(long, default_value_t = 15.0)]
    pub prefill_base_ms: f64,
    /// Prefill time added per prompt token, in milliseconds.
    #[arg(long, default_value_t = 0.05)]
    pub prefill_per_token_ms: f64,
    /// Prefill time added per squared prompt token, in nanoseconds (attention's quadratic cost).
    #[arg(long, default_value_t = 0.0)]
    pub prefill_quadratic_ns: f64,
    /// Time to decode one output token, in milliseconds.
    #[arg(long, default_value_t = 12.0)]
    pub decode_ms: f64,
    /// Decode time added per 1,000 tokens of context (prompt plus output so far), in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    pub decode_per_1k_context_ms: f64,
    /// Decode time added per other sequence running at the same time on the model (continuous
    /// batching), in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    pub decode_per_sequence_ms: f64,
    /// Sequences each model runs at once, as a server's batch slots (0: unlimited); requests
    /// beyond wait in a first-come, first-served queue until a running sequence ends.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_sequences: usize,
    /// Random variation of every step, as a fraction (0.1 = up to ±10%), drawn from --seed.
    #[arg(long, default_value_t = 0.0)]
    pub jitter: f64,
    /// Seed of the jitter.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fail every Nth request with an error after its first token (0: never).
    #[arg(long, default_value_t = 0)]
    pub fail_every: u64,
    /// Make the first response of every Nth request claim 4,294,967,295 output tokens in its
    /// `num_output_tokens` (0: never), as a broken or hostile server might.
    #[arg(long, default_value_t = 0)]
    pub huge_count_every: u64,
    /// Answer ModelStatistics with UNIMPLEMENTED, as a server or proxy without it does.
    #[arg(long)]
    pub no_statistics: bool,
    /// Make each token's text its send time (" @<unix ns>"), so any client's export shows its arrival delay.
    #[arg(long)]
    pub stamp_text: bool,
    /// Report this model as failed to load (UNAVAILABLE), as a server with a broken model does; repeatable.
    #[arg(long = "unavailable", value_name = "MODEL")]
    pub unavailable: Vec<String>,
    /// Count prompt tokens with this Hugging Face tokenizer.json (or a folder holding one), as
    /// a real server counts them with its model's, for the prefill time and num_input_tokens;
    /// without it a prompt has a token per word.
    #[arg(long, value_name = "PATH", value_parser = SharedTokenizer::parse)]
    pub tokenizer: Option<SharedTokenizer>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            prefill_base_ms: 15.0,
            prefill_per_token_ms: 0.05,
            prefill_quadratic_ns: 0.0,
            decode_ms: 12.0,
            decode_per_1k_context_ms: 0.0,
            decode_per_sequence_ms: 0.0,
            max_sequences: 0,
            jitter: 0.0,
            seed: 1,
            fail_every: 0,
            huge_count_every: 0,
            no_statistics: false,
            stamp_text: false,
            unavailable: Vec::new(),
            tokenizer: None,
        }
    }
}

impl SimConfig {
    /// Prefill time for a prompt of `tokens` tokens, before jitter.
    pub fn prefill(&self, tokens: u32) -> Duration {
        let n = f64::from(tokens);
        let ms = self.prefill_base_ms + self.prefill_per_token_ms * n + self.prefill_quadratic_ns * n * n / 1e6;
        Duration::from_secs_f64(ms.max(0.0) / 1e3)
    }

    /// Time of one decode step with `context` tokens of context and `active` sequences running
    /// on the model (this one included).
    pub fn decode(&self, context: u32, active: usize) -> Duration {
        let ms = self.decode_ms
            + self.decode_per_1k_context_ms * f64::from(context) / 1000.0
            + self.decode_per_sequence_ms * active.saturating_sub(1) as f64;
        Duration::from_secs_f64(ms.max(0.0) / 1e3)
    }

    /// Time one sequence holds its slot, before jitter, while `active` sequences run on its
    /// model throughout: its prefill, which ends with the first token, then one decode step for
    /// each of the other `max_tokens - 1` tokens, token `k` (from 0) decoded with
    /// `prompt_tokens + k` tokens of context. Every model keeps this schedule, whatever its
    /// convention: a response carrying two tokens is sent after both of their steps.
    pub fn sequence_time(&self, prompt_tokens: u32, max_tokens: u32, active: usize) -> Duration {
        (1..max_tokens.max(1)).map(|k| self.decode(prompt_tokens.saturating_add(k), active)).sum::<Duration>()
            + self.prefill(prompt_tokens)
    }

    /// Requests per second one model completes in the steady state where all of its
    /// `--max-sequences` slots are busy and requests are waiting, each with `prompt_tokens`
    /// prompt tokens and `max_tokens` output tokens: a freed slot starts the next request's
    /// prefill at the moment the last one ends, so each slot completes one request per
    /// [`Self::sequence_time`] with `N = max_sequences` running:
    ///
    /// ```text
    /// N / (prefill(P) + Σ_{k=1}^{T-1} decode(P + k, N))
    /// ```
    ///
    /// with `P = prompt_tokens`, `T = max_tokens`, `N = max_sequences`; in milliseconds, when
    /// no setting is negative, the denominator is
    ///
    /// ```text
    /// prefill_base_ms + prefill_per_token_ms·P + prefill_quadratic_ns·P²/10⁶
    ///   + (T - 1)·(decode_ms + decode_per_sequence_ms·(N - 1) + decode_per_1k_context_ms·P/1000)
    ///   + decode_per_1k_context_ms·T·(T - 1)/2000
    /// ```
    ///
    /// Jitter leaves it as it is on average (each step is scaled by a factor whose mean is 1,
    /// for `--jitter` up to 1);
    /// `--fail-every` is assumed 0 (a failed request frees its slot early). Infinite with
    /// unlimited slots (`max_sequences` 0).
    pub fn capacity_rps(&self, prompt_tokens: u32, max_tokens: u32) -> f64 {
        if self.max_sequences == 0 {
            return f64::INFINITY;
        }
        let n = self.max_sequences;
        n as f64 / self.sequence_time(prompt_tokens, max_tokens, n).as_secs_f64()
    }
}

/// A simulated model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimModel {
    pub name: &'static str,
    pub style: InputStyle,
    pub decoupled: bool,
}

/// The models every simulated server has, one per convention plus a non-streaming one.
pub const MODELS: [SimModel; 4] = [
    SimModel { name: "sim-vllm", style: InputStyle::Vllm, decoupled: true },
    SimModel { name: "sim-tutorial", style: InputStyle::Tutorial, decoupled: true },
    SimModel { name: "sim-trtllm", style: InputStyle::Trtllm, decoupled: true },
    SimModel { name: "sim-unary", style: InputStyle::Vllm, decoupled: false },
];

/// Finds a model by name.
pub fn find(name: &str) -> Option<&'static SimModel> {
    MODELS.iter().find(|m| m.name == name)
}

impl SimModel {
    /// The model's place in [`MODELS`].
    pub fn index(&self) -> usize {
        MODELS.iter().position(|m| m.name == self.name).expect("every model is one of MODELS")
    }
}

/// Words the simulated models "generate".
const WORDS: [&str; 8] = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"];

/// The tokens one content response carries.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// All text generated so far, these tokens' included (cumulative outputs repeat it).
    pub generated: &'a str,
    /// The index of the first of these tokens in the output.
    pub first: u32,
    pub count: u32,
    /// These tokens' text.
    pub text: &'a str,
    /// Whether the response is the request's last.
    pub is_final: bool,
    /// A token count to report in `num_output_tokens` instead of `count`.
    pub claimed: Option<u32>,
}

/// What a request asks of a simulated model.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub id: String,
    pub prompt: String,
    pub prompt_tokens: u32,
    pub max_tokens: u32,
    pub want_input_count: bool,
    pub want_output_count: bool,
    pub empty_final: bool,
}

impl SimModel {
    /// The convention the model speaks: its tensors are the ones the convention declares.
    pub fn convention(&self) -> &'static Convention {
        Convention::of(self.style)
    }

    fn batched(&self) -> bool {
        self.convention().batched
    }

    fn inputs(&self) -> &'static [Declared] {
        self.convention().inputs
    }

    fn outputs(&self) -> &'static [Declared] {
        self.convention().outputs
    }

    fn shape(&self, dims: &[i64]) -> Vec<i64> {
        if self.batched() { [&[-1], dims].concat() } else { dims.to_vec() }
    }

    pub fn metadata(&self) -> pb::ModelMetadataResponse {
        let meta = |t: &Declared| pb::model_metadata_response::TensorMetadata {
            name: t.name.into(),
            datatype: t.datatype.name().into(),
            shape: self.shape(t.dims),
        };
        pb::ModelMetadataResponse {
            name: self.name.into(),
            versions: vec!["1".into()],
            platform: if self.batched() { "ensemble".into() } else { "python".into() },
            inputs: self.inputs().iter().map(meta).collect(),
            outputs: self.outputs().iter().map(meta).collect(),
        }
    }

    pub fn config(&self) -> pb::ModelConfig {
        pb::ModelConfig {
            name: self.name.into(),
            platform: if self.batched() { "ensemble".into() } else { String::new() },
            backend: if self.batched() { String::new() } else { "python".into() },
            max_batch_size: if self.batched() { 8 } else { 0 },
            input: self
                .inputs()
                .iter()
                .map(|t| pb::ModelInput {
                    name: t.name.into(),
                    data_type: t.datatype.config_code() as i32,
                    dims: t.dims.to_vec(),
                    optional: t.optional,
                })
                .collect(),
            output: self
                .outputs()
                .iter()
                .map(|t| pb::ModelOutput {
                    name: t.name.into(),
                    data_type: t.datatype.config_code() as i32,
                    dims: t.dims.to_vec(),
                })
                .collect(),
            model_transaction_policy: Some(pb::ModelTransactionPolicy { decoupled: self.decoupled }),
        }
    }

    /// Reads a request, with Triton's kind of message when it does not fit the model; its
    /// prompt's tokens are counted by `tokenizer`, or are its words.
    pub fn ask(&self, request: &pb::ModelInferRequest, tokenizer: Option<&Tokenizer>) -> Result<Ask, String> {
        let id = request.id.clone();
        let expected: Vec<&str> = self.inputs().iter().filter(|t| !t.optional).map(|t| t.name).collect();
        let missing: Vec<&str> =
            expected.iter().copied().filter(|n| !request.inputs.iter().any(|i| i.name == *n)).collect();
        if !missing.is_empty() {
            return Err(format!(
                "[request id: {id}] expected {} inputs but got {} inputs for model '{}'. Got input(s) [{}], but missing required input(s) [{}]",
                expected.len(),
                request.inputs.len(),
                self.name,
                request.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", "),
                missing.join(", ")
            ));
        }
        if let Some(unknown) = request.inputs.iter().find(|i| !self.inputs().iter().any(|t| t.name == i.name)) {
            return Err(format!(
                "[request id: {id}] unexpected inference input '{}' for model '{}'",
                unknown.name, self.name
            ));
        }
        let convention = self.convention();
        let prompt_name = convention.prompt;
        let prompt = input_bytes(request, prompt_name).ok_or_else(|| {
            format!("[request id: {id}] input '{prompt_name}' holds no {} element", DataType::Bytes.name())
        })?;
        let prompt = String::from_utf8_lossy(&prompt).into_owned();
        let max_tokens = match convention.max_tokens {
            MaxTokensInput::Int(name) => input_int(request, name).ok_or_else(|| {
                format!("[request id: {id}] input '{name}' holds no {} element", DataType::Int32.name())
            })?,
            MaxTokensInput::Sampling(name) => match input_bytes(request, name) {
                None => 16,
                Some(json) => read_sampling(&json)
                    .map_err(|e| format!("[request id: {id}] {name} is not JSON: {e}"))?
                    .max_tokens
                    .and_then(|n| n.as_u64())
                    .unwrap_or(16) as i64,
            },
        };
        let max_tokens = u32::try_from(max_tokens)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| format!("[request id: {id}] max_tokens must be at least 1, got {max_tokens}"))?;
        let empty_final = matches!(
            request.parameters.get("triton_enable_empty_final_response").and_then(|p| p.parameter_choice.as_ref()),
            Some(ParameterChoice::BoolParam(true))
        );
        let prompt_tokens = match tokenizer {
            Some(tokenizer) => tokenizer.count(&prompt).map_err(|e| format!("[request id: {id}] {e}"))?,
            None => shared::prompt::word_count(&prompt) as u32,
        };
        Ok(Ask {
            id,
            prompt_tokens,
            prompt,
            max_tokens,
            want_input_count: input_bool(request, RETURN_NUM_INPUT_TOKENS),
            want_output_count: input_bool(request, RETURN_NUM_OUTPUT_TOKENS),
            empty_final,
        })
    }

    /// Tokens the `n`th content response (from 0) carries: TensorRT-LLM's now and then carry two.
    pub fn tokens_in_response(&self, n: u32, left: u32) -> u32 {
        if self.convention().several_tokens_per_response && n % 5 == 4 { left.min(2) } else { left.min(1) }
    }

    /// Whether this model sends its final flag as a separate empty response.
    pub fn separate_final(&self) -> bool {
        self.decoupled && self.convention().separate_final
    }

    /// Calls `f` with the outputs of a content response carrying `step`'s tokens: the ones
    /// the convention declares, counts only where the request asked for them.
    fn with_outputs<R>(&self, ask: &Ask, step: &Step, f: impl FnOnce(&[Output]) -> R) -> R {
        let Step { generated, first, count, text, claimed, .. } = *step;
        let convention = self.convention();
        let shape: &[i64] = if self.batched() { &[1, 1] } else { &[1] };
        let full;
        let text = match convention.text_form {
            TextForm::Cumulative => {
                full = format!("{}{generated}", ask.prompt);
                full.as_str()
            }
            TextForm::Delta => text,
        };
        let mut ids = Vec::new();
        if convention.outputs.iter().any(|o| o.name == OUTPUT_IDS) {
            ids.reserve(4 * count as usize);
            for i in first..first + count {
                ids.extend_from_slice(&(1000 + i as i32).to_le_bytes());
            }
        }
        let ids_shape = [1, i64::from(count)];
        let input_count = ask.prompt_tokens.to_le_bytes();
        let output_count = claimed.unwrap_or(count).to_le_bytes();
        let mut outputs: [Output; MAX_OUTPUTS] =
            std::array::from_fn(|_| Output { name: "", datatype: "", shape: &[], raw: Raw::Plain(&[]) });
        let mut n = 0;
        for declared in convention.outputs {
            let (shape, raw) = match declared.name {
                name if name == convention.text_output => (shape, Raw::Element(text.as_bytes())),
                OUTPUT_IDS => (&ids_shape[..], Raw::Plain(&ids)),
                NUM_INPUT_TOKENS if ask.want_input_count => (shape, Raw::Plain(&input_count)),
                NUM_OUTPUT_TOKENS if ask.want_output_count => (shape, Raw::Plain(&output_count)),
                _ => continue,
            };
            outputs[n] = Output { name: declared.name, datatype: declared.datatype.name(), shape, raw };
            n += 1;
        }
        f(&outputs[..n])
    }

    /// A content response as a message.
    pub fn content(&self, ask: &Ask, step: &Step) -> pb::ModelInferResponse {
        self.with_outputs(ask, step, |outputs| pb::ModelInferResponse {
            model_name: self.name.into(),
            model_version: "1".into(),
            id: ask.id.clone(),
            parameters: final_flag(step.is_final),
            outputs: outputs
                .iter()
                .map(|o| InferOutputTensor {
                    name: o.name.into(),
                    datatype: o.datatype.into(),
                    shape: o.shape.to_vec(),
                    ..Default::default()
                })
                .collect(),
            raw_output_contents: outputs
                .iter()
                .map(|o| match o.raw {
                    Raw::Element(element) => encode_raw_one(element),
                    Raw::Plain(plain) => plain.to_vec(),
                })
                .collect(),
        })
    }

    /// The fields every streamed response to `ask` shares, encoded (see [`wire::head`]).
    pub fn head(&self, ask: &Ask) -> Vec<u8> {
        wire::head(self.name, "1", &ask.id)
    }

    /// A content response as it goes on the stream; `head` is [`Self::head`]'s.
    pub fn encoded_content(&self, head: &[u8], ask: &Ask, step: &Step) -> Encoded {
        self.with_outputs(ask, step, |outputs| wire::response(head, step.is_final, outputs))
    }
}

/// The text of output token `i`.
pub fn token_text(i: u32) -> &'static str {
    WORDS[i as usize % WORDS.len()]
}

fn final_flag(is_final: bool) -> HashMap<String, pb::InferParameter> {
    HashMap::from([(
        "triton_final_response".to_string(),
        pb::InferParameter { parameter_choice: Some(ParameterChoice::BoolParam(is_final)) },
    )])
}

fn input_index(request: &pb::ModelInferRequest, name: &str) -> Option<usize> {
    request.inputs.iter().position(|i| i.name == name)
}

fn input_raw(request: &pb::ModelInferRequest, i: usize) -> Option<&[u8]> {
    request.raw_input_contents.get(i).map(Vec::as_slice)
}

fn input_bytes(request: &pb::ModelInferRequest, name: &str) -> Option<Vec<u8>> {
    let i = input_index(request, name)?;
    match input_raw(request, i) {
        Some(raw) => decode_raw(raw).ok()?.first().map(|e| e.to_vec()),
        None => request.inputs[i].contents.as_ref()?.bytes_contents.first().cloned(),
    }
}

fn input_int(request: &pb::ModelInferRequest, name: &str) -> Option<i64> {
    let i = input_index(request, name)?;
    match input_raw(request, i) {
        Some(raw) if raw.len() >= 8 && request.inputs[i].datatype == "INT64" => {
            Some(i64::from_le_bytes(raw[..8].try_into().ok()?))
        }
        Some(raw) if raw.len() >= 4 => Some(i64::from(i32::from_le_bytes(raw[..4].try_into().ok()?))),
        Some(_) => None,
        None => {
            let c = request.inputs[i].contents.as_ref()?;
            c.int_contents.first().map(|&v| i64::from(v)).or_else(|| c.int64_contents.first().copied())
        }
    }
}

fn input_bool(request: &pb::ModelInferRequest, name: &str) -> bool {
    let Some(i) = input_index(request, name) else { return false };
    match input_raw(request, i) {
        Some(raw) => raw.first().is_some_and(|&b| b != 0),
        None => request.inputs[i].contents.as_ref().and_then(|c| c.bool_contents.first().copied()).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_model_adds_up() {
        let config = SimConfig {
            prefill_base_ms: 10.0,
            prefill_per_token_ms: 0.5,
            prefill_quadratic_ns: 1000.0,
            decode_ms: 2.0,
            decode_per_1k_context_ms: 1.0,
            decode_per_sequence_ms: 0.25,
            ..SimConfig::default()
        };
        // 10 + 0.5 * 100 + 1000 ns * 100^2 = 10 + 50 + 10 ms
        assert_eq!(config.prefill(100), Duration::from_millis(70));
        // 2 + 1 * 2000/1000 + 0.25 * 3
        assert_eq!(config.decode(2000, 4), Duration::from_micros(4750));
    }

    #[test]
    fn capacity_is_the_slots_over_one_sequences_time() {
        let config = SimConfig {
            prefill_base_ms: 10.0,
            prefill_per_token_ms: 0.05,
            prefill_quadratic_ns: 20.0,
            decode_ms: 2.0,
            decode_per_1k_context_ms: 1.5,
            decode_per_sequence_ms: 0.5,
            max_sequences: 8,
            ..SimConfig::default()
        };
        let (p, t, n) = (500.0, 64.0, 8.0);
        let prefill = 10.0 + 0.05 * p + 20.0 * p * p / 1e6;
        let decode = (t - 1.0) * (2.0 + 0.5 * (n - 1.0) + 1.5 * p / 1000.0) + 1.5 * t * (t - 1.0) / 2000.0;
        let expected = n / ((prefill + decode) / 1e3);
        let capacity = config.capacity_rps(500, 64);
        assert!((capacity - expected).abs() < 1e-6 * expected, "{capacity} against {expected}");
        // One token is all prefill.
        assert!((config.capacity_rps(500, 1) - n / (prefill / 1e3)).abs() < 1e-6);
        assert_eq!(SimConfig::default().capacity_rps(500, 64), f64::INFINITY);
    }

    #[test]
    fn streamed_responses_on_the_wire_are_the_messages_they_stand_for() {
        use prost::Message;
        for model in &MODELS {
            for (want_input_count, want_output_count) in [(false, false), (true, true), (true, false), (false, true)] {
                let ask = Ask {
                    id: "req-3".into(),
                    prompt: "a prompt".into(),
                    prompt_tokens: 2,
                    max_tokens: 8,
                    want_input_count,
                    want_output_count,
                    empty_final: true,
                };
                for (first, count, is_final) in [(0, 1, false), (3, 2, true)] {
                    let step = Step { generated: " so far", first, count, text: " new", is_final, claimed: None };
                    let mut expected = model.content(&ask, &step);
                    super::super::scheduler::stamp(&mut expected, 1_795_000_000_000_000_007);
                    let mut encoded = model.encoded_content(&model.head(&ask), &ask, &step);
                    encoded.stamp(1_795_000_000_000_000_007);
                    let decoded = pb::ModelStreamInferResponse::decode(encoded.as_bytes()).unwrap();
                    assert_eq!(decoded.error_message, "");
                    assert_eq!(decoded.infer_response.unwrap(), expected, "{} {first} {count}", model.name);
                }
            }
        }
    }

    #[test]
    fn requests_missing_inputs_are_refused_like_triton() {
        let model = find("sim-tutorial").unwrap();
        let request = pb::ModelInferRequest { id: "x".into(), ..Default::default() };
        let err = model.ask(&request, None).unwrap_err();
        assert!(err.contains("missing required input(s) [PROMPT, STREAM, SAMPLING_PARAMETERS]"), "{err}");
    }
}
