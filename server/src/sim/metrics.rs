//! Triton's Prometheus metrics, served at `/metrics` as Triton serves them on port 8002: each
//! model's counts and durations from the counters ModelStatistics reads, its queue and batch
//! as they are now, and a stand-in for GPU utilisation from the scheduler's busy time.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::Sim;
use super::model::MODELS;
use super::scheduler::{Counters, Stats};

/// Prometheus' text exposition format, as Triton answers.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The GPU the utilisation gauge stands for.
const GPU_LABELS: &str = r#"gpu_uuid="SIM-0",simulated="true""#;

/// A family with one series per model, read from the model's [`Counters`].
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    /// Whether the series carry Triton's failure reason, between the model and version labels
    /// as Triton sorts them.
    reason: bool,
    value: fn(&Counters) -> u64,
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Cumulative nanoseconds in Triton's whole microseconds.
fn us(counter: &AtomicU64) -> u64 {
    load(counter) / 1000
}

/// Triton's per-model families, in its order, each from what ModelStatistics reports of the
/// same counters: every request that succeeded ran once, and the simulator spends no time
/// on inputs or outputs.
const FAMILIES: [Family; 10] = [
    Family {
        name: "nv_inference_request_success",
        kind: "counter",
        help: "Number of successful inference requests, all batch sizes",
        reason: false,
        value: |c| load(&c.success),
    },
    Family {
        name: "nv_inference_request_failure",
        kind: "counter",
        help: "Number of failed inference requests, all batch sizes",
        reason: true,
        value: |c| load(&c.fail),
    },
    Family {
        name: "nv_inference_count",
        kind: "counter",
        help: "Number of inferences performed (does not include cached requests)",
        reason: false,
        value: |c| load(&c.success),
    },
    Family {
        name: "nv_inference_exec_count",
        kind: "counter",
        help: "Number of model executions performed (does not include cached requests)",
        reason: false,
        value: |c| load(&c.success),
    },
    Family {
        name: "nv_inference_pending_request_count",
        kind: "gauge",
        help: "Instantaneous number of pending requests awaiting execution per-model.",
        reason: false,
        value: |c| load(&c.pending),
    },
    Family {
        name: "nv_inference_request_duration_us",
        kind: "counter",
        help: "Cumulative inference request duration in microseconds (includes cached requests)",
        reason: false,
        value: |c| us(&c.success_ns),
    },
    Family {
        name: "nv_inference_queue_duration_us",
        kind: "counter",
        help: "Cumulative inference queuing duration in microseconds (includes cached requests)",
        reason: false,
        value: |c| us(&c.queue_ns),
    },
    Family {
        name: "nv_inference_compute_input_duration_us",
        kind: "counter",
        help: "Cumulative compute input duration in microseconds (does not include cached requests)",
        reason: false,
        value: |_| 0,
    },
    Family {
        name: "nv_inference_compute_infer_duration_us",
        kind: "counter",
        help: "Cumulative compute inference duration in microseconds (does not include cached requests)",
        reason: false,
        value: |c| us(&c.compute_ns),
    },
    Family {
        name: "nv_inference_compute_output_duration_us",
        kind: "counter",
        help: "Cumulative inference compute output duration in microseconds (does not include cached requests)",
        reason: false,
        value: |_| 0,
    },
];

