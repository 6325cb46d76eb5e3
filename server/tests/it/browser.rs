//! The dashboard in real headless Chromium, driven over WebDriver (chromedriver): the
//! clicks a user makes, the charts it draws and the numbers it shows.

use std::time::Duration;

use fantoccini::{Client, Locator};
use futures::FutureExt;
use serde_json::{Value, json};
use shared::api::RunSummary;

use crate::dashboard::fast_sim;
use crate::support::{start_dashboard, timing_lock};
use crate::webdriver::{browser, start_driver};

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
    client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("#run-status[data-state='completed']"))
        .await
        .expect("the run completes within 60 s");
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
        for chart in ["chart-ttft", "chart-t2t", "chart-histogram", "chart-timeline"] {
            let (ink, _) = painted(&client, chart, line).await;
            assert!(ink > 2000, "{chart} looks blank: {ink} painted pixels");
        }
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
        client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#run-status[data-state='completed']"))
            .await
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
            client.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("#import-file")).await.unwrap();
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
        client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#run-status[data-state='completed']"))
            .await
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
