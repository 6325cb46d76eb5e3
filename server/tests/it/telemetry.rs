//! The server's own metrics over a run: read from the simulator's endpoint with its known
//! counts and queue, and from endpoints that are down, slow, answer garbage or too much,
//! which leave the run complete with a gap and a reason.

use std::process::Command;
use std::time::Duration;

use axum::routing::get;
use serde_json::Value;
use server::sim::{self, SimConfig};
use shared::telemetry::{Telemetry, WindowSummary};
use shared::{RunReport, RunStatus, SweepSpec};

use crate::support::{SimServer, spec, sweep, timing_lock};

/// A simulator serving its metrics, and their address.
async fn sim_with_metrics(config: SimConfig) -> (SimServer, String) {
    let (addr, metrics, stop) = sim::spawn_with_metrics(config).await.expect("the simulator starts");
    (SimServer::from_parts(format!("http://{addr}"), stop), format!("http://{metrics}/metrics"))
}

/// A run on `sim` that reads metrics at `url` every 50 ms.
fn reading(sim: &SimServer, url: &str) -> SweepSpec {
    SweepSpec {
        metrics_url: Some(url.into()),
        metrics_interval_ms: Some(50),
        no_metrics: false,
        ..spec(&sim.target, "sim-vllm")
    }
}

/// The values a series had at each successful scrape.
fn values(telemetry: &Telemetry, name: &str, model: Option<&str>) -> Vec<f64> {
    let series = telemetry
        .series
        .iter()
        .position(|s| s.head.name == name && model.is_none_or(|m| s.head.label("model") == Some(m)))
        .unwrap_or_else(|| panic!("no series {name} in {}", telemetry.describe()));
    telemetry.samples(series as u32).into_iter().filter_map(|(_, v)| v).collect()
}

#[tokio::test]
async fn a_run_reads_the_simulators_metrics_and_they_count_what_it_sent() {
    let _serial = timing_lock().await;
    let config = SimConfig { prefill_base_ms: 5.0, decode_ms: 5.0, max_sequences: 1, ..SimConfig::default() };
    let (sim, url) = sim_with_metrics(config).await;
    // One request at a time never waits; four at a time for one slot, three wait.
    let run = sweep(SweepSpec {
        prompt_lengths: vec![16],
        concurrencies: vec![1, 4],
        max_tokens: 10,
        requests: 12,
        warmup: 1,
        ..reading(&sim, &url)
    })
    .await;
    assert_eq!(run.status, RunStatus::Completed);
    let telemetry = run.telemetry.as_ref().expect("the run read the simulator's metrics");
    assert_eq!(telemetry.failures(), 0, "{}", telemetry.describe());
    assert!(telemetry.scrapes.len() >= 10, "{}", telemetry.describe());
    // Scrapes are dated on the run's clock, in order, each within the run.
    let end_us = run.requests.iter().map(|r| r.end_ns()).max().unwrap() / 1000;
    assert!(telemetry.scrapes.windows(2).all(|w| w[0].at_us <= w[1].at_us));
    assert!(telemetry.scrapes.last().unwrap().at_us >= end_us, "the last scrape follows the last request");
    let success = values(telemetry, "nv_inference_request_success", Some("sim-vllm"));
    assert_eq!(
        success.last().unwrap() - success.first().unwrap(),
        run.requests.len() as f64,
        "from before the first request to after the last, the server counted each one"
    );
    let windows: Vec<WindowSummary> = run.telemetry_by_point().into_iter().map(|w| w.expect("a window")).collect();
    let (alone, crowded) = (windows[0], windows[1]);
    assert_eq!(alone.queue_depth, Some(0.0), "at concurrency 1 nothing waits: {alone:?}");
    let depth = crowded.queue_depth.unwrap();
    assert!(depth > 1.0 && depth <= 3.0, "three of four wait for the one slot: {crowded:?}");
    assert!(crowded.gpu_simulated && crowded.gpu_utilization.unwrap() > 0.8, "{crowded:?}");
    // The counter's rate is requests per second: one slot, 5 + 9 × 5 ms a request, so at most
    // 20 a second. Taken over every scrape that saw requests end (from the one before the
    // first) rather than the busiest 50 ms, where one late scrape would double it.
    let number = telemetry.series.iter().position(|s| s.head.name == "nv_inference_request_success").unwrap();
    let samples: Vec<(u64, f64)> =
        telemetry.samples(number as u32).into_iter().filter_map(|(at, v)| Some((at, v?))).collect();
    let changed: Vec<usize> = (1..samples.len()).filter(|&i| samples[i].1 > samples[i - 1].1).collect();
    let (from, to) = (changed[0] - 1, changed[changed.len() - 1]);
    let ended = samples[to].1 - samples[from].1;
    let span_s = (samples[to].0 - samples[from].0) as f64 / 1e6;
    let rate = ended / span_s;
    eprintln!("telemetry: {ended} requests ended in {span_s:.3} s by the server's counter, {rate:.1} a second");
    // The slot ends one request every 50 ms at most: the first and the last end (ended - 1)
    // × 50 ms apart or more.
    let most = ended / ((ended - 1.0) * 0.050);
    assert!(rate > 10.0 && rate <= most * 1.001, "{ended} requests ended in {span_s:.3} s: {rate:.1} a second");
}

