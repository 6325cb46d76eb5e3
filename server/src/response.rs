//! A streamed response as the engine reads it, straight from the bytes received.
//!
//! Decoding a `pb::ModelStreamInferResponse` allocates a string for every name, a hash map
//! for the parameters and a vector for every output: most of the engine's time per token.
//! [`Response`] keeps the received bytes and notes where each field the engine reads lies,
//! in one small vector. Parsing follows protobuf's rules: fields in any order, unknown fields
//! skipped, the last value of a repeated scalar or of a parameter wins, repeated messages
//! add up. Tensor `contents` (used by servers other than Triton) are decoded only when read.

use std::ops::Range;

use prost::Message;
use prost::bytes::{Buf, Bytes};
use thiserror::Error;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

use crate::bytes::decode_raw;
use crate::pb;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("a response that is not a ModelStreamInferResponse: {0}")]
pub struct ParseError(&'static str);

/// A parameter's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param {
    Bool(bool),
    Int(i64),
    Uint(u64),
    /// A string or double: read by nothing here.
    Other,
}

#[derive(Debug, Clone)]
enum Field {
    /// A response parameter: its key and value.
    Param(Range<usize>, Param),
    Output(Output),
    /// An entry of `raw_output_contents`.
    Raw(Range<usize>),
}

#[derive(Debug, Clone, Default)]
struct Output {
    name: Range<usize>,
    datatype: Range<usize>,
    /// An `InferTensorContents` message.
    contents: Option<Range<usize>>,
}

/// One `ModelStreamInferResponse`.
#[derive(Debug, Clone)]
pub struct Response {
    bytes: Bytes,
    error_message: Range<usize>,
    /// Whether the message has an `infer_response`.
    has_infer: bool,
    id: Range<usize>,
    fields: Vec<Field>,
}

impl Response {
    /// Parses a message.
    pub fn parse(bytes: Bytes) -> Result<Self, ParseError> {
        let mut response = Self {
            bytes: bytes.clone(),
            error_message: 0..0,
            has_infer: false,
            id: 0..0,
            fields: Vec::with_capacity(6),
        };
        let mut reader = Reader::new(&bytes, 0..bytes.len());
        while let Some((field, value)) = reader.next()? {
            match (field, value) {
                (1, Value::Len(span)) => response.error_message = span,
                (2, Value::Len(span)) => {
                    response.has_infer = true;
                    response.infer(span)?;
                }
                _ => {}
            }
        }
        Ok(response)
    }

    /// A message built in memory, as if it had been received.
    pub fn from_message(message: &pb::ModelStreamInferResponse) -> Self {
        Self::parse(Bytes::from(message.encode_to_vec())).expect("prost writes what it reads")
    }

    /// A response that only says the request failed.
    pub fn error(id: &str, message: &str) -> Self {
        Self::from_message(&pb::ModelStreamInferResponse {
            error_message: message.into(),
            infer_response: Some(pb::ModelInferResponse { id: id.into(), ..Default::default() }),
        })
    }

    fn infer(&mut self, span: Range<usize>) -> Result<(), ParseError> {
        let bytes = self.bytes.clone();
        let mut reader = Reader::new(&bytes, span);
        while let Some((field, value)) = reader.next()? {
            match (field, value) {
                (3, Value::Len(span)) => self.id = span,
                (4, Value::Len(span)) => {
                    if let Some((key, param)) = parameter(&bytes, span)? {
                        self.fields.push(Field::Param(key, param));
                    }
                }
                (5, Value::Len(span)) => self.fields.push(Field::Output(output(&bytes, span)?)),
                (6, Value::Len(span)) => self.fields.push(Field::Raw(span)),
                _ => {}
            }
        }
        Ok(())
    }

    fn text(&self, span: &Range<usize>) -> &[u8] {
        &self.bytes[span.clone()]
    }

    pub fn error_message(&self) -> String {
        String::from_utf8_lossy(self.text(&self.error_message)).into_owned()
    }

