//! Model conventions: how the models of each input style name and type their tensors and how
//! their outputs read ([`Convention`], one per style), and with them detecting a model's
//! style, building its requests and reading its streamed responses. Building requests, reading
//! responses, the profile export and import and the simulator all take their tensor names and
//! rules from here.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use shared::{InputStyle, SweepSpec, limits};
use thiserror::Error;

use crate::bytes::encode_raw_one;
use crate::export::profile::TensorValue;
use crate::pb;
use crate::pb::infer_parameter::ParameterChoice;
use crate::pb::model_infer_request::InferInputTensor;
use crate::response::{Param, Response};

/// Response parameter in which a server (the simulator, or a test model) may put the time it
/// sent the response, nanoseconds since the Unix epoch; an INT64 output of the same name works too.
pub const SEND_TIME_KEY: &str = "send_ns";
/// Where a server may say when it received the request, in nanoseconds since the Unix epoch,
/// as a response parameter or an INT64 output (tokenscope's test models do).
pub const RECEIVE_TIME_KEY: &str = "recv_ns";

/// The vLLM backend's and TensorRT-LLM's prompt input.
const TEXT_INPUT: &str = "text_input";
/// The tutorial model's prompt input.
const PROMPT: &str = "PROMPT";
const STREAM: &str = "stream";
const TUTORIAL_STREAM: &str = "STREAM";
const SAMPLING_PARAMETERS: &str = "sampling_parameters";
const TUTORIAL_SAMPLING_PARAMETERS: &str = "SAMPLING_PARAMETERS";
/// TensorRT-LLM's output-length input; sampling parameters name theirs the same.
const MAX_TOKENS: &str = "max_tokens";
const MIN_TOKENS: &str = "min_tokens";
const MIN_LENGTH: &str = "min_length";
const EXCLUDE_INPUT_IN_OUTPUT: &str = "exclude_input_in_output";
/// vLLM's flags asking for the counts of input and output tokens.
pub const RETURN_NUM_INPUT_TOKENS: &str = "return_num_input_tokens";
pub const RETURN_NUM_OUTPUT_TOKENS: &str = "return_num_output_tokens";
const TEXT_OUTPUT: &str = "text_output";
/// The tutorial model's cumulative text output.
const TEXT: &str = "TEXT";
/// The output under which exports list a response's text whatever the run's style: records
/// hold each response's new text, which is how this output runs.
pub const DELTA_TEXT_OUTPUT: &str = TEXT_OUTPUT;
/// Outputs in which a server of any style may count tokens: the prompt's, the response's, and
/// the response's token ids (their number is its count).
pub const NUM_INPUT_TOKENS: &str = "num_input_tokens";
pub const NUM_OUTPUT_TOKENS: &str = "num_output_tokens";
pub const OUTPUT_IDS: &str = "output_ids";

/// A tensor datatype the conventions use, as the KServe protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Bool,
    Bytes,
    Int32,
    Int64,
    Uint32,
}

impl DataType {
    const ALL: [DataType; 5] = [Self::Bool, Self::Bytes, Self::Int32, Self::Int64, Self::Uint32];

    /// Its name in model metadata and requests.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::Bytes => "BYTES",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Uint32 => "UINT32",
        }
    }

    /// The datatype of that name, if it is one of these.
    pub fn of_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Its code in a model configuration.
    pub const fn config_code(self) -> pb::DataType {
        match self {
            Self::Bool => pb::DataType::TypeBool,
            Self::Bytes => pb::DataType::TypeString,
            Self::Int32 => pb::DataType::TypeInt32,
            Self::Int64 => pb::DataType::TypeInt64,
            Self::Uint32 => pb::DataType::TypeUint32,
        }
    }
}

/// A tensor as a convention's models declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    pub name: &'static str,
    pub datatype: DataType,
    /// Its dimensions, without a batch dimension.
    pub dims: &'static [i64],
    /// Whether a request may leave the input out.
    pub optional: bool,
}

const fn declared(name: &'static str, datatype: DataType, dims: &'static [i64], optional: bool) -> Declared {
    Declared { name, datatype, dims, optional }
}

/// Where a convention's requests ask for their number of output tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensInput {
    /// In a BYTES input holding sampling parameters as JSON ([`sampling_json`]).
    Sampling(&'static str),
    /// As an integer input of its own (INT32, or the INT64 or UINT32 a model declares).
    Int(&'static str),
}

impl MaxTokensInput {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sampling(name) | Self::Int(name) => name,
        }
    }
}

/// How a convention's text output runs over one request's responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextForm {
    /// Each response carries only its new text; the first may echo the prompt.
    Delta,
    /// Each response repeats all the text so far, prompt in front.
    Cumulative,
}

