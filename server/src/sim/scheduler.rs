//! The simulator's clock: one thread that sends every response at its absolute deadline.
//!
//! A token's deadline is computed from the previous deadline, never from when the previous
//! token was actually sent, so lateness does not accumulate and a client can be judged
//! against the schedule. tokio's timer is too coarse (1 ms) for sub-millisecond decode
//! steps; a dedicated thread waiting on a channel with a timeout is not.
//!
//! Each model batches continuously, as a vLLM engine does: with `--max-sequences N` at most N
//! of its requests hold a slot (in prefill or decoding) and the rest wait in arrival order. A
//! slot frees at the deadline of its sequence's last step, and the next waiting request's
//! prefill starts from that deadline too, so queueing adds no lateness either.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::model::{Ask, MODELS, SimConfig, SimModel, Step, token_text};
use super::wire::Encoded;
use crate::clock::unix_now_ns;
use crate::convention::{SEND_TIME_KEY, TextForm};
use crate::pb;
use crate::pb::infer_parameter::ParameterChoice;

/// A streamed response as the HTTP protocols take it: the message, or the error that ends
/// the request. Its sender is dropped once the request has ended.
pub type HttpItem = Result<pb::ModelInferResponse, String>;

/// Where a job's responses go.
pub enum Sink {
    /// ModelStreamInfer: responses encoded for the wire, stamped as tonic sends them.
    Stream(mpsc::UnboundedSender<Result<Encoded, Status>>),
    Unary(oneshot::Sender<Result<pb::ModelInferResponse, Status>>),
    /// The HTTP protocols (`super::http`, `super::openai`): responses as messages, which
    /// the connection renders as events and stamps as it writes them. An empty final
    /// response is never sent: the channel's end ends the request.
    Http(mpsc::UnboundedSender<HttpItem>),
}

impl Sink {
    /// Whether the client is gone: its stream dropped, or its call cancelled.
    fn is_closed(&self) -> bool {
        match self {
            Sink::Stream(tx) => tx.is_closed(),
            Sink::Unary(tx) => tx.is_closed(),
            Sink::Http(tx) => tx.is_closed(),
        }
    }

    /// Sends a streamed content response of `model` carrying `step`; whether the client is
    /// still there. `head` is the model's [`SimModel::head`] for a gRPC stream.
    fn content(&self, model: &SimModel, head: &[u8], ask: &Ask, step: &Step) -> bool {
        match self {
            Sink::Stream(tx) => tx.send(Ok(model.encoded_content(head, ask, step))).is_ok(),
            Sink::Http(tx) => tx.send(Ok(model.content(ask, step))).is_ok(),
            Sink::Unary(_) => unreachable!("a unary call's one response is sent by `step` itself"),
        }
    }

    /// Sends the error that ends a streamed request.
    fn error(&self, ask: &Ask, message: String) {
        match self {
            Sink::Stream(tx) => {
                let _ = tx.send(Ok(Encoded::plain(&pb::ModelStreamInferResponse {
                    error_message: message,
                    infer_response: Some(pb::ModelInferResponse { id: ask.id.clone(), ..Default::default() }),
                })));
            }
            Sink::Http(tx) => {
                let _ = tx.send(Err(message));
            }
            Sink::Unary(_) => unreachable!("a unary call never fails mid-way"),
        }
    }

    /// Sends the empty response that flags a streamed request's end, where the protocol has one.
    fn empty_final(&self, head: &[u8]) {
        if let Sink::Stream(tx) = self {
            let _ = tx.send(Ok(super::wire::response(head, true, &[])));
        }
    }
}

/// A request handed to the scheduler.
pub struct Job {
    pub model: &'static SimModel,
    pub ask: Ask,
    pub arrived: Instant,
    pub sink: Sink,
}

/// Counters behind ModelStatistics and the metrics: requests that succeeded and their time
/// from arrival to the last response, of it waiting for a slot (queue) and holding one
/// (compute, from the prefill's start), and requests that failed; and gauges of the model's
/// queue and batch as they are now.
#[derive(Debug, Default)]
pub struct Counters {
    pub success: AtomicU64,
    pub success_ns: AtomicU64,
    pub queue_ns: AtomicU64,
    pub compute_ns: AtomicU64,
    pub fail: AtomicU64,
    /// Requests waiting for a slot. A request whose client left while it waited counts until
    /// the slot it would have taken frees, as it stays in the queue until then.
    pub pending: AtomicU64,
    /// Sequences holding a slot: in prefill or decoding.
    pub running: AtomicU64,
}

