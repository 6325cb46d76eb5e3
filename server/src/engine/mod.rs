//! The engine: drives `ModelStreamInfer` requests at Triton and times every response; or,
//! without streaming, one `ModelInfer` call per request, timed to its single answer.
//!
//! Each request in flight has a bidirectional stream of its own. Each stream has one receiver task
//! that matches a response to its request by id and appends it to that request's record, timed
//! by its connection's latest socket read before the response was decoded (see
//! [`crate::arrival`]). The sweep loop issues requests (closed loop: a new
//! one as soon as one finishes), collects finished records and settles each point's statistics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use shared::limits;
use shared::record::{Arena, Room};
use shared::report::{EngineReport, PacingReport, Scheduling};

use crate::telemetry::Scraper;
pub use crate::telemetry::TelemetryTap;
use shared::protocol::Protocol;
use shared::schedule::Schedule;
use shared::server_stats::{ServerCounters, ServerPointStats};
use shared::spec::LoadLevel;
use shared::{
    ModelInfo, PointStats, RequestRecord, ResponseRecord, Responses, RunReport, RunStatus, SweepSpec, TokenCountSource,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::arrival::Waits;
use crate::clock::RunClock;
use crate::convention::{RequestPlan, ResponseReader};
use crate::pb;
use crate::prompts::RunPrompts;
use crate::response::Response;
use crate::tokenizer::Tokenizer;
use crate::triton::{Connection, Triton, status_text};

mod http;

/// Each request in flight has a gRPC stream of its own, as each of perf_analyzer's concurrent
/// contexts has, up to this many streams; beyond, requests share the least busy streams.
/// Sharing changes what is measured on a real server: with 16 requests of 256 tokens on one
/// stream, 15 of the first 16 reached the model 30 ms late, and mean TTFT rose by 40%.
const MAX_STREAMS: u32 = 1024;
/// At most this many streams share one HTTP/2 connection. tritonclient shares a gRPC channel
/// among at most six clients, so perf_analyzer at concurrency 16 opens three connections, and
/// tokenscope's load reaches Triton the same way. Streams take turns over the connections;
/// without streaming, calls take turns over as many connections as streams would have.
const STREAMS_PER_CONNECTION: u32 = 6;
/// How often unfinished requests are checked against their timeout.
const TIMEOUT_CHECK: Duration = Duration::from_millis(20);

/// Hears about a sweep's progress. Every method has a default that ignores the news.
pub trait Observer: Send {
    /// The model was found and its requests planned.
    fn prepared(&mut self, _model: &ModelInfo) {}
    /// A point is about to be visited, at this prompt length and load level.
    fn point_started(&mut self, _point: usize, _prompt_length: u32, _load: LoadLevel) {}
    /// A request was written to its stream.
    fn request_sent(&mut self, _point: u32, _seq: u32, _send_ns: u64) {}
    /// A request finished, with or without error.
    fn request_done(&mut self, _record: &RequestRecord) {}
    /// A point's statistics have settled.
    fn point_done(&mut self, _point: usize, _stats: &PointStats) {}
    /// Where to send each token-bearing response as it arrives, if anywhere. Arrivals are
    /// sent from the streams' receiver tasks (or the unary calls' tasks), before their
    /// request is reported done.
    fn token_tap(&self) -> Option<TokenTap> {
        None
    }
    /// Where to send each scrape of the server's metrics as it is recorded, if anywhere.
    /// Scrapes are sent from the metrics thread.
    fn telemetry_tap(&self) -> Option<TelemetryTap> {
        None
    }
}

/// Asks for real-time scheduling (first in first out, the lowest real-time priority) for the
/// calling thread, unless `normal` says not to, and answers how it runs. Threads it starts
/// inherit it: the pacing thread, and the runtime's blocking threads. A real-time thread runs
/// as soon as it wakes, so sends are not held back by a busy machine; the engine sleeps
/// whenever it waits for the network, and the system keeps a share of every second for
/// ordinary threads whatever real-time threads do.
fn raise_priority(normal: bool) -> Scheduling {
    if normal {
        return Scheduling::Normal;
    }
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id, thread_schedule_policy,
        };
        let fifo = ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo);
        let reason = match set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, fifo) {
            Ok(()) if thread_schedule_policy().is_ok_and(|p| p == fifo) => return Scheduling::Realtime,
            Ok(()) => "the thread's policy did not change".to_string(),
            Err(thread_priority::Error::OS(code)) => std::io::Error::from_raw_os_error(code).to_string(),
            Err(err) => format!("{err:?}"),
        };
        Scheduling::Refused { reason }
    }
    #[cfg(not(target_os = "linux"))]
    Scheduling::Refused { reason: "real-time priority is asked for on Linux only".into() }
}

/// The CPU time of the calling thread, where the system tells it.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok().map(Duration::from_nanos)
}

/// A token-bearing response as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenArrival {
    pub point: u32,
    pub seq: u32,
    /// Arrival on the run's clock.
    pub at_ns: u64,
    pub tokens: u32,
}

/// Receives every [`TokenArrival`] of a run.
pub type TokenTap = mpsc::UnboundedSender<TokenArrival>;

impl Observer for () {}

/// Runs a sweep on a clock started by the caller, whose zero is the run's zero, to its end,
/// its cancellation or the first fault, and reports everything measured up to then, with how
/// long responses waited in the engine after their arrival was stamped. Faults are reported
/// in the status, never as a lost result. Runs go through [`run_sweep_apart`].
async fn run_sweep_on(
    clock: RunClock,
    spec: SweepSpec,
    prompts: Option<Arc<RunPrompts>>,
    observer: &mut dyn Observer,
    cancel: CancellationToken,
) -> (RunReport, Waits, Option<PacingReport>) {
    let waits = Waits::default();
    let tool = format!("tokenscope {}", env!("CARGO_PKG_VERSION"));
    let mut report = RunReport::new(tool, spec.clone(), clock.start_unix_ns());
    let problems = spec.problems();
    if !problems.is_empty() {
        report.status = RunStatus::Failed { error: format!("the sweep is not valid: {}", problems.join("; ")) };
        return (report, waits, None);
    }
    let prompts = match prompts.map_or_else(|| RunPrompts::open(&spec).map(Arc::new), Ok) {
        Ok(prompts) => prompts,
        Err(error) => {
            report.status = RunStatus::Failed { error };
            return (report, waits, None);
        }
    };
    let (target, wire, info) = tokio::select! {
        prepared = Wire::prepare(&spec) => match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                report.status = RunStatus::Failed { error: err };
                return (report, waits, None);
            }
        },
        () = cancel.cancelled() => {
            report.status = RunStatus::Cancelled;
            return (report, waits, None);
        }
    };
    observer.prepared(&info);
    report.model = Some(info);
    let mut sweep = Sweep::new(&spec, (target, wire), prompts, clock, observer.token_tap(), cancel.child_token());
    report.status = sweep.run(observer, &cancel, &mut report).await;
    sweep.wire.add_waits(&waits);
    let pacing = sweep.pacing.report();
    sweep.shutdown();
    report.prompt_lengths_approximate = RunReport::lengths_approximate(&report.spec, &report.requests);
    (report, waits, pacing)
}

