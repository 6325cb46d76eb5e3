//! The HTTP protocols besides Triton's gRPC: what each request's body holds and what each
//! streamed event says, as pure functions. [`generate`] is Triton's HTTP generate extension,
//! [`openai`] OpenAI-compatible completions and chat completions; both stream Server-Sent
//! Events ([`crate::sse`]) whose data [`Chunk`] reads into what the engine counts.

pub mod client;
pub mod generate;
pub mod openai;
pub mod server;

use serde::Deserialize;
use shared::{ResponseRecord, Responses, limits};

/// What one event's data says about its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub piece: Piece,
    /// The server's token counts, when the event carries them.
    pub usage: Option<Usage>,
    /// Why the server stopped generating, when the event says.
    pub finish_reason: Option<String>,
    /// When the server sent the event (nanoseconds since the Unix epoch), where it says.
    pub send_unix_ns: Option<i64>,
}

impl Chunk {
    fn of(piece: Piece) -> Self {
        Self { piece, usage: None, finish_reason: None, send_unix_ns: None }
    }
}

/// What an event counts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// New output text: a token-bearing response. `tokens` is the server's count of its
    /// tokens where it gives one; without, the text counts as the engine counts a streamed
    /// response's ([`crate::convention::tokens_without_count`]).
    Text { text: String, tokens: Option<u32> },
    /// No token: an empty text, a role-only first chat chunk, a usage-only or
    /// finish-only chunk.
    Nothing,
    /// OpenAI's `data: [DONE]`: the stream is over.
    Done,
    /// The server reported an error for the request, or sent what cannot be read; the
    /// message is for a user.
    Error(String),
}

/// Token counts a server reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
}

impl Usage {
    fn of(prompt_tokens: Option<u64>, completion_tokens: Option<u64>) -> Option<Self> {
        (prompt_tokens.is_some() || completion_tokens.is_some())
            .then(|| Self { prompt_tokens: prompt_tokens.map(count), completion_tokens: completion_tokens.map(count) })
    }
}

/// What a server's total of output tokens makes of a request's responses, counted by their
/// own texts.
#[derive(Debug, PartialEq)]
pub enum Fit {
    /// The total is the responses' own sum: they stand, confirmed.
    Confirms,
    /// The responses with the total spread over those with text (see [`fit_total`]).
    Spread(Responses),
    /// No response has text to carry the total, or one would carry more than a response may:
    /// the responses' own counts stand.
    Unusable,
}

/// Fits a server's `total` of output tokens to `responses`: where it differs from their own
/// sum, each response with text gets one token where there are enough and the rest in
/// proportion to the bytes of its text, by largest remainder; the responses with no text
/// stay at none. The engine and the import count a server's usage this one way.
pub fn fit_total(responses: &Responses, total: u32) -> Fit {
    if u64::from(total) == responses.iter().map(|r| u64::from(r.tokens)).sum::<u64>() {
        return Fit::Confirms;
    }
    let weights: Vec<u64> =
        responses.iter().map(|r| if r.tokens > 0 { r.text.len().max(1) as u64 } else { 0 }).collect();
    let Some(counts) = spread(total, &weights) else { return Fit::Unusable };
    if counts.iter().any(|&c| c > limits::MAX_TOKENS_PER_RESPONSE) {
        return Fit::Unusable;
    }
    let mut counted = Responses::default();
    for (response, tokens) in responses.iter().zip(counts) {
        counted.push(ResponseRecord { tokens, ..response });
    }
    Fit::Spread(counted)
}

/// Shares `total` tokens out over responses whose texts weigh `weights` (0: no text): one
/// each where there are enough, and the rest in proportion to the weights, by largest
/// remainder (ties to the earlier); none when every weight is zero.
fn spread(total: u32, weights: &[u64]) -> Option<Vec<u32>> {
    let bearing = weights.iter().filter(|&&w| w > 0).count() as u32;
    if bearing == 0 {
        return None;
    }
    if total >= bearing {
        let rest = share(u64::from(total - bearing), weights);
        return Some(rest.iter().zip(weights).map(|(&n, &w)| n + u32::from(w > 0)).collect());
    }
    Some(share(u64::from(total), weights))
}