/// How the models of one input style are spoken to and read.
///
/// Tokens are counted the same way in every style: a server's count when it gives one
/// ([`NUM_OUTPUT_TOKENS`], else the number of [`OUTPUT_IDS`]), else [`tokens_without_count`].
#[derive(Debug, PartialEq, Eq)]
pub struct Convention {
    pub style: InputStyle,
    /// The BYTES input holding the prompt; a request's first input.
    pub prompt: &'static str,
    /// The BOOL input asking to stream, sent where the model declares it.
    pub stream: &'static str,
    pub max_tokens: MaxTokensInput,
    /// Integer inputs asking for at least `max_tokens` tokens, which stand in for ignore_eos:
    /// the first the model declares is sent.
    pub min_tokens: &'static [&'static str],
    /// BOOL inputs sent true where the model declares them.
    pub flags: &'static [&'static str],
    /// The BYTES output carrying the text, and how it runs.
    pub text_output: &'static str,
    pub text_form: TextForm,
    /// Whether the stack's models take a leading batch dimension.
    pub batched: bool,
    /// Whether a streaming model flags its last response in an empty response of its own.
    pub separate_final: bool,
    /// Whether one response may carry several tokens.
    pub several_tokens_per_response: bool,
    /// The inputs and outputs a model of the stack declares, in its order.
    pub inputs: &'static [Declared],
    pub outputs: &'static [Declared],
}

use DataType::{Bool, Bytes, Int32, Uint32};

const VLLM: Convention = Convention {
    style: InputStyle::Vllm,
    prompt: TEXT_INPUT,
    stream: STREAM,
    max_tokens: MaxTokensInput::Sampling(SAMPLING_PARAMETERS),
    min_tokens: &[],
    flags: &[EXCLUDE_INPUT_IN_OUTPUT, RETURN_NUM_INPUT_TOKENS, RETURN_NUM_OUTPUT_TOKENS],
    text_output: TEXT_OUTPUT,
    text_form: TextForm::Delta,
    batched: false,
    separate_final: false,
    several_tokens_per_response: false,
    inputs: &[
        declared(TEXT_INPUT, Bytes, &[1], false),
        declared(STREAM, Bool, &[1], true),
        declared(SAMPLING_PARAMETERS, Bytes, &[1], true),
        declared(EXCLUDE_INPUT_IN_OUTPUT, Bool, &[1], true),
        declared(RETURN_NUM_INPUT_TOKENS, Bool, &[1], true),
        declared(RETURN_NUM_OUTPUT_TOKENS, Bool, &[1], true),
    ],
    outputs: &[
        declared(TEXT_OUTPUT, Bytes, &[-1], false),
        declared(NUM_INPUT_TOKENS, Uint32, &[1], false),
        declared(NUM_OUTPUT_TOKENS, Uint32, &[1], false),
    ],
};

const TUTORIAL: Convention = Convention {
    style: InputStyle::Tutorial,
    prompt: PROMPT,
    stream: TUTORIAL_STREAM,
    max_tokens: MaxTokensInput::Sampling(TUTORIAL_SAMPLING_PARAMETERS),
    min_tokens: &[],
    flags: &[],
    text_output: TEXT,
    text_form: TextForm::Cumulative,
    batched: false,
    separate_final: true,
    several_tokens_per_response: false,
    inputs: &[
        declared(PROMPT, Bytes, &[1], false),
        declared(TUTORIAL_STREAM, Bool, &[1], false),
        declared(TUTORIAL_SAMPLING_PARAMETERS, Bytes, &[1], false),
    ],
    outputs: &[declared(TEXT, Bytes, &[-1], false)],
};

const TRTLLM: Convention = Convention {
    style: InputStyle::Trtllm,
    prompt: TEXT_INPUT,
    stream: STREAM,
    max_tokens: MaxTokensInput::Int(MAX_TOKENS),
    min_tokens: &[MIN_TOKENS, MIN_LENGTH],
    flags: &[],
    text_output: TEXT_OUTPUT,
    text_form: TextForm::Delta,
    batched: true,
    separate_final: true,
    several_tokens_per_response: true,
    inputs: &[
        declared(TEXT_INPUT, Bytes, &[1], false),
        declared(MAX_TOKENS, Int32, &[1], false),
        declared(STREAM, Bool, &[1], true),
        declared(MIN_TOKENS, Int32, &[1], true),
    ],
    outputs: &[declared(TEXT_OUTPUT, Bytes, &[-1], false), declared(OUTPUT_IDS, Int32, &[-1], false)],
};

/// The most outputs a convention declares.
pub const MAX_OUTPUTS: usize = 3;

const _: () = {
    let mut i = 0;
    while i < Convention::ALL.len() {
        assert!(Convention::ALL[i].outputs.len() <= MAX_OUTPUTS);
        i += 1;
    }
};

