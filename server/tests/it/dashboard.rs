//! The dashboard's HTTP API and events WebSocket, served on a port-0 listener.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use server::sim::SimConfig;
use shared::api::{RunCreated, RunSummary, ServerInfo, TargetModels};
use shared::{InputStyle, LiveRun, RunEvent, RunReport, RunStatus, SweepSpec};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{start_dashboard, timing_lock};

pub fn fast_sim() -> SimConfig {
    SimConfig { prefill_base_ms: 2.0, prefill_per_token_ms: 0.01, decode_ms: 1.0, ..SimConfig::default() }
}

pub async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

pub async fn post(url: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new().post(url).json(body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

pub fn spec_json(target: &str, model: &str) -> Value {
    serde_json::to_value(SweepSpec {
        target: target.into(),
        model: model.into(),
        prompt_lengths: vec![16, 64, 128],
        max_tokens: 8,
        requests: 4,
        warmup: 1,
        concurrency: 2,
        ..SweepSpec::default()
    })
    .unwrap()
}

/// Waits until the run has finished and returns its summary.
pub async fn wait_finished(base: &str, id: &str) -> RunSummary {
    for _ in 0..600 {
        let (status, body) = get(&format!("{base}/api/runs/{id}")).await;
        assert_eq!(status, 200, "{body}");
        let summary: RunSummary = serde_json::from_value(body).unwrap();
        if summary.status != RunStatus::Running {
            return summary;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} did not finish within 30 s");
}

/// Reads a run's events until the server closes the socket, or `limit` events.
pub async fn read_events(base: &str, id: &str, limit: usize) -> Vec<String> {
    let url = format!("{}/api/runs/{id}/events", base.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("the WebSocket opens");
    let mut events = Vec::new();
    while events.len() < limit {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await.expect("an event within 30 s") {
            Some(Ok(Message::Text(text))) => events.push(text.to_string()),
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => {}
            Some(Err(err)) => panic!("the WebSocket failed: {err}"),
        }
    }
    let _ = socket.close(None).await;
    events
}

#[tokio::test]
async fn info_and_the_targets_models() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let (status, body) = get(&format!("{}/api/info", dash.base)).await;
    assert_eq!(status, 200);
    let info: ServerInfo = serde_json::from_value(body).unwrap();
    assert!(info.default_is_simulated);
    assert_eq!(info.default_target, dash.sim.target);

    let (status, body) = get(&format!("{}/api/targets/models", dash.base)).await;
    assert_eq!(status, 200, "{body}");
    let models: TargetModels = serde_json::from_value(body).unwrap();
    assert!(models.simulated);
    let find = |name: &str| models.models.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("{name} listed"));
    let vllm = find("sim-vllm");
    assert!(vllm.ready);
    assert_eq!((vllm.input_style, vllm.streaming, vllm.problem.as_deref()), (Some(InputStyle::Vllm), Some(true), None));
    assert_eq!(find("sim-tutorial").input_style, Some(InputStyle::Tutorial));
    assert_eq!(find("sim-trtllm").input_style, Some(InputStyle::Trtllm));
    let unary = find("sim-unary");
    assert_eq!((unary.streaming, unary.problem.as_deref()), (Some(false), None), "usable without streaming");

    // A port nobody listens on: 502 naming the address, with a hint.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (status, body) = get(&format!("{}/api/targets/models?target=127.0.0.1:{port}", dash.base)).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "target", "{body}");
    assert!(body["error"].as_str().unwrap().contains(&format!("127.0.0.1:{port}")), "{body}");
    assert!(body["hint"].as_str().unwrap().contains("gRPC port"), "{body}");
    let (status, body) = get(&format!("{}/api/targets/models?target=http://bad%20host:1", dash.base)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not a valid address"), "{body}");
}

#[tokio::test]
async fn bad_runs_are_refused_with_a_reason() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let runs = format!("{}/api/runs", dash.base);
    let response = reqwest::Client::new()
        .post(&runs)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("could not be read"), "{body}");

    let mut spec = spec_json(&dash.sim.target, "sim-vllm");
    spec["prompt_lengths"] = json!([]);
    spec["requests"] = json!(0);
    let (status, body) = post(&runs, &spec).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid", "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("at least one prompt length") && error.contains("requests per prompt length"), "{body}");

    let (status, body) = post(&runs, &spec_json(&dash.sim.target, "nope")).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("it has: "), "{body}");
    // Each model is asked the way it answers: a model that is not decoupled cannot stream, and
    // Triton serves a decoupled one only by streaming.
    let (status, body) = post(&runs, &spec_json(&dash.sim.target, "sim-unary")).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("is not decoupled"), "{body}");
    assert!(body["hint"].as_str().unwrap().contains("untick Streaming"), "{body}");
    let mut unary = spec_json(&dash.sim.target, "sim-vllm");
    unary["streaming"] = json!(false);
    let (status, body) = post(&runs, &unary).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("is decoupled"), "{body}");

    // A misspelt field is refused rather than run with its default.
    let mut misspelt = spec_json(&dash.sim.target, "sim-vllm");
    misspelt["request"] = json!(100);
    let (status, body) = post(&runs, &misspelt).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("unknown field \"request\""), "{body}");

    // A tokenizer path outside the dashboard's own and allowed folders would have the proxy
    // open files of its machine for any operator.
    let mut tokenizer = spec_json(&dash.sim.target, "sim-vllm");
    tokenizer["tokenizer"] = json!("/etc/passwd");
    let (status, body) = post(&runs, &tokenizer).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("does not open the tokenizer /etc/passwd"), "{body}");
    assert!(body["hint"].as_str().unwrap().contains("--tokenizer-dir"), "{body}");
    let mut prompts = spec_json(&dash.sim.target, "sim-vllm");
    prompts["prompts_file"] = json!("/etc/shadow");
    let (status, body) = post(&runs, &prompts).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("does not open prompts files by their path"), "{body}");

    // Another site's page may not start runs.
    let response = reqwest::Client::new()
        .post(&runs)
        .header("origin", "http://evil.example")
        .json(&spec_json(&dash.sim.target, "sim-vllm"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("http://evil.example"), "{body}");
    assert_eq!(body["code"], "forbidden", "{body}");

    // Wrong methods and a plain GET of the WebSocket answer in JSON too.
    let response = reqwest::Client::new().delete(&runs).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("DELETE"), "{body}");

    let (status, body) = get(&format!("{runs}/no-such-run")).await;
    assert_eq!(status, 404);
    assert!(body["hint"].as_str().unwrap().contains("/api/runs"), "{body}");
    // Programs tell failures apart by their code, not their words.
    assert_eq!(body["code"], "no_run", "{body}");
    let (status, body) = get(&format!("{}/api/nothing/here", dash.base)).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found", "{body}");
    assert_eq!(body["error"], "no such API endpoint");
    let (status, body) = get(&runs).await;
    assert_eq!((status, body), (200, json!([])));
}

