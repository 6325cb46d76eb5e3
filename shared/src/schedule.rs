//! Open-loop arrival schedules: when each request of a point is due, counted from the point's
//! start, whatever the server's answers are doing.
//!
//! Offsets are kept in `f64` nanoseconds and each is rounded on its own, so rounding never
//! accumulates. Random schedules draw from a generator of our own whose every step is
//! integer arithmetic or a correctly rounded float operation (`+ - * /`, `sqrt`, `round`), with
//! our own `ln` and `exp`: the same seed gives the same offsets on every platform, the
//! browser's WebAssembly included.

use serde::{Deserialize, Serialize};

pub use crate::limits::MAX_REQUEST_RATE;
/// The lowest gamma burstiness (shape): below, nearly every gap is 0 and a few are huge.
pub const MIN_BURSTINESS: f64 = 0.01;
/// The highest gamma burstiness (shape): there the gaps already vary by only 10% (their
/// coefficient of variation is `1 / sqrt(shape)`).
pub const MAX_BURSTINESS: f64 = 100.0;

const NS_PER_S: f64 = 1e9;

/// How the gaps between the sends of an open-loop schedule are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Every gap is exactly `1 / rate`.
    #[default]
    Constant,
    /// Exponential gaps with mean `1 / rate`: a Poisson process.
    Poisson,
    /// Gamma gaps with mean `1 / rate` and shape `burstiness`, as vLLM's `--burstiness`:
    /// 1 is Poisson, below 1 burstier, above 1 more regular (coefficient of variation
    /// `1 / sqrt(burstiness)`).
    Gamma,
}

impl Arrival {
    /// Every arrival a user can name, in the order they are listed in help and forms.
    pub const ALL: [Arrival; 3] = [Self::Constant, Self::Poisson, Self::Gamma];

    /// The lowercase name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Poisson => "poisson",
            Self::Gamma => "gamma",
        }
    }
}

impl std::fmt::Display for Arrival {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Arrival {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|arrival| arrival.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown arrival {s:?}; expected one of constant, poisson, gamma"))
    }
}

/// Every problem with a schedule's parameters, each as a sentence a user can act on; empty
/// when valid. The burstiness is checked only for gamma arrivals, the only ones it shapes.
pub fn problems(rate_per_s: f64, arrival: Arrival, burstiness: f64) -> Vec<String> {
    let mut out = Vec::new();
    if !rate_per_s.is_finite() || rate_per_s <= 0.0 {
        out.push(format!("the request rate must be a number of requests per second above 0, not {rate_per_s}"));
    } else if rate_per_s > MAX_REQUEST_RATE {
        out.push(format!("the request rate {rate_per_s}/s is above the cap of {MAX_REQUEST_RATE}/s"));
    }
    if arrival == Arrival::Gamma && !(MIN_BURSTINESS..=MAX_BURSTINESS).contains(&burstiness) {
        out.push(format!(
            "the burstiness must be from {MIN_BURSTINESS} to {MAX_BURSTINESS} (1 is Poisson, below 1 burstier), not {burstiness}"
        ));
    }
    out
}

/// The intended send times of an open-loop point, as offsets from its start.
///
/// Every arrival sends its first request at 0, at the point's start; the gaps that follow
/// are drawn. So the first request opens the point's span as it does in a closed loop, and
/// `n` requests span `n - 1` gaps.
#[derive(Debug, Clone)]
pub struct Schedule {
    arrival: Arrival,
    rate_per_s: f64,
    /// The mean gap, `1e9 / rate`.
    mean_gap_ns: f64,
    gamma: GammaSampler,
    rng: Rng,
    /// Offsets yielded so far.
    yielded: u64,
    /// The next offset of a random schedule, unrounded.
    next_offset_ns: f64,
}