/// What the scheduler counts, shared with the services that report it.
#[derive(Debug)]
pub struct Stats {
    /// Each model's counters, by name; every model in [`MODELS`] has them.
    pub models: HashMap<&'static str, Counters>,
    /// Time during which any model ran a sequence.
    pub busy: BusyClock,
}

impl Default for Stats {
    fn default() -> Self {
        Self { models: MODELS.iter().map(|m| (m.name, Counters::default())).collect(), busy: BusyClock::default() }
    }
}

/// Time during which at least one sequence held a slot, on any model: the simulator's stand-in
/// for a GPU's busy time. Its moments are the schedule's (a prefill's start, a last step's
/// deadline), not when the scheduler thread got to them, as every other time it reports.
#[derive(Debug, Default)]
pub struct BusyClock(Mutex<Busy>);

#[derive(Debug, Default)]
struct Busy {
    /// Sequences holding a slot, across models.
    running: usize,
    /// Length of the busy periods that have ended.
    total: Duration,
    /// When the period under way began.
    since: Option<Instant>,
    /// When the last period ended: a later one begins no earlier, so that no time counts twice
    /// when a request stamped as arriving before it is received after it.
    last_end: Option<Instant>,
}

impl BusyClock {
    fn busy(&self) -> std::sync::MutexGuard<'_, Busy> {
        // The lock guards plain numbers that every update leaves consistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A sequence took a slot at `at`.
    pub fn started(&self, at: Instant) {
        let mut busy = self.busy();
        if busy.running == 0 {
            busy.since = Some(busy.last_end.map_or(at, |end| end.max(at)));
        }
        busy.running += 1;
    }

    /// A sequence freed its slot at `at`.
    pub fn ended(&self, at: Instant) {
        let mut busy = self.busy();
        busy.running = busy.running.saturating_sub(1);
        if busy.running == 0
            && let Some(since) = busy.since.take()
        {
            let end = at.max(since);
            busy.total += end - since;
            busy.last_end = Some(end);
        }
    }

    /// Busy time from the start until `now`, the period under way included.
    pub fn until(&self, now: Instant) -> Duration {
        let busy = self.busy();
        busy.total + busy.since.map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }
}

/// With `--stamp-text`, a token's text until its response is sent: `@` and 19 digits, which
/// [`stamp`] overwrites with the send time in Unix nanoseconds.
pub const STAMP: &str = "@0000000000000000000";

struct Running {
    job: Job,
    /// The model's place in [`MODELS`], and so its [`Engine`]'s.
    engine: usize,
    /// Content responses sent so far.
    responses: u32,
    /// Tokens generated so far.
    generated: u32,
    text: String,
    /// The fields every streamed response shares, encoded once.
    head: Vec<u8>,
    deadline: Instant,
    /// When its prefill started: when it took a slot.
    started: Instant,
    rng: u64,
    fail: bool,
    /// The first response claims a huge token count (`--huge-count-every`).
    huge: bool,
}

impl Running {
    /// The `number`th request received (from 1), not started yet.
    fn new(config: &SimConfig, job: Job, number: u64) -> Self {
        let rng = config.seed ^ number.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let fail = config.fail_every > 0 && number.is_multiple_of(config.fail_every);
        let huge = config.huge_count_every > 0 && number.is_multiple_of(config.huge_count_every);
        let head = match job.sink {
            Sink::Stream(_) => job.model.head(&job.ask),
            Sink::Unary(_) | Sink::Http(_) => Vec::new(),
        };
        Running {
            engine: job.model.index(),
            deadline: job.arrived,
            started: job.arrived,
            job,
            responses: 0,
            generated: 0,
            text: String::new(),
            head,
            rng,
            fail,
            huge,
        }
    }
}

/// One model's batch.
#[derive(Default)]
struct Engine {
    /// Sequences holding a slot: in prefill or decoding.
    active: usize,
    /// Requests waiting for a slot, first come, first served.
    waiting: VecDeque<Running>,
    /// The deadline at which a slot last freed while every slot was taken: a request received
    /// after that but stamped as arriving before it had no slot until then.
    freed: Option<Instant>,
}

