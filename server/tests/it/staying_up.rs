//! The dashboard stays up: a WebSocket that stops reading is closed, a run's WebSockets and
//! the exports rendering at once are bounded, and finished runs past the retention limits
//! are deleted.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use server::dashboard::runs::Retention;
use server::dashboard::{Limits, SEND_TIMEOUT};
use shared::RunStatus;
use shared::api::{RunSummary, ServerInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::dashboard::{fast_sim, get, post, read_events, spec_json, wait_finished};
use crate::support::{large_report, serve_on, start_dashboard, start_dashboard_with, timing_lock};

/// Opens a run's events WebSocket by hand with a 4 KiB receive buffer, reads the upgrade's
/// answer and nothing more: a client that stopped reading.
async fn stalled_websocket(base: &str, id: &str) -> tokio::net::TcpStream {
    let addr = base.trim_start_matches("http://");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    let request = format!(
        "GET /api/runs/{id}/events HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    stream
}

/// Reads until the server closes the connection; the bytes it sent.
async fn drain(stream: &mut tokio::net::TcpStream) -> usize {
    let mut total = 0;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return total,
            Ok(Ok(n)) => total += n,
            Err(_) => panic!("the server still sends after 20 s"),
        }
    }
}

#[tokio::test]
async fn a_websocket_that_stops_reading_is_closed() {
    assert_eq!(SEND_TIMEOUT, Duration::from_secs(10));
    let _serial = timing_lock().await;
    let timeout = Duration::from_secs(1);
    let limits = Limits { send_timeout: timeout, ..Limits::default() };
    let dash = start_dashboard_with(fast_sim(), limits.clone()).await;
    // A log of megabytes, more than the sockets' buffers hold.
    let run = dash.state.runs().add_finished(large_report(4_000, 200)).await.unwrap();
    let id = run.id.clone();
    let whole: usize = read_events(&dash.base, &id, usize::MAX).await.iter().map(String::len).sum();
    assert!(whole > 8 << 20, "the log has {whole} bytes");

    // Followed from memory, then replayed from the store after a restart.
    let mut dash = dash;
    for source in ["memory", "store"] {
        if source == "store" {
            dash = dash.restart_with(limits.clone()).await;
        }
        let run = dash.state.runs().get(&id).unwrap();
        assert_eq!(run.follow().is_some(), source == "memory");
        let opened = Instant::now();
        let mut stalled = stalled_websocket(&dash.base, &id).await;
        while run.watchers() > 0 {
            assert!(opened.elapsed() < timeout + Duration::from_secs(5), "{source}: the socket is still served");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let closed = opened.elapsed();
        assert!(closed >= timeout, "{source}: closed after {closed:?}, before the timeout");
        let got = drain(&mut stalled).await;
        assert!(got < whole, "{source}: the whole log ({got} of {whole} bytes) came before the close");
        // A client that reads gets the whole log.
        let read: usize = read_events(&dash.base, &id, usize::MAX).await.iter().map(String::len).sum();
        assert_eq!(read, whole, "{source}");
    }
}

/// Opens a run's events WebSocket; the refusal's status, headers and body if it is refused.
async fn open_events(
    base: &str,
    id: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    (u16, Option<String>, Value),
> {
    let url = format!("{}/api/runs/{id}/events", base.replace("http://", "ws://"));
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            let body = response.body().clone().unwrap_or_default();
            Err((response.status().as_u16(), retry, serde_json::from_slice(&body).unwrap_or(Value::Null)))
        }
        Err(err) => panic!("the WebSocket failed: {err}"),
    }
}

