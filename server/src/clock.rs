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

    /// The offset of `at` from the run's start; zero for a time before it.
    pub fn offset_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// The moment `offset_ns` after the run's start.
    pub fn instant_at(&self, offset_ns: u64) -> Instant {
        self.start + std::time::Duration::from_nanos(offset_ns)
    }

    /// The wall-clock time of the run's start, nanoseconds since the Unix epoch.
    pub fn start_unix_ns(&self) -> i64 {
        self.start_unix_ns
    }
}

/// The wall clock now, nanoseconds since the Unix epoch.
pub fn unix_now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// `YYYYmmdd-HHMMSS` in UTC for seconds since the Unix epoch.
pub fn utc_stamp(secs: u64) -> String {
    let (year, month, day, hour, minute, second) = shared::civil::utc(secs as i64);
    format!("{year:04}{month:02}{day:02}-{hour:02}{minute:02}{second:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(1_795_833_296), "20261128-023456");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
    }
}
