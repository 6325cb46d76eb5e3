//! What was seen of one request: when it was sent and when each response arrived.
//!
//! Times are nanoseconds on the proxy's monotonic clock, counted from the run's start.

use serde::{Deserialize, Serialize};

/// One response of a streamed request, as it arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseRecord {
    /// Arrival time.
    pub at_ns: u64,
    /// Output tokens this response carries; 0 for an empty final response.
    pub tokens: u32,
    /// The new text this response adds (cumulative outputs are reduced to their new part).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// When the server says it sent this response (nanoseconds since the Unix epoch), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_send_unix_ns: Option<i64>,
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
    /// Length of the prompt in words of synthetic text.
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
    pub responses: Vec<ResponseRecord>,
    /// When the response flagged final arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_ns: Option<u64>,
    #[serde(default)]
    pub token_source: TokenCountSource,
    /// What went wrong, in the server's words where it gave any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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

    /// The responses that carry at least one output token (`c_1 .. c_k` in the definitions).
    pub fn token_responses(&self) -> impl Iterator<Item = &ResponseRecord> {
        self.responses.iter().filter(|r| r.tokens > 0)
    }

    /// Output tokens received.
    pub fn output_tokens(&self) -> u64 {
        self.token_responses().map(|r| u64::from(r.tokens)).sum()
    }

    /// The whole generated text.
    pub fn text(&self) -> String {
        self.responses.iter().map(|r| r.text.as_str()).collect()
    }
}