impl Convention {
    /// Every convention, in the order of [`InputStyle::ALL`].
    pub const ALL: [&'static Convention; 3] = [&VLLM, &TUTORIAL, &TRTLLM];

    /// The convention of `style`. `auto`, before it is resolved, speaks vLLM's.
    pub fn of(style: InputStyle) -> &'static Convention {
        match style {
            InputStyle::Auto | InputStyle::Vllm => &VLLM,
            InputStyle::Tutorial => &TUTORIAL,
            InputStyle::Trtllm => &TRTLLM,
        }
    }

    /// The inputs a model must declare to be spoken to in this convention.
    pub fn required_inputs(&self) -> [&'static str; 2] {
        [self.prompt, self.max_tokens.name()]
    }

    /// The input of that name.
    pub fn input(&self, name: &str) -> Option<&'static Declared> {
        self.inputs.iter().find(|t| t.name == name)
    }
}

/// Sampling parameters as vLLM-style models take them, in JSON: written with a count and a
/// flag, read with whatever each field holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplingParameters<N = u32, B = bool> {
    #[serde(default)]
    pub max_tokens: N,
    #[serde(default)]
    pub ignore_eos: B,
}

/// Sampling parameters as a request may hold them: JSON whose fields may be of any type.
pub type AskedSampling = SamplingParameters<Option<TensorValue>, Option<TensorValue>>;

/// The sampling parameters vLLM-style models take, as JSON.
pub fn sampling_json(max_tokens: u32, ignore_eos: bool) -> String {
    serde_json::to_string(&SamplingParameters { max_tokens, ignore_eos }).expect("two plain fields serialize")
}

/// Reads sampling parameters: what their JSON holds (nothing, where it is not an object), or
/// why the text is not JSON.
pub fn read_sampling(json: &[u8]) -> Result<AskedSampling, serde_json::Error> {
    serde_json::from_slice(json)
        .or_else(|_| serde_json::from_slice::<serde::de::IgnoredAny>(json).map(|_| AskedSampling::default()))
}

/// What is new in each of one request's texts: a delta text less the prompt its first may
/// echo, a cumulative text less the prompt in front and what came before.
#[derive(Debug, Clone, Default)]
pub struct NewText {
    /// The prompt, where it is to be taken off; a delta text's is dropped after the first.
    prompt: Option<String>,
    /// Cumulative texts: the whole text so far, prompt removed.
    seen: String,
}

impl NewText {
    /// Taking the prompt (where given) off the texts that repeat it.
    pub fn new(prompt: Option<String>) -> Self {
        Self { prompt, seen: String::new() }
    }

    /// The new part of the next text, which runs as `form` says.
    pub fn take(&mut self, mut text: String, form: TextForm) -> String {
        if text.is_empty() {
            return text;
        }
        if form == TextForm::Delta {
            // Delta outputs: only the first text may echo the prompt.
            return match self.prompt.take() {
                Some(prompt) if text.starts_with(&prompt) => text.split_off(prompt.len()),
                _ => text,
            };
        }
        if let Some(prompt) = &self.prompt
            && text.starts_with(prompt.as_str())
        {
            text.drain(..prompt.len());
        }
        if text.starts_with(&self.seen) {
            let new = text.split_off(self.seen.len());
            self.seen.push_str(&new);
            return new;
        }
        // Not an extension of what came before: take it whole.
        self.seen.clone_from(&text);
        text
    }
}

/// The tokens of a response whose server gave no count, from its new text, and whether they
/// are its words: a whole answer (no streaming) counts its words, at least one; a streamed
/// response counts one when it has text.
pub fn tokens_without_count(text: &str, whole_answer: bool) -> (u32, bool) {
    if whole_answer && !text.is_empty() {
        ((text.split_whitespace().count() as u32).max(1), true)
    } else {
        (u32::from(!text.is_empty()), false)
    }
}
/// A tensor as a model declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSig {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

impl std::fmt::Display for TensorSig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} {:?}", self.name, self.datatype, self.shape)
    }
}

/// What a model declares: its tensors from ModelMetadata and, when the server gives its
/// configuration, batching and the decoupled flag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelSignature {
    pub name: String,
    pub versions: Vec<String>,
    pub inputs: Vec<TensorSig>,
    pub outputs: Vec<TensorSig>,
    /// `None` when the server did not give the configuration.
    pub max_batch_size: Option<i32>,
    pub decoupled: Option<bool>,
}

