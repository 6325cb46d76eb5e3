//! What was seen of one request: when it was sent and when each response arrived.
//!
//! Times are nanoseconds on the proxy's monotonic clock, counted from the run's start.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::varint;

/// One response of a streamed request, as it arrived: what a request's [`Responses`] are
/// built from and read back as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResponseRecord<'a> {
    /// Arrival time.
    pub at_ns: u64,
    /// Output tokens this response carries; 0 for an empty final response, or for one whose
    /// text starts no token as the run's tokenizer counts it.
    pub tokens: u32,
    /// The new text this response adds (cumulative outputs are reduced to their new part).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub text: &'a str,
    /// When the server says it sent this response (nanoseconds since the Unix epoch), if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_send_unix_ns: Option<i64>,
}

/// A response as a file holds it.
#[derive(Deserialize)]
struct OwnedResponse {
    at_ns: u64,
    tokens: u32,
    #[serde(default)]
    text: String,
    #[serde(default)]
    server_send_unix_ns: Option<i64>,
}

/// Every response of a request in arrival order, empty final responses included.
///
/// Kept packed, since a run holds one per token: a streamed token at a steady pace takes
/// 6 bytes plus its text (its arrival as the varint of its gap from the response before, its
/// tokens and its text's length), and from servers that stamp their send times about 3 more
/// (the change in the send time less the arrival since the response before). It is read in
/// order, and reads and writes as a list of [`ResponseRecord`]s. Once its request ends,
/// [`Responses::keep_in`] moves it into an [`Arena`] block shared with other requests', where
/// it takes no room beyond its bytes and a copy of it costs nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Responses {
    /// Per response: zigzag varints of its arrival less the one before's (the first's, less
    /// 0), of its tokens times 2 plus 1 if the server stamped its send time, of its text's
    /// length in bytes, and for a stamped one, of its send time less its arrival less the
    /// same of the stamped one before (the first's, less 0).
    packed: Part,
    len: usize,
    /// The last response's arrival, where the next one's gap is counted from.
    last_at_ns: u64,
    /// The last stamped response's send time less its arrival.
    last_offset_ns: i64,
    /// The responses' texts, one after another.
    text: Part,
}

impl Responses {
    /// Adds a response.
    pub fn push(&mut self, response: ResponseRecord<'_>) {
        let packed = self.packed.growing();
        let gap = response.at_ns.wrapping_sub(self.last_at_ns) as i64;
        varint::put(packed, varint::zigzag(gap));
        let stamped = response.server_send_unix_ns.is_some();
        varint::put(packed, u64::from(response.tokens) << 1 | u64::from(stamped));
        varint::put(packed, response.text.len() as u64);
        if let Some(sent) = response.server_send_unix_ns {
            let offset = sent.wrapping_sub(response.at_ns as i64);
            varint::put(packed, varint::zigzag(offset.wrapping_sub(self.last_offset_ns)));
            self.last_offset_ns = offset;
        }
        self.text.growing().extend_from_slice(response.text.as_bytes());
        self.last_at_ns = response.at_ns;
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn first(&self) -> Option<ResponseRecord<'_>> {
        self.iter().next()
    }

    pub fn last(&self) -> Option<ResponseRecord<'_>> {
        self.iter().last()
    }

    /// The responses in arrival order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { packed: self.packed.bytes(), text: self.text(), left: self.len, at_ns: 0, offset_ns: 0 }
    }

    /// All the responses' text, in order.
    pub fn text(&self) -> &str {
        std::str::from_utf8(self.text.bytes()).expect("text is added as whole strings")
    }

    /// The length of all the responses' text, in bytes.
    pub fn text_len(&self) -> usize {
        self.text.bytes().len()
    }

    /// What these responses take, for [`Responses::with_room`].
    pub fn room(&self) -> Room {
        Room { packed: self.packed.bytes().len(), text: self.text.bytes().len() }
    }

    /// No responses yet, with room for what `room` took and a little more, up to
    /// [`Room::MOST`] each for the packed responses and the text: a run's requests are alike,
    /// and a request that never outgrows its room is never copied, while one huge answer
    /// does not make every request after it hold as much.
    pub fn with_room(room: Room) -> Responses {
        let more = |n: usize| (n + n / 16).min(Room::MOST);
        Responses {
            packed: Part::Growing(Vec::with_capacity(more(room.packed))),
            text: Part::Growing(Vec::with_capacity(more(room.text))),
            ..Responses::default()
        }
    }

    /// Moves the responses into `arena`, once no more will come: they then take their
    /// bytes and no more, and copies of them share those bytes. A response added after
    /// copies them back out first.
    pub fn keep_in(&mut self, arena: &mut Arena) {
        arena.keep(&mut self.packed);
        arena.keep(&mut self.text);
    }
}

