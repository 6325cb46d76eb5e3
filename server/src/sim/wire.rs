//! The simulator's streamed responses, written straight to protobuf's wire format.
//!
//! A streamed response is encoded once, when its step falls due, with room left for its send
//! time; as tonic takes it to send, [`Encoded::stamp`] writes the time in place and the bytes
//! are copied out. Building a `pb` message per token, inserting the time into its map,
//! encoding it and dropping it cost most of the simulator's time per token.
//!
//! Fields are written in the order they are known, not by field number: protobuf parsers
//! (prost's, and the C++ one in Triton's clients) accept fields in any order. A test decodes
//! every kind of response with prost and compares it with the message the unary path builds.

use prost::Message;
use prost::bytes::{Buf, BufMut};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::scheduler::STAMP;
use crate::convention::SEND_TIME_KEY;
use crate::pb;

const LEN: u8 = 2;
const VARINT: u8 = 0;
/// A send time is written as a varint padded to this width, whatever its value, so its
/// place in the message is fixed before the time is known (`ns` below 2^63 fits).
const TIME_WIDTH: usize = 9;
/// Room for the outer message's tag and length, written last, in front of the rest.
const HEAD_ROOM: usize = 6;

/// One output tensor of a response, borrowed.
pub struct Output<'a> {
    pub name: &'a str,
    pub datatype: &'a str,
    pub shape: &'a [i64],
    pub raw: Raw<'a>,
}

/// An output's raw contents.
pub enum Raw<'a> {
    /// One BYTES element: written with its 4-byte length in front.
    Element(&'a [u8]),
    /// Bytes as they are.
    Plain(&'a [u8]),
}

impl Raw<'_> {
    fn len(&self) -> usize {
        match self {
            Raw::Element(bytes) => 4 + bytes.len(),
            Raw::Plain(bytes) => bytes.len(),
        }
    }
}

/// A `ModelStreamInferResponse` on the wire, with the places its send time goes.
pub struct Encoded {
    bytes: Vec<u8>,
    /// Where the message starts in `bytes`.
    start: usize,
    /// Where the send-time parameter's padded varint is, if the response has one.
    time_at: Option<usize>,
    /// Where each [`STAMP`] placeholder's 19 digits are.
    text_stamps: Vec<usize>,
}

impl Encoded {
    /// A message that takes no send time, such as an error.
    pub fn plain(response: &pb::ModelStreamInferResponse) -> Self {
        Self { bytes: response.encode_to_vec(), start: 0, time_at: None, text_stamps: Vec::new() }
    }

    /// The message's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// Writes `send_ns` (Unix nanoseconds) as the response's send time: its parameter, and
    /// every placeholder in its text.
    pub fn stamp(&mut self, send_ns: i64) {
        if let Some(at) = self.time_at {
            put_padded_varint(&mut self.bytes[at..at + TIME_WIDTH], send_ns as u64);
        }
        if !self.text_stamps.is_empty() {
            let digits = format!("{send_ns:019}");
            for &at in &self.text_stamps {
                self.bytes[at..at + 19].copy_from_slice(&digits.as_bytes()[..19]);
            }
        }
    }
}

/// The fields every response of one request shares: model name, version and request id.
pub fn head(model: &str, version: &str, id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(model.len() + version.len() + id.len() + 6);
    bytes_field(&mut out, 1, model.as_bytes());
    bytes_field(&mut out, 2, version.as_bytes());
    if !id.is_empty() {
        bytes_field(&mut out, 3, id.as_bytes());
    }
    out
}

