//! The metrics and their statistics, computed one way everywhere (see `METRICS`).

use serde::{Deserialize, Serialize};

use crate::goodput::Goodput;
use crate::record::RequestRecord;
use crate::spec::{LoadLevel, SweepSpec};

/// Distribution of one metric over a sweep point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Population standard deviation.
    pub std: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    /// Present only with at least 1,000 samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999: Option<f64>,
}

impl Summary {
    /// Summarises samples (sorting them in place); `None` when there are none.
    pub fn of(samples: &mut [f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable_by(f64::total_cmp);
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        Some(Summary {
            count: samples.len() as u64,
            mean,
            min: samples[0],
            max: samples[samples.len() - 1],
            std: var.sqrt(),
            p50: percentile(samples, 50.0),
            p90: percentile(samples, 90.0),
            p95: percentile(samples, 95.0),
            p99: percentile(samples, 99.0),
            p999: (samples.len() >= 1000).then(|| percentile(samples, 99.9)),
        })
    }

    /// Summarises weighted samples, `(value, weight)`, each standing for `weight` equal
    /// samples (sorting them in place): the same summary as of the samples written out, to
    /// within rounding for the mean and the standard deviation and exactly for the rest, in
    /// time and memory proportional to the weighted samples, never to their weights. Samples
    /// of weight 0 count for nothing; `None` when the weights add up to 0.
    pub fn of_weighted(samples: &mut [(f64, u32)]) -> Option<Summary> {
        samples.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        Self::of_sorted_weighted(|| samples.iter().copied())
    }

    /// [`Summary::of_weighted`] of samples that `sorted` gives in ascending order, as many
    /// times as asked.
    fn of_sorted_weighted<I: Iterator<Item = (f64, u32)>>(sorted: impl Fn() -> I) -> Option<Summary> {
        let total: u64 = sorted().map(|(_, weight)| u64::from(weight)).sum();
        if total == 0 {
            return None;
        }
        let n = total as f64;
        let mean = sorted().map(|(x, w)| x * f64::from(w)).sum::<f64>() / n;
        let var = sorted().map(|(x, w)| (x - mean) * (x - mean) * f64::from(w)).sum::<f64>() / n;
        let quantiles = [50.0, 90.0, 95.0, 99.0, 99.9];
        // The order statistics the percentiles interpolate between, and the extremes.
        let position = |q: f64| (q / 100.0) * (total - 1) as f64;
        let mut ranks: Vec<u64> =
            quantiles.iter().flat_map(|&q| [position(q).floor(), position(q).ceil()]).map(|p| p as u64).collect();
        ranks.extend([0, total - 1]);
        let values = nth_of_weighted(sorted(), &ranks);
        let at = |rank: u64| values[ranks.iter().position(|&r| r == rank).expect("asked for")];
        let percentile = |q: f64| {
            let pos = position(q);
            let (low, high) = (at(pos.floor() as u64), at(pos.ceil() as u64));
            low + (high - low) * (pos - pos.floor())
        };
        Some(Summary {
            count: total,
            mean,
            min: at(0),
            max: at(total - 1),
            std: var.sqrt(),
            p50: percentile(50.0),
            p90: percentile(90.0),
            p95: percentile(95.0),
            p99: percentile(99.0),
            p999: (total >= 1000).then(|| percentile(99.9)),
        })
    }
}

/// The `k`th (from 0) of sorted weighted samples written out, for each `k` of `ranks` (each
/// below the weights' total): in one walk, with no memory beyond the answer.
fn nth_of_weighted(mut sorted: impl Iterator<Item = (f64, u32)>, ranks: &[u64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..ranks.len()).collect();
    order.sort_unstable_by_key(|&i| ranks[i]);
    let mut values = vec![0.0; ranks.len()];
    let mut covered = 0u64;
    let mut current = 0.0;
    for i in order {
        while covered <= ranks[i] {
            let Some((value, weight)) = sorted.next() else { break };
            covered += u64::from(weight);
            current = value;
        }
        values[i] = current;
    }
    values
}

/// A point's token-to-token samples ([`push_token_gaps`]) in milliseconds, kept in 4 bytes a
/// token where they can be, since a point can hold millions and they are all in memory at
/// once: a gap that one token takes whole and that is under 2^32 ns (4.3 s), nearly every
/// one, is kept as its nanoseconds; the others as weighted samples.
#[derive(Debug, Default)]
pub struct TokenGaps {
    whole_ns: Vec<u32>,
    weighted: Vec<(f64, u32)>,
}

impl TokenGaps {
    /// Room for `whole` gaps of one token each.
    pub fn with_capacity(whole: usize) -> TokenGaps {
        TokenGaps { whole_ns: Vec::with_capacity(whole), weighted: Vec::new() }
    }