/// The metrics as a scrape at this moment finds them, with `utilization` as the GPU's.
pub fn render(stats: &Stats, utilization: f64) -> String {
    let mut text = String::new();
    for f in &FAMILIES {
        let _ = writeln!(text, "# HELP {} {}\n# TYPE {} {}", f.name, f.help, f.name, f.kind);
        for m in &MODELS {
            let reason = if f.reason { r#",reason="BACKEND""# } else { "" };
            let value = (f.value)(&stats.models[m.name]);
            let _ = writeln!(text, "{}{{model=\"{}\"{reason},version=\"1\"}} {value}", f.name, m.name);
        }
    }
    let _ = writeln!(
        text,
        "# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0), simulated: the share of the time since \
         the previous scrape during which the simulator ran at least one sequence (its busy time)\n\
         # TYPE nv_gpu_utilization gauge\n\
         nv_gpu_utilization{{{GPU_LABELS}}} {utilization}"
    );
    let _ = writeln!(
        text,
        "# HELP nv_sim_running_sequences Sequences holding one of the model's batch slots (in prefill or \
         decoding) now, in the simulator\n# TYPE nv_sim_running_sequences gauge"
    );
    for m in &MODELS {
        let running = load(&stats.models[m.name].running);
        let _ = writeln!(text, "nv_sim_running_sequences{{model=\"{}\",version=\"1\"}} {running}", m.name);
    }
    text
}

/// The share of `wall` during which the simulator was busy, from its cumulative busy time
/// `before` and `after` that span: 0.0 to 1.0, as Triton reports a GPU's utilisation.
pub fn utilization(before: Duration, after: Duration, wall: Duration) -> f64 {
    let busy = after.saturating_sub(before);
    if wall.is_zero() {
        return if busy.is_zero() { 0.0 } else { 1.0 };
    }
    (busy.as_secs_f64() / wall.as_secs_f64()).clamp(0.0, 1.0)
}

/// The scheduler's counts and what the previous scrape saw of its busy time.
struct Scrapes {
    stats: Arc<Stats>,
    /// When the previous scrape was, and the busy time then; the simulator's start before the
    /// first.
    last: Mutex<(Instant, Duration)>,
}

impl Scrapes {
    fn scrape(&self, now: Instant) -> String {
        let busy = self.stats.busy.until(now);
        let share = {
            // The lock guards two plain values that every scrape leaves consistent.
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let (at, before) = *last;
            // A sequence whose end the scheduler has yet to reach counts as busy until now;
            // its end may then take back a little, which is never counted twice nor below zero.
            *last = (now.max(at), busy.max(before));
            utilization(before, busy, now.saturating_duration_since(at))
        };
        render(&self.stats, share)
    }
}

/// `GET /metrics` for `sim`; every other path is not found.
pub fn router(sim: &Sim) -> Router {
    let scrapes = Arc::new(Scrapes { stats: sim.stats.clone(), last: Mutex::new((sim.started, Duration::ZERO)) });
    Router::new().route("/metrics", get(metrics)).with_state(scrapes)
}

async fn metrics(State(scrapes): State<Arc<Scrapes>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], scrapes.scrape(Instant::now()))
}

#[cfg(test)]
mod tests {
    use prom_text_format_parser::{Metric, Type, parse_scrape};

    use super::*;

    fn parsed(text: &str) -> Vec<Metric> {
        let (metrics, error) = parse_scrape(text);
        assert!(error.is_none(), "{error:?}\n{text}");
        metrics
    }

    /// The value of `name`'s series whose labels are exactly `labels`.
    fn value(metrics: &[Metric], name: &str, labels: &[(&str, &str)]) -> f64 {
        let metric = metrics.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no {name}"));
        let sample = metric
            .samples
            .iter()
            .find(|s| s.labels.iter().map(|l| (l.key.as_str(), l.value.as_str())).eq(labels.iter().copied()))
            .unwrap_or_else(|| panic!("no {name} with {labels:?}"));
        sample.value.value.as_f64()
    }

