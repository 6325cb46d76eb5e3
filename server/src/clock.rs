//! The run clock: one monotonic zero per run, and one wall-clock anchor taken with it.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic time since a run's start, convertible to wall-clock time through one anchor pair.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    start: Instant,
    start_unix_ns: i64,
}

impl RunClock {
    /// Starts a clock now, reading the wall clock once.
    pub fn start() -> Self {
        let start = Instant::now();
        Self { start, start_unix_ns: unix_now_ns() }
    }

    /// Nanoseconds since the run's start.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The wall-clock time of the run's start, nanoseconds since the Unix epoch.
    pub fn start_unix_ns(&self) -> i64 {
        self.start_unix_ns
    }

    /// Converts an offset from the run's start to nanoseconds since the Unix epoch.
    pub fn to_unix_ns(&self, offset_ns: u64) -> i64 {
        self.start_unix_ns + offset_ns as i64
    }
}

/// The wall clock now, nanoseconds since the Unix epoch.
pub fn unix_now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}