impl Engine {
    /// Shows the batch and the queue as they are now in the model's gauges; the scheduler is
    /// their only writer, so they are exact between its changes.
    fn publish(&self, counters: &Counters) {
        counters.running.store(self.active as u64, Ordering::Relaxed);
        counters.pending.store(self.waiting.len() as u64, Ordering::Relaxed);
    }
}

/// The sequences holding a slot, by deadline.
struct Timeline {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    running: HashMap<u64, Running>,
    next_key: u64,
}

impl Timeline {
    /// Starts a sequence's prefill at `at`.
    fn start(&mut self, config: &SimConfig, mut run: Running, at: Instant) {
        let prefill = jittered(config.prefill(run.job.ask.prompt_tokens), config.jitter, &mut run.rng);
        run.started = at;
        run.deadline = at + prefill;
        self.heap.push(Reverse((run.deadline, self.next_key)));
        self.running.insert(self.next_key, run);
        self.next_key += 1;
    }
}

/// Runs until every sender of `jobs` is gone and every job has finished.
pub fn run(config: SimConfig, jobs: Receiver<Job>, stats: Arc<Stats>) {
    let mut timeline = Timeline { heap: BinaryHeap::new(), running: HashMap::new(), next_key: 0 };
    let mut engines: [Engine; MODELS.len()] = Default::default();
    let slots = if config.max_sequences == 0 { usize::MAX } else { config.max_sequences };
    let mut received_count = 0u64;
    let mut open = true;
    loop {
        let wait =
            timeline.heap.peek().map(|Reverse((deadline, _))| deadline.saturating_duration_since(Instant::now()));
        let received = match (open, wait) {
            (false, None) => return,
            (false, Some(wait)) => {
                std::thread::sleep(wait);
                None
            }
            (true, None) => match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => {
                    open = false;
                    None
                }
            },
            (true, Some(wait)) if wait.is_zero() => match jobs.try_recv() {
                Ok(job) => Some(job),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    None
                }
            },
            (true, Some(wait)) => match jobs.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    None
                }
            },
        };
        if let Some(job) = received {
            received_count += 1;
            let run = Running::new(&config, job, received_count);
            let counters = &stats.models[run.job.model.name];
            let engine = &mut engines[run.engine];
            if engine.active < slots {
                engine.active += 1;
                let at = engine.freed.map_or(run.job.arrived, |freed| freed.max(run.job.arrived));
                stats.busy.started(at);
                timeline.start(&config, run, at);
            } else {
                engine.waiting.push_back(run);
            }
            engine.publish(counters);
            continue;
        }
        while let Some(&Reverse((deadline, key))) = timeline.heap.peek() {
            if deadline > Instant::now() {
                break;
            }
            timeline.heap.pop();
            let mut run = timeline.running.remove(&key).expect("scheduled jobs are running");
            let engine = &mut engines[run.engine];
            if step(&config, &mut run, engine.active, &stats.models) {
                timeline.heap.push(Reverse((run.deadline, key)));
                timeline.running.insert(key, run);
                continue;
            }
            // The sequence ended at this step: its slot goes to the first waiting request
            // whose client is still there, whose prefill starts at this step's deadline.
            if engine.active == slots {
                engine.freed = Some(deadline);
            }
            engine.active -= 1;
            stats.busy.ended(deadline);
            while engine.active < slots
                && let Some(next) = engine.waiting.pop_front()
            {
                if next.job.sink.is_closed() {
                    continue;
                }
                engine.active += 1;
                let at = deadline.max(next.job.arrived);
                stats.busy.started(at);
                timeline.start(&config, next, at);
            }
            engine.publish(&stats.models[run.job.model.name]);
        }
    }
}