impl ModelSignature {
    pub fn from_pb(meta: &pb::ModelMetadataResponse, config: Option<&pb::ModelConfig>) -> Self {
        let sig = |t: &pb::model_metadata_response::TensorMetadata| TensorSig {
            name: t.name.clone(),
            datatype: t.datatype.clone(),
            shape: t.shape.clone(),
        };
        Self {
            name: meta.name.clone(),
            versions: meta.versions.clone(),
            inputs: meta.inputs.iter().map(sig).collect(),
            outputs: meta.outputs.iter().map(sig).collect(),
            max_batch_size: config.map(|c| c.max_batch_size),
            decoupled: config.map(|c| c.model_transaction_policy.is_some_and(|p| p.decoupled)),
        }
    }

    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|t| t.name == name)
    }

    fn input(&self, name: &str) -> Option<&TensorSig> {
        self.inputs.iter().find(|t| t.name == name)
    }

    /// Whether requests need a leading batch dimension. Without the configuration, a
    /// variable first dimension on a rank-2 text input is taken as one.
    pub fn batched(&self) -> bool {
        match self.max_batch_size {
            Some(n) => n > 0,
            None => self.inputs.iter().any(|t| {
                Convention::ALL.iter().any(|c| c.batched && c.prompt == t.name)
                    && t.shape.len() >= 2
                    && t.shape[0] == -1
            }),
        }
    }

    fn input_list(&self) -> String {
        self.inputs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StyleError {
    #[error("model '{model}' has inputs {inputs}, which match no known LLM convention; tokenscope speaks {known}")]
    NoMatch { model: String, inputs: String, known: String },
    #[error("model '{model}' lacks input(s) {missing} needed by the {style} style; its inputs are {inputs}")]
    Missing { model: String, style: InputStyle, missing: String, inputs: String },
}

/// Every convention with the inputs its requests carry, for messages: "vllm (a, b), ... and trtllm (c, d)".
fn known_conventions() -> String {
    let each: Vec<String> = Convention::ALL
        .iter()
        .map(|c| {
            let mut names = vec![c.prompt];
            if let MaxTokensInput::Int(name) = c.max_tokens {
                names.push(name);
            }
            names.push(c.stream);
            if let MaxTokensInput::Sampling(name) = c.max_tokens {
                names.push(name);
            }
            format!("{} ({})", c.style, names.join(", "))
        })
        .collect();
    let (last, rest) = each.split_last().expect("conventions");
    format!("{} and {last}", rest.join(", "))
}

/// Picks the style for a model: the asked one after checking the model has its inputs, or,
/// for `auto`, the one its inputs match.
pub fn resolve_style(sig: &ModelSignature, asked: InputStyle) -> Result<InputStyle, StyleError> {
    let style = match asked {
        InputStyle::Auto => [&TUTORIAL, &VLLM, &TRTLLM]
            .into_iter()
            .find(|c| c.required_inputs().iter().all(|name| sig.has_input(name)))
            .map(|c| c.style)
            .ok_or_else(|| StyleError::NoMatch {
                model: sig.name.clone(),
                inputs: sig.input_list(),
                known: known_conventions(),
            })?,
        InputStyle::Vllm | InputStyle::Tutorial | InputStyle::Trtllm => asked,
    };
    let missing: Vec<&str> =
        Convention::of(style).required_inputs().into_iter().filter(|n| !sig.has_input(n)).collect();
    if !missing.is_empty() {
        return Err(StyleError::Missing {
            model: sig.name.clone(),
            style,
            missing: missing.join(", "),
            inputs: sig.input_list(),
        });
    }
    Ok(style)
}

/// Everything needed to build a model's requests, worked out once per run.
#[derive(Debug, Clone)]
pub struct RequestPlan {
    pub style: InputStyle,
    template: pb::ModelInferRequest,
    convention: &'static Convention,
    streaming: bool,
    /// The `max_tokens` the template asks for, and the inputs that carry it, each with how.
    max_tokens: u32,
    carries_max_tokens: Vec<(usize, Carrier)>,
}

/// How an input carries a request's `max_tokens`.
#[derive(Debug, Clone, Copy)]
enum Carrier {
    /// In the sampling parameters' JSON, beside `ignore_eos`.
    Sampling { ignore_eos: bool },
    /// As an integer of its own (`max_tokens`, or TensorRT-LLM's `min_tokens` for ignore_eos).
    Int { int64: bool },
}

impl Carrier {
    fn bytes(self, max_tokens: u32) -> Vec<u8> {
        match self {
            Carrier::Sampling { ignore_eos } => encode_raw_one(sampling_json(max_tokens, ignore_eos).as_bytes()),
            Carrier::Int { int64: true } => i64::from(max_tokens).to_le_bytes().to_vec(),
            Carrier::Int { int64: false } => max_tokens.to_le_bytes().to_vec(),
        }
    }
}

impl RequestPlan {
    /// Plans requests for `sig` in `style` (not `auto`), as `spec` asks: its version,
    /// max_tokens, ignore_eos, and whether to stream.
    pub fn new(sig: &ModelSignature, style: InputStyle, spec: &SweepSpec) -> Self {
        let (max_tokens, ignore_eos) = (spec.max_tokens, spec.ignore_eos);
        let stream = vec![u8::from(spec.streaming)];
        let batched = sig.batched();
        let shape = if batched { vec![1, 1] } else { vec![1] };
        let mut inputs = Vec::new();
        let mut raw = Vec::new();
        let mut carries_max_tokens = Vec::new();
        let sampling_carrier = Carrier::Sampling { ignore_eos };
        let int_carrier = |name: &str| Carrier::Int { int64: int_type(sig, name) == DataType::Int64 };
        let mut push = |name: &str, datatype: DataType, bytes: Vec<u8>, carrier: Option<Carrier>| {
            if let Some(carrier) = carrier {
                carries_max_tokens.push((raw.len(), carrier));
            }
            inputs.push(InferInputTensor {
                name: name.into(),
                datatype: datatype.name().into(),
                shape: shape.clone(),
                ..Default::default()
            });
            raw.push(bytes);
        };
        let convention = Convention::of(style);
        push(convention.prompt, DataType::Bytes, Vec::new(), None);
        if let MaxTokensInput::Int(name) = convention.max_tokens {
            push(name, int_type(sig, name), int_bytes(sig, name, max_tokens), Some(int_carrier(name)));
        }
        if sig.has_input(convention.stream) {
            push(convention.stream, DataType::Bool, stream, None);
        }
        if let MaxTokensInput::Sampling(name) = convention.max_tokens {
            let sampling = sampling_json(max_tokens, ignore_eos);
            push(name, DataType::Bytes, encode_raw_one(sampling.as_bytes()), Some(sampling_carrier));
        }
        for &flag in convention.flags.iter().filter(|flag| sig.has_input(flag)) {
            push(flag, DataType::Bool, vec![1], None);
        }
        // Without an ignore_eos of its own, asking for at least max_tokens has the same effect.
        if ignore_eos && let Some(&name) = convention.min_tokens.iter().find(|n| sig.has_input(n)) {
            push(name, int_type(sig, name), int_bytes(sig, name, max_tokens), Some(int_carrier(name)));
        }
        let mut parameters = HashMap::new();
        if spec.streaming {
            parameters.insert(
                "triton_enable_empty_final_response".to_string(),
                pb::InferParameter { parameter_choice: Some(ParameterChoice::BoolParam(true)) },
            );
        }
        let template = pb::ModelInferRequest {
            model_name: sig.name.clone(),
            model_version: spec.model_version.clone().unwrap_or_default(),
            parameters,
            inputs,
            raw_input_contents: raw,
            ..Default::default()
        };
        Self { style, template, convention, streaming: spec.streaming, max_tokens, carries_max_tokens }
    }

    /// The request for one prompt asking for `max_tokens` (the prompt is always the first
    /// input).
    pub fn request(&self, id: String, prompt: &str, max_tokens: u32) -> pb::ModelInferRequest {
        let mut request = self.template.clone();
        request.id = id;
        request.raw_input_contents[0] = encode_raw_one(prompt.as_bytes());
        if max_tokens != self.max_tokens {
            for &(input, carrier) in &self.carries_max_tokens {
                request.raw_input_contents[input] = carrier.bytes(max_tokens);
            }
        }
        request
    }

    /// The convention the requests follow.
    pub fn convention(&self) -> &'static Convention {
        self.convention
    }

    /// A fresh reader for one request's responses.
    pub fn reader(&self, prompt: &str) -> ResponseReader {
        ResponseReader {
            whole_answers: !self.streaming,
            first: true,
            text_output: self.convention.text_output,
            text_form: self.convention.text_form,
            new_text: NewText::new(Some(prompt.to_string())),
        }
    }
}

