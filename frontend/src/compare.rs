//! Comparing runs: each run's settled statistics against the first run's (the baseline),
//! prompt length by prompt length, as differences in milliseconds and in percent.

use shared::stats::{PointStats, Summary};

/// A latency metric that a comparison sets side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Ttft,
    T2t,
}

impl Metric {
    pub const ALL: [Metric; 2] = [Metric::Ttft, Metric::T2t];

    /// The metric's key, as in `metrics::METRICS` and in the tables' data attributes.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Ttft => "ttft",
            Metric::T2t => "t2t",
        }
    }

    /// The metric's name, as a chart's or a table's title begins.
    pub fn title(self) -> &'static str {
        match self {
            Metric::Ttft => "Time to first token",
            Metric::T2t => "Token-to-token latency",
        }
    }

    /// The metric with its unit, as an axis or a column heading names it.
    pub fn axis(self) -> &'static str {
        match self {
            Metric::Ttft => "TTFT (ms)",
            Metric::T2t => "token-to-token (ms)",
        }
    }

    /// The metric's settled summary at a point, if it has one.
    pub fn summary(self, point: &PointStats) -> Option<&Summary> {
        match self {
            Metric::Ttft => point.ttft_ms.as_ref(),
            Metric::T2t => point.t2t_ms.as_ref(),
        }
    }
}

/// A statistic of a metric's distribution that a comparison sets side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Mean,
    P50,
    P90,
    P99,
}

impl Stat {
    pub const ALL: [Stat; 4] = [Stat::Mean, Stat::P50, Stat::P90, Stat::P99];

    pub fn key(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P99 => "p99",
        }
    }

    pub fn of(self, summary: &Summary) -> f64 {
        match self {
            Stat::Mean => summary.mean,
            Stat::P50 => summary.p50,
            Stat::P90 => summary.p90,
            Stat::P99 => summary.p99,
        }
    }
}

/// One value against the baseline's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    pub baseline: f64,
    pub value: f64,
    /// `value - baseline`, in the values' unit.
    pub absolute: f64,
    /// `(value - baseline) / baseline × 100`; `None` when the baseline is 0, where a share
    /// of it means nothing.
    pub percent: Option<f64>,
}

/// `value` against `baseline`.
pub fn difference(baseline: f64, value: f64) -> Difference {
    let absolute = value - baseline;
    let percent = (baseline != 0.0).then(|| absolute / baseline * 100.0);
    Difference { baseline, value, absolute, percent }
}

/// Every prompt length any of the runs has, ascending, each once.
pub fn prompt_lengths<'a>(runs: impl IntoIterator<Item = &'a [PointStats]>) -> Vec<u32> {
    ascending_once(runs.into_iter().flatten().map(|p| p.prompt_length))
}

