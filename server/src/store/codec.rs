//! The compact binary form of a [`RequestRecord`], as the store keeps it.
//!
//! A record is laid out in columns, so that like numbers sit together: arrival times as
//! deltas (the first from the send, each next from the one before), token counts, server
//! times as deltas from the matching local time (the run's wall-clock anchor plus the
//! offset), text lengths, then every text byte. Deltas are taken with wrapping arithmetic and
//! zigzag-encoded, so any record, however odd its times, comes back identical.
//!
//! A column of numbers is written at the width of its largest one, byte plane by byte plane
//! (every low byte, then every next byte): the high planes of nanosecond deltas barely vary,
//! and deflate, applied to the whole body when that makes it smaller, then all but removes
//! them. Token texts repeat a great deal, and deflate takes care of that too.
//!
//! ```text
//! blob    := format:u8 body            (format 1: body as is, 2: body deflated; 3 and 4:
//!                                       the same, with the finish reason at the end)
//! body    := flags:u8 point seq id prompt_words [input_tokens] send_ns [lag] [recv] [final] [error]
//!            n column(arrivals) column(tokens) has_send_bitmap[(n+7)/8] column(sends)
//!            column(text_lens) text_bytes [finish_reason]
//! column  := width:u8 plane{width}     (plane: one byte of each number, lowest plane first)
//! ```
//!
//! Header numbers are LEB128 varints; signed ones are zigzag-encoded first.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use shared::telemetry::Telemetry;
use shared::varint::{put, unzigzag, zigzag};
use shared::{RequestRecord, ResponseRecord, Responses, TokenCountSource};

const RAW: u8 = 1;
const DEFLATED: u8 = 2;
/// The same two, for a body that ends with the record's finish reason: records without one
/// are written as they always were.
const RAW_FINISHED: u8 = 3;
const DEFLATED_FINISHED: u8 = 4;

const WARMUP: u8 = 1;
const INPUT_TOKENS: u8 = 1 << 1;
const SERVER_RECV: u8 = 1 << 2;
const FINAL: u8 = 1 << 3;
const ERROR: u8 = 1 << 4;
const SOURCE_SHIFT: u8 = 5;
/// The token count source takes two bits; the top bit says an intended send time follows.
const SOURCE_MASK: u8 = 0b11;
const INTENDED: u8 = 1 << 7;

/// No stored record comes near this; a blob that claims more is damaged.
const MAX_BODY: u64 = 1 << 30;

/// Why a stored record could not be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("the record ends early")]
    Truncated,
    #[error("the record has an unknown format {0}")]
    UnknownFormat(u8),
    #[error("a number in the record is out of range")]
    OutOfRange,
    #[error("a text in the record is not UTF-8")]
    NotUtf8,
    #[error("the record has {0} bytes left over")]
    Trailing(usize),
    #[error("the record could not be inflated: {0}")]
    Inflate(String),
}

/// Encodes a record. `base_unix_ns` is the run's wall-clock anchor: server times are kept as
/// their distance from the matching local time, which is short.
pub fn encode(record: &RequestRecord, base_unix_ns: i64) -> Vec<u8> {
    let body = body(record, base_unix_ns);
    let mut deflater = DeflateEncoder::new(Vec::with_capacity(body.len() / 2 + 1), Compression::fast());
    let deflated = deflater.write_all(&body).and_then(|()| deflater.finish());
    let (format, bytes) = match deflated {
        Ok(deflated) if deflated.len() < body.len() => (DEFLATED, deflated),
        _ => (RAW, body),
    };
    let mut blob = Vec::with_capacity(bytes.len() + 1);
    blob.push(match (format, record.finish_reason.is_some()) {
        (RAW, true) => RAW_FINISHED,
        (_, true) => DEFLATED_FINISHED,
        (format, false) => format,
    });
    blob.extend_from_slice(&bytes);
    blob
}

