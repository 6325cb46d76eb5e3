//! Benchmark: what the dashboard costs a browser.
//!
//! 1. The release page's size: its WASM + JS files as the dashboard serves them to a browser
//!    that takes gzip, and to one that takes Brotli (browsers offer it over HTTPS and to
//!    localhost); and what each view makes a viewer and an operator download (goal for the
//!    heaviest: at most 400 KB gzipped).
//! 2. Redrawing the latency chart with 10,000 samples in headless Chromium, timed with
//!    `performance.now()` by the page at `/bench` (goal: median at most 16 ms).
//! 3. A run of about 200,000 token events against the simulator: the bytes its events take
//!    on the WebSocket per token event (goal: at most 24), and the page's longest main-thread
//!    task while it loads and starts, and while it then follows the run live, with the script
//!    callbacks that took the time in each long frame.
//!
//! Needs `scripts/build-frontend.sh` first (the page is embedded at build time) and Debian's
//! chromium + chromium-driver. Run with `cargo bench -p server --bench dashboard`.

#[path = "../tests/it/webdriver.rs"]
mod webdriver;

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use futures::StreamExt;
use serde_json::Value;
use server::dashboard::access::{Access, Roles, Secret, Viewers};
use server::dashboard::{self, AppState, DashboardConfig};
use server::sim::{self, SimConfig};
use shared::{RunEvent, SweepSpec};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const SIZE_GOAL: usize = 400_000;
const REDRAW_GOAL_MS: f64 = 16.0;
const BYTES_GOAL: f64 = 24.0;

#[tokio::main]
async fn main() {
    assert!(dashboard::has_frontend(), "build the page first: scripts/build-frontend.sh");
    println!("dashboard benchmark ({} cores)", std::thread::available_parallelism().map_or(0, |n| n.get()));

    let stop = CancellationToken::new();
    let config = SimConfig { prefill_base_ms: 2.0, prefill_per_token_ms: 0.0, decode_ms: 1.0, ..SimConfig::default() };
    let (sim_addr, sim_stop) = sim::spawn(config).await.expect("the simulator starts");
    let target = format!("http://{sim_addr}");
    let (base, _data) = start_dashboard(&target, Access::open(), &stop).await;

    bundle_size(&base).await;
    let driver = webdriver::start_driver().await;
    let client = webdriver::browser(&driver).await;
    redraw(&client, &base).await;
    streaming(&client, &base, &target).await;
    view_weights(&client, &target, &stop).await;
    client.close().await.unwrap();
    stop.cancel();
    sim_stop.cancel();
}