/// Counts a record's output tokens with `tokenizer`, each in the response its text starts
/// in, and says whether it did; a text the tokenizer cannot take, or that would put more
/// tokens in one response than a record may hold, keeps the count it had.
fn count_output(record: &mut RequestRecord, tokenizer: &Tokenizer) -> bool {
    let counts = match tokenizer.count_pieces(record.responses.iter().map(|r| r.text)) {
        Ok(counts) if counts.iter().all(|&c| c <= limits::MAX_TOKENS_PER_RESPONSE) => counts,
        Ok(_) => return false,
        Err(error) => {
            tracing::warn!(id = %record.id, cause = %error, "output left counted by responses");
            return false;
        }
    };
    let mut counted = Responses::default();
    for (response, tokens) in record.responses.iter().zip(counts) {
        counted.push(ResponseRecord { tokens, ..response });
    }
    record.responses = counted;
    record.token_source = TokenCountSource::Tokenizer;
    true
}

/// The most records a point at `load` can make where the spec bounds it well: its request
/// count, or fewer where an open-loop point ends by time first; 0 where a closed-loop point
/// ends by time, since its count is only a cap then.
fn most_records(spec: &SweepSpec, load: LoadLevel) -> usize {
    let (warmup, requests) = (u64::from(spec.warmup), u64::from(spec.requests));
    let bound = match load {
        LoadLevel::Rate(rate) => {
            // Random arrivals pass the mean about half the time: six standard deviations more.
            let sent_in = |s: f64| {
                let mean = rate * s;
                (mean + 6.0 * mean.sqrt()) as u64 + 1
            };
            let within = |count: u64, seconds: Option<f64>| seconds.map_or(count, |s| count.min(sent_in(s)));
            within(warmup, spec.warmup_s) + within(requests, spec.duration_s)
        }
        LoadLevel::Concurrency(_) if spec.duration_s.is_some() || spec.warmup_s.is_some() => 0,
        LoadLevel::Concurrency(_) => warmup + requests,
    };
    usize::try_from(bound).unwrap_or(0)
}

/// [`run_sweep_on`] on a thread of its own with a single-threaded runtime, as every run of
/// the command line and the dashboard is; hands back the report and the observer.
///
/// On its own thread the sweep shares no scheduler with the dashboard's web work, and a
/// single-threaded runtime polls woken tasks in the order they woke. On a multi-threaded
/// runtime given one core, 512 streams' receivers were at times not polled for up to 20 ms
/// while the connections went on reading, and arrivals were recorded that late (likely
/// cause: a burst of wakes spills past the worker's local run queue into the global one,
/// which is checked only every few dozen polls).
///
/// The observer's methods run on the engine's thread, between responses: they must not block.
pub async fn run_sweep_apart<O: Observer + 'static>(
    clock: RunClock,
    spec: SweepSpec,
    observer: O,
    cancel: CancellationToken,
) -> Result<(RunReport, O), EngineError> {
    run_sweep_with(clock, spec, None, observer, cancel).await
}

/// [`run_sweep_apart`] with the run's prompts already open (see [`RunPrompts::open`]), so a
/// prompts file or tokenizer read once to check it before the run is not read again.
pub async fn run_sweep_with<O: Observer + 'static>(
    clock: RunClock,
    spec: SweepSpec,
    prompts: Option<Arc<RunPrompts>>,
    mut observer: O,
    cancel: CancellationToken,
) -> Result<(RunReport, O), EngineError> {
    let scraper = read_metrics(&spec, clock, observer.telemetry_tap());
    let (report_tx, report_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("tokenscope-engine".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let scheduling = raise_priority(spec.normal_priority);
                // Wake-ups from other threads (the pacing thread's due requests) are taken before
                // the next ready task, not after up to 31 of them: a due request waits for at
                // most the task being polled.
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().global_queue_interval(1).build()?;
                let (cpu, started) = (thread_cpu(), std::time::Instant::now());
                let (mut report, waits, pacing) =
                    runtime.block_on(run_sweep_on(clock, spec, prompts, &mut observer, cancel));
                if let (Some(before), Some(after)) = (cpu, thread_cpu()) {
                    let ms = |d: Duration| d.as_secs_f64() * 1e3;
                    report.engine = Some(EngineReport {
                        cpu_s: after.saturating_sub(before).as_secs_f64(),
                        wall_s: started.elapsed().as_secs_f64(),
                        responses: report.requests.iter().map(|r| r.responses.len() as u64).sum(),
                        waited_p99_ms: ms(waits.quantile(0.99).unwrap_or_default()),
                        waited_max_ms: ms(waits.max()),
                        pacing,
                        scheduling: Some(scheduling),
                    });
                }
                Ok(report)
            }));
            let _ = report_tx.send(match outcome {
                Ok(Ok(report)) => Ok((report, observer)),
                Ok(Err(err)) => Err(EngineError::Start(err)),
                Err(panic) => Err(EngineError::Panicked(panic_text(panic.as_ref()))),
            });
        })
        .map_err(EngineError::Start)?;
    let mut outcome = report_rx
        .await
        .unwrap_or_else(|_| Err(EngineError::Panicked("the engine thread ended without a report".into())));
    if let Some(scraper) = scraper {
        let telemetry = tokio::task::spawn_blocking(move || scraper.finish()).await.ok().flatten();
        if let Ok((report, _)) = &mut outcome {
            report.telemetry = telemetry;
        }
    }
    outcome
}