#[tokio::test]
async fn a_reconnecting_websocket_ends_with_the_same_events() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let runs = format!("{}/api/runs", dash.base);
    let (status, body) = post(&runs, &spec_json(&dash.sim.target, "sim-vllm")).await;
    assert_eq!(status, 201, "{body}");
    let RunCreated { id } = serde_json::from_value(body).unwrap();

    // A second run while this one goes on is refused.
    let (status, body) = post(&runs, &spec_json(&dash.sim.target, "sim-vllm")).await;
    assert_eq!(status, 409, "{body}");

    // One socket stays for the whole run; another leaves after a few events and comes back.
    let stayed = tokio::spawn({
        let (base, id) = (dash.base.clone(), id.clone());
        async move { read_events(&base, &id, usize::MAX).await }
    });
    let early = read_events(&dash.base, &id, 3).await;
    assert_eq!(early.len(), 3);
    let summary = wait_finished(&dash.base, &id).await;
    let again = read_events(&dash.base, &id, usize::MAX).await;
    let stayed = stayed.await.unwrap();
    assert_eq!(again, stayed, "a reconnecting client must end with the same events as one that stayed");
    assert_eq!(early[..], stayed[..3]);

    let events: Vec<RunEvent> = stayed.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(matches!(events.first(), Some(RunEvent::Started { .. })));
    let Some(RunEvent::Finished { status: RunStatus::Completed, engine: Some(engine) }) = events.last() else {
        panic!("the log ends with the run's completion and what it cost the engine: {:?}", events.last());
    };
    assert!(engine.responses > 0 && engine.cpu_s > 0.0, "{engine:?}");
    let live = LiveRun::from_events(&events);
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!((live.finished, live.errors), (summary.finished_requests, summary.errors));
    assert_eq!(live.finished, 15);
    let settled: Vec<_> = live.points.iter().map(|p| p.clone().expect("every point settled")).collect();
    assert_eq!(settled, summary.points);

    // The report holds every request; the events carry each token's arrival to the microsecond.
    let report: RunReport = reqwest::get(format!("{runs}/{id}/report")).await.unwrap().json().await.unwrap();
    assert_eq!(report.points, summary.points);
    for record in &report.requests {
        let r = shared::live::request_index(&report.spec, record.point, record.seq) as usize;
        let expected: Vec<(u64, u32)> = record.token_responses().map(|t| (t.at_ns / 1000, t.tokens)).collect();
        assert_eq!(live.requests[r].tokens, expected, "tokens of request {r}");
        assert_eq!(live.requests[r].sent_us, Some(record.send_ns / 1000));
        let done = live.requests[r].done.as_ref().expect("finished");
        assert_eq!(done.tokens, record.output_tokens());
    }
    let (status, list) = get(&runs).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["id"], id.as_str());
}

