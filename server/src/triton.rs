//! A Triton gRPC client that turns every failure into a message a user can act on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::api::ModelChoice;
use shared::server_stats::ServerCounters;
use shared::{InputStyle, ModelInfo, SweepSpec};
use thiserror::Error;
use tonic::codegen::GrpcMethod;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

use crate::arrival::{ReadStamp, StampingConnector, Waits};
use crate::convention::{ModelSignature, RequestPlan, StyleError, resolve_style};
use crate::pb;
use crate::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use crate::pb::grpc_inference_service_server::SERVICE_NAME;
use crate::response::{Response, StreamCodec};

/// How long to wait for a TCP connection and for each discovery call.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2 flow-control windows, per stream and per connection.
pub const STREAM_WINDOW: u32 = 4 << 20;
pub const CONNECTION_WINDOW: u32 = 64 << 20;

#[derive(Debug, Error)]
pub enum TritonError {
    #[error(
        "{target:?} is not a valid address: {cause}; give the server's gRPC address, such as http://127.0.0.1:8001"
    )]
    InvalidTarget { target: String, cause: String },
    #[error(
        "cannot reach Triton at {target}: {cause}. Is the server running, and is this its gRPC port (8001 by default)?"
    )]
    Unreachable { target: String, cause: String },
    #[error(
        "{target} answered, but not as a Triton gRPC server ({cause}). Is this the gRPC port (8001 by default) rather than HTTP (8000)?"
    )]
    NotGrpc { target: String, cause: String },
    #[error("cannot open a TLS connection to {target}: {cause}; {hint}")]
    Tls { target: String, cause: String, hint: &'static str },
    #[error("model '{model}' is not on the server at {target}; {available}")]
    UnknownModel { model: String, target: String, available: String },
    #[error("model '{model}' is not ready on {target} (state {state}{reason}); load it or wait until it is READY")]
    NotReady { model: String, target: String, state: String, reason: String },
    #[error(
        "model '{model}' is not decoupled, so it answers each request once and cannot stream tokens. \
         Measure it without streaming (`--non-streaming`, or untick Streaming in the dashboard), where TTFT \
         is the whole request's latency; or set `model_transaction_policy {{ decoupled: true }}` in its config.pbtxt"
    )]
    NotDecoupled { model: String },
    #[error(
        "model '{model}' is decoupled, and Triton serves decoupled models only over streaming (ModelStreamInfer); \
         measure it with streaming (drop `--non-streaming`, or tick Streaming in the dashboard)"
    )]
    Decoupled { model: String },
    #[error(transparent)]
    Style(#[from] StyleError),
    #[error("{what} failed on {target}: {message}")]
    Rpc { what: &'static str, target: String, message: String },
}

/// One model in the server's repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub name: String,
    pub version: String,
    pub state: String,
    pub reason: String,
}

/// A connected Triton server.
#[derive(Debug, Clone)]
pub struct Triton {
    target: String,
    endpoint: Endpoint,
    connection: Connection,
}

/// Responses of up to this size are read.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// One HTTP/2 connection to the server; clones share it.
#[derive(Debug, Clone)]
pub struct Connection {
    channel: Channel,
    reads: Arc<ReadStamp>,
    waits: Arc<Waits>,
}

impl Connection {
    /// When this connection last read bytes from its socket: the arrival time of any
    /// response decoded since (see [`crate::arrival`]).
    pub fn last_read(&self) -> Instant {
        self.reads.last()
    }

    /// Counts a response recorded now whose arrival was stamped `read`.
    pub fn recorded(&self, read: Instant) {
        self.waits.add(read.elapsed());
    }

    /// How long this connection's responses waited between their stamp and their record.
    pub fn waits(&self) -> &Waits {
        &self.waits
    }

