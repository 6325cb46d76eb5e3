//! Bad input gets a clear error, and a fault keeps everything that finished before it.

use std::process::Stdio;
use std::time::Duration;

use server::clock::RunClock;
use server::engine::{EngineError, Observer, run_sweep_apart};
use server::sim::SimConfig;
use shared::{InputStyle, RequestRecord, RunStatus, SweepSpec};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::support::{spec, start_sim, sweep, timing_lock};

fn failure(status: &RunStatus) -> &str {
    match status {
        RunStatus::Failed { error } => error,
        other => panic!("expected a failed run, got {other:?}"),
    }
}

#[tokio::test]
async fn unreachable_target_names_the_address() {
    let _serial = timing_lock().await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let run = sweep(spec(&format!("127.0.0.1:{port}"), "m")).await;
    let error = failure(&run.status);
    assert!(error.contains(&format!("cannot reach Triton at http://127.0.0.1:{port}")), "{error}");
    assert!(error.contains("gRPC port"), "{error}");
}

#[tokio::test]
async fn a_server_that_is_not_grpc_is_told_apart() {
    let _serial = timing_lock().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        }
    });
    let run = sweep(spec(&format!("http://{addr}"), "m")).await;
    let error = failure(&run.status);
    assert!(error.contains("not as a Triton gRPC server"), "{error}");
}

#[tokio::test]
async fn invalid_targets_and_specs_are_refused_before_sending() {
    let _serial = timing_lock().await;
    let run = sweep(spec("http://exa mple:1", "m")).await;
    assert!(failure(&run.status).contains("is not a valid address"), "{:?}", run.status);
    let run = sweep(spec("http://127.0.0.1:1", "")).await;
    assert!(failure(&run.status).contains("the model name is empty"), "{:?}", run.status);
}

#[tokio::test]
async fn unknown_model_lists_the_server_models() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig::default()).await;
    let run = sweep(spec(&sim.target, "llama")).await;
    let error = failure(&run.status);
    assert!(error.contains("model 'llama' is not on the server"), "{error}");
    assert!(error.contains("sim-vllm (READY)") && error.contains("sim-trtllm (READY)"), "{error}");
}

#[tokio::test]
async fn a_model_that_failed_to_load_is_reported_with_its_state() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig { unavailable: vec!["sim-vllm".into()], ..SimConfig::default() }).await;
    let run = sweep(spec(&sim.target, "sim-vllm")).await;
    let error = failure(&run.status);
    assert!(error.contains("model 'sim-vllm' is not ready"), "{error}");
    assert!(error.contains("state UNAVAILABLE: simulated load failure"), "{error}");
}

#[tokio::test]
async fn a_model_that_cannot_stream_is_explained() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig::default()).await;
    let error = failure(&sweep(spec(&sim.target, "sim-unary")).await.status).to_string();
    assert!(error.contains("model 'sim-unary' is not decoupled"), "{error}");
    assert!(error.contains("decoupled: true"), "{error}");
    assert!(error.contains("--non-streaming"), "the other way is named: {error}");
}

#[tokio::test]
async fn a_style_the_model_does_not_speak_lists_its_inputs() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig::default()).await;
    let run = sweep(shared::SweepSpec { input_style: InputStyle::Tutorial, ..spec(&sim.target, "sim-vllm") }).await;
    let error = failure(&run.status);
    assert!(error.contains("lacks input(s) PROMPT, SAMPLING_PARAMETERS"), "{error}");
    assert!(error.contains("text_input: BYTES [1]"), "{error}");
}

#[tokio::test]
async fn server_errors_mid_stream_are_kept_per_request_and_the_sweep_goes_on() {
    let _serial = timing_lock().await;
    let config = SimConfig { prefill_base_ms: 1.0, decode_ms: 1.0, fail_every: 3, ..SimConfig::default() };
    let sim = start_sim(config).await;
    let run = sweep(shared::SweepSpec {
        prompt_lengths: vec![8, 16],
        requests: 6,
        max_tokens: 5,
        ..spec(&sim.target, "sim-vllm")
    })
    .await;
    assert_eq!(run.status, RunStatus::Completed);
    let failed: Vec<_> = run.requests.iter().filter(|r| r.error.is_some()).collect();
    assert_eq!(failed.len(), 4, "every third of 12 requests fails");
    for record in &failed {
        assert!(record.error.as_deref().unwrap().contains("simulated failure"), "{:?}", record.error);
        assert_eq!(record.output_tokens(), 1, "the token before the error is kept");
    }
    assert_eq!(run.points.iter().map(|p| p.errors).sum::<u64>(), 4);
    assert!(run.points.iter().all(|p| p.ttft_ms.as_ref().unwrap().count == 4), "errors stay out of latency");
}

#[tokio::test]
async fn requests_past_their_timeout_are_abandoned_with_a_reason() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig { prefill_base_ms: 1.0, decode_ms: 20.0, ..SimConfig::default() }).await;
    let run = sweep(shared::SweepSpec {
        max_tokens: 100,
        requests: 2,
        request_timeout_ms: 100,
        ..spec(&sim.target, "sim-vllm")
    })
    .await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.points[0].errors, 2);
    for record in &run.requests {
        let error = record.error.as_deref().unwrap();
        assert!(error.contains("no final response within the request timeout of 100 ms"), "{error}");
        assert!(record.output_tokens() >= 1, "tokens before the timeout are kept");
    }
}

