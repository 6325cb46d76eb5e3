//! Triton's HTTP generate extension in JSON: a request's body read into the
//! `ModelInferRequest` the gRPC side would receive, and a response's outputs written as one
//! event's keys. One element is a bare value, several a list, as Triton writes them.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::model::SimModel;
use crate::bytes::{decode_raw, encode_raw};
use crate::convention::{DataType, Declared};
use crate::pb;
use crate::pb::infer_parameter::ParameterChoice;
use crate::pb::model_infer_request::InferInputTensor;

/// The request to `model` (asked for as `version`, empty for any) whose inputs `body` holds:
/// a JSON object with each input under its name, and optionally the request's `id` and
/// `parameters`. Input datatypes are the ones the model declares.
pub fn request(model: &SimModel, version: &str, body: &[u8]) -> Result<pb::ModelInferRequest, String> {
    let json: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the request body is not a JSON object of model '{}''s inputs ({e}); send one such as \
             {{\"{}\": \"a prompt\", ...}}",
            model.name,
            model.convention().prompt
        )
    })?;
    let mut request =
        pb::ModelInferRequest { model_name: model.name.into(), model_version: version.into(), ..Default::default() };
    for (key, value) in json {
        match key.as_str() {
            "id" => {
                request.id = value.as_str().ok_or_else(|| format!("the request's id is {value}, not a string"))?.into()
            }
            "parameters" => request.parameters = parameters(value)?,
            name => {
                let declared = model
                    .convention()
                    .input(name)
                    .ok_or_else(|| format!("unexpected inference input '{name}' for model '{}'", model.name))?;
                let (tensor, raw) = input(declared, model.convention().batched, value)?;
                request.inputs.push(tensor);
                request.raw_input_contents.push(raw);
            }
        }
    }
    Ok(request)
}

/// Request parameters: an object of booleans, integers and strings.
fn parameters(value: Value) -> Result<HashMap<String, pb::InferParameter>, String> {
    let Value::Object(object) = value else {
        return Err(format!("the request's parameters are {value}, not an object"));
    };
    object
        .into_iter()
        .map(|(name, value)| {
            let choice = match &value {
                Value::Bool(b) => ParameterChoice::BoolParam(*b),
                Value::String(s) => ParameterChoice::StringParam(s.clone()),
                Value::Number(n) if n.is_i64() => ParameterChoice::Int64Param(n.as_i64().unwrap_or_default()),
                other => {
                    return Err(format!("parameter '{name}' is {other}; parameters are booleans, integers or strings"));
                }
            };
            Ok((name, pb::InferParameter { parameter_choice: Some(choice) }))
        })
        .collect()
}

/// An input's tensor and raw contents from its JSON value, a value or a list of them.
fn input(declared: &Declared, batched: bool, value: Value) -> Result<(InferInputTensor, Vec<u8>), String> {
    let mut elements = Vec::new();
    flatten(value, &mut elements);
    let name = declared.name;
    let datatype = declared.datatype;
    let wrong =
        |element: &Value, what: &str| format!("input '{name}' ({}) holds {element}, not {what}", datatype.name());
    let raw = match datatype {
        DataType::Bytes => {
            let texts: Vec<&str> =
                elements.iter().map(|e| e.as_str().ok_or_else(|| wrong(e, "a string"))).collect::<Result<_, _>>()?;
            encode_raw(texts.iter().map(|t| t.as_bytes()))
        }
        DataType::Bool => elements
            .iter()
            .map(|e| e.as_bool().map(u8::from).ok_or_else(|| wrong(e, "true or false")))
            .collect::<Result<_, _>>()?,
        DataType::Int32 => integers(&elements, |e| e.as_i64().and_then(|n| i32::try_from(n).ok()), i32::to_le_bytes)
            .map_err(|e| wrong(e, "a 32-bit integer"))?,
        DataType::Uint32 => integers(&elements, |e| e.as_u64().and_then(|n| u32::try_from(n).ok()), u32::to_le_bytes)
            .map_err(|e| wrong(e, "an unsigned 32-bit integer"))?,
        DataType::Int64 => integers(&elements, Value::as_i64, i64::to_le_bytes).map_err(|e| wrong(e, "an integer"))?,
    };
    let count = elements.len() as i64;
    let shape = if batched { vec![1, count] } else { vec![count] };
    let tensor = InferInputTensor { name: name.into(), datatype: datatype.name().into(), shape, ..Default::default() };
    Ok((tensor, raw))
}

