//! What the server says of a point: the change in Triton's own statistics of the model
//! (`ModelStatistics`) from just before the point to just after it, per request, to set
//! beside the client's TTFT and end-to-end latency.
//!
//! For a decoupled model (streamed tokens) Triton's figures cover its `execute` call and the
//! responses the model sent from it; how much of the streaming that holds depends on the
//! backend (the vLLM backend's `execute` returns once a request is handed to its engine).

use serde::{Deserialize, Serialize};

/// Triton's cumulative counters for one model (`InferStatistics`): counts and nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCounters {
    /// Requests that succeeded, and their time in the server from arrival to the end.
    pub success: (u64, u64),
    pub fail: (u64, u64),
    /// Time waiting in the scheduler's queue.
    pub queue: (u64, u64),
    /// Time preparing inputs, executing the model and handling outputs.
    pub compute_input: (u64, u64),
    pub compute_infer: (u64, u64),
    pub compute_output: (u64, u64),
}

/// A point's share of the server's counters: requests it finished, and the mean time of each
/// in milliseconds. Warm-up requests are part of the point's window, so they are included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerPointStats {
    /// Requests the server finished successfully during the point.
    pub requests: u64,
    /// Requests the server counted as failed during the point.
    pub failed: u64,
    /// Mean time from a request's arrival in the server to its end.
    pub request_ms: f64,
    /// Mean time waiting in the server's queue.
    pub queue_ms: f64,
    pub compute_input_ms: f64,
    pub compute_infer_ms: f64,
    pub compute_output_ms: f64,
}

impl ServerCounters {
    /// What happened between `before` and `self`: `None` when a counter went backwards (the
    /// server or model restarted in between, so the difference means nothing).
    pub fn since(&self, before: &ServerCounters) -> Option<ServerPointStats> {
        let pairs = [
            (self.success, before.success),
            (self.fail, before.fail),
            (self.queue, before.queue),
            (self.compute_input, before.compute_input),
            (self.compute_infer, before.compute_infer),
            (self.compute_output, before.compute_output),
        ];
        let mut deltas = [(0u64, 0u64); 6];
        for (delta, (after, before)) in deltas.iter_mut().zip(pairs) {
            *delta = (after.0.checked_sub(before.0)?, after.1.checked_sub(before.1)?);
        }
        let mean = |(count, ns): (u64, u64)| if count == 0 { 0.0 } else { ns as f64 / count as f64 / 1e6 };
        Some(ServerPointStats {
            requests: deltas[0].0,
            failed: deltas[1].0,
            request_ms: mean(deltas[0]),
            queue_ms: mean(deltas[2]),
            compute_input_ms: mean(deltas[3]),
            compute_infer_ms: mean(deltas[4]),
            compute_output_ms: mean(deltas[5]),
        })
    }
}

impl ServerPointStats {
    /// The server's compute time per request: input, infer and output.
    pub fn compute_ms(&self) -> f64 {
        self.compute_input_ms + self.compute_infer_ms + self.compute_output_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_is_the_difference_per_request() {
        let before = ServerCounters { success: (10, 50_000_000), queue: (10, 0), ..ServerCounters::default() };
        let after = ServerCounters {
            success: (14, 90_000_000),
            fail: (1, 0),
            queue: (14, 8_000_000),
            compute_infer: (4, 24_000_000),
            ..ServerCounters::default()
        };
        let point = after.since(&before).unwrap();
        assert_eq!((point.requests, point.failed), (4, 1));
        assert_eq!((point.request_ms, point.queue_ms, point.compute_infer_ms), (10.0, 2.0, 6.0));
        assert_eq!((point.compute_input_ms, point.compute_ms()), (0.0, 6.0));
        assert_eq!(before.since(&after), None, "counters that went back mean a restart");
    }
}