impl Schedule {
    /// A schedule of `rate_per_s` requests per second on average, gaps drawn as `arrival`
    /// says (`burstiness` is the gamma shape, unused otherwise), random draws seeded by `seed`.
    ///
    /// # Panics
    ///
    /// When [`problems`] finds any problem with the parameters: check them first.
    pub fn new(rate_per_s: f64, arrival: Arrival, burstiness: f64, seed: u64) -> Schedule {
        let problems = problems(rate_per_s, arrival, burstiness);
        assert!(problems.is_empty(), "invalid schedule: {}", problems.join("; "));
        Schedule {
            arrival,
            rate_per_s,
            mean_gap_ns: NS_PER_S / rate_per_s,
            gamma: GammaSampler::new(if arrival == Arrival::Gamma { burstiness } else { 1.0 }),
            rng: Rng::new(seed),
            yielded: 0,
            next_offset_ns: 0.0,
        }
    }

    /// The next intended send time, in nanoseconds from the point's start; 0 first.
    pub fn next_ns(&mut self) -> u64 {
        let offset = match self.arrival {
            // From the count, not from summed gaps: the millionth send is as exact as the first.
            Arrival::Constant => self.yielded as f64 * NS_PER_S / self.rate_per_s,
            Arrival::Poisson | Arrival::Gamma => {
                let offset = self.next_offset_ns;
                self.next_offset_ns += self.gap_ns();
                offset
            }
        };
        self.yielded += 1;
        // Saturating: beyond 584 years, as far as a u64 goes.
        offset.round() as u64
    }

    /// One random gap, unrounded.
    fn gap_ns(&mut self) -> f64 {
        match self.arrival {
            Arrival::Constant => self.mean_gap_ns,
            Arrival::Poisson => -ln(self.rng.uniform()) * self.mean_gap_ns,
            // Shape k and scale mean / k: the mean stays 1 / rate whatever k is.
            Arrival::Gamma => self.gamma.sample(&mut self.rng) * self.mean_gap_ns / self.gamma.shape,
        }
    }
}

impl Iterator for Schedule {
    type Item = u64;

    /// [`Schedule::next_ns`]; the schedule never ends.
    fn next(&mut self) -> Option<u64> {
        Some(self.next_ns())
    }
}

/// Gamma variates of one shape and scale 1, by Marsaglia and Tsang's method ("A simple
/// method for generating gamma variables", 2000); a shape below 1 is drawn at shape + 1 and
/// multiplied by `U^(1/shape)`.
#[derive(Debug, Clone)]
struct GammaSampler {
    shape: f64,
    /// `d = shape' - 1/3` and `c = 1 / sqrt(9 d)` for the shape drawn at, `shape' >= 1`.
    d: f64,
    c: f64,
}

impl GammaSampler {
    fn new(shape: f64) -> GammaSampler {
        let drawn = if shape < 1.0 { shape + 1.0 } else { shape };
        let d = drawn - 1.0 / 3.0;
        GammaSampler { shape, d, c: 1.0 / (9.0 * d).sqrt() }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        let x = loop {
            let z = rng.normal();
            let v = 1.0 + self.c * z;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = rng.uniform();
            let z2 = z * z;
            // The cheap squeeze first, then the exact test.
            if u < 1.0 - 0.0331 * z2 * z2 || ln(u) < 0.5 * z2 + self.d * (1.0 - v + ln(v)) {
                break self.d * v;
            }
        };
        if self.shape < 1.0 { x * exp(ln(rng.uniform()) / self.shape) } else { x }
    }
}

/// xoshiro256** (Blackman and Vigna), seeded through SplitMix64 as its authors advise.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        let mut state = seed;
        Rng { s: std::array::from_fn(|_| splitmix64(&mut state)) }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1), never 0 or 1: the midpoints `(i + 0.5) / 2^52`, each exact.
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 12) as f64 + 0.5) * (1.0 / (1u64 << 52) as f64)
    }

    /// A standard normal variate, by Marsaglia's polar method (no sine or cosine); the
    /// second variate of each pair is dropped.
    pub(crate) fn normal(&mut self) -> f64 {
        loop {
            let x = 2.0 * self.uniform() - 1.0;
            let y = 2.0 * self.uniform() - 1.0;
            let s = x * x + y * y;
            if s < 1.0 && s > 0.0 {
                return x * (-2.0 * ln(s) / s).sqrt();
            }
        }
    }
}

pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// ln 2 in two parts (fdlibm's): `k * LN2_HI` is exact for the `k` used here.
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);

/// The natural logarithm of a positive finite number, within a few ulps, from `+ - * /`
/// alone, so that it is the same everywhere: `x = m 2^e` with `m` in `(1/sqrt 2, sqrt 2]`,
/// `ln m = 2 atanh(s)` with `s = (m - 1) / (m + 1)`, `|s| < 0.172`, summed as a series.
fn ln(x: f64) -> f64 {
    let (mut x, mut e) = (x, 0i64);
    if x < f64::MIN_POSITIVE {
        x *= (1u64 << 54) as f64; // subnormal: make it normal
        e = -54;
    }
    let bits = x.to_bits();
    e += ((bits >> 52) & 0x7FF) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // 1 + s2/3 + s2^2/5 + ... + s2^12/25; the next term is below 1e-19.
    let series = (1..=12).rev().fold(0.0, |acc, n| (acc + 1.0 / f64::from(2 * n + 1)) * s2) + 1.0;
    let e = e as f64;
    e * LN2_HI + (e * LN2_LO + 2.0 * s * series)
}

/// `e^x` within a few ulps, from `+ - * /` alone: `x = k ln 2 + r`, `|r| <= ln 2 / 2`,
/// `e^r` as a Taylor series, times `2^k`.
fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.8 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    let k = (x * std::f64::consts::LOG2_E).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Terms to r^17 / 17!: the next is below 1e-20 for |r| <= 0.35.
    let series = (1..=17).rev().fold(1.0, |acc, n| acc * r / f64::from(n) + 1.0);
    let k = k as i64;
    let pow2 = |k: i64| f64::from_bits(((k + 1023) as u64) << 52);
    if k >= -1022 { series * pow2(k) } else { series * pow2(k + 60) * pow2(-60) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(schedule: &mut Schedule, n: usize) -> Vec<u64> {
        schedule.take(n).collect()
    }

    fn gaps(rate: f64, arrival: Arrival, burstiness: f64, seed: u64, n: usize) -> Vec<f64> {
        let at = offsets(&mut Schedule::new(rate, arrival, burstiness, seed), n + 1);
        at.windows(2).map(|w| (w[1] - w[0]) as f64).collect()
    }

    /// The one-sample Kolmogorov–Smirnov statistic of samples against a CDF.
    fn ks(mut samples: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
        samples.sort_unstable_by(f64::total_cmp);
        let n = samples.len() as f64;
        samples
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = cdf(x);
                (f - i as f64 / n).max((i + 1) as f64 / n - f)
            })
            .fold(0.0, f64::max)
    }

    fn mean_and_cv(samples: &[f64]) -> (f64, f64) {
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, var.sqrt() / mean)
    }

    /// The regularized lower incomplete gamma function P(a, x): its series below a + 1, a
    /// continued fraction (modified Lentz) above ("Numerical Recipes", 6.2).
    fn gamma_p(a: f64, x: f64, ln_gamma_a: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        let front = (a * x.ln() - x - ln_gamma_a).exp();
        if x < a + 1.0 {
            let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
            while term > sum * 1e-17 {
                ap += 1.0;
                term *= x / ap;
                sum += term;
            }
            sum * front
        } else {
            let tiny = 1e-300;
            let mut b = x + 1.0 - a;
            let (mut c, mut d) = (1.0 / tiny, 1.0 / b);
            let mut h = d;
            for i in 1..1000 {
                let an = -f64::from(i) * (f64::from(i) - a);
                b += 2.0;
                d = an * d + b;
                d = if d.abs() < tiny { 1.0 / tiny } else { 1.0 / d };
                c = b + an / c;
                if c.abs() < tiny {
                    c = tiny;
                }
                let delta = d * c;
                h *= delta;
                if (delta - 1.0).abs() < 1e-16 {
                    break;
                }
            }
            1.0 - front * h
        }
    }

    #[test]
    fn arrivals_round_trip_by_name() {
        for arrival in Arrival::ALL {
            assert_eq!(arrival.name().parse::<Arrival>().unwrap(), arrival);
            assert_eq!(serde_json::to_string(&arrival).unwrap(), format!("\"{arrival}\""));
        }
        assert_eq!(" Poisson ".parse::<Arrival>().unwrap(), Arrival::Poisson);
        let err = "weibull".parse::<Arrival>().unwrap_err();
        assert!(err.contains("unknown arrival") && err.contains("constant, poisson, gamma"), "{err}");
    }

    #[test]
    fn problems_name_the_bad_parameter() {
        assert!(problems(10.0, Arrival::Gamma, 0.5).is_empty());
        assert!(problems(MAX_REQUEST_RATE, Arrival::Constant, 0.0).is_empty(), "burstiness shapes only gamma");
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(problems(rate, Arrival::Poisson, 1.0)[0].contains("above 0"), "{rate}");
        }
        assert!(problems(MAX_REQUEST_RATE * 2.0, Arrival::Poisson, 1.0)[0].contains("cap"));
        for burstiness in [0.0, 0.009, 101.0, f64::NAN] {
            assert!(problems(1.0, Arrival::Gamma, burstiness)[0].contains("burstiness"), "{burstiness}");
        }
        assert_eq!(problems(f64::NAN, Arrival::Gamma, f64::NAN).len(), 2);
    }

    #[test]
    #[should_panic(expected = "invalid schedule")]
    fn an_invalid_schedule_is_refused() {
        Schedule::new(0.0, Arrival::Constant, 1.0, 0);
    }

    #[test]
    fn constant_offsets_do_not_drift() {
        // 7/s: every gap is 142857142.857... ns; each offset is the exact one rounded.
        let mut schedule = Schedule::new(7.0, Arrival::Constant, 1.0, 0);
        for k in 0..1_000_001u64 {
            assert_eq!(schedule.next_ns(), (k * 2_000_000_000 + 7) / 14, "send {k}");
        }
        let mut third = Schedule::new(3.0, Arrival::Constant, 1.0, 0);
        assert_eq!(offsets(&mut third, 4), vec![0, 333_333_333, 666_666_667, 1_000_000_000]);
    }

    #[test]
    fn every_arrival_starts_at_zero() {
        for arrival in Arrival::ALL {
            assert_eq!(Schedule::new(5.0, arrival, 0.5, 9).next_ns(), 0, "{arrival}");
        }
    }

    #[test]
    fn seeds_decide_the_offsets() {
        for arrival in [Arrival::Poisson, Arrival::Gamma] {
            let a = offsets(&mut Schedule::new(50.0, arrival, 0.3, 42), 1000);
            assert_eq!(a, offsets(&mut Schedule::new(50.0, arrival, 0.3, 42), 1000));
            assert_ne!(a, offsets(&mut Schedule::new(50.0, arrival, 0.3, 43), 1000));
            assert!(a.windows(2).all(|w| w[0] <= w[1]), "offsets never go back");
        }
        // Pinned, so a change of generator or sampler shows: the same on every platform.
        let poisson = offsets(&mut Schedule::new(1000.0, Arrival::Poisson, 1.0, 1), 4);
        assert_eq!(poisson, vec![0, 352_510, 1_005_597, 1_560_539], "update only on purpose");
        let bursty = offsets(&mut Schedule::new(1000.0, Arrival::Gamma, 0.5, 1), 4);
        let regular = offsets(&mut Schedule::new(1000.0, Arrival::Gamma, 4.0, 1), 4);
        assert_eq!(
            (bursty, regular),
            (vec![0, 1_413_508, 1_909_578, 6_987_270], vec![0, 2_147_021, 2_709_757, 3_346_398]),
            "update only on purpose"
        );
    }

    #[test]
    fn the_generator_matches_its_reference() {
        // SplitMix64 from 0 (Vigna's reference), and xoshiro256** from the state 1, 2, 3, 4.
        assert_eq!(splitmix64(&mut 0), 0xE220_A839_7B1D_CDAF);
        let mut rng = Rng { s: [1, 2, 3, 4] };
        let first: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(first, vec![11520, 0, 1_509_978_240, 1_215_971_899_390_074_240]);
        let mut rng = Rng::new(7);
        for _ in 0..100_000 {
            let u = rng.uniform();
            assert!(u > 0.0 && u < 1.0);
        }
    }

    #[test]
    fn ln_and_exp_agree_with_the_platform() {
        let mut rng = Rng::new(3);
        let close = |a: f64, b: f64| (a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(f64::MIN_POSITIVE);
        for _ in 0..100_000 {
            let u = rng.uniform();
            for x in [u, u * 1e-300, u * 1e-310, 1.0 / u, u * 1e300, 1.0 + u * 1e-9] {
                assert!(close(ln(x), x.ln()), "ln({x:e}) = {} vs {}", ln(x), x.ln());
            }
            for x in [u - 0.5, -700.0 * u, 700.0 * u, -40.0 * u] {
                assert!(close(exp(x), x.exp()), "exp({x:e}) = {} vs {}", exp(x), x.exp());
            }
        }
        assert_eq!((ln(1.0), exp(0.0), exp(-800.0)), (0.0, 1.0, 0.0));
        // Into the subnormals, to within their coarser spacing.
        assert!((exp(-740.0) - (-740.0f64).exp()).abs() <= 2.0 * f64::from_bits(1));
    }

    #[test]
    fn poisson_gaps_are_exponential() {
        let rate = 100.0;
        let mean = NS_PER_S / rate;
        let gaps = gaps(rate, Arrival::Poisson, 1.0, 2024, 10_000);
        let (sample_mean, cv) = mean_and_cv(&gaps);
        assert!((sample_mean / mean - 1.0).abs() < 0.02, "mean {sample_mean} vs {mean}");
        assert!((cv - 1.0).abs() < 0.05, "cv {cv}");
        let d = ks(gaps, |x| 1.0 - (-x / mean).exp());
        let critical = 1.63 / 10_000f64.sqrt();
        eprintln!("poisson: KS D = {d:.5} (1% critical {critical:.5}), mean {sample_mean:.0} ns, cv {cv:.4}");
        assert!(d < critical, "D = {d}");
    }

    #[test]
    fn gamma_gaps_have_the_asked_shape() {
        let rate = 100.0;
        let mean = NS_PER_S / rate;
        // ln Γ(0.5) = ln sqrt(π), ln Γ(4) = ln 6.
        for (k, ln_gamma_k) in [(0.5, 0.5 * std::f64::consts::PI.ln()), (4.0, 6f64.ln())] {
            let gaps = gaps(rate, Arrival::Gamma, k, 2024, 10_000);
            let (sample_mean, cv) = mean_and_cv(&gaps);
            let expected_cv = 1.0 / f64::sqrt(k);
            assert!((sample_mean / mean - 1.0).abs() < 0.03, "k {k}: mean {sample_mean} vs {mean}");
            assert!((cv / expected_cv - 1.0).abs() < 0.05, "k {k}: cv {cv} vs {expected_cv}");
            let scale = mean / k;
            let d = ks(gaps, |x| gamma_p(k, x / scale, ln_gamma_k));
            let critical = 1.63 / 10_000f64.sqrt();
            eprintln!("gamma {k}: KS D = {d:.5} (1% critical {critical:.5}), mean {sample_mean:.0} ns, cv {cv:.4}");
            assert!(d < critical, "k {k}: D = {d}");
        }
    }

    #[test]
    fn the_incomplete_gamma_is_right() {
        // P(1, x) = 1 - e^-x; P(0.5, x) = erf(sqrt x), erf(1) = 0.8427007929497149.
        for x in [0.01, 0.5, 1.0, 2.0, 5.0, 30.0] {
            assert!((gamma_p(1.0, x, 0.0) - (1.0 - (-x).exp())).abs() < 1e-14, "{x}");
        }
        let half = gamma_p(0.5, 1.0, 0.5 * std::f64::consts::PI.ln());
        assert!((half - 0.842_700_792_949_714_9).abs() < 1e-14, "{half}");
    }
}
