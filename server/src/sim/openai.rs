//! OpenAI-compatible completions and chat completions as vLLM's server answers them, from the
//! simulated models: each request becomes the model's gRPC request (by its convention) and
//! goes through the same scheduler; each of its responses is one streamed chunk.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shared::SweepSpec;
use tokio::sync::mpsc;

use super::Sim;
use super::chunks::{Chunks, Kind};
use super::events;
use super::model::{MODELS, SimModel};
use super::scheduler::HttpItem;
use crate::convention::{ModelSignature, RequestPlan};
use crate::pb;

/// The routes of the OpenAI-compatible server, answered from `sim`.
pub fn router(sim: &Sim) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .with_state(sim.clone())
}

/// Who the models' list says owns them.
const OWNER: &str = "tokenscope-sim";

/// The models that can answer.
async fn models(State(sim): State<Sim>) -> axum::Json<Value> {
    let data: Vec<Value> = MODELS
        .iter()
        .filter(|m| sim.is_available(m.name))
        .map(|m| json!({"id": m.name, "object": "model", "created": 0, "owned_by": OWNER}))
        .collect();
    axum::Json(json!({"object": "list", "data": data}))
}

/// An OpenAI error answer, as vLLM's server writes it: its status, type and message.
#[derive(Debug)]
struct Refusal(StatusCode, &'static str, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, axum::Json(error_json(self.0, self.1, self.2))).into_response()
    }
}

/// The JSON of an OpenAI error.
pub fn error_json(status: StatusCode, kind: &str, message: impl Into<String>) -> Value {
    json!({"error": {"message": message.into(), "type": kind, "param": null, "code": status.as_u16()}})
}

/// A request that cannot be made: 400.
fn bad_request(message: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, "BadRequestError", message.into())
}

/// A request's body: the fields read, the rest ignored.
#[derive(Debug, Deserialize)]
struct Body {
    model: String,
    /// Completions: a string, or a list holding one.
    #[serde(default)]
    prompt: Option<Value>,
    /// Chat completions.
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    /// vLLM's extension; the simulated models never stop early, so it changes nothing but
    /// the request the model receives.
    #[serde(default)]
    ignore_eos: bool,
}

/// A chat message; its role is not read.
#[derive(Debug, Deserialize)]
struct Message {
    /// A string, or a list of parts whose text parts are joined.
    #[serde(default)]
    content: Value,
}

/// What a streamed answer adds.
#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The output length asked when a request gives none, as OpenAI's completions default.
const DEFAULT_MAX_TOKENS: u32 = 16;

