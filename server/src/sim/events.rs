//! Server-Sent Events as the simulator's HTTP protocols write them: each event's JSON is
//! rendered as the connection takes it to send, and its send time is written last, as the
//! gRPC side stamps a response as tonic encodes it ([`super::wire::Encoded::stamp`]).

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::{Map, Value};

use super::scheduler::STAMP;
use crate::convention::SEND_TIME_KEY;

/// The content type of an event stream.
pub const CONTENT_TYPE: &str = "text/event-stream";

/// One event whose data is a JSON object, rendered but for its send time.
#[derive(Debug)]
pub struct Unstamped {
    /// `data: ` and the object without its closing brace.
    bytes: Vec<u8>,
    /// Whether the object has fields before the send time.
    fields: bool,
    /// Where each `--stamp-text` placeholder's 19 digits are.
    text_stamps: Vec<usize>,
}

impl Unstamped {
    /// The event of `object`, to which [`Self::stamp`] adds the send time.
    pub fn new(object: &Map<String, Value>) -> Self {
        let mut bytes = b"data: ".to_vec();
        serde_json::to_writer(&mut bytes, object).expect("a JSON object serializes");
        bytes.pop(); // The closing brace goes after the send time.
        let mut text_stamps = Vec::new();
        let mut from = 0;
        while let Some(found) = bytes[from..].windows(STAMP.len()).position(|w| w == STAMP.as_bytes()) {
            // STAMP holds no character that JSON escapes: it stands in the text as it is.
            text_stamps.push(from + found + 1);
            from += found + STAMP.len();
        }
        Self { bytes, fields: !object.is_empty(), text_stamps }
    }

    /// The event's bytes with `send_ns` (Unix nanoseconds) as its top-level `send_ns` and in
    /// place of every text placeholder.
    pub fn stamp(mut self, send_ns: i64) -> Vec<u8> {
        if !self.text_stamps.is_empty() {
            let digits = format!("{send_ns:019}");
            for &at in &self.text_stamps {
                self.bytes[at..at + 19].copy_from_slice(&digits.as_bytes()[..19]);
            }
        }
        let comma = if self.fields { "," } else { "" };
        self.bytes.extend_from_slice(format!("{comma}\"{SEND_TIME_KEY}\":{send_ns}}}\n\n").as_bytes());
        self.bytes
    }
}

/// Events stamped together, as one write: the time is taken after all are rendered.
pub fn stamp_all(events: Vec<Unstamped>) -> Vec<u8> {
    let send_ns = crate::clock::unix_now_ns();
    events.into_iter().flat_map(|e| e.stamp(send_ns)).collect()
}

/// An event that takes no send time, such as an error or OpenAI's `[DONE]`.
pub fn plain(data: &str) -> Vec<u8> {
    format!("data: {data}\n\n").into_bytes()
}

/// A 200 answer streaming `frames`, each written as it comes.
pub fn response<S>(frames: S) -> Response
where
    S: Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    ([(header::CONTENT_TYPE, CONTENT_TYPE), (header::CACHE_CONTROL, "no-cache")], Body::from_stream(frames))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_send_time_is_the_last_field_and_fills_the_placeholders() {
        let object = serde_json::json!({"text_output": format!(" {STAMP} @"), "model_name": "m"});
        let event = Unstamped::new(object.as_object().unwrap()).stamp(1_795_000_000_123_456_789);
        let text = String::from_utf8(event).unwrap();
        assert_eq!(
            text,
            "data: {\"model_name\":\"m\",\"text_output\":\" @1795000000123456789 @\",\"send_ns\":1795000000123456789}\n\n"
        );
        let empty = Unstamped::new(&Map::new()).stamp(7);
        assert_eq!(empty, b"data: {\"send_ns\":7}\n\n");
        assert_eq!(plain("[DONE]"), b"data: [DONE]\n\n");
    }
}
