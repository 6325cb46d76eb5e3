//! `https://` targets: the simulator serving TLS with certificates made here, measured by the
//! engine, the dashboard and the command line, and refused with a hint when not trusted.

use std::path::Path;
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use server::sim::{self, SimConfig};
use shared::RunStatus;
use tonic::transport::Identity;

use crate::dashboard::{fast_sim, get, post, spec_json, wait_finished};
use crate::support::{SimServer, spec, start_dashboard, start_sim, sweep, timing_lock};

/// A private CA and a server certificate it signed for `localhost` and 127.0.0.1, in PEM.
struct Certs {
    ca: String,
    cert: String,
    key: String,
}

impl Certs {
    fn new(ca_name: &str) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, ca_name);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        Self { ca: ca.pem(), cert: cert.pem(), key: key.serialize_pem() }
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert, &self.key)
    }

    /// Writes the CA, certificate and key into `dir`; answers their paths.
    fn write(&self, dir: &Path) -> [std::path::PathBuf; 3] {
        let paths = [dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem")];
        for (path, pem) in paths.iter().zip([&self.ca, &self.cert, &self.key]) {
            std::fs::write(path, pem).unwrap();
        }
        paths
    }
}

/// The simulator serving TLS with `certs`, addressed as `https://localhost:PORT`.
async fn start_tls_sim(config: SimConfig, certs: &Certs) -> SimServer {
    let (addr, stop) = sim::spawn_with(config, Some(certs.identity())).await.expect("the simulator starts");
    SimServer::from_parts(format!("https://localhost:{}", addr.port()), stop)
}

#[tokio::test]
async fn the_engine_measures_an_https_target_whose_ca_it_was_given() {
    let _serial = timing_lock().await;
    let certs = Certs::new("tokenscope engine test CA");
    assert_eq!(server::tls::trust_ca_pem(certs.ca.as_bytes(), "the test CA").unwrap(), 1);
    let sim = start_tls_sim(fast_sim(), &certs).await;
    let report = sweep(spec(&sim.target, "sim-vllm")).await;
    assert_eq!(report.status, RunStatus::Completed, "{:?}", report.status);
    let point = &report.points[0];
    assert_eq!(point.count, 3);
    assert!(point.ttft_ms.as_ref().unwrap().mean > 1.0, "the simulator's 2 ms prefill is measured");
    assert!(report.requests.iter().all(|r| r.error.is_none() && r.responses.len() == 4));
}

#[tokio::test]
async fn an_https_target_signed_by_an_unknown_ca_fails_the_run_with_a_hint() {
    let _serial = timing_lock().await;
    // Never trusted: no test passes this CA on.
    let certs = Certs::new("tokenscope untrusted CA");
    let sim = start_tls_sim(fast_sim(), &certs).await;
    let report = sweep(spec(&sim.target, "sim-vllm")).await;
    let RunStatus::Failed { error } = &report.status else { panic!("{:?}", report.status) };
    assert!(error.contains("cannot open a TLS connection to https://localhost:"), "{error}");
    assert!(error.contains("UnknownIssuer") && error.contains("--ca-cert"), "{error}");
}

#[tokio::test]
async fn https_to_a_server_without_tls_says_to_use_http() {
    let _serial = timing_lock().await;
    let plain = start_sim(fast_sim()).await;
    let target = plain.target.replace("http://", "https://");
    let report = sweep(spec(&target, "sim-vllm")).await;
    let RunStatus::Failed { error } = &report.status else { panic!("{:?}", report.status) };
    assert!(error.contains("does not speak TLS on this port; give the address as http://"), "{error}");
}

#[tokio::test]
async fn the_dashboard_lists_models_and_runs_sweeps_on_an_https_target() {
    let _serial = timing_lock().await;
    let certs = Certs::new("tokenscope dashboard test CA");
    server::tls::trust_ca_pem(certs.ca.as_bytes(), "the test CA").unwrap();
    let sim = start_tls_sim(fast_sim(), &certs).await;
    let dash = start_dashboard(fast_sim()).await;
    let (status, models) = get(&format!("{}/api/targets/models?target={}", dash.base, sim.target)).await;
    assert_eq!(status, 200, "{models}");
    assert!(models["models"].as_array().unwrap().iter().any(|m| m["name"] == "sim-vllm"), "{models}");
    let (status, created) = post(&format!("{}/api/runs", dash.base), &spec_json(&sim.target, "sim-vllm")).await;
    assert_eq!(status, 201, "{created}");
    let summary = wait_finished(&dash.base, created["id"].as_str().unwrap()).await;
    assert_eq!(summary.status, RunStatus::Completed, "{summary:?}");
    assert_eq!(summary.errors, 0);
    let untrusted = Certs::new("tokenscope other CA");
    let other = start_tls_sim(fast_sim(), &untrusted).await;
    let (status, refused) = get(&format!("{}/api/targets/models?target={}", dash.base, other.target)).await;
    assert_eq!(status, 502, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("--ca-cert"), "{refused}");
}

