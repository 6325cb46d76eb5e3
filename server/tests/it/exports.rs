//! A finished run's exports from the dashboard's API (run.json, requests.csv, points.csv,
//! profile.json), checked against the API's own numbers and read again after a restart.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use server::sim::SimConfig;
use shared::goodput::Goodput;
use shared::spec::LoadLevel;
use shared::{PointStats, RunReport, Summary};

use crate::dashboard::{fast_sim, get, post, spec_json, wait_finished};
use crate::support::{start_dashboard, timing_lock};

const FILES: [&str; 4] = ["run.json", "requests.csv", "points.csv", "profile.json"];

/// An export as the API answered it.
#[derive(Debug, PartialEq)]
struct Download {
    status: u16,
    content_type: String,
    disposition: String,
    body: Vec<u8>,
}

impl Download {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| panic!("{err}: {}", self.text()))
    }
}

async fn download(base: &str, id: &str, file: &str) -> Download {
    let response = reqwest::get(format!("{base}/api/runs/{id}/export/{file}")).await.unwrap();
    let header = |name| response.headers().get(name).map_or(String::new(), |v| v.to_str().unwrap().to_string());
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    let status = response.status().as_u16();
    Download { status, content_type, disposition, body: response.bytes().await.unwrap().to_vec() }
}

async fn start_run(base: &str, spec: &Value) -> String {
    let (status, body) = post(&format!("{base}/api/runs"), spec).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// RFC 4180 text as rows of fields; every row must end in CRLF.
fn read_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field, mut quoted) = (Vec::new(), Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "rows end in CRLF");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted && field.is_empty() && row.is_empty(), "the text ends with a whole row");
    rows
}

/// A CSV's rows as maps from column name to field.
fn csv_records(text: &str) -> Vec<HashMap<String, String>> {
    let mut rows = read_csv(text).into_iter();
    let header = rows.next().expect("a header row");
    rows.map(|row| {
        assert_eq!(row.len(), header.len(), "{row:?}");
        header.iter().cloned().zip(row).collect()
    })
    .collect()
}

/// A row of points.csv read back as the `PointStats` it came from.
fn point_stats(row: &HashMap<String, String>) -> PointStats {
    let field = |name: &str| row.get(name).unwrap_or_else(|| panic!("no column {name}")).as_str();
    let float = |name: &str| field(name).parse::<f64>().unwrap_or_else(|err| panic!("{name}: {err}"));
    let summary = |metric: &str| {
        let count = field(&format!("{metric}_count"));
        (!count.is_empty()).then(|| {
            let f = |stat: &str| float(&format!("{metric}_{stat}"));
            let p999 = field(&format!("{metric}_p999"));
            Summary {
                count: count.parse().unwrap(),
                mean: f("mean"),
                min: f("min"),
                max: f("max"),
                std: f("std"),
                p50: f("p50"),
                p90: f("p90"),
                p95: f("p95"),
                p99: f("p99"),
                p999: (!p999.is_empty()).then(|| p999.parse().unwrap()),
            }
        })
    };
    PointStats {
        prompt_length: field("prompt_length").parse().unwrap(),
        count: field("count").parse().unwrap(),
        errors: field("errors").parse().unwrap(),
        ttft_ms: summary("ttft_ms"),
        t2t_ms: summary("t2t_ms"),
        tpot_ms: summary("tpot_ms"),
        e2e_ms: summary("e2e_ms"),
        output_tokens: summary("output_tokens"),
        input_tokens: summary("input_tokens"),
        prompt_lengths_sent: summary("prompt_lengths_sent"),
        requests_per_s: float("requests_per_s"),
        output_tokens_per_s: float("output_tokens_per_s"),
        load: Some(match (field("concurrency"), field("request_rate")) {
            (c, "") => LoadLevel::Concurrency(c.parse().unwrap()),
            ("", rate) => LoadLevel::Rate(rate.parse().unwrap()),
            both => panic!("a point has one load level, not {both:?}"),
        }),
        sent_per_s: float("sent_per_s"),
        schedule_lag_ms: summary("schedule_lag_ms"),
        ttft_intended_ms: summary("ttft_intended_ms"),
        e2e_intended_ms: summary("e2e_intended_ms"),
        goodput: (!field("goodput_met").is_empty()).then(|| Goodput {
            met: field("goodput_met").parse().unwrap(),
            measured: field("goodput_measured").parse().unwrap(),
            share: float("goodput_share"),
            requests_per_s: float("goodput_requests_per_s"),
        }),
        waited_for_cap: field("waited_for_cap").parse().unwrap(),
        server: (!field("server_requests").is_empty()).then(|| shared::server_stats::ServerPointStats {
            requests: field("server_requests").parse().unwrap(),
            failed: field("server_failed").parse().unwrap(),
            request_ms: float("server_request_ms"),
            queue_ms: float("server_queue_ms"),
            compute_input_ms: float("server_compute_input_ms"),
            compute_infer_ms: float("server_compute_infer_ms"),
            compute_output_ms: float("server_compute_output_ms"),
        }),
        server_missing: Some(field("server_missing").to_string()).filter(|s| !s.is_empty()),
    }
}