/// The datatype of a model's integer input: the INT64 or UINT32 it declares, else INT32.
fn int_type(sig: &ModelSignature, name: &str) -> DataType {
    match sig.input(name).and_then(|t| DataType::of_name(&t.datatype)) {
        Some(datatype @ (DataType::Int64 | DataType::Uint32)) => datatype,
        Some(DataType::Bool | DataType::Bytes | DataType::Int32) | None => DataType::Int32,
    }
}

fn int_bytes(sig: &ModelSignature, name: &str, value: u32) -> Vec<u8> {
    match int_type(sig, name) {
        DataType::Int64 => i64::from(value).to_le_bytes().to_vec(),
        DataType::Bool | DataType::Bytes | DataType::Int32 | DataType::Uint32 => value.to_le_bytes().to_vec(),
    }
}

/// A time the server put in a response, as a parameter or as an integer output.
fn server_time(response: &Response, key: &str) -> Option<i64> {
    match response.parameter(key) {
        Some(Param::Int(ns)) => Some(ns),
        Some(Param::Uint(ns)) => Some(ns as i64),
        _ => response.output_ints(key).and_then(|v| v.first().copied()),
    }
}

/// What one streamed response says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub error: Option<String>,
    /// The token count was estimated from the text's words.
    pub words_counted: bool,
    pub is_final: bool,
    /// New text (cumulative outputs reduced to their new part).
    pub text: String,
    pub tokens: u32,
    /// Whether `tokens` came from the server rather than from counting responses.
    pub server_counted: bool,
    pub num_input_tokens: Option<u32>,
    pub server_send_unix_ns: Option<i64>,
    pub server_recv_unix_ns: Option<i64>,
}