#[tokio::test]
async fn a_timed_out_request_stops_loading_the_server() {
    let _serial = timing_lock().await;
    // Each sequence decoding alongside adds 40 ms to every decode step, as in a batching server.
    let sim = start_sim(SimConfig {
        prefill_base_ms: 1.0,
        decode_ms: 10.0,
        decode_per_sequence_ms: 40.0,
        ..SimConfig::default()
    })
    .await;
    let run = sweep(shared::SweepSpec {
        max_tokens: 100,
        requests: 2,
        request_timeout_ms: 200,
        ..spec(&sim.target, "sim-vllm")
    })
    .await;
    assert_eq!(run.points[0].errors, 2, "both requests time out");
    // Closing the first request's stream cancels it on the server, so the second decodes alone
    // (10 ms steps), not beside it (50 ms steps).
    let second = &run.requests[1];
    let arrivals: Vec<u64> = second.responses.iter().map(|r| r.at_ns).collect();
    let mut gaps: Vec<f64> = arrivals.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e6).collect();
    assert!(gaps.len() >= 5, "the second request decoded {} steps in 200 ms", gaps.len());
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    assert!(median < 25.0, "median step {median:.1} ms: the timed-out request still decodes on the server");
}

#[tokio::test]
async fn a_server_that_dies_mid_run_keeps_what_finished() {
    let _serial = timing_lock().await;
    for (model, streaming) in [("sim-vllm", true), ("sim-unary", false)] {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokenscope"))
            .args(["sim", "--listen", &format!("127.0.0.1:{port}"), "--prefill-base-ms", "1", "--decode-ms", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the simulator binary starts");
        let target = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let spec = shared::SweepSpec {
            prompt_lengths: vec![8, 16],
            requests: 200,
            max_tokens: 10,
            concurrency: 2,
            streaming,
            ..spec(&target, model)
        };
        let run = tokio::spawn(sweep(spec));
        tokio::time::sleep(Duration::from_millis(600)).await;
        child.kill().await.unwrap();
        let run = run.await.unwrap();
        let error = failure(&run.status);
        assert!(error.contains(&target), "{model}: the message names the server: {error}");
        let finished = run.requests.iter().filter(|r| r.error.is_none()).count();
        assert!(finished >= 5, "{model}: requests that finished before the fault are kept ({finished})");
        assert!(run.requests.iter().any(|r| r.error.is_some()), "{model}: the interrupted requests say why");
        assert_eq!(run.points.len(), 1, "{model}: the interrupted point still gets statistics");
    }
}

/// An observer that counts what it hears, and panics at the request named, if any.
#[derive(Default)]
struct Counting {
    done: usize,
    panic_at: Option<usize>,
}

impl Observer for Counting {
    fn request_done(&mut self, _record: &RequestRecord) {
        self.done += 1;
        if self.panic_at == Some(self.done) {
            panic!("observer fault at request {}", self.done);
        }
    }
}

#[tokio::test]
async fn the_engine_thread_hands_back_the_report_and_its_observer() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig { decode_ms: 1.0, prefill_base_ms: 1.0, ..SimConfig::default() }).await;
    let spec = shared::SweepSpec { requests: 5, warmup: 1, ..spec(&sim.target, "sim-vllm") };
    let (report, observer) =
        run_sweep_apart(RunClock::start(), spec, Counting::default(), CancellationToken::new()).await.unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(report.requests.len(), 6);
    assert_eq!(observer.done, 6, "the observer heard every request, warm-up included");
    // Six requests of four tokens at 1 ms each: the thread ran tens of milliseconds, and was
    // busy for some of them.
    let load = report.engine.expect("Linux tells a thread's CPU time");
    assert!(load.wall_s >= 0.010, "{load:?}");
    assert!(load.cpu_s > 0.0 && load.cpu_s <= load.wall_s, "{load:?}");
    assert_eq!(load.responses, report.requests.iter().map(|r| r.responses.len() as u64).sum::<u64>());
    // Every response waited some time between its stamp and its record, within the run.
    assert!(load.waited_max_ms > 0.0 && load.waited_max_ms < load.wall_s * 1e3, "{load:?}");
    assert!(load.waited_p99_ms <= load.waited_max_ms, "{load:?}");
}

#[tokio::test]
async fn a_panic_on_the_engine_thread_is_an_error_that_says_what_happened() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig { decode_ms: 1.0, prefill_base_ms: 1.0, ..SimConfig::default() }).await;
    let observer = Counting { panic_at: Some(2), ..Counting::default() };
    let outcome =
        run_sweep_apart(RunClock::start(), spec(&sim.target, "sim-vllm"), observer, CancellationToken::new()).await;
    match outcome {
        Err(EngineError::Panicked(message)) => assert!(message.contains("observer fault at request 2"), "{message}"),
        Err(other) => panic!("expected a panic report, got {other}"),
        Ok((report, _)) => panic!("expected a panic report, got a run that ended {:?}", report.status),
    }
}

/// A server without ModelStatistics: every point says why its server statistics are missing,
/// the run completes, and the statistics are asked for once.
#[tokio::test]
async fn a_server_without_statistics_leaves_the_run_complete_and_says_so() {
    let sim = start_sim(SimConfig { no_statistics: true, ..SimConfig::default() }).await;
    let run = sweep(SweepSpec {
        prompt_lengths: vec![4, 8, 16],
        max_tokens: 2,
        requests: 2,
        ..spec(&sim.target, "sim-vllm")
    })
    .await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.points.len(), 3);
    for point in &run.points {
        assert_eq!(point.server, None);
        let why = point.server_missing.as_deref().unwrap_or_default();
        assert!(why.contains("ModelStatistics failed") && why.contains("not served here"), "{why}");
    }
    assert!(run.points[2].server_missing.as_deref().unwrap().contains("not asked again"), "asked once");
}