/// Per point, the mean of the TTFT column over the rows that enter the statistics.
fn ttft_means(requests: &[HashMap<String, String>], points: usize) -> Vec<Option<f64>> {
    (0..points)
        .map(|point| {
            let samples: Vec<f64> = requests
                .iter()
                .filter(|r| r["point"] == point.to_string() && r["counted"] == "true")
                .map(|r| r["ttft_ms"].parse::<f64>().unwrap())
                .collect();
            (!samples.is_empty()).then(|| samples.iter().sum::<f64>() / samples.len() as f64)
        })
        .collect()
}

#[tokio::test]
async fn exports_agree_with_the_api_and_survive_a_restart() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let id = start_run(&dash.base, &spec_json(&dash.sim.target, "sim-vllm")).await;
    let summary = wait_finished(&dash.base, &id).await;
    let (status, body) = get(&format!("{}/api/runs/{id}/report", dash.base)).await;
    assert_eq!(status, 200, "{body}");
    let report: RunReport = serde_json::from_value(body).unwrap();
    let mut before = Vec::new();
    for file in FILES {
        let export = download(&dash.base, &id, file).await;
        assert_eq!(export.status, 200, "{file}: {}", export.text());
        assert_eq!(export.disposition, format!("attachment; filename=\"tokenscope-{id}-{file}\""));
        let expected_type = if file.ends_with(".csv") { "text/csv; charset=utf-8" } else { "application/json" };
        assert!(export.content_type.starts_with(expected_type), "{file}: {}", export.content_type);
        before.push(export);
    }
    let [run_json, requests_csv, points_csv, profile_json] = &before[..] else { unreachable!() };

    // run.json is the report.
    assert_eq!(serde_json::from_value::<RunReport>(run_json.json()).unwrap(), report);

    // points.csv holds exactly the API's numbers, bit for bit.
    let points: Vec<PointStats> = csv_records(points_csv.text()).iter().map(point_stats).collect();
    assert_eq!(points.len(), 3);
    assert_eq!(points, summary.points);

    // requests.csv: a row per request, warm-up marked, in the report's order; its TTFT
    // column gives the API's means.
    let requests = csv_records(requests_csv.text());
    assert_eq!(requests.len(), report.requests.len());
    assert_eq!(requests.len(), 15);
    assert_eq!(requests.iter().filter(|r| r["warmup"] == "true").count(), 3);
    for (row, record) in requests.iter().zip(&report.requests) {
        assert_eq!((row["request_id"].as_str(), row["seq"].parse::<u32>().unwrap()), (record.id.as_str(), record.seq));
        assert_eq!(row["output_tokens"], record.output_tokens().to_string());
        assert_eq!(row["input_tokens"], record.num_input_tokens.map_or(String::new(), |n| n.to_string()));
        assert_eq!(row["send_unix_ns"], (report.started_unix_ns + record.send_ns as i64).to_string());
        assert_eq!(row["output_text"], record.text());
    }
    for (mean, point) in ttft_means(&requests, 3).iter().zip(&summary.points) {
        let (mean, expected) = (mean.unwrap(), point.ttft_ms.as_ref().unwrap().mean);
        assert!((mean - expected).abs() < 1e-9, "TTFT mean from the CSV {mean}, from the API {expected}");
    }

    // profile.json reads back, as `tokenscope import` reads it, to the same statistics; its
    // times are whole nanoseconds, as ours are.
    let imported = server::import::profile_to_report(&profile_json.json(), "profile.json").unwrap();
    assert_eq!(imported.points.len(), summary.points.len());
    for (back, ours) in imported.points.iter().zip(&summary.points) {
        assert_eq!((back.prompt_length, back.count), (ours.prompt_length, ours.count));
        for (metric, a, b) in [("TTFT", &back.ttft_ms, &ours.ttft_ms), ("T2T", &back.t2t_ms, &ours.t2t_ms)] {
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            assert_eq!(a.count, b.count, "{metric}");
            for (x, y) in [(a.mean, b.mean), (a.p50, b.p50), (a.p90, b.p90), (a.p99, b.p99)] {
                assert!((x - y).abs() < 1e-6, "{metric} at {}: imported {a:?}, ours {b:?}", ours.prompt_length);
            }
        }
    }

    // The same export, imported through the API, is a run without the server's counts.
    let (status, body) = post(&format!("{}/api/runs/import", dash.base), &profile_json.json()).await;
    assert_eq!(status, 201, "{body}");
    let imported_id = body["id"].as_str().unwrap().to_string();
    let imported_rows = csv_records(download(&dash.base, &imported_id, "requests.csv").await.text());
    assert_eq!(imported_rows.len(), 12, "warm-up requests are not in a profile export");
    assert!(imported_rows.iter().all(|r| r["input_tokens"].is_empty() && r["token_source"] == "responses"));
    assert!(imported_rows.iter().all(|r| r["warmup"] == "false" && r["counted"] == "true"));

    // After a restart the run is read from the store and exports byte for byte the same.
    let dash = dash.restart().await;
    for (file, earlier) in FILES.iter().zip(&before) {
        assert!(download(&dash.base, &id, file).await == *earlier, "{file} changed across a restart");
    }
}

