//! Who may use the dashboard, and from where: the names it answers to (so no other site's
//! page reaches it through DNS rebinding), the origins that may change things, viewers and
//! operators with their tokens and sign-in cookies, the targets it may measure, and the
//! headers every answer carries.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use shared::api::Role;

use super::AppState;
use super::api::HttpError;

/// The cookie a signed-in browser carries.
pub const COOKIE: &str = "tokenscope_session";
/// How long a sign-in lasts in a browser, in seconds (30 days).
const COOKIE_MAX_AGE: u64 = 30 * 24 * 3600;
/// The shortest token taken: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// A token: compared in constant time, never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A token, or why it cannot be one.
    pub fn new(token: &str) -> Result<Self, String> {
        let token = token.trim();
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(format!("a token must have at least {MIN_TOKEN_LEN} characters"));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("a token cannot contain spaces or control characters".into());
        }
        Ok(Self(token.to_string()))
    }

    /// A new random token: 32 bytes from the system's generator, as 64 hex digits.
    pub fn generate() -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|err| format!("no random numbers from the system: {err}"))?;
        Ok(Self(hex(&bytes)))
    }

    /// The token itself, to print once when it was generated.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    fn matches(&self, given: &str) -> bool {
        constant_time_eq(&digest(&["token", &self.0]), &digest(&["token", given]))
    }

    /// What a browser signed in with this token for `role` carries in its cookie: a digest
    /// of the token, so the cookie never holds the token and lasts as long as the token does.
    fn cookie_value(&self, role: Role) -> String {
        hex(&digest(&["session", role.name(), &self.0]))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who may view runs when the dashboard has an operator token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewers {
    /// Anyone who can reach the dashboard.
    Open,
    /// Only visitors with this token (or the operator's).
    Token(Secret),
}

/// Who may do what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roles {
    /// Everyone is an operator: the default on a loopback address, where only this machine's
    /// users reach the dashboard, and `--insecure-open` elsewhere.
    Open,
    /// Operators carry the operator token; viewers as [`Viewers`] says.
    Tokens { operator: Secret, viewers: Viewers },
}

/// The dashboard's access rules.
#[derive(Debug, Clone)]
pub struct Access {
    pub roles: Roles,
    /// Host names (without port, lowercase) the dashboard answers to besides `localhost` and
    /// IP addresses: `--allowed-host` and the host of `--public-url`.
    pub hosts: Vec<String>,
    /// The address users open, such as `https://tokenscope.lab.example` behind a proxy.
    pub public_url: Option<String>,
    /// The targets the dashboard may measure; empty allows every target.
    pub targets: Vec<TargetPattern>,
}

impl Access {
    /// Everyone an operator, any target: a dashboard on loopback as tests and the library
    /// use it by default.
    pub fn open() -> Self {
        Self { roles: Roles::Open, hosts: Vec::new(), public_url: None, targets: Vec::new() }
    }

    /// Whether browsers sign in.
    pub fn signs_in(&self) -> bool {
        matches!(self.roles, Roles::Tokens { .. })
    }

    /// Whether the dashboard answers to `host` (a `Host` header: a name or address, with or
    /// without port). A page served from any other name, even one that resolves to this
    /// machine, must not reach the API: that is how DNS rebinding attacks work. IP
    /// addresses and `localhost` cannot be rebound, so they are always answered.
    pub fn answers_to(&self, host: &str) -> bool {
        let name = host_name(host);
        name == "localhost" || name.parse::<IpAddr>().is_ok() || self.hosts.contains(&name)
    }