/// Sends what is due for a job, with `active` sequences running on its model; returns whether
/// it has more to send.
fn step(config: &SimConfig, run: &mut Running, active: usize, counters: &HashMap<&'static str, Counters>) -> bool {
    if run.job.sink.is_closed() {
        // The client is gone: the sequence ends here, as a server aborts a cancelled request
        // at its next step.
        return false;
    }
    let model = run.job.model;
    let ask = &run.job.ask;
    let left = ask.max_tokens - run.generated;
    let count = model.tokens_in_response(run.responses, left);
    // A response carrying several tokens waits for all of their decode steps.
    let mut text = String::new();
    for i in run.generated..run.generated + count {
        text.push(' ');
        text.push_str(token_text(i));
    }
    let first = run.generated;
    run.generated += count;
    run.responses += 1;
    let done = run.generated >= ask.max_tokens;
    let counter = &counters[model.name];
    if config.stamp_text {
        // Cumulative text repeats earlier tokens in every later response, so their stamps must
        // not change after the fact: there the step's time is written at once.
        text = match model.convention().text_form {
            TextForm::Cumulative => format!(" @{:019}", unix_now_ns()),
            TextForm::Delta => format!(" {STAMP}"),
        };
        if count > 1 {
            text.push_str(&" @".repeat(count as usize - 1));
        }
    }
    run.text.push_str(&text);
    let alive = match &run.job.sink {
        Sink::Unary(_) if !done => true,
        Sink::Unary(_) => {
            let step = Step {
                generated: &run.text,
                first: 0,
                count: run.generated,
                text: &run.text,
                is_final: true,
                claimed: None,
            };
            let response = model.content(ask, &step);
            let Sink::Unary(tx) = std::mem::replace(&mut run.job.sink, closed_sink()) else { unreachable!() };
            let _ = tx.send(Ok(response));
            false
        }
        Sink::Stream(_) | Sink::Http(_) => {
            let sink = &run.job.sink;
            if !model.decoupled {
                // A non-decoupled model answers once, with everything.
                if done {
                    let step = Step {
                        generated: &run.text,
                        first: 0,
                        count: run.generated,
                        text: &run.text,
                        is_final: true,
                        claimed: None,
                    };
                    sink.content(model, &run.head, ask, &step);
                }
                !done
            } else if run.fail && run.responses == 2 {
                let message = format!("simulated failure of request '{}' (--fail-every {})", ask.id, config.fail_every);
                sink.error(ask, message);
                counter.fail.fetch_add(1, Ordering::Relaxed);
                return false;
            } else {
                let last_content_final = done && !model.separate_final();
                let step = Step {
                    generated: &run.text,
                    first,
                    count,
                    text: &text,
                    is_final: last_content_final,
                    claimed: (run.huge && run.responses == 1).then_some(u32::MAX),
                };
                let ok = sink.content(model, &run.head, ask, &step);
                if ok && done && model.separate_final() && ask.empty_final {
                    sink.empty_final(&run.head);
                }
                ok
            }
        }
    };
    if !alive || done {
        if done {
            let (now, ns) = (Instant::now(), |d: Duration| d.as_nanos() as u64);
            counter.success.fetch_add(1, Ordering::Relaxed);
            counter.success_ns.fetch_add(ns(now.saturating_duration_since(run.job.arrived)), Ordering::Relaxed);
            counter.queue_ns.fetch_add(ns(run.started.saturating_duration_since(run.job.arrived)), Ordering::Relaxed);
            counter.compute_ns.fetch_add(ns(now.saturating_duration_since(run.started)), Ordering::Relaxed);
        }
        return false;
    }
    // Token `k` is decoded with the prompt and tokens 0..k as context.
    let next = model.tokens_in_response(run.responses, ask.max_tokens - run.generated);
    for k in run.generated..run.generated + next {
        let step = config.decode(ask.prompt_tokens.saturating_add(k), active);
        run.deadline += jittered(step, config.jitter, &mut run.rng);
    }
    true
}

fn closed_sink() -> Sink {
    Sink::Unary(oneshot::channel().0)
}