/// Reads one request's responses in order, keeping what cumulative outputs need.
#[derive(Debug, Clone)]
pub struct ResponseReader {
    /// Each response carries a whole answer (no streaming).
    whole_answers: bool,
    /// The server's receive time is a request's, so only its first response is searched for it.
    first: bool,
    text_output: &'static str,
    text_form: TextForm,
    /// Takes off the prompt, which cumulative outputs may repeat in front of every text and
    /// delta outputs in front of the first, and cumulative outputs' text so far.
    new_text: NewText,
}

impl ResponseReader {
    /// Reads a response. `error_message` responses carry no parameters and are final.
    pub fn read(&mut self, response: &Response) -> Parsed {
        let mut parsed = Parsed::default();
        if !response.has_infer_response() || !response.error_message().is_empty() {
            parsed.error = Some(server_error(&response.error_message()));
            parsed.is_final = true;
            return parsed;
        }
        parsed.is_final = match response.parameter("triton_final_response") {
            Some(Param::Bool(b)) => b,
            // A server that does not flag finals answers once per request.
            _ => true,
        };
        parsed.server_send_unix_ns = server_time(response, SEND_TIME_KEY);
        if std::mem::take(&mut self.first) {
            parsed.server_recv_unix_ns = server_time(response, RECEIVE_TIME_KEY);
        }
        let text = response.output_text(self.text_output).unwrap_or_default();
        parsed.text = self.new_text.take(text, self.text_form);
        parsed.num_input_tokens =
            response.output_ints(NUM_INPUT_TOKENS).and_then(|v| v.first().copied()).map(|n| n as u32);
        let server_count = response
            .output_ints(NUM_OUTPUT_TOKENS)
            .and_then(|v| v.first().copied())
            .or_else(|| response.output_ints(OUTPUT_IDS).map(|ids| ids.len() as i64));
        match server_count {
            Some(n) => {
                // A count past u32 reads as u32::MAX, which is past the cap, never as a wrapped one.
                parsed.tokens = n.clamp(0, i64::from(u32::MAX)) as u32;
                parsed.server_counted = true;
            }
            None => (parsed.tokens, parsed.words_counted) = tokens_without_count(&parsed.text, self.whole_answers),
        }
        parsed
    }
}

/// Whether a response is its request's last, as [`ResponseReader::read`] decides, without
/// reading anything else.
pub fn is_final(response: &Response) -> bool {
    if !response.has_infer_response() || response.has_error_message() {
        return true;
    }
    !matches!(response.parameter("triton_final_response"), Some(Param::Bool(false)))
}