/// What a misbehaving metrics endpoint does.
#[derive(Clone, Copy)]
enum Fault {
    Slow,
    Garbage,
    Huge,
    HugeUndeclared,
}

/// Serves one fault at `/metrics`.
async fn faulty(fault: Fault) -> (String, tokio_util::sync::CancellationToken) {
    let handler = move || async move {
        match fault {
            Fault::Slow => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                axum::response::Response::new(axum::body::Body::from("late 1\n"))
            }
            Fault::Garbage => axum::response::Response::new(axum::body::Body::from(
                "<html><body>Service Unavailable \u{0}\u{1}</body></html>",
            )),
            Fault::Huge => axum::response::Response::new(axum::body::Body::from("a 1\n".repeat(10 << 18))),
            Fault::HugeUndeclared => {
                let chunks = (0..160).map(|_| Ok::<_, std::io::Error>("b 2\n".repeat(1 << 14)));
                axum::response::Response::new(axum::body::Body::from_stream(futures::stream::iter(chunks)))
            }
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let app = axum::Router::new().route("/metrics", get(handler));
    tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned()).await.unwrap();
    });
    (url, stop)
}

#[tokio::test]
async fn metrics_that_are_down_slow_garbage_or_too_large_leave_the_run_complete_with_gaps_and_reasons() {
    let _serial = timing_lock().await;
    let (sim, _) = sim_with_metrics(SimConfig { prefill_base_ms: 2.0, decode_ms: 2.0, ..SimConfig::default() }).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/metrics", listener.local_addr().unwrap())
    };
    let mut servers = Vec::new();
    let mut cases = vec![(closed, "cannot connect to")];
    for (fault, reason) in [
        (Fault::Slow, "no answer within 1000 ms"),
        (Fault::Garbage, "not Prometheus metrics"),
        (Fault::Huge, "is over 4 MiB"),
        (Fault::HugeUndeclared, "is over 4 MiB"),
    ] {
        let (url, stop) = faulty(fault).await;
        servers.push(stop.drop_guard());
        cases.push((url, reason));
    }
    for (url, reason) in cases {
        let started = std::time::Instant::now();
        let spec = SweepSpec { metrics_interval_ms: Some(250), ..reading(&sim, &url) };
        let run: RunReport = sweep(SweepSpec { max_tokens: 8, requests: 20, ..spec }).await;
        assert_eq!(run.status, RunStatus::Completed, "{url}");
        assert!(run.requests.iter().all(|r| r.error.is_none()), "{url}");
        assert_eq!(run.points[0].count, 20, "{url}");
        let telemetry = run.telemetry.as_ref().expect("the run says what its scrapes did");
        assert!(!telemetry.scrapes.is_empty());
        assert_eq!(telemetry.failures(), telemetry.scrapes.len(), "every scrape is a gap: {}", telemetry.describe());
        assert!(telemetry.series.is_empty(), "a failed scrape is never a value");
        let described = telemetry.describe();
        assert!(described.contains(reason) && described.contains("show as gaps"), "{described}");
        // A slow endpoint holds the run's end back by one scrape's timeout at most.
        assert!(started.elapsed() < Duration::from_secs(8), "{url}: {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn the_command_line_prints_and_writes_the_servers_metrics() {
    let _serial = timing_lock().await;
    let config = SimConfig { prefill_base_ms: 5.0, decode_ms: 5.0, max_sequences: 1, ..SimConfig::default() };
    let (sim, url) = sim_with_metrics(config).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, points, metrics) = (dir.path().join("run.json"), dir.path().join("p.csv"), dir.path().join("m.csv"));
    let target = sim.target.clone();
    let (out_arg, points_arg, metrics_arg) = (out.clone(), points.clone(), metrics.clone());
    let url_arg = url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tokenscope"))
            .args(["sweep", "--target", &target, "--model", "sim-vllm", "--prompt-lengths", "16"])
            .args(["--max-tokens", "6", "--requests", "8", "--concurrency", "3"])
            .args(["--metrics-url", &url_arg, "--metrics-interval-ms", "50", "--out"])
            .arg(&out_arg)
            .arg("--points-csv")
            .arg(&points_arg)
            .arg("--metrics-csv")
            .arg(&metrics_arg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("gpu util") && stdout.contains("queue"), "{stdout}");
    assert!(stdout.contains("the simulator's GPU utilisation is its busy time"), "{stdout}");
    assert!(stderr.contains("server metrics: ") && stderr.contains(&url), "{stderr}");
    let run: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(!run["telemetry"]["scrapes"].as_array().unwrap().is_empty());
    let points = std::fs::read_to_string(&points).unwrap();
    let (header, row) = (points.lines().next().unwrap(), points.lines().nth(1).unwrap());
    let column = header.split(',').position(|c| c == "metrics_queue_depth").expect("a queue depth column");
    let depth: f64 = row.split(',').nth(column).unwrap().parse().unwrap();
    assert!(depth > 0.5, "two of three wait for the one slot: {depth}");
    let metrics = std::fs::read_to_string(&metrics).unwrap();
    assert!(metrics.starts_with("at_ms,series,family,kind,value,error\r\n"), "{}", &metrics[..200]);
    assert!(
        metrics
            .lines()
            .any(|l| l.contains(",\"nv_inference_request_success{model=\"\"sim-vllm\"\",version=\"\"1\"\"}\",")),
        "{}",
        &metrics[..2000.min(metrics.len())]
    );

    // Turned off, nothing is read and nothing is said.
    let target = sim.target.clone();
    let out_arg = dir.path().join("off.json");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tokenscope"))
            .args(["sweep", "--target", &target, "--model", "sim-vllm", "--prompt-lengths", "16"])
            .args(["--max-tokens", "2", "--requests", "2", "--no-metrics", "--out"])
            .arg(&out_arg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("server metrics"));
}