#[tokio::test]
async fn failed_requests_export_their_errors_and_stay_out_of_the_statistics() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(SimConfig { fail_every: 4, ..fast_sim() }).await;
    let id = start_run(&dash.base, &spec_json(&dash.sim.target, "sim-vllm")).await;
    let summary = wait_finished(&dash.base, &id).await;
    assert!(summary.errors > 0, "{summary:?}");
    let (_, body) = get(&format!("{}/api/runs/{id}/report", dash.base)).await;
    let report: RunReport = serde_json::from_value(body).unwrap();

    let requests = csv_records(download(&dash.base, &id, "requests.csv").await.text());
    for (row, record) in requests.iter().zip(&report.requests) {
        assert_eq!(row["error"], record.error.clone().unwrap_or_default(), "the error, whole");
        if record.error.is_some() {
            assert_eq!(row["counted"], "false");
        }
    }
    let counted =
        |point: usize| requests.iter().filter(move |r| r["point"] == point.to_string() && r["counted"] == "true");
    for (i, (mean, point)) in ttft_means(&requests, 3).iter().zip(&summary.points).enumerate() {
        assert_eq!(counted(i).count() as u64, point.count - point.errors);
        let expected = point.ttft_ms.as_ref().map(|s| s.mean);
        assert!(
            mean.zip(expected).is_some_and(|(a, b)| (a - b).abs() < 1e-9) || (mean.is_none() && expected.is_none()),
            "TTFT mean from the CSV {mean:?}, from the API {expected:?}"
        );
    }
    let points: Vec<PointStats> =
        csv_records(download(&dash.base, &id, "points.csv").await.text()).iter().map(point_stats).collect();
    assert_eq!(points, summary.points);
    assert_eq!(
        points.iter().map(|p| p.errors).sum::<u64>(),
        report.requests.iter().filter(|r| !r.warmup && r.error.is_some()).count() as u64
    );
}

