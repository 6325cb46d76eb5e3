//! OpenAI-compatible streaming: the body of a `/v1/completions` or `/v1/chat/completions`
//! request, and reading each streamed chunk. Servers differ in what their chunks hold (a
//! role-only first chat chunk, a finish reason on the last text chunk or on an empty one,
//! usage in a final chunk with no choices); each reads the same way here.

use serde::{Deserialize, Serialize};

use super::{Chunk, ErrorJson, Piece, Usage, error_piece, unreadable};

/// The data of the event that ends an OpenAI stream.
pub const DONE: &str = "[DONE]";

/// Why an answer that ended before its `[DONE]` failed.
pub fn ended_early() -> String {
    format!("the server ended the answer without its closing \"data: {DONE}\"")
}

/// Why an answer that reached its `[DONE]` with no chunk saying why generation stopped
/// failed.
pub fn cut_short() -> String {
    "the server ended the answer without saying why it stopped generating (no chunk had a \
     finish_reason), so it was cut short; llama-cpp-python's server, for one, cuts a stream short \
     when another request comes in unless it was started with --interrupt_requests False"
        .into()
}

/// The path of a completions request, from the server's base address.
pub fn path(chat: bool) -> &'static str {
    if chat { "/v1/chat/completions" } else { "/v1/completions" }
}

/// What a request asks beyond its prompt and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Chat completions: the prompt is one user message.
    pub chat: bool,
    /// Ask for a final chunk with the token counts (`stream_options.include_usage`); off
    /// for servers that refuse the field.
    pub include_usage: bool,
    /// Ask to generate past the end-of-sequence token with vLLM's extensions, `ignore_eos`
    /// and `min_tokens` (the length asked, for servers that honour only that).
    pub ignore_eos: bool,
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<[Message<'a>; 1]>,
    max_tokens: u32,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignore_eos: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_tokens: Option<u32>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// The JSON body of a streamed request for `prompt` asking for `max_tokens` of `model`.
pub fn body(model: &str, prompt: &str, max_tokens: u32, options: Options) -> Vec<u8> {
    let body = Body {
        model,
        prompt: (!options.chat).then_some(prompt),
        messages: options.chat.then_some([Message { role: "user", content: prompt }]),
        max_tokens,
        stream: true,
        stream_options: options.include_usage.then_some(StreamOptions { include_usage: true }),
        ignore_eos: options.ignore_eos.then_some(true),
        min_tokens: options.ignore_eos.then_some(max_tokens),
    };
    serde_json::to_vec(&body).expect("strings and numbers serialize")
}

/// A chunk as tokenscope writes one (the profile export of an OpenAI run): choice 0's new
/// text, or the usage, or an error.
#[derive(Serialize)]
struct ChunkOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    choices: Option<[ChoiceOut<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    send_ns: Option<i64>,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<DeltaOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct DeltaOut<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct UsageOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens: Option<u32>,
    completion_tokens: u32,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    message: &'a str,
}

impl ChunkOut<'_> {
    const EMPTY: Self = ChunkOut { choices: None, usage: None, error: None, send_ns: None };

    fn write(&self, out: &mut String) {
        out.push_str("data: ");
        out.push_str(&serde_json::to_string(self).expect("strings and numbers serialize"));
        out.push_str("\n\n");
    }
}

/// Writes the event of a chunk carrying `text` as choice 0 (a chat's delta, a completion's
/// text), with the server's send time where it is known.
pub fn write_text_event(out: &mut String, chat: bool, text: &str, send_ns: Option<i64>) {
    ChunkOut { choices: Some([choice(chat, text, None)]), send_ns, ..ChunkOut::EMPTY }.write(out);
}

/// Writes the event of a chunk with no text that says why the server stopped generating.
pub fn write_finish_event(out: &mut String, chat: bool, reason: &str) {
    ChunkOut { choices: Some([choice(chat, "", Some(reason))]), ..ChunkOut::EMPTY }.write(out);
}

/// Choice 0 of a chunk: a chat's delta or a completion's text.
fn choice<'a>(chat: bool, text: &'a str, finish_reason: Option<&'a str>) -> ChoiceOut<'a> {
    if chat {
        ChoiceOut { index: 0, text: None, delta: Some(DeltaOut { content: text }), finish_reason }
    } else {
        ChoiceOut { index: 0, text: Some(text), delta: None, finish_reason }
    }
}

/// Writes the event of a final chunk with the server's counts.
pub fn write_usage_event(out: &mut String, prompt_tokens: Option<u32>, completion_tokens: u32) {
    ChunkOut { usage: Some(UsageOut { prompt_tokens, completion_tokens }), ..ChunkOut::EMPTY }.write(out);
}