/// A streamed response: `head` (from [`head`]), the final flag, a send time to be stamped,
/// and `outputs`.
pub fn response(head: &[u8], is_final: bool, outputs: &[Output]) -> Encoded {
    let params = param_len(FINAL_KEY, 2) + param_len(SEND_TIME_KEY, 1 + TIME_WIDTH);
    let tensors: usize = outputs.iter().map(|o| field_len(5, output_len(o))).sum();
    let raws: usize = outputs.iter().map(|o| field_len(6, o.raw.len())).sum();
    let inner = head.len() + params + tensors + raws;
    let mut bytes = Vec::with_capacity(HEAD_ROOM + inner);
    bytes.resize(HEAD_ROOM, 0);
    bytes.extend_from_slice(head);

    param_head(&mut bytes, FINAL_KEY, 2);
    key(&mut bytes, 1, VARINT);
    bytes.push(u8::from(is_final));
    param_head(&mut bytes, SEND_TIME_KEY, 1 + TIME_WIDTH);
    key(&mut bytes, 2, VARINT);
    let time_at = bytes.len();
    bytes.resize(time_at + TIME_WIDTH, 0);
    // Until stamped, the time reads as 0.
    put_padded_varint(&mut bytes[time_at..], 0);

    for output in outputs {
        key(&mut bytes, 5, LEN);
        varint(&mut bytes, output_len(output) as u64);
        bytes_field(&mut bytes, 1, output.name.as_bytes());
        bytes_field(&mut bytes, 2, output.datatype.as_bytes());
        if !output.shape.is_empty() {
            key(&mut bytes, 3, LEN);
            varint(&mut bytes, packed_len(output.shape) as u64);
            for &dim in output.shape {
                varint(&mut bytes, dim as u64);
            }
        }
    }
    let mut text_stamps = Vec::new();
    for output in outputs {
        key(&mut bytes, 6, LEN);
        varint(&mut bytes, output.raw.len() as u64);
        let body = match output.raw {
            Raw::Element(element) => {
                bytes.put_u32_le(u32::try_from(element.len()).expect("a token's text is under 4 GiB"));
                element
            }
            Raw::Plain(plain) => plain,
        };
        let at = bytes.len();
        bytes.extend_from_slice(body);
        let mut from = 0;
        while let Some(found) = find(&body[from..], STAMP.as_bytes()) {
            text_stamps.push(at + from + found + 1);
            from += found + STAMP.len();
        }
    }
    debug_assert_eq!(bytes.len(), HEAD_ROOM + inner);

    // The outer message: field 2 (infer_response) of a ModelStreamInferResponse.
    let mut outer = [0u8; HEAD_ROOM];
    let mut n = 0;
    outer[n] = (2 << 3) | LEN;
    n += 1;
    let mut len = inner as u64;
    while len >= 0x80 {
        outer[n] = (len as u8) | 0x80;
        len >>= 7;
        n += 1;
    }
    outer[n] = len as u8;
    n += 1;
    let start = HEAD_ROOM - n;
    bytes[start..HEAD_ROOM].copy_from_slice(&outer[..n]);
    Encoded { bytes, start, time_at: Some(time_at), text_stamps }
}

const FINAL_KEY: &str = "triton_final_response";

fn output_len(output: &Output) -> usize {
    let shape = if output.shape.is_empty() { 0 } else { field_len(3, packed_len(output.shape)) };
    field_len(1, output.name.len()) + field_len(2, output.datatype.len()) + shape
}

fn packed_len(values: &[i64]) -> usize {
    values.iter().map(|&v| varint_len(v as u64)).sum()
}

/// The length of a map entry `key -> InferParameter` whose parameter takes `value_len` bytes.
fn param_len(name: &str, value_len: usize) -> usize {
    field_len(4, entry_len(name, value_len))
}

fn entry_len(name: &str, value_len: usize) -> usize {
    field_len(1, name.len()) + field_len(2, value_len)
}

/// Writes a parameter map entry up to its value's contents, which take `value_len` bytes.
fn param_head(out: &mut Vec<u8>, name: &str, value_len: usize) {
    key(out, 4, LEN);
    varint(out, entry_len(name, value_len) as u64);
    bytes_field(out, 1, name.as_bytes());
    key(out, 2, LEN);
    varint(out, value_len as u64);
}

fn field_len(field: u32, len: usize) -> usize {
    varint_len(u64::from(field << 3)) + varint_len(len as u64) + len
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire_type)));
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// A varint of exactly `out.len()` bytes: continuation bits on all but the last, which
/// protobuf parsers read as the same value.
fn put_padded_varint(out: &mut [u8], mut value: u64) {
    let last = out.len() - 1;
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (value & 0x7f) as u8 | if i < last { 0x80 } else { 0 };
        value >>= 7;
    }
    debug_assert_eq!(value, 0, "the value fits the padded width");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// ModelStreamInfer's codec: requests decoded by prost, responses sent as encoded, stamped
/// with their send time as they are written.
#[derive(Default)]
pub struct StreamCodec;

impl Codec for StreamCodec {
    type Encode = Encoded;
    type Decode = pb::ModelInferRequest;
    type Encoder = StampingEncoder;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        StampingEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder
    }
}

