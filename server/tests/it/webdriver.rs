//! Headless Chromium over WebDriver: a chromedriver on a free port and a session on it.
//! Shared by the browser tests and the dashboard benchmark.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

/// A chromedriver process on a free port; killed on drop.
pub struct Driver {
    _child: tokio::process::Child,
    pub url: String,
}

pub async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver runs (apt install chromium chromium-driver; scripts/test.sh does)");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{url}/status")).await.is_ok_and(|r| r.status().is_success()) {
            return Driver { _child: child, url };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {url} within 10 s");
}

/// A headless Chromium session.
pub async fn browser(driver: &Driver) -> Client {
    session(driver, &[], None).await
}

/// A headless Chromium session that saves downloads into `folder` without asking.
// The dashboard benchmark includes this file and opens plain sessions only.
#[allow(dead_code)]
pub async fn downloading_browser(driver: &Driver, folder: &std::path::Path) -> Client {
    let prefs = json!({
        "download.default_directory": folder.to_str().expect("a UTF-8 path"),
        "download.prompt_for_download": false,
        "download.directory_upgrade": true,
        // Several files from one page, each after a click, without asking.
        "profile.default_content_setting_values.automatic_downloads": 1,
    });
    session(driver, &[], Some(prefs)).await
}

/// A headless Chromium session with no network: its proxy is a closed port, and
/// chromedriver's network conditions say it is offline.
#[allow(dead_code)]
pub async fn offline_browser(driver: &Driver) -> Client {
    let client = session(driver, &["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"], None).await;
    let id = client.session_id().await.unwrap().expect("a session id");
    let conditions = json!({ "network_conditions": {
        "offline": true, "latency": 0, "download_throughput": 0, "upload_throughput": 0
    } });
    let answer = reqwest::Client::new()
        .post(format!("{}/session/{id}/chromium/network_conditions", driver.url))
        .json(&conditions)
        .send()
        .await
        .unwrap();
    assert!(
        answer.status().is_success(),
        "chromedriver refused the network conditions: {}",
        answer.text().await.unwrap()
    );
    client
}

async fn session(driver: &Driver, extra_args: &[&str], prefs: Option<serde_json::Value>) -> Client {
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1280,1800",
        "--force-device-scale-factor=1",
    ];
    args.extend_from_slice(extra_args);
    let mut options = json!({ "binary": "/usr/bin/chromium", "args": args });
    if let Some(prefs) = prefs {
        options["prefs"] = prefs;
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(caps).connect(&driver.url).await.expect("a Chromium session starts")
}
