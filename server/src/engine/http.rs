//! The HTTP protocols' requests: Triton's generate stream and OpenAI-compatible completions.
//! Each request in flight holds a keep-alive connection of its own, sends its body and reads
//! the Server-Sent Events of its answer; each event is timed by the socket read that brought
//! its last bytes ([`SseDecoder::push`]), then counted as a gRPC response is.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use shared::protocol::{Endpoint, Protocol};
use shared::{ModelInfo, SweepSpec};

use super::{Done, InFlight, InFlightMap, UnaryReply, fail_all, lock, record_response};
use crate::convention::{Parsed, RequestPlan, tokens_without_count};
use crate::protocol::client::{Answer, HttpConnection, Kept, Pool, error_message};
use crate::protocol::server::HttpServer;
use crate::protocol::{Chunk, Fit, Piece, Usage, fit_total, generate, openai};
use crate::sse::SseDecoder;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an answer is read after its end was announced (`[DONE]`) before the
/// connection is given up rather than kept for the next request.
const MAX_TRAILING_BYTES: usize = 64 << 10;

/// How a run's requests are written and their events read.
enum Kind {
    /// Triton's generate stream: the model's inputs, as gRPC would send them.
    Generate {
        plan: Box<RequestPlan>,
        path: String,
    },
    OpenAi {
        model: String,
        options: openai::Options,
    },
}

/// A run's HTTP protocol: the server, the connections its requests take turns over, and how
/// requests are written.
pub(super) struct HttpWire {
    server: HttpServer,
    pool: Pool,
    kind: Kind,
}

/// One request ready to go: where, what, and how its events are read.
pub(super) struct Call {
    id: String,
    path: String,
    body: Bytes,
    reader: EventReader,
}

/// Reads one request's events in order.
enum EventReader {
    Generate(generate::Reader),
    OpenAi,
}

impl EventReader {
    fn read(&mut self, data: &str) -> Chunk {
        match self {
            EventReader::Generate(reader) => reader.read(data),
            EventReader::OpenAi => openai::read(data),
        }
    }
}

impl HttpWire {
    /// Finds the model `spec` names on the server at `endpoint`, plans its requests and opens
    /// a connection for each request that can be in flight at once (up to `connections`).
    pub(super) async fn prepare(
        spec: &SweepSpec,
        endpoint: &Endpoint,
        connections: usize,
    ) -> Result<(Self, ModelInfo), String> {
        if !spec.streaming {
            return Err(format!("the {} protocol is measured streaming only; turn streaming on", endpoint.protocol));
        }
        let server = HttpServer::connect(endpoint).await?;
        let (info, plan) = server.prepare(spec).await?;
        let pool = Pool::new(server.address().clone(), CONNECT_TIMEOUT);
        let kind = match (endpoint.protocol, plan) {
            (Protocol::OpenAi, _) | (_, None) => {
                let options = openai::Options { chat: spec.chat, include_usage: true, ignore_eos: spec.ignore_eos };
                let include_usage = probe_usage(&pool, &spec.model, options).await?;
                Kind::OpenAi { model: spec.model.clone(), options: openai::Options { include_usage, ..options } }
            }
            (_, Some(plan)) => {
                let path = generate::path(&spec.model, spec.model_version.as_deref());
                Kind::Generate { plan: Box::new(plan), path }
            }
        };
        pool.fill(connections).await.map_err(|err| format!("{err}; the run needs {connections} connections"))?;
        Ok((Self { server, pool, kind }, info))
    }

    /// The request `id` for `prompt`, asking for `max_tokens`.
    pub(super) fn call(&self, id: &str, prompt: &str, max_tokens: u32) -> Result<Call, String> {
        match &self.kind {
            Kind::Generate { plan, path } => {
                let body = generate::body(&plan.request(id.to_string(), prompt, max_tokens))?.into();
                let reader = generate::Reader::new(plan.convention(), Some(prompt.to_string()));
                Ok(Call { id: id.to_string(), path: path.clone(), body, reader: EventReader::Generate(reader) })
            }
            Kind::OpenAi { model, options } => Ok(Call {
                id: id.to_string(),
                path: openai::path(options.chat).to_string(),
                body: openai::body(model, prompt, max_tokens, *options).into(),
                reader: EventReader::OpenAi,
            }),
        }
    }

    /// The server's statistics of the run's model, where its protocol reports them.
    pub(super) async fn counters(
        &self,
        model: &str,
        version: &str,
    ) -> Result<shared::server_stats::ServerCounters, String> {
        self.server.model_counters(model, version).await
    }

