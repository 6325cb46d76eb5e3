//! The dashboard in real headless Chromium, driven over WebDriver (chromedriver): the
//! clicks a user makes, the charts it draws and the numbers it shows.

use std::time::Duration;

use fantoccini::{Client, Locator};
use futures::FutureExt;
use serde_json::{Value, json};
use shared::SweepSpec;
use shared::api::RunSummary;

use crate::dashboard::{fast_sim, post, spec_json, wait_finished};
use crate::support::{start_dashboard, timing_lock};
use crate::webdriver::{browser, downloading_browser, offline_browser, start_driver};

fn need_frontend() {
    assert!(
        server::dashboard::has_frontend(),
        "this test binary has no dashboard page: build it first with scripts/build-frontend.sh (scripts/test.sh does)"
    );
}

/// Pixels of a canvas that are neither transparent nor its background, and those near `rgb`.
async fn painted(client: &Client, id: &str, rgb: [u8; 3]) -> (u64, u64) {
    let script = r#"
        const [id, rgb] = arguments;
        const canvas = document.getElementById(id);
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        const bg = [data[0], data[1], data[2]];
        let ink = 0, near = 0;
        for (let i = 0; i < data.length; i += 4) {
            const d = Math.abs(data[i] - bg[0]) + Math.abs(data[i + 1] - bg[1]) + Math.abs(data[i + 2] - bg[2]);
            if (data[i + 3] > 0 && d > 30) ink++;
            const e = Math.abs(data[i] - rgb[0]) + Math.abs(data[i + 1] - rgb[1]) + Math.abs(data[i + 2] - rgb[2]);
            if (e < 60) near++;
        }
        return [ink, near];
    "#;
    let value = client.execute(script, vec![json!(id), json!(rgb)]).await.unwrap();
    (value[0].as_u64().unwrap(), value[1].as_u64().unwrap())
}