/// Decodes what [`encode`] wrote with the same `base_unix_ns`.
pub fn decode(blob: &[u8], base_unix_ns: i64) -> Result<RequestRecord, CodecError> {
    let (&format, rest) = blob.split_first().ok_or(CodecError::Truncated)?;
    let (deflated, finish) = match format {
        RAW => (false, false),
        DEFLATED => (true, false),
        RAW_FINISHED => (false, true),
        DEFLATED_FINISHED => (true, true),
        other => return Err(CodecError::UnknownFormat(other)),
    };
    if !deflated {
        return read_body(rest, base_unix_ns, finish);
    }
    let mut body = Vec::with_capacity(rest.len() * 4);
    DeflateDecoder::new(rest).take(MAX_BODY).read_to_end(&mut body).map_err(|e| CodecError::Inflate(e.to_string()))?;
    read_body(&body, base_unix_ns, finish)
}

/// Deflates a run's server metrics (their JSON), which repeat names and times a great deal.
pub fn encode_telemetry(telemetry: &Telemetry) -> Vec<u8> {
    let mut deflater = DeflateEncoder::new(Vec::new(), Compression::fast());
    serde_json::to_writer(&mut deflater, telemetry).expect("telemetry serializes");
    deflater.finish().expect("deflating into memory does not fail")
}

/// Reads what [`encode_telemetry`] wrote.
pub fn decode_telemetry(blob: &[u8]) -> Result<Telemetry, CodecError> {
    let reader = DeflateDecoder::new(blob).take(MAX_BODY);
    serde_json::from_reader(reader).map_err(|e| CodecError::Inflate(e.to_string()))
}

fn source_bits(source: TokenCountSource) -> u8 {
    match source {
        TokenCountSource::Responses => 0,
        TokenCountSource::Server => 1,
        TokenCountSource::Words => 2,
        TokenCountSource::Tokenizer => 3,
    }
}

fn body(r: &RequestRecord, base: i64) -> Vec<u8> {
    let text_len = r.responses.text_len();
    let mut out = Vec::with_capacity(32 + r.id.len() + r.responses.len() * 8 + text_len);
    let mut flags = source_bits(r.token_source) << SOURCE_SHIFT;
    for (set, bit) in [
        (r.warmup, WARMUP),
        (r.num_input_tokens.is_some(), INPUT_TOKENS),
        (r.server_recv_unix_ns.is_some(), SERVER_RECV),
        (r.final_ns.is_some(), FINAL),
        (r.error.is_some(), ERROR),
        (r.intended_ns.is_some(), INTENDED),
    ] {
        if set {
            flags |= bit;
        }
    }
    out.push(flags);
    put(&mut out, r.point.into());
    put(&mut out, r.seq.into());
    put_bytes(&mut out, r.id.as_bytes());
    put(&mut out, r.prompt_words.into());
    if let Some(n) = r.num_input_tokens {
        put(&mut out, n.into());
    }
    put(&mut out, r.send_ns);
    if let Some(intended) = r.intended_ns {
        put_signed(&mut out, r.send_ns.wrapping_sub(intended) as i64);
    }
    if let Some(recv) = r.server_recv_unix_ns {
        put_signed(&mut out, recv.wrapping_sub(local_unix(base, r.send_ns)));
    }
    if let Some(at) = r.final_ns {
        put_signed(&mut out, at.wrapping_sub(r.send_ns) as i64);
    }
    if let Some(error) = &r.error {
        put_bytes(&mut out, error.as_bytes());
    }
    put(&mut out, r.responses.len() as u64);
    let previous = std::iter::once(r.send_ns).chain(r.responses.iter().map(|c| c.at_ns));
    let arrivals = r.responses.iter().zip(previous).map(|(c, before)| zigzag(c.at_ns.wrapping_sub(before) as i64));
    put_column(&mut out, arrivals.collect());
    put_column(&mut out, r.responses.iter().map(|c| c.tokens.into()).collect());
    let stamped: Vec<bool> = r.responses.iter().map(|c| c.server_send_unix_ns.is_some()).collect();
    for chunk in stamped.chunks(8) {
        out.push(chunk.iter().enumerate().filter(|(_, s)| **s).fold(0u8, |byte, (i, _)| byte | 1 << i));
    }
    let sends = r
        .responses
        .iter()
        .filter_map(|c| c.server_send_unix_ns.map(|sent| zigzag(sent.wrapping_sub(local_unix(base, c.at_ns)))));
    put_column(&mut out, sends.collect());
    put_column(&mut out, r.responses.iter().map(|c| c.text.len() as u64).collect());
    out.extend_from_slice(r.responses.text().as_bytes());
    if let Some(reason) = &r.finish_reason {
        put_bytes(&mut out, reason.as_bytes());
    }
    out
}

