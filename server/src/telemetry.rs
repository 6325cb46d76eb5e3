//! Reads the server's Prometheus metrics while a run goes, from a thread of its own, so the
//! engine's thread never waits on them: each scrape is dated on the run's clock, parsed with
//! `prom_text_format_parser`, and recorded as what changed (see [`shared::telemetry`]).
//!
//! A scrape that fails (no answer, an HTTP error, a body too large, not Prometheus text) is
//! recorded as a gap with its reason; it never stops the run, and neither does a server that
//! answers garbage: parsing runs under `catch_unwind`.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use shared::api::MetricsCheck;
use shared::telemetry::{MetricKind, Recorder, Sample, Telemetry, TelemetryUpdate};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::RunClock;

/// The largest metrics body read; Triton's, for many models and GPUs, is far smaller.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// Receives every scrape's update as it is recorded.
pub type TelemetryTap = mpsc::UnboundedSender<TelemetryUpdate>;

/// How long a scrape may take: four intervals, from 1 to 10 seconds.
fn scrape_timeout(interval: Duration) -> Duration {
    (interval * 4).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// Scraping in progress; [`Scraper::finish`] stops it and hands over what it read.
pub struct Scraper {
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<Telemetry>>,
}

impl Scraper {
    /// Starts scraping `url` every `interval` on a thread of its own, the first scrape at
    /// once; each update also goes to `tap`.
    pub fn start(url: String, interval: Duration, clock: RunClock, tap: Option<TelemetryTap>) -> std::io::Result<Self> {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new().name("tokenscope-metrics".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let interval_ms = interval.as_millis() as u32;
            let mut recorder = Recorder::new(url.clone(), interval_ms);
            match runtime {
                Ok(runtime) => runtime.block_on(scrape_until(&url, interval, clock, &mut recorder, tap, stopped)),
                Err(err) => {
                    recorder.record(
                        clock.now_ns() / 1000,
                        0,
                        Err(format!("tokenscope could not start reading metrics: {err}")),
                    );
                }
            }
            recorder.into_telemetry()
        })?;
        Ok(Scraper { stop, thread: Some(thread) })
    }

    /// Stops scraping (a scrape under way is dropped, and one more is made, which takes at
    /// most the scrape timeout) and returns every scrape recorded.
    pub fn finish(mut self) -> Option<Telemetry> {
        self.stop.cancel();
        self.thread.take()?.join().ok()
    }
}

impl Drop for Scraper {
    /// A run that ends without asking for its metrics (its engine died) stops the scraping.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn scrape_until(
    url: &str,
    interval: Duration,
    clock: RunClock,
    recorder: &mut Recorder,
    tap: Option<TelemetryTap>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    // A slow answer delays the next scrape rather than bunching several after it.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit = scrape_timeout(interval);
    let mut record = |at_us: u64, started: Instant, outcome| {
        let update = recorder.record(at_us, started.elapsed().as_micros() as u64, outcome);
        if let Some(tap) = &tap {
            let _ = tap.send(update);
        }
    };
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let (at_us, started) = (clock.now_ns() / 1000, Instant::now());
        let outcome = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            outcome = scrape(url, limit) => outcome,
        };
        record(at_us, started, outcome);
    }
    // One last scrape once the run has ended, so its metrics cover every request it sent.
    let (at_us, started) = (clock.now_ns() / 1000, Instant::now());
    record(at_us, started, scrape(url, limit).await);
}

/// One scrape: the samples of `url`'s answer, or why there are none.
pub async fn scrape(url: &str, limit: Duration) -> Result<Vec<Sample>, String> {
    let body = match tokio::time::timeout(limit, fetch(url)).await {
        Ok(body) => body?,
        Err(_) => return Err(format!("no answer within {} ms", limit.as_millis())),
    };
    // A hostile body must not take the thread down with it.
    std::panic::catch_unwind(|| parse(&body)).unwrap_or_else(|_| Err("the metrics could not be parsed".into()))
}

/// The body of a `GET` of `url`, an `http://` address, at most [`MAX_BODY_BYTES`].
async fn fetch(url: &str) -> Result<String, String> {
    let uri: hyper::Uri = url.parse().map_err(|err| format!("the metrics address {url:?} is not valid: {err}"))?;
    let authority = uri.authority().ok_or_else(|| format!("the metrics address {url:?} names no host"))?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|err| format!("cannot connect to {authority}: {err}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| format!("HTTP with {authority} failed: {err}"))?;
    let connection = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority.as_str())
        .header(hyper::header::ACCEPT, "text/plain")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|err| format!("cannot ask {url}: {err}"))?;
    let response = sender.send_request(request).await.map_err(|err| format!("{authority} did not answer: {err}"))?;
    let outcome = read_body(url, response).await;
    connection.abort();
    outcome
}

async fn read_body(url: &str, response: hyper::Response<Incoming>) -> Result<String, String> {
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url} answered HTTP {status}"));
    }
    let too_large = || format!("the answer of {url} is over {} MiB, the most tokenscope reads", MAX_BODY_BYTES >> 20);
    let declared =
        response.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = response.into_body();
    let mut bytes = Vec::with_capacity(declared.map_or(64 << 10, |n| n as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| format!("the answer of {url} was cut off: {err}"))?;
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(data);
        }
    }
    String::from_utf8(bytes).map_err(|_| format!("the answer of {url} is not text (not UTF-8): not Prometheus metrics"))
}

