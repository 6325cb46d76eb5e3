//! The HTTP protocols besides Triton's gRPC: what each request's body holds and what each
//! streamed event says, as pure functions. [`generate`] is Triton's HTTP generate extension,
//! [`openai`] OpenAI-compatible completions and chat completions; both stream Server-Sent
//! Events ([`crate::sse`]) whose data [`Chunk`] reads into what the engine counts.

pub mod client;
pub mod generate;
pub mod openai;
pub mod server;

use serde::Deserialize;

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
    let mut end = data.len().min(QUOTED_BYTES);
    while !data.is_char_boundary(end) {
        end -= 1;
    }
    let more = if end < data.len() { "…" } else { "" };
    Piece::Error(format!("the server sent an event that is not the JSON expected ({err}): {:?}{more}", &data[..end]))
}
