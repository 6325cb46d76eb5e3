//! Service-level objectives and goodput: the requests that were fast enough to count.
//!
//! A request meets an [`Slo`] when it finished without error, produced at least one token,
//! and each given objective holds:
//! - time to first token ≤ `ttft_ms`;
//! - its mean token-to-token latency ≤ `t2t_ms`: the gaps of the t2t metric
//!   ([`push_token_gaps`](crate::stats::push_token_gaps)) averaged over the request's tokens,
//!   which is `(t(c_k) - t(c_1)) / (tokens after c_1)`, the request's TPOT as
//!   [`RequestMetrics`] gives it. A request with a single token-bearing response has no
//!   token-to-token latency and meets any `t2t_ms`;
//! - end-to-end latency ≤ `e2e_ms`.
//!
//! TTFT and end-to-end latency count from when the request was due ([`RequestRecord::due_ns`]: its intended send time in open loop), so in an
//! open-loop run a client that falls behind its schedule cannot hide the wait.

use serde::{Deserialize, Serialize};

use crate::record::RequestRecord;
use crate::stats::RequestMetrics;

const NS_PER_MS: f64 = 1e6;

/// The objectives, as [`Slo::parse`] and [`Slo`]'s `Display` write them.
const KEYS: &str = "ttft_ms, t2t_ms and e2e_ms";

/// Latency objectives, in milliseconds, that a request must meet to count towards goodput;
/// an absent one asks nothing. Written `ttft_ms=500,t2t_ms=50,e2e_ms=20000`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Slo {
    /// The longest time to first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// The longest mean token-to-token latency of a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t2t_ms: Option<f64>,
    /// The longest end-to-end latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<f64>,
}

impl Slo {
    /// Parses `KEY=MILLISECONDS` pairs separated by commas, any of `ttft_ms`, `t2t_ms` and
    /// `e2e_ms` in any order, each at most once, with spaces anywhere between the parts;
    /// empty text asks nothing. An error names the part it could not take.
    pub fn parse(text: &str) -> Result<Slo, String> {
        let mut slo = Slo::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("{part:?}: write each objective as KEY=MILLISECONDS, KEY one of {KEYS}"));
            };
            let (key, value) = (key.trim(), value.trim());
            let slot = match key.to_ascii_lowercase().as_str() {
                "ttft_ms" => &mut slo.ttft_ms,
                "t2t_ms" => &mut slo.t2t_ms,
                "e2e_ms" => &mut slo.e2e_ms,
                _ => return Err(format!("{part:?}: unknown objective {key:?}; the objectives are {KEYS}")),
            };
            if slot.is_some() {
                return Err(format!("{part:?}: {key} is given twice; give each of {KEYS} at most once"));
            }
            let ms = crate::number::parse_f64(value)
                .ok_or_else(|| format!("{part:?}: {value:?} is not a number of milliseconds"))?;
            if let Some(problem) = limit_problem(key, ms) {
                return Err(format!("{part:?}: {problem}"));
            }
            *slot = Some(ms);
        }
        Ok(slo)
    }

    /// Every problem with the objectives (as a deserialised one may have), each as a sentence
    /// a user can act on; empty when valid.
    pub fn problems(&self) -> Vec<String> {
        self.objectives().into_iter().filter_map(|(key, ms)| limit_problem(key, ms?)).collect()
    }

    /// Whether no objective is given: then every request without error and with a token meets it.
    pub fn is_empty(&self) -> bool {
        self.objectives().iter().all(|(_, ms)| ms.is_none())
    }

    /// Whether a request meets every objective (see the module's definitions). A request
    /// sent before it was due counts from its send time.
    pub fn met_by(&self, record: &RequestRecord) -> bool {
        if record.error.is_some() {
            return false;
        }
        let Some(metrics) = RequestMetrics::of(record) else {
            return false;
        };
        // `RequestMetrics` counts from the send; the lag behind the due time adds to both.
        let lag_ns = record.send_ns.saturating_sub(record.due_ns());
        let within = |ns: f64, limit_ms: Option<f64>| limit_ms.is_none_or(|ms| ns <= ms * NS_PER_MS);
        within(metrics.ttft_ns.saturating_add(lag_ns) as f64, self.ttft_ms)
            && within(metrics.e2e_ns.saturating_add(lag_ns) as f64, self.e2e_ms)
            && metrics.tpot_ns.is_none_or(|ns| within(ns, self.t2t_ms))
    }

    fn objectives(&self) -> [(&'static str, Option<f64>); 3] {
        [("ttft_ms", self.ttft_ms), ("t2t_ms", self.t2t_ms), ("e2e_ms", self.e2e_ms)]
    }
}

/// What is wrong with an objective's limit, if anything.
fn limit_problem(key: &str, ms: f64) -> Option<String> {
    (!ms.is_finite() || ms <= 0.0).then(|| format!("{key} must be a number of milliseconds above 0, not {ms}"))
}

