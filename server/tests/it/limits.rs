//! The caps on every input: hostile specs, files and servers are refused or fail alone, and
//! the process stays up.

use std::process::Command;

use serde_json::{Value, json};
use server::sim::SimConfig;
use shared::RunStatus;

use crate::dashboard::{fast_sim, get, post, spec_json, wait_finished};
use crate::support::{start_dashboard, timing_lock};

#[tokio::test]
async fn hostile_specs_are_refused() {
    let dash = start_dashboard(fast_sim()).await;
    let runs = format!("{}/api/runs", dash.base);
    // Each field, and the words the refusal must hold: the cap's value.
    let hostile: [(Value, &str); 7] = [
        (json!({ "prompt_lengths": [4_294_967_295u32], "requests": 1 }), "1000000 words"),
        (json!({ "prompt_lengths": [50_000_000], "requests": 1 }), "1000000 words"),
        (json!({ "prompt_lengths": [1_000_000], "concurrency": 1024 }), "256 MiB"),
        (json!({ "request_timeout_ms": u64::MAX }), "3600000 ms"),
        (json!({ "concurrency": u32::MAX }), "limit of 1024"),
        (json!({ "max_tokens": u32::MAX }), "limit of 1048576"),
        (json!({ "requests": u32::MAX, "warmup": u32::MAX }), "at most 1000000"),
    ];
    for (fields, limit) in hostile {
        let mut spec = json!({ "model": "sim-vllm", "prompt_lengths": [16] });
        for (key, value) in fields.as_object().unwrap() {
            spec[key] = value.clone();
        }
        let (status, body) = post(&runs, &spec).await;
        assert_eq!(status, 422, "{spec}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(limit), "{spec}: {error:?} does not name the limit {limit:?}");
    }
    let (status, list) = get(&runs).await;
    assert_eq!((status, list), (200, json!([])), "no run was started");
    let (status, _) = get(&format!("{}/api/info", dash.base)).await;
    assert_eq!(status, 200, "the dashboard still answers");

    // `tokenscope sweep` checks the same caps before it connects to anything.
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tokenscope"))
        .current_dir(dir.path())
        .args(["sweep", "--target", "127.0.0.1:1", "--model", "m", "--prompt-lengths", "4294967295"])
        .args(["--timeout-ms", "18446744073709551615"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1000000 words") && stderr.contains("3600000 ms"), "{stderr}");
}

/// A run.json of one request, as small as a hostile file can be, with `tokens` and
/// `prompt_words` as given.
fn tiny_run_json(tokens: u64, prompt_words: u64) -> Value {
    json!({
        "tool": "tokenscope 0.1.0",
        "spec": { "target": "http://127.0.0.1:8001", "model": "m", "prompt_lengths": [16], "requests": 1 },
        "started_unix_ns": 0,
        "model": null,
        "status": { "state": "completed" },
        "prompt_lengths_approximate": true,
        "points": [],
        "requests": [{
            "point": 0, "seq": 0, "warmup": false, "id": "0-0", "prompt_words": prompt_words, "send_ns": 0,
            "responses": [{ "at_ns": 10, "tokens": 1 }, { "at_ns": 20, "tokens": tokens }],
        }],
    })
}

#[tokio::test]
async fn a_hostile_import_is_refused() {
    let dash = start_dashboard(fast_sim()).await;
    let import = format!("{}/api/runs/import", dash.base);
    let huge_tokens = tiny_run_json(u64::from(u32::MAX), 16);
    assert!(huge_tokens.to_string().len() < 500, "a small file");
    let huge_prompt = tiny_run_json(1, u64::from(u32::MAX));
    let profile = json!({ "experiments": [{ "requests": [{
        "timestamp": 0,
        "request_inputs": { "text_input": "a b c" },
        "response_timestamps": [10, 20],
    }] }] });
    let mut wide_profile = profile.clone();
    wide_profile["experiments"][0]["experiment"] = json!({ "mode": "concurrency", "value": 100_000 });
    for (file, limit) in [
        (&huge_tokens, "1048576 tokens per response"),
        (&huge_prompt, "limit of 1000000"),
        (&wide_profile, "limit of 1024"),
    ] {
        let (status, body) = post(&import, file).await;
        assert_eq!(status, 422, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(limit), "{error:?} does not name the limit {limit:?}");
    }
    // Within the caps, the same files are taken.
    let (status, body) = post(&import, &tiny_run_json(3, 16)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(&import, &profile).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = get(&format!("{}/api/info", dash.base)).await;
    assert_eq!(status, 200);

    // The command line refuses the file with the same words, and exits non-zero.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.json");
    std::fs::write(&path, huge_tokens.to_string()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tokenscope")).arg("import").arg(&path).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1048576 tokens per response"), "{stderr}");
}

/// A run as its run.json export gives it.
async fn report(base: &str, id: &str) -> shared::RunReport {
    let (status, body) = get(&format!("{base}/api/runs/{id}/export/run.json")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
async fn a_server_reporting_four_billion_tokens_fails_only_that_request() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(SimConfig { huge_count_every: 3, ..fast_sim() }).await;
    let (status, body) = post(&format!("{}/api/runs", dash.base), &spec_json(&dash.sim.target, "sim-vllm")).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let summary = wait_finished(&dash.base, &id).await;
    assert_eq!(summary.status, RunStatus::Completed, "the run goes on past the failed requests");
    let run = report(&dash.base, &id).await;
    let failed: Vec<&str> = run.requests.iter().filter_map(|r| r.error.as_deref()).collect();
    assert!(!failed.is_empty() && failed.len() <= run.requests.len() / 3 + 1, "every third request fails: {failed:?}");
    for error in &failed {
        assert!(error.contains("4294967295 output tokens in one response") && error.contains("1048576"), "{error}");
    }
    assert!(run.requests.iter().all(|r| r.responses.iter().all(|c| c.tokens <= 1)), "no huge count is kept");
    assert!(run.points.iter().all(|p| p.ttft_ms.is_some()), "the other requests were measured");

    let dash = dash.restart().await;
    let (status, _) = get(&format!("{}/api/info", dash.base)).await;
    assert_eq!(status, 200, "a dashboard on the same data folder starts");
    let back = report(&dash.base, &id).await;
    assert_eq!(back.requests, run.requests);
}

proptest::proptest! {
    /// Any spec is judged without a panic, and one that is accepted stays within every cap:
    /// its prompts, the prompts in flight, its requests and its timeout.
    #[test]
    fn an_accepted_spec_stays_within_the_caps(
        lengths in proptest::collection::vec(proptest::prop_oneof![1u32..5000, proptest::prelude::any::<u32>()], 0..6),
        max_tokens in proptest::prop_oneof![1u32..5000, proptest::prelude::any::<u32>()],
        requests in proptest::prop_oneof![1u32..100, proptest::prelude::any::<u32>()],
        warmup in proptest::prop_oneof![0u32..10, proptest::prelude::any::<u32>()],
        concurrency in proptest::prop_oneof![1u32..2000, proptest::prelude::any::<u32>()],
        timeout in proptest::prop_oneof![1u64..10_000_000, proptest::prelude::any::<u64>()],
    ) {
        use shared::limits::*;
        let spec = shared::SweepSpec {
            model: "m".into(),
            prompt_lengths: lengths,
            max_tokens,
            requests,
            warmup,
            concurrency,
            request_timeout_ms: timeout,
            ..shared::SweepSpec::default()
        };
        if spec.problems().is_empty() {
            let longest = spec.prompt_lengths.iter().copied().max().unwrap();
            let prompt = shared::prompt::synthetic_prompt(0, 0, longest.min(20_000));
            proptest::prop_assert!(prompt.len() as u64 <= prompt_bytes_bound(longest.min(20_000)));
            proptest::prop_assert!(prompt_bytes_bound(longest) <= MAX_PROMPT_BYTES);
            proptest::prop_assert!(prompt_bytes_bound(longest) * u64::from(concurrency) <= MAX_PROMPT_BYTES_IN_FLIGHT);
            proptest::prop_assert!(spec.total_requests() <= MAX_REQUESTS && concurrency <= MAX_CONCURRENCY);
            proptest::prop_assert!(max_tokens <= MAX_OUTPUT_TOKENS && timeout <= MAX_REQUEST_TIMEOUT_MS);
        }
    }
}

#[tokio::test]
async fn a_second_import_while_one_is_read_is_asked_to_retry() {
    use tokio::io::AsyncWriteExt;
    let dash = start_dashboard(fast_sim()).await;
    // The first import's body is announced but only begun, so it is still being read.
    let host = dash.base.trim_start_matches("http://");
    let mut slow = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /api/runs/import HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let url = format!("{}/api/runs/import", dash.base);
    let mut refused = None;
    for _ in 0..100 {
        let response = reqwest::Client::new().post(&url).json(&tiny_run_json(1, 16)).send().await.unwrap();
        if response.status() == 503 {
            refused = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let response = refused.expect("a second import is refused while the first is read");
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("one at a time"), "{body}");
    // Once the first is gone, imports are taken again.
    drop(slow);
    for _ in 0..100 {
        let (status, _) = post(&url, &tiny_run_json(1, 16)).await;
        if status == 201 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("imports were not taken again after the first one's connection closed");
}
