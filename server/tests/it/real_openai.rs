//! The engine against a real OpenAI-compatible server: llama-cpp-python's server (llama.cpp)
//! with a tiny random-weight model that `scripts/make_tiny_gguf.py` writes, which streams one
//! token per chunk and never its end-of-text token, so `max_tokens` tokens always come.
//!
//! One server is started per test process by `scripts/start-openai-server.sh` and stopped by a
//! watchdog once the process exits; `TOKENSCOPE_OPENAI=HOST:PORT` points the tests at a server
//! that is already running instead (serving the model `tiny-llama`).

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use shared::{RunStatus, SweepSpec, TokenCountSource};

use crate::support::{spec, sweep, timing_lock};

const MODEL: &str = "tiny-llama";

/// The process-wide server's target (`openai://HOST:PORT`), starting it on first use.
fn server() -> &'static str {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| match std::env::var("TOKENSCOPE_OPENAI") {
        Ok(address) if !address.trim().is_empty() => Ok(format!("openai://{}", address.trim())),
        _ => tokio::task::block_in_place(start_server),
    });
    match server {
        Ok(target) => target,
        Err(why) => panic!("{why}"),
    }
}

/// Starts the server with a watchdog that stops it when this process exits.
fn start_server() -> Result<String, String> {
    let root = crate::support::repo_root();
    let output = Command::new(root.join("scripts/start-openai-server.sh"))
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot run scripts/start-openai-server.sh: {err}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = |key: &str| stdout.lines().find_map(|line| line.strip_prefix(key)).map(str::to_string);
    let (Some(address), Some(pid)) = (value("OPENAI_ADDR="), value("OPENAI_PID=")) else {
        return Err(format!(
            "the OpenAI-compatible test server did not start (scripts/start-openai-server.sh {}).\n\
             ---- stdout ----\n{stdout}\n---- stderr ----\n{}\n\
             Or set TOKENSCOPE_OPENAI=HOST:PORT to use a running one serving {MODEL}.",
            output.status,
            String::from_utf8_lossy(&output.stderr),
        ));
    };
    let pid = std::ffi::OsString::from(pid);
    crate::support::after_this_process(
        "tokenscope-openai-watchdog",
        "\"$1\"/scripts/stop-openai-server.sh \"$2\"",
        &[root.as_os_str(), &pid],
    )?;
    eprintln!("real_openai: llama-cpp-python's server at {address} (pid {})", pid.to_string_lossy());
    Ok(format!("openai://{address}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_chat_stream_every_token_from_a_real_server() {
    let _timing = timing_lock().await;
    let target = server();
    const TOKENS: u32 = 12;
    for chat in [false, true] {
        let run = sweep(SweepSpec {
            chat,
            prompt_lengths: vec![8, 64],
            max_tokens: TOKENS,
            ignore_eos: true,
            requests: 3,
            warmup: 1,
            // Two at once: the server queues the second (it is started not to cut the first
            // short), and every answer still says why it stopped.
            concurrency: if chat { 2 } else { 1 },
            ..spec(target, MODEL)
        })
        .await;
        let what = if chat { "chat" } else { "completions" };
        assert_eq!(run.status, RunStatus::Completed, "{what}: {:?}", run.status);
        assert_eq!(run.requests.len(), 8, "{what}");
        for record in &run.requests {
            assert_eq!(record.error, None, "{what} {}", record.id);
            // The server sends no usage in a stream: each text chunk is one token, the role
            // chunk, the empty chunk with the finish reason and [DONE] none.
            assert_eq!(record.output_tokens(), u64::from(TOKENS), "{what} {}", record.id);
            assert_eq!(record.token_responses().count(), TOKENS as usize, "{what} {}", record.id);
            assert_eq!(record.token_source, TokenCountSource::Responses, "{what} {}", record.id);
            assert!(!record.text().trim().is_empty(), "{what} {}", record.id);
            // It stopped at max_tokens, and said so.
            assert_eq!(record.finish_reason.as_deref(), Some("length"), "{what} {}", record.id);
        }
        for point in &run.points {
            let (ttft, t2t) = (point.ttft_ms.as_ref().unwrap(), point.t2t_ms.as_ref().unwrap());
            eprintln!(
                "real_openai: {what} at {} words: TTFT p50 {:.3} ms, token-to-token p50 {:.3} ms",
                point.prompt_length, ttft.p50, t2t.p50
            );
            assert!(ttft.p50 > 0.0 && t2t.p50 > 0.0, "{what}: times are measured");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_the_real_server_does_not_list_is_named() {
    let _timing = timing_lock().await;
    let run = sweep(spec(server(), "gpt-4")).await;
    let RunStatus::Failed { error } = &run.status else { panic!("expected a failed run, got {:?}", run.status) };
    assert!(error.contains("model 'gpt-4' is not served by") && error.contains(MODEL), "{error}");
}
