//! The definitions users see next to every number, on screen and in exports.

/// A metric's short name, its unit and its definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDefinition {
    pub key: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    pub definition: &'static str,
}

/// Every metric tokenscope reports.
pub const METRICS: &[MetricDefinition] = &[
    MetricDefinition {
        key: "ttft",
        name: "Time to first token (TTFT)",
        unit: "ms",
        definition: "Arrival of the first response that carries an output token, minus the moment the request was written to the stream. Empty final responses, error responses and responses with empty text are never tokens.",
    },
    MetricDefinition {
        key: "t2t",
        name: "Token-to-token latency",
        unit: "ms",
        definition: "The gaps between consecutive token-bearing responses of a request, each gap divided evenly over the tokens of the later response; pooled over all requests of a prompt length.",
    },
    MetricDefinition {
        key: "tpot",
        name: "Time per output token (TPOT)",
        unit: "ms",
        definition: "(last token-bearing response - first token-bearing response) / (output tokens - tokens in the first response); undefined when no token follows the first response.",
    },
    MetricDefinition {
        key: "e2e",
        name: "End-to-end latency",
        unit: "ms",
        definition: "Arrival of the last token-bearing response minus the send time. The final flag's arrival is kept as a diagnostic, not as latency.",
    },
    MetricDefinition {
        key: "osl",
        name: "Output tokens",
        unit: "tokens",
        definition: "The server's count when it reports one (num_output_tokens or output_ids); else, in a run with a tokenizer, the tokenizer's count of the streamed text, each token put to the response its text starts in; else the number of token-bearing responses. Each record says which.",
    },
    MetricDefinition {
        key: "isl",
        name: "Prompt length",
        unit: "tokens",
        definition: "With a tokenizer (--tokenizer), exact tokens as it counts them, its special tokens included, of natural text; without one, requested as words of synthetic text (approximate tokens), exact when the server reports num_input_tokens. A shared prefix (--shared-prefix) is part of it. With --prompt-stddev each request's length is drawn around its point's, and a point is shown at the length asked; prompt_lengths_sent summarises what was sent.",
    },
    MetricDefinition {
        key: "server",
        name: "Server queue and compute time",
        unit: "ms",
        definition: "Triton's own statistics of the model (ModelStatistics), read just before and just after each point: the change in its cumulative queue and compute (input, infer, output) durations divided by the change in its request counts, warm-up requests included. What TTFT holds beyond them is the way in and out. For a decoupled (streaming) model they cover the model's execute call, which for some backends returns before the last token is sent. A point whose statistics could not be read says why.",
    },
    MetricDefinition {
        key: "throughput",
        name: "Throughput",
        unit: "1/s",
        definition: "Requests and output tokens completed, divided by the time from the first send to the last token; warm-up requests excluded.",
    },
    MetricDefinition {
        key: "goodput",
        name: "Goodput",
        unit: "1/s",
        definition: "Requests that meet every given objective (TTFT, mean token-to-token latency, end-to-end latency, each at most its limit), as a share of the measured requests and per second over the throughput's span; warm-up requests excluded. A request's mean token-to-token latency is (last token-bearing response - first token-bearing response) / (tokens after the first response); a request with one token-bearing response meets that objective. A request that failed or produced no token never meets. In open-loop runs TTFT and end-to-end latency count from the intended send time.",
    },
    MetricDefinition {
        key: "lag",
        name: "Schedule lag",
        unit: "ms",
        definition: "Actual send time minus the intended send time of an open-loop request; latencies from the intended time include it.",
    },
    MetricDefinition {
        key: "ttft_intended",
        name: "TTFT from the intended send time",
        unit: "ms",
        definition: "In open-loop runs: arrival of the first token-bearing response minus the time the request was due to be sent, which is what a user whose request was due then waits. A client that falls behind its schedule cannot hide the server's queueing in its own delay (no coordinated omission).",
    },
    MetricDefinition {
        key: "e2e_intended",
        name: "End-to-end latency from the intended send time",
        unit: "ms",
        definition: "In open-loop runs: arrival of the last token-bearing response minus the time the request was due to be sent; like TTFT from the intended send time, it includes the client's schedule lag (no coordinated omission).",
    },
];

/// How every distribution is summarised.
pub const STATISTICS_NOTE: &str = "Per prompt length: count, errors, mean, min, max, population std and the p50, p90, p95, p99 (p99.9 from 1,000 samples) with linear interpolation between order statistics. All times come from one monotonic clock in the proxy. A response arrives when its connection reads its last bytes from the socket, before any decoding; the time recorded is that read's or a later read's on the same connection, never earlier.";