/// `total` in proportion to `weights` (not all zero), by largest remainder.
fn share(total: u64, weights: &[u64]) -> Vec<u32> {
    let sum: u64 = weights.iter().sum();
    let mut counts: Vec<u64> = weights.iter().map(|w| total * w / sum).collect();
    let mut left = total - counts.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(total * weights[i] % sum));
    for i in order {
        if left == 0 {
            break;
        }
        if weights[i] > 0 {
            counts[i] += 1;
            left -= 1;
        }
    }
    counts.into_iter().map(|c| u32::try_from(c).unwrap_or(u32::MAX)).collect()
}

/// A server's count as u32: one past it reads as u32::MAX, which is past every cap, never as
/// a wrapped one.
fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// An error as servers send it: a message (Triton), or an object with one (OpenAI, vLLM).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ErrorJson {
    Message(String),
    Object {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
    },
}

impl ErrorJson {
    fn into_piece(self) -> Piece {
        let (message, kind) = match self {
            ErrorJson::Message(message) => (Some(message), None),
            ErrorJson::Object { message, kind } => (message, kind),
        };
        error_piece(message.as_deref().unwrap_or_default(), kind.as_deref())
    }
}

/// An error from the server, cut as the gRPC protocol's are.
fn error_piece(message: &str, kind: Option<&str>) -> Piece {
    let message = match (message.is_empty(), kind) {
        (false, Some(kind)) => format!("{kind}: {message}"),
        (false, None) => message.to_string(),
        (true, Some(kind)) => format!("the server reported an error ({kind}) without a message"),
        (true, None) => String::new(),
    };
    Piece::Error(crate::convention::server_error(&message))
}

/// How much of an unreadable event an error quotes.
const QUOTED_BYTES: usize = 80;

/// An event whose data is not the JSON expected: the parser's reason and its first bytes.
fn unreadable(data: &str, err: &serde_json::Error) -> Piece {
    let quoted = limits::cut_at_char(data, QUOTED_BYTES);
    let more = if quoted.len() < data.len() { "…" } else { "" };
    Piece::Error(format!("the server sent an event that is not the JSON expected ({err}): {quoted:?}{more}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_total_is_spread_by_text_and_kept_whole() {
        assert_eq!(spread(4, &[1, 1, 1, 1]), Some(vec![1, 1, 1, 1]));
        // One each, and the three left by text: 1.5, 0.75, 0 and 0.75.
        assert_eq!(spread(6, &[4, 2, 0, 2]), Some(vec![2, 2, 0, 2]));
        assert_eq!(spread(5, &[1, 1, 0]), Some(vec![3, 2, 0]));
        assert_eq!(spread(1, &[1, 1, 1]), Some(vec![1, 0, 0]));
        assert_eq!(spread(2, &[1, 5, 1]), Some(vec![0, 2, 0]));
        assert_eq!(spread(7, &[0, 0]), None);
        for (total, weights) in [(257u32, vec![3u64, 5, 7, 11]), (1000, vec![1; 7]), (0, vec![4, 2])] {
            let counts = spread(total, &weights).unwrap();
            assert_eq!(counts.iter().sum::<u32>(), total, "{weights:?}");
        }
    }

    #[test]
    fn a_total_confirms_or_replaces_the_responses_counts() {
        let mut responses = Responses::default();
        for (tokens, text) in [(0, ""), (1, "a"), (1, "bbb"), (0, "")] {
            responses.push(ResponseRecord { at_ns: 0, tokens, text, server_send_unix_ns: None });
        }
        assert_eq!(fit_total(&responses, 2), Fit::Confirms);
        let Fit::Spread(spread) = fit_total(&responses, 6) else { panic!("spread") };
        assert_eq!(spread.iter().map(|r| r.tokens).collect::<Vec<_>>(), vec![0, 2, 4, 0]);
        assert_eq!(spread.iter().map(|r| r.text).collect::<Vec<_>>(), vec!["", "a", "bbb", ""]);
        let mut silent = Responses::default();
        silent.push(ResponseRecord { at_ns: 0, tokens: 0, text: "", server_send_unix_ns: None });
        assert_eq!(fit_total(&silent, 3), Fit::Unusable);
    }
}
