//! The command line as a user runs it: `sweep` with its table, run.json and profile export,
//! and `serve`.

use std::process::Command;

use serde_json::Value;
use server::sim::SimConfig;

use crate::support::{start_sim, timing_lock};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_writes_run_json_and_a_profile_export_that_agree() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig { prefill_base_ms: 2.0, decode_ms: 1.0, ..SimConfig::default() }).await;
    let dir = std::env::temp_dir().join(format!("tokenscope-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (out, profile) = (dir.join("run.json"), dir.join("pa.json"));
    let target = sim.target.clone();
    let (out_arg, profile_arg) = (out.clone(), profile.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tokenscope"))
            .args(["sweep", "--target", &target, "--model", "sim-tutorial", "--prompt-lengths", "8,32"])
            .args(["--max-tokens", "6", "--requests", "4", "--warmup", "1", "--out"])
            .arg(&out_arg)
            .arg("--profile-export")
            .arg(&profile_arg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("TTFT mean") && stdout.contains("T2T mean"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("engine: ") && stderr.contains("µs per response"), "{stderr}");
    let run: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let points = run["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[1]["prompt_length"], 32);
    for key in ["mean", "p50", "p90", "p99"] {
        assert!(points[0]["ttft_ms"][key].as_f64().unwrap() > 0.0);
        assert!(points[0]["t2t_ms"][key].as_f64().unwrap() > 0.0);
    }
    assert_eq!(points[0]["count"], 4);
    assert_eq!(run["requests"].as_array().unwrap().len(), 10);
    assert_eq!(run["spec"]["model"], "sim-tutorial");
    // The guide's averaging over our export gives our TTFT.
    let export: Value = serde_json::from_slice(&std::fs::read(&profile).unwrap()).unwrap();
    let experiments = export["experiments"].as_array().unwrap();
    assert_eq!(experiments.len(), 2);
    for (experiment, point) in experiments.iter().zip(points) {
        let requests = experiment["requests"].as_array().unwrap();
        assert_eq!(requests.len(), 4);
        let mean_ms = requests
            .iter()
            .map(|r| (r["response_timestamps"][0].as_i64().unwrap() - r["timestamp"].as_i64().unwrap()) as f64 / 1e6)
            .sum::<f64>()
            / requests.len() as f64;
        let ours = point["ttft_ms"]["mean"].as_f64().unwrap();
        assert!((mean_ms - ours).abs() < 1e-6, "guide average {mean_ms} vs ours {ours}");
        assert!(requests[0]["request_inputs"]["PROMPT"].is_string());
        assert_eq!(requests[0]["response_outputs"][0]["text_output"].as_str().unwrap().split_whitespace().count(), 1);
    }
    // `tokenscope import` reads the export back to the same statistics.
    let imported = dir.join("imported.json");
    let output = Command::new(env!("CARGO_BIN_EXE_tokenscope"))
        .arg("import")
        .arg(&profile)
        .arg("--out")
        .arg(&imported)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("TTFT mean"));
    let back: Value = serde_json::from_slice(&std::fs::read(&imported).unwrap()).unwrap();
    for (point, original) in back["points"].as_array().unwrap().iter().zip(points) {
        assert_eq!(point["prompt_length"], original["prompt_length"]);
        assert_eq!(point["count"], original["count"]);
        for metric in ["ttft_ms", "t2t_ms"] {
            let (a, b) = (point[metric]["mean"].as_f64().unwrap(), original[metric]["mean"].as_f64().unwrap());
            assert!((a - b).abs() < 1e-9, "{metric}: imported {a} vs measured {b}");
        }
    }
    // A run.json reads as itself; another JSON file is refused, saying what it lacks.
    let output = Command::new(env!("CARGO_BIN_EXE_tokenscope")).arg("import").arg(&out).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("TTFT mean"));
    let other = dir.join("other.json");
    std::fs::write(&other, br#"{"runs": []}"#).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tokenscope")).arg("import").arg(&other).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a run: it has neither"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_sweep_exits_non_zero_and_says_why() {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenscope"))
        .args(["sweep", "--target", "127.0.0.1:1", "--model", "m", "--requests", "1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach Triton at http://127.0.0.1:1"), "{stderr}");
}

/// `tokenscope serve` as the README runs it: with no target it serves the page and a
/// simulated Triton, and says where.
#[tokio::test]
async fn serve_runs_the_dashboard_with_a_built_in_simulator() {
    use tokio::io::AsyncBufReadExt;
    let _serial = timing_lock().await;
    let data = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokenscope"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the address within 30 s")
        .unwrap()
        .expect("a line");
    // The process keeps off transparent huge pages, whose faults stall its reads.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id().unwrap())).unwrap();
    assert!(status.lines().any(|l| l.split_whitespace().eq(["THP_enabled:", "0"])), "{status}");
    let url = line.strip_prefix("tokenscope dashboard: ").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let info: Value = reqwest::get(format!("{url}api/info")).await.unwrap().json().await.unwrap();
    assert_eq!(info["default_is_simulated"], true, "{info}");
    let models: Value = reqwest::get(format!("{url}api/targets/models")).await.unwrap().json().await.unwrap();
    assert!(models["models"].as_array().unwrap().iter().any(|m| m["name"] == "sim-vllm"), "{models}");
    // The same simulator speaks Triton HTTP and OpenAI, each measurable as it comes.
    let elsewhere: Vec<String> = serde_json::from_value(models["simulator_elsewhere"].clone()).unwrap();
    assert_eq!(elsewhere.len(), 2, "{models}");
    assert!(elsewhere[0].starts_with("triton-http://127.0.0.1:") && elsewhere[1].starts_with("openai://127.0.0.1:"));
    let client = reqwest::Client::new();
    for target in &elsewhere {
        let listed: Value = client
            .get(format!("{url}api/targets/models"))
            .query(&[("target", target)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["simulated"], true, "{listed}");
        assert!(listed["models"].as_array().unwrap().iter().any(|m| m["name"] == "sim-vllm"), "{listed}");
        let others = listed["simulator_elsewhere"].as_array().unwrap();
        assert!(others.len() == 2 && !others.iter().any(|o| o == target.as_str()), "{listed}");
    }
    let page = reqwest::get(format!("{url}runs/some-run")).await.unwrap();
    let status = page.status().as_u16();
    let body = page.text().await.unwrap();
    if server::dashboard::has_frontend() {
        assert_eq!(status, 200);
        assert!(body.contains("<title>tokenscope</title>") && body.contains(".wasm"), "{body}");
    } else {
        assert_eq!(status, 503);
        assert!(body.contains("scripts/dashboard.sh"), "{body}");
    }
    child.kill().await.unwrap();
}

/// SIGTERM, as a batch system sends, and Ctrl-C stop a sweep alike: it writes what finished,
/// marked cancelled, and exits 130.
#[tokio::test]
async fn a_signal_stops_a_sweep_keeping_what_finished() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig { prefill_base_ms: 2.0, decode_ms: 5.0, ..SimConfig::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    for signal in ["TERM", "INT"] {
        let out = dir.path().join(format!("{signal}.json"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tokenscope"))
            .args(["sweep", "--target", &sim.target, "--model", "sim-vllm", "--requests", "1000", "--out"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut pipe, &mut text).map(|_| text)
        });
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        crate::store::send_signal(child.id(), signal);
        let status = crate::store::wait_exit(&mut child, std::time::Duration::from_secs(20)).await;
        let stderr = stderr.join().unwrap().unwrap();
        assert_eq!(status.code(), Some(130), "SIG{signal}: {stderr}");
        assert!(stderr.contains(&format!("SIG{signal}: stopping")), "{stderr}");
        let report: shared::RunReport = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(report.status, shared::RunStatus::Cancelled);
        assert!(!report.requests.is_empty() && report.requests.len() < 1000, "{}", report.requests.len());
    }
}

/// With a tokenizer, every prompt sent has exactly its length in tokens, no two are alike,
/// and the run says what its lengths count; a tokenizer that cannot be read stops the sweep
/// before it starts, naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokenizer_makes_every_prompt_exactly_its_length() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig { prefill_base_ms: 1.0, decode_ms: 1.0, ..SimConfig::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = server::tokenizer::fixture::bpe(dir.path());
    let (out, profile) = (dir.path().join("run.json"), dir.path().join("pa.json"));
    let sweep = |tokenizer: std::path::PathBuf| {
        let (target, out, profile) = (sim.target.clone(), out.clone(), profile.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_tokenscope"))
                .args(["sweep", "--target", &target, "--model", "sim-vllm", "--prompt-lengths", "16,256,1024"])
                .args(["--max-tokens", "2", "--requests", "5", "--warmup", "1", "--tokenizer"])
                .arg(tokenizer)
                .arg("--out")
                .arg(out)
                .arg("--profile-export")
                .arg(profile)
                .output()
                .unwrap()
        })
    };
    let output = sweep(tokenizer.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("prompt lengths in tokens (tokenizer bpe)"), "{stdout}");
    let run: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(run["spec"]["tokenizer"].as_str().unwrap().ends_with("bpe/tokenizer.json"));
    assert_eq!(run["prompt_lengths_approximate"], false);
    let counter = server::tokenizer::Tokenizer::open(&tokenizer).unwrap();
    let export: Value = serde_json::from_slice(&std::fs::read(&profile).unwrap()).unwrap();
    let mut seen = std::collections::HashSet::new();
    for (experiment, length) in export["experiments"].as_array().unwrap().iter().zip([16, 256, 1024]) {
        let requests = experiment["requests"].as_array().unwrap();
        assert_eq!(requests.len(), 5);
        for request in requests {
            let prompt = request["request_inputs"]["text_input"].as_str().unwrap();
            assert_eq!(counter.count(prompt).unwrap(), length, "{prompt:?}");
            assert!(seen.insert(prompt.to_string()), "a prompt sent twice: {prompt:?}");
        }
    }
    // The simulator counts the words it was sent: natural text has fewer words than tokens.
    let input = run["points"][2]["input_tokens"]["mean"].as_f64().unwrap();
    assert!(input > 400.0 && input < 1024.0, "{input} words in prompts of 1,024 tokens");

    for (bad, says) in [
        (dir.path().join("nowhere.json"), "there is no tokenizer at"),
        (dir.path().join("run.json"), "run.json is not a tokenizer tokenscope can read"),
    ] {
        let output = sweep(bad).await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(says), "{stderr}");
    }
}

/// A prompts file is sent as it is: one point at the median of its lengths takes every
/// prompt, in file order; with prompt lengths, each point sends the prompts nearest it, and
/// records keep each prompt's own length. A file with malformed lines runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompts_file_is_sent_as_it_is_and_a_malformed_one_runs_nothing() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig { prefill_base_ms: 1.0, decode_ms: 1.0, ..SimConfig::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let words = |n: usize| (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    let texts = [words(3), words(5), words(40), words(60), words(7)];
    let file = dir.path().join("prompts.jsonl");
    let lines: String = texts.iter().map(|t| format!("{}\n", serde_json::json!({ "text": t }))).collect();
    std::fs::write(&file, lines).unwrap();
    let sweep = |extra: &[&str], out: &std::path::Path, profile: &std::path::Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tokenscope"));
        command.args(["sweep", "--target", &sim.target, "--model", "sim-vllm", "--max-tokens", "2"]);
        command.args(extra).arg("--prompts").arg(&file).arg("--out").arg(out).arg("--profile-export").arg(profile);
        tokio::task::spawn_blocking(move || command.output().unwrap())
    };
    let (out, profile) = (dir.path().join("run.json"), dir.path().join("pa.json"));
    let sent = |profile: &std::path::Path| -> Vec<Vec<String>> {
        let export: Value = serde_json::from_slice(&std::fs::read(profile).unwrap()).unwrap();
        let experiments = export["experiments"].as_array().unwrap();
        let text = |r: &Value| r["request_inputs"]["text_input"].as_str().unwrap().to_string();
        experiments.iter().map(|e| e["requests"].as_array().unwrap().iter().map(text).collect()).collect()
    };

    let output = sweep(&["--requests", "7"], &out, &profile).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("5 prompts, lengths in words") && stderr.contains("  7: 5 prompts, 3 to 60"), "{stderr}");
    assert!(stderr.contains("7 requests at this length send some more than once"), "{stderr}");
    let order = [0, 1, 2, 3, 4, 0, 1].map(|i| texts[i].clone()).to_vec();
    assert_eq!(sent(&profile), vec![order], "every prompt, in file order, then from the first again");
    let run: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(run["spec"]["prompt_lengths"], serde_json::json!([7]));
    for record in run["requests"].as_array().unwrap() {
        assert_eq!(record["prompt_words"], record["num_input_tokens"], "a record keeps its prompt's own length");
    }

    let output = sweep(&["--requests", "3", "--prompt-lengths", "4,64"], &out, &profile).await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let short = [0, 1, 4, 0].map(|i| texts[i].clone());
    assert_eq!(sent(&profile), vec![short[..3].to_vec(), vec![texts[2].clone(), texts[3].clone(), texts[2].clone()]]);

    // Without a count, the one point sends every prompt once.
    let output = sweep(&[], &out, &profile).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && !stderr.contains("more than once"), "{stderr}");
    assert_eq!(sent(&profile), vec![texts.to_vec()]);

    // Read once: prompts through a pipe are all sent, and the profile export lists them.
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenscope"));
    command.args(["sweep", "--target", &sim.target, "--model", "sim-vllm", "--max-tokens", "2"]);
    command.args(["--prompts", "/dev/stdin", "--out"]).arg(&out).arg("--profile-export").arg(&profile);
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let content = std::fs::read(&file).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &content).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(sent(&profile), vec![texts.to_vec()]);

    // The points of one length go on through its prompts rather than sending the same again.
    let output = sweep(&["--requests", "2", "--prompt-lengths", "4,64", "--concurrency", "1,2"], &out, &profile);
    let output = output.await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut points = sent(&profile);
    points.iter_mut().for_each(|point| point.sort());
    let of = |i: &[usize]| {
        let mut texts: Vec<String> = i.iter().map(|&i| texts[i].clone()).collect();
        texts.sort();
        texts
    };
    assert_eq!(points, vec![of(&[0, 1]), of(&[4, 0]), of(&[2, 3]), of(&[2, 3])]);

    let output = sweep(&["--prompt-lengths", "4,4096"], &out, &profile).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("nearer 4096 words"), "{stderr}");

    let bad = "{\"text\": \"fine\"}\n{\"text\": \n\n{\"txt\": \"x\"}\n{\"text\": \"  \"}\n";
    std::fs::write(&file, bad).unwrap();
    let (out, profile) = (dir.path().join("bad.json"), dir.path().join("bad-pa.json"));
    let output = sweep(&[], &out, &profile).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    for line in ["line 2: not JSON", "line 4: no \"text\"", "line 5: the prompt is empty", "nothing was run"] {
        assert!(stderr.contains(line), "{line}: {stderr}");
    }
    assert!(!out.exists() && !profile.exists(), "nothing was run, so nothing was written");
}

