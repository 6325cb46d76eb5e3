//! The engine against a real Triton server and the Python-backend models in `tests/triton_models`.
//!
//! One server is started per test process by `scripts/start-triton.sh` and stopped by a
//! watchdog once the process exits; `TOKENSCOPE_TRITON_GRPC=HOST:PORT` points the tests at a
//! server that is already running instead (and `TOKENSCOPE_TRITON_METRICS=HOST:PORT` at its
//! metrics, when they are not on its host's port 8002).

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use shared::stats::percentile;
use shared::{InputStyle, RunStatus, SweepSpec, TokenCountSource};

use crate::schedule::Schedule;
use crate::support::{assert_close, repo_root, spec, sweep, timing_attempts, timing_lock};

/// The gRPC target of the process-wide server, starting it on first use.
///
/// Every test here holds `timing_lock()` before calling this: the server's start-up and its
/// Python stubs share the two cores with the simulator tests' timing assertions.
fn triton() -> &'static str {
    &server().grpc
}

/// The process-wide server's Prometheus metrics address.
fn triton_metrics() -> &'static str {
    &server().metrics
}

/// The process-wide server's HTTP address (`triton-http://HOST:PORT`).
fn triton_http() -> &'static str {
    &server().http
}

/// Where the test server answers.
struct Server {
    grpc: String,
    /// Its HTTP port, as a target of the HTTP generate protocol.
    http: String,
    metrics: String,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| match std::env::var("TOKENSCOPE_TRITON_GRPC") {
        Ok(target) if !target.trim().is_empty() => {
            let grpc = grpc_url(target.trim());
            let metrics = match std::env::var("TOKENSCOPE_TRITON_METRICS") {
                Ok(address) if !address.trim().is_empty() => format!("http://{}/metrics", address.trim()),
                _ => shared::telemetry::default_url(&grpc).expect("the target names a host"),
            };
            let http = match std::env::var("TOKENSCOPE_TRITON_HTTP") {
                Ok(address) if !address.trim().is_empty() => format!("triton-http://{}", address.trim()),
                _ => http_url(&grpc),
            };
            Ok(Server { grpc, http, metrics })
        }
        _ => tokio::task::block_in_place(start_server),
    });
    match server {
        Ok(server) => server,
        Err(why) => panic!("{why}"),
    }
}

/// Triton's HTTP address beside a gRPC one on its default ports (8001 → 8000).
fn http_url(grpc: &str) -> String {
    let authority = grpc.split_once("://").map_or(grpc, |(_, rest)| rest);
    let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
    format!("triton-http://{host}:8000")
}

fn grpc_url(address: &str) -> String {
    if address.contains("://") { address.to_string() } else { format!("http://{address}") }
}

/// Starts a server with a state directory of its own and a watchdog that stops it when this
/// process exits (Rust tests have no global teardown).
fn start_server() -> Result<Server, String> {
    let root = repo_root();
    let pid = std::process::id();
    let state = std::env::temp_dir().join(format!("tokenscope-triton-it-{pid}"));
    // The watchdog is up before the server, so even a test process killed during start-up
    // leaves no server behind (start-triton.sh writes triton.pid right after the launch).
    crate::support::after_this_process(
        "tokenscope-triton-watchdog",
        "\"$1\"/scripts/stop-triton.sh \"$2\"; rm -rf \"$2\"",
        &[root.as_os_str(), state.as_os_str()],
    )?;
    let output = Command::new(root.join("scripts/start-triton.sh"))
        .arg(root.join("server/tests/triton_models"))
        .env("TRITON_STATE_DIR", &state)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot run scripts/start-triton.sh: {err}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let grpc = stdout.lines().find_map(|line| line.strip_prefix("TRITON_GRPC="));
    let metrics = stdout.lines().find_map(|line| line.strip_prefix("TRITON_METRICS="));
    let http = stdout.lines().find_map(|line| line.strip_prefix("TRITON_HTTP="));
    match (grpc, http, metrics) {
        (Some(address), Some(http), Some(metrics)) if output.status.success() => {
            eprintln!(
                "real_triton: Triton at {address}, HTTP at {http}, metrics at {metrics}, state in {}",
                state.display()
            );
            Ok(Server {
                grpc: grpc_url(address),
                http: format!("triton-http://{http}"),
                metrics: format!("http://{metrics}/metrics"),
            })
        }
        _ => Err(format!(
            "the real Triton server did not start (scripts/start-triton.sh {}).\n\
             ---- stdout ----\n{stdout}\n---- stderr ----\n{}\n\
             Install the server with scripts/triton-tools.sh, or set TOKENSCOPE_TRITON_GRPC=HOST:PORT \
             to use a running one (see server/tests/triton_models/README.md).",
            output.status,
            String::from_utf8_lossy(&output.stderr),
        )),
    }
}

