//! Charts: pure geometry (scales, decimation, histogram bins, hit-testing) tested natively,
//! the server's metrics as lines in [`telemetry`], and the plotters drawing in [`draw`].

pub mod draw;
pub mod telemetry;

use crate::view::{XAxis, YAxis};

/// How prompt lengths map onto the horizontal axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XScale {
    Linear,
    /// Log base 2: doubling sweeps get evenly spaced points.
    Log2,
}

impl XScale {
    /// Log scale when the lengths span a factor of 8 or more, linear otherwise.
    pub fn for_lengths(lengths: &[u32]) -> XScale {
        let min = lengths.iter().copied().min().unwrap_or(1).max(1);
        let max = lengths.iter().copied().max().unwrap_or(1);
        if max / min >= 8 { XScale::Log2 } else { XScale::Linear }
    }

    /// The scale a view asks for; `Auto` picks by the lengths' span.
    pub fn chosen(axis: XAxis, lengths: &[u32]) -> XScale {
        match axis {
            XAxis::Auto => XScale::for_lengths(lengths),
            XAxis::Linear => XScale::Linear,
            XAxis::Log => XScale::Log2,
        }
    }

    /// A prompt length's position on the axis.
    pub fn to_axis(self, length: f64) -> f64 {
        match self {
            XScale::Linear => length,
            XScale::Log2 => length.max(1.0).log2(),
        }
    }

    /// The prompt length at an axis position, for tick labels.
    pub fn from_axis(self, value: f64) -> f64 {
        match self {
            XScale::Linear => value,
            XScale::Log2 => value.exp2(),
        }
    }

    /// The axis range that shows every length with a margin on both sides.
    pub fn range(self, lengths: &[u32]) -> (f64, f64) {
        let positions: Vec<f64> = lengths.iter().map(|&l| self.to_axis(f64::from(l))).collect();
        padded(&positions, 0.06, 1.0)
    }
}

/// How latencies map onto the vertical axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum YScale {
    /// From zero.
    Linear,
    /// Log base 10 between the smallest and largest positive values.
    Log10,
}

impl YScale {
    pub fn chosen(axis: YAxis) -> YScale {
        match axis {
            YAxis::Linear => YScale::Linear,
            YAxis::Log => YScale::Log10,
        }
    }

    /// A latency's position on the axis; on a log axis, zero and below sit at a floor
    /// under every plotted value.
    pub fn to_axis(self, value: f64) -> f64 {
        match self {
            YScale::Linear => value,
            YScale::Log10 => value.max(1e-6).log10(),
        }
    }

    /// The latency at an axis position, for tick labels.
    pub fn from_axis(self, position: f64) -> f64 {
        match self {
            YScale::Linear => position,
            YScale::Log10 => 10f64.powf(position),
        }
    }

    /// The axis range (in axis positions) that shows every value.
    pub fn range(self, values: impl IntoIterator<Item = f64>) -> (f64, f64) {
        match self {
            YScale::Linear => latency_range(values),
            YScale::Log10 => {
                let logs: Vec<f64> = values.into_iter().filter(|v| v.is_finite() && *v > 0.0).map(f64::log10).collect();
                let (lo, hi) =
                    logs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                if logs.is_empty() {
                    return (-1.0, 1.0);
                }
                // At least a tenth of a decade on each side, so a single value has room.
                let pad = ((hi - lo) * 0.06).max(0.1);
                (lo - pad, hi + pad)
            }
        }
    }

    /// A tick label for an axis position that spans `span` positions.
    pub fn label(self, position: f64, span: f64) -> String {
        match self {
            YScale::Linear => fmt_axis(position, span),
            YScale::Log10 => fmt_significant(self.from_axis(position)),
        }
    }
}

/// A number with three significant digits, for log-axis ticks.
pub fn fmt_significant(value: f64) -> String {
    if !value.is_finite() || value <= 0.0 {
        return "0".into();
    }
    let decimals = (2.0 - value.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{value:.decimals$}")
}

/// `[min, max]` of the values widened by `share` of their span on each side (by `fallback`
/// when all values are equal).
pub fn padded(values: &[f64], share: f64, fallback: f64) -> (f64, f64) {
    let (min, max) = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !min.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if max > min { (max - min) * share } else { fallback };
    (min - pad, max + pad)
}

/// The vertical range for latencies: from zero to a little above the largest value.
pub fn latency_range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let max = values.into_iter().filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
    (0.0, if max > 0.0 { max * 1.12 } else { 1.0 })
}