/// Starts reading the server's metrics for a run that will start, unless the spec turns
/// them off or will be refused.
fn read_metrics(spec: &SweepSpec, clock: RunClock, tap: Option<TelemetryTap>) -> Option<Scraper> {
    let url = spec.metrics_address()?;
    if !spec.problems().is_empty() {
        return None;
    }
    let interval = Duration::from_millis(u64::from(spec.metrics_interval_ms()));
    Scraper::start(url, interval, clock, tap)
        .inspect_err(|err| tracing::warn!(cause = %err, "cannot start reading the server's metrics; the run goes on without them"))
        .ok()
}

/// Why [`run_sweep_apart`] has no report: a fault in tokenscope, never in the target.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the engine could not start: {0}")]
    Start(std::io::Error),
    #[error("the engine stopped: {0}")]
    Panicked(String),
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A request on its way: what is known of it until its final response.
struct InFlight {
    point: u32,
    seq: u32,
    warmup: bool,
    prompt_words: u32,
    send_ns: u64,
    intended_ns: Option<u64>,
    /// Reads a gRPC request's responses; an HTTP request's events are read by its task.
    reader: Option<ResponseReader>,
    responses: Responses,
    num_input_tokens: Option<u32>,
    server_recv_unix_ns: Option<i64>,
    server_counted: bool,
    words_counted: bool,
    error: Option<String>,
    /// Why the server said it stopped generating, where its protocol says.
    finish_reason: Option<String>,
}

impl InFlight {
    /// Why a response would take this request past a cap, if it would: the request then
    /// fails with that reason, and the run goes on.
    fn over_cap(&self, parsed: &crate::convention::Parsed) -> Option<String> {
        if parsed.tokens > limits::MAX_TOKENS_PER_RESPONSE {
            return Some(format!(
                "the server reported {} output tokens in one response, above the limit of {} tokens per response",
                parsed.tokens,
                limits::MAX_TOKENS_PER_RESPONSE
            ));
        }
        if self.responses.len() >= limits::MAX_RESPONSES_PER_REQUEST {
            return Some(format!(
                "the server sent more than the limit of {} responses for one request",
                limits::MAX_RESPONSES_PER_REQUEST
            ));
        }
        if self.responses.text_len() + parsed.text.len() > limits::MAX_TEXT_BYTES_PER_REQUEST {
            return Some(format!(
                "the server sent more than the limit of {} bytes of output text for one request",
                limits::MAX_TEXT_BYTES_PER_REQUEST
            ));
        }
        None
    }

    fn finish(self, id: String, final_ns: Option<u64>) -> RequestRecord {
        let mut record = RequestRecord {
            point: self.point,
            seq: self.seq,
            warmup: self.warmup,
            id,
            prompt_words: self.prompt_words,
            num_input_tokens: self.num_input_tokens,
            send_ns: self.send_ns,
            intended_ns: self.intended_ns,
            server_recv_unix_ns: self.server_recv_unix_ns,
            responses: self.responses,
            final_ns,
            token_source: if self.server_counted {
                TokenCountSource::Server
            } else if self.words_counted {
                TokenCountSource::Words
            } else {
                TokenCountSource::Responses
            },
            error: self.error,
            finish_reason: self.finish_reason,
        };
        record.fail_without_token();
        record
    }
}

type InFlightMap = Arc<Mutex<HashMap<String, InFlight>>>;

/// What a stream's receiver reports to the sweep loop.
enum Done {
    /// A request finished, on the stream of that index; boxed, so a fault's report is small.
    Record(Box<RequestRecord>, usize),
    /// The stream broke; the run cannot go on.
    Fatal(String),
}

impl Done {
    fn record(record: RequestRecord, stream: usize) -> Self {
        Done::Record(Box::new(record), stream)
    }
}

/// Where requests go: a bidirectional `ModelStreamInfer` stream, or, without streaming, one
/// `ModelInfer` call per request.
struct Stream {
    out: Outlet,
    inflight: InFlightMap,
    /// Ends this stream's tasks; a child of the sweep's.
    cancel: CancellationToken,
}

enum Outlet {
    Stream(mpsc::UnboundedSender<pb::ModelInferRequest>),
    Unary(Box<UnaryCalls>),
    /// An HTTP protocol: a connection per request in flight.
    Http(Box<http::HttpCalls>),
}

/// Where a run's requests go, by the protocol its spec asks for.
enum Wire {
    /// Triton's gRPC: the connections streams and calls take turns over, and how requests
    /// are built.
    Grpc { connections: Vec<Connection>, plan: Box<RequestPlan> },
    /// Triton's HTTP generate stream, or an OpenAI-compatible server.
    Http(Arc<http::HttpWire>),
}

impl Wire {
    /// Finds the spec's model on its server and connects as its requests need: answers the
    /// target's address as messages name it, the wire and the model.
    async fn prepare(spec: &SweepSpec) -> Result<(String, Self, ModelInfo), String> {
        let endpoint = spec.endpoint()?;
        let streams = spec.most_in_flight().clamp(1, MAX_STREAMS);
        if endpoint.protocol != Protocol::TritonGrpc {
            let (wire, info) = http::HttpWire::prepare(spec, &endpoint, streams as usize).await?;
            return Ok((endpoint.base_url, Wire::Http(Arc::new(wire)), info));
        }
        let grpc = async {
            let triton = Triton::connect(&spec.target).await?;
            let (info, plan) = triton.prepare(spec).await?;
            let connections = triton.connections(streams.div_ceil(STREAMS_PER_CONNECTION).max(1) as usize).await?;
            Ok::<_, crate::triton::TritonError>((
                triton.target().to_string(),
                Wire::Grpc { connections, plan: Box::new(plan) },
                info,
            ))
        };
        grpc.await.map_err(|err| err.to_string())
    }

    /// Adds how long responses waited on every connection to `waits`.
    fn add_waits(&self, waits: &Waits) {
        match self {
            Wire::Grpc { connections, .. } => connections.iter().for_each(|c| waits.merge(c.waits())),
            Wire::Http(wire) => waits.merge(&wire.waits()),
        }
    }
}

/// Sends each request as its own `ModelInfer` call and times its single response.
struct UnaryCalls {
    /// Calls take turns over these connections.
    connections: Vec<Connection>,
    reply: UnaryReply,
}