    /// How long responses waited between their stamp and their record, on every connection.
    pub(super) fn waits(&self) -> crate::arrival::Waits {
        self.pool.waits()
    }
}

/// Whether the server takes `stream_options.include_usage`: a one-token request asks with it,
/// and without it when refused. The error is the server's, when it refuses both.
async fn probe_usage(pool: &Pool, model: &str, options: openai::Options) -> Result<bool, String> {
    let mut refused = String::new();
    for include_usage in [true, false] {
        let options = openai::Options { include_usage, ..options };
        let (mut connection, _) = pool.take().await?;
        let body = openai::body(model, "Hello", 1, options);
        let answer = connection.send(Method::POST, openai::path(options.chat), Some(body.into()));
        let answer = tokio::time::timeout(CONNECT_TIMEOUT, answer)
            .await
            .map_err(|_| format!("{} gave no answer within {} s", pool.address(), CONNECT_TIMEOUT.as_secs()))??;
        let status = answer.status;
        let text = answer.text().await?;
        if status.is_success() {
            pool.give_back(connection);
            return Ok(include_usage);
        }
        refused = error_message(status, &text);
        if !status.is_client_error() {
            break;
        }
    }
    Err(format!("a first request to {} was refused: {refused}", pool.address()))
}

/// Sends each request on a connection of its own and times its events.
pub(super) struct HttpCalls {
    pub(super) wire: Arc<HttpWire>,
    pub(super) reply: UnaryReply,
}

impl HttpCalls {
    /// Sends a request already in `map`.
    pub(super) fn send(&self, map: InFlightMap, mut call: Call) {
        let (wire, reply) = (self.wire.clone(), self.reply.clone());
        tokio::spawn(async move {
            let id = std::mem::take(&mut call.id);
            let exchange = Exchange { map: &map, id: &id, reply: &reply, usage: Usage::default(), finish_reason: None };
            // Past the request timeout the sweep has given up on the request; dropping the
            // connection ends it on the server.
            tokio::select! {
                biased;
                () = reply.cancel.cancelled() => {}
                _ = tokio::time::timeout(reply.timeout, exchange.run(&wire, call)) => {}
            }
        });
    }
}

/// One request's exchange with the server.
struct Exchange<'a> {
    map: &'a InFlightMap,
    id: &'a str,
    reply: &'a UnaryReply,
    /// The server's counts so far.
    usage: Usage,
    /// Why the server said it stopped generating, once a chunk has said.
    finish_reason: Option<String>,
}

/// What reading an event leads to.
enum Next {
    Read,
    /// The request is over; the connection can carry another once its answer is read whole.
    Over,
    /// The request is over, or was given up, and the connection is dropped.
    Drop,
}