/// A dashboard on a free port with `access`, measuring `target` by default; its address, and
/// the folder that keeps its runs.
async fn start_dashboard(target: &str, access: Access, stop: &CancellationToken) -> (String, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("a temporary folder");
    let config = DashboardConfig {
        default_target: target.into(),
        simulator: Some(target.into()),
        simulator_protocols: Vec::new(),
        simulator_metrics: None,
        data_dir: data.path().into(),
        access,
        tokenizer_dirs: Vec::new(),
    };
    let state = AppState::open(config, stop.clone()).await.expect("the dashboard opens its store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(dashboard::serve(listener, state, stop.clone()));
    (base, data)
}

/// The page's WASM and JS as the dashboard serves them, gzipped and with Brotli, beside
/// their raw size.
async fn bundle_size(base: &str) {
    // The folder the server embedded (server/build.rs): TOKENSCOPE_DIST, or dist/.
    let dist = std::env::var_os("TOKENSCOPE_DIST")
        .map_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist"), Into::into);
    let http = reqwest::Client::new();
    let (mut gzip_total, mut brotli_total) = (0, 0);
    for entry in std::fs::read_dir(&dist).expect("dist/ exists") {
        let path = entry.unwrap().path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if ext != "wasm" && ext != "js" {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut sizes = [0; 2];
        for (size, coding) in sizes.iter_mut().zip(["gzip", "br"]) {
            let response = http.get(format!("{base}/{name}")).header("accept-encoding", coding).send().await.unwrap();
            assert_eq!(response.headers().get("content-encoding").map(|v| v.to_str().unwrap()), Some(coding), "{name}");
            *size = response.bytes().await.unwrap().len();
        }
        gzip_total += sizes[0];
        brotli_total += sizes[1];
        println!(
            "  {:>9} B raw  {:>8} B gzipped  {:>8} B Brotli, as served  {name}",
            std::fs::metadata(&path).unwrap().len(),
            sizes[0],
            sizes[1]
        );
    }
    println!(
        "all files: {gzip_total} B gzipped, {brotli_total} B with Brotli ({:.2} of gzip's); a view downloads \
         the main module and the chunks of its parts (below)",
        brotli_total as f64 / gzip_total as f64
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

async fn redraw(client: &Client, base: &str) {
    client.goto(&format!("{base}/bench")).await.unwrap();
    let start = Instant::now();
    // The page starts after its load event: wait for it.
    let wait = client.wait().at_most(Duration::from_secs(60));
    let figure = wait.for_element(Locator::Css("#bench-result")).await.expect("the /bench page starts");
    let result = loop {
        let text = figure.text().await.unwrap();
        if text != "running" {
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the redraw benchmark did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let figures: Value = serde_json::from_str(&result).unwrap_or_else(|_| panic!("the page reported {result}"));
    let median = figures["median_ms"].as_f64().expect("a median");
    println!(
        "chart redraw, {} samples on a {}x{} canvas: median {median:.2} ms, p90 {:.2} ms, max {:.2} ms over {} redraws; goal median at most {REDRAW_GOAL_MS} ms: {} ({:.2} of the goal)",
        figures["samples"],
        figures["canvas_px"][0],
        figures["canvas_px"][1],
        figures["p90_ms"].as_f64().unwrap_or(f64::NAN),
        figures["max_ms"].as_f64().unwrap_or(f64::NAN),
        figures["redraws"],
        verdict(median <= REDRAW_GOAL_MS),
        median / REDRAW_GOAL_MS
    );
}

/// Installed on the run's page as it opens: records its long tasks (50 ms and more), its long
/// animation frames with the script callbacks that took the time (Chromium's attribution), and
/// the longest gap between 10 ms timer ticks once the run's view is shown (`shown`, set by the
/// benchmark), a probe of responsiveness that needs no long-task support.
const PROBE: &str = r#"
    window.__probe = { tasks: [], frames: [], shown: null, longest_gap: 0, supported: true };
    try {
        new PerformanceObserver(list => {
            for (const e of list.getEntries()) window.__probe.tasks.push([e.startTime, e.duration]);
        }).observe({ type: 'longtask', buffered: true });
    } catch (e) { window.__probe.supported = false; }
    try {
        new PerformanceObserver(list => {
            for (const e of list.getEntries()) {
                if (e.duration < 50) continue;
                const scripts = e.scripts.map(s => `${s.invoker} ${Math.round(s.duration)} ms`).join(', ');
                window.__probe.frames.push([e.startTime, e.duration, scripts]);
            }
        }).observe({ type: 'long-animation-frame', buffered: true });
    } catch (e) {}
    let last = performance.now();
    setInterval(() => {
        const now = performance.now();
        if (window.__probe.shown !== null && last >= window.__probe.shown) {
            window.__probe.longest_gap = Math.max(window.__probe.longest_gap, now - last - 10);
        }
        last = now;
    }, 10);
"#;

/// The probe's long tasks or frames, `[start, duration, ..]` each: those that started before
/// the run's view was shown and those after, with the longest of each.
fn split_at_shown(entries: &Value, shown: f64) -> [(f64, Vec<&Value>); 2] {
    let mut out = [(0.0, Vec::new()), (0.0, Vec::new())];
    for entry in entries.as_array().into_iter().flatten() {
        let (start, duration) = (entry[0].as_f64().unwrap_or(0.0), entry[1].as_f64().unwrap_or(0.0));
        let side = &mut out[usize::from(start >= shown)];
        side.0 = f64::max(side.0, duration);
        side.1.push(entry);
    }
    out
}

async fn streaming(client: &Client, base: &str, target: &str) {
    let spec = SweepSpec {
        target: target.into(),
        model: "sim-vllm".into(),
        prompt_lengths: vec![16, 256, 1024, 4096],
        requests: 200,
        concurrency: 64,
        ..SweepSpec::default().generation_preset()
    };
    let http = reqwest::Client::new();
    let created: Value = http.post(format!("{base}/api/runs")).json(&spec).send().await.unwrap().json().await.unwrap();
    let id = created["id"].as_str().unwrap_or_else(|| panic!("the run started: {created}")).to_string();
    let started = Instant::now();

    // A socket from the start counts what goes over the wire.
    let ws = format!("{}/api/runs/{id}/events", base.replace("http://", "ws://"));
    let counter = tokio::spawn(async move {
        let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
        let (mut messages, mut payload, mut framed, mut token_events, mut tokens) = (0u64, 0u64, 0u64, 0u64, 0u64);
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else { continue };
            let len = text.len() as u64;
            messages += 1;
            payload += len;
            // Server frames are unmasked: a 2-byte header, plus 2 or 8 bytes of length.
            framed += len
                + if len < 126 {
                    2
                } else if len < 65_536 {
                    4
                } else {
                    10
                };
            if let Ok(RunEvent::Batch(batch)) = serde_json::from_str::<RunEvent>(&text) {
                for (_, _, n) in batch.tokens() {
                    token_events += 1;
                    tokens += u64::from(n);
                }
            }
        }
        (messages, payload, framed, token_events, tokens)
    });

    client.goto(&format!("{base}/runs/{id}")).await.unwrap();
    client.execute(PROBE, vec![]).await.unwrap();
    // The page has loaded and started once the run's view is there; what follows is following
    // the run.
    client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("#run-status"))
        .await
        .expect("the run's view");
    client.execute("window.__probe.shown = performance.now();", vec![]).await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(300))
        .for_element(Locator::Css("#run-status[data-state='completed']"))
        .await
        .expect("the run completes");
    let run_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let probe = client.execute("return window.__probe;", vec![]).await.unwrap();
    let (messages, payload, framed, token_events, tokens) = counter.await.unwrap();
    let per_event = framed as f64 / token_events.max(1) as f64;
    println!(
        "live run: {token_events} token events ({tokens} tokens) in {run_s:.1} s, {messages} WebSocket messages, \
         {payload} B of payload, {framed} B with frame headers"
    );
    println!(
        "bytes per token event (every event of the run, framed): {per_event:.2}; goal at most {BYTES_GOAL}: {} ({:.2} of the goal)",
        verdict(per_event <= BYTES_GOAL),
        per_event / BYTES_GOAL
    );
    let shown = probe["shown"].as_f64().unwrap_or(0.0);
    let [(load_task, _), (after_task, after)] = split_at_shown(&probe["tasks"], shown);
    println!(
        "page: longest main-thread task {load_task:.0} ms while it loaded and started (the run's view shown after \
         {shown:.0} ms), {after_task:.0} ms while it followed the run ({} tasks of 50 ms or more{}); longest stall \
         of a 10 ms timer while following {:.0} ms",
        after.len(),
        if probe["supported"].as_bool() == Some(false) { "; long tasks not supported" } else { "" },
        probe["longest_gap"].as_f64().unwrap_or(f64::NAN)
    );
    // What took the time, in Chromium's words: the frame's script callbacks, by what invoked them.
    for (when, (_, frames)) in ["loading", "following"].into_iter().zip(split_at_shown(&probe["frames"], shown)) {
        for frame in frames {
            println!(
                "  {when}: a {:.0} ms frame at {:.0} ms: {}",
                frame[1].as_f64().unwrap_or(0.0),
                frame[0].as_f64().unwrap_or(0.0),
                frame[2]
            );
        }
    }
}

/// What each view makes a browser download, for a viewer and for an operator: the WASM and
/// JS its visit fetched (the module every page loads, and the chunks the view's parts come
/// from), gzipped and with Brotli as the dashboard serves them. A dashboard with an operator
/// token, whose other visitors are viewers, serves the views of two small runs of the simulator.
async fn view_weights(client: &Client, target: &str, stop: &CancellationToken) {
    const TOKEN: &str = "bench-operator-token-0001";
    let access = Access {
        roles: Roles::Tokens { operator: Secret::new(TOKEN).unwrap(), viewers: Viewers::Open },
        ..Access::open()
    };
    let (base, _data) = start_dashboard(target, access, stop).await;
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    // A prefill sweep, and a sweep over load levels, whose page also has throughput charts.
    for concurrencies in [vec![], vec![1, 4]] {
        let spec = SweepSpec {
            target: target.into(),
            model: "sim-vllm".into(),
            requests: 4,
            concurrencies,
            ..SweepSpec::default()
        };
        let response = http.post(format!("{base}/api/runs")).bearer_auth(TOKEN).json(&spec).send().await.unwrap();
        let created: Value = response.json().await.unwrap();
        let id = created["id"].as_str().unwrap_or_else(|| panic!("the run started: {created}")).to_string();
        // One run at a time: the next starts once this one is done.
        let url = format!("{base}/api/runs/{id}");
        let started = Instant::now();
        while http.get(&url).bearer_auth(TOKEN).send().await.unwrap().json::<Value>().await.unwrap()["status"]["state"]
            == "running"
        {
            assert!(started.elapsed() < Duration::from_secs(60), "the run {id} did not finish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ids.push(id);
    }
    // Each view with what shows it is there, for a viewer and for an operator: a new sweep
    // shows a viewer a note, an operator the form, which an operator's run page also has.
    let done = "#run-status[data-state='completed']";
    let views: [(&str, String, &[&str], &[&str]); 5] = [
        ("the runs list", "/runs".into(), &["#runs-list"], &["#runs-list"]),
        ("a new sweep", "/".into(), &["#viewer-note"], &["#model"]),
        ("a run", format!("/runs/{}", ids[0]), &[done], &[done, "#model"]),
        (
            "a run over load levels",
            format!("/runs/{}", ids[1]),
            &[done, "#throughput-charts"],
            &[done, "#throughput-charts", "#model"],
        ),
        ("a comparison", format!("/compare?runs={}", ids.join(",")), &["#compare-title"], &["#compare-title"]),
    ];
    println!("what each view downloads (WASM + JS, as served):");
    let mut heaviest = None::<(usize, String)>;
    for role in ["a viewer", "an operator"] {
        if role == "an operator" {
            client.goto(&format!("{base}/signin")).await.unwrap();
            client.find(Locator::Css("input#token")).await.unwrap().send_keys(TOKEN).await.unwrap();
            client.find(Locator::Css("button#signin")).await.unwrap().click().await.unwrap();
            client.wait().for_element(Locator::Css("#role[data-role='operator']")).await.expect("signed in");
        }
        for (label, path, for_viewer, for_operator) in &views {
            client.goto(&format!("{base}{path}")).await.unwrap();
            for marker in if role == "a viewer" { *for_viewer } else { *for_operator } {
                let wait = client.wait().at_most(Duration::from_secs(60));
                wait.for_element(Locator::Css(marker)).await.unwrap_or_else(|_| panic!("{label} shows {marker}"));
            }
            let (files, gzip, brotli) = fetched(client, &base, &http).await;
            println!(
                "  {label} for {role}: {gzip} B gzipped, {brotli} B with Brotli, in {} files ({})",
                files.len(),
                files.join(" ")
            );
            if heaviest.as_ref().is_none_or(|(most, _)| gzip > *most) {
                heaviest = Some((gzip, format!("{label} for {role}")));
            }
        }
    }
    let (most, which) = heaviest.expect("views were measured");
    println!(
        "page size: the heaviest view, {which}, downloads {most} B gzipped (WASM + JS); goal at most {SIZE_GOAL} B: \
         {} ({:.2} of the goal)",
        verdict(most <= SIZE_GOAL),
        most as f64 / SIZE_GOAL as f64
    );
}

/// The WASM and JS files the page fetched, named without their hashes, and their sizes
/// gzipped and with Brotli as served.
async fn fetched(client: &Client, base: &str, http: &reqwest::Client) -> (Vec<String>, usize, usize) {
    let script = "return [...new Set(performance.getEntriesByType('resource').map(e => new URL(e.name).pathname))]
        .filter(p => p.endsWith('.wasm') || p.endsWith('.js'));";
    let paths: Vec<String> = serde_json::from_value(client.execute(script, vec![]).await.unwrap()).unwrap();
    let (mut gzip, mut brotli) = (0, 0);
    for path in &paths {
        for (total, coding) in [(&mut gzip, "gzip"), (&mut brotli, "br")] {
            let response = http.get(format!("{base}{path}")).header("accept-encoding", coding).send().await.unwrap();
            *total += response.bytes().await.unwrap().len();
        }
    }
    let names = paths.iter().map(|path| {
        let name = path.trim_start_matches('/');
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
        let stem = stem.rsplit_once('-').map_or(stem, |(stem, _hash)| stem);
        format!("{stem}{}.{ext}", if name.ends_with("_bg.wasm") { "_bg" } else { "" })
    });
    (names.collect(), gzip, brotli)
}