/// What a unary call needs to report its answer.
#[derive(Clone)]
struct UnaryReply {
    index: usize,
    /// The request timeout: the sweep has given up on the call by then.
    timeout: Duration,
    target: String,
    clock: RunClock,
    done: mpsc::UnboundedSender<Done>,
    tap: Option<TokenTap>,
    cancel: CancellationToken,
}

impl UnaryCalls {
    /// Sends the `nth` request of the run.
    fn send(&self, map: InFlightMap, request: pb::ModelInferRequest, nth: usize) {
        let connection = self.connections[nth % self.connections.len()].clone();
        let mut client = connection.client();
        let calls = self.reply.clone();
        tokio::spawn(async move {
            let id = request.id.clone();
            // A call past the request timeout is dropped, which cancels it on the server, so
            // no more than `concurrency` calls are ever open.
            let answer = tokio::select! {
                answer = tokio::time::timeout(calls.timeout, client.model_infer(request)) => match answer {
                    Ok(answer) => answer,
                    Err(_) => return,
                },
                () = calls.cancel.cancelled() => return,
            };
            let read = connection.last_read();
            let now = calls.clock.offset_of(read);
            let response = match answer {
                Ok(answer) => {
                    let mut answer = answer.into_inner();
                    if answer.id.is_empty() {
                        answer.id = id;
                    }
                    Response::from_message(&pb::ModelStreamInferResponse {
                        error_message: String::new(),
                        infer_response: Some(answer),
                    })
                }
                // The connection failed (tonic keeps the transport's error as the source): the
                // server is gone, and every later request would meet the same end. A status
                // the server sent, even UNAVAILABLE, concerns this request only.
                Err(status) if std::error::Error::source(&status).is_some() => {
                    let why = format!("the server at {} stopped answering: {}", calls.target, status_text(&status));
                    return fail_all(&map, &calls.done, calls.index, why);
                }
                // The model refused this request: the sweep carries on.
                Err(status) => Response::error(&id, &status_text(&status)),
            };
            receive(&map, response, now, &calls.done, calls.index, calls.tap.as_ref());
            connection.recorded(read);
        });
    }
}

impl Stream {
    fn unary(calls: UnaryCalls) -> Self {
        let cancel = calls.reply.cancel.clone();
        Self { out: Outlet::Unary(Box::new(calls)), inflight: InFlightMap::default(), cancel }
    }

    fn http(calls: http::HttpCalls) -> Self {
        let cancel = calls.reply.cancel.clone();
        Self { out: Outlet::Http(Box::new(calls)), inflight: InFlightMap::default(), cancel }
    }

    fn open(
        index: usize,
        connection: Connection,
        target: String,
        clock: RunClock,
        done: mpsc::UnboundedSender<Done>,
        tap: Option<TokenTap>,
        cancel: CancellationToken,
    ) -> Self {
        let (out, requests) = mpsc::unbounded_channel();
        let inflight: InFlightMap = Arc::default();
        let map = inflight.clone();
        let stream_cancel = cancel.clone();
        // The call resolves only once the server sends its headers, which some servers hold
        // back until the first response: requests are queued meanwhile, so wait in the task.
        tokio::spawn(async move {
            let call = connection.stream(UnboundedReceiverStream::new(requests));
            let mut responses = tokio::select! {
                response = call => match response {
                    Ok(response) => response.into_inner(),
                    Err(status) => {
                        let why = format!("the stream to {target} failed: {}", status_text(&status));
                        return fail_all(&map, &done, index, why);
                    }
                },
                () = cancel.cancelled() => return,
            };
            let mut warned = false;
            loop {
                let message = tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    message = responses.message() => message,
                };
                let read = connection.last_read();
                let now = clock.offset_of(read);
                match message {
                    Ok(Some(response)) => {
                        if !receive(&map, response, now, &done, index, tap.as_ref()) && !warned {
                            warned = true;
                            warn!(target = %target, "a response matched no unfinished request (late, after a timeout?); ignoring such responses");
                        }
                        connection.recorded(read);
                    }
                    Ok(None) if lock(&map).is_empty() => return,
                    Ok(None) => {
                        let why = format!("the server at {target} closed the stream while requests were unfinished");
                        return fail_all(&map, &done, index, why);
                    }
                    Err(status) => {
                        let why = format!("the stream to {target} broke: {}", status_text(&status));
                        return fail_all(&map, &done, index, why);
                    }
                }
            }
        });
        Self { out: Outlet::Stream(out), inflight, cancel: stream_cancel }
    }
}

fn lock(map: &InFlightMap) -> std::sync::MutexGuard<'_, HashMap<String, InFlight>> {
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records one response against its request; a final response completes the request.
/// Returns false when the response matches no unfinished request.
fn receive(
    map: &InFlightMap,
    response: Response,
    now: u64,
    done: &mpsc::UnboundedSender<Done>,
    stream: usize,
    tap: Option<&TokenTap>,
) -> bool {
    let mut map = lock(map);
    let id = response.id();
    // An error raised before the request was issued may come without its id.
    let only = if id.is_empty() && map.len() == 1 { map.keys().next().cloned() } else { None };
    let key = only.as_deref().unwrap_or(id);
    let Some(request) = map.get_mut(key) else {
        return false;
    };
    // A request failed by a cap keeps nothing more: its later responses are only watched
    // for its final one.
    if request.error.is_some() {
        if crate::convention::is_final(&response) {
            let (id, request) = map.remove_entry(key).expect("present above");
            let _ = done.send(Done::record(request.finish(id, Some(now)), stream));
        }
        return true;
    }
    let Some(reader) = request.reader.as_mut() else { return false };
    let parsed = reader.read(&response);
    record_response(&mut map, key, parsed, now, done, stream, tap);
    true
}

