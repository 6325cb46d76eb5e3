//! Which protocol a sweep speaks to its server, and reading a target address into it: the
//! address's scheme may name the protocol (`triton-http://`, `openai://`) or leave it to the
//! spec (`http://`, `https://`).

use serde::{Deserialize, Serialize};

/// How requests are sent and their tokens streamed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Protocol {
    /// Triton's gRPC `ModelStreamInfer`, one stream per request in flight.
    #[default]
    #[serde(rename = "triton-grpc")]
    TritonGrpc,
    /// Triton's HTTP generate extension: `POST /v2/models/NAME/generate_stream`, answered
    /// with Server-Sent Events whose keys are the model's tensor names.
    #[serde(rename = "triton-http")]
    TritonHttp,
    /// An OpenAI-compatible server (vLLM, SGLang, llama.cpp, TGI, Triton's OpenAI frontend):
    /// `/v1/completions` or `/v1/chat/completions` with `stream: true`.
    #[serde(rename = "openai")]
    OpenAi,
}

impl Protocol {
    /// Every protocol, in the order they are listed in help and forms.
    pub const ALL: [Protocol; 3] = [Self::TritonGrpc, Self::TritonHttp, Self::OpenAi];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::TritonGrpc => "triton-grpc",
            Self::TritonHttp => "triton-http",
            Self::OpenAi => "openai",
        }
    }

    /// The protocol as a user reads it.
    pub fn label(self) -> &'static str {
        match self {
            Self::TritonGrpc => "Triton gRPC",
            Self::TritonHttp => "Triton HTTP/SSE",
            Self::OpenAi => "OpenAI/SSE",
        }
    }

    /// The scheme of a target address that names this protocol, plain and with TLS; the
    /// gRPC protocol's are plain `http` and `https`.
    pub fn schemes(self) -> [&'static str; 2] {
        match self {
            Self::TritonGrpc => ["http", "https"],
            Self::TritonHttp => ["triton-http", "triton-https"],
            Self::OpenAi => ["openai", "openai-https"],
        }
    }

    /// An example target of this protocol on its usual port, for messages.
    pub fn example_target(self) -> &'static str {
        match self {
            Self::TritonGrpc => "http://127.0.0.1:8001",
            Self::TritonHttp => "triton-http://127.0.0.1:8000",
            Self::OpenAi => "openai://127.0.0.1:8000",
        }
    }

    /// Whether this is the default, left out of a spec's JSON.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown protocol {s:?}; expected one of {}", Self::ALL.map(Self::name).join(", ")))
    }
}

/// Where and how a sweep's requests go, read from its target address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub protocol: Protocol,
    /// The server's address as plain HTTP sees it: `http://` or `https://`, host and port,
    /// and any path prefix, without a trailing `/` (and for OpenAI without a trailing `/v1`,
    /// which request paths add).
    pub base_url: String,
    /// Whether the connection is encrypted (`https://`, `triton-https://`, `openai-https://`).
    pub tls: bool,
}