#[tokio::test]
async fn a_run_serves_a_bounded_number_of_websockets() {
    let _serial = timing_lock().await;
    let limits = Limits { followers_per_run: 2, ..Limits::default() };
    let dash = start_dashboard_with(fast_sim(), limits).await;
    let mut spec = spec_json(&dash.sim.target, "sim-vllm");
    spec["requests"] = json!(1000);
    let (status, body) = post(&format!("{}/api/runs", dash.base), &spec).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let run = dash.state.runs().get(&id).unwrap();

    let mut first = open_events(&dash.base, &id).await.expect("the first socket opens");
    let second = open_events(&dash.base, &id).await.expect("the second socket opens");
    assert!(matches!(first.next().await, Some(Ok(_))), "a follower gets events");
    let Err((status, retry, body)) = open_events(&dash.base, &id).await else { panic!("a third socket opened") };
    assert_eq!((status, retry.as_deref()), (503, Some("5")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("2 WebSockets"), "{body}");
    assert!(body["hint"].as_str().unwrap().contains("retry"), "{body}");
    // Other runs' pages and the API are unaffected, and a place that frees up is taken.
    let (status, _) = get(&format!("{}/api/runs/{id}", dash.base)).await;
    assert_eq!(status, 200);
    drop(second);
    for _ in 0..200 {
        if run.watchers() < 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _third = open_events(&dash.base, &id).await.expect("a freed place is taken");
    let (status, body) = post(&format!("{}/api/runs/{id}/cancel", dash.base), &json!({})).await;
    assert_eq!(status, 202, "{body}");
    wait_finished(&dash.base, &id).await;
}

#[tokio::test]
async fn exports_past_the_limit_are_refused_with_a_time_to_retry() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let (status, body) = post(&format!("{}/api/runs", dash.base), &spec_json(&dash.sim.target, "sim-vllm")).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    wait_finished(&dash.base, &id).await;
    assert_eq!(dash.state.limits().exports_at_once, 2);
    // Two exports rendering.
    let rendering = [dash.state.export_permit().unwrap(), dash.state.export_permit().unwrap()];
    assert!(dash.state.export_permit().is_none());
    for path in ["export/requests.csv", "export/profile.json", "report"] {
        let response = reqwest::get(format!("{}/api/runs/{id}/{path}", dash.base)).await.unwrap();
        assert_eq!(response.status().as_u16(), 503, "{path}");
        assert_eq!(response.headers()["retry-after"], "5", "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("2 exports"), "{path}: {body}");
        assert!(body["hint"].as_str().unwrap().contains("retry in 5 seconds"), "{path}: {body}");
    }
    drop(rendering);
    for path in ["export/requests.csv", "report"] {
        let response = reqwest::get(format!("{}/api/runs/{id}/{path}", dash.base)).await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    assert!(dash.state.export_permit().is_some(), "a finished export gives its place back");
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

/// Waits until the list holds exactly `expected`, newest first.
async fn wait_listed(base: &str, expected: &[&str]) {
    let mut listed = Vec::new();
    for _ in 0..200 {
        listed = ids(&get(&format!("{base}/api/runs")).await.1);
        if listed == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("listed {listed:?}, expected {expected:?}");
}

async fn run_to_end(base: &str, spec: &Value) -> String {
    let (status, body) = post(&format!("{base}/api/runs"), spec).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    wait_finished(base, &id).await;
    id
}

#[tokio::test]
async fn the_newest_finished_runs_are_kept_and_a_running_one_is_never_deleted() {
    let _serial = timing_lock().await;
    let retention = Retention { keep_runs: Some(2), keep_days: None };
    let dash = start_dashboard_with(fast_sim(), Limits { retention, ..Limits::default() }).await;
    let info: ServerInfo = serde_json::from_value(get(&format!("{}/api/info", dash.base)).await.1).unwrap();
    assert_eq!((info.keep_runs, info.keep_days), (Some(2), None));
    let spec = spec_json(&dash.sim.target, "sim-vllm");
    let first = run_to_end(&dash.base, &spec).await;
    let second = run_to_end(&dash.base, &spec).await;
    wait_listed(&dash.base, &[&second, &first]).await;
    let third = run_to_end(&dash.base, &spec).await;
    wait_listed(&dash.base, &[&third, &second]).await;
    let (status, _) = get(&format!("{}/api/runs/{first}", dash.base)).await;
    assert_eq!(status, 404, "deleted from the list");

    // A run in progress is neither deleted nor counted; an import counts.
    let mut slow = spec.clone();
    slow["requests"] = json!(1000);
    let (status, body) = post(&format!("{}/api/runs", dash.base), &slow).await;
    assert_eq!(status, 201, "{body}");
    let running = body["id"].as_str().unwrap().to_string();
    let imported = dash.state.runs().add_finished(large_report(10, 4)).await.unwrap().id.clone();
    let listed = ids(&get(&format!("{}/api/runs", dash.base)).await.1);
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.contains(&running) && listed.contains(&imported) && listed.contains(&third), "{listed:?}");
    let (status, body) = post(&format!("{}/api/runs/{running}/cancel", dash.base), &json!({})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(wait_finished(&dash.base, &running).await.status, RunStatus::Cancelled);
    let mut kept = vec![running.clone(), imported.clone()];
    kept.sort();
    let mut listed = Vec::new();
    for _ in 0..200 {
        listed = ids(&get(&format!("{}/api/runs", dash.base)).await.1);
        listed.sort();
        if listed == kept {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listed, kept);

    // Deleted from the store too: a restart without limits lists the same two.
    let dash = dash.restart().await;
    let mut listed = ids(&get(&format!("{}/api/runs", dash.base)).await.1);
    listed.sort();
    assert_eq!(listed, kept);
    let info = get(&format!("{}/api/info", dash.base)).await.1;
    assert!(info.get("keep_runs").is_none() && info.get("keep_days").is_none(), "{info}");
}

#[tokio::test]
async fn runs_older_than_the_kept_days_are_deleted_at_start() {
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let spec = spec_json(&dash.sim.target, "sim-vllm");
    let old = run_to_end(&dash.base, &spec).await;
    let recent = run_to_end(&dash.base, &spec).await;
    let (sim, data) = dash.stop().await;
    // The first run entered the store 31 days ago.
    let db = rusqlite::Connection::open(data.path().join(server::store::FILE_NAME)).unwrap();
    let month_ago = server::clock::unix_now_ns() - 31 * 86_400 * 1_000_000_000;
    let changed =
        db.execute("UPDATE runs SET added_unix_ns = ?2 WHERE id = ?1", rusqlite::params![old, month_ago]).unwrap();
    assert_eq!(changed, 1);
    drop(db);

    let retention = Retention { keep_runs: None, keep_days: Some(30) };
    let dash = serve_on(sim, data, Limits { retention, ..Limits::default() }).await;
    wait_listed(&dash.base, &[&recent]).await;
    let info: ServerInfo = serde_json::from_value(get(&format!("{}/api/info", dash.base)).await.1).unwrap();
    assert_eq!((info.keep_runs, info.keep_days), (None, Some(30)));
    let summaries: Vec<RunSummary> = serde_json::from_value(get(&format!("{}/api/runs", dash.base)).await.1).unwrap();
    assert_eq!(summaries[0].status, RunStatus::Completed);
    let dash = dash.restart().await;
    wait_listed(&dash.base, &[&recent]).await;
}
