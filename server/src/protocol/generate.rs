//! Triton's HTTP generate extension: `POST /v2/models/NAME/generate_stream` with the model's
//! inputs as JSON keys, answered with one Server-Sent Event per response whose keys are its
//! outputs. Request and response take their tensor names and rules from the model's
//! [`Convention`], so both Triton protocols send the same inputs and read the same outputs.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Chunk, ErrorJson, Piece, Usage, count, unreadable};
use crate::bytes::decode_raw;
use crate::convention::{
    Convention, DataType, NUM_INPUT_TOKENS, NUM_OUTPUT_TOKENS, NewText, OUTPUT_IDS, SEND_TIME_KEY, TextForm,
};
use crate::export::profile::{TensorValue, Tensors};
use crate::pb;

/// The path of a model (of one version, when given) on Triton's HTTP API, its name and
/// version percent-encoded.
pub fn model_path(model: &str, version: Option<&str>) -> String {
    match version.filter(|v| !v.is_empty()) {
        Some(version) => format!("/v2/models/{}/versions/{}", encode(model), encode(version)),
        None => format!("/v2/models/{}", encode(model)),
    }
}

/// The path of a streamed generate request, from the server's base address.
pub fn path(model: &str, version: Option<&str>) -> String {
    format!("{}/generate_stream", model_path(model, version))
}

/// A path segment with every byte but the unreserved ones percent-encoded.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The JSON body of a generate request holding the inputs of `request`, as built for gRPC
/// ([`crate::convention::RequestPlan::request`]): each input under its name, one element as
/// a value and several as a list. Request parameters are not sent: the end of the HTTP
/// answer ends the request, so no empty final response is needed.
pub fn body(request: &pb::ModelInferRequest) -> Result<Vec<u8>, String> {
    let mut tensors = Tensors::new();
    for (i, input) in request.inputs.iter().enumerate() {
        let raw = request.raw_input_contents.get(i).map_or(&[][..], Vec::as_slice);
        let wrong = |why: &str| format!("input {} ({}) {why}", input.name, input.datatype);
        let mut values: Vec<TensorValue> = match DataType::of_name(&input.datatype) {
            Some(DataType::Bytes) => decode_raw(raw)
                .map_err(|e| wrong(&e.to_string()))?
                .into_iter()
                .map(|element| std::str::from_utf8(element).map(|s| TensorValue::Text(s.into())))
                .collect::<Result<_, _>>()
                .map_err(|_| wrong("is not UTF-8 text"))?,
            Some(DataType::Bool) => raw.iter().map(|&b| TensorValue::Bool(b != 0)).collect(),
            Some(DataType::Int32) => {
                raw.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()).into()).map(number).collect()
            }
            Some(DataType::Uint32) => {
                raw.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()).into()).map(number).collect()
            }
            Some(DataType::Int64) => {
                raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).map(number).collect()
            }
            None => return Err(wrong("has a datatype the generate endpoint is not sent")),
        };
        let value = if values.len() == 1 { values.pop().expect("one") } else { TensorValue::List(values) };
        tensors.insert(input.name.clone(), value);
    }
    Ok(serde_json::to_vec(&tensors).expect("tensor values serialize"))
}

fn number(n: i64) -> TensorValue {
    TensorValue::Number(n.into())
}

/// Reads one request's generate events in order, keeping what cumulative outputs need.
#[derive(Debug, Clone)]
pub struct Reader {
    text_output: &'static str,
    text_form: TextForm,
    new_text: NewText,
}

impl Reader {
    /// A reader for a request of `convention` whose prompt is `prompt`: taken off texts that
    /// repeat it, as on gRPC.
    pub fn new(convention: &'static Convention, prompt: Option<String>) -> Self {
        Self { text_output: convention.text_output, text_form: convention.text_form, new_text: NewText::new(prompt) }
    }

    /// Reads the data of one event.
    pub fn read(&mut self, data: &str) -> Chunk {
        let mut de = serde_json::Deserializer::from_str(data);
        let event = match (Outputs { text_output: self.text_output }).deserialize(&mut de).and_then(|e| {
            de.end()?;
            Ok(e)
        }) {
            Ok(event) => event,
            Err(err) => return Chunk::of(unreadable(data, &err)),
        };
        if let Some(error) = event.error {
            return Chunk::of(error.into_piece());
        }
        let text = self.new_text.take(event.text.unwrap_or_default(), self.text_form);
        let tokens = event.num_output_tokens.or(event.output_ids).map(count);
        let piece = match tokens {
            Some(0) | None if text.is_empty() => Piece::Nothing,
            tokens => Piece::Text { text, tokens },
        };
        Chunk {
            piece,
            usage: Usage::of(event.num_input_tokens, None),
            finish_reason: None,
            send_unix_ns: event.send_ns,
        }
    }
}

