//! The capacity search: the highest request rate at which a deployment's goodput stays at
//! or above a target.
//!
//! Each probe is an open-loop point of the run at one rate. The search brackets the answer
//! by doubling the rate while probes pass (halving while they fail), then bisects the
//! bracket until its ends are within [`TOLERANCE`] of each other or the probe budget is
//! spent. The next rate depends only on the probes so far, so the search is replayed from a
//! run's points wherever the run is shown, and a run needs no state of its own for it.

use serde::{Deserialize, Serialize};

use crate::spec::{LoadLevel, SweepSpec};
use crate::stats::PointStats;

/// The bracket's width, relative to its upper end, at which the search stops.
pub const TOLERANCE: f64 = 0.05;
/// The most probes a search may be given.
pub const MAX_PROBES: u32 = 64;
/// The lowest rate a probe is sent at, requests/s: below it the search gives up.
pub const MIN_RATE: f64 = 0.01;

/// What a capacity search looks for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CapacitySearch {
    /// The share of a probe's measured requests that must meet every objective, 0 to 1.
    pub goodput: f64,
    /// The first probe's rate, requests/s.
    pub start_rate: f64,
    /// The most probes the search sends.
    pub probes: u32,
}

impl Default for CapacitySearch {
    fn default() -> Self {
        Self { goodput: 0.99, start_rate: 1.0, probes: 12 }
    }
}

/// A probe that ran: its rate and the share of its measured requests that met every objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    pub rate: f64,
    pub share: f64,
}

/// Where a search stands: the probes that bracket the capacity so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// The highest probe that met the target below every probe that missed it.
    pub passed: Option<Probe>,
    /// The lowest probe that missed the target.
    pub missed: Option<Probe>,
    /// Probes run.
    pub probes: usize,
    /// No probe is left to run: the bracket is narrow enough or the budget is spent.
    pub finished: bool,
}

impl CapacitySearch {
    /// Every problem with the search, each a sentence a user can act on.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(self.goodput > 0.0 && self.goodput <= 1.0) {
            out.push(format!("the goodput target must be above 0 and at most 1 (0.99 is 99%), not {}", self.goodput));
        }
        if !(self.start_rate.is_finite()
            && self.start_rate >= MIN_RATE
            && self.start_rate <= crate::limits::MAX_REQUEST_RATE)
        {
            out.push(format!(
                "the capacity search's first rate must be between {MIN_RATE} and {} requests/s, not {}",
                crate::limits::MAX_REQUEST_RATE,
                self.start_rate
            ));
        }
        if self.probes < 2 || self.probes > MAX_PROBES {
            out.push(format!("a capacity search takes 2 to {MAX_PROBES} probes, not {}", self.probes));
        }
        out
    }

    /// Whether a probe met the target.
    pub fn passes(&self, probe: &Probe) -> bool {
        probe.share >= self.goodput
    }

    /// The rate of the next probe after `probes`, or `None` when the search is over.
    pub fn next_rate(&self, probes: &[Probe]) -> Option<f64> {
        let (passed, missed) = self.bracket(probes);
        self.next_within(probes.len(), passed, missed)
    }

    /// The bracket after `probes`.
    pub fn state(&self, probes: &[Probe]) -> Capacity {
        let (passed, missed) = self.bracket(probes);
        let finished = self.next_within(probes.len(), passed, missed).is_none();
        Capacity { passed, missed, probes: probes.len(), finished }
    }

    /// The lowest probe that missed, and the highest that passed below it.
    fn bracket(&self, probes: &[Probe]) -> (Option<Probe>, Option<Probe>) {
        let missed = probes.iter().filter(|p| !self.passes(p)).min_by(|a, b| a.rate.total_cmp(&b.rate)).copied();
        let passed = probes
            .iter()
            .filter(|p| self.passes(p) && missed.is_none_or(|m| p.rate < m.rate))
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
            .copied();
        (passed, missed)
    }

    fn next_within(&self, run: usize, passed: Option<Probe>, missed: Option<Probe>) -> Option<f64> {
        if run >= self.probes as usize {
            return None;
        }
        let rate = match (passed, missed) {
            (None, None) => self.start_rate,
            (Some(passed), None) => passed.rate * 2.0,
            (None, Some(missed)) => missed.rate / 2.0,
            (Some(passed), Some(missed)) if narrow(passed, missed) => return None,
            (Some(passed), Some(missed)) => (passed.rate + missed.rate) / 2.0,
        };
        (MIN_RATE..=crate::limits::MAX_REQUEST_RATE).contains(&rate).then_some(rate)
    }
}