/// Reads a target address: its scheme names the protocol (`triton-http://`,
/// `triton-https://`, `openai://`, `openai-https://`) or leaves it to `protocol`, the spec's
/// (`http://`, `https://`, or no scheme, which is `http://`). The error, a sentence for a
/// user, says what was wrong and what to write instead.
pub fn read_target(target: &str, protocol: Protocol) -> Result<Endpoint, String> {
    let target = target.trim();
    let (scheme, rest) = target.split_once("://").unwrap_or(("http", target));
    let scheme = scheme.to_ascii_lowercase();
    let Some((named, tls)) = Protocol::ALL.into_iter().find_map(|p| {
        let [plain, secure] = p.schemes();
        (scheme == plain || scheme == secure).then_some((p, scheme == secure))
    }) else {
        let schemes: Vec<String> = Protocol::ALL.iter().flat_map(|p| p.schemes()).map(|s| format!("{s}://")).collect();
        return Err(format!(
            "the target {target:?} starts with {scheme}://, which names no protocol; write one of {}",
            schemes.join(", ")
        ));
    };
    let resolved = match (named, protocol) {
        // Plain http(s) leaves the protocol to the spec.
        (Protocol::TritonGrpc, asked) => asked,
        (named, Protocol::TritonGrpc) => named,
        (named, asked) if named == asked => named,
        (named, asked) => {
            let [plain, secure] = asked.schemes();
            let (scheme, host) = (if tls { secure } else { plain }, rest);
            return Err(format!(
                "the target {target:?} says the {named} protocol but the {asked} protocol was asked for; write \
                 {scheme}://{host} to speak {asked}, or ask for {named}"
            ));
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.starts_with(':') {
        return Err(format!("the target {target:?} names no host; write it as {}", resolved.example_target()));
    }
    let mut path = rest.trim_end_matches('/');
    if resolved == Protocol::OpenAi {
        path = path.strip_suffix("/v1").unwrap_or(path);
    }
    let base_url = format!("{}://{path}", if tls { "https" } else { "http" });
    Ok(Endpoint { protocol: resolved, base_url, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(target: &str, protocol: Protocol) -> (Protocol, String, bool) {
        let endpoint = read_target(target, protocol).unwrap();
        (endpoint.protocol, endpoint.base_url, endpoint.tls)
    }

    #[test]
    fn schemes_name_protocols_and_plain_http_leaves_it_to_the_spec() {
        use Protocol::*;
        assert_eq!(read("http://h:8001", TritonGrpc), (TritonGrpc, "http://h:8001".into(), false));
        assert_eq!(read(" https://h:8001/ ", TritonGrpc), (TritonGrpc, "https://h:8001".into(), true));
        assert_eq!(read("h:8001", TritonGrpc), (TritonGrpc, "http://h:8001".into(), false));
        assert_eq!(read("http://h:8000", TritonHttp), (TritonHttp, "http://h:8000".into(), false));
        assert_eq!(read("https://h", OpenAi), (OpenAi, "https://h".into(), true));
        assert_eq!(read("triton-http://h:8000", TritonGrpc), (TritonHttp, "http://h:8000".into(), false));
        assert_eq!(read("Triton-HTTPS://h:8000", TritonHttp), (TritonHttp, "https://h:8000".into(), true));
        assert_eq!(read("openai://h:9000", TritonGrpc), (OpenAi, "http://h:9000".into(), false));
        assert_eq!(
            read("openai-https://api.example.com/v1/", OpenAi),
            (OpenAi, "https://api.example.com".into(), true)
        );
        assert_eq!(read("openai://h:9000/proxy", OpenAi), (OpenAi, "http://h:9000/proxy".into(), false));
        // Triton's paths are its own: nothing is taken off.
        assert_eq!(read("triton-http://h/v1", TritonHttp).1, "http://h/v1");
        assert_eq!(read("http://[::1]:8001", TritonGrpc).1, "http://[::1]:8001");
    }

    #[test]
    fn contradictions_and_unknown_schemes_say_what_to_write() {
        let err = read_target("openai://h:9000", Protocol::TritonHttp).unwrap_err();
        assert!(err.contains("says the openai protocol but the triton-http protocol was asked for"), "{err}");
        assert!(err.contains("write triton-http://h:9000"), "{err}");
        let err = read_target("triton-https://h", Protocol::OpenAi).unwrap_err();
        assert!(err.contains("write openai-https://h"), "{err}");
        let err = read_target("grpc://h:8001", Protocol::TritonGrpc).unwrap_err();
        assert!(err.contains("grpc://, which names no protocol"), "{err}");
        assert!(
            err.contains("http://, https://, triton-http://, triton-https://, openai://, openai-https://"),
            "{err}"
        );
        let err = read_target("openai://:9000", Protocol::TritonGrpc).unwrap_err();
        assert!(err.contains("names no host; write it as openai://127.0.0.1:8000"), "{err}");
        assert!(read_target("http://", Protocol::TritonGrpc).unwrap_err().contains("names no host"));
    }

    #[test]
    fn protocols_round_trip_by_name_and_in_json() {
        for protocol in Protocol::ALL {
            assert_eq!(protocol.name().parse::<Protocol>().unwrap(), protocol);
            let json = serde_json::to_string(&protocol).unwrap();
            assert_eq!(json, format!("\"{}\"", protocol.name()));
            assert_eq!(serde_json::from_str::<Protocol>(&json).unwrap(), protocol);
        }
        assert!("websocket".parse::<Protocol>().unwrap_err().contains("triton-grpc, triton-http, openai"));
    }
}