/// Records a read response against the unfinished request `key` of `map`, whose error is not
/// yet set; a final response completes the request.
fn record_response(
    map: &mut HashMap<String, InFlight>,
    key: &str,
    parsed: crate::convention::Parsed,
    now: u64,
    done: &mpsc::UnboundedSender<Done>,
    stream: usize,
    tap: Option<&TokenTap>,
) {
    let Some(request) = map.get_mut(key) else { return };
    if let Some(error) = parsed.error {
        request.error = Some(error);
    } else if let Some(problem) = request.over_cap(&parsed) {
        request.error = Some(problem);
    } else {
        request.server_counted |= parsed.server_counted;
        request.words_counted |= parsed.words_counted;
        if parsed.num_input_tokens.is_some() {
            request.num_input_tokens = parsed.num_input_tokens;
        }
        if parsed.server_recv_unix_ns.is_some() {
            request.server_recv_unix_ns = parsed.server_recv_unix_ns;
        }
        if let Some(tap) = tap.filter(|_| parsed.tokens > 0) {
            let _ =
                tap.send(TokenArrival { point: request.point, seq: request.seq, at_ns: now, tokens: parsed.tokens });
        }
        request.responses.push(ResponseRecord {
            at_ns: now,
            tokens: parsed.tokens,
            text: &parsed.text,
            server_send_unix_ns: parsed.server_send_unix_ns,
        });
    }
    if parsed.is_final {
        let (id, request) = map.remove_entry(key).expect("present above");
        let _ = done.send(Done::record(request.finish(id, Some(now)), stream));
    }
}

/// A request built for its protocol.
enum Outgoing {
    Grpc(pb::ModelInferRequest),
    Http(Result<http::Call, String>),
}

/// Fails every unfinished request of a broken stream, then reports the fault.
fn fail_all(map: &InFlightMap, done: &mpsc::UnboundedSender<Done>, stream: usize, why: String) {
    for (id, mut request) in lock(map).drain() {
        request.error = Some(why.clone());
        let _ = done.send(Done::record(request.finish(id, None), stream));
    }
    let _ = done.send(Done::Fatal(why));
}

/// Hands an open-loop point's due times (offsets on the run's clock) to the sweep, each at
/// its moment, from a thread of its own: a thread's sleep ends within tens of microseconds of
/// its time, where the runtime's timer keeps whole milliseconds. Ends after `count`, or soon
/// after the sweep stops listening.
fn pace(
    clock: RunClock,
    start_ns: u64,
    mut schedule: Schedule,
    count: u32,
    due: mpsc::UnboundedSender<Due>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    /// The longest sleep between checks that the sweep still listens.
    const CHECK: Duration = Duration::from_millis(100);
    std::thread::Builder::new().name("tokenscope-pacer".into()).spawn(move || {
        // Its sleeps end as close to their time as the system allows; it has the engine's
        // scheduling, which its thread was started with.
        #[cfg(target_os = "linux")]
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
        for _ in 0..count {
            let at = start_ns.saturating_add(schedule.next_ns());
            let moment = clock.instant_at(at);
            loop {
                let left = moment.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() || due.is_closed() {
                    break;
                }
                std::thread::sleep(left.min(CHECK));
            }
            if due.send(Due { at, woke: clock.now_ns() }).is_err() {
                return;
            }
        }
    })
}

/// A request's moment on an open-loop schedule, as the pacing thread hands it over.
#[derive(Debug, Clone, Copy)]
struct Due {
    /// The intended send time.
    at: u64,
    /// When the pacing thread woke to hand it over: its lateness is the system scheduler's,
    /// and the rest of the request's lag the engine's.
    woke: u64,
}

/// Where an open-loop run's schedule lag came from, over its requests.
#[derive(Default)]
struct Pacing {
    /// How late the pacing thread woke.
    woke_late: Waits,
    /// From then to the send.
    handed: Waits,
}

impl Pacing {
    fn report(&self) -> Option<PacingReport> {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Some(PacingReport {
            woke_late_p99_ms: ms(self.woke_late.quantile(0.99)?),
            woke_late_max_ms: ms(self.woke_late.max()),
            handoff_p99_ms: ms(self.handed.quantile(0.99)?),
            handoff_max_ms: ms(self.handed.max()),
        })
    }
}

/// One sweep in progress.
struct Sweep {
    spec: SweepSpec,
    target: String,
    wire: Wire,
    prompts: Arc<RunPrompts>,
    /// Whether a prompt could not be made, which ends the run.
    prompts_failed: bool,
    /// Why the server's statistics are no longer read: once a read failed, later points
    /// would only wait for the same failure.
    server_stats_gone: Option<String>,
    clock: RunClock,
    streams: Vec<Stream>,
    done: mpsc::UnboundedReceiver<Done>,
    /// Kept so the done queue never closes, and for requests that could not be sent.
    done_tx: mpsc::UnboundedSender<Done>,
    streams_cancel: CancellationToken,
    /// Where the run's tokens go.
    tap: Option<TokenTap>,
    /// Requests in flight on each stream.
    loads: Vec<u32>,
    /// Requests sent so far.
    sent: usize,
    /// When the run reaches its longest duration ([`limits::MAX_RUN_DURATION_S`]) and stops.
    deadline: std::time::Instant,
    /// What the last finished request's responses took: room kept for each new one's.
    room: Room,
    /// Where finished requests' responses are kept.
    arena: Arena,
    pacing: Pacing,
}

impl Sweep {
    /// A sweep over `wire`, to the target at the address given with it.
    fn new(
        spec: &SweepSpec,
        (target, wire): (String, Wire),
        prompts: Arc<RunPrompts>,
        clock: RunClock,
        tap: Option<TokenTap>,
        streams_cancel: CancellationToken,
    ) -> Self {
        let (done_tx, done) = mpsc::unbounded_channel();
        let mut sweep = Self {
            spec: spec.clone(),
            target,
            wire,
            prompts,
            prompts_failed: false,
            server_stats_gone: None,
            clock,
            streams: Vec::new(),
            done,
            done_tx,
            streams_cancel,
            tap,
            loads: Vec::new(),
            sent: 0,
            deadline: std::time::Instant::now() + Duration::from_secs(limits::MAX_RUN_DURATION_S),
            room: Room::default(),
            arena: Arena::default(),
            pacing: Pacing::default(),
        };
        let reply = UnaryReply {
            index: 0,
            timeout: Duration::from_millis(spec.request_timeout_ms),
            target: sweep.target.clone(),
            clock,
            done: sweep.done_tx.clone(),
            tap: sweep.tap.clone(),
            cancel: sweep.streams_cancel.clone(),
        };
        sweep.streams = match &sweep.wire {
            Wire::Grpc { .. } if spec.streaming => (0..spec.most_in_flight().clamp(1, MAX_STREAMS) as usize)
                .map(|index| sweep.open_stream(index))
                .collect(),
            Wire::Grpc { connections, .. } => {
                vec![Stream::unary(UnaryCalls { connections: connections.clone(), reply })]
            }
            Wire::Http(wire) => vec![Stream::http(http::HttpCalls { wire: wire.clone(), reply })],
        };
        sweep.loads = vec![0; sweep.streams.len()];
        sweep
    }