/// Drops points that land on an already drawn pixel: the picture is the same, and a chart
/// of tens of thousands of samples redraws within a frame. Keeps the first of each pixel.
pub fn decimate(points: impl IntoIterator<Item = (i32, i32)>) -> Vec<(i32, i32)> {
    let mut seen = std::collections::HashSet::new();
    points.into_iter().filter(|p| seen.insert(*p)).collect()
}

/// One histogram bin: `[lo, hi)`, the last one closed.
#[derive(Debug, Clone, PartialEq)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: u32,
}

/// Bins samples with the Freedman-Diaconis width (the square-root rule when the quartiles
/// coincide), between 1 and `max_bins` bins.
pub fn histogram(samples: &[f64], max_bins: usize) -> Vec<Bin> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return Vec::new();
    }
    sorted.sort_unstable_by(f64::total_cmp);
    let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
    if max <= min {
        return vec![Bin { lo: min, hi: min, count: sorted.len() as u32 }];
    }
    let n = sorted.len() as f64;
    let iqr = shared::stats::percentile(&sorted, 75.0) - shared::stats::percentile(&sorted, 25.0);
    let bins = if iqr > 0.0 {
        let width = 2.0 * iqr / n.cbrt();
        ((max - min) / width).ceil() as usize
    } else {
        n.sqrt().ceil() as usize
    }
    .clamp(1, max_bins.max(1));
    let width = (max - min) / bins as f64;
    let mut out: Vec<Bin> =
        (0..bins).map(|i| Bin { lo: min + width * i as f64, hi: min + width * (i + 1) as f64, count: 0 }).collect();
    for v in sorted {
        let i = (((v - min) / width) as usize).min(bins - 1);
        out[i].count += 1;
    }
    out
}