/// The samples of a Prometheus text body. A body whose first family cannot be read is no
/// metrics at all; one that breaks further on keeps the families before.
pub fn parse(body: &str) -> Result<Vec<Sample>, String> {
    if body.trim().is_empty() {
        return Err("the answer holds no metrics".into());
    }
    let (metrics, error) = prom_text_format_parser::parse_scrape(body);
    if metrics.is_empty() {
        return Err(match error {
            Some(err) => format!("the answer is not Prometheus metrics: {}", parse_error(&err)),
            None => "the answer holds no metrics".into(),
        });
    }
    let mut samples = Vec::new();
    for metric in metrics {
        use prom_text_format_parser::{Type, ValueType};
        let kind = match metric.kind {
            Type::Counter => MetricKind::Counter,
            Type::Gauge => MetricKind::Gauge,
            Type::Histogram => MetricKind::Histogram,
            Type::Summary => MetricKind::Summary,
            Type::Untyped => MetricKind::Untyped,
        };
        for sample in metric.samples {
            let suffix = match (kind, sample.value.value_type) {
                (MetricKind::Histogram, ValueType::Sample) => "_bucket",
                (MetricKind::Histogram | MetricKind::Summary, ValueType::Sum) => "_sum",
                (MetricKind::Histogram | MetricKind::Summary, ValueType::Count) => "_count",
                _ => "",
            };
            let mut labels: Vec<(String, String)> =
                sample.labels.iter().map(|label| (label.key.clone(), label.value.clone())).collect();
            labels.sort();
            samples.push(Sample {
                name: format!("{}{suffix}", metric.name),
                family: metric.name.clone(),
                kind,
                labels,
                value: sample.value.value.parse().unwrap_or(f64::NAN),
            });
        }
    }
    Ok(samples)
}

/// Where a body stopped being Prometheus text, in a line.
fn parse_error(err: &prom_text_format_parser::ScrapeParseError) -> String {
    use prom_text_format_parser::ScrapeParseError;
    match err {
        ScrapeParseError::Parse(text) => {
            text.lines().find(|l| l.contains("error")).unwrap_or("its text could not be read").to_string()
        }
        ScrapeParseError::Collect(errors) => match errors.first() {
            Some(first) => format!("line {}: {}", first.line_no.start + 1, first.error),
            None => "its lines do not make metrics".into(),
        },
    }
}

/// One scrape of `url`, for the form's "does it answer" line.
pub async fn check(url: &str) -> MetricsCheck {
    let started = Instant::now();
    let outcome = scrape(url, Duration::from_secs(5)).await;
    let took_ms = started.elapsed().as_secs_f64() * 1e3;
    match outcome {
        Ok(samples) => {
            let mut families: Vec<String> = samples.iter().map(|s| s.family.clone()).collect();
            families.sort_unstable();
            families.dedup();
            families.truncate(MetricsCheck::MAX_FAMILIES);
            MetricsCheck {
                url: url.into(),
                answers: true,
                series: samples.len() as u32,
                families,
                took_ms,
                error: None,
            }
        }
        Err(error) => MetricsCheck {
            url: url.into(),
            answers: false,
            series: 0,
            families: Vec::new(),
            took_ms,
            error: Some(format!("{error}; runs read the metrics anyway and show failed scrapes as gaps")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRITON_AND_VLLM: &str = r#"# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="m",version="1"} 42
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} 3
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{model_name="m",le="0.1"} 2
vllm:time_to_first_token_seconds_bucket{model_name="m",le="+Inf"} 5
vllm:time_to_first_token_seconds_sum{model_name="m"} 0.75
vllm:time_to_first_token_seconds_count{model_name="m"} 5
nv_gpu_utilization{gpu_uuid="GPU-0"} NaN
"#;

    #[test]
    fn tritons_and_vllms_families_are_read_with_their_kinds_and_labels() {
        let samples = parse(TRITON_AND_VLLM).unwrap();
        let find = |name: &str| samples.iter().find(|s| s.name == name).unwrap();
        assert_eq!(find("nv_inference_request_success").value, 42.0);
        assert_eq!(find("nv_inference_request_success").kind, MetricKind::Counter);
        let waiting = find("vllm:num_requests_waiting");
        assert_eq!((waiting.kind, waiting.value), (MetricKind::Gauge, 3.0));
        assert_eq!(waiting.labels, vec![("model_name".to_string(), "m".to_string())]);
        let buckets: Vec<&Sample> =
            samples.iter().filter(|s| s.name == "vllm:time_to_first_token_seconds_bucket").collect();
        assert_eq!(buckets.len(), 2);
        assert!(buckets.iter().all(|b| b.family == "vllm:time_to_first_token_seconds"));
        assert_eq!(find("vllm:time_to_first_token_seconds_count").value, 5.0);
        assert!(find("nv_gpu_utilization").value.is_nan());
    }

    #[test]
    fn garbage_is_no_metrics_and_says_so() {
        let err = parse("<html><body>Not here</body></html>").unwrap_err();
        assert!(err.starts_with("the answer is not Prometheus metrics"), "{err}");
        assert_eq!(parse("").unwrap_err(), "the answer holds no metrics");
        // Binary noise neither panics nor passes.
        let noise: String = (0..4096u32).map(|i| char::from_u32(i * 7919 % 0xD7FF).unwrap_or('x')).collect();
        assert!(parse(&noise).is_err());
    }

    #[test]
    fn a_slow_interval_still_scrapes_within_ten_seconds() {
        assert_eq!(scrape_timeout(Duration::from_millis(250)), Duration::from_secs(1));
        assert_eq!(scrape_timeout(Duration::from_secs(2)), Duration::from_secs(8));
        assert_eq!(scrape_timeout(Duration::from_secs(60)), Duration::from_secs(10));
    }
}