/// Puts `send_ns` in a unary response as the moment it was sent: in its parameters, and in
/// place of every [`STAMP`] in its outputs (`--stamp-text`). Streamed responses are stamped
/// by [`Encoded::stamp`]. Both are stamped as they are handed to the transport, not when
/// their step falls due, so that the time a response waits behind the others of the same
/// step counts as the simulator's, not the client's.
pub fn stamp(response: &mut pb::ModelInferResponse, send_ns: i64) {
    response.parameters.insert(
        SEND_TIME_KEY.into(),
        pb::InferParameter { parameter_choice: Some(ParameterChoice::Int64Param(send_ns)) },
    );
    let digits = format!("{send_ns:019}");
    for bytes in &mut response.raw_output_contents {
        let mut at = 0;
        while let Some(found) = find(&bytes[at..], STAMP.as_bytes()) {
            let start = at + found + 1;
            bytes[start..start + 19].copy_from_slice(&digits.as_bytes()[..19]);
            at = start + 19;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Scales a duration by a uniform factor in `[1 - jitter, 1 + jitter]`.
fn jittered(d: Duration, jitter: f64, rng: &mut u64) -> Duration {
    if jitter <= 0.0 {
        return d;
    }
    *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *rng;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let unit = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
    d.mul_f64((1.0 + jitter * (2.0 * unit - 1.0)).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_fill_the_parameter_and_every_placeholder() {
        let text = format!(" {STAMP} @ {STAMP}");
        let mut response =
            pb::ModelInferResponse { raw_output_contents: vec![text.into_bytes()], ..Default::default() };
        stamp(&mut response, 1_795_000_000_123_456_789);
        assert_eq!(
            String::from_utf8(response.raw_output_contents[0].clone()).unwrap(),
            " @1795000000123456789 @ @1795000000123456789"
        );
        assert_eq!(
            response.parameters[SEND_TIME_KEY].parameter_choice,
            Some(ParameterChoice::Int64Param(1_795_000_000_123_456_789))
        );
    }

    #[test]
    fn jitter_stays_in_bounds_and_is_seeded() {
        let d = Duration::from_millis(10);
        let (mut a, mut b) = (7u64, 7u64);
        for _ in 0..1000 {
            let x = jittered(d, 0.2, &mut a);
            assert!(x >= Duration::from_millis(8) && x <= Duration::from_millis(12));
            assert_eq!(x, jittered(d, 0.2, &mut b));
        }
        assert_eq!(jittered(d, 0.0, &mut a), d);
    }

    /// The slot tests measure real time: one at a time.
    static SLOTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// A scheduler on a thread of its own; it ends once the sender is dropped and its jobs are done.
    fn scheduler(config: SimConfig) -> std::sync::mpsc::Sender<Job> {
        scheduler_counting(config).0
    }

    /// [`scheduler`], with what it counts.
    fn scheduler_counting(config: SimConfig) -> (std::sync::mpsc::Sender<Job>, Arc<Stats>) {
        let (jobs, receiver) = std::sync::mpsc::channel();
        let stats = Arc::new(Stats::default());
        let counted = stats.clone();
        std::thread::spawn(move || run(config, receiver, counted));
        (jobs, stats)
    }

    fn ask(prompt_tokens: u32, max_tokens: u32) -> Ask {
        Ask {
            id: String::new(),
            prompt: String::new(),
            prompt_tokens,
            max_tokens,
            want_input_count: false,
            want_output_count: false,
            empty_final: false,
        }
    }

    type Responses = mpsc::UnboundedReceiver<Result<Encoded, Status>>;

    /// Hands the scheduler a streamed request to `model`, arrived at `arrived`.
    fn send(jobs: &std::sync::mpsc::Sender<Job>, model: &str, ask: Ask, arrived: Instant) -> Responses {
        let (tx, rx) = mpsc::unbounded_channel();
        let model = super::super::model::find(model).unwrap();
        jobs.send(Job { model, ask, arrived, sink: Sink::Stream(tx) }).unwrap();
        rx
    }

    /// When each of a stream's responses came, until its last.
    fn times(mut rx: Responses) -> std::thread::JoinHandle<Vec<Instant>> {
        std::thread::spawn(move || {
            let mut times = Vec::new();
            while rx.blocking_recv().is_some() {
                times.push(Instant::now());
            }
            times
        })
    }

    fn slotted(max_sequences: usize) -> SimConfig {
        SimConfig {
            prefill_base_ms: 40.0,
            prefill_per_token_ms: 0.2,
            decode_ms: 10.0,
            decode_per_sequence_ms: 2.0,
            max_sequences,
            ..SimConfig::default()
        }
    }

    #[test]
    fn a_request_beyond_the_slots_starts_its_prefill_when_the_first_sequence_ends() {
        let _one = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        let config = slotted(2);
        let jobs = scheduler(config.clone());
        let t0 = Instant::now();
        let a = times(send(&jobs, "sim-vllm", ask(0, 6), t0));
        let b = times(send(&jobs, "sim-vllm", ask(0, 10), t0));
        let c = times(send(&jobs, "sim-vllm", ask(100, 3), t0));
        drop(jobs);
        let (a, b, c) = (a.join().unwrap(), b.join().unwrap(), c.join().unwrap());
        assert_eq!((a.len(), b.len(), c.len()), (6, 10, 3));
        // a and b hold the two slots, each decoding beside the other (12 ms steps): a ends
        // at 40 + 5 * 12 = 100 ms, b at 40 + 9 * 12 = 148 ms; c waits for a's slot.
        let a_end = t0 + config.sequence_time(0, 6, 2);
        assert_eq!(a_end - t0, ms(100));
        assert!(a[5] >= a_end && a[5] < b[9], "a ends first");
        assert!(c[0] > a[5], "c's first token comes after a's last");
        assert!(c[0] >= a_end + config.prefill(100), "c: {:?} after the start", c[0] - t0);
        // c took the slot a freed: its first token is due at 160 ms, at 208 ms had it waited for b.
        assert!(c[0] < t0 + ms(200), "c: {:?} after the start", c[0] - t0);
    }

    #[test]
    fn waiting_requests_start_in_arrival_order() {
        let _one = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        let config = slotted(1);
        let jobs = scheduler(config.clone());
        let t0 = Instant::now();
        // b's long prompt makes it the slowest to prefill: still it goes before c and d.
        let asks = [(0, 3), (200, 2), (0, 2), (0, 2)];
        let handles: Vec<_> = asks.iter().map(|&(p, t)| times(send(&jobs, "sim-vllm", ask(p, t), t0))).collect();
        drop(jobs);
        let got: Vec<Vec<Instant>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let mut end = t0;
        for (i, (&(p, t), times)) in asks.iter().zip(&got).enumerate() {
            assert_eq!(times.len(), t as usize);
            assert!(times[0] >= end + config.prefill(p), "request {i} began before the one ahead of it ended");
            if i > 0 {
                assert!(times[0] > *got[i - 1].last().unwrap(), "request {i} overtook request {}", i - 1);
            }
            end += config.sequence_time(p, t, 1);
        }
    }

    #[test]
    fn a_request_dropped_while_waiting_never_takes_a_slot() {
        let _one = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        let config = slotted(1);
        let jobs = scheduler(config.clone());
        let t0 = Instant::now();
        let a = times(send(&jobs, "sim-vllm", ask(0, 4), t0));
        // b's client leaves while b waits; had b taken the slot, its 240 ms prefill would
        // hold c back until b's first step found the client gone.
        drop(send(&jobs, "sim-vllm", ask(1000, 2), t0));
        let c = times(send(&jobs, "sim-vllm", ask(0, 2), t0));
        drop(jobs);
        let (a, c) = (a.join().unwrap(), c.join().unwrap());
        let a_end = t0 + config.sequence_time(0, 4, 1);
        assert!(a[3] >= a_end);
        assert!(c[0] >= a_end + config.prefill(0), "c: {:?} after the start", c[0] - t0);
        assert!(c[0] < a_end + config.prefill(0) + ms(150), "c: {:?} after the start", c[0] - t0);
    }

    #[test]
    fn a_cancelled_sequence_frees_its_slot_at_its_next_step() {
        let _one = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        let config = slotted(1);
        let jobs = scheduler(config.clone());
        let t0 = Instant::now();
        // sim-vllm: a streamed sequence of 100 tokens (about a second) whose stream drops
        // after two tokens.
        let mut a = send(&jobs, "sim-vllm", ask(0, 100), t0);
        let b = times(send(&jobs, "sim-vllm", ask(0, 2), t0));
        // sim-unary, another model with a slot of its own: a call cancelled while it runs.
        let (tx, rx) = oneshot::channel();
        let model = super::super::model::find("sim-unary").unwrap();
        jobs.send(Job { model, ask: ask(0, 100), arrived: t0, sink: Sink::Unary(tx) }).unwrap();
        let d = times(send(&jobs, "sim-unary", ask(0, 2), t0));
        drop(jobs);
        a.blocking_recv().unwrap().unwrap();
        a.blocking_recv().unwrap().unwrap();
        let dropped = Instant::now();
        drop(a);
        drop(rx);
        let (b, d) = (b.join().unwrap(), d.join().unwrap());
        // Each sequence's step after the drop finds its client gone and frees the slot
        // (10 ms steps), and the waiting request's prefill (40 ms) starts from that step.
        // The third token's step is the first that can: a's first two were received.
        let whole = config.sequence_time(0, 100, 1);
        assert!(whole > ms(1000));
        assert!(b[0] >= t0 + config.sequence_time(0, 3, 1) + config.prefill(0));
        assert!(b[0] < dropped + ms(150), "b: {:?} after the drop", b[0] - dropped);
        // The cancelled call's step due with a's second token may already find it gone; d's
        // one response comes after its prefill and one decode step.
        assert!(d[0] >= t0 + config.sequence_time(0, 2, 1) * 2);
        assert!(d[0] < dropped + ms(150), "d: {:?} after the cancel", d[0] - dropped);
        assert_eq!((b.len(), d.len()), (2, 1));
    }

    #[test]
    fn each_model_has_slots_of_its_own() {
        let _one = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        let config = slotted(1);
        let jobs = scheduler(config.clone());
        let t0 = Instant::now();
        let a = times(send(&jobs, "sim-vllm", ask(0, 10), t0));
        let b = times(send(&jobs, "sim-tutorial", ask(0, 2), t0));
        drop(jobs);
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(b[0] >= t0 + config.prefill(0));
        // Behind a, b's first token would come at 130 ms.
        assert!(b[0] < t0 + ms(100) && b[0] < a[9], "b: {:?} after the start", b[0] - t0);
    }

    #[test]
    fn the_gauges_follow_the_queue_and_the_batch() {
        let _one = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        let (jobs, stats) = scheduler_counting(slotted(1));
        let vllm = &stats.models["sim-vllm"];
        let gauges = || (vllm.running.load(Ordering::Relaxed), vllm.pending.load(Ordering::Relaxed));
        let t0 = Instant::now();
        let a = times(send(&jobs, "sim-vllm", ask(0, 20), t0));
        let b = times(send(&jobs, "sim-vllm", ask(0, 2), t0));
        let c = times(send(&jobs, "sim-vllm", ask(0, 2), t0));
        // a holds the slot for 230 ms; b and c wait behind it.
        let seen = Instant::now();
        while gauges() != (1, 2) {
            assert!(seen.elapsed() < ms(200), "the queue never showed: {:?}", gauges());
            std::thread::yield_now();
        }
        drop(jobs);
        let (a, b, c) = (a.join().unwrap(), b.join().unwrap(), c.join().unwrap());
        assert!(a[19] < b[0] && b[1] < c[0]);
        // The last sequence's end is published right after its last response is sent.
        let seen = Instant::now();
        while gauges() != (0, 0) {
            assert!(seen.elapsed() < ms(1000), "the gauges stayed at {:?}", gauges());
            std::thread::yield_now();
        }
        assert_eq!(stats.models["sim-tutorial"].running.load(Ordering::Relaxed), 0);
        // One sequence ran at a time, back to back, from t0 to c's last step.
        let busy = stats.busy.until(Instant::now());
        let schedule = config_time(&slotted(1), &[(0, 20), (0, 2), (0, 2)]);
        assert!(busy >= schedule && busy < schedule + ms(5), "busy {busy:?}, the schedule {schedule:?}");
    }

    /// How long sequences of `(prompt, max_tokens)` take one after another, alone on the model.
    fn config_time(config: &SimConfig, sequences: &[(u32, u32)]) -> Duration {
        sequences.iter().map(|&(p, t)| config.sequence_time(p, t, 1)).sum()
    }

    #[test]
    fn busy_time_counts_overlapping_sequences_once() {
        let clock = BusyClock::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(clock.until(at(50)), Duration::ZERO);
        clock.started(at(100));
        assert_eq!(clock.until(at(150)), ms(50), "a period under way counts up to now");
        clock.started(at(120));
        clock.ended(at(200));
        clock.ended(at(260));
        assert_eq!(clock.until(at(1000)), ms(160));
        // A request stamped as arriving before the last period ended starts no earlier than that end.
        clock.started(at(240));
        clock.ended(at(300));
        assert_eq!(clock.until(at(1000)), ms(200));
        // A sequence ended at its start takes no time.
        clock.started(at(400));
        clock.ended(at(400));
        assert_eq!(clock.until(at(1000)), ms(200));
    }
}
