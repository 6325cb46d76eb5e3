//! Connections to an HTTP protocol's server whose socket reads stamp arrivals (see
//! [`crate::arrival`]): HTTP/1.1 with keep-alive, or HTTP/2 where a TLS server offers it, one
//! connection per request in flight as OpenAI clients keep them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use shared::protocol::Endpoint;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::arrival::{ReadStamp, Waits};

/// How much of an answer that is not a stream (an error, a model list) is read.
const MAX_PLAIN_BYTES: usize = 4 << 20;

/// Where an endpoint's requests go: its host, port, base path and TLS.
#[derive(Debug, Clone)]
pub struct Address {
    host: String,
    port: u16,
    /// The `Host` header's value, and the authority of an HTTP/2 request.
    authority: String,
    /// A path prefix every request path is put after, without a trailing `/`.
    prefix: String,
    tls: bool,
}

impl Address {
    /// Reads an endpoint's base URL; the error says what is wrong with it.
    pub fn of(endpoint: &Endpoint) -> Result<Self, String> {
        let uri: hyper::Uri = endpoint
            .base_url
            .parse()
            .map_err(|err| format!("the address {:?} is not a URL: {err}", endpoint.base_url))?;
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("the address {:?} has no host", endpoint.base_url))?;
        let port = uri.port_u16().unwrap_or(if endpoint.tls { 443 } else { 80 });
        let authority = uri.authority().map_or_else(|| host.to_string(), ToString::to_string);
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Self { host: host.to_string(), port, authority, prefix, tls: endpoint.tls })
    }

    /// The full path of a request to `path` (which starts with `/`).
    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", if self.tls { "https" } else { "http" }, self.authority, self.prefix)
    }
}

/// A request's sender on one connection.
enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One connection to the server, its reads stamped.
pub struct HttpConnection {
    sender: Sender,
    address: Arc<Address>,
    stamp: Arc<ReadStamp>,
    waits: Arc<Waits>,
}

/// An answer to a request: its status and its body, read as the socket brings it.
pub struct Answer {
    pub status: StatusCode,
    body: Incoming,
}

impl HttpConnection {
    /// Opens a connection within `timeout`; for TLS, offering HTTP/2 and HTTP/1.1. The error is
    /// worded for a user.
    pub async fn open(address: Arc<Address>, timeout: Duration, waits: Arc<Waits>) -> Result<Self, String> {
        let stamp = Arc::new(ReadStamp::default());
        let tcp = crate::arrival::connect(&address.host, address.port, timeout, stamp.clone())
            .await
            .map_err(|err| format!("cannot connect to {address}: {err}"))?;
        let sender = if address.tls {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(address.host.clone())
                .map_err(|err| format!("{:?} is not a name TLS can check: {err}", address.host))?;
            let connector = tokio_rustls::TlsConnector::from(crate::tls::rustls_client(&[b"h2", b"http/1.1"]));
            let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| format!("no TLS handshake with {address} within {} s", timeout.as_secs()))?
                .map_err(|err| format!("the TLS handshake with {address} failed: {err}"))?;
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            handshake(TokioIo::new(tls), h2).await
        } else {
            handshake(TokioIo::new(tcp), false).await
        }
        .map_err(|err| format!("the HTTP handshake with {address} failed: {err}"))?;
        Ok(Self { sender, address, stamp, waits })
    }

    /// Whether the connection can carry another request.
    pub fn is_open(&self) -> bool {
        match &self.sender {
            Sender::H1(sender) => !sender.is_closed(),
            Sender::H2(sender) => !sender.is_closed(),
        }
    }

    /// When this connection last read bytes: the arrival of anything read since.
    pub fn last_read(&self) -> Instant {
        self.stamp.last()
    }

    /// Counts a response recorded now whose arrival was stamped `read`.
    pub fn recorded(&self, read: Instant) {
        self.waits.add(read.elapsed());
    }

    /// Sends a request to `path` (after the address's prefix), with a JSON body when given,
    /// and answers once the server's status line is read.
    pub async fn send(&mut self, method: Method, path: &str, body: Option<Bytes>) -> Result<Answer, String> {
        let path = self.address.path(path);
        let mut request = Request::builder().method(method).header(ACCEPT, "text/event-stream, application/json");
        request = match &self.sender {
            Sender::H1(_) => request.uri(&path).header(HOST, &self.address.authority),
            Sender::H2(_) => request.uri(format!("https://{}{path}", self.address.authority)),
        };
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|err| format!("the request to {path} cannot be written: {err}"))?;
        let address = &self.address;
        let broke =
            |err: hyper::Error| format!("the connection to {address} broke: {}", crate::triton::error_chain(&err));
        let response = match &mut self.sender {
            Sender::H1(sender) => {
                sender.ready().await.map_err(broke)?;
                sender.send_request(request).await.map_err(broke)?
            }
            Sender::H2(sender) => {
                sender.ready().await.map_err(broke)?;
                sender.send_request(request).await.map_err(broke)?
            }
        };
        let status = response.status();
        Ok(Answer { status, body: response.into_body() })
    }
}

async fn handshake<S>(io: TokioIo<S>, h2: bool) -> hyper::Result<Sender>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The connection's task ends when the connection closes; its end is seen by the sender.
    if h2 {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(connection);
        Ok(Sender::H2(sender))
    } else {
        let (sender, connection) = http1::handshake(io).await?;
        tokio::spawn(connection);
        Ok(Sender::H1(sender))
    }
}

