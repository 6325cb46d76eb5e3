//! The chunks of an OpenAI-compatible answer, as vLLM's server writes them, from a simulated
//! model's responses: each response's new text is one chunk (a chat's first preceded by a
//! role-only one), the last carries the finish reason, and a final chunk the usage.

use serde_json::{Map, Value, json};

use super::events::Unstamped;
use super::model::{Ask, SimModel};
use crate::bytes::decode_raw;
use crate::convention::{Convention, NUM_OUTPUT_TOKENS, NewText, OUTPUT_IDS};
use crate::pb;
use crate::pb::infer_parameter::ParameterChoice;

/// Which endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/v1/completions`.
    Completion,
    /// `/v1/chat/completions`.
    Chat,
}

impl Kind {
    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Completion => "completions",
            Kind::Chat => "chat completions",
        }
    }

    /// What its answers' ids begin with.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Kind::Completion => "cmpl",
            Kind::Chat => "chatcmpl",
        }
    }

    /// The `object` of its streamed chunks.
    fn chunk_object(self) -> &'static str {
        match self {
            Kind::Completion => "text_completion",
            Kind::Chat => "chat.completion.chunk",
        }
    }

    /// The `object` of its whole answers.
    fn whole_object(self) -> &'static str {
        match self {
            Kind::Completion => "text_completion",
            Kind::Chat => "chat.completion",
        }
    }
}

/// Why every simulated answer ends: the model generates until the length asked.
const FINISH: &str = "length";

/// One request's answer, built response by response.
#[derive(Debug)]
pub struct Chunks {
    kind: Kind,
    id: String,
    /// Unix seconds when the request came.
    created: u64,
    model: &'static str,
    convention: &'static Convention,
    new_text: NewText,
    prompt_tokens: u32,
    max_tokens: u32,
    completion_tokens: u32,
    /// All new text so far, for a whole answer.
    text: String,
    role_sent: bool,
    /// Whether a chunk has carried the finish reason.
    finished: bool,
    include_usage: bool,
}

impl Chunks {
    /// The answer to `ask` of `model`, with id `id`; with a usage chunk at the end where
    /// `include_usage`.
    pub fn new(kind: Kind, id: String, model: &'static SimModel, ask: &Ask, include_usage: bool) -> Self {
        let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self {
            kind,
            id,
            created,
            model: model.name,
            convention: model.convention(),
            new_text: NewText::new(Some(ask.prompt.clone())),
            prompt_tokens: ask.prompt_tokens,
            max_tokens: ask.max_tokens,
            completion_tokens: 0,
            text: String::new(),
            role_sent: false,
            finished: false,
            include_usage,
        }
    }

    /// The chunks of one response: its new text (after a chat's role chunk, before the
    /// first), with the finish reason if it is the last. None for a response with no new
    /// text that is not the last, or one after the last.
    pub fn response(&mut self, response: &pb::ModelInferResponse) -> Vec<Unstamped> {
        if self.finished {
            return Vec::new();
        }
        let (text, last) = self.read(response);
        if text.is_empty() && !last {
            return Vec::new();
        }
        let mut chunks = Vec::with_capacity(2);
        self.role(&mut chunks);
        self.finished = last;
        chunks.push(self.chunk(vec![self.choice(&text, last)]));
        chunks
    }

    /// What ends a stream after the last response: a finish chunk where no chunk carried
    /// the finish, and the usage when asked.
    pub fn end(&mut self) -> Vec<Unstamped> {
        let mut chunks = Vec::new();
        if !self.finished {
            self.role(&mut chunks);
            self.finished = true;
            chunks.push(self.chunk(vec![self.choice("", true)]));
        }
        if self.include_usage {
            let mut usage = self.object(self.kind.chunk_object(), Vec::new());
            usage.insert("usage".into(), self.usage());
            chunks.push(Unstamped::new(&usage));
        }
        chunks
    }

    /// Takes one response into a whole answer.
    pub fn collect(&mut self, response: &pb::ModelInferResponse) {
        let (text, _) = self.read(response);
        self.text.push_str(&text);
    }