    /// Adds a request's gaps.
    pub fn push_record(&mut self, record: &RequestRecord) {
        let mut prev: Option<u64> = None;
        for response in record.token_responses() {
            if let Some(prev) = prev {
                let gap = response.at_ns.saturating_sub(prev);
                match u32::try_from(gap) {
                    Ok(ns) if response.tokens == 1 => self.whole_ns.push(ns),
                    _ => self.weighted.push((gap as f64 / f64::from(response.tokens) / NS_PER_MS, response.tokens)),
                }
            }
            prev = Some(response.at_ns);
        }
    }

    /// Their summary, as [`Summary::of_weighted`] gives of the same samples.
    pub fn summary(&mut self) -> Option<Summary> {
        self.whole_ns.sort_unstable();
        self.weighted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let (whole, weighted) = (&self.whole_ns, &self.weighted);
        Summary::of_sorted_weighted(|| {
            merge_sorted(whole.iter().map(|&ns| (f64::from(ns) / NS_PER_MS, 1)), weighted.iter().copied())
        })
    }
}

/// Two ascending runs of weighted samples as one.
fn merge_sorted(
    a: impl Iterator<Item = (f64, u32)>,
    b: impl Iterator<Item = (f64, u32)>,
) -> impl Iterator<Item = (f64, u32)> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y.0 < x.0 => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

/// The `q`th percentile of sorted samples, interpolating linearly between order statistics
/// (numpy's default method).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let pos = (q / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Per-request metrics, in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMetrics {
    /// Time to first token: first token-bearing response minus send.
    pub ttft_ns: u64,
    /// Last token-bearing response minus send.
    pub e2e_ns: u64,
    pub output_tokens: u64,
    /// `(t(c_k) - t(c_1)) / (OSL - n_1)`; `None` when fewer than one token follows the first response.
    pub tpot_ns: Option<f64>,
}

impl RequestMetrics {
    /// Metrics of a request that produced at least one token; `None` otherwise.
    pub fn of(record: &RequestRecord) -> Option<RequestMetrics> {
        let mut tokens = record.token_responses();
        let first = tokens.next()?;
        let last = tokens.last().unwrap_or(first);
        let output_tokens = record.output_tokens();
        let after_first = output_tokens - u64::from(first.tokens);
        Some(RequestMetrics {
            ttft_ns: first.at_ns.saturating_sub(record.send_ns),
            e2e_ns: last.at_ns.saturating_sub(record.send_ns),
            output_tokens,
            tpot_ns: (after_first >= 1).then(|| last.at_ns.saturating_sub(first.at_ns) as f64 / after_first as f64),
        })
    }
}

/// Appends a request's token-to-token gaps, in nanoseconds, as weighted samples: each gap
/// between consecutive token-bearing responses, divided evenly over the tokens of the later
/// one, stands for one sample per token (weight: the response's tokens). One sample per
/// response, however many tokens a response claims.
pub fn push_token_gaps(record: &RequestRecord, out: &mut Vec<(f64, u32)>) {
    let mut prev: Option<u64> = None;
    for response in record.token_responses() {
        if let Some(prev) = prev {
            let share = response.at_ns.saturating_sub(prev) as f64 / f64::from(response.tokens);
            out.push((share, response.tokens));
        }
        prev = Some(response.at_ns);
    }
}