    /// Whether a page at `origin` (an `Origin` header) may change things through a request
    /// sent to `host`: the same origin as the request, the public URL's, or one of the
    /// names given with `--allowed-host`.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let Some((scheme, authority)) = origin.split_once("://") else { return false };
        if !matches!(scheme, "http" | "https") || !self.answers_to(authority) {
            return false;
        }
        let same = host.is_some_and(|host| authority.eq_ignore_ascii_case(host));
        let public = self.public_url.as_deref().is_some_and(|url| url.eq_ignore_ascii_case(origin));
        let named = self.hosts.iter().any(|h| *h == host_name(authority));
        same || public || named
    }

    /// The role a request's credentials give, or `None` when it has none that count.
    fn role(&self, headers: &HeaderMap) -> Result<(Option<Role>, Credential), Refusal> {
        let Roles::Tokens { operator, viewers } = &self.roles else {
            return Ok((Some(Role::Operator), Credential::None));
        };
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
            let Some(token) = token else { return Err(Refusal::BadAuthorization) };
            if operator.matches(token) {
                return Ok((Some(Role::Operator), Credential::Bearer));
            }
            if let Viewers::Token(viewer) = viewers
                && viewer.matches(token)
            {
                return Ok((Some(Role::Viewer), Credential::Bearer));
            }
            return Err(Refusal::WrongToken);
        }
        if let Some(cookie) = cookie(headers, COOKIE) {
            let expected = |secret: &Secret, role| {
                let value = secret.cookie_value(role);
                constant_time_eq(&digest(&["cookie", &value]), &digest(&["cookie", cookie]))
            };
            if expected(operator, Role::Operator) {
                return Ok((Some(Role::Operator), Credential::Cookie));
            }
            let viewer_cookie = match viewers {
                Viewers::Token(viewer) => expected(viewer, Role::Viewer),
                Viewers::Open => false,
            };
            if viewer_cookie {
                return Ok((Some(Role::Viewer), Credential::Cookie));
            }
        }
        Ok(match viewers {
            Viewers::Open => (Some(Role::Viewer), Credential::None),
            Viewers::Token(_) => (None, Credential::None),
        })
    }

    /// Checks a token given at the sign-in page: the role it gives and the cookie to set.
    pub fn sign_in(&self, token: &str) -> Option<(Role, String)> {
        let Roles::Tokens { operator, viewers } = &self.roles else { return None };
        let token = token.trim();
        let role = if operator.matches(token) {
            Role::Operator
        } else if let Viewers::Token(viewer) = viewers
            && viewer.matches(token)
        {
            Role::Viewer
        } else {
            return None;
        };
        let secret = if role == Role::Operator { operator } else { self.viewer_secret()? };
        let secure =
            if self.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) { "; Secure" } else { "" };
        let cookie = format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE}{secure}",
            secret.cookie_value(role)
        );
        Some((role, cookie))
    }

    fn viewer_secret(&self) -> Option<&Secret> {
        match &self.roles {
            Roles::Tokens { viewers: Viewers::Token(viewer), .. } => Some(viewer),
            _ => None,
        }
    }

    /// Whether the dashboard may measure `target` (a normalised `scheme://host:port` URL).
    pub fn may_measure(&self, target: &str) -> bool {
        if self.targets.is_empty() {
            return true;
        }
        let Some((host, port)) = target_host_port(target) else { return false };
        self.targets.iter().any(|pattern| pattern.matches(&host, &port))
    }

    /// Whether a run on `target` may read metrics at `url`: an allowed address, or the
    /// allowed target's own host on Triton's metrics port, which need not be allowed apart.
    pub fn may_read_metrics(&self, target: &str, url: &str) -> bool {
        if self.may_measure(url) {
            return true;
        }
        let port = shared::telemetry::TRITON_METRICS_PORT.to_string();
        match (target_host_port(target), target_host_port(url)) {
            (Some((target_host, _)), Some((host, url_port))) => {
                self.may_measure(target) && host == target_host && url_port == port
            }
            _ => false,
        }
    }

    /// The allowed targets as `GET /api/info` lists them.
    pub fn target_list(&self) -> Vec<String> {
        self.targets.iter().map(|p| p.to_string()).collect()
    }
}

/// The cookie that signs a browser out.
pub fn sign_out_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// How a request proved its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    None,
    Bearer,
    /// The sign-in cookie: only browsers send it, and only browsers can be fooled into
    /// sending it for another site, so these requests must show their origin.
    Cookie,
}