    /// The whole answer: every response's text, the finish and the usage.
    pub fn whole(&self) -> Map<String, Value> {
        let choice = match self.kind {
            Kind::Completion => {
                json!({"index": 0, "text": self.text, "logprobs": null, "finish_reason": FINISH})
            }
            Kind::Chat => json!({"index": 0, "message": {"role": "assistant", "content": self.text},
                                 "logprobs": null, "finish_reason": FINISH}),
        };
        let mut answer = self.object(self.kind.whole_object(), vec![choice]);
        answer.insert("usage".into(), self.usage());
        answer
    }

    /// A response's new text, and whether it is the request's last: flagged final, or
    /// bringing the tokens up to the length asked. Its tokens are counted as the server
    /// counts them where it does, else as the words of its new text.
    fn read(&mut self, response: &pb::ModelInferResponse) -> (String, bool) {
        let raw = |name: &str| {
            let i = response.outputs.iter().position(|o| o.name == name)?;
            response.raw_output_contents.get(i).map(Vec::as_slice)
        };
        let text: String = raw(self.convention.text_output)
            .and_then(|raw| decode_raw(raw).ok())
            .map(|elements| elements.iter().map(|e| String::from_utf8_lossy(e)).collect())
            .unwrap_or_default();
        let text = self.new_text.take(text, self.convention.text_form);
        let tokens = match (raw(NUM_OUTPUT_TOKENS), raw(OUTPUT_IDS)) {
            (Some(count), _) if count.len() >= 4 => u32::from_le_bytes([count[0], count[1], count[2], count[3]]),
            (_, Some(ids)) => (ids.len() / 4) as u32,
            _ => shared::prompt::word_count(&text) as u32,
        };
        self.completion_tokens = self.completion_tokens.saturating_add(tokens);
        let flagged = matches!(
            response.parameters.get("triton_final_response").and_then(|p| p.parameter_choice.as_ref()),
            Some(ParameterChoice::BoolParam(true))
        );
        (text, flagged || self.completion_tokens >= self.max_tokens)
    }

    /// A chat's role-only chunk, before its first other chunk.
    fn role(&mut self, chunks: &mut Vec<Unstamped>) {
        if self.kind == Kind::Chat && !self.role_sent {
            self.role_sent = true;
            let choice = json!({"index": 0, "delta": {"role": "assistant", "content": ""},
                                "logprobs": null, "finish_reason": null});
            chunks.push(self.chunk(vec![choice]));
        }
    }