/// Whether a bracket is within [`TOLERANCE`].
fn narrow(passed: Probe, missed: Probe) -> bool {
    (missed.rate - passed.rate) / missed.rate <= TOLERANCE
}

/// The probes of a capacity run: each settled point with its rate and goodput, in order.
pub fn probes<'a>(spec: &SweepSpec, points: impl IntoIterator<Item = Option<&'a PointStats>>) -> Vec<Probe> {
    points
        .into_iter()
        .enumerate()
        .map_while(|(i, stats)| {
            let stats = stats?;
            let rate = match stats.load.or_else(|| spec.point(i).map(|(_, load)| load))? {
                LoadLevel::Rate(rate) => rate,
                LoadLevel::Concurrency(_) => return None,
            };
            Some(Probe { rate, share: stats.goodput.as_ref().map_or(0.0, |g| g.share) })
        })
        .collect()
}

impl Capacity {
    /// A capacity run's answer so far, from its settled points; `None` for other runs. A run
    /// that `ended_early` (cancelled, failed or interrupted) settled its last point with the
    /// requests that had finished, which is no probe: it is left out.
    pub fn of_run<'a>(
        spec: &SweepSpec,
        points: impl IntoIterator<Item = Option<&'a PointStats>>,
        ended_early: bool,
    ) -> Option<Capacity> {
        let search = spec.capacity?;
        let mut probes = probes(spec, points);
        if ended_early {
            probes.pop();
        }
        Some(search.state(&probes))
    }

    /// The answer in words: the rate and the two probes that bracket it.
    pub fn headline(&self, search: &CapacitySearch) -> String {
        let target = percent(search.goodput);
        let probe = |p: &Probe| format!("{} req/s ({} met the objectives)", fmt_rate(p.rate), percent(p.share));
        match (self.passed, self.missed) {
            (Some(p), Some(m)) if narrow(p, m) => {
                format!(
                    "capacity {} req/s at {target} goodput: between {} and {}",
                    fmt_rate(p.rate),
                    probe(&p),
                    probe(&m)
                )
            }
            (Some(p), Some(m)) => format!(
                "capacity between {} and {} req/s at {target} goodput{}: {} and {}",
                fmt_rate(p.rate),
                fmt_rate(m.rate),
                if self.finished { " (the probe budget ran out first)" } else { " so far" },
                probe(&p),
                probe(&m)
            ),
            (Some(p), None) => format!(
                "capacity at least {} req/s at {target} goodput{}",
                fmt_rate(p.rate),
                if self.finished { ": every probe met it; give more probes or a higher first rate" } else { " so far" }
            ),
            (None, Some(m)) => format!(
                "capacity below {} req/s at {target} goodput{}",
                fmt_rate(m.rate),
                if self.finished {
                    ": no probe met it; give a lower first rate or looser objectives"
                } else {
                    " so far"
                }
            ),
            (None, None) => "capacity: no probe has finished yet".into(),
        }
    }
}

/// A rate with three significant figures.
pub fn fmt_rate(r: f64) -> String {
    let digits = if r >= 100.0 {
        0
    } else if r >= 10.0 {
        1
    } else if r >= 1.0 {
        2
    } else {
        3
    };
    format!("{r:.digits$}")
}