/// What a generate event holds that is read.
#[derive(Debug, Default)]
struct Event {
    text: Option<String>,
    num_input_tokens: Option<u64>,
    num_output_tokens: Option<u64>,
    /// How many token ids the response carries.
    output_ids: Option<u64>,
    /// When the server sent the event, where it says (the simulator does).
    send_ns: Option<i64>,
    error: Option<ErrorJson>,
}

/// Reads a generate event, keeping the convention's text output, the counts and an error.
struct Outputs {
    text_output: &'static str,
}

impl<'de> DeserializeSeed<'de> for Outputs {
    type Value = Event;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Event, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Outputs {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of outputs")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let mut event = Event::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                name if name == self.text_output => event.text = Some(map.next_value::<Element<Text>>()?.0.0),
                NUM_INPUT_TOKENS => event.num_input_tokens = Some(map.next_value::<Element<u64>>()?.0),
                NUM_OUTPUT_TOKENS => event.num_output_tokens = Some(map.next_value::<Element<u64>>()?.0),
                OUTPUT_IDS => event.output_ids = Some(map.next_value::<Length>()?.0),
                "error" => event.error = Some(map.next_value()?),
                SEND_TIME_KEY => event.send_ns = i64::try_from(map.next_value::<Element<u64>>()?.0).ok(),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(event)
    }
}

/// A tensor's value: one element, or a list whose elements are joined ([`Join`]).
struct Element<T>(T);

/// How a list's elements make one value: texts are concatenated, numbers the first.
trait Join: Sized {
    fn join(items: Vec<Self>) -> Option<Self>;
}

impl Join for u64 {
    fn join(items: Vec<Self>) -> Option<Self> {
        items.first().copied()
    }
}

/// A text element (BYTES outputs are JSON strings).
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Text)
    }
}

impl Join for Text {
    fn join(items: Vec<Self>) -> Option<Self> {
        Some(Text(items.into_iter().map(|t| t.0).collect()))
    }
}

impl<'de, T: Deserialize<'de> + Join> Deserialize<'de> for Element<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany<T> {
            One(T),
            Many(Vec<T>),
        }
        match OneOrMany::<T>::deserialize(deserializer)? {
            OneOrMany::One(value) => Ok(Element(value)),
            OneOrMany::Many(items) => T::join(items)
                .map(Element)
                .ok_or_else(|| serde::de::Error::custom("an empty list where a count was expected")),
        }
    }
}

/// How many numbers a value holds: 1, or those of a list, nested lists flattened.
struct Length(u64);

impl<'de> Deserialize<'de> for Length {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> Visitor<'de> for Counter {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("token ids")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
                // Nested lists (a batch or beam dimension) count their numbers.
                let mut n = 0u64;
                while let Some(Length(inner)) = seq.next_element()? {
                    n = n.saturating_add(inner);
                }
                Ok(n)
            }
            fn visit_i64<E>(self, _: i64) -> Result<u64, E> {
                Ok(1)
            }
            fn visit_u64<E>(self, _: u64) -> Result<u64, E> {
                Ok(1)
            }
        }
        deserializer.deserialize_any(Counter).map(Length)
    }
}

#[cfg(test)]
mod tests {
    use shared::{InputStyle, SweepSpec};

    use super::*;
    use crate::convention::{ModelSignature, RequestPlan, TensorSig};

    fn sig(name: &str, inputs: &[(&str, &str)], batched: bool) -> ModelSignature {
        let shape = if batched { vec![-1, 1] } else { vec![1] };
        ModelSignature {
            name: name.into(),
            inputs: inputs
                .iter()
                .map(|(n, d)| TensorSig { name: (*n).into(), datatype: (*d).into(), shape: shape.clone() })
                .collect(),
            max_batch_size: Some(if batched { 8 } else { 0 }),
            ..Default::default()
        }
    }

    fn json(style: InputStyle, sig: &ModelSignature, ignore_eos: bool) -> serde_json::Value {
        let spec = SweepSpec { max_tokens: 64, ignore_eos, ..SweepSpec::default() };
        let request = RequestPlan::new(sig, style, &spec).request("1".into(), "Say \"hi\"", 32);
        serde_json::from_slice(&body(&request).unwrap()).unwrap()
    }