    /// The choice carrying `text`, with the finish reason where `last`.
    fn choice(&self, text: &str, last: bool) -> Value {
        let finish = if last { Value::from(FINISH) } else { Value::Null };
        match self.kind {
            Kind::Completion => json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish}),
            Kind::Chat => json!({"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": finish}),
        }
    }

    fn chunk(&self, choices: Vec<Value>) -> Unstamped {
        Unstamped::new(&self.object(self.kind.chunk_object(), choices))
    }

    /// The fields every chunk and answer has.
    fn object(&self, object: &str, choices: Vec<Value>) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("id".into(), self.id.clone().into());
        map.insert("object".into(), object.into());
        map.insert("created".into(), self.created.into());
        map.insert("model".into(), self.model.into());
        map.insert("choices".into(), Value::Array(choices));
        map
    }

    fn usage(&self) -> Value {
        let (prompt, completion) = (self.prompt_tokens, self.completion_tokens);
        json!({"prompt_tokens": prompt, "completion_tokens": completion,
               "total_tokens": u64::from(prompt) + u64::from(completion)})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Piece, openai};
    use crate::sim::model::{self, Step};

    fn ask(max_tokens: u32) -> Ask {
        Ask {
            id: "chatcmpl-1".into(),
            prompt: "hello there".into(),
            prompt_tokens: 2,
            max_tokens,
            want_input_count: true,
            want_output_count: true,
            empty_final: false,
        }
    }

    /// The `n`th of `max_tokens` one-token responses of `model`, as the scheduler makes them.
    fn response(model: &SimModel, ask: &Ask, n: u32, generated: &str) -> pb::ModelInferResponse {
        let text = format!(" {}", model::token_text(n));
        let is_final = n + 1 == ask.max_tokens && !model.separate_final();
        let step = Step { generated, first: n, count: 1, text: &text, is_final, claimed: None };
        model.content(ask, &step)
    }

    /// The data of each event, stamped at 7.
    fn data(chunks: Vec<Unstamped>) -> Vec<Value> {
        chunks
            .into_iter()
            .map(|c| {
                let bytes = c.stamp(7);
                let text = std::str::from_utf8(&bytes).unwrap();
                serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_chat_stream_has_a_role_chunk_a_chunk_per_token_and_the_usage() {
        for name in ["sim-vllm", "sim-tutorial", "sim-trtllm"] {
            let model = model::find(name).unwrap();
            let ask = ask(3);
            let mut chunks = Chunks::new(Kind::Chat, "chatcmpl-1".into(), model, &ask, true);
            let mut events = Vec::new();
            let mut generated = String::new();
            for n in 0..3 {
                generated.push_str(&format!(" {}", model::token_text(n)));
                events.extend(data(chunks.response(&response(model, &ask, n, &generated))));
            }
            events.extend(data(chunks.end()));
            assert_eq!(events.len(), 5, "{name}: {events:?}");
            assert_eq!(events[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
            let texts: Vec<&str> =
                events[1..4].iter().map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
            assert_eq!(texts, [" lorem", " ipsum", " dolor"], "{name}: new text only");
            let finishes: Vec<&Value> = events[..4].iter().map(|e| &e["choices"][0]["finish_reason"]).collect();
            assert_eq!(finishes, [&Value::Null, &Value::Null, &Value::Null, &json!("length")], "{name}");
            assert_eq!(events[4]["choices"], json!([]));
            assert_eq!(events[4]["usage"], json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}));
            for event in &events {
                assert_eq!(
                    (event["object"].as_str(), event["send_ns"].as_i64()),
                    (Some("chat.completion.chunk"), Some(7))
                );
                assert_eq!((event["id"].as_str(), event["model"].as_str()), (Some("chatcmpl-1"), Some(name)));
                // What tokenscope's own reader makes of it.
                let read = openai::read(&event.to_string());
                assert!(!matches!(read.piece, Piece::Error(_)), "{read:?}");
            }
        }
    }

    #[test]
    fn a_completions_stream_carries_text_and_ends_with_an_empty_finish_when_no_token_did() {
        let model = model::find("sim-vllm").unwrap();
        let ask = ask(2);
        let mut chunks = Chunks::new(Kind::Completion, "cmpl-2".into(), model, &ask, false);
        let mut first = response(model, &ask, 0, " lorem");
        // A response whose count falls short of the length and has no final flag.
        first.parameters.clear();
        let events = data(chunks.response(&first));
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0]["choices"][0],
            json!({"index": 0, "text": " lorem", "logprobs": null, "finish_reason": null})
        );
        assert_eq!(events[0]["object"], "text_completion");
        let end = data(chunks.end());
        assert_eq!(end.len(), 1, "no usage unless asked");
        assert_eq!(end[0]["choices"][0]["text"], "");
        assert_eq!(end[0]["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn a_whole_answer_has_all_the_text_and_the_usage() {
        let model = model::find("sim-trtllm").unwrap();
        let ask = ask(2);
        let mut chunks = Chunks::new(Kind::Chat, "chatcmpl-3".into(), model, &ask, false);
        chunks.collect(&response(model, &ask, 0, " lorem"));
        chunks.collect(&response(model, &ask, 1, " lorem ipsum"));
        let whole = Value::Object(chunks.whole());
        assert_eq!(whole["object"], "chat.completion");
        assert_eq!(whole["choices"][0]["message"], json!({"role": "assistant", "content": " lorem ipsum"}));
        assert_eq!(whole["usage"]["completion_tokens"], 2);
    }
}
