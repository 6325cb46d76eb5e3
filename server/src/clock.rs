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

/// `YYYYmmdd-HHMMSS` in UTC for seconds since the Unix epoch.
pub fn utc_stamp(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
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
