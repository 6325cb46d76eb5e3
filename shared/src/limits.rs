//! The caps on every input: what a sweep may ask for, what a server's answers may claim, and
//! what an imported file may hold. Each is checked here, by the API, the command line, the
//! dashboard's form and the import alike, and every refusal names the cap and its value.
//!
//! The caps are generous for real benchmarks and keep memory bounded: a prompt is built in
//! memory for each request in flight, so the longest prompt times the concurrency is capped
//! too, and no count a server or a file gives is ever expanded into memory in proportion.

use crate::record::RequestRecord;
use crate::report::RunReport;
use crate::spec::SweepSpec;

/// The longest prompt, in words of synthetic text (about as many tokens).
pub const MAX_PROMPT_WORDS: u32 = 1_000_000;
/// The most bytes of one request's prompt: a synthetic prompt of [`MAX_PROMPT_WORDS`] words
/// has at most 6,000,000, and an imported prompt text is held to the same.
pub const MAX_PROMPT_BYTES: u64 = 8 << 20;
/// The most prompt bytes the requests in flight may hold at once: the longest prompt's bytes
/// times the concurrency. The engine keeps a few copies of each (the encoded request, the
/// reader's copy for echoed prompts, gRPC's buffer), so this keeps them well under 1 GiB.
pub const MAX_PROMPT_BYTES_IN_FLIGHT: u64 = 256 << 20;
/// The largest `max_tokens` a sweep may ask for.
pub const MAX_OUTPUT_TOKENS: u32 = 1 << 20;
/// The most requests one run may send, warm-up included.
pub const MAX_REQUESTS: u64 = 1_000_000;
/// The most requests one prompt length may send, warm-up included.
pub const MAX_REQUESTS_PER_POINT: u64 = 1_000_000;
/// The most prompt lengths one sweep may visit, and the most points (prompt lengths times
/// load levels).
pub const MAX_PROMPT_LENGTHS: usize = 10_000;
/// The most load levels (concurrencies or request rates) one sweep may visit.
pub const MAX_LOAD_LEVELS: usize = 1_000;
/// The highest request rate, in requests per second.
pub const MAX_REQUEST_RATE: f64 = 100_000.0;
/// The most requests in flight at once: the engine's streams (one per request in flight).
pub const MAX_CONCURRENCY: u32 = 1024;
/// The longest request timeout: one hour.
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 3_600_000;
/// The longest a run may last: the engine stops a run this long after its start, keeping
/// everything that finished, and says why.
pub const MAX_RUN_DURATION_S: u64 = 7 * 24 * 3600;
/// The longest target address, model name or model version, in bytes.
pub const MAX_NAME_BYTES: usize = 4096;

/// The most tokens one response may claim; a count above fails its request.
pub const MAX_TOKENS_PER_RESPONSE: u32 = 1 << 20;
/// The most responses one request may get: one per token asked for, and as many again
/// for empty ones; beyond, the request fails.
pub const MAX_RESPONSES_PER_REQUEST: usize = 2 << 20;
/// The most bytes of output text kept for one request; beyond, the request fails.
pub const MAX_TEXT_BYTES_PER_REQUEST: usize = 64 << 20;
/// The most bytes of one Server-Sent Event (Triton's HTTP generate stream, an OpenAI
/// stream): as much as one gRPC response may hold, which a cumulative text with its prompt in
/// front needs; a larger event fails its request, and no more is ever buffered for one.
pub const MAX_EVENT_BYTES: usize = 64 << 20;
/// The most bytes of a request's error message that are kept.
pub const MAX_ERROR_BYTES: usize = 64 << 10;
/// The most of a server's reason for stopping a request that a record keeps.
pub const MAX_FINISH_REASON_BYTES: usize = 64;