/// Why a request's credentials were refused.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    BadAuthorization,
    WrongToken,
}

/// The host part of a `Host` header or an origin's authority: lowercase, without port
/// (IPv6 addresses keep no brackets) and without a trailing dot.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A target allowed with `--allow-target HOST:PORT`; `*` in the host matches any run of
/// characters, and a port of `*` any port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPattern {
    host: String,
    port: String,
}

impl TargetPattern {
    /// Reads `HOST:PORT`, `[IPV6]:PORT` or a target URL; a bare host means Triton's gRPC
    /// port, 8001.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let authority = text.split_once("://").map_or(text, |(_, rest)| rest).trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(format!("{text:?} is not HOST:PORT, such as triton.lab:8001 or *.lab:*"));
        }
        let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| format!("{text:?}: an IPv6 address needs its ]"))?;
            (host.to_string(), after.strip_prefix(':').unwrap_or("8001").to_string())
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), port.to_string()),
                None => (authority.to_string(), "8001".to_string()),
            }
        };
        if port != "*" && port.parse::<u16>().is_err() {
            return Err(format!("{text:?}: the port must be a number or *"));
        }
        Ok(Self { host: host.to_ascii_lowercase(), port })
    }

    fn matches(&self, host: &str, port: &str) -> bool {
        (self.port == "*" || self.port == port) && glob(&self.host, host)
    }
}

impl std::fmt::Display for TargetPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A normalised target's host (lowercase, IPv6 without brackets) and port (the scheme's
/// default when none is written: 80 for http, 443 for https).
fn target_host_port(target: &str) -> Option<(String, String)> {
    let uri: axum::http::Uri = target.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let tls = uri.scheme_str().is_some_and(|scheme| scheme.ends_with("https"));
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Some((host, port.to_string()))
}

/// `*` matches any run of characters, everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether a request changes something: everything but reads, and WebSocket upgrades,
/// which a page of any origin may open.
fn changes(request: &Request) -> bool {
    !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || request.headers().contains_key(header::UPGRADE)
}

/// Paths anyone the dashboard answers to may open: the sign-in page and the browser app's
/// files, which hold no run data (the app asks the API, which checks the visitor).
fn public(path: &str) -> bool {
    path == "/signin" || path == "/signout" || !path.starts_with("/api")
}

/// The layer in front of every route: checks the `Host`, then who is asking and from which
/// page, and hands the role on to the handlers.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let access = state.access();
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(host) = host.as_deref().filter(|h| !access.answers_to(h)) {
        return HttpError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!("this dashboard does not answer to the name {:?}", host_name(host)),
            "open it by its address or a name it was started with: add --allowed-host NAME, or --public-url URL \
             when it is behind a proxy",
        )
        .into_response();
    }
    let (role, credential) = match access.role(request.headers()) {
        Ok(found) => found,
        Err(refusal) => return unauthorized(refusal_text(refusal)),
    };
    if changes(&request) {
        let origin = request.headers().get(header::ORIGIN).map(|v| v.to_str().unwrap_or("null").to_string());
        let allowed = match &origin {
            Some(origin) => access.origin_allowed(origin, host.as_deref()),
            // Browsers name the page's origin on every such request; a missing one is a
            // script's, which is fine unless it came with a browser's cookie.
            None => credential != Credential::Cookie,
        };
        if !allowed {
            let origin = origin.as_deref().unwrap_or("an unnamed page");
            return HttpError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "a request from the page at {origin} was refused: only pages served by this dashboard may use it"
                ),
                "open the dashboard itself; tools without a browser send no Origin header and are not affected",
            )
            .into_response();
        }
    }
    let path = request.uri().path();
    if !public(path) {
        match role {
            None => return unauthorized("this dashboard needs a sign-in"),
            Some(Role::Viewer) if changes(&request) && !request.headers().contains_key(header::UPGRADE) => {
                return HttpError::new(
                    StatusCode::FORBIDDEN,
                    "viewers cannot start, cancel, change, delete or import runs, nor upload tokenizers",
                    "sign in with the operator token at /signin, or send it as Authorization: Bearer TOKEN",
                )
                .into_response();
            }
            Some(_) => {}
        }
    }
    request.extensions_mut().insert(role.unwrap_or(Role::Viewer));
    let mut response = next.run(request).await;
    secure_headers(response.headers_mut(), host.as_deref());
    response
}