/// A server's error message, cut to [`limits::MAX_ERROR_BYTES`] (at a character's start).
pub fn server_error(message: &str) -> String {
    if message.is_empty() {
        return "the server reported an error without a message".into();
    }
    if message.len() <= limits::MAX_ERROR_BYTES {
        return message.into();
    }
    format!("{}… (cut at {} bytes)", limits::cut_at_char(message, limits::MAX_ERROR_BYTES), limits::MAX_ERROR_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::decode_raw;
    use crate::pb::model_infer_response::InferOutputTensor;

    fn t(name: &str, datatype: &str, shape: &[i64]) -> TensorSig {
        TensorSig { name: name.into(), datatype: datatype.into(), shape: shape.to_vec() }
    }

    /// Signatures as Triton reports them for the three model families (ModelMetadata shapes).
    fn vllm() -> ModelSignature {
        ModelSignature {
            name: "vllm_model".into(),
            inputs: vec![
                t("text_input", "BYTES", &[1]),
                t("stream", "BOOL", &[1]),
                t("sampling_parameters", "BYTES", &[1]),
                t("exclude_input_in_output", "BOOL", &[1]),
                t("return_num_output_tokens", "BOOL", &[1]),
            ],
            outputs: vec![t("text_output", "BYTES", &[-1]), t("num_output_tokens", "UINT32", &[1])],
            max_batch_size: Some(0),
            decoupled: Some(true),
            ..Default::default()
        }
    }

    fn tutorial() -> ModelSignature {
        ModelSignature {
            name: "vllm".into(),
            inputs: vec![
                t("PROMPT", "BYTES", &[1]),
                t("STREAM", "BOOL", &[1]),
                t("SAMPLING_PARAMETERS", "BYTES", &[1]),
            ],
            outputs: vec![t("TEXT", "BYTES", &[-1])],
            max_batch_size: Some(0),
            decoupled: Some(true),
            ..Default::default()
        }
    }

    fn trtllm() -> ModelSignature {
        ModelSignature {
            name: "ensemble".into(),
            inputs: vec![
                t("text_input", "BYTES", &[-1, 1]),
                t("max_tokens", "INT32", &[-1, 1]),
                t("bad_words", "BYTES", &[-1, -1]),
                t("stop_words", "BYTES", &[-1, -1]),
                t("end_id", "INT32", &[-1, 1]),
                t("min_tokens", "INT32", &[-1, 1]),
                t("stream", "BOOL", &[-1, 1]),
            ],
            outputs: vec![t("text_output", "BYTES", &[-1, -1])],
            max_batch_size: None,
            decoupled: None,
            ..Default::default()
        }
    }

    #[test]
    fn each_convention_is_its_styles_and_declares_what_it_needs() {
        for style in InputStyle::ALL {
            let convention = Convention::of(style);
            assert!(convention.style == style || style == InputStyle::Auto, "{style}");
            for name in convention.required_inputs().into_iter().chain([convention.stream]) {
                assert!(convention.input(name).is_some(), "{style} {name}");
            }
            assert!(convention.outputs.iter().any(|o| o.name == convention.text_output), "{style}");
        }
    }

    #[test]
    fn auto_detects_each_family() {
        assert_eq!(resolve_style(&vllm(), InputStyle::Auto), Ok(InputStyle::Vllm));
        assert_eq!(resolve_style(&tutorial(), InputStyle::Auto), Ok(InputStyle::Tutorial));
        assert_eq!(resolve_style(&trtllm(), InputStyle::Auto), Ok(InputStyle::Trtllm));
        assert!(trtllm().batched(), "a [-1, 1] text input means a batch dimension");
        assert!(!vllm().batched());
    }

    #[test]
    fn unknown_inputs_are_listed() {
        let sig = ModelSignature {
            name: "resnet".into(),
            inputs: vec![t("INPUT0", "FP32", &[3, 224, 224])],
            ..Default::default()
        };
        let err = resolve_style(&sig, InputStyle::Auto).unwrap_err().to_string();
        assert!(err.contains("INPUT0: FP32 [3, 224, 224]"), "{err}");
        let err = resolve_style(&vllm(), InputStyle::Tutorial).unwrap_err().to_string();
        assert!(err.contains("lacks input(s) PROMPT, SAMPLING_PARAMETERS"), "{err}");
    }

    fn asked(max_tokens: u32, ignore_eos: bool) -> SweepSpec {
        SweepSpec { max_tokens, ignore_eos, ..SweepSpec::default() }
    }

    #[test]
    fn non_streaming_requests_ask_for_one_response() {
        let spec = SweepSpec { streaming: false, ..asked(4, false) };
        let req = RequestPlan::new(&vllm(), InputStyle::Vllm, &spec).request("1".into(), "x", 4);
        let i = req.inputs.iter().position(|i| i.name == "stream").unwrap();
        assert_eq!(req.raw_input_contents[i], [0]);
        assert!(req.parameters.is_empty(), "no empty final response is asked for");
        let req = RequestPlan::new(&tutorial(), InputStyle::Tutorial, &spec).request("1".into(), "x", 4);
        let i = req.inputs.iter().position(|i| i.name == "STREAM").unwrap();
        assert_eq!(req.raw_input_contents[i], [0]);
    }

    #[test]
    fn a_whole_answer_without_a_server_count_counts_its_words() {
        let spec = SweepSpec { streaming: false, ..asked(4, false) };
        let plan = RequestPlan::new(&tutorial(), InputStyle::Tutorial, &spec);
        let text = |s: &str| vec![("TEXT", "BYTES", encode_raw_one(s.as_bytes()))];
        let parsed = plan.reader("say hi").read(&response("1", None, text("say hi one two three")));
        assert_eq!((parsed.tokens, parsed.words_counted, parsed.is_final), (3, true, true));
        // Streaming: one token per response, as before.
        let parsed = plan_streaming().reader("p").read(&response("1", Some(false), text("p one two")));
        assert_eq!((parsed.tokens, parsed.words_counted), (1, false));
    }

    fn plan_streaming() -> RequestPlan {
        RequestPlan::new(&tutorial(), InputStyle::Tutorial, &asked(4, false))
    }

    #[test]
    fn trtllm_requests_carry_batch_dim_and_min_tokens() {
        let plan = RequestPlan::new(&trtllm(), InputStyle::Trtllm, &asked(256, true));
        let req = plan.request("7".into(), "hi there", 256);
        let names: Vec<&str> = req.inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["text_input", "max_tokens", "stream", "min_tokens"]);
        assert!(req.inputs.iter().all(|i| i.shape == [1, 1]));
        assert_eq!(req.raw_input_contents[0], encode_raw_one(b"hi there"));
        assert_eq!(req.raw_input_contents[1], 256u32.to_le_bytes());
        assert_eq!(req.raw_input_contents[3], 256u32.to_le_bytes());
        assert_eq!(req.id, "7");
        // A request of its own length asks for it, at least and at most.
        let req = plan.request("8".into(), "hi", 40);
        assert_eq!(
            (&req.raw_input_contents[1], &req.raw_input_contents[3]),
            (&40u32.to_le_bytes().to_vec(), &40u32.to_le_bytes().to_vec())
        );
        assert!(matches!(
            req.parameters["triton_enable_empty_final_response"].parameter_choice,
            Some(ParameterChoice::BoolParam(true))
        ));
    }

    #[test]
    fn vllm_requests_carry_sampling_json() {
        let plan = RequestPlan::new(
            &vllm(),
            InputStyle::Vllm,
            &SweepSpec { model_version: Some("1".into()), ..asked(1, false) },
        );
        let req = plan.request("a".into(), "x", 1);
        let i = req.inputs.iter().position(|i| i.name == "sampling_parameters").unwrap();
        let json = decode_raw(&req.raw_input_contents[i]).unwrap()[0];
        assert_eq!(json, br#"{"max_tokens":1,"ignore_eos":false}"#);
        let req = plan.request("b".into(), "x", 17);
        assert_eq!(decode_raw(&req.raw_input_contents[i]).unwrap()[0], br#"{"max_tokens":17,"ignore_eos":false}"#);
        assert_eq!(req.model_version, "1");
        assert!(req.inputs.iter().all(|i| i.shape == [1]));
    }

    fn response(id: &str, final_: Option<bool>, outputs: Vec<(&str, &str, Vec<u8>)>) -> Response {
        Response::from_message(&message(id, final_, outputs))
    }

    fn message(id: &str, final_: Option<bool>, outputs: Vec<(&str, &str, Vec<u8>)>) -> pb::ModelStreamInferResponse {
        let mut parameters = HashMap::new();
        if let Some(f) = final_ {
            parameters.insert(
                "triton_final_response".to_string(),
                pb::InferParameter { parameter_choice: Some(ParameterChoice::BoolParam(f)) },
            );
        }
        pb::ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(pb::ModelInferResponse {
                id: id.into(),
                parameters,
                outputs: outputs
                    .iter()
                    .map(|(name, datatype, _)| InferOutputTensor {
                        name: (*name).into(),
                        datatype: (*datatype).into(),
                        ..Default::default()
                    })
                    .collect(),
                raw_output_contents: outputs.into_iter().map(|(_, _, raw)| raw).collect(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn cumulative_text_counts_only_new_text() {
        let plan = RequestPlan::new(&tutorial(), InputStyle::Tutorial, &asked(3, false));
        let mut reader = plan.reader("say hi");
        let text = |s: &str| vec![("TEXT", "BYTES", encode_raw_one(s.as_bytes()))];
        let a = reader.read(&response("1", Some(false), text("say hi Hello")));
        let b = reader.read(&response("1", Some(false), text("say hi Hello world")));
        let end = reader.read(&response("1", Some(true), vec![]));
        assert_eq!((a.text.as_str(), a.tokens), (" Hello", 1));
        assert_eq!((b.text.as_str(), b.tokens), (" world", 1));
        assert_eq!((end.tokens, end.is_final), (0, true), "an empty final response is not a token");
    }

    #[test]
    fn server_counts_win_over_response_counts() {
        let plan = RequestPlan::new(&trtllm(), InputStyle::Trtllm, &asked(8, false));
        let mut reader = plan.reader("p");
        let ids: Vec<u8> = [11i32, 12].iter().flat_map(|v| v.to_le_bytes()).collect();
        let r = reader.read(&response(
            "9",
            Some(false),
            vec![("text_output", "BYTES", encode_raw_one(b" a b")), ("output_ids", "INT32", ids)],
        ));
        assert_eq!((r.tokens, r.server_counted, r.text.as_str()), (2, true, " a b"));
    }

    #[test]
    fn contents_form_is_read_too() {
        let mut message = message("1", Some(true), vec![]);
        let infer = message.infer_response.as_mut().unwrap();
        infer.outputs.push(InferOutputTensor {
            name: "text_output".into(),
            datatype: "BYTES".into(),
            shape: vec![1],
            contents: Some(pb::InferTensorContents { bytes_contents: vec![b"tok".to_vec()], ..Default::default() }),
            ..Default::default()
        });
        let plan = RequestPlan::new(&vllm(), InputStyle::Vllm, &asked(1, false));
        let parsed = plan.reader("p").read(&Response::from_message(&message));
        assert_eq!((parsed.text.as_str(), parsed.tokens, parsed.is_final), ("tok", 1, true));
    }

    #[test]
    fn errors_are_final_and_missing_flags_mean_final() {
        let plan = RequestPlan::new(&vllm(), InputStyle::Vllm, &asked(1, false));
        let err = Response::from_message(&pb::ModelStreamInferResponse {
            error_message: "boom".into(),
            infer_response: None,
        });
        let parsed = plan.reader("p").read(&err);
        assert_eq!((parsed.error.as_deref(), parsed.is_final), (Some("boom"), true));
        let parsed = plan.reader("p").read(&response("1", None, vec![]));
        assert!(parsed.is_final);
    }
}