/// Bytes of a request's responses: growing while the request goes on, then kept in an
/// [`Arena`].
#[derive(Debug, Clone)]
enum Part {
    Growing(Vec<u8>),
    Kept(Bytes),
}

impl Default for Part {
    fn default() -> Self {
        Part::Growing(Vec::new())
    }
}

impl PartialEq for Part {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Part {}

impl Part {
    fn bytes(&self) -> &[u8] {
        match self {
            Part::Growing(bytes) => bytes,
            Part::Kept(bytes) => bytes,
        }
    }

    /// The bytes, to add to; kept bytes are copied out first.
    fn growing(&mut self) -> &mut Vec<u8> {
        if let Part::Kept(kept) = self {
            *self = Part::Growing(kept.to_vec());
        }
        match self {
            Part::Growing(bytes) => bytes,
            Part::Kept(_) => unreachable!("made growing above"),
        }
    }
}

/// Where finished requests' responses are kept: one after another in blocks of
/// [`Arena::BLOCK`] bytes, each shared by the requests whose bytes it holds and freed with
/// the last of them. A run keeps every response it records, so requests' own allocations
/// would hold, besides their bytes, the room their lists grew into and the allocator's
/// rounding of each.
#[derive(Debug, Default)]
pub struct Arena {
    block: BytesMut,
}

impl Arena {
    /// Bytes a block holds; a part above an eighth of it is kept on its own.
    pub const BLOCK: usize = 256 << 10;

    fn keep(&mut self, part: &mut Part) {
        let Part::Growing(bytes) = part else { return };
        if bytes.is_empty() {
            *part = Part::default();
        } else if bytes.len() > Self::BLOCK / 8 {
            *part = Part::Kept(Bytes::copy_from_slice(bytes));
        } else {
            if self.block.capacity() - self.block.len() < bytes.len() {
                self.block = BytesMut::with_capacity(Self::BLOCK);
            }
            self.block.extend_from_slice(bytes);
            *part = Part::Kept(self.block.split().freeze());
        }
    }
}

/// The varint at the start of `bytes`, which [`varint::put`] wrote, taken off it.
fn take_varint(bytes: &mut &[u8]) -> u64 {
    let (mut value, mut shift) = (0u64, 0);
    loop {
        let (&byte, rest) = bytes.split_first().expect("packed by push");
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return value;
        }
        shift += 7;
    }
}

impl<'a> FromIterator<ResponseRecord<'a>> for Responses {
    fn from_iter<I: IntoIterator<Item = ResponseRecord<'a>>>(responses: I) -> Self {
        let mut all = Responses::default();
        for response in responses {
            all.push(response);
        }
        all
    }
}