/// `tokenscope sim --metrics-listen` serves Triton's Prometheus metrics beside the gRPC
/// service, each on a port the system picks, and says where both are.
#[tokio::test]
async fn sim_serves_metrics_where_it_says() {
    use tokio::io::AsyncBufReadExt;
    let _serial = timing_lock().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokenscope"))
        .args(["sim", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        // Plain log lines, whose fields can be read.
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("a line saying where the simulator listens");
            if line.contains("simulated Triton listening") {
                return line;
            }
        }
    })
    .await
    .expect("the addresses within 30 s");
    let field = |name: &str| {
        let value = line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}=")));
        value.unwrap_or_else(|| panic!("no {name} in {line:?}")).to_string()
    };
    let (address, metrics) = (field("address"), field("metrics"));
    assert!(metrics.starts_with("http://127.0.0.1:") && metrics.ends_with("/metrics"), "{line}");
    let triton = server::triton::Triton::connect(&address).await.expect("the gRPC service answers");
    assert!(triton.models().await.unwrap().iter().any(|m| m.name == "sim-vllm"));
    let scraped = crate::sim::scrape(&metrics).await;
    assert_eq!(crate::sim::series(&scraped, "nv_inference_request_success", Some("sim-vllm")), 0.0);
    let elsewhere = metrics.replace("/metrics", "/");
    assert_eq!(reqwest::get(elsewhere).await.unwrap().status(), 404);
    child.kill().await.unwrap();
}