impl Exchange<'_> {
    async fn run(mut self, wire: &HttpWire, call: Call) {
        let mut taken = wire.pool.take().await;
        let (connection, answer) = loop {
            let (mut connection, kept) = match taken {
                Ok(taken) => taken,
                // No new connection: the server is gone, and every later request would meet
                // the same end.
                Err(why) => {
                    let why = format!("the server at {} took no new connection: {why}", self.reply.target);
                    return fail_all(self.map, &self.reply.done, self.reply.index, why);
                }
            };
            match connection.send(Method::POST, &call.path, Some(call.body.clone())).await {
                Ok(answer) => break (connection, answer),
                // A kept connection the server closed as the request went out: once more on a
                // new one.
                Err(_) if kept == Kept::Kept => taken = wire.pool.open().await.map(|c| (c, Kept::New)),
                Err(why) => return self.end(Some(why), self.now(&connection)),
            }
        };
        if answer.status != StatusCode::OK {
            let status = answer.status;
            let text = answer.text().await.unwrap_or_default();
            self.end(Some(error_message(status, &text)), self.now(&connection));
            return wire.pool.give_back(connection);
        }
        if let Next::Over = self.stream(&connection, answer, call.reader).await {
            wire.pool.give_back(connection);
        }
    }

    /// The arrival of what `connection` read last, on the run's clock.
    fn now(&self, connection: &HttpConnection) -> u64 {
        self.reply.clock.offset_of(connection.last_read())
    }

    /// Reads the answer's events until the request is over.
    async fn stream(&mut self, connection: &HttpConnection, mut answer: Answer, mut reader: EventReader) -> Next {
        let mut decoder = SseDecoder::new();
        loop {
            let bytes = answer.next_bytes().await;
            let read = connection.last_read();
            let now = self.reply.clock.offset_of(read);
            let bytes = match bytes {
                Some(Ok(bytes)) => bytes,
                Some(Err(why)) => {
                    self.end(Some(format!("the connection broke before the answer ended: {why}")), now);
                    return Next::Drop;
                }
                // The end of a generate answer ends its request; an OpenAI answer ends with
                // its `[DONE]` first.
                None => {
                    let cut = decoder.finish().err().map(|err| err.to_string());
                    let early = matches!(reader, EventReader::OpenAi).then(openai::ended_early);
                    self.end(cut.or(early), now);
                    return Next::Over;
                }
            };
            let pushed = decoder.push(&bytes, now);
            while let Some(event) = decoder.next_event() {
                match self.take(reader.read(&event.data), event.arrived_ns) {
                    Next::Read => {}
                    Next::Over => return drain(answer).await,
                    Next::Drop => return Next::Drop,
                }
            }
            if let Err(err) = pushed {
                self.end(Some(err.to_string()), now);
                return Next::Drop;
            }
            connection.recorded(read);
        }
    }

    /// Takes one event's chunk, arrived at `now`.
    fn take(&mut self, chunk: Chunk, now: u64) -> Next {
        if let Some(usage) = chunk.usage {
            self.usage.prompt_tokens = usage.prompt_tokens.or(self.usage.prompt_tokens);
            self.usage.completion_tokens = usage.completion_tokens.or(self.usage.completion_tokens);
        }
        if chunk.finish_reason.is_some() {
            self.finish_reason = chunk.finish_reason;
        }
        let (text, tokens) = match chunk.piece {
            Piece::Nothing => return Next::Read,
            // An OpenAI answer says why it stopped before its end; one that does not was cut
            // short, its tokens fewer than the server would have sent.
            Piece::Done => {
                self.end(self.finish_reason.is_none().then(openai::cut_short), now);
                return Next::Over;
            }
            Piece::Error(why) => {
                self.end(Some(why), now);
                return Next::Drop;
            }
            Piece::Text { text, tokens } => (text, tokens),
        };
        let parsed = Parsed {
            tokens: tokens.unwrap_or_else(|| tokens_without_count(&text, false).0),
            server_counted: tokens.is_some(),
            text,
            num_input_tokens: self.usage.prompt_tokens,
            server_send_unix_ns: chunk.send_unix_ns,
            ..Parsed::default()
        };
        let mut map = lock(self.map);
        match map.get(self.id) {
            // Given up (past its timeout, or the run stopped).
            None => Next::Drop,
            // Failed by a cap: nothing more is kept, and the answer is not read on.
            Some(request) if request.error.is_some() => {
                drop(map);
                self.end(None, now);
                Next::Drop
            }
            Some(_) => {
                let (done, tap) = (&self.reply.done, self.reply.tap.as_ref());
                record_response(&mut map, self.id, parsed, now, done, self.reply.index, tap);
                Next::Read
            }
        }
    }

    /// Ends the request at `now`, failed with `error` when given, with the server's counts.
    fn end(&self, error: Option<String>, now: u64) {
        let mut map = lock(self.map);
        let Some(mut request) = map.remove(self.id) else { return };
        if let Some(error) = error {
            request.error.get_or_insert(error);
        }
        if request.error.is_none() {
            request.take_usage(self.usage);
        }
        request.finish_reason.clone_from(&self.finish_reason);
        let _ = self.reply.done.send(Done::record(request.finish(self.id.to_string(), Some(now)), self.reply.index));
    }
}

/// Reads what follows the end of an answer, so its connection can carry the next request.
async fn drain(mut answer: Answer) -> Next {
    let mut left = MAX_TRAILING_BYTES;
    while let Some(bytes) = answer.next_bytes().await {
        match bytes {
            Ok(bytes) if bytes.len() < left => left -= bytes.len(),
            _ => return Next::Drop,
        }
    }
    Next::Over
}

impl InFlight {
    /// Takes the server's counts from an answer's usage: its prompt tokens, and its output
    /// tokens, which confirm the responses' own counts or, where they differ, replace them:
    /// the server's total is spread over the token-bearing responses (see [`fit_total`]).
    fn take_usage(&mut self, usage: Usage) {
        if self.num_input_tokens.is_none() {
            self.num_input_tokens = usage.prompt_tokens;
        }
        let Some(total) = usage.completion_tokens.filter(|_| !self.server_counted) else { return };
        match fit_total(&self.responses, total) {
            Fit::Confirms => self.server_counted = true,
            Fit::Spread(counted) => {
                self.responses = counted;
                self.server_counted = true;
            }
            Fit::Unusable => {}
        }
    }
}
