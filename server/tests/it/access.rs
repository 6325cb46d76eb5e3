//! Who may use a dashboard and from where: the names it answers to (DNS rebinding), the pages
//! that may change things, viewers and operators with tokens and sign-in cookies, the
//! targets it may measure, and the headers its answers carry.

use std::time::Duration;

use serde_json::Value;
use server::dashboard::access::{Access, Roles, Secret, TargetPattern, Viewers};
use shared::RunStatus;
use shared::api::{Role, RunSummary, ServerInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::dashboard::{fast_sim, spec_json, wait_finished};
use crate::support::{Dashboard, start_dashboard, start_dashboard_with_access, start_sim};

const OPERATOR: &str = "operator-token-for-tests-0001";
const VIEWER: &str = "viewer-token-for-tests-0001";

fn with_tokens(viewers: Viewers) -> Access {
    Access { roles: Roles::Tokens { operator: Secret::new(OPERATOR).unwrap(), viewers }, ..Access::open() }
}

/// An answer read off the socket: status, headers (lowercase names) and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends one HTTP/1.1 request as written, with whatever `Host` and `Origin` a hostile page's
/// browser would send, and reads the answer until the server closes.
async fn raw(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("connection")) {
        request.push_str("Connection: close\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk)).await;
        let Ok(Ok(n)) = read else { break };
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
        // An accepted WebSocket stays open: its answer is the head alone.
        if bytes.starts_with(b"HTTP/1.1 101") && bytes.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&bytes).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_string(), body: body.to_string() }
}

const UPGRADE: [(&str, &str); 4] = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

