//! Model conventions: which style a model speaks, how to build its requests and how to
//! read its streamed responses.

use std::collections::HashMap;

use shared::{InputStyle, SweepSpec, limits};
use thiserror::Error;

use crate::bytes::encode_raw_one;
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
            None => self
                .inputs
                .iter()
                .find(|t| t.name == "text_input")
                .is_some_and(|t| t.shape.len() >= 2 && t.shape[0] == -1),
        }
    }

    fn input_list(&self) -> String {
        self.inputs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StyleError {
    #[error(
        "model '{model}' has inputs {inputs}, which match no known LLM convention; tokenscope speaks \
         vllm (text_input, stream, sampling_parameters), tutorial (PROMPT, STREAM, SAMPLING_PARAMETERS) \
         and trtllm (text_input, max_tokens)"
    )]
    NoMatch { model: String, inputs: String },
    #[error("model '{model}' lacks input(s) {missing} needed by the {style} style; its inputs are {inputs}")]
    Missing { model: String, style: InputStyle, missing: String, inputs: String },
}

/// The inputs each style needs.
fn required_inputs(style: InputStyle) -> &'static [&'static str] {
    match style {
        InputStyle::Auto => &[],
        InputStyle::Vllm => &["text_input", "sampling_parameters"],
        InputStyle::Tutorial => &["PROMPT", "SAMPLING_PARAMETERS"],
        InputStyle::Trtllm => &["text_input", "max_tokens"],
    }
}

