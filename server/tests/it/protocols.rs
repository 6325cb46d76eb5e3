//! The HTTP protocols: Triton's generate stream and OpenAI-compatible servers, against the
//! simulator and, for what no real server sends, a scripted one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use shared::{RequestRecord, RunReport, RunStatus, SweepSpec};
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
    let cases: [(Script, &str); 8] = [
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
        // What llama-cpp-python's server sends when another request interrupts a stream: its
        // end, with no finish reason.
        (Script::Events("data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\ndata: [DONE]\n\n"), "cut short"),
        // A model that stopped at once: an answer, but no token to time.
        (
            Script::Events(
                "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
            ),
            "without a single output token",
        ),
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

/// A simulator serving all three protocols: their targets, as a sweep names them.
struct Sims {
    grpc: String,
    http: String,
    openai: String,
    _stop: crate::support::SimServer,
}

async fn start_protocols(config: server::sim::SimConfig) -> Sims {
    let (grpc, http, openai, stop) = server::sim::spawn_protocols(config).await.expect("the simulator starts");
    Sims {
        grpc: format!("http://{grpc}"),
        http: format!("triton-http://{http}"),
        openai: format!("openai://{openai}"),
        _stop: crate::support::SimServer::from_parts(format!("http://{grpc}"), stop),
    }
}

/// What a protocol's run must show against the simulator's schedule: every token counted
/// once, TTFT from the prefill up by at most the way there and back, gaps at the decode step.
fn check_schedule(what: &str, run: &shared::RunReport, config: &server::sim::SimConfig, tokens: u32) {
    assert_eq!(run.status, RunStatus::Completed, "{what}: {:?}", run.status);
    for record in &run.requests {
        assert_eq!(record.error, None, "{what} {}", record.id);
        assert_eq!(record.output_tokens(), u64::from(tokens), "{what} {}: every token counted once", record.id);
        assert_eq!(record.text().split_whitespace().count(), tokens as usize, "{what} {}: new text only", record.id);
        assert!(record.final_ns.is_some(), "{what} {}", record.id);
    }
    for point in &run.points {
        let prefill_ms = config.prefill(point.prompt_length).as_secs_f64() * 1e3;
        let ttft = point.ttft_ms.as_ref().unwrap().mean;
        assert!(
            (prefill_ms - 0.05..=prefill_ms + 2.0).contains(&ttft),
            "{what} TTFT at {} tokens: measured {ttft:.3} ms, the schedule's prefill {prefill_ms:.3}",
            point.prompt_length
        );
        let t2t = point.t2t_ms.as_ref().unwrap().mean;
        crate::support::assert_close(&format!("{what} token-to-token"), t2t, config.decode_ms, 0.3, 0.05);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_and_style_is_timed_against_the_schedule() {
    let _timing = timing_lock().await;
    let config = server::sim::SimConfig {
        prefill_base_ms: 5.0,
        prefill_per_token_ms: 0.02,
        decode_ms: 2.0,
        ..server::sim::SimConfig::default()
    };
    let sims = start_protocols(config.clone()).await;
    let (sims, config) = (&sims, &config);
    const TOKENS: u32 = 20;
    crate::support::timing_attempts(|| async move {
        let base = |target: &str, model: &str| SweepSpec {
            prompt_lengths: vec![16, 512],
            max_tokens: TOKENS,
            ignore_eos: true,
            requests: 6,
            warmup: 1,
            ..spec(target, model)
        };
        for model in ["sim-vllm", "sim-tutorial", "sim-trtllm"] {
            let run = sweep(base(&sims.http, model)).await;
            check_schedule(&format!("{model} over Triton HTTP"), &run, config, TOKENS);
            assert_eq!(run.spec.protocol_words(), "Triton HTTP/SSE");
        }
        for chat in [false, true] {
            let run = sweep(SweepSpec { chat, ..base(&sims.openai, "sim-vllm") }).await;
            let what = if chat { "OpenAI chat" } else { "OpenAI completions" };
            check_schedule(what, &run, config, TOKENS);
            let sample = &run.requests[1];
            assert_eq!(sample.token_source, shared::TokenCountSource::Server, "{what}: usage counts are the server's");
            assert_eq!(sample.num_input_tokens, Some(sample.prompt_words), "{what}: the server's prompt count");
            assert_eq!(sample.responses.len(), TOKENS as usize, "{what}: the role chunk and [DONE] are no responses");
            assert!(
                sample.responses.iter().all(|r| r.tokens == 1),
                "{what}: the server's total confirms one per event"
            );
            exports_and_reads_back(what, &run);
        }
        // The same model over gRPC, for the arrival delays beside it.
        let grpc = sweep(base(&sims.grpc, "sim-vllm")).await;
        check_schedule("gRPC", &grpc, config, TOKENS);
    })
    .await;
}

#[tokio::test]
async fn http_protocols_name_what_is_wrong() {
    let _serial = timing_lock().await;
    let sims = start_protocols(server::sim::SimConfig::default()).await;
    let failed = |run: shared::RunReport| match run.status {
        RunStatus::Failed { error } => error,
        other => panic!("expected a failed run, got {other:?}"),
    };
    let error = failed(sweep(spec(&sims.openai, "gpt-4")).await);
    assert!(error.contains("model 'gpt-4' is not served by") && error.contains("sim-vllm"), "{error}");
    let error = failed(sweep(spec(&sims.http, "nope")).await);
    assert!(error.contains("model 'nope' is not on") && error.contains("sim-tutorial"), "{error}");
    // The wrong protocol on a port: gRPC asked of the OpenAI port.
    let grpc_at_openai = sims.openai.replace("openai://", "http://");
    let error = failed(sweep(spec(&grpc_at_openai, "sim-vllm")).await);
    assert!(error.contains("gRPC"), "{error}");
    // A refused port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let error = failed(sweep(spec(&format!("openai://127.0.0.1:{port}"), "m")).await);
    assert!(error.contains(&format!("cannot connect to http://127.0.0.1:{port}")), "{error}");
    // A model's error fails its request alone, over both protocols.
    let failing = start_protocols(server::sim::SimConfig { fail_every: 2, ..Default::default() }).await;
    for target in [&failing.http, &failing.openai] {
        let run = sweep(SweepSpec { requests: 4, ..spec(target, "sim-vllm") }).await;
        assert_eq!(run.status, RunStatus::Completed, "{target}: {:?}", run.status);
        let errors = run.requests.iter().filter(|r| r.error.is_some()).count();
        assert!((1..4).contains(&errors), "{target}: {errors} of 4 failed");
    }
}

/// An OpenAI-compatible server that keeps each connection open after its first answer, then
/// closes it when the next request comes, as a server whose keep-alive ran out does.
async fn closing_kept_connections() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut answered = false;
                while let Some((head, _)) = read_request(&mut socket).await {
                    let (kind, body) = if head.starts_with("GET /v1/models") {
                        ("application/json", r#"{"data":[{"id":"m"}]}"#)
                    } else if answered {
                        return;
                    } else {
                        answered = true;
                        ("text/event-stream", GOOD)
                    };
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    format!("openai://{addr}")
}

#[tokio::test]
async fn a_kept_connection_the_server_closed_is_replaced_and_the_request_goes_through() {
    let _serial = timing_lock().await;
    let run = sweep(openai_spec(&closing_kept_connections().await, 4)).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.status);
    for record in &run.requests {
        assert_eq!(record.error, None, "{}", record.id);
        assert_eq!(record.output_tokens(), 2, "{}", record.id);
    }
}

/// Exports `run` as perf_analyzer's profile export of the OpenAI kind and reads it back: the
/// same requests, with their texts, counts, errors and times.
fn exports_and_reads_back(what: &str, run: &RunReport) -> serde_json::Value {
    let export = server::export::profile_export(run).unwrap();
    assert_eq!(export["service_kind"], "openai", "{what}");
    let path = if run.spec.chat { "v1/chat/completions" } else { "v1/completions" };
    assert_eq!(export["endpoint"], path, "{what}");
    let back = server::import::profile_to_report(&export, "export.json").unwrap();
    let (spec, again) = (&run.spec, &back.spec);
    assert_eq!((again.speaks(), again.chat, &again.model), (spec.speaks(), spec.chat, &spec.model), "{what}");
    assert_eq!(
        (again.max_tokens, again.ignore_eos, &again.prompt_lengths),
        (spec.max_tokens, spec.ignore_eos, &spec.prompt_lengths),
        "{what}"
    );
    let mut sent: Vec<&RequestRecord> = run.requests.iter().filter(|r| !r.warmup).collect();
    sent.sort_by_key(|r| r.send_ns);
    assert_eq!(back.requests.len(), sent.len(), "{what}");
    let responses = |r: &RequestRecord| {
        r.responses.iter().map(|c| (c.at_ns - r.send_ns, c.tokens, c.text.to_string())).collect::<Vec<_>>()
    };
    for (record, read) in sent.into_iter().zip(&back.requests) {
        let id = &record.id;
        assert_eq!((&read.error, &read.finish_reason), (&record.error, &record.finish_reason), "{what} {id}");
        assert_eq!(
            (read.token_source, read.num_input_tokens),
            (record.token_source, record.num_input_tokens),
            "{what} {id}"
        );
        // The answer's end is a response of its own, with no token, at the request's end.
        let mut expected = responses(record);
        expected.extend(record.final_ns.map(|end| (end - record.send_ns, 0, String::new())));
        assert_eq!(responses(read), expected, "{what} {id}");
        assert_eq!(
            read.final_ns.map(|end| end - read.send_ns),
            record.final_ns.map(|end| end - record.send_ns),
            "{what} {id}"
        );
    }
    for (point, again) in run.points.iter().zip(&back.points) {
        assert_eq!(
            (&again.ttft_ms, &again.t2t_ms, &again.output_tokens),
            (&point.ttft_ms, &point.t2t_ms, &point.output_tokens),
            "{what}"
        );
        assert_eq!((again.count, again.errors), (point.count, point.errors), "{what}");
    }
    export
}

#[tokio::test]
async fn an_openai_run_exports_as_perf_analyzers_openai_kind_and_reads_back_the_same() {
    let _serial = timing_lock().await;
    // The server's usage confirms the events' count, is spread over them, an error comes
    // mid-stream, and an answer stops before its [DONE].
    let spread = "data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n\
                  data: {\"choices\":[{\"index\":0,\"text\":\" bbb\",\"finish_reason\":\"stop\"}]}\n\n\
                  data: {\"choices\":[],\"usage\":{\"prompt_tokens\":16,\"completion_tokens\":5}}\n\n\
                  data: [DONE]\n\n";
    let scripts = vec![
        Script::Events(GOOD),
        Script::Events(spread),
        Script::Events(
            "data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n\
             data: {\"error\":{\"message\":\"the engine died\",\"type\":\"InternalServerError\"}}\n\n",
        ),
        Script::Events("data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n"),
    ];
    let target = scripted(scripts.clone()).await;
    let run = sweep(openai_spec(&target, scripts.len() as u32)).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.status);
    let tokens: Vec<Vec<u32>> = run.requests.iter().map(|r| r.responses.iter().map(|c| c.tokens).collect()).collect();
    assert_eq!(tokens, [vec![1, 1], vec![2, 3], vec![1], vec![1]], "the usage spread by text");
    assert_eq!(run.requests.iter().filter(|r| r.error.is_some()).count(), 2);
    let reasons: Vec<Option<&str>> = run.requests.iter().map(|r| r.finish_reason.as_deref()).collect();
    assert_eq!(reasons, [Some("length"), Some("stop"), None, None], "what each answer said of its end");
    let export = exports_and_reads_back("scripted", &run);
    let request = &export["experiments"][0]["requests"][0];
    let payload: serde_json::Value =
        serde_json::from_str(request["request_inputs"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["model"], "m");
    assert_eq!((&payload["stream"], &payload["max_tokens"]), (&serde_json::json!(true), &serde_json::json!(2)));
    assert_eq!(payload["stream_options"]["include_usage"], true, "the server gave usage, so it took the field");
    let outputs = request["response_outputs"].as_array().unwrap();
    assert_eq!(
        outputs.last().unwrap()["response"].as_str().unwrap(),
        "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"length\"}]}\n\n\
         data: {\"usage\":{\"prompt_tokens\":16,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n"
    );
}