/// The little-endian bytes of integer elements, or the first element that is not one.
fn integers<T, const N: usize>(
    elements: &[Value],
    read: impl Fn(&Value) -> Option<T>,
    bytes: impl Fn(T) -> [u8; N],
) -> Result<Vec<u8>, &Value> {
    let mut raw = Vec::with_capacity(elements.len() * N);
    for element in elements {
        raw.extend_from_slice(&bytes(read(element).ok_or(element)?));
    }
    Ok(raw)
}

/// A value's elements: itself, or those of its list, nested lists flattened.
fn flatten(value: Value, into: &mut Vec<Value>) {
    match value {
        Value::Array(items) => items.into_iter().for_each(|item| flatten(item, into)),
        element => into.push(element),
    }
}

/// The keys of a response's generate event: model name and version, the request id where it
/// has one, and each output under its name.
pub fn outputs(response: &pb::ModelInferResponse) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("model_name".into(), response.model_name.clone().into());
    object.insert("model_version".into(), response.model_version.clone().into());
    if !response.id.is_empty() {
        object.insert("id".into(), response.id.clone().into());
    }
    for (i, output) in response.outputs.iter().enumerate() {
        let raw = response.raw_output_contents.get(i).map_or(&[][..], Vec::as_slice);
        let mut values = elements(&output.datatype, raw);
        let value = if values.len() == 1 { values.pop().expect("one element") } else { Value::Array(values) };
        object.insert(output.name.clone(), value);
    }
    object
}