async fn wait_for_text(client: &Client, css: &str, text: &str, within: Duration) {
    let start = std::time::Instant::now();
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && element.text().await.is_ok_and(|t| t.contains(text))
        {
            return;
        }
        assert!(start.elapsed() < within, "{css} did not show {text:?} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for an element to be on the page. A look that fails while the page is navigating
/// ("aborted by navigation", a stale document) is tried again until `within` has passed.
async fn wait_for_element(
    client: &Client,
    css: &str,
    within: Duration,
) -> Result<fantoccini::elements::Element, String> {
    let start = std::time::Instant::now();
    loop {
        let last = match client.find(Locator::Css(css)).await {
            Ok(element) => return Ok(element),
            Err(err) => err,
        };
        if start.elapsed() >= within {
            return Err(format!("{css} was not on the page within {within:?}: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types the prompt lengths and the requests per length, waits for the form to show `parsed`,
/// clicks Run and waits until the run has completed.
async fn run_by_clicking(client: &Client, lengths: &str, requests: &str, parsed: &str) {
    let field = client.find(Locator::Css("#prompt-lengths")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(lengths).await.unwrap();
    let field = client.find(Locator::Css("#requests")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(requests).await.unwrap();
    wait_for_text(client, ".sweep-form", parsed, Duration::from_secs(5)).await;
    client.find(Locator::Css("#run")).await.unwrap().click().await.unwrap();
    let completed = wait_for_element(client, "#run-status[data-state='completed']", Duration::from_secs(60)).await;
    if let Err(err) = completed {
        // Say what the page shows instead: the form's problems, or the run's status.
        let shown = client
            .execute(
                "return ['#form-problems', '.error', '#run-status', '#progress-text']
                    .map(s => s + ': ' + (document.querySelector(s)?.textContent ?? '(none)')).join(' | ');",
                vec![],
            )
            .await
            .unwrap_or_default();
        panic!("the run did not complete within 60 s ({err}); the page shows {shown}");
    }
}

/// Lengths drawn per request from the form reach the server, and the page draws them.
#[tokio::test]
async fn drawn_lengths_from_the_form_fill_their_histogram() {
    need_frontend();
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        client.goto(&dash.base).await.unwrap();
        wait_for_text(&client, "#model", "sim-vllm", Duration::from_secs(20)).await;
        for (id, value) in [("#prompt-stddev", "30"), ("#shared-prefix", "8"), ("#seed", "3")] {
            let field = client.find(Locator::Css(id)).await.unwrap();
            field.clear().await.unwrap();
            field.send_keys(value).await.unwrap();
        }
        run_by_clicking(&client, "64,256", "12", "2 lengths: [64, 256]").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let url = client.current_url().await.unwrap();
        let id = url.path().strip_prefix("/runs/").expect("the address names the run").to_string();
        let (_, bars) = painted(&client, "chart-prompt-lengths", [9, 105, 218]).await;
        assert!(bars > 200, "the prompt lengths have no bars: {bars} pixels of their colour");
        let summary: RunSummary =
            reqwest::get(format!("{}/api/runs/{id}", dash.base)).await.unwrap().json().await.unwrap();
        assert_eq!(
            (summary.spec.prompt_stddev, summary.spec.shared_prefix, summary.spec.seed),
            (Some(30.0), Some(8), 3)
        );
        for point in &summary.points {
            let sent = point.prompt_lengths_sent.as_ref().expect("lengths were drawn");
            assert!(sent.min < sent.max && sent.min > 8.0, "{sent:?}");
        }
    })
    .catch_unwind()
    .await;
    client.close().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn a_prefill_sweep_by_clicking() {
    need_frontend();
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    // The browser is closed whether the checks pass or not, so no Chromium outlives the test.
    let result = std::panic::AssertUnwindSafe(async {
        client.goto(&dash.base).await.unwrap();
        // The form fills its model list from the simulator.
        wait_for_text(&client, "#model", "sim-vllm", Duration::from_secs(20)).await;
        wait_for_text(&client, "form", "built-in simulated Triton", Duration::from_secs(5)).await;
        client.find(Locator::Css("#preset-prefill")).await.unwrap().click().await.unwrap();
        run_by_clicking(&client, "16,128,1024", "6", "3 lengths: [16, 128, 1024]").await;
        // The last frame has been drawn.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let url = client.current_url().await.unwrap();
        let id = url.path().strip_prefix("/runs/").expect("the address names the run").to_string();

        // The charts drew: axes and text, and the mean line in the TTFT chart and the bars.
        let line = [9, 105, 218];
        for chart in ["chart-ttft", "chart-t2t", "chart-histogram", "chart-timeline", "chart-prompt-lengths"] {
            let (ink, _) = painted(&client, chart, line).await;
            assert!(ink > 2000, "{chart} looks blank: {ink} painted pixels");
        }
        let (_, bars) = painted(&client, "chart-prompt-lengths", line).await;
        assert!(bars > 200, "the prompt lengths have no bar: {bars} pixels of its colour");
        let script = "return [...document.querySelectorAll('#points-table td[data-metric=server-queue]')]
            .filter(td => td.dataset.value !== '').length;";
        let queues = client.execute(script, vec![]).await.unwrap();
        assert_eq!(queues, json!(3), "each point has the server's queue time");
        let (_, ttft_line) = painted(&client, "chart-ttft", line).await;
        assert!(ttft_line > 200, "the TTFT mean line is missing: {ttft_line} pixels of its colour");
        let (_, bars) = painted(&client, "chart-histogram", line).await;
        assert!(bars > 200, "the histogram has no bars: {bars} pixels of their colour");

        // Pointing at the first mean marker shows its values.
        client
            .execute(
                r#"const canvas = document.getElementById('chart-ttft');
                   const [x, y] = canvas.dataset.markers.split(';')[0].split(',').map(Number);
                   const box = canvas.getBoundingClientRect();
                   canvas.dispatchEvent(new MouseEvent('mousemove',
                       { clientX: box.left + x, clientY: box.top + y, bubbles: true }));"#,
                vec![],
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tooltip = client
            .execute("return document.querySelector('[data-chart=ttft] .tooltip')?.textContent ?? '';", vec![])
            .await
            .unwrap();
        let tooltip = tooltip.as_str().unwrap();
        assert!(tooltip.starts_with("prompt length 16: mean ") && tooltip.contains("p99"), "tooltip: {tooltip:?}");

        // The table's numbers are the API's.
        let summary: RunSummary =
            reqwest::get(format!("{}/api/runs/{id}", dash.base)).await.unwrap().json().await.unwrap();
        assert_eq!(summary.points.len(), 3);
        let cells = client
            .execute(
                r#"return [...document.querySelectorAll('#points-table tbody tr')].map(row =>
                    Object.fromEntries([...row.querySelectorAll('td[data-metric]')]
                        .map(td => [td.dataset.metric, td.dataset.value])));"#,
                vec![],
            )
            .await
            .unwrap();
        let rows = cells.as_array().unwrap();
        assert_eq!(rows.len(), summary.points.len());
        for (row, point) in rows.iter().zip(&summary.points) {
            let value = |key: &str| -> f64 { row[key].as_str().unwrap().parse().unwrap() };
            let ttft = point.ttft_ms.as_ref().unwrap();
            assert_eq!(value("count"), point.count as f64);
            assert_eq!(value("errors"), point.errors as f64);
            assert_eq!(
                [value("ttft-mean"), value("ttft-p50"), value("ttft-p90"), value("ttft-p99")],
                [ttft.mean, ttft.p50, ttft.p90, ttft.p99]
            );
            assert_eq!(value("tokens-per-s"), point.output_tokens_per_s);
        }

        let shot = client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dashboard-prefill.png");
        std::fs::write(&path, shot).unwrap();
        eprintln!("screenshot: {}", path.display());

        // A shared link opens the same run, rebuilt from the server's log.
        client.goto(url.as_str()).await.unwrap();
        wait_for_element(&client, "#run-status[data-state='completed']", Duration::from_secs(20)).await
            .unwrap();
        let rows =
            client.execute("return document.querySelectorAll('#points-table tbody tr').length;", vec![]).await.unwrap();
        assert_eq!(rows, Value::from(3));

        // The profile export the real perf_analyzer wrote against the real tritonserver (its
        // tutorial_like model: cumulative text, empty finals), picked in the page, opens as a run
        // with the same charts (scripts/make-pa-fixture.sh made it).
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pa-triton-tutorial.json");
        client.goto(&dash.base).await.unwrap();
        let picker =
            wait_for_element(&client, "#import-file", Duration::from_secs(20)).await.unwrap();
        picker.send_keys(file.to_str().unwrap()).await.unwrap();
        let start = std::time::Instant::now();
        let imported = loop {
            let path = client.current_url().await.unwrap().path().to_string();
            if let Some(new) = path.strip_prefix("/runs/").filter(|new| *new != id) {
                break new.to_string();
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the import did not open a run");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        wait_for_element(&client, "#run-status[data-state='completed']", Duration::from_secs(20)).await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, line_pixels) = painted(&client, "chart-ttft", line).await;
        assert!(line_pixels > 200, "the imported run's TTFT line is missing");
        let (_, t2t_pixels) = painted(&client, "chart-t2t", line).await;
        assert!(t2t_pixels > 200, "the imported run's token-to-token line is missing");
        let means = client
            .execute(
                "return [...document.querySelectorAll('#points-table td[data-metric=ttft-mean]')].map(td => Number(td.dataset.value));",
                vec![],
            )
            .await
            .unwrap();
        let imported_summary: RunSummary =
            reqwest::get(format!("{}/api/runs/{imported}", dash.base)).await.unwrap().json().await.unwrap();
        let expected: Vec<f64> = imported_summary.points.iter().map(|p| p.ttft_ms.as_ref().unwrap().mean).collect();
        assert_eq!(imported_summary.spec.prompt_lengths, vec![8, 32, 128]);
        assert_eq!(means, serde_json::to_value(&expected).unwrap());

        // A model that is not decoupled: the form says how to measure it, and unticking
        // Streaming times whole responses, which the run says, with no token-to-token line.
        client.goto(&dash.base).await.unwrap();
        wait_for_text(&client, "#model", "sim-unary", Duration::from_secs(20)).await;
        client.find(Locator::Css("#model")).await.unwrap().select_by_value("sim-unary").await.unwrap();
        wait_for_text(&client, "#form-problems", "untick Streaming", Duration::from_secs(5)).await;
        client.find(Locator::Css("#streaming")).await.unwrap().click().await.unwrap();
        run_by_clicking(&client, "16,256", "3", "2 lengths: [16, 256]").await;
        wait_for_text(&client, "#non-streaming-note", "TTFT is the whole request's latency", Duration::from_secs(5))
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, ttft_line) = painted(&client, "chart-ttft", line).await;
        assert!(ttft_line > 200, "the non-streaming TTFT line is missing: {ttft_line} pixels");
        let (_, t2t_line) = painted(&client, "chart-t2t", line).await;
        assert!(t2t_line < 20, "a non-streaming run has no token-to-token line: {t2t_line} pixels");

        // A link to a run the server does not have says so, instead of retrying forever.
        client.goto(&format!("{}/runs/no-such-run", dash.base)).await.unwrap();
        wait_for_text(&client, ".run .error", "there is no run \"no-such-run\"", Duration::from_secs(20)).await;

        // A wrong address says what is wrong in the form.
        client.goto(&dash.base).await.unwrap();
        wait_for_text(&client, "#model", "sim-vllm", Duration::from_secs(20)).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let target = client.find(Locator::Css("#target")).await.unwrap();
        target.clear().await.unwrap();
        target.send_keys(&format!("127.0.0.1:{port}")).await.unwrap();
        client.find(Locator::Css(".target button")).await.unwrap().click().await.unwrap();
        wait_for_text(&client, ".target .error", "cannot reach Triton", Duration::from_secs(20)).await;
    })
    .catch_unwind()
    .await;
    client.close().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Waits until a script's answer equals `expected`; returns the last answer otherwise.
async fn wait_for_js(client: &Client, script: &str, expected: &Value, within: Duration) -> Value {
    let start = std::time::Instant::now();
    loop {
        let value = client.execute(script, vec![]).await.unwrap();
        if &value == expected || start.elapsed() > within {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a run through the API and waits until it has finished.
async fn run_via_api(base: &str, spec: &Value) -> String {
    let (status, body) = post(&format!("{base}/api/runs"), spec).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    wait_finished(base, &id).await;
    id
}

async fn open_run(client: &Client, url: &str) {
    client.goto(url).await.unwrap();
    wait_for_element(client, "#run-status[data-state='completed']", Duration::from_secs(20))
        .await
        .expect("the run page shows the completed run");
    // The last frame has been drawn.
    tokio::time::sleep(Duration::from_millis(400)).await;
}

/// Everything a run's page shows that a link must reproduce: the controls, the charts'
/// scales, series and markers, the inspector's captions and every number of the table.
const VIEW_STATE: &str = r#"
    const el = id => document.getElementById(id);
    const chart = id => el(id) && ['data-x-scale', 'data-y-scale', 'data-series', 'data-markers'].map(a => el(id).getAttribute(a));
    return {
        metric: el('view-metric').value, x: el('view-x').value, y: el('view-y').value,
        series: [...document.querySelectorAll('#view-controls .series input')].map(i => i.id + '=' + i.checked),
        point: el('inspect-point').value, request: el('inspect-request').value,
        ttft: chart('chart-ttft'), t2t: chart('chart-t2t'),
        timeline: document.querySelector('[data-chart=timeline] figcaption').textContent,
        histogram: document.querySelector('[data-chart=histogram] figcaption').textContent,
        table: [...document.querySelectorAll('#points-table td[data-metric]')].map(td => td.dataset.metric + '=' + td.dataset.value),
    };
"#;

/// Painted pixels of the charts a view shows, to compare two drawings of it.
async fn ink(client: &Client) -> Vec<u64> {
    let mut out = Vec::new();
    for chart in ["chart-ttft", "chart-histogram", "chart-timeline"] {
        out.push(painted(client, chart, [9, 105, 218]).await.0);
    }
    out
}

#[tokio::test]
async fn a_link_reproduces_a_runs_view() {
    need_frontend();
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let driver = start_driver().await;
    let id = run_via_api(&dash.base, &spec_json(&dash.sim.target, "sim-vllm")).await;
    let client = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        open_run(&client, &format!("{}/runs/{id}", dash.base)).await;
        let default = client.execute(VIEW_STATE, vec![]).await.unwrap();
        assert_eq!(default["x"], "auto");
        assert_eq!(default["ttft"][2], "mean,band,dots", "single requests are drawn by default");
        assert_eq!(default["ttft"][0], "log", "16 to 128 spans a factor of 8: a log axis");

        // Non-default controls; each one lands in the address bar.
        let select = |id: &'static str, value: &'static str| {
            let client = client.clone();
            async move { client.find(Locator::Id(id)).await.unwrap().select_by_value(value).await.unwrap() }
        };
        select("view-metric", "ttft").await;
        select("view-x", "linear").await;
        select("view-y", "log").await;
        client.find(Locator::Id("series-dots")).await.unwrap().click().await.unwrap();
        client.find(Locator::Id("series-p90")).await.unwrap().click().await.unwrap();
        select("inspect-point", "64").await;
        let request = client.find(Locator::Id("inspect-request")).await.unwrap();
        request.clear().await.unwrap();
        request.send_keys("2").await.unwrap();
        let expected = "?metric=ttft&x=linear&y=log&series=mean%2Cp90%2Cband&len=64&req=2";
        let start = std::time::Instant::now();
        let url = loop {
            let url = client.current_url().await.unwrap();
            if url.query().map(|q| format!("?{q}")).as_deref() == Some(expected) {
                break url;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "the address bar shows {url}, not ...{expected}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(url.path(), format!("/runs/{id}"));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let state = client.execute(VIEW_STATE, vec![]).await.unwrap();
        assert_eq!(state["metric"], "ttft");
        assert_eq!(state["t2t"], Value::Null, "the token-to-token chart is hidden");
        assert_eq!(state["ttft"][0], "linear");
        assert_eq!(state["ttft"][1], "log");
        assert_eq!(state["ttft"][2], "mean,p90,band");
        assert!(state["timeline"].as_str().unwrap().contains("prompt length 64, request 2"), "{state}");
        assert!(state["histogram"].as_str().unwrap().contains("prompt length 64"), "{state}");
        let drawn = ink(&client).await;

        // Copy link: copied, or shown for copying by hand where there is no clipboard.
        client.find(Locator::Id("copy-link")).await.unwrap().click().await.unwrap();
        let copied = wait_for_js(
            &client,
            "const f = document.getElementById('copy-link-field');
             return document.getElementById('copy-link-status')?.textContent ?? (f ? f.value : null);",
            &Value::from("Link copied"),
            Duration::from_secs(5),
        )
        .await;
        assert!(copied == "Link copied" || copied == url.as_str(), "copy link: {copied}");
        eprintln!("copy link: {copied}");
        let shot = client.screenshot().await.unwrap();
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e/dashboard-view.png");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, shot).unwrap();
        eprintln!("screenshot: {}", path.display());

        // A fresh browser (a new profile) opening the address sees the same view.
        let fresh = browser(&driver).await;
        let seen = std::panic::AssertUnwindSafe(async {
            open_run(&fresh, url.as_str()).await;
            let again = fresh.execute(VIEW_STATE, vec![]).await.unwrap();
            assert_eq!(again, state);
            let drawn_again = ink(&fresh).await;
            for (a, b) in drawn.iter().zip(&drawn_again) {
                assert!(a.abs_diff(*b) * 50 <= *a.max(b), "the charts differ: {drawn:?} against {drawn_again:?}");
            }
            assert_eq!(fresh.current_url().await.unwrap(), url, "opening the link keeps it as it is");
        })
        .catch_unwind()
        .await;
        fresh.close().await.unwrap();
        if let Err(panic) = seen {
            std::panic::resume_unwind(panic);
        }

        // Rerun… opens the form filled with the run's spec.
        let rerun = client.find(Locator::Id("rerun")).await.unwrap().attr("href").await.unwrap().unwrap();
        assert!(rerun.starts_with("/new?spec=%7B"), "{rerun}");
        client.goto(&format!("{}{rerun}", dash.base)).await.unwrap();
        wait_for_text(&client, "#model", "sim-vllm", Duration::from_secs(20)).await;
        let form = wait_for_js(
            &client,
            "return ['prompt-lengths', 'max-tokens', 'requests', 'warmup', 'concurrency', 'model']
                .map(id => document.getElementById(id).value);",
            &json!(["16,64,128", "8", "4", "1", "2", "sim-vllm"]),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(form, json!(["16,64,128", "8", "4", "1", "2", "sim-vllm"]));

        // Name, notes and tags, saved on the server and shown.
        open_run(&client, &format!("{}/runs/{id}", dash.base)).await;
        client.find(Locator::Css("#run-edit summary")).await.unwrap().click().await.unwrap();
        for (field, text) in
            [("edit-name", "baseline"), ("edit-tags", "fp8, nightly, fp8"), ("edit-notes", "first try")]
        {
            let input = client.find(Locator::Id(field)).await.unwrap();
            input.clear().await.unwrap();
            input.send_keys(text).await.unwrap();
        }
        client.find(Locator::Id("edit-save")).await.unwrap().click().await.unwrap();
        wait_for_text(&client, "#edit-status", "Saved", Duration::from_secs(5)).await;
        wait_for_text(&client, "#run-title", "baseline", Duration::from_secs(5)).await;
        wait_for_text(&client, "#run-tags", "nightly", Duration::from_secs(5)).await;
        wait_for_text(&client, "#runs-list", "baseline", Duration::from_secs(5)).await;
        let summary: RunSummary =
            reqwest::get(format!("{}/api/runs/{id}", dash.base)).await.unwrap().json().await.unwrap();
        assert_eq!((summary.name.as_str(), summary.notes.as_str()), ("baseline", "first try"));
        assert_eq!(summary.tags, ["fp8", "nightly"]);

        // Delete asks in the page first; No keeps the run, Yes deletes it and opens the list.
        client.find(Locator::Id("delete")).await.unwrap().click().await.unwrap();
        wait_for_text(&client, "#delete-confirm", "Delete run baseline?", Duration::from_secs(5)).await;
        client.find(Locator::Id("delete-no")).await.unwrap().click().await.unwrap();
        wait_for_element(&client, "#delete", Duration::from_secs(5)).await.unwrap();
        client.find(Locator::Id("delete")).await.unwrap().click().await.unwrap();
        client.find(Locator::Id("delete-yes")).await.unwrap().click().await.unwrap();
        let start = std::time::Instant::now();
        while client.current_url().await.unwrap().path() != "/runs" {
            assert!(start.elapsed() < Duration::from_secs(5), "deleting did not open the runs list");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = reqwest::get(format!("{}/api/runs/{id}", dash.base)).await.unwrap().status();
        assert_eq!(status, 404);
        wait_for_text(&client, "#runs-empty", "No runs yet", Duration::from_secs(5)).await;
    })
    .catch_unwind()
    .await;
    client.close().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn sweep_links_and_the_runs_list() {
    need_frontend();
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let driver = start_driver().await;
    let older = run_via_api(&dash.base, &spec_json(&dash.sim.target, "sim-vllm")).await;
    let newer = run_via_api(&dash.base, &spec_json(&dash.sim.target, "sim-tutorial")).await;
    let tagged = reqwest::Client::new()
        .patch(format!("{}/api/runs/{newer}", dash.base))
        .json(&json!({ "tags": ["nightly"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.status(), 200);
    let client = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        // A spec in the link fills the form.
        let spec = SweepSpec {
            target: dash.sim.target.clone(),
            model: "sim-trtllm".into(),
            prompt_lengths: vec![32, 512],
            max_tokens: 7,
            requests: 5,
            concurrency: 2,
            ..SweepSpec::default()
        };
        let spec_json = serde_json::to_string(&spec).unwrap();
        let link = reqwest::Url::parse_with_params(&format!("{}/new", dash.base), [("spec", spec_json)]).unwrap();
        client.goto(link.as_str()).await.unwrap();
        wait_for_text(&client, "#model", "sim-trtllm", Duration::from_secs(20)).await;
        let fields = "return ['target', 'model', 'prompt-lengths', 'max-tokens', 'requests', 'concurrency']
            .map(id => document.getElementById(id).value);";
        let expected = json!([dash.sim.target, "sim-trtllm", "32,512", "7", "5", "2"]);
        assert_eq!(wait_for_js(&client, fields, &expected, Duration::from_secs(5)).await, expected);
        assert!(client.find(Locator::Id("spec-error")).await.is_err(), "a good spec shows no error");
        // Its own link carries the same spec.
        client.find(Locator::Id("copy-sweep-link")).await.unwrap().click().await.unwrap();
        let copied = wait_for_js(
            &client,
            "const f = document.getElementById('copy-sweep-link-field');
             return document.getElementById('copy-sweep-link-status')?.textContent ?? (f ? f.value : null);",
            &Value::from("Link copied"),
            Duration::from_secs(5),
        )
        .await;
        assert!(copied == "Link copied" || copied.as_str().is_some_and(|u| u.contains("/new?spec=")), "{copied}");

        // A broken spec says so and leaves the form at its defaults.
        client.goto(&format!("{}/new?spec=%7Bnot-json", dash.base)).await.unwrap();
        wait_for_text(&client, "#spec-error", "The link's sweep spec could not be read", Duration::from_secs(20)).await;
        let lengths = wait_for_js(
            &client,
            "return document.getElementById('prompt-lengths')?.value ?? null;",
            &Value::from("16,64,256,1024"),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(lengths, "16,64,256,1024");

        // The runs list: newest first, filtered in the page and in its address.
        let rows = "return [...document.querySelectorAll('#runs-list tbody tr')].map(r => r.dataset.run);";
        client.goto(&format!("{}/runs", dash.base)).await.unwrap();
        let both = json!([newer, older]);
        assert_eq!(wait_for_js(&client, rows, &both, Duration::from_secs(20)).await, both);
        wait_for_text(&client, "#runs-list", "sim-tutorial", Duration::from_secs(5)).await;
        wait_for_text(&client, "#runs-list", "completed", Duration::from_secs(5)).await;
        client.find(Locator::Id("filter-model")).await.unwrap().send_keys("tutorial").await.unwrap();
        assert_eq!(wait_for_js(&client, rows, &json!([newer]), Duration::from_secs(5)).await, json!([newer]));
        let filter = client.find(Locator::Id("filter-model")).await.unwrap();
        filter.clear().await.unwrap();
        client.find(Locator::Id("filter-tag")).await.unwrap().send_keys("night").await.unwrap();
        assert_eq!(wait_for_js(&client, rows, &json!([newer]), Duration::from_secs(5)).await, json!([newer]));
        let start = std::time::Instant::now();
        while client.current_url().await.unwrap().query() != Some("tag=night") {
            assert!(start.elapsed() < Duration::from_secs(5), "the filter is not in the address");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // An address with filters opens with them set.
        client.goto(&format!("{}/runs?model=vllm", dash.base)).await.unwrap();
        assert_eq!(wait_for_js(&client, rows, &json!([older]), Duration::from_secs(20)).await, json!([older]));
        let value = client.find(Locator::Id("filter-model")).await.unwrap().prop("value").await.unwrap();
        assert_eq!(value.as_deref(), Some("vllm"));
        client.goto(&format!("{}/?target=no-such-host", dash.base)).await.unwrap();
        wait_for_text(&client, "#runs-empty", "No run matches these filters", Duration::from_secs(20)).await;
    })
    .catch_unwind()
    .await;
    client.close().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// A run the store could not take says so on its page and in the list, and its exports,
/// all there is of it, are linked from its page.
#[tokio::test]
async fn a_run_the_store_could_not_take_says_so_and_links_its_exports() {
    need_frontend();
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    // A closed store fails every write, as a full disk would.
    dash.state.runs().store().close().await;
    let id = run_via_api(&dash.base, &spec_json(&dash.sim.target, "sim-vllm")).await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        open_run(&client, &format!("{}/runs/{id}", dash.base)).await;
        wait_for_text(&client, "#run-not-saved", "Not saved", Duration::from_secs(5)).await;
        wait_for_text(&client, "#run-not-saved", "download its exports", Duration::from_secs(5)).await;
        let links = client
            .execute("return [...document.querySelectorAll('#exports a.export')].map(a => a.href);", vec![])
            .await
            .unwrap();
        let links: Vec<String> = serde_json::from_value(links).unwrap();
        let expected: Vec<String> =
            shared::api::EXPORTS.iter().map(|(file, _)| format!("{}/api/runs/{id}/export/{file}", dash.base)).collect();
        assert_eq!(links, expected);
        for link in &links {
            let response = reqwest::get(link).await.unwrap();
            assert_eq!(response.status(), 200, "{link}");
        }
        client.goto(&format!("{}/runs", dash.base)).await.unwrap();
        wait_for_text(&client, "#runs-list .not-saved", "not saved", Duration::from_secs(20)).await;
    })
    .catch_unwind()
    .await;
    client.close().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Every row of a comparison's difference tables: metric, run, prompt length, and each
/// cell's exact value (empty where the table shows "—") with its text.
const DIFFERENCES: &str = r#"
    return [...document.querySelectorAll('table.differences tbody tr')].map(row => ({
        metric: row.closest('table').dataset.metric,
        run: row.dataset.run,
        length: Number(row.dataset.promptLength),
        cells: Object.fromEntries([...row.querySelectorAll('td[data-diff]')]
            .map(td => [td.dataset.diff, [td.dataset.value, td.textContent]])),
    }));
"#;

/// Checks difference-table rows against the differences worked out from the API's numbers:
/// `run` against `baseline` at every prompt length of either.
fn check_differences(rows: &Value, baseline: &RunSummary, run: &RunSummary) {
    let rows = rows.as_array().expect("rows");
    let mut lengths: Vec<u32> = baseline.points.iter().chain(&run.points).map(|p| p.prompt_length).collect();
    lengths.sort_unstable();
    lengths.dedup();
    assert_eq!(rows.len(), 2 * lengths.len(), "a row per metric and prompt length: {rows:?}");
    type Statistic = fn(&shared::Summary) -> f64;
    let stats: [(&str, Statistic); 4] =
        [("mean", |s| s.mean), ("p50", |s| s.p50), ("p90", |s| s.p90), ("p99", |s| s.p99)];
    let mut compared = 0;
    for row in rows {
        assert_eq!(row["run"], run.id.as_str());
        let length = row["length"].as_u64().unwrap() as u32;
        let summary = |points: &[shared::PointStats]| {
            let point = points.iter().find(|p| p.prompt_length == length)?;
            match row["metric"].as_str().unwrap() {
                "ttft" => point.ttft_ms.clone(),
                "t2t" => point.t2t_ms.clone(),
                other => panic!("unknown metric {other}"),
            }
        };
        let (base, value) = (summary(&baseline.points), summary(&run.points));
        for (stat, pick) in stats {
            let ms = &row["cells"][format!("{stat}-ms")];
            let pct = &row["cells"][format!("{stat}-pct")];
            match (&base, &value) {
                (Some(base), Some(value)) => {
                    let (b, v) = (pick(base), pick(value));
                    let shown: f64 = ms[0].as_str().unwrap().parse().unwrap();
                    assert!(
                        (shown - (v - b)).abs() <= 1e-9 * (v - b).abs().max(1.0),
                        "{stat} at {length}: {shown} != {v} - {b}"
                    );
                    let shown: f64 = pct[0].as_str().unwrap().parse().unwrap();
                    let expected = (v - b) / b * 100.0;
                    assert!(
                        (shown - expected).abs() <= 1e-9 * expected.abs().max(1.0),
                        "{stat} % at {length}: {shown} != {expected}"
                    );
                    compared += 1;
                }
                _ => {
                    assert_eq!(ms, &json!(["", "—"]), "{stat} at {length} is missing in one run");
                    assert_eq!(pct, &json!(["", "—"]));
                }
            }
        }
    }
    assert!(compared >= 8, "too few values compared: {compared}");
}

/// Waits for a downloaded file to be complete in `folder`, and reads it.
async fn downloaded(folder: &std::path::Path, name: &str) -> Vec<u8> {
    let path = folder.join(name);
    let start = std::time::Instant::now();
    loop {
        let partial = folder.join(format!("{name}.crdownload"));
        if path.exists() && !partial.exists() {
            let bytes = std::fs::read(&path).unwrap();
            if !bytes.is_empty() {
                return bytes;
            }
        }
        let present: Vec<_> = std::fs::read_dir(folder).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(start.elapsed() < Duration::from_secs(20), "{name} was not downloaded; the folder has {present:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many points each polyline stroked in `hex` (`#0969DA`) has.
fn polyline_points(svg: &str, hex: &str) -> Vec<usize> {
    let stroke = format!("stroke=\"{hex}\"");
    svg.split("<polyline")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find("/>")?];
            let points = tag.split_once("points=\"")?.1.split('"').next()?;
            tag.contains(&stroke).then(|| points.split_whitespace().count())
        })
        .collect()
}

/// Parts of the page come in chunks fetched when first shown (frontend/src/lazy.rs). One that
/// cannot be fetched (the dashboard stopped, or was updated since the page opened) says so and
/// what to do, the rest of the page goes on, and the part loads when it is opened again.
#[tokio::test]
async fn a_part_that_cannot_be_fetched_says_so_and_loads_when_opened_again() {
    need_frontend();
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let driver = start_driver().await;
    let spec = spec_json(&dash.sim.target, "sim-vllm");
    let (a, b) = (run_via_api(&dash.base, &spec).await, run_via_api(&dash.base, &spec).await);
    let client = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        client.goto(&format!("{}/runs", dash.base)).await.unwrap();
        wait_for_element(&client, &format!("tr[data-run='{b}'] .compare-pick"), Duration::from_secs(20)).await.unwrap();
        // From here on, fetching a chunk fails as it would with the dashboard gone.
        let block = r"window.realFetch = window.fetch;
            window.fetch = (url, ...rest) => /\/(split|chunk)_/.test(String(url))
                ? Promise.reject(new TypeError('Failed to fetch'))
                : window.realFetch(url, ...rest);";
        client.execute(block, vec![]).await.unwrap();
        for id in [&a, &b] {
            client
                .find(Locator::Css(&format!("tr[data-run='{id}'] .compare-pick")))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
        wait_for_text(&client, "#compare", "Compare (2)", Duration::from_secs(5)).await;
        client.find(Locator::Id("compare")).await.unwrap().click().await.unwrap();
        wait_for_text(
            &client,
            "main .error",
            "The comparison could not be loaded from the dashboard",
            Duration::from_secs(20),
        )
        .await;
        let hint = client.find(Locator::Css("main .error .hint")).await.unwrap().text().await.unwrap();
        assert!(hint.contains("reload the page"), "{hint}");
        // The rest of the page goes on: the runs list is still there.
        assert!(client.find(Locator::Css(&format!("tr[data-run='{a}']"))).await.is_ok());

        // Once chunks can be fetched again, opening the comparison again loads it.
        client.execute("window.fetch = window.realFetch;", vec![]).await.unwrap();
        client.back().await.unwrap();
        wait_for_element(&client, "#runs-list", Duration::from_secs(10)).await.unwrap();
        client.forward().await.unwrap();
        wait_for_element(&client, "#compare-title", Duration::from_secs(20))
            .await
            .expect("the comparison loads when opened again");
        assert!(client.find(Locator::Css("main .error")).await.is_err(), "the failure is gone");
    })
    .catch_unwind()
    .await;
    client.close().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn comparing_runs_and_exporting_them() {
    need_frontend();
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let driver = start_driver().await;
    // Two sweeps that share two prompt lengths and differ in a third, and in max_tokens.
    let mut spec_a = spec_json(&dash.sim.target, "sim-vllm");
    spec_a["prompt_lengths"] = json!([16, 64, 128]);
    let mut spec_b = spec_json(&dash.sim.target, "sim-vllm");
    spec_b["prompt_lengths"] = json!([16, 64, 256]);
    spec_b["max_tokens"] = json!(16);
    let a = run_via_api(&dash.base, &spec_a).await;
    let b = run_via_api(&dash.base, &spec_b).await;
    let named = reqwest::Client::new()
        .patch(format!("{}/api/runs/{a}", dash.base))
        .json(&json!({ "name": "base <fp16>" }))
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), 200);
    let summary = |id: String| {
        let base = dash.base.clone();
        async move { reqwest::get(format!("{base}/api/runs/{id}")).await.unwrap().json::<RunSummary>().await.unwrap() }
    };
    let (run_a, run_b) = (summary(a.clone()).await, summary(b.clone()).await);
    let downloads = tempfile::tempdir().unwrap();
    let client = downloading_browser(&driver, downloads.path()).await;
    let result = std::panic::AssertUnwindSafe(async {
        // Tick the baseline first, then the other; the button appears with two.
        client.goto(&format!("{}/runs", dash.base)).await.unwrap();
        let rows = "return [...document.querySelectorAll('#runs-list tbody tr')].map(r => r.dataset.run);";
        assert_eq!(wait_for_js(&client, rows, &json!([b, a]), Duration::from_secs(20)).await, json!([b, a]));
        assert!(client.find(Locator::Id("compare")).await.is_err(), "no Compare button before two are ticked");
        for id in [&a, &b] {
            client.find(Locator::Css(&format!("tr[data-run='{id}'] .compare-pick"))).await.unwrap().click().await.unwrap();
        }
        wait_for_text(&client, "#compare", "Compare (2)", Duration::from_secs(5)).await;
        client.find(Locator::Id("compare")).await.unwrap().click().await.unwrap();
        let start = std::time::Instant::now();
        let url = loop {
            let url = client.current_url().await.unwrap();
            if url.path() == "/compare" && url.query() == Some(&format!("runs={a}%2C{b}")) {
                break url;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "the address is {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };

        // The legend: each run's name or id, model and target, the baseline first.
        let legend = "return [...document.querySelectorAll('#compare-legend li')].map(li => li.textContent);";
        let start = std::time::Instant::now();
        let entries = loop {
            let entries = client.execute(legend, vec![]).await.unwrap();
            if entries.as_array().is_some_and(|e| e.len() == 2) {
                break entries;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the legend shows {entries}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let first = entries[0].as_str().unwrap();
        assert!(first.contains("base <fp16>") && first.contains(&a) && first.contains("baseline"), "{first}");
        for entry in entries.as_array().unwrap() {
            let entry = entry.as_str().unwrap();
            assert!(entry.contains("sim-vllm") && entry.contains(&dash.sim.target), "{entry}");
        }
        assert!(entries[1].as_str().unwrap().contains(&b));

        // Both charts draw a line (and markers) per run, in the run's colour.
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Both runs decode at the simulator's one speed, so their token-to-token lines may
        // lie on each other: there the later hides the earlier, and the SVG (below) has both.
        for (chart, each) in [("chart-ttft", 150), ("chart-t2t", 0)] {
            let mut total = 0;
            for colour in [[9, 105, 218], [213, 94, 0]] {
                let (_, near) = painted(&client, chart, colour).await;
                assert!(near > each, "{chart} has no line in {colour:?}: {near} pixels");
                total += near;
            }
            assert!(total > 300, "{chart} has no lines: {total} pixels of the runs' colours");
            let markers = client
                .execute("return document.getElementById(arguments[0]).dataset.markers;", vec![json!(chart)])
                .await
                .unwrap();
            let layers: Vec<usize> = markers.as_str().unwrap().split('|').map(|l| l.split(';').count()).collect();
            assert_eq!(layers, vec![3, 3], "{chart}: {markers}");
        }

        // The differences are the API's numbers, subtracted.
        let table = client.execute(DIFFERENCES, vec![]).await.unwrap();
        check_differences(&table, &run_a, &run_b);

        // The same link in a fresh browser shows the same table; an unknown id is named and
        // the others are still compared.
        let fresh = browser(&driver).await;
        let seen = std::panic::AssertUnwindSafe(async {
            fresh.goto(url.as_str()).await.unwrap();
            let again = wait_for_js(&fresh, DIFFERENCES, &table, Duration::from_secs(20)).await;
            assert_eq!(again, table);
            fresh.goto(&format!("{}/compare?runs={a},no-such-run,{b}", dash.base)).await.unwrap();
            wait_for_text(&fresh, "#compare-unknown", "There is no run \"no-such-run\"", Duration::from_secs(20)).await;
            let again = wait_for_js(&fresh, DIFFERENCES, &table, Duration::from_secs(20)).await;
            assert_eq!(again, table);
        })
        .catch_unwind()
        .await;
        fresh.close().await.unwrap();
        if let Err(panic) = seen {
            std::panic::resume_unwind(panic);
        }

        // A chart as SVG: a document with the axes and a line per run; and as PNG.
        let stem = format!("tokenscope-compare-{a}-{b}");
        client.find(Locator::Id("export-svg-ttft")).await.unwrap().click().await.unwrap();
        let svg = String::from_utf8(downloaded(downloads.path(), &format!("{stem}-ttft.svg")).await).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\"") && svg.contains("TTFT (ms)"));
        assert!(svg.contains("base &lt;fp16&gt;"), "the legend names the baseline");
        assert_eq!(polyline_points(&svg, "#0969DA").iter().filter(|&&n| n == 3).count(), 1, "{svg}");
        assert_eq!(polyline_points(&svg, "#D55E00").iter().filter(|&&n| n == 3).count(), 1, "{svg}");
        client.find(Locator::Id("export-png-t2t")).await.unwrap().click().await.unwrap();
        let png = downloaded(downloads.path(), &format!("{stem}-t2t.png")).await;
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

        // The report, opened from disk in a browser with no network.
        client.find(Locator::Id("download-report")).await.unwrap().click().await.unwrap();
        let html = String::from_utf8(downloaded(downloads.path(), &format!("{stem}.html")).await).unwrap();
        assert!(!html.to_ascii_lowercase().contains("<script"), "the report has no script");
        assert!(html.contains("base &lt;fp16&gt;"));
        let path = downloads.path().join(format!("{stem}.html"));
        let offline = offline_browser(&driver).await;
        let opened = std::panic::AssertUnwindSafe(async {
            offline.goto(&format!("file://{}", path.display())).await.unwrap();
            let charts = offline
                .execute(
                    r#"return [...document.querySelectorAll('figure[data-chart] svg')].map(svg => ({
                        chart: svg.closest('figure').dataset.chart,
                        lines: [...svg.querySelectorAll('polyline')].map(p => [p.getAttribute('stroke'),
                            p.getAttribute('points').trim().split(' ').length]),
                        width: svg.getBoundingClientRect().width,
                    }));"#,
                    vec![],
                )
                .await
                .unwrap();
            let charts = charts.as_array().unwrap();
            assert_eq!(charts.len(), 2, "{charts:?}");
            for chart in charts {
                assert!(chart["width"].as_f64().unwrap() > 300.0, "{chart}");
                for colour in ["#0969DA", "#D55E00"] {
                    let lines = chart["lines"].as_array().unwrap();
                    assert!(lines.iter().any(|l| l[0] == colour && l[1] == 3), "{} has no line in {colour}", chart["chart"]);
                }
            }
            let again = offline.execute(DIFFERENCES, vec![]).await.unwrap();
            assert_eq!(again, table, "the report's differences are the page's");
            let points = offline
                .execute(
                    "return [...document.querySelectorAll('table.points[data-run] td[data-metric=ttft-mean]')].map(td => Number(td.dataset.value));",
                    vec![],
                )
                .await
                .unwrap();
            let expected: Vec<f64> =
                run_a.points.iter().chain(&run_b.points).map(|p| p.ttft_ms.as_ref().unwrap().mean).collect();
            assert_eq!(points, json!(expected));
            let loaded = offline
                .execute("return [document.scripts.length, performance.getEntriesByType('resource').length];", vec![])
                .await
                .unwrap();
            assert_eq!(loaded, json!([0, 0]), "nothing ran or loaded");
            let shot = offline.screenshot().await.unwrap();
            let shot_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e/compare-report.png");
            std::fs::create_dir_all(shot_path.parent().unwrap()).unwrap();
            std::fs::write(&shot_path, shot).unwrap();
            eprintln!("screenshot: {}", shot_path.display());
        })
        .catch_unwind()
        .await;
        offline.close().await.unwrap();
        if let Err(panic) = opened {
            std::panic::resume_unwind(panic);
        }
    })
    .catch_unwind()
    .await;
    client.close().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Signs in on the sign-in page the dashboard sent the browser to, and waits to be back.
async fn sign_in(client: &Client, token: &str) {
    wait_for_element(client, "input#token", Duration::from_secs(20))
        .await
        .expect("a page that needs a sign-in opens the sign-in page");
    let field = client.find(Locator::Css("input#token")).await.unwrap();
    field.send_keys(token).await.unwrap();
    client.find(Locator::Css("button#signin")).await.unwrap().click().await.unwrap();
}

#[tokio::test]
async fn an_operator_shares_a_run_that_a_viewer_only_looks_at() {
    use server::dashboard::access::{Access, Roles, Secret, Viewers};
    need_frontend();
    let _serial = timing_lock().await;
    let (operator, viewer) = ("operator-token-browser-0001", "viewer-token-browser-0001");
    let access = Access {
        roles: Roles::Tokens {
            operator: Secret::new(operator).unwrap(),
            viewers: Viewers::Token(Secret::new(viewer).unwrap()),
        },
        ..Access::open()
    };
    let dash = crate::support::start_dashboard_with_access(fast_sim(), move |_| access).await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        // The operator opens the dashboard, signs in, and runs a sweep by clicking.
        client.goto(&dash.base).await.unwrap();
        sign_in(&client, operator).await;
        wait_for_text(&client, "#role", "operator", Duration::from_secs(20)).await;
        wait_for_text(&client, "#model", "sim-vllm", Duration::from_secs(20)).await;
        client.find(Locator::Css("#preset-prefill")).await.unwrap().click().await.unwrap();
        run_by_clicking(&client, "16,128", "4", "2 lengths: [16, 128]").await;
        let link = client.current_url().await.unwrap();
        assert!(link.path().starts_with("/runs/"), "{link}");
        assert!(client.find(Locator::Css("#delete")).await.is_ok(), "the operator may delete");
        assert!(client.find(Locator::Css("#rerun")).await.is_ok(), "the operator may rerun");
        assert!(link.query().is_none_or(|q| !q.contains("token")), "the link carries no secret: {link}");

        // A colleague in another browser profile opens the link.
        let colleague = browser(&driver).await;
        let seen = std::panic::AssertUnwindSafe(async {
            colleague.goto(link.as_str()).await.unwrap();
            sign_in(&colleague, "not-the-viewer-token-0000").await;
            wait_for_text(&colleague, "#signin-error", "refused", Duration::from_secs(10)).await;
            sign_in(&colleague, viewer).await;
            wait_for_element(&colleague, "#run-status[data-state='completed']", Duration::from_secs(20))
                .await
                .expect("the viewer is back on the shared run");
            assert_eq!(colleague.current_url().await.unwrap().path(), link.path(), "the sign-in returns to the link");
            tokio::time::sleep(Duration::from_millis(400)).await;
            wait_for_text(&colleague, "#role", "viewer", Duration::from_secs(5)).await;
            let (drawn, _) = painted(&colleague, "chart-ttft", [9, 105, 218]).await;
            assert!(drawn > 2000, "the viewer sees the chart: {drawn} painted pixels");
            for control in ["#run", "#cancel", "#delete", "#run-edit", "#import-file", "#rerun"] {
                assert!(colleague.find(Locator::Css(control)).await.is_err(), "a viewer is offered {control}");
            }
            assert!(colleague.find(Locator::Css("#viewer-note")).await.is_ok());
            // The page's own request, with the viewer's cookie, to delete the run is refused.
            let status = colleague
                .execute_async(
                    "const done = arguments[arguments.length - 1];
                     fetch(location.pathname.replace('/runs/', '/api/runs/'), { method: 'DELETE' })
                         .then(r => done(r.status), e => done(String(e)));",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(status, json!(403));
        })
        .catch_unwind()
        .await;
        colleague.close().await.unwrap();
        if let Err(panic) = seen {
            std::panic::resume_unwind(panic);
        }
    })
    .catch_unwind()
    .await;
    client.close().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// A rate sweep started from the form: two rates with an objective fill the table with each
/// point's load, the rate sent, its schedule lag and its goodput, and the run's link shows
/// the same table.
#[tokio::test]
async fn a_rate_sweep_from_the_form() {
    need_frontend();
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        client.goto(&dash.base).await.unwrap();
        wait_for_text(&client, "#model", "sim-vllm", Duration::from_secs(20)).await;
        client.find(Locator::Css("#load-open")).await.unwrap().click().await.unwrap();
        for (field, value) in [("#request-rates", "20,40"), ("#slo-ttft", "5000")] {
            let input = client.find(Locator::Css(field)).await.unwrap();
            input.clear().await.unwrap();
            input.send_keys(value).await.unwrap();
        }
        // The page stays (the router changes the address only): note what the throughput
        // chart holds each time it changes.
        client.execute(WATCH_THROUGHPUT, vec![]).await.unwrap();
        run_by_clicking(&client, "16", "20", "1 lengths: [16]").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let id = client.current_url().await.unwrap().path().strip_prefix("/runs/").unwrap().to_string();
        let summary: RunSummary =
            reqwest::get(format!("{}/api/runs/{id}", dash.base)).await.unwrap().json().await.unwrap();
        assert_eq!(summary.spec.request_rates, vec![20.0, 40.0]);
        let seen: Vec<String> =
            serde_json::from_value(client.execute("return window.seenThroughput;", vec![]).await.unwrap()).unwrap();
        assert!(
            seen.contains(&"running:1".to_string()),
            "the chart had the first rate while the run went on: {seen:?}"
        );
        assert_eq!(seen.last().map(String::as_str), Some("completed:2"), "{seen:?}");
        let chart = throughput_chart(&client).await;
        let engine = client.find(Locator::Css("#engine-load")).await.unwrap().text().await.unwrap();
        assert!(engine.starts_with("engine: ") && engine.contains("µs per response"), "the engine's load: {engine}");
        // The inspector's point: its TTFT through the point (a dot per request) and its lags.
        let (_, dots) = painted(&client, "chart-ttft-over-time", [130, 80, 223]).await;
        assert!(dots > 50, "the TTFT-over-time chart has no dots: {dots} pixels of their colour");
        let (_, bars) = painted(&client, "chart-lag", [9, 105, 218]).await;
        assert!(bars > 50, "the schedule lag histogram has no bars: {bars} pixels of their colour");
        // A point is picked by its prompt length and load, and the address keeps it.
        client.find(Locator::Css("#inspect-load-point option[value='0']")).await.unwrap().click().await.unwrap();
        wait_for_text(&client, "[data-chart='lag'] figcaption", "16 at 20 req/s", Duration::from_secs(5)).await;
        let url = client.current_url().await.unwrap();
        assert!(url.query().unwrap_or_default().contains("pt=0"), "{url}");
        assert_eq!(summary.spec.slo.and_then(|s| s.ttft_ms), Some(5000.0));
        let table = client.execute(&format!("{VIEW_STATE_TABLE} return table();"), vec![]).await.unwrap();
        let cells: Vec<String> = serde_json::from_value::<Vec<String>>(table.clone())
            .unwrap()
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect();
        for load in ["20 req/s", "40 req/s"] {
            assert!(cells.iter().any(|c| c == &format!("load={load}")), "{load}: {cells:?}");
        }
        for (p, point) in summary.points.iter().enumerate() {
            let sent = format!("sent-per-s={}", point.sent_per_s);
            let lag = format!("lag-p99={}", point.schedule_lag_ms.as_ref().unwrap().p99);
            let good = format!("goodput-share={}", point.goodput.unwrap().share);
            for cell in [sent, lag, good] {
                assert!(cells.contains(&cell), "point {p}: {cell} not in {cells:?}");
            }
        }
        // The link shows the same table and the same latency-throughput chart.
        let again = browser(&driver).await;
        let reopened = std::panic::AssertUnwindSafe(async {
            open_run(&again, &format!("{}/runs/{id}", dash.base)).await;
            let table = again.execute(&format!("{VIEW_STATE_TABLE} return table();"), vec![]).await.unwrap();
            (table, throughput_chart(&again).await)
        })
        .catch_unwind()
        .await;
        let _ = again.close().await;
        assert_eq!(reopened.unwrap_or_else(|panic| std::panic::resume_unwind(panic)), (table, chart));
    })
    .catch_unwind()
    .await;
    let _ = client.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Notes, in `window.seenThroughput`, the run's state and the TTFT-throughput chart's points
/// each time either changes.
const WATCH_THROUGHPUT: &str = r#"
    window.seenThroughput = [];
    setInterval(() => {
        const canvas = document.querySelector('#chart-ttft-throughput');
        const state = document.querySelector('#run-status')?.dataset.state;
        if (!canvas || !state) return;
        const now = state + ':' + canvas.dataset.points;
        if (window.seenThroughput[window.seenThroughput.length - 1] !== now) window.seenThroughput.push(now);
    }, 10);
"#;

/// What the TTFT-throughput chart drew: its points per curve, its capacity mark, and whether
/// its canvas has anything but the background on it.
async fn throughput_chart(client: &Client) -> (String, String, bool) {
    let found = wait_for_element(client, "#chart-ttft-throughput[data-points]", Duration::from_secs(10)).await;
    found.expect("the latency-throughput chart is drawn");
    let drawn = client
        .execute(
            "const c = document.querySelector('#chart-ttft-throughput');
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let inked = 0;
             for (let i = 0; i < d.length; i += 4) if (d[i] < 200) inked++;
             return [c.dataset.points, c.dataset.capacity, inked > 500];",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(drawn).unwrap()
}

#[tokio::test]
async fn a_capacity_search_from_the_form() {
    need_frontend();
    let _serial = timing_lock().await;
    // Four slots, each request 80 ms: 50 requests/s at most.
    let dash = start_dashboard(crate::load::four_slots()).await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        client.goto(&dash.base).await.unwrap();
        wait_for_text(&client, "#model", "sim-vllm", Duration::from_secs(20)).await;
        client.find(Locator::Css("#load-capacity")).await.unwrap().click().await.unwrap();
        for (field, value) in [
            ("#max-tokens", "8"),
            ("#capacity-goodput", "0.8"),
            ("#capacity-start", "20"),
            ("#capacity-probes", "3"),
            // 10 ms of prefill; at 80 requests/s each waits 7.5 ms longer than the one before.
            ("#slo-ttft", "60"),
        ] {
            let input = client.find(Locator::Css(field)).await.unwrap();
            input.clear().await.unwrap();
            input.send_keys(value).await.unwrap();
        }
        run_by_clicking(&client, "16", "20", "1 lengths: [16]").await;
        let id = client.current_url().await.unwrap().path().strip_prefix("/runs/").unwrap().to_string();
        let summary: RunSummary =
            reqwest::get(format!("{}/api/runs/{id}", dash.base)).await.unwrap().json().await.unwrap();
        let probes: Vec<String> =
            summary.points.iter().map(|p| format!("{:?}: {:?}", p.load, p.goodput.map(|g| g.share))).collect();
        assert_eq!(summary.spec.request_rates, vec![20.0, 40.0, 80.0], "the probes, in the order run: {probes:?}");
        wait_for_text(&client, "#capacity", "at 80% goodput", Duration::from_secs(5)).await;
        let headline = client.find(Locator::Css("#capacity")).await.unwrap().text().await.unwrap();
        assert!(headline.starts_with("capacity between 40.0 and 80.0 req/s"), "{headline}");
        let (points, capacity, drawn) = throughput_chart(&client).await;
        assert_eq!((points.as_str(), capacity.as_str(), drawn), ("3", "capacity 40.0 req/s", true));
    })
    .catch_unwind()
    .await;
    let _ = client.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// The points table's cells as `metric=value` (the load column by its text).
const VIEW_STATE_TABLE: &str = r#"
    const table = () => [...document.querySelectorAll('#points-table td[data-metric]')]
        .map(td => td.dataset.metric + '=' + (td.dataset.value ?? td.textContent.trim()));
"#;

/// A tokenizer uploaded through the form is chosen for the sweep: every prompt has its length
/// in the tokenizer's tokens, the charts' prompt-length axis names it, and Rerun… reopens the
/// form with it chosen.
#[tokio::test]
async fn a_tokenizer_uploaded_in_the_form_counts_the_sweeps_prompts() {
    need_frontend();
    let _serial = timing_lock().await;
    let scratch = tempfile::tempdir().unwrap();
    let file = server::tokenizer::fixture::bpe(scratch.path());
    let counter = server::tokenizer::SharedTokenizer::parse(file.to_str().unwrap()).unwrap();
    let dash = start_dashboard(server::sim::SimConfig { tokenizer: Some(counter), ..fast_sim() }).await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        client.goto(&dash.base).await.unwrap();
        wait_for_text(&client, "#model", "sim-vllm", Duration::from_secs(20)).await;
        wait_for_text(&client, "#tokenizer", "none (approximate tokens", Duration::from_secs(5)).await;
        let chosen = "return document.getElementById('tokenizer').value;";
        assert_eq!(client.execute(chosen, vec![]).await.unwrap(), json!(""));

        // A file called tokenizer.json names no model: without a name, the server asks for one.
        let picker = client.find(Locator::Css("#tokenizer-file")).await.unwrap();
        picker.send_keys(file.to_str().unwrap()).await.unwrap();
        client.find(Locator::Css("#tokenizer-upload")).await.unwrap().click().await.unwrap();
        wait_for_text(&client, ".tokenizer .error", "needs a name", Duration::from_secs(20)).await;
        client.find(Locator::Css("#tokenizer-name")).await.unwrap().send_keys("tiny-bpe").await.unwrap();
        client.find(Locator::Css("#tokenizer-upload")).await.unwrap().click().await.unwrap();
        let path = dash.data.path().canonicalize().unwrap().join("tokenizers/tiny-bpe/tokenizer.json");
        let path = path.to_str().unwrap();
        let value = wait_for_js(&client, chosen, &json!(path), Duration::from_secs(30)).await;
        assert_eq!(value, json!(path), "the upload is chosen");
        wait_for_text(&client, "#tokenizer", "tiny-bpe (1 special token", Duration::from_secs(10)).await;
        let errors = client.execute("return document.querySelectorAll('.tokenizer .error').length;", vec![]).await;
        assert_eq!(errors.unwrap(), json!(0), "the earlier refusal is gone");
        let shot = client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("dashboard-tokenizer.png"), shot).unwrap();

        wait_for_text(&client, ".sweep-form", "Prompt lengths (tokens, tokenizer tiny-bpe)", Duration::from_secs(5))
            .await;
        run_by_clicking(&client, "16,64", "4", "2 lengths: [16, 64]").await;
        let axis = wait_for_js(
            &client,
            "return document.getElementById('chart-ttft')?.dataset.xAxis ?? null;",
            &json!("prompt length (tokens, tokenizer tiny-bpe)"),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(axis, json!("prompt length (tokens, tokenizer tiny-bpe)"));

        let url = client.current_url().await.unwrap();
        let id = url.path().strip_prefix("/runs/").expect("the address names the run").to_string();
        let report: shared::RunReport =
            reqwest::get(format!("{}/api/runs/{id}/report", dash.base)).await.unwrap().json().await.unwrap();
        assert_eq!(report.spec.tokenizer.as_deref(), Some(path));
        assert_eq!(report.requests.len(), 2 * 4);
        for record in &report.requests {
            let length = [16, 64][record.point as usize];
            assert_eq!(record.num_input_tokens, Some(length), "{}: the server counted the prompt", record.id);
        }

        // Rerun… opens the form with the tokenizer chosen.
        let rerun = client.find(Locator::Id("rerun")).await.unwrap().attr("href").await.unwrap().unwrap();
        client.goto(&format!("{}{rerun}", dash.base)).await.unwrap();
        wait_for_text(&client, "#tokenizer", "tiny-bpe (1 special token", Duration::from_secs(20)).await;
        assert_eq!(wait_for_js(&client, chosen, &json!(path), Duration::from_secs(5)).await, json!(path));
        wait_for_text(&client, ".sweep-form", "Prompt lengths (tokens, tokenizer tiny-bpe)", Duration::from_secs(5))
            .await;
    })
    .catch_unwind()
    .await;
    client.close().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn the_servers_metrics_fill_their_chart_under_the_run_and_its_link_reopens_it() {
    need_frontend();
    let _serial = timing_lock().await;
    // One slot for four streams: a queue builds, and the pending-requests gauge shows it.
    let dash = start_dashboard(server::sim::SimConfig { max_sequences: 1, ..fast_sim() }).await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        client.goto(&dash.base).await.unwrap();
        wait_for_text(&client, "#model", "sim-vllm", Duration::from_secs(20)).await;
        // The form says the built-in simulator's metrics answer.
        wait_for_text(&client, "#metrics-status", "answers", Duration::from_secs(20)).await;
        let field = client.find(Locator::Css("#concurrency")).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys("4").await.unwrap();
        run_by_clicking(&client, "16,64", "16", "2 lengths: [16, 64]").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (ink, _) = painted(&client, "chart-telemetry", [9, 105, 218]).await;
        assert!(ink > 2000, "the server metrics chart looks blank: {ink} painted pixels");
        let options: Value = client
            .execute(
                "return [...document.querySelectorAll('#telemetry-metric option')].map(o => o.textContent);",
                vec![],
            )
            .await
            .unwrap();
        let options = options.to_string();
        assert!(options.contains("nv_inference_pending_request_count"), "{options}");
        let script = "return [...document.querySelectorAll('#points-table td[data-metric=queue-depth]')]
            .map(td => td.textContent);";
        let depths = client.execute(script, vec![]).await.unwrap();
        assert_eq!(depths.as_array().map(Vec::len), Some(2), "each point has its queue depth: {depths}");
        wait_for_text(&client, "#telemetry-describe", "server metrics:", Duration::from_secs(5)).await;
        // Choosing a metric draws it in both charts and puts it in the page's link.
        let chosen = "family:nv_gpu_utilization";
        let drawn = "return ['chart-telemetry', 'chart-telemetry-point']
            .map(id => document.getElementById(id)?.getAttribute('data-metric') ?? null);";
        let before = client.execute(drawn, vec![]).await.unwrap();
        assert_ne!(before, json!([chosen, chosen]), "the default is another metric");
        let list = client.find(Locator::Css("#telemetry-metric")).await.unwrap();
        list.select_by_value(chosen).await.unwrap();
        let shown = wait_for_js(&client, drawn, &json!([chosen, chosen]), Duration::from_secs(5)).await;
        assert_eq!(shown, json!([chosen, chosen]), "both charts show the chosen metric");
        let url = client.current_url().await.unwrap();
        let server = url.query_pairs().find(|(k, _)| k == "server").map(|(_, v)| v.into_owned());
        assert_eq!(server.as_deref(), Some(chosen), "the link names the metric: {url}");
        // The link opens the same chart.
        client.goto(url.as_str()).await.unwrap();
        wait_for_text(&client, "#telemetry-describe", "server metrics:", Duration::from_secs(20)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (again, _) = painted(&client, "chart-telemetry", [9, 105, 218]).await;
        assert!(again > 2000, "the reopened chart looks blank: {again} painted pixels");
        let reopened = wait_for_js(&client, drawn, &json!([chosen, chosen]), Duration::from_secs(5)).await;
        assert_eq!(reopened, json!([chosen, chosen]), "the link reopens the chosen metric");
        let selected =
            client.execute("return document.getElementById('telemetry-metric').value;", vec![]).await.unwrap();
        assert_eq!(selected, json!(chosen), "the list shows the chosen metric");
    })
    .catch_unwind()
    .await;
    client.close().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// An OpenAI-compatible server is measured from the form: the address field says which
/// protocol it read, chat is offered, and the runs list names the protocol of each run.
#[tokio::test]
async fn an_openai_server_is_measured_from_the_form() {
    need_frontend();
    let _serial = timing_lock().await;
    let dash = start_dashboard(fast_sim()).await;
    let (_, http, openai, stop) = server::sim::spawn_protocols(fast_sim()).await.expect("the simulator starts");
    let _sim = crate::support::SimServer::from_parts(format!("openai://{openai}"), stop);
    let driver = start_driver().await;
    let client = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        client.goto(&dash.base).await.unwrap();
        wait_for_text(&client, "#model", "sim-vllm", Duration::from_secs(20)).await;
        wait_for_text(&client, "#target-protocol", "Triton gRPC", Duration::from_secs(5)).await;
        let field = client.find(Locator::Css("#target")).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(&format!("triton-http://{http}")).await.unwrap();
        wait_for_text(&client, "#target-protocol", "Triton HTTP/SSE", Duration::from_secs(5)).await;
        assert!(client.find(Locator::Css("#chat")).await.is_err(), "chat is offered for OpenAI servers only");
        field.clear().await.unwrap();
        field.send_keys(&format!("openai://{openai}")).await.unwrap();
        wait_for_text(&client, "#target-protocol", "OpenAI/SSE", Duration::from_secs(5)).await;
        client.find(Locator::Css("#load-models")).await.unwrap().click().await.unwrap();
        wait_for_text(&client, "#model", "sim-vllm", Duration::from_secs(20)).await;
        client.find(Locator::Css("#chat")).await.unwrap().click().await.unwrap();
        client.find(Locator::Css("#no-metrics")).await.unwrap().click().await.unwrap();
        run_by_clicking(&client, "16", "3", "1 lengths: [16]").await;
        let id = client.current_url().await.unwrap().path().strip_prefix("/runs/").unwrap().to_string();
        let summary: RunSummary =
            reqwest::get(format!("{}/api/runs/{id}", dash.base)).await.unwrap().json().await.unwrap();
        assert!(summary.spec.chat, "{:?}", summary.spec);
        assert_eq!(summary.spec.target, format!("openai://{openai}"));
        assert_eq!(summary.errors, 0);
        client.goto(&dash.base).await.unwrap();
        let row = format!("#runs-list tr[data-run='{id}'] td.protocol");
        wait_for_text(&client, &row, "OpenAI/SSE chat completions", Duration::from_secs(10)).await;
    })
    .catch_unwind()
    .await;
    client.close().await.ok();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