/// Reads a body, which ends with the record's finish reason when `finish` says so.
fn read_body(bytes: &[u8], base: i64, finish: bool) -> Result<RequestRecord, CodecError> {
    let mut input = Reader { bytes };
    let flags = input.byte()?;
    let token_source = match (flags >> SOURCE_SHIFT) & SOURCE_MASK {
        0 => TokenCountSource::Responses,
        1 => TokenCountSource::Server,
        2 => TokenCountSource::Words,
        _ => TokenCountSource::Tokenizer,
    };
    let point = input.u32()?;
    let seq = input.u32()?;
    let id = input.string()?;
    let prompt_words = input.u32()?;
    let num_input_tokens = if flags & INPUT_TOKENS != 0 { Some(input.u32()?) } else { None };
    let send_ns = input.varint()?;
    let intended_ns = if flags & INTENDED != 0 { Some(send_ns.wrapping_sub(input.signed()? as u64)) } else { None };
    let server_recv_unix_ns =
        if flags & SERVER_RECV != 0 { Some(input.signed()?.wrapping_add(local_unix(base, send_ns))) } else { None };
    let final_ns = if flags & FINAL != 0 { Some(send_ns.wrapping_add(input.signed()? as u64)) } else { None };
    let error = if flags & ERROR != 0 { Some(input.string()?) } else { None };
    let responses = read_responses(&mut input, send_ns, base)?;
    let finish_reason = if finish { Some(input.string()?) } else { None };
    if !input.bytes.is_empty() {
        return Err(CodecError::Trailing(input.bytes.len()));
    }
    Ok(RequestRecord {
        point,
        seq,
        warmup: flags & WARMUP != 0,
        id,
        prompt_words,
        num_input_tokens,
        send_ns,
        intended_ns,
        server_recv_unix_ns,
        responses,
        final_ns,
        token_source,
        error,
        finish_reason,
    })
}

fn read_responses(input: &mut Reader<'_>, send_ns: u64, base: i64) -> Result<Responses, CodecError> {
    let n = input.varint()?;
    // Every response takes at least a bit of the send-time bitmap, so a count beyond that is
    // damage, not a reason to allocate. (Its other columns can be zero bytes wide.)
    if n.div_ceil(8) > input.bytes.len() as u64 {
        return Err(CodecError::Truncated);
    }
    let n = n as usize;
    let mut at_ns = send_ns;
    let arrivals: Vec<u64> = input
        .column(n)?
        .into_iter()
        .map(|delta| {
            at_ns = at_ns.wrapping_add(unzigzag(delta) as u64);
            at_ns
        })
        .collect();
    let tokens = input.column(n)?;
    let bitmap = input.take(n.div_ceil(8))?;
    let stamped = (0..n).filter(|i| bitmap[i / 8] & (1 << (i % 8)) != 0).collect::<Vec<_>>();
    let mut sent = vec![None; n];
    for (&i, delta) in stamped.iter().zip(input.column(stamped.len())?) {
        sent[i] = Some(unzigzag(delta).wrapping_add(local_unix(base, arrivals[i])));
    }
    let lengths = input.column(n)?;
    let mut responses = Responses::default();
    for (i, len) in lengths.into_iter().enumerate() {
        let len = usize::try_from(len).map_err(|_| CodecError::OutOfRange)?;
        let text = std::str::from_utf8(input.take(len)?).map_err(|_| CodecError::NotUtf8)?;
        responses.push(ResponseRecord {
            at_ns: arrivals[i],
            tokens: u32::try_from(tokens[i]).map_err(|_| CodecError::OutOfRange)?,
            text,
            server_send_unix_ns: sent[i],
        });
    }
    Ok(responses)
}