#[tokio::test]
async fn the_dashboard_streams_stores_exports_and_checks_the_servers_metrics() {
    use server::dashboard::access::{Access, TargetPattern};
    use shared::LiveRun;
    use shared::api::MetricsCheck;

    use crate::dashboard::{fast_sim, get, post, spec_json, wait_finished};
    use crate::support::start_dashboard_with_access;

    let _serial = timing_lock().await;
    let dash = start_dashboard_with_access(fast_sim(), |sim| Access {
        targets: vec![TargetPattern::parse(sim).unwrap()],
        ..Access::open()
    })
    .await;
    let sim_metrics = dash.sim.metrics.clone().expect("the built-in simulator serves metrics");
    // The form's check: the built-in simulator's own address, answering with Triton's families.
    let (status, body) = get(&format!("{}/api/targets/metrics", dash.base)).await;
    assert_eq!(status, 200, "{body}");
    let check: MetricsCheck = serde_json::from_value(body).unwrap();
    assert_eq!(check.url, sim_metrics);
    assert!(check.answers && check.families.iter().any(|f| f == "nv_inference_pending_request_count"), "{check:?}");
    // Another address is refused unless allowed, as targets are.
    let (status, body) = get(&format!("{}/api/targets/metrics?url=http://10.9.9.9:8002/metrics", dash.base)).await;
    assert_eq!(status, 403, "{body}");
    let mut elsewhere = spec_json(&dash.sim.target, "sim-vllm");
    elsewhere["metrics_url"] = "http://10.9.9.9:8002/metrics".into();
    let (status, body) = post(&format!("{}/api/runs", dash.base), &elsewhere).await;
    assert_eq!(status, 403, "{body}");

    let (status, body) = post(&format!("{}/api/runs", dash.base), &spec_json(&dash.sim.target, "sim-vllm")).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    wait_finished(&dash.base, &id).await;
    let events = crate::dashboard::read_events(&dash.base, &id, usize::MAX).await;
    let events: Vec<shared::RunEvent> = events.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(events.iter().any(|e| matches!(e, shared::RunEvent::Telemetry(_))), "scrapes reach the page live");
    let live = LiveRun::from_events(&events);
    let telemetry = live.telemetry.clone().expect("the page rebuilds the metrics");
    assert_eq!(live.spec.metrics_url.as_deref(), Some(sim_metrics.as_str()), "the run records where it read them");
    assert_eq!(telemetry.failures(), 0, "{}", telemetry.describe());

    // Stored with the run, they survive a restart, and the export lists them.
    let report = |base: String| {
        let id = id.clone();
        async move {
            let response = reqwest::get(format!("{base}/api/runs/{id}/export/run.json")).await.unwrap();
            serde_json::from_slice::<RunReport>(&response.bytes().await.unwrap()).unwrap()
        }
    };
    let before = report(dash.base.clone()).await;
    assert_eq!(before.telemetry.as_ref(), Some(&telemetry));
    let dash = dash.restart().await;
    assert_eq!(report(dash.base.clone()).await.telemetry, before.telemetry);
    let csv = reqwest::get(format!("{}/api/runs/{id}/export/metrics.csv", dash.base)).await.unwrap();
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    assert!(csv.lines().count() > telemetry.scrapes.len(), "a row per series per scrape");
    assert!(csv.contains("nv_inference_pending_request_count"));
}