/// The index of the target nearest to `(x, y)` within `radius` pixels, if any.
pub fn nearest(targets: &[(f64, f64)], x: f64, y: f64, radius: f64) -> Option<usize> {
    targets
        .iter()
        .enumerate()
        .map(|(i, &(tx, ty))| (i, (tx - x).hypot(ty - y)))
        .filter(|&(_, d)| d <= radius)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// Milliseconds with as many decimals as their size deserves.
pub fn fmt_ms(value: f64) -> String {
    if !value.is_finite() {
        "–".into()
    } else if value.abs() >= 100.0 {
        format!("{value:.1}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// An axis tick label: as many decimals as the axis's span needs to tell ticks apart.
pub fn fmt_axis(value: f64, span: f64) -> String {
    let decimals =
        if span > 0.0 && span.is_finite() { (1.0 - span.log10()).ceil().clamp(0.0, 4.0) as usize } else { 1 };
    format!("{value:.decimals$}")
}

/// A prompt length as a tick label: whole numbers, thousands as `k` when round.
pub fn fmt_length(value: f64) -> String {
    let rounded = value.round();
    if rounded >= 1000.0 && rounded % 1000.0 == 0.0 { format!("{}k", rounded / 1000.0) } else { format!("{rounded}") }
}

/// A colour: red, green, blue.
pub type Rgb = (u8, u8, u8);

/// Colours for one colour scheme.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Palette {
    pub background: Rgb,
    pub text: Rgb,
    pub grid: Rgb,
    pub line: Rgb,
    pub band: Rgb,
    pub dots: Rgb,
    pub error: Rgb,
    /// One colour per run when runs are overlaid, told apart also by people with a colour
    /// vision deficiency (after Okabe and Ito); the first is `line`.
    pub runs: [Rgb; 6],
}

impl Palette {
    pub const LIGHT: Palette = Palette::of(
        [(253, 253, 252), (31, 35, 40), (216, 222, 228), (84, 174, 255), (130, 80, 223), (207, 34, 46)],
        [(9, 105, 218), (213, 94, 0), (0, 140, 100), (204, 121, 167), (120, 94, 0), (86, 60, 160)],
    );
    pub const DARK: Palette = Palette::of(
        [(21, 23, 27), (230, 237, 243), (48, 54, 61), (56, 139, 253), (210, 168, 255), (248, 81, 73)],
        [(88, 166, 255), (240, 150, 60), (60, 200, 150), (230, 150, 200), (220, 190, 60), (180, 150, 255)],
    );

    /// A scheme of its background, text, grid, band, dots and error colours, and its runs'
    /// colours, the first of which is also its line's.
    const fn of([background, text, grid, band, dots, error]: [Rgb; 6], runs: [Rgb; 6]) -> Palette {
        Palette { background, text, grid, line: runs[0], band, dots, error, runs }
    }

    /// The colour of the `i`th of several overlaid runs; after six they repeat.
    pub fn run(&self, i: usize) -> Rgb {
        self.runs[i % self.runs.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_sweeps_get_a_log_axis() {
        assert_eq!(XScale::for_lengths(&[16, 64, 256]), XScale::Log2);
        assert_eq!(XScale::for_lengths(&[100, 200, 300]), XScale::Linear);
        assert_eq!(XScale::Log2.to_axis(256.0), 8.0);
        assert!((XScale::Log2.from_axis(8.0) - 256.0).abs() < 1e-9);
        let (lo, hi) = XScale::Log2.range(&[16, 256]);
        assert!(lo < 4.0 && hi > 8.0);
        assert_eq!(XScale::Linear.range(&[100]), (99.0, 101.0));
    }

    #[test]
    fn views_choose_the_scales() {
        assert_eq!(XScale::chosen(XAxis::Auto, &[16, 1024]), XScale::Log2);
        assert_eq!(XScale::chosen(XAxis::Linear, &[16, 1024]), XScale::Linear);
        assert_eq!(XScale::chosen(XAxis::Log, &[100, 200]), XScale::Log2);
        assert_eq!(YScale::chosen(YAxis::Log), YScale::Log10);
    }

    #[test]
    fn log_latency_axis_spans_the_positive_values() {
        let y = YScale::Log10;
        assert_eq!(y.to_axis(100.0), 2.0);
        assert!((y.from_axis(2.0) - 100.0).abs() < 1e-9);
        let (lo, hi) = y.range([0.0, 1.0, 100.0]);
        assert!(lo < 0.0 && lo > -0.5 && hi > 2.0 && hi < 2.5, "{lo}..{hi}");
        let (lo, hi) = y.range([5.0]);
        assert!(lo < 5f64.log10() && hi > 5f64.log10());
        assert_eq!(y.range([0.0, f64::NAN]), (-1.0, 1.0));
        assert_eq!(YScale::Linear.range([1.0, 10.0]), latency_range([1.0, 10.0]));
        assert_eq!(y.label(2.0, 3.0), "100");
        assert_eq!(fmt_significant(3.16227), "3.16");
        assert_eq!(fmt_significant(0.01234), "0.0123");
        assert_eq!(fmt_significant(1234.6), "1235");
    }

    #[test]
    fn latency_axis_starts_at_zero() {
        assert_eq!(latency_range([1.0, 10.0]), (0.0, 11.200000000000001));
        assert_eq!(latency_range([]), (0.0, 1.0));
        assert_eq!(padded(&[], 0.1, 1.0), (0.0, 1.0));
    }

    #[test]
    fn decimation_keeps_one_point_per_pixel() {
        let points = [(1, 1), (1, 1), (2, 1), (1, 1), (2, 2)];
        assert_eq!(decimate(points), vec![(1, 1), (2, 1), (2, 2)]);
    }

    #[test]
    fn histogram_counts_every_sample_once() {
        let samples: Vec<f64> = (0..1000).map(|i| f64::from(i) / 10.0).collect();
        let bins = histogram(&samples, 40);
        assert!(bins.len() > 1 && bins.len() <= 40);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u32>(), 1000);
        assert_eq!(bins[0].lo, 0.0);
        assert!((bins.last().unwrap().hi - 99.9).abs() < 1e-9);
        assert_eq!(histogram(&[5.0, 5.0], 10), vec![Bin { lo: 5.0, hi: 5.0, count: 2 }]);
        assert!(histogram(&[], 10).is_empty());
    }

    #[test]
    fn nearest_target_within_radius() {
        let targets = [(10.0, 10.0), (50.0, 10.0)];
        assert_eq!(nearest(&targets, 45.0, 12.0, 8.0), Some(1));
        assert_eq!(nearest(&targets, 30.0, 10.0, 8.0), None);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_ms(123.456), "123.5");
        assert_eq!(fmt_ms(12.3456), "12.35");
        assert_eq!(fmt_ms(0.12345), "0.123");
        assert_eq!(fmt_length(2048.0), "2048");
        assert_eq!(fmt_axis(117.95, 0.3), "117.95");
        assert_eq!(fmt_axis(500.0, 3000.0), "500");
        assert_eq!(fmt_axis(20.0, 120.0), "20");
        assert_eq!(fmt_axis(0.5, 1.0), "0.5");
        assert_eq!(fmt_length(4000.0), "4k");
    }
}