async fn finished_run(dash: &Dashboard) -> String {
    let created = reqwest::Client::new()
        .post(format!("{}/api/runs", dash.base))
        .json(&spec_json(&dash.sim.target, "sim-vllm"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    wait_finished(&dash.base, &id).await;
    id
}

#[tokio::test]
async fn dns_rebinding_requests_are_refused_and_loopback_ones_answered() {
    let dash = start_dashboard(fast_sim()).await;
    let id = finished_run(&dash).await;
    let port = dash.base.rsplit(':').next().unwrap().to_string();
    let rebound_host = format!("rebind.example:{port}");
    let rebound_origin = format!("http://rebind.example:{port}");
    let rebound = [("Host", rebound_host.as_str()), ("Origin", rebound_origin.as_str())];
    let spec = spec_json(&dash.sim.target, "sim-vllm").to_string();

    let post = raw(&dash.base, "POST", "/api/runs", &rebound, &spec).await;
    assert_eq!(post.status, 421, "{}", post.body);
    assert!(post.body.contains("--allowed-host"), "the refusal names the flag: {}", post.body);
    let list = raw(&dash.base, "GET", "/api/runs", &rebound, "").await;
    assert_eq!(list.status, 421);
    assert!(!list.body.contains(&id), "no run is listed to a rebound page");
    let socket_headers: Vec<(&str, &str)> = rebound.iter().copied().chain(UPGRADE).collect();
    let socket = raw(&dash.base, "GET", &format!("/api/runs/{id}/events"), &socket_headers, "").await;
    assert_eq!(socket.status, 421);
    assert_eq!(reqwest::get(format!("{}/api/runs", dash.base)).await.unwrap().status(), 200);

    // The same requests by the dashboard's own names are answered.
    for name in ["127.0.0.1", "localhost"] {
        let host = format!("{name}:{port}");
        let origin = format!("http://{host}");
        let own = [("Host", host.as_str()), ("Origin", origin.as_str())];
        let list = raw(&dash.base, "GET", "/api/runs", &own, "").await;
        assert_eq!(list.status, 200, "{}", list.body);
        assert!(list.body.contains(&id));
        let socket_headers: Vec<(&str, &str)> = own.iter().copied().chain(UPGRADE).collect();
        let socket = raw(&dash.base, "GET", &format!("/api/runs/{id}/events"), &socket_headers, "").await;
        assert_eq!(socket.status, 101, "{}", socket.head);
    }
    let host = format!("127.0.0.1:{port}");
    let origin = format!("http://{host}");
    let post = raw(&dash.base, "POST", "/api/runs", &[("Host", &host), ("Origin", &origin)], &spec).await;
    assert_eq!(post.status, 201, "{}", post.body);
    let started: Value = serde_json::from_str(&post.body).unwrap();
    wait_finished(&dash.base, started["id"].as_str().unwrap()).await;
}

#[tokio::test]
async fn pages_of_other_origins_cannot_change_runs() {
    let dash = start_dashboard(fast_sim()).await;
    let port = dash.base.rsplit(':').next().unwrap().to_string();
    let host = format!("127.0.0.1:{port}");
    let spec = spec_json(&dash.sim.target, "sim-vllm").to_string();
    // Another web server on this machine is another origin, though it has the same name.
    for origin in ["http://127.0.0.1:3000", "null", "http://evil.example"] {
        let answer = raw(&dash.base, "POST", "/api/runs", &[("Host", &host), ("Origin", origin)], &spec).await;
        assert_eq!(answer.status, 403, "{origin}: {}", answer.body);
    }
    assert!(dash.state.runs().list().is_empty(), "no run was started");
}

#[tokio::test]
async fn answers_carry_a_content_security_policy_and_no_referrer_to_other_sites() {
    let dash = start_dashboard(fast_sim()).await;
    let port = dash.base.rsplit(':').next().unwrap().to_string();
    let host = format!("127.0.0.1:{port}");
    for path in ["/", "/runs/some-run", "/api/info", "/signin"] {
        let answer = raw(&dash.base, "GET", path, &[("Host", &host)], "").await;
        let policy = answer.header("content-security-policy").unwrap_or_default();
        assert!(policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'self'"), "{path}: {policy}");
        assert!(policy.contains("'wasm-unsafe-eval'"), "{path}: {policy}");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(answer.header("referrer-policy"), Some("same-origin"), "{path}");
    }
}

#[tokio::test]
async fn viewers_look_and_operators_act() {
    let dash =
        start_dashboard_with_access(fast_sim(), |_| with_tokens(Viewers::Token(Secret::new(VIEWER).unwrap()))).await;
    let client = reqwest::Client::new();
    let runs = format!("{}/api/runs", dash.base);
    let spec = spec_json(&dash.sim.target, "sim-vllm");

    // Without a token: the page shell loads (it asks the API, which refuses), the API does not.
    assert_eq!(client.get(format!("{}/runs/x", dash.base)).send().await.unwrap().status(), 200);
    let refused = client.get(&runs).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("www-authenticate").is_some());
    let body: Value = refused.json().await.unwrap();
    assert!(body["hint"].as_str().unwrap().contains("/signin"), "{body}");
    assert_eq!(client.post(&runs).json(&spec).send().await.unwrap().status(), 401);

    // A wrong token is refused outright.
    let wrong = client.get(&runs).bearer_auth("operator-token-for-tests-0002").send().await.unwrap();
    assert_eq!(wrong.status(), 401);

    // The operator starts a run; the viewer sees it and cannot touch it.
    let created = client.post(&runs).bearer_auth(OPERATOR).json(&spec).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let info: ServerInfo =
        client.get(format!("{}/api/info", dash.base)).bearer_auth(VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!((info.role, info.sign_in), (Role::Viewer, true));
    let seen = client.get(format!("{runs}/{id}")).bearer_auth(VIEWER).send().await.unwrap();
    assert_eq!(seen.status(), 200);
    assert_eq!(client.post(&runs).bearer_auth(VIEWER).json(&spec).send().await.unwrap().status(), 403);
    let cancel = client.post(format!("{runs}/{id}/cancel")).bearer_auth(VIEWER).send().await.unwrap();
    assert_eq!(cancel.status(), 403);
    let body: Value = cancel.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("viewers cannot"), "{body}");
    let finished = loop {
        let summary: RunSummary =
            client.get(format!("{runs}/{id}")).bearer_auth(VIEWER).send().await.unwrap().json().await.unwrap();
        if summary.status != RunStatus::Running {
            break summary;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(finished.status, RunStatus::Completed);
    let delete = client.delete(format!("{runs}/{id}")).bearer_auth(VIEWER).send().await.unwrap();
    assert_eq!(delete.status(), 403);
    let rename = client.patch(format!("{runs}/{id}")).bearer_auth(VIEWER).json(&serde_json::json!({"name": "x"}));
    assert_eq!(rename.send().await.unwrap().status(), 403);
    let import = client.post(format!("{runs}/import")).bearer_auth(VIEWER).body("{}").send().await.unwrap();
    assert_eq!(import.status(), 403);
    let export = client.get(format!("{runs}/{id}/export/points.csv")).bearer_auth(VIEWER).send().await.unwrap();
    assert_eq!(export.status(), 200);
    let delete = client.delete(format!("{runs}/{id}")).bearer_auth(OPERATOR).send().await.unwrap();
    assert_eq!(delete.status(), 204);
}

#[tokio::test]
async fn browsers_sign_in_with_a_cookie_that_never_holds_the_token() {
    let dash = start_dashboard_with_access(fast_sim(), |_| with_tokens(Viewers::Open)).await;
    let port = dash.base.rsplit(':').next().unwrap().to_string();
    let host = format!("127.0.0.1:{port}");
    let origin = format!("http://{host}");
    let spec = spec_json(&dash.sim.target, "sim-vllm").to_string();

    // Open viewers need nothing to look.
    let info = raw(&dash.base, "GET", "/api/info", &[("Host", &host)], "").await;
    assert_eq!(info.status, 200);
    assert_eq!(serde_json::from_str::<ServerInfo>(&info.body).unwrap().role, Role::Viewer);

    let page = raw(&dash.base, "GET", "/signin?next=/runs/abc", &[("Host", &host)], "").await;
    assert!(page.body.contains("name=\"token\"") && page.body.contains("value=\"/runs/abc\""), "{}", page.body);
    let form = format!("token={OPERATOR}&next=%2Fruns%2Fabc");
    let form_headers = [("Host", host.as_str()), ("Origin", origin.as_str())];
    let wrong = raw_form(&dash.base, &form_headers, "token=nope-nope-nope-nope&next=%2F").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let signed = raw_form(&dash.base, &form_headers, &form).await;
    assert_eq!(signed.status, 303);
    assert_eq!(signed.header("location"), Some("/runs/abc"));
    let cookie = signed.header("set-cookie").unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(OPERATOR), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_string();

    let info = raw(&dash.base, "GET", "/api/info", &[("Host", &host), ("Cookie", &cookie)], "").await;
    assert_eq!(serde_json::from_str::<ServerInfo>(&info.body).unwrap().role, Role::Operator);
    // The cookie is a browser's: a change it carries must say which page asked for it.
    let unnamed = raw(&dash.base, "POST", "/api/runs", &[("Host", &host), ("Cookie", &cookie)], &spec).await;
    assert_eq!(unnamed.status, 403, "{}", unnamed.body);
    let own = [("Host", host.as_str()), ("Origin", origin.as_str()), ("Cookie", cookie.as_str())];
    let started = raw(&dash.base, "POST", "/api/runs", &own, &spec).await;
    assert_eq!(started.status, 201, "{}", started.body);
    let id: Value = serde_json::from_str(&started.body).unwrap();
    wait_finished(&dash.base, id["id"].as_str().unwrap()).await;

    let out = raw(&dash.base, "POST", "/signout", &own, "").await;
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
}

/// A form post, as the sign-in page sends it.
async fn raw_form(base: &str, headers: &[(&str, &str)], form: &str) -> Answer {
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    let length = form.len().to_string();
    all.push(("Content-Type", "application/x-www-form-urlencoded"));
    all.push(("Content-Length", &length));
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = String::from("POST /signin HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in &all {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(form);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_string(), body: body.to_string() }
}

#[tokio::test]
async fn targets_outside_the_list_get_one_answer_whatever_listens_there() {
    let listening = start_sim(fast_sim()).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    // Only the dashboard's own simulator may be measured, as a dashboard started with
    // --target allows only that target.
    let dash = start_dashboard_with_access(fast_sim(), |sim| Access {
        targets: vec![TargetPattern::parse(sim).unwrap()],
        ..Access::open()
    })
    .await;
    let models = |target: String| {
        let base = dash.base.clone();
        async move {
            let url = format!("{base}/api/targets/models?target={target}");
            let response = reqwest::get(url).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, _) = models(dash.sim.target.clone()).await;
    assert_eq!(status, 200);
    let (open_status, open_body) = models(listening.target.clone()).await;
    let (closed_status, closed_body) = models(format!("127.0.0.1:{closed}")).await;
    assert_eq!((open_status, closed_status), (403, 403));
    assert_eq!(open_body, closed_body, "a listening and a closed port look the same");
    assert!(open_body.contains("--allow-target"), "{open_body}");
    let created = reqwest::Client::new()
        .post(format!("{}/api/runs", dash.base))
        .json(&spec_json(&listening.target, "sim-vllm"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 403);
    let info: ServerInfo = reqwest::get(format!("{}/api/info", dash.base)).await.unwrap().json().await.unwrap();
    assert_eq!(info.allowed_targets.len(), 1);
}

#[test]
fn a_dashboard_others_can_reach_refuses_to_start_without_access_rules() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tokenscope"))
        .args(["serve", "--listen", "0.0.0.0:0", "--target", "http://127.0.0.1:1"])
        .env("TOKENSCOPE_DATA_DIR", std::env::temp_dir().join("tokenscope-access-refused"))
        .env_remove("TOKENSCOPE_OPERATOR_TOKEN")
        .env_remove("TOKENSCOPE_VIEWER_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--operator-token") && stderr.contains("--viewers open"), "{stderr}");
}