/// The longest start of `text` of at most `max` bytes that ends at a character's edge.
pub fn cut_at_char(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `reason` cut to [`MAX_FINISH_REASON_BYTES`] at a character's edge.
pub fn finish_reason(reason: &str) -> String {
    cut_at_char(reason, MAX_FINISH_REASON_BYTES).to_string()
}

/// An upper bound on the bytes of a synthetic prompt of `words` words: every word of the
/// vocabulary has at most five letters, and one space follows each.
pub const fn prompt_bytes_bound(words: u32) -> u64 {
    words as u64 * 6
}

/// Bytes in a MiB, for messages.
const MIB: u64 = 1 << 20;

/// Every cap a sweep spec exceeds, each as a sentence naming the cap; empty when within all.
pub fn spec_problems(spec: &SweepSpec) -> Vec<String> {
    let mut out = Vec::new();
    for (what, text) in [
        ("target", spec.target.as_str()),
        ("model name", spec.model.as_str()),
        ("model version", spec.model_version.as_deref().unwrap_or("")),
        ("tokenizer path", spec.tokenizer.as_deref().unwrap_or("")),
        ("prompts file path", spec.prompts_file.as_deref().unwrap_or("")),
    ] {
        if text.len() > MAX_NAME_BYTES {
            out.push(format!("the {what} has {} bytes; at most {MAX_NAME_BYTES}", text.len()));
        }
    }
    if spec.prompt_lengths.len() > MAX_PROMPT_LENGTHS {
        out.push(format!("{} prompt lengths is too many; at most {MAX_PROMPT_LENGTHS}", spec.prompt_lengths.len()));
    }
    let levels = spec.concurrencies.len().max(spec.request_rates.len());
    if levels > MAX_LOAD_LEVELS {
        out.push(format!("{levels} load levels is too many; at most {MAX_LOAD_LEVELS}"));
    } else if spec.point_count() > MAX_PROMPT_LENGTHS {
        out.push(format!(
            "{} points (prompt lengths x load levels) is too many; at most {MAX_PROMPT_LENGTHS}",
            spec.point_count()
        ));
    }
    if let Some(rate) = spec.request_rates.iter().find(|&&r| r > MAX_REQUEST_RATE) {
        out.push(format!("the request rate {rate} is above the limit of {MAX_REQUEST_RATE} requests/s"));
    }
    let in_flight = spec.most_in_flight();
    // Drawn lengths go up to three standard deviations above their point's.
    let longest = crate::lengths::most(spec.prompt_lengths.iter().copied().max().unwrap_or(0), spec.prompt_stddev);
    if longest > MAX_PROMPT_WORDS {
        out.push(format!("the prompt length {longest} is above the limit of {MAX_PROMPT_WORDS} words"));
    } else if u64::from(in_flight.min(MAX_CONCURRENCY)) * prompt_bytes_bound(longest) > MAX_PROMPT_BYTES_IN_FLIGHT {
        let per = prompt_bytes_bound(longest);
        out.push(format!(
            "prompts of {longest} words (up to {per} bytes each) at concurrency {} would hold {} MiB of prompts in \
             flight; the limit is {} MiB (at this concurrency, prompts up to {} words)",
            in_flight,
            (per * u64::from(in_flight)).div_ceil(MIB),
            MAX_PROMPT_BYTES_IN_FLIGHT / MIB,
            MAX_PROMPT_BYTES_IN_FLIGHT / u64::from(in_flight.max(1)) / 6,
        ));
    }
    let most_tokens = crate::lengths::most(spec.max_tokens, spec.output_stddev);
    if most_tokens > MAX_OUTPUT_TOKENS {
        out.push(format!("max_tokens up to {most_tokens} is above the limit of {MAX_OUTPUT_TOKENS}"));
    }
    let asked = spec.concurrencies.iter().copied().chain([spec.concurrency]).chain(spec.max_concurrency).max();
    if let Some(most) = asked.filter(|&c| c > MAX_CONCURRENCY) {
        out.push(format!("concurrency {most} is above the limit of {MAX_CONCURRENCY} requests in flight"));
    }
    if spec.requests_per_point() > MAX_REQUESTS_PER_POINT {
        out.push(format!(
            "{} requests per prompt length (requests + warm-up) is too many; at most {MAX_REQUESTS_PER_POINT}",
            spec.requests_per_point()
        ));
    }
    if spec.total_requests() > MAX_REQUESTS {
        out.push(format!(
            "{} requests in one run is too many; at most {MAX_REQUESTS} (points x (requests + warm-up))",
            spec.total_requests()
        ));
    }
    if spec.request_timeout_ms > MAX_REQUEST_TIMEOUT_MS {
        out.push(format!(
            "the request timeout of {} ms is above the limit of {MAX_REQUEST_TIMEOUT_MS} ms (one hour)",
            spec.request_timeout_ms
        ));
    }
    out
}

/// The first cap a request's record exceeds, as a sentence naming it.
pub fn record_problem(record: &RequestRecord) -> Option<String> {
    let which = format!("request {:?}", record.id.chars().take(64).collect::<String>());
    if record.id.len() > MAX_NAME_BYTES {
        return Some(format!("a request id has {} bytes; at most {MAX_NAME_BYTES}", record.id.len()));
    }
    if record.prompt_words > MAX_PROMPT_WORDS {
        return Some(format!(
            "{which} has a prompt of {} words, above the limit of {MAX_PROMPT_WORDS}",
            record.prompt_words
        ));
    }
    if record.responses.len() > MAX_RESPONSES_PER_REQUEST {
        return Some(format!(
            "{which} has {} responses, above the limit of {MAX_RESPONSES_PER_REQUEST}",
            record.responses.len()
        ));
    }
    if let Some(r) = record.responses.iter().find(|r| r.tokens > MAX_TOKENS_PER_RESPONSE) {
        return Some(format!(
            "{which} has a response of {} tokens, above the limit of {MAX_TOKENS_PER_RESPONSE} tokens per response",
            r.tokens
        ));
    }
    let text = record.responses.text_len();
    if text > MAX_TEXT_BYTES_PER_REQUEST {
        return Some(format!(
            "{which} has {text} bytes of output text, above the limit of {MAX_TEXT_BYTES_PER_REQUEST} bytes"
        ));
    }
    if let Some(error) = record.error.as_ref().filter(|e| e.len() > MAX_ERROR_BYTES) {
        return Some(format!("{which} has an error of {} bytes, above the limit of {MAX_ERROR_BYTES}", error.len()));
    }
    if let Some(reason) = record.finish_reason.as_ref().filter(|r| r.len() > MAX_FINISH_REASON_BYTES) {
        return Some(format!(
            "{which} has a finish reason of {} bytes, above the limit of {MAX_FINISH_REASON_BYTES}",
            reason.len()
        ));
    }
    None
}

/// The first cap a whole run exceeds (its spec, its number of requests, each request's
/// record), or a request that lies outside its spec, as a sentence; `None` when the run is
/// within every cap. Imports are checked with this before anything is computed from them.
pub fn report_problem(report: &RunReport) -> Option<String> {
    let spec = &report.spec;
    if let Some(problem) = spec_problems(spec).into_iter().next() {
        return Some(problem);
    }
    if report.requests.len() as u64 > MAX_REQUESTS {
        return Some(format!("{} requests is too many; at most {MAX_REQUESTS}", report.requests.len()));
    }
    if report.points.len() > MAX_PROMPT_LENGTHS {
        return Some(format!("{} points is too many; at most {MAX_PROMPT_LENGTHS}", report.points.len()));
    }
    let per_point = spec.requests_per_point();
    report.requests.iter().find_map(|record| {
        if record.point as usize >= spec.point_count() || u64::from(record.seq) >= per_point {
            return Some(format!(
                "request {:?} is numbered point {}, request {}, outside the spec's {} points of {per_point} requests",
                record.id.chars().take(64).collect::<String>(),
                record.point,
                record.seq,
                spec.point_count()
            ));
        }
        record_problem(record)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cut_at_a_characters_edge() {
        assert_eq!(cut_at_char("héllo", 2), "h");
        assert_eq!(cut_at_char("héllo", 3), "hé");
        assert_eq!(cut_at_char("ab", 10), "ab");
        assert_eq!(finish_reason(&"é".repeat(40)).len(), 64);
        assert_eq!(finish_reason(&format!("x{}", "é".repeat(40))).len(), 63);
    }
    use crate::prompt::synthetic_prompt;
    use crate::record::{ResponseRecord, TokenCountSource};

    fn spec() -> SweepSpec {
        SweepSpec { model: "m".into(), ..SweepSpec::default() }
    }

    fn refusal(spec: SweepSpec) -> String {
        let problems = spec_problems(&spec);
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems[0].clone()
    }

    #[test]
    fn each_cap_names_itself_and_its_value() {
        assert!(spec_problems(&spec()).is_empty());
        let long = refusal(SweepSpec { prompt_lengths: vec![4_294_967_295], ..spec() });
        assert!(long.contains("4294967295") && long.contains("1000000 words"), "{long}");
        let flight = refusal(SweepSpec { prompt_lengths: vec![100_000], concurrency: 1024, ..spec() });
        assert!(flight.contains("256 MiB") && flight.contains("43690 words"), "{flight}");
        let timeout = refusal(SweepSpec { request_timeout_ms: u64::MAX, ..spec() });
        assert!(timeout.contains("3600000 ms"), "{timeout}");
        let tokens = refusal(SweepSpec { max_tokens: u32::MAX, ..spec() });
        assert!(tokens.contains("1048576"), "{tokens}");
        let concurrency = refusal(SweepSpec { concurrency: 1025, prompt_lengths: vec![16], ..spec() });
        assert!(concurrency.contains("1024"), "{concurrency}");
        let name = refusal(SweepSpec { model: "m".repeat(5000), ..spec() });
        assert!(name.contains("4096"), "{name}");
        let both = spec_problems(&SweepSpec { requests: 2_000_000, prompt_lengths: vec![16], ..spec() });
        assert!(both.iter().any(|p| p.contains("per prompt length") && p.contains("1000000")), "{both:?}");
    }

    #[test]
    fn the_longest_prompt_fits_its_byte_caps() {
        let words = 100_000;
        let prompt = synthetic_prompt(1, 2, words);
        assert!(prompt.len() as u64 <= prompt_bytes_bound(words));
        const { assert!(prompt_bytes_bound(MAX_PROMPT_WORDS) <= MAX_PROMPT_BYTES) };
        assert!(spec_problems(&SweepSpec { prompt_lengths: vec![MAX_PROMPT_WORDS], ..spec() }).is_empty());
    }

    #[test]
    fn a_record_with_a_huge_count_is_named() {
        let record = RequestRecord {
            point: 0,
            seq: 0,
            warmup: false,
            id: "0-0".into(),
            prompt_words: 16,
            num_input_tokens: None,
            send_ns: 0,
            intended_ns: None,
            server_recv_unix_ns: None,
            responses: vec![ResponseRecord { at_ns: 1, tokens: u32::MAX, text: "", server_send_unix_ns: None }].into(),
            final_ns: None,
            token_source: TokenCountSource::Server,
            error: None,
            finish_reason: None,
        };
        let problem = record_problem(&record).unwrap();
        assert!(problem.contains("4294967295") && problem.contains("1048576 tokens per response"), "{problem}");
        let words = RequestRecord { prompt_words: u32::MAX, responses: Default::default(), ..record };
        assert!(record_problem(&words).unwrap().contains("1000000"));
    }
}