#[tokio::test]
async fn exports_wait_for_the_run_and_unknown_ones_are_named() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let (status, body) = get(&format!("{}/api/runs/no-such-run/export/run.json", dash.base)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no-such-run"), "{body}");
    assert!(body["hint"].as_str().unwrap().contains("GET /api/runs"), "{body}");

    let mut spec = spec_json(&dash.sim.target, "sim-vllm");
    spec["requests"] = json!(1000);
    spec["max_tokens"] = json!(32);
    let id = start_run(&dash.base, &spec).await;
    for file in FILES {
        let (status, body) = get(&format!("{}/api/runs/{id}/export/{file}", dash.base)).await;
        assert_eq!(status, 409, "{file}: {body}");
        assert_eq!(body["error"], format!("run {id} is still in progress"));
        assert!(body["hint"].as_str().unwrap().contains(&format!("POST /api/runs/{id}/cancel")), "{body}");
    }
    let (status, body) = get(&format!("{}/api/runs/{id}/export/run.xml", dash.base)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["hint"].as_str().unwrap().contains("requests.csv, points.csv"), "{body}");

    // A cancelled run exports what it measured.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = post(&format!("{}/api/runs/{id}/cancel", dash.base), &json!({})).await;
    assert_eq!(status, 202, "{body}");
    let summary = wait_finished(&dash.base, &id).await;
    let requests = download(&dash.base, &id, "requests.csv").await;
    assert_eq!(requests.status, 200, "{}", requests.text());
    assert_eq!(csv_records(requests.text()).len() as u64, summary.finished_requests);
    let points: Vec<PointStats> =
        csv_records(download(&dash.base, &id, "points.csv").await.text()).iter().map(point_stats).collect();
    assert_eq!(points, summary.points);
}

/// `tokenscope sweep` and `tokenscope import` write the same CSV files the API serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_writes_the_same_csv() {
    use server::export::csv::{points_csv, requests_csv};
    let _serial = timing_lock().await;
    let sim = crate::support::start_sim(fast_sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let target = sim.target.clone();
    let (out, requests, points) = (path("run.json"), path("requests.csv"), path("points.csv"));
    let args = (out.clone(), requests.clone(), points.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tokenscope"))
            .args(["sweep", "--target", &target, "--model", "sim-vllm", "--prompt-lengths", "8,32"])
            .args(["--max-tokens", "4", "--requests", "3", "--warmup", "1", "--out"])
            .arg(&args.0)
            .arg("--requests-csv")
            .arg(&args.1)
            .arg("--points-csv")
            .arg(&args.2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("wrote {} (one CSV row per request)", requests.display())), "{stderr}");
    let report: RunReport = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(std::fs::read_to_string(&requests).unwrap(), requests_csv(&report));
    assert_eq!(std::fs::read_to_string(&points).unwrap(), points_csv(&report));
    assert_eq!(csv_records(&std::fs::read_to_string(&requests).unwrap()).len(), 8);

    // perf_analyzer's own export, as `tokenscope import` reads it.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pa-sim-vllm.json");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tokenscope"))
        .args(["import", fixture, "--requests-csv"])
        .arg(&requests)
        .arg("--points-csv")
        .arg(&points)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let export: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let imported = server::import::profile_to_report(&export, fixture).unwrap();
    assert_eq!(std::fs::read_to_string(&requests).unwrap(), requests_csv(&imported));
    let rows: Vec<PointStats> =
        csv_records(&std::fs::read_to_string(&points).unwrap()).iter().map(point_stats).collect();
    assert_eq!(rows, imported.points);
}