/// Statistics of one sweep point (a prompt length at a load level), warm-up requests excluded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PointStats {
    /// The requested prompt length (approximate tokens).
    pub prompt_length: u32,
    /// Measured requests that finished, with or without error.
    pub count: u64,
    /// Measured requests that ended in an error or produced no token.
    pub errors: u64,
    pub ttft_ms: Option<Summary>,
    /// Token-to-token latency, pooled over all tokens of the point.
    pub t2t_ms: Option<Summary>,
    pub tpot_ms: Option<Summary>,
    pub e2e_ms: Option<Summary>,
    /// Output tokens per request.
    pub output_tokens: Option<Summary>,
    /// Prompt tokens per request as the server counted them, when it reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<Summary>,
    /// Prompt lengths as sent, when they are not all the point's: drawn around it
    /// (`prompt_stddev`), or a prompts file's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_lengths_sent: Option<Summary>,
    /// Requests completed per second, from the first send to the last token.
    pub requests_per_s: f64,
    /// Output tokens per second over the same span.
    pub output_tokens_per_s: f64,
    /// The point's load level; absent in runs from before load levels, whose one level was
    /// the spec's concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadLevel>,
    /// Measured requests sent per second: one less than their number over the time from the
    /// first send to the last; 0 with fewer than two.
    #[serde(default)]
    pub sent_per_s: f64,
    /// Open loop: each measured request's actual send time minus its intended one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_lag_ms: Option<Summary>,
    /// Open loop: TTFT from the intended send time, which includes the schedule lag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_intended_ms: Option<Summary>,
    /// Open loop: end-to-end latency from the intended send time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_intended_ms: Option<Summary>,
    /// With service-level objectives: the requests that met them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<Goodput>,
    /// Open loop: measured requests that fell due while the most requests allowed in flight
    /// were out, and so waited for one of them to finish.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waited_for_cap: u64,
    /// The server's own statistics of the point (Triton's `ModelStatistics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<crate::server_stats::ServerPointStats>,
    /// Why the server's statistics of the point are missing, when they were asked for and
    /// could not be had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_missing: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How many of `records`' measured requests fell due while `most` of them (warm-up included)
/// were in flight: sent at or before the moment, and not yet ended.
fn due_at_cap(records: &[&RequestRecord], most: u32) -> u64 {
    let mut sends: Vec<u64> = records.iter().map(|r| r.send_ns).collect();
    let mut ends: Vec<u64> = records.iter().map(|r| r.end_ns()).collect();
    sends.sort_unstable();
    ends.sort_unstable();
    let at_or_before = |times: &[u64], t: u64| times.partition_point(|&x| x <= t);
    records
        .iter()
        .filter(|r| !r.warmup)
        .filter_map(|r| r.intended_ns.filter(|&due| due < r.send_ns))
        .filter(|&due| at_or_before(&sends, due).saturating_sub(at_or_before(&ends, due)) >= most as usize)
        .count() as u64
}

const NS_PER_MS: f64 = 1e6;

