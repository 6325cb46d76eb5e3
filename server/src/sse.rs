//! Server-Sent Events read incrementally, as the socket hands in bytes: Triton's HTTP
//! generate stream and OpenAI-compatible streams both answer in this format.
//!
//! The rules are the WHATWG event-stream ones: lines end in `\n`, `\r\n` or `\r` (also when
//! the `\r` and the `\n` come in different reads); a UTF-8 byte order mark at the very start
//! is skipped; `data:` lines are joined with `\n`; one space after a field's colon is dropped;
//! lines that start with `:` are comments (keep-alives); `event:` names the event's type;
//! `id:`, `retry:` and unknown fields are ignored; a blank line dispatches the event, unless
//! it has no data line. Each event carries the time of the read that brought its dispatching
//! blank line, which is when it could first have been read whole.

use std::collections::VecDeque;

use shared::limits::MAX_EVENT_BYTES;
use thiserror::Error;

const BOM: &[u8] = "\u{feff}".as_bytes();

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The type an `event:` line named, if one did.
    pub event: Option<String>,
    /// The event's `data:` lines, joined with `\n`.
    pub data: String,
    /// The `read_at_ns` of the [`SseDecoder::push`] that completed the event.
    pub arrived_ns: u64,
}

/// Why a stream of events cannot be read on.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SseError {
    #[error("the server sent an event of more than {cap} bytes; tokenscope reads events of at most {} MiB", cap >> 20)]
    TooLarge { cap: usize },
    #[error("the server sent an event whose {what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("the stream ended in the middle of an event (it had {bytes} bytes with no blank line after them)")]
    CutOff { bytes: usize },
}

/// Reads a stream of Server-Sent Events from the byte chunks a connection reads.
#[derive(Debug)]
pub struct SseDecoder {
    /// The end of a line not yet read whole.
    line: Vec<u8>,
    /// The current event's data lines so far, joined with `\n`.
    data: Vec<u8>,
    /// Whether the current event has a data line (an empty one counts).
    has_data: bool,
    event: Option<String>,
    /// How many bytes of a byte order mark the stream has begun with, until it is decided
    /// whether it has one; `None` once decided.
    bom: Option<usize>,
    /// The last line ended in `\r`: a `\n` right after belongs to that line end.
    after_cr: bool,
    events: VecDeque<SseEvent>,
    cap: usize,
    failed: Option<SseError>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_cap(MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    /// A decoder that refuses events of more than [`MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that refuses events of more than `cap` bytes (their data, or a line being
    /// read): it never holds more.
    pub fn with_cap(cap: usize) -> Self {
        Self {
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            event: None,
            bom: Some(0),
            after_cr: false,
            events: VecDeque::new(),
            cap,
            failed: None,
        }
    }

    /// Reads the bytes of one socket read, made at `read_at_ns`. Events it completes are
    /// queued for [`Self::next_event`], those completed before an error too. After an error
    /// every push answers it again.
    pub fn push(&mut self, mut bytes: &[u8], read_at_ns: u64) -> Result<(), SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if let Some(matched) = self.bom {
            let more = (BOM.len() - matched).min(bytes.len());
            if bytes[..more] == BOM[matched..matched + more] {
                bytes = &bytes[more..];
                self.bom = (matched + more < BOM.len()).then_some(matched + more);
            } else {
                // Not a byte order mark: what matched of one is the first line's start.
                self.line.extend_from_slice(&BOM[..matched]);
                self.bom = None;
            }
            if self.bom.is_some() {
                return Ok(());
            }
        }
        self.read(bytes, read_at_ns).inspect_err(|err| self.failed = Some(err.clone()))
    }