impl<'a> From<Vec<ResponseRecord<'a>>> for Responses {
    fn from(responses: Vec<ResponseRecord<'a>>) -> Self {
        responses.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a Responses {
    type Item = ResponseRecord<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// What a request's responses take, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Room {
    packed: usize,
    text: usize,
}

impl Room {
    /// The most room [`Responses::with_room`] keeps for either part.
    pub const MOST: usize = 64 << 10;
}

/// A request's responses in arrival order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    /// The packed responses and the text not read yet.
    packed: &'a [u8],
    text: &'a str,
    left: usize,
    at_ns: u64,
    offset_ns: i64,
}

impl<'a> Iterator for Iter<'a> {
    type Item = ResponseRecord<'a>;
    fn next(&mut self) -> Option<ResponseRecord<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.at_ns = self.at_ns.wrapping_add(varint::unzigzag(take_varint(&mut self.packed)) as u64);
        let tokens_and_stamp = take_varint(&mut self.packed);
        let (text, rest) = self.text.split_at(take_varint(&mut self.packed) as usize);
        self.text = rest;
        let server_send_unix_ns = (tokens_and_stamp & 1 == 1).then(|| {
            self.offset_ns = self.offset_ns.wrapping_add(varint::unzigzag(take_varint(&mut self.packed)));
            self.offset_ns.wrapping_add(self.at_ns as i64)
        });
        Some(ResponseRecord { at_ns: self.at_ns, tokens: (tokens_and_stamp >> 1) as u32, text, server_send_unix_ns })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl Serialize for Responses {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Responses {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> serde::de::Visitor<'de> for List {
            type Value = Responses;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of responses")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Responses, A::Error> {
                let mut all = Responses::default();
                while let Some(r) = seq.next_element::<OwnedResponse>()? {
                    all.push(ResponseRecord {
                        at_ns: r.at_ns,
                        tokens: r.tokens,
                        text: &r.text,
                        server_send_unix_ns: r.server_send_unix_ns,
                    });
                }
                Ok(all)
            }
        }
        deserializer.deserialize_seq(List)
    }
}

/// Where a request's output-token counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCountSource {
    /// One token per response that carries output.
    #[default]
    Responses,
    /// The server reported the counts (`num_output_tokens` or `output_ids`).
    Server,
    /// Estimated from the words of the text: a response that carries a whole answer (no
    /// streaming) from a server that reports no count.
    Words,
    /// Counted by the run's tokenizer from the text each response carries, where the server
    /// reports no count: a token goes to the response its text starts in.
    Tokenizer,
}

/// Everything measured about one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Index of the prompt length in the sweep.
    pub point: u32,
    /// Order of the request within its point, warm-up requests first.
    pub seq: u32,
    /// Warm-up requests are kept for inspection and left out of every statistic.
    pub warmup: bool,
    /// The request id sent to the server.
    pub id: String,
    /// Length of the prompt as sent: tokens by the run's tokenizer when it has one, else words
    /// (of synthetic text, or of a prompts file's prompt).
    pub prompt_words: u32,
    /// The prompt length in tokens as the server counted it, when it reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_input_tokens: Option<u32>,
    /// When the request was written to the stream.
    pub send_ns: u64,
    /// When an open-loop schedule meant it to be sent; `send_ns` minus this is its schedule
    /// lag. None in closed loop, where a request is due when the one before it finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_ns: Option<u64>,
    /// When the server says it received the request (nanoseconds since the Unix epoch), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_recv_unix_ns: Option<i64>,
    /// Every response in arrival order, empty final responses included.
    pub responses: Responses,
    /// When the response flagged final arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_ns: Option<u64>,
    #[serde(default)]
    pub token_source: TokenCountSource,
    /// What went wrong, in the server's words where it gave any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the server said it stopped generating, where its protocol says (an OpenAI
    /// answer's `finish_reason`, such as `length` or `stop`), cut to
    /// [`crate::limits::MAX_FINISH_REASON_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

impl RequestRecord {
    /// When the request was due: its intended send time in open loop, else its send time.
    /// Latencies from here include any lag of the client behind its schedule.
    pub fn due_ns(&self) -> u64 {
        self.intended_ns.unwrap_or(self.send_ns)
    }

    /// When the request was last heard of: its final response, or its last response, or its
    /// send when nothing came.
    pub fn end_ns(&self) -> u64 {
        let last = self.responses.iter().map(|r| r.at_ns).max().unwrap_or(0);
        self.final_ns.unwrap_or(0).max(last).max(self.send_ns)
    }

    /// How late the request was sent against its schedule (open loop only).
    pub fn lag_ns(&self) -> Option<u64> {
        self.intended_ns.map(|intended| self.send_ns.saturating_sub(intended))
    }