impl PointStats {
    /// Computes a point's statistics from its records; warm-up records are skipped.
    pub fn compute<'a>(prompt_length: u32, records: impl IntoIterator<Item = &'a RequestRecord>) -> PointStats {
        let records: Vec<&RequestRecord> = records.into_iter().collect();
        Self::compute_with_span(prompt_length, &records).0
    }

    /// [`PointStats::compute`], and the span in seconds its throughput is counted over.
    fn compute_with_span(prompt_length: u32, records: &[&RequestRecord]) -> (PointStats, f64) {
        // A sample per token-bearing response: counted first, since a point can hold millions
        // and a growing list would take up to three times their room.
        let gaps = records.iter().filter(|r| !r.warmup).map(|r| r.token_responses().count().saturating_sub(1)).sum();
        let mut t2t = TokenGaps::with_capacity(gaps);
        let (mut ttft, mut tpot, mut e2e, mut osl, mut isl, mut sent) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut count, mut errors, mut tokens) = (0u64, 0u64, 0u64);
        let (mut first_send, mut last_token) = (u64::MAX, 0u64);
        let (mut lag, mut ttft_due, mut e2e_due) = (Vec::new(), Vec::new(), Vec::new());
        let (mut sends, mut earliest_send, mut latest_send) = (0u64, u64::MAX, 0u64);
        for record in records.iter().filter(|r| !r.warmup) {
            count += 1;
            sends += 1;
            earliest_send = earliest_send.min(record.send_ns);
            latest_send = latest_send.max(record.send_ns);
            let lag_ns = record.lag_ns();
            lag.extend(lag_ns.map(|ns| ns as f64 / NS_PER_MS));
            sent.push(f64::from(record.prompt_words));
            let metrics = match (&record.error, RequestMetrics::of(record)) {
                (None, Some(metrics)) => metrics,
                _ => {
                    errors += 1;
                    continue;
                }
            };
            first_send = first_send.min(record.send_ns);
            last_token = last_token.max(record.send_ns + metrics.e2e_ns);
            tokens += metrics.output_tokens;
            ttft.push(metrics.ttft_ns as f64 / NS_PER_MS);
            e2e.push(metrics.e2e_ns as f64 / NS_PER_MS);
            if let Some(lag_ns) = lag_ns {
                ttft_due.push((metrics.ttft_ns + lag_ns) as f64 / NS_PER_MS);
                e2e_due.push((metrics.e2e_ns + lag_ns) as f64 / NS_PER_MS);
            }
            osl.push(metrics.output_tokens as f64);
            tpot.extend(metrics.tpot_ns.map(|ns| ns / NS_PER_MS));
            isl.extend(record.num_input_tokens.map(f64::from));
            t2t.push_record(record);
        }
        let span_s = last_token.saturating_sub(first_send) as f64 / 1e9;
        let ok = count - errors;
        let rate = |n: f64| if span_s > 0.0 { n / span_s } else { 0.0 };
        let stats = PointStats {
            prompt_length,
            count,
            errors,
            ttft_ms: Summary::of(&mut ttft),
            t2t_ms: t2t.summary(),
            tpot_ms: Summary::of(&mut tpot),
            e2e_ms: Summary::of(&mut e2e),
            output_tokens: Summary::of(&mut osl),
            input_tokens: Summary::of(&mut isl),
            prompt_lengths_sent: if sent.iter().any(|&l| l != f64::from(prompt_length)) {
                Summary::of(&mut sent)
            } else {
                None
            },
            requests_per_s: rate(ok as f64),
            output_tokens_per_s: rate(tokens as f64),
            load: None,
            sent_per_s: if sends > 1 && latest_send > earliest_send {
                (sends - 1) as f64 / ((latest_send - earliest_send) as f64 / 1e9)
            } else {
                0.0
            },
            schedule_lag_ms: Summary::of(&mut lag),
            ttft_intended_ms: Summary::of(&mut ttft_due),
            e2e_intended_ms: Summary::of(&mut e2e_due),
            goodput: None,
            waited_for_cap: 0,
            server: None,
            server_missing: None,
        };
        (stats, span_s)
    }

    /// Point `index` of `spec`, computed from its records, with its load level and, when the
    /// spec has objectives, its goodput.
    pub fn of_point<'a>(
        spec: &SweepSpec,
        index: usize,
        records: impl IntoIterator<Item = &'a RequestRecord>,
    ) -> PointStats {
        let (length, load) = spec.point(index).unwrap_or((0, LoadLevel::Concurrency(spec.concurrency)));
        let records: Vec<&RequestRecord> = records.into_iter().collect();
        let (stats, span_s) = Self::compute_with_span(length, &records);
        let waited_for_cap = if spec.open_loop() { due_at_cap(&records, spec.most_in_flight()) } else { 0 };
        let goodput = spec.slo.as_ref().map(|slo| Goodput::compute(slo, records, span_s));
        PointStats { load: Some(load), goodput, waited_for_cap, ..stats }
    }

    /// The point's load level: its own, or for a run from before load levels, the spec's
    /// concurrency.
    pub fn load_level(&self, spec: &SweepSpec) -> LoadLevel {
        self.load.unwrap_or(LoadLevel::Concurrency(spec.concurrency))
    }

    /// In words, when the client fell behind its open-loop schedule by more than
    /// [`LAG_WARNING_MS`] at p99, or requests waited for the cap on requests in flight:
    /// latencies from the intended time then include that lag.
    pub fn lag_warning(&self) -> Option<String> {
        let lag = self.schedule_lag_ms.as_ref()?;
        let capped = match self.waited_for_cap {
            0 => String::new(),
            1 => "; 1 request fell due while the most allowed were in flight, and waited for one to finish".into(),
            n => format!("; {n} requests fell due while the most allowed were in flight, and waited for one to finish"),
        };
        (lag.p99 > LAG_WARNING_MS || self.waited_for_cap > 0).then(|| {
            format!(
                "the client fell behind the schedule by {:.1} ms (p99; {:.1} ms at most){capped}; latencies from the \
                 intended time include it",
                lag.p99, lag.max
            )
        })
    }
}