/// A share as a percentage: `99%`, `99.5%`.
pub fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p == p.round() { format!("{p:.0}%") } else { format!("{p:.1}%") }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a deployment that meets the target below `capacity` req/s.
    fn search(search: CapacitySearch, capacity: f64) -> (Vec<Probe>, Capacity) {
        let mut probes = Vec::new();
        while let Some(rate) = search.next_rate(&probes) {
            probes.push(Probe { rate, share: if rate <= capacity { 1.0 } else { 0.5 } });
        }
        let state = search.state(&probes);
        (probes, state)
    }

    #[test]
    fn doubles_then_bisects_to_within_the_tolerance() {
        let (probes, state) = search(CapacitySearch { probes: 20, ..CapacitySearch::default() }, 37.0);
        let rates: Vec<f64> = probes.iter().map(|p| p.rate).collect();
        assert_eq!(&rates[..7], &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
        assert_eq!(rates[7], 48.0);
        assert!(state.finished);
        let (passed, missed) = (state.passed.unwrap(), state.missed.unwrap());
        assert!(passed.rate <= 37.0 && missed.rate > 37.0, "{passed:?} {missed:?}");
        assert!((missed.rate - passed.rate) / missed.rate <= TOLERANCE);
        assert!(passed.rate >= 37.0 * (1.0 - TOLERANCE));
    }

    #[test]
    fn halves_while_probes_miss() {
        let (probes, state) =
            search(CapacitySearch { start_rate: 100.0, probes: 20, ..CapacitySearch::default() }, 7.0);
        assert_eq!(probes.iter().take(5).map(|p| p.rate).collect::<Vec<_>>(), [100.0, 50.0, 25.0, 12.5, 6.25]);
        assert!(state.passed.unwrap().rate <= 7.0 && state.missed.unwrap().rate > 7.0);
        assert!(state.finished);
    }

    #[test]
    fn stops_at_the_probe_budget_and_says_so() {
        let spec = CapacitySearch { probes: 3, ..CapacitySearch::default() };
        let (probes, state) = search(spec, 1000.0);
        assert_eq!(probes.len(), 3);
        assert!(state.finished);
        let text = state.headline(&spec);
        assert!(text.contains("at least 4.00 req/s"), "{text}");
        assert!(text.contains("give more probes"), "{text}");
        let (_, none) = search(CapacitySearch { start_rate: 0.04, probes: 20, ..spec }, 0.001);
        assert!(none.passed.is_none() && none.finished);
        assert!(none.headline(&spec).contains("no probe met it"), "{}", none.headline(&spec));
    }

    #[test]
    fn the_headline_names_the_bracketing_probes() {
        let spec = CapacitySearch::default();
        let state = spec.state(&[
            Probe { rate: 40.0, share: 1.0 },
            Probe { rate: 80.0, share: 0.2 },
            Probe { rate: 41.0, share: 0.995 },
            Probe { rate: 42.0, share: 0.9 },
        ]);
        assert_eq!(state.passed.unwrap().rate, 41.0);
        assert_eq!(state.missed.unwrap().rate, 42.0);
        assert!(state.finished);
        assert_eq!(
            state.headline(&spec),
            "capacity 41.0 req/s at 99% goodput: between 41.0 req/s (99.5% met the objectives) and 42.0 req/s (90% met the objectives)"
        );
    }

    #[test]
    fn a_pass_above_a_miss_does_not_raise_the_answer() {
        // A noisy deployment: the lowest miss bounds the answer, whatever passed above it.
        let spec = CapacitySearch::default();
        let state = spec.state(&[
            Probe { rate: 10.0, share: 1.0 },
            Probe { rate: 20.0, share: 0.5 },
            Probe { rate: 30.0, share: 1.0 },
        ]);
        assert_eq!(state.passed.unwrap().rate, 10.0);
        assert_eq!(state.missed.unwrap().rate, 20.0);
        assert_eq!(spec.next_rate(&[Probe { rate: 10.0, share: 1.0 }, Probe { rate: 20.0, share: 0.5 }]), Some(15.0));
    }

    #[test]
    fn bad_settings_are_refused_in_words() {
        assert!(CapacitySearch::default().problems().is_empty());
        let bad = CapacitySearch { goodput: 99.0, start_rate: 0.0, probes: 1 };
        let problems = bad.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("0.99 is 99%"));
    }
}
