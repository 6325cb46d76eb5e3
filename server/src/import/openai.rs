//! Requests of perf_analyzer's OpenAI service kind, as GenAI-Perf runs it: the request's JSON
//! body is its one input, and each response output is what one read of the answer brought.
//! The answer is read as the engine reads an OpenAI stream ([`openai::read`] on each event's
//! data), so an imported run counts tokens as a measured one does: a role-only chunk, a
//! finish-only or usage-only one and `[DONE]` are no tokens, and the server's usage counts.

use serde::Deserialize;

use crate::export::profile::{PAYLOAD, RESPONSE, Tensors};
use crate::protocol::{Piece, Usage, openai};
use crate::sse::SseDecoder;

/// What a request's body asked for.
#[derive(Debug, PartialEq)]
pub struct Payload {
    pub model: Option<String>,
    /// The prompt; a chat's messages' texts, one per line.
    pub prompt: String,
    pub chat: bool,
    pub max_tokens: Option<u32>,
    pub ignore_eos: bool,
    pub stream: bool,
}

#[derive(Deserialize)]
struct PayloadJson {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<Prompt>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    max_tokens: Option<u64>,
    /// The newer name of `max_tokens` in chat completions.
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    ignore_eos: Option<bool>,
    #[serde(default)]
    stream: Option<bool>,
}

/// A completions prompt: one text, or a batch of them (the first is read).
#[derive(Deserialize)]
#[serde(untagged)]
enum Prompt {
    One(String),
    Batch(Vec<String>),
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<Content>,
}

/// A message's content: text, or parts of which those with text are read.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

impl Payload {
    /// The body a request's inputs hold; `None` when they hold none.
    pub fn of(inputs: &Tensors) -> Option<Result<Payload, String>> {
        let payload = inputs.get(PAYLOAD)?;
        let Some(text) = payload.first_str() else {
            return Some(Err(format!("has a \"{PAYLOAD}\" input that is not text")));
        };
        Some(Self::read(text))
    }

    fn read(text: &str) -> Result<Payload, String> {
        let json: PayloadJson = serde_json::from_str(text).map_err(|err| {
            format!("has a \"{PAYLOAD}\" that is not the JSON of a completions or chat completions request: {err}")
        })?;
        let chat = json.messages.is_some();
        let prompt = match (json.prompt, json.messages) {
            (Some(Prompt::One(text)), _) => text,
            (Some(Prompt::Batch(texts)), _) => texts.into_iter().next().unwrap_or_default(),
            (None, Some(messages)) => {
                let texts = messages.into_iter().filter_map(|m| m.content).flat_map(|content| match content {
                    Content::Text(text) => vec![text],
                    Content::Parts(parts) => parts.into_iter().filter_map(|p| p.text).collect(),
                });
                texts.collect::<Vec<_>>().join("\n")
            }
            (None, None) => return Err(format!("has a \"{PAYLOAD}\" with neither a \"prompt\" nor \"messages\"")),
        };
        let max_tokens = json.max_tokens.or(json.max_completion_tokens).map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        Ok(Payload {
            model: json.model,
            prompt,
            chat,
            max_tokens,
            ignore_eos: json.ignore_eos.unwrap_or(false),
            // OpenAI's default: a whole answer.
            stream: json.stream.unwrap_or(false),
        })
    }
}

/// One request's answer, read output by output.
pub struct Answer {
    /// The events of a streamed answer; `None` for a whole one.
    events: Option<SseDecoder>,
    /// The server's counts, as the last chunk that had them says.
    usage: Option<Usage>,
    /// The first error the answer reported, or why it cannot be read.
    error: Option<String>,
    done: bool,
    /// Why the server said it stopped generating, once a chunk has said.
    finish_reason: Option<String>,
    outputs: usize,
}

/// How an answer ended, once every output is read.
#[derive(Debug, Default, PartialEq)]
pub struct Ending {
    /// The server's counts, where it gave them.
    pub usage: Option<Usage>,
    /// Why the request failed, if it did.
    pub error: Option<String>,
    /// Why the server said it stopped generating.
    pub finish_reason: Option<String>,
    /// Whether a streamed answer reached its `[DONE]` with no chunk saying why it stopped:
    /// cut short, where the file's answers say why they stop (see
    /// `import::judge_unexplained`).
    pub unexplained: bool,
}

/// What one response output brought: its new text, and when the server says it sent it.
pub struct Read {
    pub text: String,
    pub sent: Option<i64>,
}

impl Answer {
    pub fn new(stream: bool) -> Self {
        Self {
            events: stream.then(SseDecoder::new),
            usage: None,
            error: None,
            done: false,
            finish_reason: None,
            outputs: 0,
        }
    }

    /// Reads the next response output; `None` when it has no `response`.
    pub fn read(&mut self, output: &Tensors) -> Option<Read> {
        let bytes = output.get(RESPONSE)?.first_str()?;
        self.outputs += 1;
        let mut read = Read { text: String::new(), sent: None };
        let Some(events) = self.events.as_mut() else {
            self.take(openai::read(bytes), &mut read);
            self.done = true;
            return Some(read);
        };
        if let Err(err) = events.push(bytes.as_bytes(), 0) {
            self.error.get_or_insert_with(|| err.to_string());
        }
        while let Some(event) = self.events.as_mut().and_then(SseDecoder::next_event) {
            self.take(openai::read(&event.data), &mut read);
        }
        Some(read)
    }

    fn take(&mut self, chunk: crate::protocol::Chunk, read: &mut Read) {
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        read.sent = read.sent.or(chunk.send_unix_ns);
        if chunk.finish_reason.is_some() {
            self.finish_reason = chunk.finish_reason;
        }
        match chunk.piece {
            Piece::Text { text, .. } => read.text.push_str(&text),
            Piece::Nothing => {}
            Piece::Done => self.done = true,
            Piece::Error(message) => {
                self.error.get_or_insert(message);
            }
        }
    }