fn failure(status: &RunStatus) -> &str {
    match status {
        RunStatus::Failed { error } => error,
        other => panic!("expected a failed run, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_picks_each_style_and_times_follow_the_models_schedule() {
    let _timing = timing_lock().await;
    let target = triton();
    const MAX_TOKENS: u32 = 16;
    timing_attempts(|| async move {
    for (model, style) in
        [("vllm_like", InputStyle::Vllm), ("tutorial_like", InputStyle::Tutorial), ("trtllm_like", InputStyle::Trtllm)]
    {
        let schedule = Schedule::of(model);
        let run = sweep(SweepSpec {
            prompt_lengths: vec![16, 512],
            max_tokens: MAX_TOKENS,
            ignore_eos: true,
            requests: 5,
            warmup: 2,
            ..spec(target, model)
        })
        .await;
        assert_eq!(run.status, RunStatus::Completed, "{model}");
        assert_eq!(run.model.as_ref().unwrap().input_style, style, "{model}: auto picks its style");
        assert_eq!(run.requests.len(), 14, "{model}: warm-up requests are kept in the records");
        for record in &run.requests {
            assert_eq!(record.error, None, "{model} {}", record.id);
            assert_eq!(
                record.output_tokens(),
                u64::from(MAX_TOKENS),
                "{model} {}: every token counted once",
                record.id
            );
            assert_eq!(
                record.text(),
                " tok".repeat(MAX_TOKENS as usize),
                "{model} {}: new text only, no prompt",
                record.id
            );
            assert!(record.final_ns.is_some(), "{model} {}", record.id);
        }
        // Medians, not means: on two cores shared with other builds a request now and then
        // stalls for 30 to 170 ms (seen at load average 12), which alone would move a mean of
        // five by tens of ms; and as the model sleeps to absolute deadlines, the tokens after a
        // late first one come in a burst that pulls the mean gap down. Means are printed too.
        let mut ttft_medians = Vec::new();
        for point in &run.points {
            assert_eq!((point.count, point.errors), (5, 0), "{model}");
            let (ttft, t2t) = (point.ttft_ms.as_ref().unwrap(), point.t2t_ms.as_ref().unwrap());
            let prefill = schedule.prefill_ms(point.prompt_length);
            eprintln!(
                "real_triton: {model} at {} words: TTFT p50 {:.3} mean {:.3} ms (schedule {prefill:.3}), \
                 T2T p50 {:.3} mean {:.3} ms (schedule {:.3})",
                point.prompt_length, ttft.p50, ttft.mean, t2t.p50, t2t.mean, schedule.decode_ms
            );
            // The model's schedule starts when its `execute` receives the request, so TTFT adds
            // the way in (gRPC, Triton's scheduler, the shared-memory hop to the Python stub) and
            // the way out: 1 to 3 ms here, never less than nothing. Hence a one-sided bound,
            // 0.5 ms below (sleep granularity) to max(4 ms, 10%) above.
            let over = ttft.p50 - prefill;
            let allowed = 4.0_f64.max(0.10 * prefill);
            assert!(
                (-0.5..=allowed).contains(&over),
                "{model} TTFT at {} words: median {:.3} ms, schedule {prefill:.3} ms, allowed -0.5 to +{allowed:.3} ms",
                point.prompt_length,
                ttft.p50
            );
            ttft_medians.push(ttft.p50);
            // Gaps carry the way in and out on both ends, so they stay within max(0.5 ms, 10%).
            assert_close(
                &format!("{model} token-to-token at {} words", point.prompt_length),
                t2t.p50,
                schedule.decode_ms,
                0.5,
                0.10,
            );
        }
        // Between prompt lengths the constant way in cancels: the growth follows prefill_per_token_ms.
        let growth = schedule.prefill_ms(512) - schedule.prefill_ms(16);
        assert_close(
            &format!("{model} TTFT growth from 16 to 512 words"),
            ttft_medians[1] - ttft_medians[0],
            growth,
            2.0,
            0.10,
        );
        let sample = run.requests.iter().find(|r| !r.warmup).unwrap();
        match style {
            InputStyle::Trtllm => {
                assert_eq!(sample.token_source, TokenCountSource::Server, "output_ids count the tokens");
                assert!(sample.token_responses().any(|r| r.tokens == 2), "some responses carry two tokens");
                assert_eq!(sample.responses.last().unwrap().tokens, 0, "the separate empty final is kept, not counted");
            }
            InputStyle::Tutorial => {
                assert_eq!(
                    sample.token_responses().count(),
                    MAX_TOKENS as usize,
                    "cumulative text: one token per response"
                );
                assert_eq!(sample.responses.last().unwrap().tokens, 0, "the separate empty final is kept, not counted");
            }
            _ => assert_eq!(sample.responses.len(), MAX_TOKENS as usize, "the final flag rides on the last token"),
        }
    }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_arrive_shortly_after_the_model_sends_them() {
    let _timing = timing_lock().await;
    let run =
        sweep(SweepSpec { prompt_lengths: vec![64], max_tokens: 32, requests: 8, ..spec(triton(), "vllm_like") }).await;
    assert_eq!(run.status, RunStatus::Completed);
    let delays = run.arrival_delays_ms();
    assert_eq!(delays.len(), 8 * 32, "every token response carries the model's send time");
    let (p50, p99) = (percentile(&delays, 50.0), percentile(&delays, 99.0));
    eprintln!(
        "real_triton: arrival - send over {} responses: p50 {p50:.3} ms, p99 {p99:.3} ms, max {:.3} ms",
        delays.len(),
        delays[delays.len() - 1]
    );
    // Same machine, same clock: only the anchor's rounding and clock steps could make it negative.
    assert!(p50 >= -1.0, "responses arrive before they are sent: median {p50:.3} ms");
    assert!(p50 <= 3.0, "the way from the model to the engine takes {p50:.3} ms at the median");
    // The model's receive time comes through too: the way in, from our send to the model.
    let mut way_in: Vec<f64> = run
        .requests
        .iter()
        .map(|r| {
            let received = r.server_recv_unix_ns.unwrap_or_else(|| panic!("{}: no recv_ns", r.id));
            (received - (run.started_unix_ns + r.send_ns as i64)) as f64 / 1e6
        })
        .collect();
    way_in.sort_by(f64::total_cmp);
    let way_in_p50 = percentile(&way_in, 50.0);
    eprintln!("real_triton: model's receipt - our send: p50 {way_in_p50:.3} ms");
    assert!((-1.0..=5.0).contains(&way_in_p50), "the way in takes {way_in_p50:.3} ms at the median");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_errors_are_kept_per_request_and_the_sweep_goes_on() {
    let _timing = timing_lock().await;
    let run = sweep(SweepSpec {
        prompt_lengths: vec![8, 16],
        requests: 6,
        warmup: 1,
        max_tokens: 5,
        ..spec(triton(), "failing_like")
    })
    .await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.requests.len(), 14);
    // failing_like fails every 3rd request since the server started, so where the pattern
    // begins depends on what the server saw before; one request at a time, the failures are
    // exactly every 3rd request in send order, starting within the first three.
    let mut in_order: Vec<_> = run.requests.iter().collect();
    in_order.sort_by_key(|r| r.send_ns);
    let failed: Vec<usize> = in_order.iter().enumerate().filter(|(_, r)| r.error.is_some()).map(|(i, _)| i).collect();
    let first = failed.first().copied().expect("some requests fail");
    assert!(first < 3, "the first failure is within the first three requests: {failed:?}");
    assert_eq!(failed, (first..in_order.len()).step_by(3).collect::<Vec<_>>(), "every third request fails");
    for record in run.requests.iter().filter(|r| r.error.is_some()) {
        let error = record.error.as_deref().unwrap();
        assert!(error.contains("failing_like: simulated failure"), "the model's own words are kept: {error}");
        assert_eq!(record.output_tokens(), 1, "the token before the error is kept");
    }
    for (index, point) in run.points.iter().enumerate() {
        let measured_failures =
            run.requests.iter().filter(|r| r.point as usize == index && !r.warmup && r.error.is_some()).count() as u64;
        assert_eq!(point.count, 6);
        assert_eq!(point.errors, measured_failures, "point {index}: errors are counted");
        assert_eq!(point.ttft_ms.as_ref().unwrap().count, 6 - measured_failures, "errors stay out of latency");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_is_not_decoupled_is_refused_or_timed_without_streaming() {
    let _timing = timing_lock().await;
    let run = sweep(spec(triton(), "unary_like")).await;
    let error = failure(&run.status);
    assert!(error.contains("model 'unary_like' is not decoupled"), "{error}");
    assert!(error.contains("decoupled: true") && error.contains("--non-streaming"), "{error}");
    assert!(run.requests.is_empty(), "nothing is sent to a model that cannot stream");

    // Asked to, the same model is timed with ModelInfer: one response, with every token.
    const MAX_TOKENS: u32 = 16;
    timing_attempts(|| async move {
        let run = sweep(SweepSpec {
            prompt_lengths: vec![64],
            max_tokens: MAX_TOKENS,
            requests: 6,
            warmup: 1,
            concurrency: 2,
            streaming: false,
            ..spec(triton(), "unary_like")
        })
        .await;
        assert_eq!(run.status, RunStatus::Completed);
        for record in &run.requests {
            assert_eq!(record.error, None, "{}", record.id);
            assert_eq!(record.responses.len(), 1, "{}", record.id);
            assert_eq!(record.output_tokens(), u64::from(MAX_TOKENS), "{}: the server's count", record.id);
            assert_eq!(record.token_source, TokenCountSource::Server);
            assert_eq!(record.text(), " tok".repeat(MAX_TOKENS as usize), "{}: the prompt is left out", record.id);
        }
        let point = &run.points[0];
        assert_eq!((point.count, point.errors, point.t2t_ms.as_ref()), (6, 0, None));
        // The response leaves after the last token's deadline.
        let schedule = Schedule::of("unary_like");
        let whole = schedule.prefill_ms(64) + f64::from(MAX_TOKENS - 1) * schedule.decode_ms;
        let ttft = point.ttft_ms.as_ref().unwrap();
        eprintln!(
            "real_triton: unary_like without streaming: TTFT p50 {:.3} mean {:.3} ms (schedule {whole:.3})",
            ttft.p50, ttft.mean
        );
        let over = ttft.p50 - whole;
        let allowed = 4.0_f64.max(0.10 * whole);
        assert!((-0.5..=allowed).contains(&over), "TTFT median {:.3} ms, schedule {whole:.3} ms", ttft.p50);
        assert_eq!(run.arrival_delays_ms().len(), 6, "each response carries the model's send time");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_model_lists_the_real_models() {
    let _timing = timing_lock().await;
    let run = sweep(spec(triton(), "llama")).await;
    let error = failure(&run.status);
    assert!(error.contains("model 'llama' is not on the server"), "{error}");
    for model in ["vllm_like", "tutorial_like", "trtllm_like", "unary_like", "failing_like"] {
        assert!(error.contains(&format!("{model} (READY)")), "{model} is listed: {error}");
    }
}

/// Open loop against the real server: a constant rate is sent at that rate, on time, and
/// latency from the intended time is never below the usual one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constant_rate_reaches_the_real_server_at_its_rate() {
    let _timing = timing_lock().await;
    let target = triton();
    timing_attempts(|| async {
        let spec = SweepSpec { request_rates: vec![20.0], max_tokens: 4, requests: 40, ..spec(target, "vllm_like") };
        let run = sweep(spec).await;
        assert_eq!(run.status, RunStatus::Completed);
        let point = &run.points[0];
        assert_eq!((point.count, point.errors), (40, 0));
        let mut intended: Vec<(u32, u64)> = run.requests.iter().map(|r| (r.seq, r.intended_ns.unwrap())).collect();
        intended.sort_unstable();
        for (k, pair) in intended.windows(2).enumerate() {
            assert_eq!(pair[1].1 - pair[0].1, 50_000_000, "request {} is due 50 ms after the one before", k + 1);
        }
        let sent = point.sent_per_s;
        let lag = point.schedule_lag_ms.as_ref().unwrap();
        eprintln!(
            "real_triton: 20 requests/s sent at {sent:.3}/s; schedule lag p50 {:.3} ms, p99 {:.3} ms",
            lag.p50, lag.p99
        );
        assert!((sent / 20.0 - 1.0).abs() < 0.01, "sent {sent:.3} requests/s against 20");
        let (usual, due) = (point.ttft_ms.as_ref().unwrap(), point.ttft_intended_ms.as_ref().unwrap());
        assert!(due.min >= usual.min && due.p50 >= usual.p50 && due.max >= usual.max);
    })
    .await;
}

/// A model whose server counts prompts with a tokenizer kept in its folder of the model
/// repository: the same folder given as the run's tokenizer makes prompts the server counts
/// as exactly their length, at every length of 16..4096:x2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_prompt_count_is_the_tokenizers() {
    let _timing = timing_lock().await;
    let folder = repo_root().join("server/tests/triton_models/vllm_tokenized");
    let lengths = vec![16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
    let run = sweep(SweepSpec {
        prompt_lengths: lengths.clone(),
        max_tokens: 2,
        requests: 2,
        tokenizer: Some(folder.display().to_string()),
        ..spec(triton(), "vllm_tokenized")
    })
    .await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.requests.len(), lengths.len() * 2);
    assert!(!run.prompt_lengths_approximate);
    for record in &run.requests {
        assert_eq!(record.error, None, "{}", record.id);
        assert_eq!(record.num_input_tokens, Some(lengths[record.point as usize]), "{}", record.id);
    }
}

/// Lengths drawn per request and a shared prefix: the server counts each prompt as sent, and
/// each request's own max_tokens reaches the model, as sampling parameters (the vLLM backend)
/// or as an input of its own (TensorRT-LLM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drawn_lengths_and_a_shared_prefix_reach_a_real_triton_as_asked() {
    let _timing = timing_lock().await;
    let folder = repo_root().join("server/tests/triton_models/vllm_tokenized");
    for (model, tokenizer) in [("vllm_tokenized", Some(folder.display().to_string())), ("trtllm_like", None)] {
        let asked = SweepSpec {
            prompt_lengths: vec![64, 1024],
            prompt_stddev: Some(40.0),
            shared_prefix: Some(32),
            max_tokens: 8,
            output_stddev: Some(3.0),
            ignore_eos: true,
            requests: 12,
            seed: 4,
            tokenizer,
            ..spec(triton(), model)
        };
        let run = sweep(asked.clone()).await;
        assert_eq!(run.status, RunStatus::Completed, "{model}");
        let lengths: std::collections::BTreeSet<u32> = run.requests.iter().map(|r| r.prompt_words).collect();
        let outputs: std::collections::BTreeSet<u64> = run.requests.iter().map(|r| r.output_tokens()).collect();
        assert!(lengths.len() >= 8 && outputs.len() >= 3, "{model}: drawn, {lengths:?} {outputs:?}");
        for record in &run.requests {
            assert_eq!(record.error, None, "{model} {}", record.id);
            // Each request's own max_tokens reached the model, which makes exactly that many.
            assert_eq!(record.output_tokens(), u64::from(asked.max_tokens_of(record.point, record.seq)), "{model}");
            if model == "vllm_tokenized" {
                assert_eq!(record.num_input_tokens, Some(record.prompt_words), "{}: counted alike", record.id);
            }
        }
    }
}

/// Triton's own statistics of each point count the point's requests, as the server saw them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_point_has_the_real_servers_statistics() {
    let _timing = timing_lock().await;
    for model in ["vllm_like", "trtllm_like"] {
        let run = sweep(SweepSpec {
            prompt_lengths: vec![16, 256],
            max_tokens: 4,
            requests: 5,
            warmup: 1,
            ..spec(triton(), model)
        })
        .await;
        assert_eq!(run.status, RunStatus::Completed, "{model}");
        for point in &run.points {
            let server = point.server.unwrap_or_else(|| panic!("{model}: {:?}", point.server_missing));
            assert_eq!(
                (server.requests, server.failed),
                (6, 0),
                "{model}: each request of the point, warm-up included"
            );
            assert!(server.request_ms > 0.0, "{model}: {server:?}");
            eprintln!(
                "{model} {}: {server:?}, client TTFT {:?}",
                point.prompt_length,
                point.ttft_ms.as_ref().map(|s| s.mean)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_servers_metrics_are_read_over_the_run_and_count_its_requests() {
    let _timing = timing_lock().await;
    let run = sweep(SweepSpec {
        prompt_lengths: vec![16, 256],
        max_tokens: 8,
        requests: 6,
        warmup: 1,
        metrics_url: Some(triton_metrics().into()),
        metrics_interval_ms: Some(100),
        no_metrics: false,
        ..spec(triton(), "vllm_like")
    })
    .await;
    assert_eq!(run.status, RunStatus::Completed);
    let telemetry = run.telemetry.as_ref().expect("the run read the server's metrics");
    assert_eq!(telemetry.url, triton_metrics());
    assert!(telemetry.scrapes.len() >= 2, "{}", telemetry.describe());
    assert_eq!(telemetry.failures(), 0, "{}", telemetry.describe());
    let families: Vec<String> = telemetry.families().into_iter().map(|f| f.name).collect();
    for family in ["nv_inference_request_success", "nv_inference_queue_duration_us", "nv_inference_count"] {
        assert!(families.iter().any(|f| f == family), "{family} missing from {families:?}");
    }
    // The server's count of the model's successes grew by the run's requests, warm-up
    // included: from the first scrape (before any request) to the last (after the run).
    let success = telemetry
        .series
        .iter()
        .position(|s| s.head.name == "nv_inference_request_success" && s.head.label("model") == Some("vllm_like"))
        .expect("a success counter for the model") as u32;
    let values: Vec<f64> = telemetry.samples(success).into_iter().filter_map(|(_, v)| v).collect();
    let grew = values.last().unwrap() - values.first().unwrap();
    let sent = run.requests.len() as f64;
    assert_eq!(grew, sent, "the server counted {grew} of {sent} requests: {values:?}");
    // Each point's window has scrapes of its own.
    for (point, window) in run.telemetry_by_point().into_iter().enumerate() {
        let window = window.unwrap_or_else(|| panic!("point {point} has no window"));
        assert!(window.scrapes >= 1, "point {point}: {window:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_generate_stream_times_the_same_models_as_grpc() {
    let _timing = timing_lock().await;
    let target = triton_http();
    const MAX_TOKENS: u32 = 16;
    timing_attempts(|| async move {
        for (model, style) in [("vllm_like", InputStyle::Vllm), ("tutorial_like", InputStyle::Tutorial)] {
            let schedule = Schedule::of(model);
            let run = sweep(SweepSpec {
                prompt_lengths: vec![16],
                max_tokens: MAX_TOKENS,
                ignore_eos: true,
                requests: 5,
                warmup: 1,
                ..spec(target, model)
            })
            .await;
            assert_eq!(run.status, RunStatus::Completed, "{model} over {target}");
            assert_eq!(run.model.as_ref().unwrap().input_style, style, "{model}: the same signature over HTTP");
            for record in &run.requests {
                assert_eq!(record.error, None, "{model} {}", record.id);
                assert_eq!(record.output_tokens(), u64::from(MAX_TOKENS), "{model} {}", record.id);
                assert_eq!(record.text(), " tok".repeat(MAX_TOKENS as usize), "{model} {}: new text only", record.id);
            }
            let point = &run.points[0];
            let (ttft, t2t) = (point.ttft_ms.as_ref().unwrap(), point.t2t_ms.as_ref().unwrap());
            let prefill = schedule.prefill_ms(16);
            eprintln!(
                "real_triton: {model} over HTTP: TTFT p50 {:.3} ms (schedule {prefill:.3}), T2T p50 {:.3} ms (schedule {:.3})",
                ttft.p50, t2t.p50, schedule.decode_ms
            );
            let over = ttft.p50 - prefill;
            assert!((-0.5..=4.0_f64.max(0.10 * prefill)).contains(&over), "{model} TTFT median {:.3} ms", ttft.p50);
            assert_close(&format!("{model} token-to-token over HTTP"), t2t.p50, schedule.decode_ms, 0.5, 0.10);
            let delays = run.arrival_delays_ms();
            assert_eq!(delays.len(), 5 * MAX_TOKENS as usize, "{model}: every event carries the model's send time");
            let p50 = percentile(&delays, 50.0);
            eprintln!("real_triton: {model} over HTTP: arrival - send p50 {p50:.3} ms");
            assert!((-1.0..=3.0).contains(&p50), "{model}: the way from the model to the engine takes {p50:.3} ms");
        }
    })
    .await;
    // A model's error ends its request alone, and an unknown model is named with the real ones.
    // failing_like fails every third request since the server started.
    let run = sweep(SweepSpec { requests: 6, ..spec(target, "failing_like") }).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.status);
    let errors: Vec<&String> = run.requests.iter().filter_map(|r| r.error.as_ref()).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|e| e.contains("failing_like: simulated failure")), "the model's words: {errors:?}");
    let run = sweep(spec(target, "no_such_model")).await;
    let error = failure(&run.status);
    assert!(error.contains("'no_such_model' is not on") && error.contains("vllm_like"), "{error}");
}