    /// Why a request that ended without an error and without a token counts as failed: the
    /// statistics leave it out with the errors, and it says why in the same place.
    pub const NO_TOKEN: &'static str = "the server ended the request without a single output token (a model that stops \
         at once does this; ask for ignore_eos to have it generate)";

    /// Marks a request that ended with no error and no token as failed, with [`Self::NO_TOKEN`].
    pub fn fail_without_token(&mut self) {
        if self.error.is_none() && self.token_responses().next().is_none() {
            self.error = Some(Self::NO_TOKEN.into());
        }
    }

    /// The responses that carry at least one output token (`c_1 .. c_k` in the definitions).
    pub fn token_responses(&self) -> impl Iterator<Item = ResponseRecord<'_>> {
        self.responses.iter().filter(|r| r.tokens > 0)
    }

    /// Output tokens received.
    pub fn output_tokens(&self) -> u64 {
        self.token_responses().map(|r| u64::from(r.tokens)).sum()
    }

    /// The whole generated text.
    pub fn text(&self) -> &str {
        self.responses.text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_that_ends_without_a_token_says_why() {
        let mut record = RequestRecord {
            point: 0,
            seq: 0,
            warmup: false,
            id: "0-0".into(),
            prompt_words: 4,
            num_input_tokens: None,
            send_ns: 0,
            intended_ns: None,
            server_recv_unix_ns: None,
            responses: [ResponseRecord { at_ns: 5, tokens: 0, text: "", server_send_unix_ns: None }]
                .into_iter()
                .collect(),
            final_ns: Some(5),
            token_source: TokenCountSource::Responses,
            error: None,
            finish_reason: None,
        };
        record.fail_without_token();
        assert_eq!(record.error.as_deref(), Some(RequestRecord::NO_TOKEN));
        let mut failed = RequestRecord { error: Some("refused".into()), ..record.clone() };
        failed.fail_without_token();
        assert_eq!(failed.error.as_deref(), Some("refused"), "an error of its own stands");
        let mut answered = RequestRecord {
            responses: [ResponseRecord { at_ns: 5, tokens: 1, text: "a", server_send_unix_ns: None }]
                .into_iter()
                .collect(),
            error: None,
            ..record
        };
        answered.fail_without_token();
        assert_eq!(answered.error, None);
    }

    fn three() -> Responses {
        vec![
            ResponseRecord { at_ns: 10, tokens: 1, text: " héllo", server_send_unix_ns: None },
            ResponseRecord { at_ns: 20, tokens: 2, text: " big world", server_send_unix_ns: Some(-5) },
            ResponseRecord { at_ns: 30, tokens: 0, text: "", server_send_unix_ns: None },
        ]
        .into()
    }

    #[test]
    fn responses_read_back_as_they_were_pushed() {
        let responses = three();
        assert_eq!(responses.len(), 3);
        assert_eq!(responses.text(), " héllo big world");
        let back: Vec<_> = responses.iter().map(|r| (r.at_ns, r.tokens, r.text, r.server_send_unix_ns)).collect();
        assert_eq!(back, [(10, 1, " héllo", None), (20, 2, " big world", Some(-5)), (30, 0, "", None)]);
        assert_eq!(responses.last().map(|r| r.at_ns), Some(30));
        assert_eq!(responses.first().map(|r| r.text), Some(" héllo"));
        assert_eq!(responses.iter().len(), 3);
        assert_eq!(Responses::default().last(), None);
    }

    #[test]
    fn a_steady_token_takes_six_bytes_and_its_text() {
        // Tokens 20 ms apart for 10 s, the first a second into the run.
        let at = |i: u64| 1_000_000_000 + i * 20_000_000 + i % 7;
        let steady: Responses = (0..500)
            .map(|i| ResponseRecord { at_ns: at(i), tokens: 1, text: "ab", server_send_unix_ns: None })
            .collect();
        assert!(steady.room().packed <= 6 * 500 + 2, "{} bytes", steady.room().packed);
        assert!(steady.iter().enumerate().all(|(i, r)| r.at_ns == at(i as u64) && r.text == "ab" && r.tokens == 1));
        // Stamped a little before each arrival, up to 50 µs apart.
        let sent = |i: u64| 1_796_000_000_000_000_000 + at(i) as i64 - 120_000 - (i * 7_919 % 50_000) as i64;
        let stamped: Responses = (0..500)
            .map(|i| ResponseRecord { at_ns: at(i), tokens: 1, text: "ab", server_send_unix_ns: Some(sent(i)) })
            .collect();
        assert!(stamped.room().packed <= 9 * 500 + 10, "{} bytes", stamped.room().packed);
        assert!(stamped.iter().enumerate().all(|(i, r)| r.server_send_unix_ns == Some(sent(i as u64))));
    }

    #[test]
    fn kept_responses_read_the_same_share_their_bytes_and_can_grow() {
        let mut arena = Arena::default();
        let mut kept = three();
        kept.keep_in(&mut arena);
        assert_eq!(kept, three());
        let mut other = three();
        other.keep_in(&mut arena);
        // The next request's bytes follow in the same block; a copy shares them.
        let (Part::Kept(a), Part::Kept(b)) = (&kept.text, &other.packed) else { panic!("kept") };
        assert_eq!(a.as_ptr().wrapping_add(a.len()), b.as_ptr());
        let copy = kept.clone();
        let Part::Kept(c) = &copy.text else { panic!("a copy of kept bytes is kept") };
        assert_eq!(c.as_ptr(), a.as_ptr());
        kept.push(ResponseRecord { at_ns: 40, tokens: 1, text: "!", server_send_unix_ns: None });
        assert_eq!(kept.text(), " héllo big world!");
        assert_eq!(copy, three());
        // A part above an eighth of a block is kept on its own, and nothing is kept of none.
        let big = "x".repeat(Arena::BLOCK / 8 + 1);
        let mut alone: Responses =
            std::iter::once(ResponseRecord { at_ns: 1, tokens: 1, text: &big, server_send_unix_ns: None }).collect();
        alone.keep_in(&mut arena);
        assert_eq!(alone.text(), big);
        let mut none = Responses::default();
        none.keep_in(&mut arena);
        assert!(none.is_empty() && none.iter().next().is_none());
    }

    #[test]
    fn room_follows_the_last_request_up_to_a_cap() {
        let room = three().room();
        let capacity = |r: &Responses| match &r.text {
            Part::Growing(bytes) => bytes.capacity(),
            Part::Kept(_) => 0,
        };
        let fresh = Responses::with_room(room);
        assert!(fresh.is_empty() && capacity(&fresh) >= three().text().len());
        let huge = ResponseRecord { at_ns: 1, tokens: 1, text: &"x".repeat(1 << 20), server_send_unix_ns: None };
        let after_huge = Responses::with_room(std::iter::once(huge).collect::<Responses>().room());
        assert!(capacity(&after_huge) <= 2 * Room::MOST, "{}", capacity(&after_huge));
    }

    #[test]
    fn responses_keep_any_arrival_and_count() {
        let odd = [(u64::MAX, u32::MAX, Some(i64::MIN)), (0, 0, None), (5, 1, Some(i64::MAX)), (3, 2, None)];
        let responses: Responses = odd
            .iter()
            .map(|&(at_ns, tokens, sent)| ResponseRecord { at_ns, tokens, text: "", server_send_unix_ns: sent })
            .collect();
        let back: Vec<_> = responses.iter().map(|r| (r.at_ns, r.tokens, r.server_send_unix_ns)).collect();
        assert_eq!(back, odd);
    }

    #[test]
    fn responses_are_written_and_read_as_a_list_of_responses() {
        let json = serde_json::to_string(&three()).unwrap();
        assert_eq!(
            json,
            r#"[{"at_ns":10,"tokens":1,"text":" héllo"},{"at_ns":20,"tokens":2,"text":" big world","server_send_unix_ns":-5},{"at_ns":30,"tokens":0}]"#
        );
        assert_eq!(serde_json::from_str::<Responses>(&json).unwrap(), three());
        let wrong = serde_json::from_str::<Responses>(r#"[{"at_ns":"soon","tokens":1}]"#).unwrap_err();
        assert!(wrong.to_string().contains("invalid type"), "{wrong}");
    }
}