/// `lengths` ascending, each once.
pub fn ascending_once(lengths: impl IntoIterator<Item = u32>) -> Vec<u32> {
    let mut out: Vec<u32> = lengths.into_iter().collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The point of a run at a prompt length, if it has one.
pub fn point_at(points: &[PointStats], prompt_length: u32) -> Option<&PointStats> {
    points.iter().find(|p| p.prompt_length == prompt_length)
}

/// A metric's statistic of a run at a prompt length, if the run has it.
pub fn value_at(points: &[PointStats], prompt_length: u32, metric: Metric, stat: Stat) -> Option<f64> {
    point_at(points, prompt_length).and_then(|p| metric.summary(p)).map(|s| stat.of(s))
}

/// One row of a comparison: a run against the baseline at one prompt length, one
/// difference per [`Stat::ALL`], `None` where either run lacks the value.
#[derive(Debug, Clone, PartialEq)]
pub struct DifferenceRow {
    pub prompt_length: u32,
    pub differences: [Option<Difference>; 4],
}

/// A run's metric against the baseline's, at each of `lengths` (see [`prompt_lengths`]).
pub fn differences(baseline: &[PointStats], run: &[PointStats], metric: Metric, lengths: &[u32]) -> Vec<DifferenceRow> {
    lengths
        .iter()
        .map(|&length| DifferenceRow {
            prompt_length: length,
            differences: Stat::ALL.map(|stat| {
                let base = value_at(baseline, length, metric, stat)?;
                let value = value_at(run, length, metric, stat)?;
                Some(difference(base, value))
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(mean: f64, p50: f64, p90: f64, p99: f64) -> Summary {
        Summary { count: 4, mean, min: p50, max: p99, std: 1.0, p50, p90, p95: p90, p99, p999: None }
    }

    fn point(prompt_length: u32, ttft: Option<Summary>, t2t: Option<Summary>) -> PointStats {
        PointStats {
            prompt_length,
            count: 4,
            errors: 0,
            ttft_ms: ttft,
            t2t_ms: t2t,
            tpot_ms: None,
            e2e_ms: None,
            output_tokens: None,
            input_tokens: None,
            prompt_lengths_sent: None,
            requests_per_s: 0.0,
            output_tokens_per_s: 0.0,
            ..PointStats::default()
        }
    }

    #[test]
    fn a_difference_is_absolute_and_relative() {
        assert_eq!(
            difference(10.0, 12.5),
            Difference { baseline: 10.0, value: 12.5, absolute: 2.5, percent: Some(25.0) }
        );
        assert_eq!(difference(8.0, 6.0).percent, Some(-25.0));
        assert_eq!(difference(4.0, 4.0).percent, Some(0.0));
    }

    #[test]
    fn a_zero_baseline_has_no_percentage() {
        let d = difference(0.0, 3.0);
        assert_eq!((d.absolute, d.percent), (3.0, None));
        assert_eq!(difference(0.0, 0.0).percent, None);
    }

    #[test]
    fn lengths_are_the_union_in_order() {
        let a = [point(64, None, None), point(16, None, None)];
        let b = [point(16, None, None), point(256, None, None)];
        assert_eq!(prompt_lengths([&a[..], &b[..]]), vec![16, 64, 256]);
        assert_eq!(ascending_once([64, 16, 4096, 16, 64, 1]), vec![1, 16, 64, 4096]);
        assert!(prompt_lengths(Vec::<&[PointStats]>::new()).is_empty());
    }

    #[test]
    fn rows_align_by_prompt_length() {
        let baseline = [
            point(16, Some(summary(10.0, 9.0, 12.0, 20.0)), Some(summary(2.0, 2.0, 2.5, 3.0))),
            point(64, Some(summary(0.0, 20.0, 24.0, 40.0)), None),
        ];
        let run = [
            point(16, Some(summary(11.0, 9.0, 15.0, 18.0)), Some(summary(1.5, 2.5, 2.5, 6.0))),
            point(64, Some(summary(5.0, 25.0, 30.0, 30.0)), Some(summary(1.0, 1.0, 1.0, 1.0))),
            point(128, Some(summary(50.0, 50.0, 50.0, 50.0)), None),
        ];
        let lengths = prompt_lengths([&baseline[..], &run[..]]);
        assert_eq!(lengths, vec![16, 64, 128]);

        let ttft = differences(&baseline, &run, Metric::Ttft, &lengths);
        let at16: Vec<_> = ttft[0].differences.iter().map(|d| d.map(|d| (d.absolute, d.percent))).collect();
        // Worked by hand: 11 - 10 = 1 (10 %), 9 - 9 = 0 (0 %), 15 - 12 = 3 (25 %), 18 - 20 = -2 (-10 %).
        assert_eq!(
            at16,
            vec![Some((1.0, Some(10.0))), Some((0.0, Some(0.0))), Some((3.0, Some(25.0))), Some((-2.0, Some(-10.0)))]
        );
        // A zero mean in the baseline: the difference, but no percentage. 25 - 20 = 5 (25 %),
        // 30 - 24 = 6 (25 %), 30 - 40 = -10 (-25 %).
        let at64: Vec<_> = ttft[1].differences.iter().map(|d| d.map(|d| (d.absolute, d.percent))).collect();
        assert_eq!(
            at64,
            vec![Some((5.0, None)), Some((5.0, Some(25.0))), Some((6.0, Some(25.0))), Some((-10.0, Some(-25.0)))]
        );
        // The baseline lacks 128: nothing to compare.
        assert_eq!(ttft[2], DifferenceRow { prompt_length: 128, differences: [None; 4] });

        // Token-to-token: 1.5 - 2 = -0.5 (-25 %), 2.5 - 2 = 0.5 (25 %), 0 (0 %), 6 - 3 = 3 (100 %).
        let t2t = differences(&baseline, &run, Metric::T2t, &lengths);
        let at16: Vec<_> = t2t[0].differences.iter().map(|d| d.map(|d| (d.absolute, d.percent))).collect();
        assert_eq!(
            at16,
            vec![Some((-0.5, Some(-25.0))), Some((0.5, Some(25.0))), Some((0.0, Some(0.0))), Some((3.0, Some(100.0)))]
        );
        // The baseline has no token-to-token statistics at 64.
        assert_eq!(t2t[1].differences, [None; 4]);

        // A run that lacks a length the baseline has.
        let short = [point(16, Some(summary(10.0, 9.0, 12.0, 20.0)), None)];
        let rows = differences(&baseline, &short, Metric::Ttft, &[16, 64]);
        assert!(rows[0].differences.iter().all(|d| d.is_some_and(|d| d.absolute == 0.0)));
        assert_eq!(rows[1].differences, [None; 4]);
    }
}