impl Answer {
    /// The next bytes of the body as the socket brought them: `None` at its end.
    pub async fn next_bytes(&mut self) -> Option<Result<Bytes, String>> {
        loop {
            match self.body.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => return Some(Ok(data)),
                    // Trailers end the body.
                    Err(_) => continue,
                },
                Err(err) => return Some(Err(crate::triton::error_chain(&err))),
            }
        }
    }

    /// The whole body of an answer that is not a stream, up to [`MAX_PLAIN_BYTES`].
    pub async fn text(self) -> Result<String, String> {
        let bytes = Limited::new(self.body, MAX_PLAIN_BYTES)
            .collect()
            .await
            .map_err(|err| format!("the answer could not be read whole: {err}"))?
            .to_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|_| "the answer is not UTF-8 text".to_string())
    }
}

/// What a server's error answer says: its JSON error's message where it has one (Triton's
/// `{"error": "..."}`, OpenAI's `{"error": {"message": ...}}`, vLLM's `{"message": ...}`),
/// else its first line.
pub fn error_message(status: StatusCode, body: &str) -> String {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = json.as_ref().and_then(|json| {
        let error = json.get("error").unwrap_or(json);
        error.as_str().or_else(|| error.get("message").and_then(|m| m.as_str())).map(str::to_string)
    });
    let message = message.unwrap_or_else(|| body.lines().next().unwrap_or_default().trim().to_string());
    let reason = status.canonical_reason().unwrap_or("");
    if message.is_empty() {
        format!("the server answered {} {reason}", status.as_u16())
    } else {
        format!("the server answered {} {reason}: {}", status.as_u16(), crate::convention::server_error(&message))
    }
}

/// Whether a connection taken from a pool had carried requests before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    Kept,
    New,
}

/// A connection of a protocol's requests, taken from and given back to the pool kept per run.
pub struct Pool {
    address: Arc<Address>,
    timeout: Duration,
    idle: std::sync::Mutex<Vec<HttpConnection>>,
    /// Every connection's waits, for the run's report.
    waits: std::sync::Mutex<Vec<Arc<Waits>>>,
}

impl Pool {
    pub fn new(address: Address, timeout: Duration) -> Self {
        Self {
            address: Arc::new(address),
            timeout,
            idle: std::sync::Mutex::default(),
            waits: std::sync::Mutex::default(),
        }
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Opens `count` connections ahead of the run, so no request pays for a connection's setup.
    pub async fn fill(&self, count: usize) -> Result<(), String> {
        let mut opened = Vec::with_capacity(count);
        for _ in 0..count {
            opened.push(self.open().await?);
        }
        self.lock_idle().extend(opened);
        Ok(())
    }

    /// A new connection, never one kept.
    pub async fn open(&self) -> Result<HttpConnection, String> {
        let waits = Arc::new(Waits::default());
        self.waits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(waits.clone());
        HttpConnection::open(self.address.clone(), self.timeout, waits).await
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<HttpConnection>> {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle open connection, or a new one; says which.
    pub async fn take(&self) -> Result<(HttpConnection, Kept), String> {
        loop {
            let Some(connection) = self.lock_idle().pop() else { break };
            if connection.is_open() {
                return Ok((connection, Kept::Kept));
            }
        }
        Ok((self.open().await?, Kept::New))
    }

    /// Gives back a connection whose last answer was read to its end.
    pub fn give_back(&self, connection: HttpConnection) {
        if connection.is_open() {
            self.lock_idle().push(connection);
        }
    }

    /// How long every connection's responses waited between their stamp and their record.
    pub fn waits(&self) -> Waits {
        let all = Waits::default();
        for waits in self.waits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            all.merge(waits);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use shared::protocol::{Protocol, read_target};

    use super::*;

    fn address(target: &str) -> Address {
        Address::of(&read_target(target, Protocol::TritonGrpc).unwrap()).unwrap()
    }

    #[test]
    fn addresses_keep_host_port_and_prefix() {
        let plain = address("openai://127.0.0.1:9000");
        assert_eq!((plain.host.as_str(), plain.port, plain.tls), ("127.0.0.1", 9000, false));
        assert_eq!(plain.path("/v1/models"), "/v1/models");
        let prefixed = address("openai-https://llm.example/serve/v1");
        assert_eq!((prefixed.port, prefixed.tls), (443, true));
        assert_eq!(prefixed.path("/v1/completions"), "/serve/v1/completions");
        assert_eq!(prefixed.to_string(), "https://llm.example/serve");
        let v6 = address("triton-http://[::1]:8000");
        assert_eq!((v6.host.as_str(), v6.authority.as_str()), ("[::1]", "[::1]:8000"));
    }

    #[test]
    fn error_answers_say_the_servers_message() {
        let triton = error_message(StatusCode::BAD_REQUEST, r#"{"error":"Request for unknown model: 'x'"}"#);
        assert_eq!(triton, "the server answered 400 Bad Request: Request for unknown model: 'x'");
        let openai = error_message(StatusCode::NOT_FOUND, r#"{"error":{"message":"no such model","type":"x"}}"#);
        assert_eq!(openai, "the server answered 404 Not Found: no such model");
        let vllm = error_message(StatusCode::BAD_REQUEST, r#"{"object":"error","message":"too long","type":"x"}"#);
        assert_eq!(vllm, "the server answered 400 Bad Request: too long");
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, "upstream down\nmore"),
            "the server answered 502 Bad Gateway: upstream down"
        );
        assert_eq!(
            error_message(StatusCode::INTERNAL_SERVER_ERROR, ""),
            "the server answered 500 Internal Server Error"
        );
    }
}