    /// A client for calls on this connection.
    pub fn client(&self) -> GrpcInferenceServiceClient<Channel> {
        GrpcInferenceServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// Opens a ModelStreamInfer stream on this connection, its responses read as
    /// [`Response`]s rather than decoded into messages (see [`crate::response`]).
    pub async fn stream(
        &self,
        requests: impl tonic::IntoStreamingRequest<Message = pb::ModelInferRequest>,
    ) -> Result<tonic::Response<tonic::Streaming<Response>>, tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone()).max_decoding_message_size(MAX_RESPONSE_BYTES);
        grpc.ready().await.map_err(|e| tonic::Status::unknown(format!("the connection is not ready: {e}")))?;
        let mut request = requests.into_streaming_request();
        request.extensions_mut().insert(GrpcMethod::new(SERVICE_NAME, "ModelStreamInfer"));
        grpc.streaming(request, PathAndQuery::from_static(STREAM_PATH), StreamCodec).await
    }
}

const STREAM_PATH: &str = "/inference.GRPCInferenceService/ModelStreamInfer";

/// How long a read of the server's statistics may take before the point goes on without them.
const STATISTICS_TIMEOUT: Duration = Duration::from_secs(5);

impl Connection {
    /// Triton's cumulative statistics of `model` (every version of it the server reports, or
    /// `version`), or why they could not be read.
    pub async fn model_counters(&self, model: &str, version: &str) -> Result<ServerCounters, String> {
        let request = pb::ModelStatisticsRequest { name: model.into(), version: version.into() };
        let response = match tokio::time::timeout(STATISTICS_TIMEOUT, self.client().model_statistics(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => return Err(format!("ModelStatistics failed: {}", status_text(&status))),
            Err(_) => return Err(format!("ModelStatistics gave no answer within {} s", STATISTICS_TIMEOUT.as_secs())),
        };
        let pair = |d: Option<pb::StatisticDuration>| d.map_or((0, 0), |d| (d.count, d.ns));
        let mut total = ServerCounters::default();
        let mut found = false;
        for stats in response.model_stats.into_iter().filter(|s| s.name == model) {
            found = true;
            let s = stats.inference_stats.unwrap_or_default();
            for (sum, part) in [
                (&mut total.success, pair(s.success)),
                (&mut total.fail, pair(s.fail)),
                (&mut total.queue, pair(s.queue)),
                (&mut total.compute_input, pair(s.compute_input)),
                (&mut total.compute_infer, pair(s.compute_infer)),
                (&mut total.compute_output, pair(s.compute_output)),
            ] {
                *sum = (sum.0.saturating_add(part.0), sum.1.saturating_add(part.1));
            }
        }
        if found { Ok(total) } else { Err(format!("ModelStatistics has no entry for the model {model:?}")) }
    }
}

/// Checks that a model whose signature is `sig` can be measured the way `spec` asks
/// (streaming needs a decoupled model; ModelInfer needs one that is not), and plans its
/// requests: the same for each of Triton's protocols.
pub fn plan_model(sig: &ModelSignature, spec: &SweepSpec) -> Result<(ModelInfo, RequestPlan), TritonError> {
    let (model, version) = (spec.model.as_str(), spec.model_version.as_deref().unwrap_or_default());
    match sig.decoupled {
        Some(false) if spec.streaming => return Err(TritonError::NotDecoupled { model: model.into() }),
        Some(true) if !spec.streaming => return Err(TritonError::Decoupled { model: model.into() }),
        _ => {}
    }
    let style = resolve_style(sig, spec.input_style)?;
    let plan = RequestPlan::new(sig, style, spec);
    let info = ModelInfo {
        name: sig.name.clone(),
        version: (!version.is_empty()).then(|| version.to_string()).or_else(|| sig.versions.last().cloned()),
        input_style: style,
        decoupled: sig.decoupled.unwrap_or(true),
        batched: sig.batched(),
        inputs: sig.inputs.iter().map(ToString::to_string).collect(),
        outputs: sig.outputs.iter().map(ToString::to_string).collect(),
    };
    Ok((info, plan))
}

/// Adds `http://` when the user gave only `host:port`.
pub fn normalize_target(target: &str) -> String {
    let target = target.trim().trim_end_matches('/');
    if target.contains("://") { target.to_string() } else { format!("http://{target}") }
}

impl Triton {
    /// Connects and checks that a Triton gRPC server answers.
    pub async fn connect(target: &str) -> Result<Self, TritonError> {
        let target = normalize_target(target);
        let endpoint = Endpoint::from_shared(target.clone())
            .map_err(|e| TritonError::InvalidTarget { target: target.clone(), cause: e.to_string() })?
            // Wide flow-control windows from the start: a burst of responses (hundreds of
            // streams answering at once) must not wait for window updates.
            .initial_stream_window_size(Some(STREAM_WINDOW))
            .initial_connection_window_size(Some(CONNECTION_WINDOW));
        let endpoint = if target.starts_with("https://") {
            endpoint
                .tls_config(crate::tls::client_config(DISCOVERY_TIMEOUT))
                .map_err(|e| TritonError::InvalidTarget { target: target.clone(), cause: error_chain(&e) })?
        } else {
            endpoint
        };
        let connection = connect(&endpoint, &target).await?;
        match tokio::time::timeout(DISCOVERY_TIMEOUT, connection.client().server_live(pb::ServerLiveRequest {})).await {
            Ok(Ok(_)) => Ok(Self { target, endpoint, connection }),
            Ok(Err(status)) => Err(TritonError::NotGrpc { target, cause: status_text(&status) }),
            Err(_) => Err(TritonError::NotGrpc { target, cause: "no answer within 10 s".into() }),
        }
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    /// A client for issuing requests; clones share the connection.
    pub fn client(&self) -> GrpcInferenceServiceClient<Channel> {
        self.connection.client()
    }

    /// `count` connections of their own, the first being the one already open. Each is
    /// connected before it is returned, so no request pays for a connection's setup.
    pub async fn connections(&self, count: usize) -> Result<Vec<Connection>, TritonError> {
        let mut connections = vec![self.connection.clone()];
        while connections.len() < count {
            connections.push(connect(&self.endpoint, &self.target).await?);
        }
        Ok(connections)
    }

    /// The models in the server's repository.
    pub async fn models(&self) -> Result<Vec<ModelEntry>, TritonError> {
        let index =
            self.call("RepositoryIndex", self.client().repository_index(pb::RepositoryIndexRequest::default())).await?;
        Ok(index
            .models
            .into_iter()
            .map(|m| ModelEntry { name: m.name, version: m.version, state: m.state, reason: m.reason })
            .collect())
    }

    /// Reads a model's metadata and configuration, checks that it can be measured the way
    /// `spec` asks (streaming needs a decoupled model; ModelInfer needs one that is not), and
    /// plans its requests.
    pub async fn prepare(&self, spec: &SweepSpec) -> Result<(ModelInfo, RequestPlan), TritonError> {
        let (model, version) = (spec.model.as_str(), spec.model_version.as_deref().unwrap_or_default());
        plan_model(&self.signature(model, version).await?, spec)
    }

    /// Reads a model's metadata and, where the server serves it, its configuration.
    pub async fn signature(&self, model: &str, version: &str) -> Result<ModelSignature, TritonError> {
        let meta_request = pb::ModelMetadataRequest { name: model.into(), version: version.into() };
        let meta = match self.call("ModelMetadata", self.client().model_metadata(meta_request)).await {
            Ok(meta) => meta,
            Err(err) => return Err(self.explain_missing_model(model, err).await),
        };
        let config_request = pb::ModelConfigRequest { name: model.into(), version: version.into() };
        // Servers other than Triton may not serve configurations; metadata alone then decides.
        let config =
            self.call("ModelConfig", self.client().model_config(config_request)).await.ok().and_then(|c| c.config);
        Ok(ModelSignature::from_pb(&meta, config.as_ref()))
    }

    /// Every model of the server with its readiness, the style `auto` would pick and whether
    /// it streams: what a sweep form offers.
    pub async fn model_choices(&self) -> Result<Vec<ModelChoice>, TritonError> {
        let mut out = Vec::new();
        for entry in self.models().await? {
            let ready = entry.state == "READY";
            let mut choice = ModelChoice {
                name: entry.name,
                version: (!entry.version.is_empty()).then_some(entry.version),
                state: display_state(&entry.state),
                ready,
                reason: (!entry.reason.is_empty()).then_some(entry.reason),
                input_style: None,
                streaming: None,
                problem: None,
            };
            if !ready {
                choice.problem = Some(format!("not ready (state {}); load it or wait until it is READY", choice.state));
                out.push(choice);
                continue;
            }
            let version = choice.version.clone().unwrap_or_default();
            match self.signature(&choice.name, &version).await {
                Ok(sig) => {
                    choice.streaming = sig.decoupled;
                    match resolve_style(&sig, InputStyle::Auto) {
                        Ok(style) => choice.input_style = Some(style),
                        Err(err) => choice.problem = Some(err.to_string()),
                    }
                }
                Err(err) => choice.problem = Some(err.to_string()),
            }
            out.push(choice);
        }
        Ok(out)
    }

    /// Turns a failed metadata call into "unknown model" or "not ready" when the repository says so.
    async fn explain_missing_model(&self, model: &str, err: TritonError) -> TritonError {
        let Ok(models) = self.models().await else { return err };
        match models.iter().find(|m| m.name == model) {
            None => {
                let available = if models.is_empty() {
                    "the server has no models".to_string()
                } else {
                    let list: Vec<String> =
                        models.iter().map(|m| format!("{} ({})", m.name, display_state(&m.state))).collect();
                    format!("it has: {}", list.join(", "))
                };
                TritonError::UnknownModel { model: model.into(), target: self.target.clone(), available }
            }
            Some(entry) if entry.state != "READY" => TritonError::NotReady {
                model: model.into(),
                target: self.target.clone(),
                state: display_state(&entry.state),
                reason: if entry.reason.is_empty() { String::new() } else { format!(": {}", entry.reason) },
            },
            Some(_) => err,
        }
    }

    async fn call<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, TritonError> {
        match tokio::time::timeout(DISCOVERY_TIMEOUT, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => {
                Err(TritonError::Rpc { what, target: self.target.clone(), message: status_text(&status) })
            }
            Err(_) => {
                Err(TritonError::Rpc { what, target: self.target.clone(), message: "no answer within 10 s".into() })
            }
        }
    }
}

async fn connect(endpoint: &Endpoint, target: &str) -> Result<Connection, TritonError> {
    // The connector times the connection out itself: tonic's own timeout would wrap every
    // read and write of the connection in one more layer.
    let connector = StampingConnector::new(DISCOVERY_TIMEOUT);
    let reads = connector.stamp();
    let channel = endpoint.connect_with_connector(connector).await.map_err(|e| {
        let (target, cause) = (target.to_string(), error_chain(&e));
        match crate::tls::hint(&target, &cause) {
            Some(hint) => TritonError::Tls { target, cause, hint },
            None => TritonError::Unreachable { target, cause },
        }
    })?;
    Ok(Connection { channel, reads, waits: Arc::default() })
}

fn display_state(state: &str) -> String {
    if state.is_empty() { "state unknown".into() } else { state.into() }
}

/// A gRPC status as one readable line.
pub fn status_text(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{} ({:?})", status.message(), status.code())
    }
}

/// An error with its causes, joined by ": ".
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_get_a_scheme() {
        assert_eq!(normalize_target("127.0.0.1:8001"), "http://127.0.0.1:8001");
        assert_eq!(normalize_target(" http://h:1/ "), "http://h:1");
        assert_eq!(normalize_target("https://h:1"), "https://h:1");
    }
}