/// The elements of a raw output as JSON values: BYTES as strings, the rest as numbers and
/// booleans.
fn elements(datatype: &str, raw: &[u8]) -> Vec<Value> {
    fn each<const N: usize>(raw: &[u8], value: impl Fn([u8; N]) -> Value) -> Vec<Value> {
        raw.chunks_exact(N).map(|c| value(c.try_into().expect("chunks of N bytes"))).collect()
    }
    match DataType::of_name(datatype) {
        Some(DataType::Bytes) => decode_raw(raw)
            .unwrap_or_default()
            .into_iter()
            .map(|e| Value::String(String::from_utf8_lossy(e).into_owned()))
            .collect(),
        Some(DataType::Bool) => raw.iter().map(|&b| Value::Bool(b != 0)).collect(),
        Some(DataType::Int32) => each(raw, |b| i32::from_le_bytes(b).into()),
        Some(DataType::Uint32) => each(raw, |b| u32::from_le_bytes(b).into()),
        Some(DataType::Int64) => each(raw, |b| i64::from_le_bytes(b).into()),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::SweepSpec;

    use super::*;
    use crate::convention::{ModelSignature, RequestPlan};
    use crate::protocol::generate;
    use crate::sim::model::{self, Ask, Step};

    /// The request the engine sends each simulated model over gRPC.
    fn grpc_request(model: &SimModel, ignore_eos: bool) -> pb::ModelInferRequest {
        let sig = ModelSignature::from_pb(&model.metadata(), Some(&model.config()));
        let spec = SweepSpec { max_tokens: 12, ignore_eos, ..SweepSpec::default() };
        let mut request = RequestPlan::new(&sig, model.style, &spec).request(String::new(), "Say \"hi\"", 12);
        request.model_name = model.name.into();
        request.parameters.clear();
        request
    }

    #[test]
    fn a_generate_body_reads_back_as_the_grpc_request_it_was_written_from() {
        for model in &model::MODELS {
            for ignore_eos in [false, true] {
                let sent = grpc_request(model, ignore_eos);
                let body = generate::body(&sent).unwrap();
                let read = request(model, "", &body).unwrap();
                // Keys come in the JSON's order; the gRPC request has the convention's.
                let order = |r: &pb::ModelInferRequest| {
                    let mut pairs: Vec<_> = r.inputs.iter().cloned().zip(r.raw_input_contents.clone()).collect();
                    pairs.sort_by(|a, b| a.0.name.cmp(&b.0.name));
                    pairs
                };
                assert_eq!(order(&read), order(&sent), "{}", model.name);
                let ask = model.ask(&read, None).unwrap();
                assert_eq!(ask, model.ask(&sent, None).unwrap(), "{}", model.name);
                assert_eq!((ask.max_tokens, ask.prompt.as_str()), (12, "Say \"hi\""));
            }
        }
    }

    #[test]
    fn the_id_parameters_and_lists_are_read() {
        let trtllm = model::find("sim-trtllm").unwrap();
        let body = br#"{"id":"r1","text_input":["a","b"],"max_tokens":[[4]],"parameters":{"x":true,"n":3}}"#;
        let read = request(trtllm, "1", body).unwrap();
        assert_eq!((read.id.as_str(), read.model_version.as_str()), ("r1", "1"));
        let input = |name: &str| {
            let i = read.inputs.iter().position(|t| t.name == name).unwrap();
            (read.inputs[i].shape.clone(), read.raw_input_contents[i].clone())
        };
        let text = input("text_input");
        assert_eq!(text.0, [1, 2], "a batched model's inputs have a batch of one");
        assert_eq!(text.1, encode_raw([&b"a"[..], b"b"]));
        assert_eq!(input("max_tokens"), (vec![1, 1], 4i32.to_le_bytes().to_vec()), "nested lists are flattened");
        assert_eq!(read.parameters["n"].parameter_choice, Some(ParameterChoice::Int64Param(3)));
    }

    #[test]
    fn bodies_that_do_not_fit_the_model_are_refused_with_the_reason() {
        let vllm = model::find("sim-vllm").unwrap();
        let err = |body: &str| request(vllm, "", body.as_bytes()).unwrap_err();
        assert!(err("not json").contains("is not a JSON object of model 'sim-vllm''s inputs"), "{}", err("x"));
        assert!(err("[1]").contains("{\"text_input\": \"a prompt\", ...}"));
        assert_eq!(err(r#"{"prompt":"x"}"#), "unexpected inference input 'prompt' for model 'sim-vllm'");
        assert_eq!(err(r#"{"text_input":3}"#), "input 'text_input' (BYTES) holds 3, not a string");
        assert_eq!(err(r#"{"stream":"yes"}"#), "input 'stream' (BOOL) holds \"yes\", not true or false");
        let trtllm = model::find("sim-trtllm").unwrap();
        let big = request(trtllm, "", br#"{"max_tokens":4294967296}"#).unwrap_err();
        assert_eq!(big, "input 'max_tokens' (INT32) holds 4294967296, not a 32-bit integer");
        assert!(request(vllm, "", br#"{"parameters":{"f":1.5}}"#).unwrap_err().contains("parameter 'f' is 1.5"));
    }

    #[test]
    fn responses_are_written_with_one_element_bare_and_several_as_a_list() {
        let trtllm = model::find("sim-trtllm").unwrap();
        let ask = Ask {
            id: "r1".into(),
            prompt: "p".into(),
            prompt_tokens: 1,
            max_tokens: 4,
            want_input_count: false,
            want_output_count: false,
            empty_final: false,
        };
        let step = Step { generated: " a b", first: 2, count: 2, text: " a b", is_final: false, claimed: None };
        let event = outputs(&trtllm.content(&ask, &step));
        assert_eq!(
            Value::Object(event),
            json!({"model_name": "sim-trtllm", "model_version": "1", "id": "r1",
                   "text_output": " a b", "output_ids": [1002, 1003]})
        );
        let vllm = model::find("sim-vllm").unwrap();
        let ask = Ask { id: String::new(), want_input_count: true, want_output_count: true, ..ask };
        let step = Step { count: 1, first: 0, ..step };
        let event = outputs(&vllm.content(&ask, &step));
        assert_eq!(
            Value::Object(event),
            json!({"model_name": "sim-vllm", "model_version": "1", "text_output": " a b",
                   "num_input_tokens": 1, "num_output_tokens": 1})
        );
    }
}