    #[test]
    fn bodies_carry_the_same_inputs_as_grpc_requests() {
        let vllm = sig(
            "vllm_model",
            &[
                ("text_input", "BYTES"),
                ("stream", "BOOL"),
                ("sampling_parameters", "BYTES"),
                ("return_num_output_tokens", "BOOL"),
            ],
            false,
        );
        assert_eq!(
            json(InputStyle::Vllm, &vllm, true),
            serde_json::json!({"text_input": "Say \"hi\"", "stream": true,
                               "sampling_parameters": "{\"max_tokens\":32,\"ignore_eos\":true}",
                               "return_num_output_tokens": true})
        );
        let trtllm = sig(
            "ensemble",
            &[("text_input", "BYTES"), ("max_tokens", "INT32"), ("stream", "BOOL"), ("min_tokens", "INT64")],
            true,
        );
        assert_eq!(
            json(InputStyle::Trtllm, &trtllm, true),
            serde_json::json!({"text_input": "Say \"hi\"", "max_tokens": 32, "stream": true, "min_tokens": 32})
        );
        let tutorial = sig("vllm", &[("PROMPT", "BYTES"), ("STREAM", "BOOL"), ("SAMPLING_PARAMETERS", "BYTES")], false);
        let body = json(InputStyle::Tutorial, &tutorial, false);
        assert_eq!(body["PROMPT"], "Say \"hi\"");
        assert_eq!(body["SAMPLING_PARAMETERS"], "{\"max_tokens\":32,\"ignore_eos\":false}");
        assert_eq!(path("vllm_model", None), "/v2/models/vllm_model/generate_stream");
        assert_eq!(path("m", Some("2")), "/v2/models/m/versions/2/generate_stream");
        assert_eq!(path("team/llama 3", Some("")), "/v2/models/team%2Fllama%203/generate_stream");
    }

    #[test]
    fn malformed_inputs_are_refused_by_name() {
        let request = pb::ModelInferRequest {
            inputs: vec![pb::model_infer_request::InferInputTensor {
                name: "text_input".into(),
                datatype: "BYTES".into(),
                ..Default::default()
            }],
            raw_input_contents: vec![vec![9, 0, 0, 0, b'x']],
            ..Default::default()
        };
        assert!(body(&request).unwrap_err().starts_with("input text_input (BYTES)"));
    }

    #[test]
    fn vllm_events_read_delta_text_and_counts() {
        let mut reader = Reader::new(Convention::of(InputStyle::Vllm), Some("What is".into()));
        let first = reader.read(r#"{"model_name":"vllm_model","model_version":"1","text_output":"What is Triton","num_output_tokens":1,"num_input_tokens":2}"#);
        assert_eq!(
            first.piece,
            Piece::Text { text: " Triton".into(), tokens: Some(1) },
            "the echoed prompt is taken off"
        );
        assert_eq!(first.usage, Some(Usage { prompt_tokens: Some(2), completion_tokens: None }));
        let next = reader.read(r#"{"model_name":"vllm_model","model_version":"1","text_output":" Inference"}"#);
        assert_eq!(next.piece, Piece::Text { text: " Inference".into(), tokens: None });
        let empty = reader.read(r#"{"model_name":"vllm_model","model_version":"1","text_output":""}"#);
        assert_eq!(empty.piece, Piece::Nothing, "an empty final response is not a token");
    }

    #[test]
    fn cumulative_events_count_only_new_text() {
        let mut reader = Reader::new(Convention::of(InputStyle::Tutorial), Some("say hi".into()));
        assert_eq!(
            reader.read(r#"{"TEXT":"say hi Hello"}"#).piece,
            Piece::Text { text: " Hello".into(), tokens: None }
        );
        assert_eq!(
            reader.read(r#"{"TEXT":["say hi Hello world"]}"#).piece,
            Piece::Text { text: " world".into(), tokens: None }
        );
        assert_eq!(reader.read(r#"{"model_name":"vllm","model_version":"1"}"#).piece, Piece::Nothing);
        // A text_output key means nothing to this convention.
        assert_eq!(reader.read(r#"{"text_output":"x"}"#).piece, Piece::Nothing);
    }

    #[test]
    fn trtllm_events_count_their_token_ids() {
        let mut reader = Reader::new(Convention::of(InputStyle::Trtllm), None);
        let chunk = reader.read(r#"{"context_logits":0.0,"cum_log_probs":0.0,"model_name":"ensemble","model_version":"1","output_ids":[[4, 5]],"text_output":" a b"}"#);
        assert_eq!(chunk.piece, Piece::Text { text: " a b".into(), tokens: Some(2) }, "ids of a batch of one");
        let chunk = reader.read(r#"{"output_ids":[4, 5, 6],"text_output":" c d e"}"#);
        assert_eq!(chunk.piece, Piece::Text { text: " c d e".into(), tokens: Some(3) });
        assert_eq!(reader.read(r#"{"output_ids":[],"text_output":""}"#).piece, Piece::Nothing);
    }

    #[test]
    fn errors_and_unreadable_events_are_errors() {
        let mut reader = Reader::new(Convention::of(InputStyle::Vllm), None);
        let err = reader.read(r#"{"error":"Error generating stream: the model failed"}"#);
        assert_eq!(err.piece, Piece::Error("Error generating stream: the model failed".into()));
        let Piece::Error(bad) = reader.read(r#"{"text_output": 7}"#).piece else { panic!("an error") };
        assert!(bad.contains("not the JSON expected"), "{bad}");
        assert!(matches!(reader.read("{} trailing").piece, Piece::Error(_)));
        assert!(matches!(reader.read(r#"{"num_output_tokens": []}"#).piece, Piece::Error(_)));
    }
}