#[tokio::test]
async fn a_cancelled_run_keeps_what_it_measured() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let runs = format!("{}/api/runs", dash.base);
    let mut spec = spec_json(&dash.sim.target, "sim-vllm");
    spec["requests"] = json!(1000);
    spec["max_tokens"] = json!(32);
    let (status, body) = post(&runs, &spec).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    // Wait for a few finished requests, then cancel.
    for _ in 0..200 {
        let (_, body) = get(&format!("{runs}/{id}")).await;
        if body["finished_requests"].as_u64().unwrap() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = post(&format!("{runs}/{id}/cancel"), &json!({})).await;
    assert_eq!(status, 202, "{body}");
    let summary = wait_finished(&dash.base, &id).await;
    assert_eq!(summary.status, RunStatus::Cancelled);
    assert!(summary.finished_requests >= 3, "{summary:?}");
    let (status, body) = get(&format!("{runs}/{id}/events")).await;
    assert!(status == 400 || status == 426, "{status} {body}");
    assert!(body["error"].as_str().unwrap().contains("WebSocket"), "{body}");
    let (status, body) = post(&format!("{runs}/{id}/cancel"), &json!({})).await;
    assert_eq!(status, 409, "{body}");
    let events = read_events(&dash.base, &id, usize::MAX).await;
    let last: RunEvent = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(matches!(last, RunEvent::Finished { status: RunStatus::Cancelled, .. }), "{last:?}");
    let report: RunReport = reqwest::get(format!("{runs}/{id}/report")).await.unwrap().json().await.unwrap();
    assert!(report.requests.iter().filter(|r| r.error.is_none()).count() >= 3);
    // Requests cut short by the cancel are in the events as well as in the report.
    assert_eq!(summary.finished_requests, report.requests.len() as u64);
    let live = LiveRun::from_events(&events.iter().map(|e| serde_json::from_str(e).unwrap()).collect::<Vec<_>>());
    assert_eq!(live.finished, report.requests.len() as u64);
    assert_eq!(live.errors, report.requests.iter().filter(|r| r.error.is_some()).count() as u64);
}

#[tokio::test]
async fn a_perf_analyzer_export_becomes_a_finished_run() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    // A run of ours, written in perf_analyzer's format, then read back.
    let spec: SweepSpec = serde_json::from_value(spec_json(&dash.sim.target, "sim-vllm")).unwrap();
    let original = crate::support::sweep(spec).await;
    assert_eq!(original.status, RunStatus::Completed);
    let export = server::export::profile_export(&original).unwrap();
    let runs = format!("{}/api/runs", dash.base);
    let (status, body) = post(&format!("{runs}/import"), &export).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let summary: RunSummary = serde_json::from_value(get(&format!("{runs}/{id}")).await.1).unwrap();
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(summary.spec.prompt_lengths, original.spec.prompt_lengths);
    for (imported, measured) in summary.points.iter().zip(&original.points) {
        let (a, b) = (imported.ttft_ms.as_ref().unwrap(), measured.ttft_ms.as_ref().unwrap());
        assert!((a.mean - b.mean).abs() < 1e-9 && (a.p99 - b.p99).abs() < 1e-9, "{a:?} vs {b:?}");
        assert_eq!(imported.t2t_ms.as_ref().unwrap().count, measured.t2t_ms.as_ref().unwrap().count);
        assert_eq!(imported.count, measured.count);
    }
    // Its event log replays like a live run's.
    let events: Vec<RunEvent> =
        read_events(&dash.base, &id, usize::MAX).await.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let live = LiveRun::from_events(&events);
    assert_eq!(live.finished, summary.finished_requests);
    assert_eq!(live.points.iter().flatten().cloned().collect::<Vec<_>>(), summary.points);

    let (status, body) = post(&format!("{runs}/import"), &json!({ "points": [] })).await;
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("neither a \"spec\"") && error.contains("nor an \"experiments\" list"), "{body}");
}