    /// Opens the stream at `index`, on the connection whose turn it is.
    fn open_stream(&self, index: usize) -> Stream {
        let Wire::Grpc { connections, .. } = &self.wire else { unreachable!("streams are gRPC's") };
        let connection = connections[index % connections.len()].clone();
        let (done, tap, cancel) = (self.done_tx.clone(), self.tap.clone(), self.streams_cancel.child_token());
        Stream::open(index, connection, self.target.clone(), self.clock, done, tap, cancel)
    }

    async fn run(
        &mut self,
        observer: &mut dyn Observer,
        cancel: &CancellationToken,
        report: &mut RunReport,
    ) -> RunStatus {
        // Room for every point's records at once, where the spec bounds them.
        let planned: usize = (0..self.spec.point_count())
            .filter_map(|point| self.spec.point(point))
            .map(|(_, load)| most_records(&self.spec, load))
            .sum();
        report.requests.reserve_exact(planned);
        for point in 0..self.spec.point_count() {
            if let Some(search) = self.spec.capacity {
                // The next probe's rate follows from the goodput of those before it.
                let probes = shared::capacity::probes(&self.spec, report.points.iter().map(Some));
                let Some(rate) = search.next_rate(&probes) else { break };
                self.spec.request_rates.push(rate);
                report.spec.request_rates.push(rate);
            }
            let Some((length, load)) = self.spec.point(point) else { break };
            observer.point_started(point, length, load);
            // The point's records go straight after the run's, in the room made for them: a list
            // grown by doubling holds up to three times its records while it grows.
            let from = report.requests.len();
            report.requests.reserve(most_records(&self.spec, load));
            let before = self.server_counters().await;
            let status = self.point(point as u32, length, load, &mut report.requests, observer, cancel).await;
            if status.is_some() {
                self.abandon(&mut report.requests, observer);
            }
            // With a tokenizer, output the server did not count is counted by it, once nothing
            // of the point is in flight: encoding on this thread while responses arrive would
            // stamp them late.
            if let Some(tokenizer) = self.prompts.tokenizer() {
                for record in &mut report.requests[from..] {
                    if record.token_source != TokenCountSource::Server && count_output(record, tokenizer) {
                        record.responses.keep_in(&mut self.arena);
                    }
                }
            }
            if report.requests.len() > from {
                let mut stats = PointStats::of_point(&self.spec, point, &report.requests[from..]);
                let finished = report.requests[from..].iter().filter(|r| r.error.is_none()).count() as u64;
                match self.server_point(before, finished).await {
                    Ok(server) => stats.server = Some(server),
                    Err(why) => stats.server_missing = Some(why),
                }
                observer.point_done(point, &stats);
                report.points.push(stats);
            }
            if let Some(status) = status {
                return status;
            }
        }
        RunStatus::Completed
    }

    /// The server's statistics of the run's model now.
    async fn server_counters(&mut self) -> Result<ServerCounters, String> {
        if let Some(why) = &self.server_stats_gone {
            return Err(why.clone());
        }
        let version = self.spec.model_version.as_deref().unwrap_or_default();
        let read = match &self.wire {
            Wire::Grpc { connections, .. } => {
                let connection = connections.first().ok_or("no connection to the server")?;
                connection.model_counters(&self.spec.model, version).await
            }
            Wire::Http(wire) => wire.counters(&self.spec.model, version).await,
        };
        if let Err(why) = &read {
            self.server_stats_gone = Some(format!("{why} (not asked again in this run)"));
        }
        read
    }