impl std::fmt::Display for Slo {
    /// The objectives given, as [`Slo::parse`] reads them: `ttft_ms=500,e2e_ms=20000`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut separator = "";
        for (key, ms) in self.objectives() {
            if let Some(ms) = ms {
                write!(f, "{separator}{key}={ms}")?;
                separator = ",";
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Slo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Slo::parse(s)
    }
}

/// How many of a point's requests met an [`Slo`], and at what rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Goodput {
    /// Measured requests that met every objective.
    pub met: u64,
    /// Measured requests, with or without error: warm-up requests excluded.
    pub measured: u64,
    /// `met / measured`; 0 when nothing was measured.
    pub share: f64,
    /// `met` per second of the point's span; 0 when the span is 0.
    pub requests_per_s: f64,
}

impl Goodput {
    /// Goodput of a point's records; warm-up records are skipped and an error never meets.
    ///
    /// `span_s` is the span the point's throughput is counted over (as in
    /// [`PointStats::compute`](crate::stats::PointStats::compute): from the first send to the
    /// last token of its measured requests that succeeded), so that goodput and throughput
    /// compare; the caller gives it.
    pub fn compute<'a>(slo: &Slo, records: impl IntoIterator<Item = &'a RequestRecord>, span_s: f64) -> Goodput {
        let (mut met, mut measured) = (0u64, 0u64);
        for record in records.into_iter().filter(|r| !r.warmup) {
            measured += 1;
            met += u64::from(slo.met_by(record));
        }
        Goodput {
            met,
            measured,
            share: if measured > 0 { met as f64 / measured as f64 } else { 0.0 },
            requests_per_s: if span_s > 0.0 && span_s.is_finite() { met as f64 / span_s } else { 0.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::push_token_gaps;
    use crate::stats::tests::record;

    const MS: u64 = 1_000_000;

    /// The objectives `ttft_ms=100,t2t_ms=10,e2e_ms=1000`, and records that meet or miss
    /// them, named by which.
    fn slo() -> Slo {
        Slo { ttft_ms: Some(100.0), t2t_ms: Some(10.0), e2e_ms: Some(1000.0) }
    }

    fn records() -> Vec<(&'static str, RequestRecord)> {
        let mut warmup = record(0, &[(10 * MS, 1)]);
        warmup.warmup = true;
        let mut failed = record(0, &[(10 * MS, 1), (20 * MS, 1)]);
        failed.error = Some("boom".into());
        vec![
            // Every gap 10 ms: at the limit, which meets.
            ("meets", record(0, &[(50 * MS, 1), (60 * MS, 1), (70 * MS, 1)])),
            // One token (then an empty final): no t2t; TTFT exactly 100 ms.
            ("one token", record(1000, &[(100 * MS + 1000, 1), (500 * MS, 0)])),
            // A 20 ms gap, but a mean of (32 - 10) / 3 = 7.33 ms: meets.
            ("mean meets", record(0, &[(10 * MS, 1), (30 * MS, 1), (32 * MS, 2)])),
            ("ttft by 1 ns", record(0, &[(100 * MS + 1, 1), (105 * MS, 1)])),
            // A mean of (44 - 10) / 3 = 11.33 ms.
            ("t2t", record(0, &[(10 * MS, 1), (40 * MS, 1), (44 * MS, 2)])),
            // 200 tokens in the last response: t2t 4.95 ms, end-to-end 1 s and 1 ns.
            ("e2e by 1 ns", record(0, &[(10 * MS, 1), (1000 * MS + 1, 200)])),
            ("error", failed),
            ("no token", record(0, &[(10 * MS, 0)])),
            ("warm-up", warmup),
        ]
    }

    fn met(slo: &Slo) -> Vec<&'static str> {
        records().into_iter().filter(|(_, r)| !r.warmup && slo.met_by(r)).map(|(name, _)| name).collect()
    }

    #[test]
    fn each_objective_counts_by_hand() {
        let all = slo();
        assert_eq!(met(&all), ["meets", "one token", "mean meets"]);
        assert_eq!(met(&Slo { ttft_ms: all.ttft_ms, ..Slo::default() }).len(), 5);
        assert!(!met(&Slo { ttft_ms: all.ttft_ms, ..Slo::default() }).contains(&"ttft by 1 ns"));
        assert_eq!(met(&Slo { t2t_ms: all.t2t_ms, ..Slo::default() }).len(), 5);
        assert!(!met(&Slo { t2t_ms: all.t2t_ms, ..Slo::default() }).contains(&"t2t"));
        assert_eq!(met(&Slo { e2e_ms: all.e2e_ms, ..Slo::default() }).len(), 5);
        assert!(!met(&Slo { e2e_ms: all.e2e_ms, ..Slo::default() }).contains(&"e2e by 1 ns"));
        // No objective: every request without error and with a token.
        assert_eq!(met(&Slo::default()), ["meets", "one token", "mean meets", "ttft by 1 ns", "t2t", "e2e by 1 ns"]);
        // Two nanoseconds more of allowance (one is not exact in milliseconds) and the near misses meet.
        let looser = Slo { ttft_ms: Some(100.000002), e2e_ms: Some(1000.000002), ..all };
        assert_eq!(met(&looser), ["meets", "one token", "mean meets", "ttft by 1 ns", "e2e by 1 ns"]);
    }

    #[test]
    fn goodput_of_a_point() {
        let records = records();
        let goodput = Goodput::compute(&slo(), records.iter().map(|(_, r)| r), 2.0);
        assert_eq!(goodput, Goodput { met: 3, measured: 8, share: 3.0 / 8.0, requests_per_s: 1.5 });
        let no_span = Goodput::compute(&slo(), records.iter().map(|(_, r)| r), 0.0);
        assert_eq!((no_span.met, no_span.requests_per_s), (3, 0.0));
        let nothing = Goodput::compute(&slo(), [], 1.0);
        assert_eq!(nothing, Goodput { met: 0, measured: 0, share: 0.0, requests_per_s: 0.0 });
    }

    #[test]
    fn the_mean_t2t_is_the_t2t_gaps_averaged_over_tokens() {
        for (name, record) in records() {
            let mut gaps = Vec::new();
            push_token_gaps(&record, &mut gaps);
            let tokens: u32 = gaps.iter().map(|&(_, w)| w).sum();
            let mean =
                (tokens > 0).then(|| gaps.iter().map(|&(g, w)| g * f64::from(w)).sum::<f64>() / f64::from(tokens));
            let tpot = RequestMetrics::of(&record).and_then(|m| m.tpot_ns);
            match (mean, tpot) {
                (Some(mean), Some(tpot)) => assert!((mean - tpot).abs() <= 1e-9 * tpot, "{name}: {mean} vs {tpot}"),
                (None, None) => {}
                (mean, tpot) => panic!("{name}: mean {mean:?}, TPOT {tpot:?}"),
            }
        }
    }

    #[test]
    fn objectives_parse_in_any_order() {
        let slo = Slo::parse("ttft_ms=500,t2t_ms=50,e2e_ms=20000").unwrap();
        assert_eq!(slo, Slo { ttft_ms: Some(500.0), t2t_ms: Some(50.0), e2e_ms: Some(20000.0) });
        assert_eq!(slo.to_string(), "ttft_ms=500,t2t_ms=50,e2e_ms=20000");
        let spaced = Slo::parse(" e2e_ms = 2.5e4 ,  TTFT_ms=0.25, ").unwrap();
        assert_eq!(spaced, Slo { ttft_ms: Some(0.25), t2t_ms: None, e2e_ms: Some(25000.0) });
        assert_eq!(spaced.to_string(), "ttft_ms=0.25,e2e_ms=25000");
        assert_eq!(spaced.to_string().parse::<Slo>().unwrap(), spaced);
        assert!(Slo::parse("").unwrap().is_empty() && Slo::parse(" , ").unwrap().is_empty());
        assert!(!spaced.is_empty());
        assert_eq!(Slo::default().to_string(), "");
    }

    #[test]
    fn bad_objectives_say_why() {
        let err = |text: &str| Slo::parse(text).unwrap_err();
        let unknown = err("ttft_ms=1,tpot_ms=3");
        assert!(unknown.contains("\"tpot_ms\"") && unknown.contains("ttft_ms, t2t_ms and e2e_ms"), "{unknown}");
        let twice = err("ttft_ms=1, t2t_ms=2, ttft_ms=3");
        assert!(twice.contains("\"ttft_ms=3\"") && twice.contains("twice"), "{twice}");
        for value in ["0", "-5", "NaN", "inf", "-0"] {
            let text = format!("e2e_ms={value}");
            let e = err(&text);
            assert!(e.contains(&format!("{text:?}")) && e.contains("above 0"), "{e}");
        }
        assert!(err("t2t_ms=fast").contains("not a number"));
        assert!(err("t2t_ms").contains("KEY=MILLISECONDS"));
    }

    #[test]
    fn objectives_travel_as_json() {
        let slo = Slo { ttft_ms: Some(100.0), ..Slo::default() };
        let json = serde_json::to_string(&slo).unwrap();
        assert_eq!(json, r#"{"ttft_ms":100.0}"#);
        assert_eq!(serde_json::from_str::<Slo>(&json).unwrap(), slo);
        assert_eq!(serde_json::from_str::<Slo>("{}").unwrap(), Slo::default());
        let bad: Slo = serde_json::from_str(r#"{"t2t_ms":-1.0,"e2e_ms":5.0}"#).unwrap();
        assert_eq!(bad.problems(), ["t2t_ms must be a number of milliseconds above 0, not -1"]);
        assert!(slo.problems().is_empty());
    }

    #[test]
    fn an_open_loop_request_counts_from_when_it_was_due() {
        let slo = Slo::parse("ttft_ms=100").unwrap();
        let on_time = record(10 * MS, &[(105 * MS, 1)]);
        assert!(slo.met_by(&on_time), "95 ms from its send");
        let late = RequestRecord { intended_ns: Some(0), ..on_time };
        assert!(!slo.met_by(&late), "105 ms from when it was due");
    }
}