    /// How the answer ended, once every output is read. Its error is the first it reported,
    /// or, for a streamed answer whose outputs were kept, as the engine fails such an answer:
    /// one that stopped inside an event or before `[DONE]`. One that reached `[DONE]` with no
    /// chunk saying why it stopped is marked `unexplained`.
    pub fn finish(mut self) -> Ending {
        let mut unexplained = false;
        // perf_analyzer may keep no outputs: then there is nothing to hold against the answer.
        if let Some(events) = self.events.as_ref().filter(|_| self.outputs > 0) {
            if let Err(err) = events.finish() {
                self.error.get_or_insert_with(|| err.to_string());
            } else if !self.done {
                self.error.get_or_insert_with(openai::ended_early);
            } else {
                unexplained = self.finish_reason.is_none();
            }
        }
        Ending { usage: self.usage, error: self.error, finish_reason: self.finish_reason, unexplained }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::profile::TensorValue;

    fn inputs(payload: &str) -> Tensors {
        Tensors::from([(PAYLOAD.into(), TensorValue::Text(payload.into()))])
    }

    fn output(response: &str) -> Tensors {
        Tensors::from([(RESPONSE.into(), TensorValue::Text(response.into()))])
    }

    #[test]
    fn a_payload_says_the_prompt_and_what_was_asked() {
        let chat = r#"{"model":"m","messages":[{"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"a b c"}]}],"max_completion_tokens":8,"stream":true}"#;
        let payload = Payload::of(&inputs(chat)).unwrap().unwrap();
        assert_eq!(
            payload,
            Payload {
                model: Some("m".into()),
                prompt: "be brief\na b c".into(),
                chat: true,
                max_tokens: Some(8),
                ignore_eos: false,
                stream: true
            }
        );
        let plain = Payload::of(&inputs(r#"{"prompt":["x y"],"max_tokens":4,"ignore_eos":true}"#)).unwrap().unwrap();
        assert_eq!(
            (plain.prompt.as_str(), plain.chat, plain.max_tokens, plain.ignore_eos),
            ("x y", false, Some(4), true)
        );
        assert!(!plain.stream, "OpenAI's default is a whole answer");
        assert_eq!(Payload::of(&Tensors::new()), None);
        let bad = Payload::of(&inputs("{\"model\":\"m\"}")).unwrap().unwrap_err();
        assert!(bad.contains("neither a \"prompt\" nor \"messages\""), "{bad}");
        let bad = Payload::of(&inputs("not json")).unwrap().unwrap_err();
        assert!(bad.contains("not the JSON of a completions"), "{bad}");
    }

    #[test]
    fn a_streamed_answer_reads_as_the_engine_reads_it() {
        let mut answer = Answer::new(true);
        // Two events in one read, one split across two, and [DONE] with the usage.
        let role = r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"send_ns":7}"#;
        let first = answer
            .read(&output(&format!("{role}\n\ndata: {{\"choices\":[{{\"delta\":{{\"content\":\" hi\"}}}}]}}\n\n")))
            .unwrap();
        assert_eq!((first.text.as_str(), first.sent), (" hi", Some(7)));
        let cut = answer.read(&output("data: {\"choices\":[{\"delta\":{\"con")).unwrap();
        assert_eq!(cut.text, "");
        let rest = answer.read(&output("tent\":\" there\"},\"finish_reason\":\"length\"}]}\n\n")).unwrap();
        assert_eq!(rest.text, " there");
        let usage = r#"data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#;
        let last = answer.read(&output(&format!("{usage}\n\ndata: [DONE]\n\n"))).unwrap();
        assert_eq!(last.text, "");
        assert_eq!(answer.read(&Tensors::new()).map(|r| r.text), None);
        let ending = answer.finish();
        assert_eq!(ending.usage, Some(Usage { prompt_tokens: Some(3), completion_tokens: Some(5) }));
        assert_eq!((ending.error, ending.finish_reason.as_deref()), (None, Some("length")));
    }

    #[test]
    fn errors_and_unfinished_answers_are_the_requests_error() {
        let mut answer = Answer::new(true);
        answer.read(&output("data: {\"choices\":[{\"text\":\"a\"}]}\n\n"));
        answer.read(&output("data: {\"error\":{\"message\":\"out of memory\",\"type\":\"InternalError\"}}\n\n"));
        assert_eq!(answer.finish().error.as_deref(), Some("InternalError: out of memory"));
        let mut cut = Answer::new(true);
        cut.read(&output("data: {\"choices\":[{\"text\":\"a\"}]}\n\n"));
        assert_eq!(cut.finish().error, Some(openai::ended_early()));
        // [DONE] with no chunk saying why generation stopped: unexplained, judged with the file.
        let mut short = Answer::new(true);
        short.read(&output("data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: [DONE]\n\n"));
        assert_eq!(short.finish(), Ending { unexplained: true, ..Ending::default() });
        // perf_analyzer kept no outputs: nothing to read, nothing held against it.
        assert_eq!(Answer::new(true).finish(), Ending::default());
    }

    #[test]
    fn a_whole_answer_is_one_json_body() {
        let mut answer = Answer::new(false);
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"one two"}}],
                       "usage":{"prompt_tokens":2,"completion_tokens":2}}"#;
        assert_eq!(answer.read(&output(body)).unwrap().text, "one two");
        let usage = Some(Usage { prompt_tokens: Some(2), completion_tokens: Some(2) });
        assert_eq!(answer.finish(), Ending { usage, ..Ending::default() });
    }
}