/// The wall-clock time of a run offset, as the server's clock would read it.
fn local_unix(base: i64, offset_ns: u64) -> i64 {
    base.wrapping_add(offset_ns as i64)
}

fn put_signed(out: &mut Vec<u8>, value: i64) {
    put(out, zigzag(value));
}

/// Writes numbers at the width of the largest, lowest byte plane first.
fn put_column(out: &mut Vec<u8>, values: Vec<u64>) {
    let largest = values.iter().copied().max().unwrap_or(0);
    let width = (8 - largest.leading_zeros() as usize / 8) as u8;
    out.push(width);
    for plane in 0..width {
        out.extend(values.iter().map(|v| (v >> (8 * plane)) as u8));
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, CodecError> {
        let (&first, rest) = self.bytes.split_first().ok_or(CodecError::Truncated)?;
        self.bytes = rest;
        Ok(first)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        if len > self.bytes.len() {
            return Err(CodecError::Truncated);
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(CodecError::OutOfRange);
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::OutOfRange)
    }

    fn signed(&mut self) -> Result<i64, CodecError> {
        Ok(unzigzag(self.varint()?))
    }

    /// Reads a column of `n` numbers.
    fn column(&mut self, n: usize) -> Result<Vec<u64>, CodecError> {
        let width = self.byte()? as usize;
        if width > 8 {
            return Err(CodecError::OutOfRange);
        }
        let planes = self.take(n.checked_mul(width).ok_or(CodecError::Truncated)?)?;
        let mut values = vec![0u64; n];
        for (plane, bytes) in planes.chunks_exact(n.max(1)).enumerate() {
            for (value, &byte) in values.iter_mut().zip(bytes) {
                *value |= u64::from(byte) << (8 * plane);
            }
        }
        Ok(values)
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        u32::try_from(self.varint()?).map_err(|_| CodecError::OutOfRange)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let len = usize::try_from(self.varint()?).map_err(|_| CodecError::OutOfRange)?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::NotUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: i64 = 1_764_000_000_123_456_789;

    fn streamed(tokens: u32) -> RequestRecord {
        let send_ns = 5_000_000_123;
        let texts: Vec<String> = (0..tokens).map(|i| format!(" w{i}é")).collect();
        RequestRecord {
            point: 3,
            seq: 41,
            warmup: false,
            id: "3-41".into(),
            prompt_words: 256,
            num_input_tokens: Some(301),
            send_ns,
            intended_ns: Some(send_ns - 150_321),
            server_recv_unix_ns: Some(BASE + send_ns as i64 + 48_213),
            responses: (0..tokens)
                .zip(&texts)
                .map(|(i, text)| ResponseRecord {
                    at_ns: send_ns + 20_000_000 + u64::from(i) * 12_000_317 + u64::from(i % 7) * 911,
                    tokens: 1,
                    text,
                    server_send_unix_ns: (i % 3 != 0).then(|| BASE + send_ns as i64 + 19_900_000 + i64::from(i)),
                })
                .chain(std::iter::once(ResponseRecord {
                    at_ns: send_ns + 20_000_000 + u64::from(tokens) * 12_000_317,
                    tokens: 0,
                    text: "",
                    server_send_unix_ns: None,
                }))
                .collect(),
            final_ns: Some(send_ns + 20_000_000 + u64::from(tokens) * 12_000_317),
            token_source: TokenCountSource::Server,
            error: None,
            finish_reason: None,
        }
    }

    #[test]
    fn a_streamed_record_comes_back_identical_and_small() {
        let record = streamed(256);
        let blob = encode(&record, BASE);
        assert_eq!(decode(&blob, BASE).unwrap(), record);
        let json = serde_json::to_vec(&record).unwrap().len();
        assert!(blob.len() * 5 < json, "{} bytes encoded against {json} of JSON", blob.len());
    }

    #[test]
    fn odd_records_come_back_identical() {
        let bare = RequestRecord {
            point: u32::MAX,
            seq: 0,
            warmup: true,
            id: String::new(),
            prompt_words: 0,
            num_input_tokens: None,
            send_ns: u64::MAX,
            intended_ns: Some(3),
            server_recv_unix_ns: Some(i64::MIN),
            responses: vec![
                ResponseRecord { at_ns: 0, tokens: u32::MAX, text: "x", server_send_unix_ns: Some(i64::MAX) },
                ResponseRecord { at_ns: u64::MAX, tokens: 0, text: "", server_send_unix_ns: Some(-1) },
            ]
            .into(),
            final_ns: Some(0),
            token_source: TokenCountSource::Words,
            error: Some("the stream broke: ünïcode".into()),
            finish_reason: None,
        };
        for base in [BASE, 0, i64::MIN, i64::MAX] {
            assert_eq!(decode(&encode(&bare, base), base).unwrap(), bare);
        }
        let silent = ResponseRecord { at_ns: 7, tokens: 0, text: "", server_send_unix_ns: None };
        let zero_width = RequestRecord { send_ns: 7, responses: vec![silent; 40].into(), ..bare.clone() };
        assert_eq!(decode(&encode(&zero_width, BASE), BASE).unwrap(), zero_width);
        for token_source in [TokenCountSource::Responses, TokenCountSource::Server, TokenCountSource::Tokenizer] {
            let counted = RequestRecord { token_source, ..bare.clone() };
            assert_eq!(decode(&encode(&counted, BASE), BASE).unwrap(), counted);
        }
        let empty = RequestRecord {
            responses: Responses::default(),
            final_ns: None,
            server_recv_unix_ns: None,
            intended_ns: None,
            ..bare
        };
        assert_eq!(decode(&encode(&empty, BASE), BASE).unwrap(), empty);
    }

    #[test]
    fn a_finish_reason_comes_back_and_a_record_without_one_is_written_as_before() {
        let record = streamed(64);
        assert_eq!(encode(&record, BASE)[0], DEFLATED);
        let finished = RequestRecord { finish_reason: Some("length".into()), ..record };
        let blob = encode(&finished, BASE);
        assert_eq!(blob[0], DEFLATED_FINISHED);
        assert_eq!(decode(&blob, BASE).unwrap(), finished);
        let short = RequestRecord { responses: Responses::default(), finish_reason: Some("stöp".into()), ..finished };
        let blob = encode(&short, BASE);
        assert_eq!(blob[0], RAW_FINISHED);
        assert_eq!(decode(&blob, BASE).unwrap(), short);
        for cut in 1..blob.len() {
            assert!(decode(&blob[..cut], BASE).is_err(), "cut at {cut}");
        }
        // The same body read as one without a finish reason has bytes left over.
        let mut unmarked = blob.clone();
        unmarked[0] = RAW;
        assert!(matches!(decode(&unmarked, BASE), Err(CodecError::Trailing(_))));
    }

    #[test]
    fn damaged_blobs_are_errors_not_panics() {
        let blob = encode(&streamed(16), BASE);
        assert_eq!(decode(&[], BASE), Err(CodecError::Truncated));
        assert_eq!(decode(&[9, 1, 2], BASE), Err(CodecError::UnknownFormat(9)));
        assert!(decode(&blob[..blob.len() / 2], BASE).is_err());
        let mut raw = vec![RAW];
        raw.extend(body(&streamed(16), BASE));
        for cut in 1..raw.len() {
            assert!(decode(&raw[..cut], BASE).is_err(), "cut at {cut}");
        }
        raw.push(0);
        assert_eq!(decode(&raw, BASE), Err(CodecError::Trailing(1)));
        assert_eq!(decode(&[RAW, 0xff, 0xff], BASE), Err(CodecError::Truncated));
        assert_eq!(decode(&[RAW, 0, 0xff, 0xff, 0xff, 0xff, 0x7f], BASE), Err(CodecError::OutOfRange));
    }
}