fn refusal_text(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::BadAuthorization => "the Authorization header is not \"Bearer TOKEN\"",
        Refusal::WrongToken => "the token was refused",
    }
}

fn unauthorized(error: &str) -> Response {
    let mut response = HttpError::new(
        StatusCode::UNAUTHORIZED,
        error,
        "sign in at /signin with a token from the dashboard's operator, or send Authorization: Bearer TOKEN",
    )
    .into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tokenscope\""));
    response
}

/// Headers on every answer: nothing sniffs types, no page embeds the dashboard (so no
/// other site can trick a click on Run or Delete), no address (a run's link) leaks to other sites, and
/// the page loads code only from the dashboard itself.
fn secure_headers(headers: &mut HeaderMap, host: Option<&str>) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: under it, browsers send `Origin: null` with a page's own POSTs and
    // form submissions, and the origin check above could not tell the dashboard's pages
    // from any other. `same-origin` still tells other sites nothing.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        return;
    }
    // WebSockets to the page's own host: `'self'` covers them in current browsers, and the
    // explicit sources keep older ones working. The host was checked above.
    let sockets = host
        .filter(|h| h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')))
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; connect-src 'self'{sockets}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Reads the listen address's kind: a dashboard that others can reach needs access rules.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(viewers: Viewers) -> Access {
        let operator = Secret::new("operator-token-0123456789").unwrap();
        Access { roles: Roles::Tokens { operator, viewers }, ..Access::open() }
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_its_own_names_are_answered() {
        let mut access = Access::open();
        for host in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST.", "10.1.2.3:80", "[fe80::1]"] {
            assert!(access.answers_to(host), "{host}");
        }
        for host in ["rebind.example:8080", "localhost.evil.example", "127.0.0.1.nip.io:8080", ""] {
            assert!(!access.answers_to(host), "{host}");
        }
        access.hosts.push("tokenscope.lab".into());
        assert!(access.answers_to("tokenscope.lab:443") && access.answers_to("TokenScope.Lab"));
    }

    #[test]
    fn origins_must_be_the_dashboards_own() {
        let mut access = Access::open();
        let host = Some("127.0.0.1:8080");
        assert!(access.origin_allowed("http://127.0.0.1:8080", host));
        assert!(!access.origin_allowed("http://127.0.0.1:3000", host), "another local site");
        assert!(!access.origin_allowed("http://rebind.example:8080", Some("rebind.example:8080")));
        assert!(!access.origin_allowed("null", host));
        assert!(!access.origin_allowed("file://", host));
        access.public_url = Some("https://tokenscope.lab".into());
        access.hosts.push("tokenscope.lab".into());
        assert!(access.origin_allowed("https://tokenscope.lab", host));
    }

    #[test]
    fn tokens_give_roles_and_wrong_ones_are_refused() {
        let viewer = Secret::new("viewer-token-0123456789").unwrap();
        let access = tokens(Viewers::Token(viewer));
        let role = |pairs: &[(header::HeaderName, &str)]| access.role(&headers(pairs)).map(|(r, _)| r);
        assert_eq!(role(&[]).unwrap(), None);
        let bearer = |t: &str| format!("Bearer {t}");
        assert_eq!(
            role(&[(header::AUTHORIZATION, &bearer("operator-token-0123456789"))]).unwrap(),
            Some(Role::Operator)
        );
        assert_eq!(role(&[(header::AUTHORIZATION, &bearer("viewer-token-0123456789"))]).unwrap(), Some(Role::Viewer));
        assert!(matches!(
            role(&[(header::AUTHORIZATION, &bearer("operator-token-012345678"))]),
            Err(Refusal::WrongToken)
        ));
        assert!(matches!(role(&[(header::AUTHORIZATION, "Basic abc")]), Err(Refusal::BadAuthorization)));
        let (signed, cookie) = access.sign_in("viewer-token-0123456789").unwrap();
        assert_eq!(signed, Role::Viewer);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(!cookie.contains("viewer-token"), "the cookie never holds the token: {cookie}");
        let value = cookie.split(';').next().unwrap();
        assert_eq!(role(&[(header::COOKIE, &format!("a=b; {value}"))]).unwrap(), Some(Role::Viewer));
        assert_eq!(role(&[(header::COOKIE, &format!("{COOKIE}=forged"))]).unwrap(), None);
        assert!(access.sign_in("nope-nope-nope-nope").is_none());
    }

    #[test]
    fn open_viewers_need_no_token_but_operators_do() {
        let access = tokens(Viewers::Open);
        assert_eq!(access.role(&HeaderMap::new()).unwrap().0, Some(Role::Viewer));
        assert_eq!(Access::open().role(&HeaderMap::new()).unwrap().0, Some(Role::Operator));
    }

    #[test]
    fn tokens_are_long_and_plain_and_never_printed() {
        assert!(Secret::new("short").unwrap_err().contains("16"));
        assert!(Secret::new("has a space in the middle").is_err());
        let generated = Secret::generate().unwrap();
        assert_eq!(generated.reveal().len(), 64);
        assert_ne!(generated, Secret::generate().unwrap());
        assert_eq!(format!("{generated:?}"), "Secret(..)");
    }

    #[test]
    fn an_allowed_targets_own_metrics_port_may_be_read_and_nothing_else_beyond_the_list() {
        let access = Access { targets: vec![TargetPattern::parse("triton.lab:8001").unwrap()], ..Access::open() };
        let target = "http://triton.lab:8001";
        assert!(access.may_read_metrics(target, "http://triton.lab:8002/metrics"));
        assert!(!access.may_read_metrics(target, "http://triton.lab:22/metrics"), "no other port of its host");
        assert!(!access.may_read_metrics(target, "http://elsewhere:8002/metrics"));
        assert!(!access.may_read_metrics("http://other:8001", "http://other:8002/metrics"), "nor a refused target's");
        assert!(Access::open().may_read_metrics(target, "http://anywhere:9/metrics"));
    }

    #[test]
    fn target_patterns() {
        let access = |patterns: &[&str]| Access {
            targets: patterns.iter().map(|p| TargetPattern::parse(p).unwrap()).collect(),
            ..Access::open()
        };
        let lab = access(&["*.lab.example:8001", "127.0.0.1:*", "[::1]:9000", "triton"]);
        assert!(lab.may_measure("http://a.lab.example:8001"));
        assert!(lab.may_measure("https://B.LAB.EXAMPLE:8001"));
        assert!(!lab.may_measure("http://a.lab.example:8002"));
        assert!(!lab.may_measure("http://lab.example.evil:8001"));
        assert!(lab.may_measure("http://127.0.0.1:1"));
        assert!(lab.may_measure("http://[::1]:9000"));
        assert!(lab.may_measure("http://triton:8001"));
        assert!(!lab.may_measure("http://triton"), "port 80 is not 8001");
        assert!(!lab.may_measure("not a url"));
        assert!(access(&[]).may_measure("http://anything:1"));
        assert_eq!(lab.target_list()[2], "[::1]:9000");
        assert!(TargetPattern::parse("host:port").unwrap_err().contains("port"));
        assert!(TargetPattern::parse("user@host:1").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob("*", "") && glob("*", "abc") && glob("a*c", "abc") && glob("a*c", "ac"));
        assert!(!glob("a*c", "ab") && !glob("abc", "abcd") && glob("*.x.*", "a.x.b") && !glob("a*b*c", "acb"));
    }
}
