//! The simulator's clock: one thread that sends every response at its absolute deadline.
//!
//! A token's deadline is computed from the previous deadline, never from when the previous
//! token was actually sent, so lateness does not accumulate and a client can be judged
//! against the schedule. tokio's timer is too coarse (1 ms) for sub-millisecond decode
//! steps; a dedicated thread waiting on a channel with a timeout is not.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use shared::InputStyle;

use super::model::{Ask, SimConfig, SimModel, Step, token_text};
use super::wire::Encoded;
use crate::clock::unix_now_ns;
use crate::pb;
use crate::pb::infer_parameter::ParameterChoice;
use crate::style::SEND_TIME_KEY;

/// Where a job's responses go.
pub enum Sink {
    Stream(mpsc::UnboundedSender<Result<Encoded, Status>>),
    Unary(oneshot::Sender<Result<pb::ModelInferResponse, Status>>),
}

/// A request handed to the scheduler.
pub struct Job {
    pub model: &'static SimModel,
    pub ask: Ask,
    pub arrived: Instant,
    pub sink: Sink,
}

/// Counters behind ModelStatistics.
#[derive(Debug, Default)]
pub struct Counters {
    pub success: AtomicU64,
    pub success_ns: AtomicU64,
    pub fail: AtomicU64,
}

/// With `--stamp-text`, a token's text until its response is sent: `@` and 19 digits, which
/// [`stamp`] overwrites with the send time in Unix nanoseconds.
pub const STAMP: &str = "@0000000000000000000";

struct Running {
    job: Job,
    /// Content responses sent so far.
    responses: u32,
    /// Tokens generated so far.
    generated: u32,
    text: String,
    /// The fields every streamed response shares, encoded once.
    head: Vec<u8>,
    deadline: Instant,
    rng: u64,
    fail: bool,
    /// The first response claims a huge token count (`--huge-count-every`).
    huge: bool,
    decoding: bool,
}

/// Runs until every sender of `jobs` is gone and every job has finished.
pub fn run(config: SimConfig, jobs: Receiver<Job>, counters: Arc<HashMap<&'static str, Counters>>) {
    let mut heap: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut running: HashMap<u64, Running> = HashMap::new();
    let mut next_key = 0u64;
    let mut admitted = 0u64;
    let mut decoding = 0usize;
    let mut open = true;
    loop {
        let wait = heap.peek().map(|Reverse((deadline, _))| deadline.saturating_duration_since(Instant::now()));
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
            admitted += 1;
            let mut rng = config.seed ^ admitted.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let prefill = jittered(config.prefill(job.ask.prompt_tokens), config.jitter, &mut rng);
            let deadline = job.arrived + prefill;
            let fail = config.fail_every > 0 && admitted.is_multiple_of(config.fail_every);
            let huge = config.huge_count_every > 0 && admitted.is_multiple_of(config.huge_count_every);
            let head = match job.sink {
                Sink::Stream(_) => job.model.head(&job.ask),
                Sink::Unary(_) => Vec::new(),
            };
            heap.push(Reverse((deadline, next_key)));
            running.insert(
                next_key,
                Running {
                    job,
                    responses: 0,
                    generated: 0,
                    text: String::new(),
                    head,
                    deadline,
                    rng,
                    fail,
                    huge,
                    decoding: false,
                },
            );
            next_key += 1;
            continue;
        }
        while let Some(&Reverse((deadline, key))) = heap.peek() {
            if deadline > Instant::now() {
                break;
            }
            heap.pop();
            let mut run = running.remove(&key).expect("scheduled jobs are running");
            if !run.decoding {
                run.decoding = true;
                decoding += 1;
            }
            if step(&config, &mut run, decoding, &counters) {
                heap.push(Reverse((run.deadline, key)));
                running.insert(key, run);
            } else {
                decoding -= 1;
            }
        }
    }
}

/// Sends what is due for a job; returns whether it has more to send.
fn step(config: &SimConfig, run: &mut Running, decoding: usize, counters: &HashMap<&'static str, Counters>) -> bool {
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
        text =
            if model.style == InputStyle::Tutorial { format!(" @{:019}", unix_now_ns()) } else { format!(" {STAMP}") };
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
        Sink::Stream(tx) => {
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
                    let _ = tx.send(Ok(model.encoded_content(&run.head, ask, &step)));
                }
                !done
            } else if run.fail && run.responses == 2 {
                let _ = tx.send(Ok(Encoded::plain(&pb::ModelStreamInferResponse {
                    error_message: format!(
                        "simulated failure of request '{}' (--fail-every {})",
                        ask.id, config.fail_every
                    ),
                    infer_response: Some(pb::ModelInferResponse { id: ask.id.clone(), ..Default::default() }),
                })));
                counter.fail.fetch_add(1, Ordering::Relaxed);
                return false;
            } else {
                let last_content_final = done && !model.separate_final();
                let response = model.encoded_content(
                    &run.head,
                    ask,
                    &Step {
                        generated: &run.text,
                        first,
                        count,
                        text: &text,
                        is_final: last_content_final,
                        claimed: (run.huge && run.responses == 1).then_some(u32::MAX),
                    },
                );
                let ok = tx.send(Ok(response)).is_ok();
                if ok && done && model.separate_final() && ask.empty_final {
                    let _ = tx.send(Ok(super::wire::response(&run.head, true, &[])));
                }
                ok
            }
        }
    };
    if !alive || done {
        if done {
            counter.success.fetch_add(1, Ordering::Relaxed);
            counter.success_ns.fetch_add(run.job.arrived.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        return false;
    }
    let step = config.decode(ask.prompt_tokens + run.generated, decoding);
    let next = model.tokens_in_response(run.responses, ask.max_tokens - run.generated);
    for _ in 0..next {
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
}
