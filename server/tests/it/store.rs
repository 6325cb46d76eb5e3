//! Runs kept across restarts: a dashboard restarted on the same data folder, the real binary
//! killed in the middle of a run, and the API that names, tags, filters and deletes runs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use shared::api::RunSummary;
use shared::{LiveRun, RunEvent, RunReport, RunStatus};

use crate::dashboard::{fast_sim, get, post, read_events, spec_json, wait_finished};
use crate::support::{start_dashboard, timing_lock};

async fn report(base: &str, id: &str) -> RunReport {
    let response = reqwest::get(format!("{base}/api/runs/{id}/report")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

async fn live(base: &str, id: &str) -> LiveRun {
    let events: Vec<RunEvent> =
        read_events(base, id, usize::MAX).await.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(matches!(events.last(), Some(RunEvent::Finished { .. })), "the log ends with the run's end");
    LiveRun::from_events(&events)
}

async fn send(method: reqwest::Method, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

async fn patch(url: &str, body: &Value) -> (u16, Value) {
    send(reqwest::Method::PATCH, url, Some(body)).await
}

async fn delete(url: &str) -> (u16, Value) {
    send(reqwest::Method::DELETE, url, None).await
}

async fn start_run(base: &str, spec: &Value) -> String {
    let (status, body) = post(&format!("{base}/api/runs"), spec).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_run_survives_a_restart_with_identical_statistics_and_records() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let id = start_run(&dash.base, &spec_json(&dash.sim.target, "sim-vllm")).await;
    assert_eq!(wait_finished(&dash.base, &id).await.not_saved, None);
    let (status, body) = patch(
        &format!("{}/api/runs/{id}", dash.base),
        &json!({ "name": "  baseline  ", "notes": "first try", "tags": ["a", " b ", "a"] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let before: RunSummary = serde_json::from_value(body).unwrap();
    assert_eq!((before.name.as_str(), before.tags.clone()), ("baseline", vec!["a".to_string(), "b".into()]));
    let before_report = report(&dash.base, &id).await;
    let before_live = live(&dash.base, &id).await;

    let dash = dash.restart().await;
    let (status, list) = get(&format!("{}/api/runs", dash.base)).await;
    assert_eq!(status, 200);
    let after: Vec<RunSummary> = serde_json::from_value(list).unwrap();
    assert_eq!(after, vec![before.clone()], "the same run, with the same id, statistics and words");
    assert_eq!(report(&dash.base, &id).await, before_report, "every record comes back identical");
    let after_live = live(&dash.base, &id).await;
    assert_eq!(after_live.points, before_live.points);
    assert_eq!(after_live.requests, before_live.requests, "each request's sends, tokens and metrics");
    assert_eq!((after_live.finished, after_live.errors), (before_live.finished, before_live.errors));
    assert_eq!(after_live.status, Some(RunStatus::Completed));

    // A new run gets a new id and lists first.
    let second = start_run(&dash.base, &spec_json(&dash.sim.target, "sim-tutorial")).await;
    assert_ne!(second, id);
    wait_finished(&dash.base, &second).await;
    let (_, list) = get(&format!("{}/api/runs", dash.base)).await;
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![second.as_str(), id.as_str()]);
}

#[tokio::test]
async fn runs_are_named_tagged_filtered_and_deleted() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let runs = format!("{}/api/runs", dash.base);
    let vllm = start_run(&dash.base, &spec_json(&dash.sim.target, "sim-vllm")).await;
    wait_finished(&dash.base, &vllm).await;
    let tutorial = start_run(&dash.base, &spec_json(&dash.sim.target, "sim-tutorial")).await;
    wait_finished(&dash.base, &tutorial).await;
    let (status, body) = patch(&format!("{runs}/{tutorial}"), &json!({ "tags": ["nightly"] })).await;
    assert_eq!(status, 200, "{body}");

    let ids = |list: Value| -> Vec<String> {
        list.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(get(&format!("{runs}?model=sim-vllm")).await.1), vec![vllm.clone()]);
    assert_eq!(ids(get(&format!("{runs}?tag=nightly")).await.1), vec![tutorial.clone()]);
    assert_eq!(ids(get(&format!("{runs}?tag=night")).await.1), Vec::<String>::new(), "tags match exactly");
    let target = dash.sim.target.trim_start_matches("http://").to_string();
    assert_eq!(ids(get(&format!("{runs}?target={target}&model=")).await.1), vec![tutorial.clone(), vllm.clone()]);
    assert!(ids(get(&format!("{runs}?target=http://127.0.0.1:1")).await.1).is_empty());

    // Absent fields stay as they are.
    let (status, body) = patch(&format!("{runs}/{tutorial}"), &json!({ "name": "t" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["name"].as_str(), body["tags"].clone()), (Some("t"), json!(["nightly"])));

    // Bad edits are refused with the reason and what fits; nothing changes.
    let url = format!("{runs}/{tutorial}");
    let long = |n: usize| "x".repeat(n);
    let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    for (edit, needle) in [
        (json!({ "name": long(201) }), "201 characters"),
        (json!({ "notes": long(10_001) }), "10001 characters"),
        (json!({ "tags": ["ok", "  "] }), "a tag is empty"),
        (json!({ "tags": [long(41)] }), "longer than 40"),
        (json!({ "tags": many }), "at most 20"),
        (json!({ "title": "x" }), "unknown field \"title\""),
        (json!({ "tags": "one" }), "could not be read"),
    ] {
        let (status, body) = patch(&url, &edit).await;
        assert_eq!(status, 422, "{edit}: {body}");
        assert!(body["error"].as_str().unwrap().contains(needle), "{edit}: {body}");
        assert!(body["hint"].as_str().is_some(), "{body}");
    }
    let exactly: Vec<String> = (0..20).map(|i| format!("{i:0>40}")).collect();
    let (status, body) = patch(&url, &json!({ "name": long(200), "notes": long(10_000), "tags": exactly })).await;
    assert_eq!(status, 200, "the limits themselves fit: {body}");
    let (status, body) = patch(&format!("{runs}/nope"), &json!({ "name": "x" })).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["hint"].as_str().unwrap().contains("GET /api/runs"), "{body}");

    // A running run cannot be deleted; once cancelled, it can.
    let mut slow = spec_json(&dash.sim.target, "sim-vllm");
    slow["requests"] = json!(1000);
    let running = start_run(&dash.base, &slow).await;
    let (status, body) = delete(&format!("{runs}/{running}")).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["hint"].as_str().unwrap().contains("cancel"), "{body}");
    let (status, body) = post(&format!("{runs}/{running}/cancel"), &json!({})).await;
    assert_eq!(status, 202, "{body}");
    wait_finished(&dash.base, &running).await;
    for id in [&running, &vllm] {
        let (status, body) = delete(&format!("{runs}/{id}")).await;
        assert_eq!((status, body), (204, Value::Null));
        let (status, _) = get(&format!("{runs}/{id}")).await;
        assert_eq!(status, 404);
    }
    let (status, _) = delete(&format!("{runs}/{vllm}")).await;
    assert_eq!(status, 404);

    // Edits and deletions are kept.
    let dash = dash.restart().await;
    let (_, list) = get(&format!("{}/api/runs", dash.base)).await;
    assert_eq!(ids(list.clone()), vec![tutorial.clone()]);
    assert_eq!(list[0]["name"].as_str().map(str::len), Some(200));
    assert_eq!(list[0]["tags"].as_array().map(Vec::len), Some(20));
}

#[tokio::test]
async fn an_imported_run_is_kept() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let spec = serde_json::from_value(spec_json(&dash.sim.target, "sim-vllm")).unwrap();
    let original = crate::support::sweep(spec).await;
    let export = server::export::profile_export(&original).unwrap();
    let (status, body) = post(&format!("{}/api/runs/import", dash.base), &export).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let (_, summary) = get(&format!("{}/api/runs/{id}", dash.base)).await;
    let imported = report(&dash.base, &id).await;

    let dash = dash.restart().await;
    let (status, after) = get(&format!("{}/api/runs/{id}", dash.base)).await;
    assert_eq!((status, after), (200, summary));
    assert_eq!(report(&dash.base, &id).await, imported);
}

#[tokio::test]
async fn a_run_json_opens_as_the_same_run_and_large_files_are_taken() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let id = start_run(&dash.base, &spec_json(&dash.sim.target, "sim-vllm")).await;
    wait_finished(&dash.base, &id).await;
    let file = reqwest::get(format!("{}/api/runs/{id}/export/run.json", dash.base)).await.unwrap();
    let file: Value = file.json().await.unwrap();
    let (status, body) = post(&format!("{}/api/runs/import", dash.base), &file).await;
    assert_eq!(status, 201, "{body}");
    let copy = body["id"].as_str().unwrap();
    assert_ne!(copy, id);
    assert_eq!(report(&dash.base, copy).await, report(&dash.base, &id).await);

    // A profile export of 1,000 requests of 64 tokens: over 2 MB, the usual body limit.
    let big = crate::support::large_report(1000, 64);
    let export = server::export::profile_export(&big).unwrap();
    assert!(serde_json::to_vec(&export).unwrap().len() > 2 << 20);
    let (status, body) = post(&format!("{}/api/runs/import", dash.base), &export).await;
    assert_eq!(status, 201, "{body}");
    let imported = report(&dash.base, body["id"].as_str().unwrap()).await;
    assert_eq!(imported.requests.len(), 1000);
    assert_eq!(imported.points[0].ttft_ms, big.points[0].ttft_ms);
}

/// The real binary, serving the dashboard with its built-in simulator on a free port.
struct Process {
    child: Child,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tokenscope dashboard` on `data_dir` and waits until it says where it listens.
async fn spawn_dashboard(data_dir: &std::path::Path) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenscope"))
        .args(["dashboard", "--listen", "127.0.0.1:0", "--prefill-base-ms", "2", "--decode-ms", "5"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let expected = data_dir.to_path_buf();
    let base = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut base = None;
        for line in lines.by_ref() {
            let line = line.expect("stdout reads");
            if let Some(url) = line.strip_prefix("tokenscope dashboard: ") {
                base = Some(url.trim_end_matches('/').to_string());
            }
            if line.starts_with("runs are stored in ") {
                assert!(line.contains(&*expected.to_string_lossy()), "{line}");
                break;
            }
        }
        // Keep reading so the process never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        base.expect("the dashboard prints its address")
    });
    let base = tokio::time::timeout(Duration::from_secs(30), base).await.expect("the dashboard starts").unwrap();
    Process { child, base }
}

#[tokio::test]
async fn a_killed_dashboard_keeps_its_run_as_interrupted() {
    let _serial = timing_lock().await;
    let data = tempfile::tempdir().unwrap();
    let first = spawn_dashboard(data.path()).await;
    let (status, info) = get(&format!("{}/api/info", first.base)).await;
    assert_eq!(status, 200, "{info}");
    let target = info["default_target"].as_str().unwrap();
    let mut spec = spec_json(target, "sim-vllm");
    spec["requests"] = json!(20);
    spec["concurrency"] = json!(1);
    let id = start_run(&first.base, &spec).await;

    // Kill it once a point has settled and a few requests of the next have finished.
    let mut seen = None;
    for _ in 0..1000 {
        let (_, body) = get(&format!("{}/api/runs/{id}", first.base)).await;
        let summary: RunSummary = serde_json::from_value(body).unwrap();
        assert_eq!(summary.status, RunStatus::Running, "the run must still be going when it is killed");
        if !summary.points.is_empty() && summary.finished_requests >= 24 {
            seen = Some(summary);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = seen.expect("the run got far enough");
    let mut first = first;
    first.child.kill().expect("SIGKILL");
    first.child.wait().unwrap();

    let second = spawn_dashboard(data.path()).await;
    let (status, body) = get(&format!("{}/api/runs/{id}", second.base)).await;
    assert_eq!(status, 200, "{body}");
    let kept: RunSummary = serde_json::from_value(body).unwrap();
    assert_eq!(kept.status, RunStatus::Interrupted);
    assert!(
        kept.finished_requests >= seen.finished_requests,
        "{} < {}",
        kept.finished_requests,
        seen.finished_requests
    );
    assert!(kept.finished_requests < kept.total_requests);
    assert_eq!(kept.points[..seen.points.len()], seen.points[..], "settled points are kept as they were");
    assert_eq!((kept.spec.clone(), kept.model.clone()), (seen.spec.clone(), seen.model.clone()));

    let report = report(&second.base, &id).await;
    assert_eq!(report.status, RunStatus::Interrupted);
    assert_eq!(report.requests.len() as u64, kept.finished_requests);
    assert!(report.requests.iter().all(|r| r.final_ns.is_some() && r.error.is_none()), "whole requests only");
    let measured = report.requests.iter().map(|r| r.point as usize + 1).max().unwrap();
    assert_eq!(report.points.len(), measured, "the point cut short has the statistics of what finished");
    assert_eq!(kept.points, report.points);
    assert!(!report.prompt_lengths_approximate, "the simulator counted the prompts");
    let live = live(&second.base, &id).await;
    assert_eq!(live.status, Some(RunStatus::Interrupted));
    assert_eq!(live.finished, kept.finished_requests);

    // Interrupted runs can be deleted, and a new run starts.
    let (status, _) = delete(&format!("{}/api/runs/{id}", second.base)).await;
    assert_eq!(status, 204);
    let mut quick = spec_json(target, "sim-vllm");
    quick["target"] = json!("");
    let again = start_run(&second.base, &quick).await;
    assert_eq!(wait_finished(&second.base, &again).await.status, RunStatus::Completed);
}

/// Sends `signal` (TERM, INT) to a process, as a service manager or a terminal would.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}

/// Waits up to `limit` for a process to exit; its status.
pub async fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < limit, "the process did not exit within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_stopped_dashboard_keeps_its_run_as_cancelled() {
    let _serial = timing_lock().await;
    let data = tempfile::tempdir().unwrap();
    for signal in ["TERM", "INT"] {
        let mut first = spawn_dashboard(data.path()).await;
        let target = get(&format!("{}/api/info", first.base)).await.1["default_target"].as_str().unwrap().to_string();
        let mut spec = spec_json(&target, "sim-vllm");
        spec["requests"] = json!(200);
        spec["concurrency"] = json!(1);
        let id = start_run(&first.base, &spec).await;
        let mut seen = None;
        for _ in 0..1000 {
            let summary: RunSummary =
                serde_json::from_value(get(&format!("{}/api/runs/{id}", first.base)).await.1).unwrap();
            assert_eq!(summary.status, RunStatus::Running, "the run must still be going when the signal comes");
            if summary.finished_requests >= 10 {
                seen = Some(summary);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seen = seen.expect("the run got far enough");
        send_signal(first.child.id(), signal);
        let status = wait_exit(&mut first.child, Duration::from_secs(20)).await;
        assert_eq!(status.code(), Some(0), "SIG{signal}: {status}");
        drop(first);

        let second = spawn_dashboard(data.path()).await;
        let (status, body) = get(&format!("{}/api/runs/{id}", second.base)).await;
        assert_eq!(status, 200, "{body}");
        let kept: RunSummary = serde_json::from_value(body).unwrap();
        assert_eq!(kept.status, RunStatus::Cancelled, "SIG{signal}");
        assert!(kept.finished_requests >= seen.finished_requests && kept.finished_requests < kept.total_requests);
        let report = report(&second.base, &id).await;
        assert_eq!(report.status, RunStatus::Cancelled);
        assert_eq!(report.requests.len() as u64, kept.finished_requests, "every finished request is kept");
        assert_eq!(report.points.len(), 1, "the point cut short has the statistics of what finished");
    }
}

#[tokio::test]
async fn a_failing_store_costs_no_result() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    // A closed store fails every write, as a full disk would.
    dash.state.runs().store().close().await;
    let id = start_run(&dash.base, &spec_json(&dash.sim.target, "sim-vllm")).await;
    let summary = wait_finished(&dash.base, &id).await;
    assert_eq!((summary.status, summary.finished_requests), (RunStatus::Completed, 15));
    let why = summary.not_saved.expect("the run says it is not saved");
    assert!(why.contains("closed"), "{why}");
    assert_no_path(&why, dash.data.path());
    // Viewers hear it just before the end.
    let events: Vec<RunEvent> =
        read_events(&dash.base, &id, usize::MAX).await.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(matches!(&events[events.len() - 2], RunEvent::NotSaved { error } if *error == why), "{events:?}");
    assert_eq!(LiveRun::from_events(&events).not_saved.as_deref(), Some(why.as_str()));
    assert_eq!(report(&dash.base, &id).await.requests.len(), 15, "the run is whole in memory");
    // Its exports are all there is of it, and they can be had.
    let profile = reqwest::get(format!("{}/api/runs/{id}/export/profile.json", dash.base)).await.unwrap();
    assert_eq!(profile.status(), 200);
    let profile = profile.text().await.unwrap();

    // An import the store cannot take is refused, and not listed as if it were kept.
    let response = reqwest::Client::new()
        .post(format!("{}/api/runs/import", dash.base))
        .header("content-type", "application/json")
        .body(profile)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("storing the imported run"), "{body}");
    assert_no_path(&body.to_string(), dash.data.path());
    let (_, listed) = get(&format!("{}/api/runs", dash.base)).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // A run the store does not have keeps its records in memory, whatever comes after it.
    assert!(dash.state.runs().get(&id).unwrap().report().is_some());

    let (status, body) = patch(&format!("{}/api/runs/{id}", dash.base), &json!({ "name": "x" })).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("closed"), "{body}");
    assert!(body["hint"].as_str().unwrap().contains("data folder"), "{body}");
    assert_no_path(&body.to_string(), dash.data.path());
    let (status, body) = delete(&format!("{}/api/runs/{id}", dash.base)).await;
    assert_eq!(status, 503, "{body}");
    assert_no_path(&body.to_string(), dash.data.path());
    let (_, after) = get(&format!("{}/api/runs/{id}", dash.base)).await;
    assert_eq!(after["name"], "", "an edit that was not saved is not shown");
}

/// Clients are never told where the dashboard keeps its runs: no folder of the data folder's
/// path, nor the store's file name, is in `text`.
#[track_caller]
fn assert_no_path(text: &str, data: &std::path::Path) {
    let store = data.join(server::store::FILE_NAME);
    for part in store.iter().map(|p| p.to_string_lossy()).filter(|p| p.len() > 1) {
        assert!(!text.contains(&*part), "{part:?} of {} is in {text}", store.display());
    }
}

#[test]
fn a_data_folder_that_cannot_be_used_is_named() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tokenscope"))
        .args(["dashboard", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&*file.to_string_lossy()) && stderr.contains("--data-dir"), "{stderr}");

    // A file that is not a database is named too.
    std::fs::write(data.path().join(server::store::FILE_NAME), vec![7u8; 8192]).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tokenscope"))
        .args(["dashboard", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(server::store::FILE_NAME) && stderr.contains("not a database"), "{stderr}");
}

#[tokio::test]
async fn a_run_leaves_memory_when_the_next_run_starts_and_reads_back_the_same() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let first = start_run(&dash.base, &spec_json(&dash.sim.target, "sim-vllm")).await;
    wait_finished(&dash.base, &first).await;
    let in_memory = report(&dash.base, &first).await;
    let in_memory_live = live(&dash.base, &first).await;
    let runs = dash.state.runs();
    let held = |id: &str| runs.get(id).unwrap().report().is_some();
    let logged = |id: &str| !runs.get(id).unwrap().events_since(0).0.is_empty();
    assert!(held(&first) && logged(&first), "the latest run is at hand");

    // A follower keeps the log it follows in memory.
    let follower = runs.get(&first).unwrap().follow().expect("the log is in memory");
    let second = start_run(&dash.base, &spec_json(&dash.sim.target, "sim-tutorial")).await;
    wait_finished(&dash.base, &second).await;
    assert!(!held(&first) && logged(&first) && held(&second));
    drop(follower);
    let third = start_run(&dash.base, &spec_json(&dash.sim.target, "sim-vllm")).await;
    wait_finished(&dash.base, &third).await;
    assert!(!logged(&first) && !held(&second) && !logged(&second) && held(&third));

    assert_eq!(report(&dash.base, &first).await, in_memory, "read back from the store, the same run");
    assert_eq!(live(&dash.base, &first).await, in_memory_live, "and the same events");
    let (status, _) = get(&format!("{}/api/runs/{first}/export/profile.json", dash.base)).await;
    assert_eq!(status, 200);
}