    /// The server's statistics of a point that began with `before` and in which `finished`
    /// requests succeeded: read again (for up to 100 ms) until the server has counted them,
    /// as it may count a request a moment after its last response went out.
    async fn server_point(
        &mut self,
        before: Result<ServerCounters, String>,
        finished: u64,
    ) -> Result<ServerPointStats, String> {
        let before = before?;
        let mut tries = 0;
        loop {
            let point = self.server_counters().await?.since(&before).ok_or_else(|| {
                "the server's statistics went back during the point: it or the model restarted".to_string()
            })?;
            tries += 1;
            if point.requests >= finished || tries == 10 {
                return Ok(point);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends one point's requests, warm-up first, at its load level.
    async fn point(
        &mut self,
        index: u32,
        length: u32,
        load: LoadLevel,
        records: &mut Vec<RequestRecord>,
        observer: &mut dyn Observer,
        cancel: &CancellationToken,
    ) -> Option<RunStatus> {
        let (warmup, total) = (self.spec.warmup, self.spec.warmup + self.spec.requests);
        match load {
            // Warm-up requests all finish before the measured ones start.
            LoadLevel::Concurrency(concurrency) => {
                let seconds = |s: Option<f64>| s.map(Duration::from_secs_f64);
                let (warm, measured) = (seconds(self.spec.warmup_s), seconds(self.spec.duration_s));
                let status = self.phase(index, length, (concurrency, warm), 0..warmup, records, observer, cancel).await;
                if status.is_some() {
                    return status;
                }
                self.phase(index, length, (concurrency, measured), warmup..total, records, observer, cancel).await
            }
            // On one schedule throughout: the warm-up brings the server to the load the
            // measured requests then meet.
            LoadLevel::Rate(rate) => self.paced(index, length, rate, records, observer, cancel).await,
        }
    }

    /// Sends a point's requests on its open-loop schedule, warm-up first, at most the
    /// spec's most in flight at once: a request due while that many are in flight waits for
    /// one to finish, and is sent late. Each record keeps its intended send time.
    async fn paced(
        &mut self,
        point: u32,
        length: u32,
        rate: f64,
        records: &mut Vec<RequestRecord>,
        observer: &mut dyn Observer,
        cancel: &CancellationToken,
    ) -> Option<RunStatus> {
        let (warmup, total) = (self.spec.warmup, self.spec.warmup + self.spec.requests);
        let most = self.spec.most_in_flight().max(1);
        let schedule =
            Schedule::new(rate, self.spec.arrival, self.spec.burstiness, self.spec.seed.wrapping_add(u64::from(point)));
        let (due_tx, mut due) = mpsc::unbounded_channel();
        let start_ns = self.clock.now_ns();
        if let Err(err) = pace(self.clock, start_ns, schedule, total, due_tx) {
            return Some(RunStatus::Failed { error: format!("tokenscope could not start its pacing thread: {err}") });
        }
        let mut waiting = std::collections::VecDeque::new();
        let (mut next, mut paced, mut in_flight) = (0u32, 0u32, 0u32);
        // The phases' time limits count on the schedule: from the point's start, and from the
        // first measured request's intended send.
        let nanos = |s: Option<f64>| s.map(|s| (s * 1e9) as u64);
        let (warm_ns, measured_ns) = (nanos(self.spec.warmup_s), nanos(self.spec.duration_s));
        let mut measured_from = None;
        let mut end = total;
        let mut ticker = tokio::time::interval(TIMEOUT_CHECK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while next < end || in_flight > 0 {
            while in_flight < most
                && next < end
                && let Some(Due { at: intended, woke }) = waiting.pop_front()
            {
                if next < warmup && warm_ns.is_some_and(|w| intended - start_ns >= w) {
                    next = warmup;
                }
                if next >= warmup {
                    let from = *measured_from.get_or_insert(intended);
                    if measured_ns.is_some_and(|d| intended - from >= d) {
                        // The point's time is up: nothing more is sent, and the pacer stops.
                        end = next;
                        waiting.clear();
                        due.close();
                        break;
                    }
                }
                let sent = self.issue(point, next, length, next < warmup, Some(intended), observer);
                self.pacing.woke_late.add(Duration::from_nanos(woke.saturating_sub(intended)));
                self.pacing.handed.add(Duration::from_nanos(sent.saturating_sub(woke)));
                next += 1;
                in_flight += 1;
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Some(RunStatus::Cancelled),
                at = due.recv(), if paced < total && next < end => match at {
                    Some(at) => {
                        paced += 1;
                        waiting.push_back(at);
                    }
                    None => return Some(RunStatus::Failed {
                        error: "tokenscope's pacing thread stopped before the point's last request".into(),
                    }),
                },
                done = self.done.recv() => {
                    if let Some(status) = self.settle(done, &mut in_flight, records, observer) {
                        return Some(status);
                    }
                }
                _ = ticker.tick() => {
                    if let Some(status) = self.check_time(&mut in_flight, records, observer) {
                        return Some(status);
                    }
                }
            }
        }
        None
    }

    /// Takes what a stream reported: a finished request is recorded, a fault ends the run.
    fn settle(
        &mut self,
        done: Option<Done>,
        in_flight: &mut u32,
        records: &mut Vec<RequestRecord>,
        observer: &mut dyn Observer,
    ) -> Option<RunStatus> {
        match done {
            Some(Done::Record(record, stream)) => {
                *in_flight -= 1;
                self.loads[stream] -= 1;
                self.room = record.responses.room();
                self.record(*record, records, observer);
                None
            }
            Some(Done::Fatal(error)) => Some(RunStatus::Failed { error }),
            None => unreachable!("the sweep holds a sender through its streams"),
        }
    }

    /// Abandons requests past their timeout, and ends the run once it has reached its
    /// longest duration.
    fn check_time(
        &mut self,
        in_flight: &mut u32,
        records: &mut Vec<RequestRecord>,
        observer: &mut dyn Observer,
    ) -> Option<RunStatus> {
        if std::time::Instant::now() >= self.deadline {
            return Some(RunStatus::Failed {
                error: format!(
                    "the run reached the limit of {} hours on one run's duration; what finished is kept",
                    limits::MAX_RUN_DURATION_S / 3600
                ),
            });
        }
        for record in self.expire() {
            *in_flight -= 1;
            self.record(record, records, observer);
        }
        None
    }

    /// Sends requests `seqs` of a point, `concurrency` at a time, for at most `lasting` from
    /// the first send when given, and collects them all. Returns the run's end status if it
    /// must stop early.
    #[allow(clippy::too_many_arguments)]
    async fn phase(
        &mut self,
        point: u32,
        length: u32,
        (concurrency, lasting): (u32, Option<Duration>),
        seqs: std::ops::Range<u32>,
        records: &mut Vec<RequestRecord>,
        observer: &mut dyn Observer,
        cancel: &CancellationToken,
    ) -> Option<RunStatus> {
        let warmup = seqs.start < self.spec.warmup;
        let mut next = seqs.start;
        let mut in_flight = 0u32;
        let mut ticker = tokio::time::interval(TIMEOUT_CHECK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let until = lasting.map(|d| std::time::Instant::now() + d);
        let open = |next: u32| next < seqs.end && until.is_none_or(|until| std::time::Instant::now() < until);
        while open(next) || in_flight > 0 {
            while in_flight < concurrency && open(next) {
                self.issue(point, next, length, warmup, None, observer);
                next += 1;
                in_flight += 1;
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Some(RunStatus::Cancelled),
                done = self.done.recv() => {
                    if let Some(status) = self.settle(done, &mut in_flight, records, observer) {
                        return Some(status);
                    }
                }
                _ = ticker.tick() => {
                    if let Some(status) = self.check_time(&mut in_flight, records, observer) {
                        return Some(status);
                    }
                }
            }
        }
        None
    }

    /// Sends one request, due at `intended` in open loop, and answers its send time. The
    /// observer hears of the send before the request is written, so that news of the send
    /// always comes before news of its tokens.
    fn issue(
        &mut self,
        point: u32,
        seq: u32,
        length: u32,
        warmup: bool,
        intended: Option<u64>,
        observer: &mut dyn Observer,
    ) -> u64 {
        // The run is ending: nothing more is sent.
        if self.prompts_failed {
            return self.clock.now_ns();
        }
        let (prompt, prompt_words) = match self.prompts.prompt(&self.spec, point, seq, length) {
            Ok(prompt) => (prompt.text, prompt.length),
            // The run ends with the reason, as when a stream is lost.
            Err(err) => {
                self.prompts_failed = true;
                let _ = self.done_tx.send(Done::Fatal(err));
                return self.clock.now_ns();
            }
        };
        let id = format!("{point}-{seq}");
        let max_tokens = self.spec.max_tokens_of(point, seq);
        let (request, reader) = match &self.wire {
            Wire::Grpc { plan, .. } => {
                (Outgoing::Grpc(plan.request(id.clone(), &prompt, max_tokens)), Some(plan.reader(&prompt)))
            }
            Wire::Http(wire) => (Outgoing::Http(wire.call(&id, &prompt, max_tokens)), None),
        };
        self.sent += 1;
        let (index, _) = self.loads.iter().enumerate().min_by_key(|&(_, load)| *load).expect("at least one stream");
        self.loads[index] += 1;
        let stream = &self.streams[index];
        let mut map = lock(&stream.inflight);
        let send_ns = self.clock.now_ns();
        map.insert(
            id,
            InFlight {
                point,
                seq,
                warmup,
                prompt_words,
                send_ns,
                intended_ns: intended,
                reader,
                responses: Responses::with_room(self.room),
                num_input_tokens: None,
                server_recv_unix_ns: None,
                server_counted: false,
                words_counted: false,
                error: None,
                finish_reason: None,
            },
        );
        drop(map);
        observer.request_sent(point, seq, send_ns);
        let (out, request) = match (&stream.out, request) {
            (Outlet::Stream(out), Outgoing::Grpc(request)) => (out, request),
            (Outlet::Unary(calls), Outgoing::Grpc(request)) => {
                calls.send(stream.inflight.clone(), request, self.sent);
                return send_ns;
            }
            (Outlet::Http(calls), Outgoing::Http(Ok(call))) => {
                calls.send(stream.inflight.clone(), call);
                return send_ns;
            }
            // A request that cannot be written fails alone.
            (_, Outgoing::Http(Err(why))) => {
                let id = format!("{point}-{seq}");
                if let Some(mut lost) = lock(&stream.inflight).remove(&id) {
                    lost.error = Some(format!("the request could not be written: {why}"));
                    let _ = self.done_tx.send(Done::record(lost.finish(id, Some(send_ns)), index));
                }
                return send_ns;
            }
            _ => unreachable!("requests are built for the run's outlet"),
        };
        // The stream's receiver is gone: the server ended the stream. The request fails, and
        // so does the run, since every later request would meet the same end.
        if let Err(mpsc::error::SendError(request)) = out.send(request)
            && let Some(mut lost) = lock(&stream.inflight).remove(&request.id)
        {
            let why = format!("the server at {} ended the stream", self.target);
            lost.error = Some(why.clone());
            let _ = self.done_tx.send(Done::record(lost.finish(request.id, None), index));
            let _ = self.done_tx.send(Done::Fatal(why));
        }
        send_ns
    }

    /// Abandons requests past their timeout. A stream left with nothing in flight is closed,
    /// which cancels the abandoned request on the server, and replaced by a fresh one: the
    /// server would otherwise go on generating for it, and the next request on the stream
    /// would be measured against that load.
    fn expire(&mut self) -> Vec<RequestRecord> {
        let now = self.clock.now_ns();
        let limit = self.spec.request_timeout_ms.saturating_mul(1_000_000);
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for (index, stream) in self.streams.iter().enumerate() {
            let mut map = lock(&stream.inflight);
            let before = out.len();
            let expired: Vec<String> =
                map.iter().filter(|(_, r)| now.saturating_sub(r.send_ns) > limit).map(|(id, _)| id.clone()).collect();
            for id in expired {
                let mut request = map.remove(&id).expect("listed above");
                request.error = Some(format!(
                    "no final response within the request timeout of {} ms",
                    self.spec.request_timeout_ms
                ));
                out.push(request.finish(id, None));
                self.loads[index] -= 1;
            }
            if out.len() > before && map.is_empty() && matches!(stream.out, Outlet::Stream(_)) {
                stale.push(index);
            }
        }
        for index in stale {
            self.streams[index].cancel.cancel();
            self.streams[index] = self.open_stream(index);
        }
        out
    }

    /// Collects what already finished, then marks every unfinished request as abandoned.
    /// Every record is reported to the observer, like any other finished request.
    fn abandon(&mut self, records: &mut Vec<RequestRecord>, observer: &mut dyn Observer) {
        // Unfinished requests first: a request leaves its map and reports itself done under
        // the map's lock, so after this every finished one is in the queue below.
        let mut abandoned = Vec::new();
        for stream in &self.streams {
            for (id, mut request) in lock(&stream.inflight).drain() {
                request.error.get_or_insert_with(|| "abandoned: the run stopped before this request finished".into());
                abandoned.push(request.finish(id, None));
            }
        }
        while let Ok(done) = self.done.try_recv() {
            if let Done::Record(record, _) = done {
                self.record(*record, records, observer);
            }
        }
        for record in abandoned {
            self.record(record, records, observer);
        }
    }

    /// Keeps a finished request's record with the run's, its responses in the run's arena.
    fn record(&mut self, mut record: RequestRecord, records: &mut Vec<RequestRecord>, observer: &mut dyn Observer) {
        record.responses.keep_in(&mut self.arena);
        observer.request_done(&record);
        records.push(record);
    }

    /// Ends every stream; dropping them cancels any work left on the server.
    fn shutdown(self) {
        self.streams_cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_makes_room_for_the_records_it_can_make() {
        let spec = SweepSpec { requests: 100, warmup: 10, ..SweepSpec::default() };
        assert_eq!(most_records(&spec, LoadLevel::Concurrency(4)), 110);
        assert_eq!(most_records(&spec, LoadLevel::Rate(5.0)), 110);
        // By time: an open-loop point sends about its rate times its seconds; room is made for
        // six standard deviations of random arrivals more.
        let timed = SweepSpec { duration_s: Some(2.0), warmup_s: Some(1.0), ..spec.clone() };
        assert_eq!(most_records(&timed, LoadLevel::Rate(5.0)), 10 + 29);
        assert_eq!(most_records(&timed, LoadLevel::Rate(1000.0)), 110);
        // A closed-loop point by time has only a cap, and no room is made for it.
        assert_eq!(most_records(&timed, LoadLevel::Concurrency(4)), 0);
    }
}