    /// Whether the message carries an error message, without copying it.
    pub fn has_error_message(&self) -> bool {
        !self.error_message.is_empty()
    }

    pub fn has_infer_response(&self) -> bool {
        self.has_infer
    }

    /// The request id; empty when missing or not UTF-8.
    pub fn id(&self) -> &str {
        std::str::from_utf8(self.text(&self.id)).unwrap_or_default()
    }

    /// A parameter's value; the last one given wins.
    pub fn parameter(&self, key: &str) -> Option<Param> {
        self.fields.iter().rev().find_map(|f| match f {
            Field::Param(k, value) if self.text(k) == key.as_bytes() => Some(*value),
            _ => None,
        })
    }

    fn outputs(&self) -> impl Iterator<Item = &Output> {
        self.fields.iter().filter_map(|f| match f {
            Field::Output(o) => Some(o),
            _ => None,
        })
    }

    fn output(&self, name: &str) -> Option<(usize, &Output)> {
        self.outputs().enumerate().find(|(_, o)| self.text(&o.name) == name.as_bytes())
    }

    fn raw(&self, i: usize) -> Option<&[u8]> {
        self.fields
            .iter()
            .filter_map(|f| match f {
                Field::Raw(span) => Some(span),
                _ => None,
            })
            .nth(i)
            .map(|span| self.text(span))
    }

    fn contents(&self, output: &Output) -> Option<pb::InferTensorContents> {
        output.contents.as_ref().and_then(|span| pb::InferTensorContents::decode(self.text(span)).ok())
    }

    /// A BYTES output's elements joined as text, from `raw_output_contents` (Triton) or
    /// `contents` (other servers); `None` when there is no such output or it is malformed.
    pub fn output_text(&self, name: &str) -> Option<String> {
        let (i, output) = self.output(name)?;
        if let Some(raw) = self.raw(i) {
            return decode_raw(raw).ok().map(|elements| elements.into_iter().map(String::from_utf8_lossy).collect());
        }
        let contents = self.contents(output)?;
        Some(contents.bytes_contents.iter().map(|b| String::from_utf8_lossy(b)).collect())
    }

    /// An integer output's elements as i64, whatever its width.
    pub fn output_ints(&self, name: &str) -> Option<Vec<i64>> {
        let (i, output) = self.output(name)?;
        let datatype = self.text(&output.datatype);
        if let Some(raw) = self.raw(i) {
            let width = match datatype {
                b"INT64" | b"UINT64" => 8,
                b"INT32" | b"UINT32" => 4,
                _ => return None,
            };
            return Some(
                raw.chunks_exact(width)
                    .map(|c| match datatype {
                        b"INT64" => i64::from_le_bytes(c.try_into().unwrap()),
                        b"UINT64" => u64::from_le_bytes(c.try_into().unwrap()) as i64,
                        b"INT32" => i64::from(i32::from_le_bytes(c.try_into().unwrap())),
                        _ => i64::from(u32::from_le_bytes(c.try_into().unwrap())),
                    })
                    .collect(),
            );
        }
        let c = self.contents(output)?;
        Some(match datatype {
            b"INT64" => c.int64_contents,
            b"UINT64" => c.uint64_contents.iter().map(|&v| v as i64).collect(),
            b"INT32" => c.int_contents.iter().map(|&v| i64::from(v)).collect(),
            b"UINT32" => c.uint_contents.iter().map(|&v| i64::from(v)).collect(),
            _ => return None,
        })
    }
}