    fn read(&mut self, mut bytes: &[u8], read_at_ns: u64) -> Result<(), SseError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut self.after_cr) && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line, terminator) = (&bytes[..end], bytes[end]);
            bytes = &bytes[end + 1..];
            if terminator == b'\r' {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if self.line.is_empty() {
                self.line_of(line, read_at_ns)?;
            } else {
                self.hold(line)?;
                let held = std::mem::take(&mut self.line);
                let result = self.line_of(&held, read_at_ns);
                self.line = held;
                self.line.clear();
                result?;
            }
        }
        self.hold(bytes)
    }

    /// Keeps the start of a line not yet ended.
    fn hold(&mut self, part: &[u8]) -> Result<(), SseError> {
        if self.line.len() + part.len() + self.data.len() > self.cap {
            return Err(SseError::TooLarge { cap: self.cap });
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    /// Acts on one whole line.
    fn line_of(&mut self, line: &[u8], read_at_ns: u64) -> Result<(), SseError> {
        if line.is_empty() {
            return self.dispatch(read_at_ns);
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                let joint = usize::from(self.has_data);
                if self.data.len() + joint + value.len() > self.cap {
                    return Err(SseError::TooLarge { cap: self.cap });
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                let name = std::str::from_utf8(value).map_err(|_| SseError::InvalidUtf8 { what: "type" })?;
                self.event = Some(name.to_string());
            }
            // `id`, `retry` and unknown fields change nothing that is measured.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, read_at_ns: u64) -> Result<(), SseError> {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return Ok(());
        }
        let data = std::mem::take(&mut self.data);
        let data = String::from_utf8(data).map_err(|_| SseError::InvalidUtf8 { what: "data" })?;
        self.events.push_back(SseEvent { event, data, arrived_ns: read_at_ns });
        Ok(())
    }

    /// The next event completed, oldest first.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.events.pop_front()
    }

    /// Ends the stream: an error when it stopped inside an event (data lines read, or a line
    /// begun, with no blank line after them). A comment cut short is no event.
    pub fn finish(&self) -> Result<(), SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let partial_line = self.line.first().is_some_and(|&b| b != b':');
        if self.has_data || partial_line {
            return Err(SseError::CutOff { bytes: self.data.len() + self.line.len() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The events of `chunks`, each read at its index.
    fn events(chunks: &[&[u8]]) -> Vec<(Option<String>, String, u64)> {
        let mut decoder = SseDecoder::new();
        for (i, chunk) in chunks.iter().enumerate() {
            decoder.push(chunk, i as u64).unwrap();
        }
        decoder.finish().unwrap();
        std::iter::from_fn(|| decoder.next_event()).map(|e| (e.event, e.data, e.arrived_ns)).collect()
    }

    fn data(chunks: &[&[u8]]) -> Vec<String> {
        events(chunks).into_iter().map(|(_, data, _)| data).collect()
    }

    #[test]
    fn each_line_end_ends_a_line() {
        for stream in ["data: a\n\ndata: b\n\n", "data: a\r\n\r\ndata: b\r\n\r\n", "data: a\r\rdata: b\r\r"] {
            assert_eq!(data(&[stream.as_bytes()]), ["a", "b"], "{stream:?}");
        }
        assert_eq!(data(&[b"data: a\r\ndata: b\n\r\n"]), ["a\nb"], "mixed in one event");
    }

    #[test]
    fn a_cr_and_its_lf_in_two_reads_are_one_line_end() {
        // Were the `\n` a line end of its own, it would dispatch "a" early, at read 1.
        assert_eq!(events(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]), [(None, "a\nb".into(), 2)]);
        assert_eq!(events(&[b"data: a\r", b"\r"]), [(None, "a".into(), 1)]);
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_skipped_even_split() {
        assert_eq!(data(&["\u{feff}data: x\n\n".as_bytes()]), ["x"]);
        let bom = "\u{feff}".as_bytes();
        assert_eq!(data(&[&bom[..1], &bom[1..2], &bom[2..], b"data: x\n\n"]), ["x"]);
        // Only at the start: later, it is data.
        assert_eq!(data(&["data: x\n\n\u{feff}data: y\n\n".as_bytes()]), ["x"], "a line named \\u{{feff}}data");
        assert_eq!(data(&["data: \u{feff}y\n\n".as_bytes()]), ["\u{feff}y"]);
    }

    #[test]
    fn a_stream_that_starts_like_a_byte_order_mark_keeps_those_bytes() {
        let mut decoder = SseDecoder::new();
        decoder.push(&[0xEF, 0xBB], 0).unwrap();
        let err = decoder.push(b"x\n\n", 1);
        // The bytes are kept, so the line is "\xEF\xBBx", an unknown field: no event.
        assert_eq!(err, Ok(()));
        decoder.push(&[b'd', b'a', b't', b'a', b':', 0xEF, 0xBB, b'\n', b'\n'], 2).unwrap_err();
    }

    #[test]
    fn data_lines_join_and_one_space_is_dropped() {
        assert_eq!(data(&[b"data: a\ndata:b\ndata:  c\ndata\ndata:\n\n"]), ["a\nb\n c\n\n"]);
        assert_eq!(data(&[b"data\n\n"]), [""], "a data line without a colon is empty data");
        assert_eq!(data(&[b"data: {\"a\": 1}\n\n"]), ["{\"a\": 1}"]);
    }

    #[test]
    fn comments_ids_retries_and_unknown_fields_are_not_events() {
        assert_eq!(data(&[b": keep-alive\n\n:\n\nid: 7\n\nretry: 100\n\nfoo: bar\n\ndata: x\nid: 8\n\n"]), ["x"]);
    }

    #[test]
    fn the_event_type_is_kept_and_reset() {
        let got = events(&[b"event: error\ndata: boom\n\ndata: next\n\nevent: lone\n\ndata: after\n\n"]);
        let types: Vec<Option<&str>> = got.iter().map(|(t, _, _)| t.as_deref()).collect();
        assert_eq!(types, [Some("error"), None, None], "an event without data is not dispatched, its type goes");
    }

    #[test]
    fn an_event_arrives_with_the_read_of_its_blank_line() {
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: a\n", 10).unwrap();
        decoder.push(b"\ndata: b\n\ndata: c", 20).unwrap();
        decoder.push(b"\n\n", 30).unwrap();
        let arrived: Vec<u64> = std::iter::from_fn(|| decoder.next_event()).map(|e| e.arrived_ns).collect();
        assert_eq!(arrived, [20, 20, 30]);
    }

    #[test]
    fn a_stream_cut_inside_an_event_is_an_error() {
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: a\n\ndata: {\"choices\"", 0).unwrap();
        let err = decoder.finish().unwrap_err();
        assert_eq!(err, SseError::CutOff { bytes: 16 });
        assert!(err.to_string().starts_with("the stream ended in the middle of an event"), "{err}");
        assert_eq!(decoder.next_event().map(|e| e.data).as_deref(), Some("a"), "what came whole is kept");
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: a\n", 0).unwrap();
        assert!(decoder.finish().is_err(), "data lines without their blank line");
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: a\n\n: keep-al", 0).unwrap();
        assert_eq!(decoder.finish(), Ok(()), "a comment cut short is no event");
    }

    #[test]
    fn invalid_utf8_data_is_an_error_and_stays_one() {
        let mut decoder = SseDecoder::new();
        let err = decoder.push(b"data: ok\n\ndata: \xff\xfe\n\n", 0).unwrap_err();
        assert_eq!(err, SseError::InvalidUtf8 { what: "data" });
        assert_eq!(decoder.next_event().map(|e| e.data).as_deref(), Some("ok"));
        assert_eq!(decoder.push(b"data: fine\n\n", 1), Err(err.clone()));
        assert_eq!(decoder.finish(), Err(err));
        // A character split over two reads is whole in the event.
        assert_eq!(data(&["data: é".as_bytes()[..7].as_ref(), &"é\n\n".as_bytes()[1..]]), ["é"]);
    }

    #[test]
    fn an_event_over_the_cap_is_refused_before_it_is_held() {
        let mut decoder = SseDecoder::with_cap(16);
        decoder.push(b"data: 0123456789abcdef\n\n", 0).unwrap();
        assert_eq!(decoder.next_event().unwrap().data, "0123456789abcdef");
        let err = decoder.push(b"data: 0123456789\ndata: abcdef\n\n", 1).unwrap_err();
        assert_eq!(err, SseError::TooLarge { cap: 16 });
        let mut decoder = SseDecoder::with_cap(16);
        for _ in 0..2 {
            decoder.push(b"data: 01234567", 0).unwrap_or(());
        }
        assert_eq!(decoder.finish(), Err(SseError::TooLarge { cap: 16 }));
        assert!(decoder.line.len() <= 16, "never held past the cap");
        let text = SseError::TooLarge { cap: MAX_EVENT_BYTES }.to_string();
        assert!(text.contains("at most 64 MiB"), "{text}");
    }

    /// An event as written: its type, its data lines, comments before it.
    #[derive(Debug, Clone)]
    struct Written {
        event: Option<String>,
        lines: Vec<String>,
        comment: bool,
    }

    fn written() -> impl Strategy<Value = Written> {
        let line = "[a-z {}\":,é\u{feff}]{0,12}";
        (proptest::option::of("[a-z]{1,6}"), proptest::collection::vec(line, 1..4), any::<bool>())
            .prop_map(|(event, lines, comment)| Written { event, lines, comment })
    }

    proptest! {
        #[test]
        fn any_split_of_a_stream_reads_the_same_events(
            events in proptest::collection::vec(written(), 0..8),
            ends in proptest::collection::vec(0..3usize, 64),
            bom in any::<bool>(),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
        ) {
            let mut stream = if bom { BOM.to_vec() } else { Vec::new() };
            let mut end = ends.iter().cycle().map(|&i| ["\n", "\r\n", "\r"][i]);
            // Each event's expected data and the offset of its dispatching line end.
            let mut expected = Vec::new();
            for w in &events {
                if w.comment {
                    stream.extend_from_slice(b": keep-alive");
                    stream.extend_from_slice(end.next().unwrap().as_bytes());
                }
                if let Some(event) = &w.event {
                    stream.extend_from_slice(format!("event: {event}{}", end.next().unwrap()).as_bytes());
                }
                for line in &w.lines {
                    stream.extend_from_slice(format!("data: {line}{}", end.next().unwrap()).as_bytes());
                }
                let mut blank = end.next().unwrap();
                if blank == "\n" && stream.last() == Some(&b'\r') {
                    // "\r" then "\n" would be one line end, not two.
                    blank = "\r\n";
                }
                stream.extend_from_slice(blank.as_bytes());
                // A line ends at its first byte of "\r", "\r\n" or "\n": the event is whole then.
                expected.push((w.event.clone(), w.lines.join("\n"), stream.len() - blank.len()));
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            cuts.push(0);
            cuts.push(stream.len());
            cuts.sort_unstable();
            cuts.dedup();
            let mut decoder = SseDecoder::new();
            for (i, pair) in cuts.windows(2).enumerate() {
                decoder.push(&stream[pair[0]..pair[1]], i as u64).unwrap();
            }
            decoder.finish().unwrap();
            let got: Vec<SseEvent> = std::iter::from_fn(|| decoder.next_event()).collect();
            prop_assert_eq!(got.len(), expected.len());
            for (got, (event, data, at)) in got.iter().zip(&expected) {
                prop_assert_eq!(&got.event, event);
                prop_assert_eq!(&got.data, data);
                // The read holding the dispatching byte: the chunk whose range covers it.
                let chunk = cuts.windows(2).position(|p| p[0] <= *at && *at < p[1]).unwrap() as u64;
                prop_assert_eq!(got.arrived_ns, chunk);
            }
        }
    }
}