/// `tokenscope sim --tls-cert --tls-key` serves TLS, and `tokenscope sweep` measures it with
/// `--ca-cert`, or refuses it without.
#[tokio::test]
async fn the_command_line_serves_and_measures_tls_with_a_private_ca() {
    use tokio::io::AsyncBufReadExt;
    let _serial = timing_lock().await;
    let dir = tempfile::tempdir().unwrap();
    let [ca, cert, key] = Certs::new("tokenscope CLI test CA").write(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut sim = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokenscope"))
        .args(["sim", "--listen", &format!("127.0.0.1:{port}"), "--decode-ms", "1", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(sim.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("a line within 30 s")
        .unwrap()
        .expect("the simulator says it listens");
    assert!(line.contains("gRPC over TLS"), "{line}");
    let target = format!("https://localhost:{port}");
    let sweep = |ca: Option<&Path>| {
        let (target, ca) = (target.clone(), ca.map(Path::to_path_buf));
        let out = dir.path().join("run.json");
        tokio::task::spawn_blocking(move || {
            let mut command = Command::new(env!("CARGO_BIN_EXE_tokenscope"));
            command.args(["sweep", "--target", &target, "--model", "sim-vllm", "--prompt-lengths", "16"]);
            command.args(["--max-tokens", "4", "--requests", "2", "--out"]).arg(out);
            if let Some(ca) = ca {
                command.arg("--ca-cert").arg(ca);
            }
            command.output().unwrap()
        })
    };
    let measured = sweep(Some(&ca)).await.unwrap();
    let stdout = String::from_utf8_lossy(&measured.stdout);
    assert!(measured.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&measured.stderr));
    assert!(stdout.contains("TTFT mean"), "{stdout}");
    let refused = sweep(None).await.unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("UnknownIssuer") && stderr.contains("--ca-cert PATH"), "{stderr}");
    let not_a_ca = sweep(Some(&key)).await.unwrap();
    assert!(!not_a_ca.status.success());
    let stderr = String::from_utf8_lossy(&not_a_ca.stderr);
    assert!(stderr.contains("holds no PEM certificate"), "{stderr}");
    sim.kill().await.unwrap();
}

#[test]
fn a_tls_simulator_needs_both_its_certificate_and_its_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenscope"))
        .args(["sim", "--listen", "127.0.0.1:0", "--tls-cert", "cert.pem"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

/// A TLS front for a plain HTTP server at `backend`, offering `alpn` (HTTP/2 or HTTP/1.1), as
/// a load balancer terminating TLS does: every connection's bytes are relayed unchanged.
async fn tls_front(certs: &Certs, backend: std::net::SocketAddr, alpn: &[u8]) -> u16 {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(certs.cert.as_bytes()).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(certs.key.as_bytes()).unwrap();
    let mut config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn the_http_protocols_measure_https_targets_over_http2_and_http1() {
    let _serial = timing_lock().await;
    let certs = Certs::new("tokenscope HTTP protocols test CA");
    server::tls::trust_ca_pem(certs.ca.as_bytes(), "the test CA").unwrap();
    let (_, http, openai, stop) = sim::spawn_protocols(fast_sim()).await.expect("the simulator starts");
    let _sim = SimServer::from_parts(format!("http://{http}"), stop);
    for alpn in [&b"h2"[..], b"http/1.1"] {
        for (scheme, backend) in [("triton-https", http), ("openai-https", openai)] {
            let port = tls_front(&certs, backend, alpn).await;
            let target = format!("{scheme}://localhost:{port}");
            let report = sweep(spec(&target, "sim-vllm")).await;
            let what = format!("{target} over {}", String::from_utf8_lossy(alpn));
            assert_eq!(report.status, RunStatus::Completed, "{what}: {:?}", report.status);
            assert!(report.requests.iter().all(|r| r.error.is_none() && r.output_tokens() == 4), "{what}");
        }
    }
    // A certificate no trusted CA signed is refused, with what the handshake said.
    let stranger = Certs::new("tokenscope untrusted CA for HTTP");
    let port = tls_front(&stranger, openai, b"http/1.1").await;
    let report = sweep(spec(&format!("openai-https://localhost:{port}"), "sim-vllm")).await;
    let RunStatus::Failed { error } = &report.status else { panic!("{:?}", report.status) };
    assert!(error.contains("TLS handshake") && error.contains("UnknownIssuer"), "{error}");
}