/// A parameter map entry: its key, and its value when it has one.
fn parameter(bytes: &[u8], span: Range<usize>) -> Result<Option<(Range<usize>, Param)>, ParseError> {
    let (mut key, mut param) = (0..0, None);
    let mut reader = Reader::new(bytes, span);
    while let Some((field, value)) = reader.next()? {
        match (field, value) {
            (1, Value::Len(span)) => key = span,
            (2, Value::Len(span)) => {
                let mut inner = Reader::new(bytes, span);
                while let Some((field, value)) = inner.next()? {
                    param = Some(match (field, value) {
                        (1, Value::Varint(v)) => Param::Bool(v != 0),
                        (2, Value::Varint(v)) => Param::Int(v as i64),
                        (5, Value::Varint(v)) => Param::Uint(v),
                        _ => Param::Other,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(param.map(|param| (key, param)))
}

fn output(bytes: &[u8], span: Range<usize>) -> Result<Output, ParseError> {
    let mut output = Output::default();
    let mut reader = Reader::new(bytes, span);
    while let Some((field, value)) = reader.next()? {
        match (field, value) {
            (1, Value::Len(span)) => output.name = span,
            (2, Value::Len(span)) => output.datatype = span,
            (5, Value::Len(span)) => output.contents = Some(span),
            _ => {}
        }
    }
    Ok(output)
}

enum Value {
    Varint(u64),
    /// Where a length-delimited field's bytes are.
    Len(Range<usize>),
    Fixed,
}

/// Reads the fields of one message in `bytes[span]`.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], span: Range<usize>) -> Self {
        Self { bytes, at: span.start, end: span.end }
    }

    fn next(&mut self) -> Result<Option<(u64, Value)>, ParseError> {
        if self.at >= self.end {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => self.skip(8)?,
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| ParseError("a field longer than memory"))?;
                let start = self.at;
                self.skip(len)?;
                Value::Len(start..self.at)
            }
            5 => self.skip(4)?,
            _ => return Err(ParseError("a field of an unsupported wire type")),
        };
        Ok(Some((key >> 3, value)))
    }

    fn skip(&mut self, n: usize) -> Result<Value, ParseError> {
        if self.end - self.at < n {
            return Err(ParseError("a field runs past the end of its message"));
        }
        self.at += n;
        Ok(Value::Fixed)
    }

    fn varint(&mut self) -> Result<u64, ParseError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.bytes[..self.end].get(self.at) else {
                return Err(ParseError("a number runs past the end of its message"));
            };
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(ParseError("a number longer than ten bytes"))
    }
}

/// ModelStreamInfer's codec on the client: requests encoded by prost, responses parsed into
/// [`Response`].
#[derive(Default)]
pub struct StreamCodec;

impl Codec for StreamCodec {
    type Encode = pb::ModelInferRequest;
    type Decode = Response;
    type Encoder = ProstEncoder<pb::ModelInferRequest>;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(Default::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder
    }
}

pub struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = Response;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Response>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Response::parse(bytes).map(Some).map_err(|err| Status::internal(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::bytes::encode_raw;
    use crate::pb::infer_parameter::ParameterChoice;
    use crate::pb::model_infer_response::InferOutputTensor;

    fn param(choice: ParameterChoice) -> pb::InferParameter {
        pb::InferParameter { parameter_choice: Some(choice) }
    }

    fn tensor(name: &str, datatype: &str) -> InferOutputTensor {
        InferOutputTensor { name: name.into(), datatype: datatype.into(), shape: vec![1], ..Default::default() }
    }

    #[test]
    fn reads_what_a_triton_response_carries() {
        let message = pb::ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(pb::ModelInferResponse {
                model_name: "m".into(),
                model_version: "1".into(),
                id: "req-1".into(),
                parameters: HashMap::from([
                    ("triton_final_response".into(), param(ParameterChoice::BoolParam(true))),
                    ("send_ns".into(), param(ParameterChoice::Int64Param(1_795_000_000_000_000_001))),
                    ("big".into(), param(ParameterChoice::Uint64Param(u64::MAX))),
                    ("note".into(), param(ParameterChoice::StringParam("x".into()))),
                ]),
                outputs: vec![tensor("text_output", "BYTES"), tensor("n", "UINT32"), tensor("ids", "INT64")],
                raw_output_contents: vec![
                    encode_raw([&b"hello "[..], b"world"]),
                    7u32.to_le_bytes().to_vec(),
                    [3i64, -4].map(i64::to_le_bytes).concat(),
                ],
            }),
        };
        let response = Response::from_message(&message);
        assert!(response.has_infer_response());
        assert_eq!(response.error_message(), "");
        assert_eq!(response.id(), "req-1");
        assert_eq!(response.parameter("triton_final_response"), Some(Param::Bool(true)));
        assert_eq!(response.parameter("send_ns"), Some(Param::Int(1_795_000_000_000_000_001)));
        assert_eq!(response.parameter("big"), Some(Param::Uint(u64::MAX)));
        assert_eq!(response.parameter("note"), Some(Param::Other));
        assert_eq!(response.parameter("absent"), None);
        assert_eq!(response.output_text("text_output").as_deref(), Some("hello world"));
        assert_eq!(response.output_ints("n"), Some(vec![7]));
        assert_eq!(response.output_ints("ids"), Some(vec![3, -4]));
        assert_eq!(response.output_ints("text_output"), None);
        assert_eq!(response.output_text("absent"), None);
    }

    #[test]
    fn reads_contents_when_there_are_no_raw_outputs() {
        let mut text = tensor("text_output", "BYTES");
        text.contents =
            Some(pb::InferTensorContents { bytes_contents: vec![b"a".to_vec(), b"b".to_vec()], ..Default::default() });
        let mut count = tensor("n", "INT32");
        count.contents = Some(pb::InferTensorContents { int_contents: vec![-2, 5], ..Default::default() });
        let message = pb::ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(pb::ModelInferResponse { outputs: vec![text, count], ..Default::default() }),
        };
        let response = Response::from_message(&message);
        assert_eq!(response.output_text("text_output").as_deref(), Some("ab"));
        assert_eq!(response.output_ints("n"), Some(vec![-2, 5]));
    }

    #[test]
    fn an_error_without_an_infer_response_says_so() {
        let response = Response::from_message(&pb::ModelStreamInferResponse {
            error_message: "boom".into(),
            infer_response: None,
        });
        assert!(!response.has_infer_response());
        assert_eq!(response.error_message(), "boom");
        assert_eq!(response.id(), "");
        let response = Response::error("r", "late");
        assert!(response.has_infer_response());
        assert_eq!((response.id(), response.error_message().as_str()), ("r", "late"));
    }

    #[test]
    fn fields_in_any_order_and_unknown_fields_are_read() {
        // infer_response { raw_output_contents: "\x01\0\0\0x", unknown fixed32, outputs { name: "t",
        // datatype: "BYTES" }, id: "q" }, then error_message "", then an unknown fixed64.
        let inner: Vec<u8> = [
            &[0x32, 5, 1, 0, 0, 0, b'x', 0x3d, 1, 2, 3, 4, 0x2a, 10, 0x0a, 1, b't', 0x12, 5][..],
            b"BYTES",
            &[0x1a, 1, b'q'],
        ]
        .concat();
        let bytes: Vec<u8> =
            [&[0x12, inner.len() as u8][..], &inner, &[0x0a, 0], &[0x19, 0, 0, 0, 0, 0, 0, 0, 0]].concat();
        let response = Response::parse(Bytes::from(bytes)).unwrap();
        assert_eq!(response.id(), "q");
        assert_eq!(response.output_text("t").as_deref(), Some("x"));
    }

    /// Every reading of a parsed response, as the engine would do them; the texts read come
    /// from the message, so none is longer than it.
    fn read_everything(response: &Response, len: usize) {
        let _ = (response.id(), response.error_message(), response.has_infer_response());
        for name in ["text_output", "TEXT", "num_output_tokens", "output_ids", "t", ""] {
            assert!(response.output_text(name).is_none_or(|t| t.len() <= 3 * len));
            assert!(response.output_ints(name).is_none_or(|v| v.len() <= len));
            let _ = response.parameter(name);
        }
        for style in [shared::InputStyle::Vllm, shared::InputStyle::Tutorial, shared::InputStyle::Trtllm] {
            for streaming in [true, false] {
                let spec = shared::SweepSpec { streaming, ..shared::SweepSpec::default() };
                let sig = crate::convention::ModelSignature::default();
                let mut reader = crate::convention::RequestPlan::new(&sig, style, &spec).reader("p q");
                let parsed = reader.read(response);
                assert!(parsed.text.len() <= 3 * len);
                assert!(parsed.error.is_none_or(|e| e.len() <= 3 * len + 64));
            }
        }
    }

    fn arbitrary_message() -> impl proptest::strategy::Strategy<Value = pb::ModelStreamInferResponse> {
        use proptest::prelude::*;
        let name = prop::sample::select(vec!["text_output", "TEXT", "num_output_tokens", "output_ids", "x"]);
        let datatype = prop::sample::select(vec!["BYTES", "INT32", "UINT32", "INT64", "UINT64", "FP32"]);
        let output = (name, datatype).prop_map(|(n, d)| tensor(n, d));
        let raw = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 0..4);
        let param = (prop::sample::select(vec!["triton_final_response", "send_ns", "recv_ns"]), any::<u64>(), 0..3u8)
            .prop_map(|(k, v, kind)| {
                let choice = match kind {
                    0 => ParameterChoice::BoolParam(v % 2 == 0),
                    1 => ParameterChoice::Int64Param(v as i64),
                    _ => ParameterChoice::Uint64Param(v),
                };
                (k.to_string(), param(choice))
            });
        (".{0,8}", ".{0,6}", prop::collection::vec(output, 0..4), raw, prop::collection::vec(param, 0..3)).prop_map(
            |(error_message, id, outputs, raw_output_contents, parameters)| pb::ModelStreamInferResponse {
                error_message,
                infer_response: Some(pb::ModelInferResponse {
                    id,
                    outputs,
                    raw_output_contents,
                    parameters: parameters.into_iter().collect(),
                    ..Default::default()
                }),
            },
        )
    }

    proptest::proptest! {
        /// Any bytes parse or fail without a panic, and every reading of a parsed one works.
        #[test]
        fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            if let Ok(response) = Response::parse(Bytes::from(bytes.clone())) {
                proptest::prop_assert!(response.fields.len() <= bytes.len());
                read_everything(&response, bytes.len());
            }
        }

        /// Messages shaped like Triton's, with any outputs, contents and parameters, and any
        /// cut or flipped byte of them.
        #[test]
        fn any_message_reads_without_panic(message in arbitrary_message(), cut in 0usize..400, flip in proptest::prelude::any::<(usize, u8)>()) {
            let mut bytes = message.encode_to_vec();
            let len = bytes.len();
            read_everything(&Response::parse(Bytes::from(bytes.clone())).unwrap(), len);
            if !bytes.is_empty() {
                let at = flip.0 % bytes.len();
                bytes[at] ^= flip.1;
            }
            bytes.truncate(cut);
            if let Ok(response) = Response::parse(Bytes::from(bytes)) {
                read_everything(&response, len);
            }
        }
    }

    #[test]
    fn damaged_messages_are_errors_not_panics() {
        let good = Response::from_message(&pb::ModelStreamInferResponse {
            error_message: "e".into(),
            infer_response: Some(pb::ModelInferResponse { id: "abc".into(), ..Default::default() }),
        });
        let bytes = good.bytes.to_vec();
        for cut in 0..bytes.len() {
            let _ = Response::parse(Bytes::copy_from_slice(&bytes[..cut]));
        }
        assert_eq!(
            Response::parse(Bytes::from_static(&[0x12, 9, 1])).unwrap_err(),
            ParseError("a field runs past the end of its message")
        );
        assert_eq!(
            Response::parse(Bytes::from_static(&[0x0b])).unwrap_err(),
            ParseError("a field of an unsupported wire type")
        );
        assert_eq!(
            Response::parse(Bytes::from_static(&[0x08, 0xff])).unwrap_err(),
            ParseError("a number runs past the end of its message")
        );
    }
}