pub struct StampingEncoder;

impl Encoder for StampingEncoder {
    type Item = Encoded;
    type Error = Status;

    fn encode(&mut self, mut item: Encoded, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.stamp(crate::clock::unix_now_ns());
        dst.put_slice(item.as_bytes());
        Ok(())
    }
}

pub struct RequestDecoder;

impl Decoder for RequestDecoder {
    type Item = pb::ModelInferRequest;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<pb::ModelInferRequest>, Status> {
        let request = pb::ModelInferRequest::decode(src.copy_to_bytes(src.remaining()))
            .map_err(|err| Status::internal(format!("a request that is not a ModelInferRequest: {err}")))?;
        Ok(Some(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::infer_parameter::ParameterChoice;

    #[test]
    fn varint_lengths_match_prosts_own() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            assert_eq!(out.len(), prost::encoding::encoded_len_varint(v), "{v}");
        }
    }

    #[test]
    fn a_padded_varint_reads_back_as_its_value() {
        for v in [0i64, 1, 1_795_000_000_123_456_789, i64::MAX] {
            let mut out = [0u8; TIME_WIDTH];
            put_padded_varint(&mut out, v as u64);
            assert_eq!(prost::encoding::decode_varint(&mut &out[..]).unwrap(), v as u64);
        }
    }

    #[test]
    fn a_response_decodes_to_the_message_it_stands_for_with_its_stamps() {
        let text = format!(" {STAMP} @ {STAMP}");
        let ids = [1i32, 2].map(i32::to_le_bytes).concat();
        let outputs = [
            Output { name: "text_output", datatype: "BYTES", shape: &[1, 1], raw: Raw::Element(text.as_bytes()) },
            Output { name: "output_ids", datatype: "INT32", shape: &[1, 2], raw: Raw::Plain(&ids) },
            Output { name: "empty", datatype: "UINT32", shape: &[], raw: Raw::Plain(&[]) },
        ];
        let mut encoded = response(&head("m", "1", "req-7"), true, &outputs);
        encoded.stamp(1_795_000_000_123_456_789);
        let decoded = pb::ModelStreamInferResponse::decode(encoded.as_bytes()).unwrap();
        assert_eq!(decoded.error_message, "");
        let inner = decoded.infer_response.unwrap();
        assert_eq!((inner.model_name.as_str(), inner.model_version.as_str(), inner.id.as_str()), ("m", "1", "req-7"));
        assert_eq!(inner.parameters[FINAL_KEY].parameter_choice, Some(ParameterChoice::BoolParam(true)));
        assert_eq!(
            inner.parameters[SEND_TIME_KEY].parameter_choice,
            Some(ParameterChoice::Int64Param(1_795_000_000_123_456_789))
        );
        let shapes: Vec<_> =
            inner.outputs.iter().map(|o| (o.name.as_str(), o.datatype.as_str(), &o.shape[..])).collect();
        assert_eq!(
            shapes,
            [
                ("text_output", "BYTES", &[1i64, 1][..]),
                ("output_ids", "INT32", &[1, 2][..]),
                ("empty", "UINT32", &[][..])
            ]
        );
        let stamped = " @1795000000123456789 @ @1795000000123456789";
        assert_eq!(inner.raw_output_contents[0], crate::bytes::encode_raw_one(stamped.as_bytes()));
        assert_eq!(inner.raw_output_contents[1], ids);
        assert!(inner.raw_output_contents[2].is_empty());
    }

    #[test]
    fn a_long_response_has_a_long_outer_length() {
        let text = "x".repeat(100_000);
        let outputs = [Output { name: "t", datatype: "BYTES", shape: &[1], raw: Raw::Element(text.as_bytes()) }];
        let encoded = response(&head("m", "1", ""), false, &outputs);
        let inner = pb::ModelStreamInferResponse::decode(encoded.as_bytes()).unwrap().infer_response.unwrap();
        assert_eq!(inner.raw_output_contents[0].len(), 100_004);
        assert_eq!(inner.id, "");
    }

    #[test]
    fn a_plain_message_is_sent_as_it_is() {
        let message = pb::ModelStreamInferResponse { error_message: "boom".into(), infer_response: None };
        let mut encoded = Encoded::plain(&message);
        encoded.stamp(5);
        assert_eq!(pb::ModelStreamInferResponse::decode(encoded.as_bytes()).unwrap(), message);
    }
}
