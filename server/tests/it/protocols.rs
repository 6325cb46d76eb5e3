//! The HTTP protocols: Triton's generate stream and OpenAI-compatible servers, against the
//! simulator and, for what no real server sends, a scripted one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use shared::{RunStatus, SweepSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{spec, sweep, timing_lock};

/// One answer of the scripted server, after its status line and headers.
#[derive(Clone, Copy)]
enum Script {
    /// A close-delimited event stream with this body.
    Events(&'static str),
    /// A chunked event stream whose connection closes in the middle of a chunk.
    ClosedEarly(&'static str),
}

const GOOD: &str = "data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n\
                    : keep-alive\n\n\
                    data: {\"choices\":[{\"index\":0,\"text\":\" b\",\"finish_reason\":\"length\"}]}\n\n\
                    data: {\"choices\":[],\"usage\":{\"prompt_tokens\":16,\"completion_tokens\":2}}\n\n\
                    data: [DONE]\n\n";

/// Reads one HTTP/1.1 request: its head and as much body as it says.
async fn read_request(socket: &mut TcpStream) -> Option<(String, String)> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()))
        .and_then(Result::ok)
        .unwrap_or(0);
    while bytes.len() < head_end + length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    Some((head, String::from_utf8_lossy(&bytes[head_end..]).to_string()))
}

/// An OpenAI-compatible server serving model `m` whose streamed answers follow `scripts`
/// in turn, after a good answer to the first request (the one-token check of the server).
async fn scripted(scripts: Vec<Script>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let scripts = Arc::new(scripts);
    let posts = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (scripts, posts) = (scripts.clone(), posts.clone());
            tokio::spawn(async move {
                while let Some((head, _body)) = read_request(&mut socket).await {
                    if head.starts_with("GET /v1/models") {
                        let body = r#"{"object":"list","data":[{"id":"m","object":"model"}]}"#;
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(answer.as_bytes()).await;
                        continue;
                    }
                    let nth = posts.fetch_add(1, Ordering::SeqCst);
                    let script = if nth == 0 { Script::Events(GOOD) } else { scripts[(nth - 1) % scripts.len()] };
                    let _ = match script {
                        Script::Events(events) => {
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{events}"
                            );
                            socket.write_all(answer.as_bytes()).await
                        }
                        Script::ClosedEarly(events) => {
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
                                 {:x}\r\n{events}",
                                events.len() + 100
                            );
                            socket.write_all(answer.as_bytes()).await
                        }
                    };
                    return;
                }
            });
        }
    });
    format!("openai://{addr}")
}

fn openai_spec(target: &str, requests: u32) -> SweepSpec {
    SweepSpec { requests, max_tokens: 2, ..spec(target, "m") }
}

#[tokio::test]
async fn malformed_streams_fail_their_request_with_a_clear_error_and_the_run_goes_on() {
    let _serial = timing_lock().await;
    let cases: [(Script, &str); 6] = [
        (Script::Events(GOOD), ""),
        (
            Script::Events("data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\ndata: {\"choices\":[{\"ind"),
            "the stream ended in the middle of an event",
        ),
        (Script::Events("{\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n"), "without its closing \"data: [DONE]\""),
        (Script::Events("data: {\"choices\":[{\"index\":0,\"text\":\"a\"}\n\n"), "not the JSON expected"),
        (
            Script::Events(
                "data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n\
                 data: {\"error\":{\"message\":\"the engine died\",\"type\":\"InternalServerError\"}}\n\n",
            ),
            "InternalServerError: the engine died",
        ),
        (Script::ClosedEarly("data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n"), "the connection broke"),
    ];
    let target = scripted(cases.iter().map(|(script, _)| *script).collect()).await;
    let run = sweep(openai_spec(&target, cases.len() as u32)).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.status);
    assert_eq!(run.requests.len(), cases.len());
    for (record, (_, expected)) in run.requests.iter().zip(cases) {
        match &record.error {
            None => {
                assert!(expected.is_empty(), "request {} passed; expected {expected:?}", record.seq);
                assert_eq!(record.output_tokens(), 2);
                assert_eq!(record.num_input_tokens, Some(16));
                assert_eq!(record.token_source, shared::TokenCountSource::Server);
            }
            Some(error) => assert!(!expected.is_empty() && error.contains(expected), "{expected:?} in {error:?}"),
        }
    }
}