/// A point whose schedule lag exceeds this at p99 is flagged: the client, not the server,
/// was late by then.
pub const LAG_WARNING_MS: f64 = 1.0;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::{ResponseRecord, TokenCountSource};

    /// A measured request sent at `send_ns` with responses `(arrival, tokens)`.
    pub(crate) fn record(send_ns: u64, responses: &[(u64, u32)]) -> RequestRecord {
        RequestRecord {
            point: 0,
            seq: 0,
            warmup: false,
            id: "r".into(),
            prompt_words: 8,
            num_input_tokens: None,
            send_ns,
            intended_ns: None,
            server_recv_unix_ns: None,
            responses: responses
                .iter()
                .map(|&(at_ns, tokens)| ResponseRecord { at_ns, tokens, text: "", server_send_unix_ns: None })
                .collect(),
            final_ns: responses.last().map(|r| r.0),
            token_source: TokenCountSource::Responses,
            error: None,
            finish_reason: None,
        }
    }

    #[test]
    fn requests_due_while_the_most_were_in_flight_are_counted_and_flagged() {
        let spec = SweepSpec { request_rates: vec![100.0], max_concurrency: Some(1), ..SweepSpec::default() };
        let due = |intended_ms: u64, send_ms: u64, end_ms: u64| RequestRecord {
            intended_ns: Some(intended_ms * 1_000_000),
            ..record(send_ms * 1_000_000, &[(end_ms * 1_000_000, 1)])
        };
        // The second falls due while the first is out, and is sent as it ends; the third finds
        // nothing in flight.
        let records = [due(0, 0, 10), due(5, 10, 12), due(20, 20, 21)];
        let stats = PointStats::of_point(&spec, 0, &records);
        assert_eq!(stats.waited_for_cap, 1);
        let warning = stats.lag_warning().expect("a wait for the cap is flagged");
        assert!(warning.contains("1 request fell due while the most allowed were in flight"), "{warning}");
        let roomy = SweepSpec { max_concurrency: Some(2), ..spec };
        assert_eq!(PointStats::of_point(&roomy, 0, &records).waited_for_cap, 0);
    }

    /// Weighted samples written out, one per unit of weight.
    fn expand(samples: &[(f64, u32)]) -> Vec<f64> {
        samples.iter().flat_map(|&(x, w)| std::iter::repeat_n(x, w as usize)).collect()
    }

    /// A small deterministic generator, so the comparisons below cover many shapes.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        *state >> 33
    }

    #[test]
    fn weighted_samples_summarise_as_written_out() {
        let mut state = 7u64;
        for round in 0..300 {
            let len = 1 + next(&mut state) as usize % 40;
            // Few distinct values in some rounds, so equal values meet across samples.
            let spread = if round % 3 == 0 { 4 } else { 1_000_000 };
            let mut weighted: Vec<(f64, u32)> =
                (0..len).map(|_| ((next(&mut state) % spread) as f64 / 7.0, (next(&mut state) % 90) as u32)).collect();
            if round % 5 == 0 {
                weighted.push((1e3, 2000)); // past 1,000 samples: p999 is given
            }
            let mut expanded = expand(&weighted);
            let (Some(w), Some(e)) = (Summary::of_weighted(&mut weighted), Summary::of(&mut expanded)) else {
                assert!(expand(&weighted).is_empty());
                continue;
            };
            assert_eq!((w.count, w.min, w.max), (e.count, e.min, e.max));
            assert_eq!((w.p50, w.p90, w.p95, w.p99, w.p999), (e.p50, e.p90, e.p95, e.p99, e.p999), "round {round}");
            assert!((w.mean - e.mean).abs() <= 1e-9 * e.mean.abs().max(1.0), "{} vs {}", w.mean, e.mean);
            assert!((w.std - e.std).abs() <= 1e-6 * e.std.max(1.0), "{} vs {}", w.std, e.std);
        }
        assert!(Summary::of_weighted(&mut [(1.0, 0)]).is_none());
    }

    #[test]
    fn token_gaps_summarise_as_their_weighted_samples() {
        let mut state = 11u64;
        for round in 0..200 {
            let mut gaps = TokenGaps::default();
            let mut weighted = Vec::new();
            for _ in 0..1 + next(&mut state) % 6 {
                let mut at = next(&mut state) % 1_000;
                let responses: Vec<(u64, u32)> = (0..next(&mut state) % 30)
                    .map(|_| {
                        // Mostly one token a response, some several or none, a few gaps past 4.3 s.
                        at += match next(&mut state) % 50 {
                            0 => 5_000_000_000 + next(&mut state),
                            _ if round % 4 == 0 => next(&mut state) % 5,
                            _ => next(&mut state) % 40_000_000,
                        };
                        let tokens = match next(&mut state) % 10 {
                            0 => 0,
                            1 => 2 + next(&mut state) as u32 % 7,
                            _ => 1,
                        };
                        (at, tokens)
                    })
                    .collect();
                let r = record(0, &responses);
                gaps.push_record(&r);
                push_token_gaps(&r, &mut weighted);
            }
            weighted.iter_mut().for_each(|(ns, _)| *ns /= NS_PER_MS);
            let (Some(g), Some(w)) = (gaps.summary(), Summary::of_weighted(&mut weighted)) else {
                assert!(weighted.iter().all(|&(_, w)| w == 0), "round {round}");
                continue;
            };
            // Exactly the same order statistics; the sums only in another order.
            assert_eq!((g.count, g.min, g.max), (w.count, w.min, w.max), "round {round}");
            assert_eq!((g.p50, g.p90, g.p95, g.p99, g.p999), (w.p50, w.p90, w.p95, w.p99, w.p999), "round {round}");
            assert!((g.mean - w.mean).abs() <= 1e-12 * w.mean.abs(), "{} vs {}", g.mean, w.mean);
            assert!((g.std - w.std).abs() <= 1e-9 * w.std, "{} vs {}", g.std, w.std);
        }
    }

    #[test]
    fn a_huge_count_is_one_sample() {
        // Four billion tokens in one response: one weighted sample, no four billion.
        let r = record(0, &[(1_000, 1), (4_294_968_295, u32::MAX)]);
        let mut gaps = Vec::new();
        push_token_gaps(&r, &mut gaps);
        assert_eq!(gaps, vec![(1.0, u32::MAX)]);
        let stats = PointStats::compute(8, [&r]);
        let t2t = stats.t2t_ms.unwrap();
        assert_eq!((t2t.count, t2t.p50, t2t.p999), (u64::from(u32::MAX), 1e-6, Some(1e-6)));
    }

    #[test]
    fn percentiles_match_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4], [50, 90, 99]) == [2.5, 3.7, 3.97]
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&sorted, 50.0), 2.5);
        assert!((percentile(&sorted, 90.0) - 3.7).abs() < 1e-12);
        assert!((percentile(&sorted, 99.0) - 3.97).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn summary_by_hand() {
        let s = Summary::of(&mut [4.0, 2.0, 6.0, 8.0]).unwrap();
        assert_eq!((s.count, s.mean, s.min, s.max), (4, 5.0, 2.0, 8.0));
        assert!((s.std - 5.0f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.p50, 5.0);
        assert_eq!(s.p999, None);
        assert!(Summary::of(&mut []).is_none());
        let mut many: Vec<f64> = (0..1000).map(f64::from).collect();
        assert!((Summary::of(&mut many).unwrap().p999.unwrap() - 998.001).abs() < 1e-9);
    }

    #[test]
    fn empty_final_is_not_a_token() {
        // Sent at 100; tokens at 1100, 1300 (two tokens), 1400; an empty final at 5000.
        let r = record(100, &[(1100, 1), (1300, 2), (1400, 1), (5000, 0)]);
        let m = RequestMetrics::of(&r).unwrap();
        assert_eq!(m.ttft_ns, 1000);
        assert_eq!(m.e2e_ns, 1300);
        assert_eq!(m.output_tokens, 4);
        assert_eq!(m.tpot_ns, Some(100.0)); // (1400 - 1100) / (4 - 1)
        let mut gaps = Vec::new();
        push_token_gaps(&r, &mut gaps);
        assert_eq!(expand(&gaps), vec![100.0, 100.0, 100.0]); // 200 over two tokens, then 100
        assert_eq!(gaps, vec![(100.0, 2), (100.0, 1)], "one weighted sample per response");
    }

    #[test]
    fn tpot_undefined_for_one_token() {
        let m = RequestMetrics::of(&record(0, &[(500, 1), (900, 0)])).unwrap();
        assert_eq!(m.tpot_ns, None);
        assert!(RequestMetrics::of(&record(0, &[(900, 0)])).is_none());
    }

    #[test]
    fn point_stats_skip_warmup_and_count_errors() {
        let mut warm = record(0, &[(9_000_000, 1)]);
        warm.warmup = true;
        let a = record(0, &[(2_000_000, 1), (3_000_000, 1)]);
        let b = record(1_000_000, &[(5_000_000, 1), (7_000_000, 1)]);
        let mut failed = record(0, &[(1_000_000, 1)]);
        failed.error = Some("boom".into());
        let stats = PointStats::compute(8, [&warm, &a, &b, &failed]);
        assert_eq!((stats.count, stats.errors), (3, 1));
        let ttft = stats.ttft_ms.unwrap();
        assert_eq!((ttft.count, ttft.mean), (2, 3.0)); // 2 ms and 4 ms
        let t2t = stats.t2t_ms.unwrap();
        assert_eq!((t2t.min, t2t.max), (1.0, 2.0));
        // Two requests, four tokens, from t=0 to t=7 ms.
        assert!((stats.requests_per_s - 2.0 / 0.007).abs() < 1e-6);
        assert!((stats.output_tokens_per_s - 4.0 / 0.007).abs() < 1e-6);
        assert!(stats.input_tokens.is_none());
    }
}
