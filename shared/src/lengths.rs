//! Lengths drawn for each request: a prompt length or an output length spread around the
//! point's own, from a normal distribution cut at [`SPREAD`] standard deviations. A draw
//! depends only on the seed, the point and the request, so a rerun with the same seed sends
//! the same lengths whatever order its requests go out in.

use crate::schedule::{Rng, splitmix64};

/// How many standard deviations a drawn length may be from its mean: draws beyond are drawn
/// again, so lengths stay within known bounds (see [`most`]).
pub const SPREAD: f64 = 3.0;

/// What a length is drawn for; each has draws of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drawn {
    Prompt,
    Output,
}

/// The length of request `seq` of point `point`: `mean` when `stddev` is 0 or absent, else a
/// normal draw around it rounded to a whole number, never below `least` (nor above
/// [`most`]).
pub fn draw(mean: u32, stddev: Option<f64>, least: u32, seed: u64, what: Drawn, point: u32, seq: u32) -> u32 {
    let Some(stddev) = stddev.filter(|s| s.is_finite() && *s > 0.0) else { return mean.max(least) };
    let mut key = ((what as u64) << 60) | (u64::from(point) << 24) ^ u64::from(seq);
    let mut rng = Rng::new(seed ^ splitmix64(&mut key));
    let z = loop {
        let z = rng.normal();
        if z.abs() <= SPREAD {
            break z;
        }
    };
    let drawn = (f64::from(mean) + z * stddev).round().max(0.0);
    (drawn.min(f64::from(most(mean, Some(stddev)))) as u32).max(least)
}

/// The longest length [`draw`] gives around `mean`.
pub fn most(mean: u32, stddev: Option<f64>) -> u32 {
    (f64::from(mean) + spread(stddev)).min(f64::from(u32::MAX)) as u32
}

/// How far from the mean a draw may go, rounded up to a whole length; 0 without a spread.
fn spread(stddev: Option<f64>) -> f64 {
    stddev.filter(|s| s.is_finite() && *s > 0.0).map_or(0.0, |s| (s * SPREAD).ceil())
}

/// The shortest length [`draw`] gives around `mean` with a least of 0.
pub fn least(mean: u32, stddev: Option<f64>) -> u32 {
    (f64::from(mean) - spread(stddev)).max(0.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(stddev: f64, seed: u64, what: Drawn) -> Vec<u32> {
        (0..4000).map(|seq| draw(1000, Some(stddev), 1, seed, what, 3, seq)).collect()
    }

    #[test]
    fn draws_spread_as_asked_and_repeat_with_their_seed() {
        let lengths = draws(100.0, 7, Drawn::Prompt);
        let n = lengths.len() as f64;
        let mean = lengths.iter().map(|&l| f64::from(l)).sum::<f64>() / n;
        let sd = (lengths.iter().map(|&l| (f64::from(l) - mean).powi(2)).sum::<f64>() / n).sqrt();
        // The mean within 4 standard errors; the cut at 3 sigma narrows the spread by 1.4%.
        assert!((mean - 1000.0).abs() < 4.0 * 100.0 / n.sqrt(), "mean {mean}");
        assert!((sd - 98.6).abs() < 4.0, "standard deviation {sd}");
        assert!(lengths.iter().all(|&l| (700..=1300).contains(&l)), "every draw within 3 sigma");
        assert_eq!(lengths, draws(100.0, 7, Drawn::Prompt), "the same seed draws the same");
        assert_ne!(lengths, draws(100.0, 8, Drawn::Prompt), "another seed draws otherwise");
        assert_ne!(lengths, draws(100.0, 7, Drawn::Output), "outputs draw apart from prompts");
        assert_eq!(most(1000, Some(100.0)), 1300);
    }

    #[test]
    fn no_spread_is_the_mean_and_the_least_is_kept() {
        assert_eq!(draw(64, None, 1, 0, Drawn::Output, 0, 0), 64);
        assert_eq!(draw(64, Some(0.0), 1, 0, Drawn::Output, 0, 0), 64);
        assert_eq!(draw(3, None, 10, 0, Drawn::Prompt, 0, 0), 10);
        assert!((0..500).all(|seq| draw(10, Some(50.0), 4, 1, Drawn::Prompt, 0, seq) >= 4));
        assert_eq!((most(10, None), least(10, None), least(10, Some(5.0))), (10, 10, 0));
    }
}