/// `POST /v1/completions`.
async fn completions(State(sim): State<Sim>, body: Bytes) -> Response {
    answer(&sim, Kind::Completion, &body).await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/chat/completions`.
async fn chat_completions(State(sim): State<Sim>, body: Bytes) -> Response {
    answer(&sim, Kind::Chat, &body).await.unwrap_or_else(IntoResponse::into_response)
}

/// Makes one request of a completion's body and answers it, streamed or whole.
async fn answer(sim: &Sim, kind: Kind, body: &[u8]) -> Result<Response, Refusal> {
    let arrived = Instant::now();
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("the request body is not the JSON of a {} request: {e}", kind.name())))?;
    let model = sim.find(&body.model).map_err(|_| {
        Refusal(
            StatusCode::NOT_FOUND,
            "NotFoundError",
            format!("The model `{}` does not exist; GET /v1/models lists the models served.", body.model),
        )
    })?;
    let prompt = prompt(kind, &body).map_err(bad_request)?;
    let max_tokens = body.max_tokens.or(body.max_completion_tokens).unwrap_or(DEFAULT_MAX_TOKENS);
    let id = format!("{}-{}", kind.id_prefix(), NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let request = model_request(model, &id, &prompt, max_tokens, body.ignore_eos);
    let (ask, responses) = sim.submit(model, &request, arrived).map_err(bad_request)?;
    let include_usage = body.stream_options.is_some_and(|o| o.include_usage);
    let chunks = Chunks::new(kind, id, model, &ask, include_usage);
    if body.stream {
        Ok(events::response(futures::stream::unfold((responses, Some(chunks)), next_frame)))
    } else {
        Ok(whole(responses, chunks).await)
    }
}

/// Numbers the requests' ids.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The prompt of a completions request (its string, or the one string of its list) or a
/// chat's (its messages' text, one message a line).
fn prompt(kind: Kind, body: &Body) -> Result<String, String> {
    match kind {
        Kind::Completion => match &body.prompt {
            Some(Value::String(prompt)) => Ok(prompt.clone()),
            Some(Value::Array(list)) if list.len() == 1 && list[0].is_string() => {
                Ok(list[0].as_str().unwrap_or_default().into())
            }
            Some(_) => {
                Err("the prompt must be a string (or a list of one): the simulator takes no token ids or batches"
                    .into())
            }
            None => Err("the request has no prompt; send \"prompt\": \"...\"".into()),
        },
        Kind::Chat => {
            let messages = body.messages.as_deref().filter(|m| !m.is_empty()).ok_or(
                "the request has no messages; send \"messages\": [{\"role\": \"user\", \"content\": \"...\"}]",
            )?;
            let texts: Vec<String> = messages.iter().map(|m| content_text(&m.content)).collect();
            Ok(texts.join("\n"))
        }
    }
}

/// A message's text: its string, or its text parts joined.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

/// The gRPC request the model would receive for `prompt` and `max_tokens`, by its convention,
/// as the engine builds it; with no parameters, as Triton's HTTP endpoints need no empty final.
fn model_request(model: &SimModel, id: &str, prompt: &str, max_tokens: u32, ignore_eos: bool) -> pb::ModelInferRequest {
    let sig = ModelSignature::from_pb(&model.metadata(), Some(&model.config()));
    let spec = SweepSpec { model: model.name.into(), max_tokens, ignore_eos, streaming: true, ..SweepSpec::default() };
    let mut request = RequestPlan::new(&sig, model.style, &spec).request(id.into(), prompt, max_tokens);
    request.parameters.clear();
    request
}

/// A streamed answer's state between frames: its responses, and its chunks until the end is written.
type Frames = (mpsc::UnboundedReceiver<HttpItem>, Option<Chunks>);

/// The next frame of a streamed answer, rendered and stamped as the connection takes it:
/// the chunks of each response; after the last, the finish (if no chunk carried it), the
/// usage when asked, and `[DONE]`; after an error, its event and `[DONE]`.
async fn next_frame((mut responses, chunks): Frames) -> Option<(Result<Bytes, Infallible>, Frames)> {
    let mut chunks = chunks?;
    loop {
        let frame = match responses.recv().await {
            Some(Ok(response)) => {
                let events = chunks.response(&response);
                if events.is_empty() {
                    continue;
                }
                events::stamp_all(events)
            }
            Some(Err(message)) => {
                let error = error_json(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", message);
                let mut frame = events::plain(&error.to_string());
                frame.extend(events::plain(crate::protocol::openai::DONE));
                return Some((Ok(frame.into()), (responses, None)));
            }
            None => {
                let mut frame = events::stamp_all(chunks.end());
                frame.extend(events::plain(crate::protocol::openai::DONE));
                return Some((Ok(frame.into()), (responses, None)));
            }
        };
        return Some((Ok(frame.into()), (responses, Some(chunks))));
    }
}

/// A whole answer, once every response has come: the text, the finish and the usage.
async fn whole(mut responses: mpsc::UnboundedReceiver<HttpItem>, mut chunks: Chunks) -> Response {
    while let Some(item) = responses.recv().await {
        match item {
            Ok(response) => chunks.collect(&response),
            Err(message) => {
                return Refusal(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", message).into_response();
            }
        }
    }
    let mut answer: Map<String, Value> = chunks.whole();
    answer.insert(crate::convention::SEND_TIME_KEY.into(), crate::clock::unix_now_ns().into());
    axum::Json(Value::Object(answer)).into_response()
}