/// Writes the event of an error, or the `[DONE]` that ends a stream when there is none.
pub fn write_end_event(out: &mut String, error: Option<&str>) {
    match error {
        Some(message) => ChunkOut { error: Some(ErrorOut { message }), ..ChunkOut::EMPTY }.write(out),
        None => {
            out.push_str("data: ");
            out.push_str(DONE);
            out.push_str("\n\n");
        }
    }
}

#[derive(Deserialize)]
struct ChunkJson {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<UsageJson>,
    #[serde(default)]
    error: Option<ErrorJson>,
    /// vLLM's errors are `{"object": "error", "message": ..., "type": ...}`.
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// When the server sent the chunk, where it says (the simulator does).
    #[serde(default)]
    send_ns: Option<i64>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    /// Completions' new text.
    #[serde(default)]
    text: Option<String>,
    /// Chat completions' new text; a whole chat answer's `message`.
    #[serde(default, alias = "message")]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    /// Reasoning models' thinking, streamed before the answer (vLLM and SGLang name it
    /// `reasoning_content`, newer vLLM `reasoning`): generated tokens too.
    #[serde(default, alias = "reasoning")]
    reasoning_content: Option<String>,
}

#[derive(Deserialize)]
struct UsageJson {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

/// Reads the data of one event of a completions or chat completions stream.
pub fn read(data: &str) -> Chunk {
    if data.trim() == DONE {
        return Chunk::of(Piece::Done);
    }
    let json: ChunkJson = match serde_json::from_str(data) {
        Ok(json) => json,
        Err(err) => return Chunk::of(unreadable(data, &err)),
    };
    if let Some(error) = json.error {
        return Chunk::of(error.into_piece());
    }
    if json.object.as_deref() == Some("error") {
        return Chunk::of(error_piece(json.message.as_deref().unwrap_or_default(), json.kind.as_deref()));
    }
    let usage = json.usage.and_then(|u| Usage::of(u.prompt_tokens, u.completion_tokens));
    // One choice is asked for; its index is 0.
    let Some(choice) = json.choices.into_iter().find(|c| c.index == 0) else {
        return Chunk { piece: Piece::Nothing, usage, finish_reason: None, send_unix_ns: json.send_ns };
    };
    let text = match (choice.text, choice.delta) {
        (Some(text), _) => text,
        (None, Some(Delta { content, reasoning_content })) => match (reasoning_content, content) {
            (Some(mut thinking), Some(answer)) => {
                thinking.push_str(&answer);
                thinking
            }
            (thinking, answer) => thinking.or(answer).unwrap_or_default(),
        },
        (None, None) => String::new(),
    };
    let piece = if text.is_empty() { Piece::Nothing } else { Piece::Text { text, tokens: None } };
    // A record keeps a reason of at most a few words.
    let finish_reason = choice.finish_reason.as_deref().map(shared::limits::finish_reason);
    Chunk { piece, usage, finish_reason, send_unix_ns: json.send_ns }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Piece {
        Piece::Text { text: s.into(), tokens: None }
    }

    #[test]
    fn completions_bodies_ask_to_stream_with_usage() {
        let plain = Options { chat: false, include_usage: true, ignore_eos: false };
        let json: serde_json::Value = serde_json::from_slice(&body("m", "Hello \"you\"", 16, plain)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"model": "m", "prompt": "Hello \"you\"", "max_tokens": 16, "stream": true,
                               "stream_options": {"include_usage": true}})
        );
        let bare = Options { include_usage: false, ignore_eos: true, ..plain };
        let json: serde_json::Value = serde_json::from_slice(&body("m", "p", 256, bare)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"model": "m", "prompt": "p", "max_tokens": 256, "stream": true,
                               "ignore_eos": true, "min_tokens": 256})
        );
        assert_eq!(path(false), "/v1/completions");
    }

    #[test]
    fn written_events_read_back_as_what_they_carry() {
        let mut out = String::new();
        write_text_event(&mut out, true, " hi \"you\"", Some(42));
        write_text_event(&mut out, false, "", None);
        write_usage_event(&mut out, Some(3), 9);
        write_end_event(&mut out, Some("boom"));
        write_end_event(&mut out, None);
        write_finish_event(&mut out, true, "length");
        write_finish_event(&mut out, false, "stop");
        let data: Vec<&str> =
            out.split("\n\n").filter(|e| !e.is_empty()).map(|e| e.strip_prefix("data: ").unwrap()).collect();
        let chunks: Vec<Chunk> = data.iter().map(|d| read(d)).collect();
        assert_eq!(chunks[0].piece, text(" hi \"you\""));
        assert_eq!(chunks[0].send_unix_ns, Some(42));
        assert_eq!(chunks[1].piece, Piece::Nothing);
        assert_eq!(chunks[2].usage, Some(Usage { prompt_tokens: Some(3), completion_tokens: Some(9) }));
        assert!(matches!(&chunks[3].piece, Piece::Error(message) if message.contains("boom")), "{:?}", chunks[3]);
        assert_eq!(chunks[4].piece, Piece::Done);
        for (chunk, reason) in chunks[5..].iter().zip(["length", "stop"]) {
            assert_eq!((&chunk.piece, chunk.finish_reason.as_deref()), (&Piece::Nothing, Some(reason)));
        }
    }

    #[test]
    fn chat_bodies_send_the_prompt_as_one_user_message() {
        let chat = Options { chat: true, include_usage: true, ignore_eos: false };
        let json: serde_json::Value = serde_json::from_slice(&body("llama", "Hi", 8, chat)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"model": "llama", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8,
                               "stream": true, "stream_options": {"include_usage": true}})
        );
        assert_eq!(path(true), "/v1/chat/completions");
    }

    #[test]
    fn vllm_completions_chunks_read_as_text_then_usage() {
        let chunk = read(
            r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" Paris","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}"#,
        );
        assert_eq!(chunk, Chunk::of(text(" Paris")));
        // vLLM flags the finish on the last token's chunk.
        let last = read(
            r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":".","logprobs":null,"finish_reason":"length","stop_reason":null}]}"#,
        );
        assert_eq!((last.piece, last.finish_reason.as_deref()), (text("."), Some("length")));
        let usage = read(
            r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"total_tokens":21,"completion_tokens":16}}"#,
        );
        let counts = Usage { prompt_tokens: Some(5), completion_tokens: Some(16) };
        assert_eq!(
            usage,
            Chunk { piece: Piece::Nothing, usage: Some(counts), finish_reason: None, send_unix_ns: None }
        );
        assert_eq!(read("[DONE]").piece, Piece::Done);
    }

    #[test]
    fn chat_chunks_skip_the_role_only_first_one() {
        let role = read(
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
        );
        assert_eq!(role.piece, Piece::Nothing, "vllm#27485: the role chunk is not the first token");
        let role_only = read(r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#);
        assert_eq!(role_only.piece, Piece::Nothing);
        let token = read(
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}"#,
        );
        assert_eq!(token.piece, text("Hello"));
        let thinking = read(r#"{"choices":[{"index":0,"delta":{"reasoning_content":"Hmm"}}]}"#);
        assert_eq!(thinking.piece, text("Hmm"), "reasoning tokens are generated tokens");
        assert_eq!(read(r#"{"choices":[{"index":0,"delta":{"reasoning":"So"}}]}"#).piece, text("So"));
    }

    #[test]
    fn llama_cpp_ends_with_an_empty_delta_carrying_the_finish_and_usage() {
        let last = read(
            r#"{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1,"id":"chatcmpl-x","model":"m","system_fingerprint":"b1","object":"chat.completion.chunk","usage":{"completion_tokens":12,"prompt_tokens":9,"total_tokens":21},"timings":{"prompt_n":9,"predicted_n":12}}"#,
        );
        assert_eq!(last.piece, Piece::Nothing);
        assert_eq!(last.finish_reason.as_deref(), Some("stop"));
        assert_eq!(last.usage, Some(Usage { prompt_tokens: Some(9), completion_tokens: Some(12) }));
    }

    #[test]
    fn errors_mid_stream_carry_the_servers_message() {
        let openai = read(r#"{"error":{"message":"The model is overloaded","type":"server_error","code":503}}"#);
        assert_eq!(openai.piece, Piece::Error("server_error: The model is overloaded".into()));
        let vllm = read(
            r#"{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}"#,
        );
        assert_eq!(
            vllm.piece,
            Piece::Error("BadRequestError: This model's maximum context length is 4096 tokens.".into())
        );
        assert_eq!(read(r#"{"error":"boom"}"#).piece, Piece::Error("boom".into()));
        let Piece::Error(bare) = read(r#"{"error":{}}"#).piece else { panic!("an error") };
        assert_eq!(bare, "the server reported an error without a message");
    }

    #[test]
    fn what_is_not_json_is_an_error_that_quotes_it() {
        let Piece::Error(err) = read("{\"choices\": [").piece else { panic!("an error") };
        assert!(err.starts_with("the server sent an event that is not the JSON expected"), "{err}");
        assert!(err.ends_with(r#""{\"choices\": [""#), "{err}");
        let long = format!("<html>{}</html>", "é".repeat(100));
        let Piece::Error(err) = read(&long).piece else { panic!("an error") };
        assert!(err.ends_with("…") && err.len() < 200, "{err}");
        assert!(matches!(read(r#"{"choices": "many"}"#).piece, Piece::Error(_)), "the wrong shape too");
    }

    #[test]
    fn counts_past_u32_read_as_its_most() {
        let usage = read(r#"{"choices":[],"usage":{"completion_tokens":99999999999}}"#).usage.unwrap();
        assert_eq!(usage, Usage { prompt_tokens: None, completion_tokens: Some(u32::MAX) });
    }
}