    #[test]
    fn every_family_parses_with_a_series_per_model_from_the_counters() {
        let stats = Stats::default();
        let vllm = &stats.models["sim-vllm"];
        vllm.success.store(3, Ordering::Relaxed);
        vllm.success_ns.store(45_678_999, Ordering::Relaxed);
        vllm.queue_ns.store(1_500, Ordering::Relaxed);
        vllm.compute_ns.store(44_000_000, Ordering::Relaxed);
        vllm.fail.store(2, Ordering::Relaxed);
        vllm.pending.store(5, Ordering::Relaxed);
        vllm.running.store(4, Ordering::Relaxed);
        let text = render(&stats, 0.25);
        let metrics = parsed(&text);
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "nv_inference_request_success",
                "nv_inference_request_failure",
                "nv_inference_count",
                "nv_inference_exec_count",
                "nv_inference_pending_request_count",
                "nv_inference_request_duration_us",
                "nv_inference_queue_duration_us",
                "nv_inference_compute_input_duration_us",
                "nv_inference_compute_infer_duration_us",
                "nv_inference_compute_output_duration_us",
                "nv_gpu_utilization",
                "nv_sim_running_sequences",
            ]
        );
        for metric in &metrics {
            assert!(metric.help_desc.as_deref().is_some_and(|h| !h.is_empty()), "{}", metric.name);
            let gauge = ["nv_inference_pending_request_count", "nv_gpu_utilization", "nv_sim_running_sequences"]
                .contains(&metric.name.as_str());
            assert_eq!(metric.kind, if gauge { Type::Gauge } else { Type::Counter }, "{}", metric.name);
            if metric.name != "nv_gpu_utilization" {
                let models: Vec<&str> = metric
                    .samples
                    .iter()
                    .map(|s| s.labels.iter().find(|l| l.key == "model").unwrap().value.as_str())
                    .collect();
                assert_eq!(models, MODELS.map(|m| m.name), "{}: every model", metric.name);
            }
        }
        let model = [("model", "sim-vllm"), ("version", "1")];
        for (name, expected) in [
            ("nv_inference_request_success", 3.0),
            ("nv_inference_count", 3.0),
            ("nv_inference_exec_count", 3.0),
            ("nv_inference_pending_request_count", 5.0),
            ("nv_inference_request_duration_us", 45_678.0),
            ("nv_inference_queue_duration_us", 1.0),
            ("nv_inference_compute_input_duration_us", 0.0),
            ("nv_inference_compute_infer_duration_us", 44_000.0),
            ("nv_inference_compute_output_duration_us", 0.0),
            ("nv_sim_running_sequences", 4.0),
        ] {
            assert_eq!(value(&metrics, name, &model), expected, "{name}");
        }
        let failed = [("model", "sim-vllm"), ("reason", "BACKEND"), ("version", "1")];
        assert_eq!(value(&metrics, "nv_inference_request_failure", &failed), 2.0);
        let other = [("model", "sim-trtllm"), ("version", "1")];
        assert_eq!(value(&metrics, "nv_inference_request_success", &other), 0.0);
        let gpu = [("gpu_uuid", "SIM-0"), ("simulated", "true")];
        assert_eq!(value(&metrics, "nv_gpu_utilization", &gpu), 0.25);
    }

    #[test]
    fn utilization_is_the_busy_share_of_the_time_between_scrapes() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(utilization(s(0), s(0), s(10)), 0.0);
        assert_eq!(utilization(s(3), s(8), s(10)), 0.5);
        assert_eq!(utilization(s(3), s(13), s(10)), 1.0);
        assert_eq!(utilization(ms(700), ms(950), ms(1000)), 0.25);
        // Busy time counted from a schedule that began before the window is still at most all of it.
        assert_eq!(utilization(s(0), s(12), s(10)), 1.0);
        // A busy time that seems to go back counts as none.
        assert_eq!(utilization(s(5), s(4), s(10)), 0.0);
        assert_eq!(utilization(s(5), s(5), s(0)), 0.0);
        assert_eq!(utilization(s(5), s(6), s(0)), 1.0);
    }

    #[test]
    fn each_scrape_reports_the_busy_share_since_the_one_before() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let stats = Arc::new(Stats::default());
        let scrapes = Scrapes { stats: stats.clone(), last: Mutex::new((start, Duration::ZERO)) };
        let share = |now| {
            let metrics = parsed(&scrapes.scrape(now));
            value(&metrics, "nv_gpu_utilization", &[("gpu_uuid", "SIM-0"), ("simulated", "true")])
        };
        // Busy from 100 to 300 ms with one sequence, and from 250 to 500 ms with another beside it.
        stats.busy.started(at(100));
        assert_eq!(share(at(200)), 0.5, "the first scrape's share is since the start");
        stats.busy.started(at(250));
        stats.busy.ended(at(300));
        assert_eq!(share(at(400)), 1.0);
        stats.busy.ended(at(500));
        assert_eq!(share(at(1000)), 0.1 / 0.6);
        assert_eq!(share(at(2000)), 0.0);
    }
}