/// Picks the style for a model: the asked one after checking the model has its inputs, or,
/// for `auto`, the one its inputs match.
pub fn resolve_style(sig: &ModelSignature, asked: InputStyle) -> Result<InputStyle, StyleError> {
    let style = match asked {
        InputStyle::Auto => [InputStyle::Tutorial, InputStyle::Vllm, InputStyle::Trtllm]
            .into_iter()
            .find(|&s| required_inputs(s).iter().all(|name| sig.has_input(name)))
            .ok_or_else(|| StyleError::NoMatch { model: sig.name.clone(), inputs: sig.input_list() })?,
        other => other,
    };
    let missing: Vec<&str> = required_inputs(style).iter().copied().filter(|n| !sig.has_input(n)).collect();
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

/// The sampling parameters vLLM-style models take, as JSON.
pub fn sampling_json(max_tokens: u32, ignore_eos: bool) -> String {
    format!(r#"{{"max_tokens":{max_tokens},"ignore_eos":{ignore_eos}}}"#)
}

/// Everything needed to build a model's requests, worked out once per run.
#[derive(Debug, Clone)]
pub struct RequestPlan {
    pub style: InputStyle,
    template: pb::ModelInferRequest,
    /// Name of the output carrying text.
    text_output: &'static str,
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
        let int_carrier = |name: &str| Carrier::Int { int64: int_type(sig, name) == "INT64" };
        let mut push = |name: &str, datatype: &str, bytes: Vec<u8>, carrier: Option<Carrier>| {
            if let Some(carrier) = carrier {
                carries_max_tokens.push((raw.len(), carrier));
            }
            inputs.push(InferInputTensor {
                name: name.into(),
                datatype: datatype.into(),
                shape: shape.clone(),
                ..Default::default()
            });
            raw.push(bytes);
        };
        let sampling = sampling_json(max_tokens, ignore_eos);
        let text_output = match style {
            InputStyle::Vllm | InputStyle::Auto => {
                push("text_input", "BYTES", Vec::new(), None);
                if sig.has_input("stream") {
                    push("stream", "BOOL", stream.clone(), None);
                }
                push("sampling_parameters", "BYTES", encode_raw_one(sampling.as_bytes()), Some(sampling_carrier));
                for flag in ["exclude_input_in_output", "return_num_input_tokens", "return_num_output_tokens"] {
                    if sig.has_input(flag) {
                        push(flag, "BOOL", vec![1], None);
                    }
                }
                "text_output"
            }
            InputStyle::Tutorial => {
                push("PROMPT", "BYTES", Vec::new(), None);
                if sig.has_input("STREAM") {
                    push("STREAM", "BOOL", stream.clone(), None);
                }
                push("SAMPLING_PARAMETERS", "BYTES", encode_raw_one(sampling.as_bytes()), Some(sampling_carrier));
                "TEXT"
            }
            InputStyle::Trtllm => {
                push("text_input", "BYTES", Vec::new(), None);
                let carrier = Some(int_carrier("max_tokens"));
                push("max_tokens", int_type(sig, "max_tokens"), int_bytes(sig, "max_tokens", max_tokens), carrier);
                if sig.has_input("stream") {
                    push("stream", "BOOL", stream.clone(), None);
                }
                // TensorRT-LLM has no ignore_eos: asking for at least max_tokens has the same effect.
                if ignore_eos && let Some(name) = ["min_tokens", "min_length"].into_iter().find(|n| sig.has_input(n)) {
                    push(name, int_type(sig, name), int_bytes(sig, name, max_tokens), Some(int_carrier(name)));
                }
                "text_output"
            }
        };
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
        Self { style, template, text_output, streaming: spec.streaming, max_tokens, carries_max_tokens }
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

    /// A fresh reader for one request's responses.
    pub fn reader(&self, prompt: &str) -> ResponseReader {
        ResponseReader {
            whole_answers: !self.streaming,
            first: true,
            cumulative: self.style == InputStyle::Tutorial,
            text_output: self.text_output,
            prompt: Some(prompt.to_string()),
            seen: String::new(),
        }
    }
}

fn int_type(sig: &ModelSignature, name: &str) -> &'static str {
    match sig.input(name).map(|t| t.datatype.as_str()) {
        Some("INT64") => "INT64",
        Some("UINT32") => "UINT32",
        _ => "INT32",
    }
}

fn int_bytes(sig: &ModelSignature, name: &str, value: u32) -> Vec<u8> {
    match int_type(sig, name) {
        "INT64" => i64::from(value).to_le_bytes().to_vec(),
        _ => value.to_le_bytes().to_vec(),
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
    cumulative: bool,
    text_output: &'static str,
    /// The prompt: cumulative outputs may repeat it in front of every text, delta outputs in
    /// front of the first (then it is dropped).
    prompt: Option<String>,
    /// Cumulative styles: the whole text so far, prompt removed.
    seen: String,
}

impl ResponseReader {
    /// Reads a response. `error_message` responses carry no parameters and are final.
    pub fn read(&mut self, response: &Response) -> Parsed {
        let mut parsed = Parsed::default();
        if !response.has_infer_response() || !response.error_message().is_empty() {
            parsed.error = Some(nonempty(&response.error_message()));
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
        parsed.text = self.new_text(text);
        parsed.num_input_tokens =
            response.output_ints("num_input_tokens").and_then(|v| v.first().copied()).map(|n| n as u32);
        let server_count = response
            .output_ints("num_output_tokens")
            .and_then(|v| v.first().copied())
            .or_else(|| response.output_ints("output_ids").map(|ids| ids.len() as i64));
        match server_count {
            Some(n) => {
                // A count past u32 reads as u32::MAX, which is past the cap, never as a wrapped one.
                parsed.tokens = n.clamp(0, i64::from(u32::MAX)) as u32;
                parsed.server_counted = true;
            }
            // One response with the whole answer: its words are the best count there is.
            None if self.whole_answers && !parsed.text.is_empty() => {
                parsed.tokens = (parsed.text.split_whitespace().count() as u32).max(1);
                parsed.words_counted = true;
            }
            None => parsed.tokens = u32::from(!parsed.text.is_empty()),
        }
        parsed
    }

    fn new_text(&mut self, mut text: String) -> String {
        if text.is_empty() {
            return text;
        }
        if !self.cumulative {
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

/// Whether a response is its request's last, as [`ResponseReader::read`] decides, without
/// reading anything else.
pub fn is_final(response: &Response) -> bool {
    if !response.has_infer_response() || response.has_error_message() {
        return true;
    }
    !matches!(response.parameter("triton_final_response"), Some(Param::Bool(false)))
}

/// A server's error message, cut to [`limits::MAX_ERROR_BYTES`] (at a character's start).
fn nonempty(message: &str) -> String {
    if message.is_empty() {
        return "the server reported an error without a message".into();
    }
    if message.len() <= limits::MAX_ERROR_BYTES {
        return message.into();
    }
    let mut end = limits::MAX_ERROR_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (cut at {} bytes)", &message[..end], limits::MAX_ERROR_BYTES)
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
