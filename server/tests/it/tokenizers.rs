//! Tokenizers in the dashboard: uploaded, kept and listed, refused when they are not
//! tokenizers, and opened by path only inside the folders the dashboard was allowed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use server::dashboard::Limits;
use server::dashboard::access::{Access, Roles, Secret, Viewers};
use server::sim::SimConfig;
use server::tokenizer::SharedTokenizer;
use server::tokenizer::fixture::{bpe, wordpiece};
use shared::api::{KeptTokenizer, Tokenizers};
use shared::{RunReport, RunStatus};
use tokio::io::AsyncWriteExt;

use crate::dashboard::{fast_sim, get, post, spec_json, wait_finished};
use crate::support::{
    Dashboard, start_dashboard, start_dashboard_with, start_dashboard_with_access, start_dashboard_with_tokenizers,
    timing_lock,
};

/// A simulator that counts prompts with the tokenizer at `file`, as a server would.
fn counting_sim(file: &Path) -> SimConfig {
    SimConfig { tokenizer: Some(SharedTokenizer::parse(file.to_str().unwrap()).unwrap()), ..fast_sim() }
}

async fn upload(base: &str, query: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response =
        reqwest::Client::new().post(format!("{base}/api/tokenizers{query}")).body(body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn listed(base: &str) -> Tokenizers {
    let (status, body) = get(&format!("{base}/api/tokenizers")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

/// Starts a sweep of `lengths` with `tokenizer` and waits for its whole report.
async fn run_with(dash: &Dashboard, tokenizer: &str, lengths: &[u32]) -> RunReport {
    let mut spec = spec_json(&dash.sim.target, "sim-vllm");
    spec["tokenizer"] = json!(tokenizer);
    spec["prompt_lengths"] = json!(lengths);
    let (status, body) = post(&format!("{}/api/runs", dash.base), &spec).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    let summary = wait_finished(&dash.base, id).await;
    assert_eq!(summary.status, RunStatus::Completed);
    reqwest::get(format!("{}/api/runs/{id}/report", dash.base)).await.unwrap().json().await.unwrap()
}

/// Every prompt sent was as long as its point asked, as the simulator counted it with the same
/// tokenizer.
fn assert_exact(report: &RunReport, lengths: &[u32]) {
    assert!(!report.prompt_lengths_approximate);
    assert_eq!(report.requests.len(), lengths.len() * 5, "4 measured and 1 warm-up request per length");
    for record in &report.requests {
        let length = lengths[record.point as usize];
        assert_eq!(record.num_input_tokens, Some(length), "{}: the server counts the prompt", record.id);
        assert_eq!(record.prompt_words, length, "{}", record.id);
    }
}

/// Uploaded, listed, and used by a run whose every prompt has exactly its length.
#[tokio::test]
async fn an_uploaded_tokenizer_is_kept_listed_and_makes_prompts_of_exact_lengths() {
    let _serial = timing_lock().await;
    let scratch = tempfile::tempdir().unwrap();
    let file = bpe(scratch.path());
    let bytes = std::fs::read(&file).unwrap();
    let dash = start_dashboard(counting_sim(&file)).await;
    let empty = listed(&dash.base).await;
    assert_eq!((empty.kept.len(), empty.folders.len(), empty.most), (0, 0, 64));

    let (status, body) = upload(&dash.base, "", bytes.clone()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("needs a name"), "{body}");

    let (status, body) = upload(&dash.base, "?name=tiny%20bpe", bytes.clone()).await;
    assert_eq!(status, 201, "{body}");
    let kept: KeptTokenizer = serde_json::from_value(body).unwrap();
    assert_eq!((kept.name.as_str(), kept.bytes, kept.specials), ("tiny_bpe", bytes.len() as u64, 1));
    assert!(kept.path.ends_with("/tokenizers/tiny_bpe/tokenizer.json"), "{}", kept.path);
    assert_eq!(std::fs::read(&kept.path).unwrap(), bytes, "kept as it came");
    // The same file again is the same entry; another file under the name is refused.
    let (status, body) = upload(&dash.base, "?name=tiny_bpe", bytes.clone()).await;
    assert_eq!((status, serde_json::from_value::<KeptTokenizer>(body).unwrap()), (200, kept.clone()));
    let other = std::fs::read(wordpiece(scratch.path())).unwrap();
    let (status, body) = upload(&dash.base, "?name=tiny_bpe", other).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "conflict");
    assert!(body["hint"].as_str().unwrap().contains("another name"), "{body}");
    assert_eq!(listed(&dash.base).await.kept, vec![kept.clone()]);

    let lengths = [16, 64, 128];
    let report = run_with(&dash, &kept.path, &lengths).await;
    assert_eq!(report.spec.tokenizer.as_deref(), Some(kept.path.as_str()));
    assert_eq!(report.spec.prompt_length_axis(), "prompt length (tokens, tokenizer tiny_bpe)");
    assert_exact(&report, &lengths);
    // Its prompts are made again for the profile export, from the kept file.
    let runs: Value = reqwest::get(format!("{}/api/runs", dash.base)).await.unwrap().json().await.unwrap();
    let id = runs[0]["id"].as_str().unwrap();
    let export = reqwest::get(format!("{}/api/runs/{id}/export/profile.json", dash.base)).await.unwrap();
    assert_eq!(export.status(), 200);
    let profile: Value = export.json().await.unwrap();
    let request = &profile["experiments"][0]["requests"][0];
    let text = request["request_inputs"]["text_input"].as_str().expect("the export holds the prompts");
    let counter = server::tokenizer::Tokenizer::open(&file).unwrap();
    assert_eq!(counter.count(text).unwrap(), lengths[0], "{text:?}");

    // A kept tokenizer is also named by its name, and kept across restarts.
    let dash = dash.restart().await;
    assert_eq!(listed(&dash.base).await.kept, vec![kept.clone()]);
    let report = run_with(&dash, "tiny_bpe", &[32]).await;
    assert_eq!(report.spec.tokenizer.as_deref(), Some(kept.path.as_str()));
    assert_exact(&report, &[32]);
}

/// Files that are not tokenizers, or would not make exact prompts, are refused saying what
/// is wrong, and leave nothing behind; as are bad names, too large a file and one too many.
#[tokio::test]
async fn bad_uploads_are_refused_saying_why_and_keep_nothing() {
    let _serial = timing_lock().await;
    let scratch = tempfile::tempdir().unwrap();
    let file = bpe(scratch.path());
    let bytes = std::fs::read(&file).unwrap();
    let mut wordless: Value = serde_json::from_slice(&bytes).unwrap();
    wordless["pre_tokenizer"] = Value::Null;
    let limits = Limits { tokenizer_bytes: bytes.len() + 1000, tokenizers_kept: 2, ..Limits::default() };
    let dash = start_dashboard_with(fast_sim(), limits).await;
    let kept_folder = dash.data.path().join("tokenizers");

    for (body, why) in [
        (b"{ not json".to_vec(), "at line 1 column"),
        (br#"{"version": "1.0", "truncation": null}"#.to_vec(), "is not a tokenizer tokenscope can read: "),
        (vec![0xff, 0xfe, 0x00], "not UTF-8 text"),
        (wordless.to_string().into_bytes(), "too few to start prompts at"),
    ] {
        let (status, answer) = upload(&dash.base, "?name=bad", body).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["code"], "invalid");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(why), "{answer}");
        assert!(!error.contains(dash.data.path().to_str().unwrap()), "no local path: {answer}");
        assert!(answer["hint"].as_str().is_some_and(|h| !h.is_empty()), "{answer}");
    }
    let (status, answer) = upload(&dash.base, "?name=bad", vec![b' '; bytes.len() + 1001]).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("larger than"), "{answer}");
    let long = "x".repeat(65);
    for name in [".hidden", long.as_str()] {
        let (status, answer) = upload(&dash.base, &format!("?name={name}"), bytes.clone()).await;
        assert_eq!(status, 422, "{name}: {answer}");
    }
    let left: Vec<_> = std::fs::read_dir(&kept_folder).unwrap().collect();
    assert!(left.is_empty(), "nothing kept: {left:?}");
    assert!(listed(&dash.base).await.kept.is_empty());

    // The most kept: a third name is refused, an upload under a kept name is not.
    for name in ["a", "b"] {
        assert_eq!(upload(&dash.base, &format!("?name={name}"), bytes.clone()).await.0, 201);
    }
    let (status, answer) = upload(&dash.base, "?name=c", bytes.clone()).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("keeps 2 tokenizers, the most"), "{answer}");
    assert_eq!(upload(&dash.base, "?name=b", bytes.clone()).await.0, 200);
    assert_eq!(listed(&dash.base).await.kept.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);

    // One upload at a time: while one's body is still coming (under a kept name, so that it
    // is read), another waits its turn.
    let addr = dash.base.trim_start_matches("http://");
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head =
        format!("POST /api/tokenizers?name=a HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{{", bytes.len());
    slow.write_all(head.as_bytes()).await.unwrap();
    let busy = async {
        loop {
            let response = reqwest::Client::new()
                .post(format!("{}/api/tokenizers?name=b", dash.base))
                .body(bytes.clone())
                .send()
                .await
                .unwrap();
            if response.status() == 503 {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let response = tokio::time::timeout(Duration::from_secs(10), busy).await.expect("a refusal while busy");
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("one at a time"), "{body}");
    drop(slow);
}

/// Viewers list the tokenizers and cannot upload one.
#[tokio::test]
async fn viewers_cannot_upload_a_tokenizer() {
    const OPERATOR: &str = "operator-token-for-tests-0001";
    const VIEWER: &str = "viewer-token-for-tests-0001";
    let scratch = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(bpe(scratch.path())).unwrap();
    let access = |_: &str| Access {
        roles: Roles::Tokens {
            operator: Secret::new(OPERATOR).unwrap(),
            viewers: Viewers::Token(Secret::new(VIEWER).unwrap()),
        },
        ..Access::open()
    };
    let dash = start_dashboard_with_access(fast_sim(), access).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/tokenizers", dash.base);
    let refused = client.post(format!("{url}?name=x")).bearer_auth(VIEWER).body(bytes.clone()).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("nor upload tokenizers"), "{body}");
    assert_eq!(client.post(format!("{url}?name=x")).body(bytes.clone()).send().await.unwrap().status(), 401);
    let kept = client.post(format!("{url}?name=x")).bearer_auth(OPERATOR).body(bytes).send().await.unwrap();
    assert_eq!(kept.status(), 201);
    let list: Tokenizers = client.get(&url).bearer_auth(VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.kept.len(), 1);
}

/// A path names a tokenizer only inside an allowed folder, links and `..` resolved; there,
/// one that is missing or bad is named with what is wrong.
#[tokio::test]
async fn a_tokenizer_path_is_opened_only_inside_an_allowed_folder() {
    let _serial = timing_lock().await;
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().canonicalize().unwrap();
    let (allowed, elsewhere) = (root.join("models"), root.join("elsewhere"));
    let file = bpe(&allowed);
    let outside = wordpiece(&elsewhere);
    std::os::unix::fs::symlink(&outside, allowed.join("link.json")).unwrap();
    std::fs::write(allowed.join("bad.json"), "{ not json").unwrap();
    let dash = start_dashboard_with_tokenizers(counting_sim(&file), Limits::default(), vec![allowed.clone()]).await;
    assert_eq!(listed(&dash.base).await.folders, vec![allowed.display().to_string()]);

    let runs = format!("{}/api/runs", dash.base);
    let refuse = |given: PathBuf, why: &'static str| {
        let runs = runs.clone();
        let mut spec = spec_json(&dash.sim.target, "sim-vllm");
        spec["tokenizer"] = json!(given.to_str().unwrap());
        async move {
            let (status, body) = post(&runs, &spec).await;
            assert_eq!(status, 422, "{given:?}: {body}");
            assert!(body["error"].as_str().unwrap().contains(why), "{given:?}: {body}");
            body
        }
    };
    let body = refuse(outside.clone(), "does not open the tokenizer").await;
    assert!(body["error"].as_str().unwrap().contains(allowed.to_str().unwrap()), "names the folders: {body}");
    assert!(body["hint"].as_str().unwrap().contains("--tokenizer-dir"), "{body}");
    refuse(allowed.join("../elsewhere/wordpiece/tokenizer.json"), "does not open the tokenizer").await;
    refuse(allowed.join("link.json"), "does not open the tokenizer").await;
    refuse(PathBuf::from("/etc/passwd"), "does not open the tokenizer").await;
    refuse(elsewhere.join("missing.json"), "does not open the tokenizer").await;
    refuse(allowed.join("missing.json"), "there is no tokenizer at").await;
    refuse(allowed.join("bad.json"), "bad.json is not a tokenizer tokenscope can read").await;
    let mut short = spec_json(&dash.sim.target, "sim-vllm");
    short["tokenizer"] = json!(file.to_str().unwrap());
    short["prompt_lengths"] = json!([1, 16]);
    let (status, body) = post(&runs, &short).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("adds 1 special tokens"), "{body}");
    assert!(dash.state.runs().list().is_empty(), "no run started");

    // Its folder, searched for its one tokenizer.json.
    let lengths = [16, 256];
    let report = run_with(&dash, allowed.join("bpe").to_str().unwrap(), &lengths).await;
    assert_eq!(report.spec.tokenizer.as_deref(), Some(file.to_str().unwrap()), "the file that was checked");
    assert_exact(&report, &lengths);

    // The profile export makes the prompts again while the tokenizer is where it was, and
    // says why not once it is gone; a run from elsewhere whose tokenizer is outside keeps
    // its refusal.
    let id = dash.state.runs().list()[0].id.clone();
    let profile = format!("{}/api/runs/{id}/export/profile.json", dash.base);
    assert_eq!(reqwest::get(&profile).await.unwrap().status(), 200);
    let moved = allowed.join("moved.json");
    std::fs::rename(&file, &moved).unwrap();
    let (status, body) = get(&profile).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("cannot be made again: there is no tokenizer at"), "{body}");
    std::fs::rename(&moved, &file).unwrap();
    let mut elsewhere_run = report.clone();
    elsewhere_run.spec.tokenizer = Some(outside.display().to_string());
    let imported = reqwest::Client::new()
        .post(format!("{}/api/runs/import", dash.base))
        .json(&elsewhere_run)
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), 201);
    let id = imported.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let (status, body) = get(&format!("{}/api/runs/{id}/export/profile.json", dash.base)).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("a file the dashboard does not open"), "{body}");
}
