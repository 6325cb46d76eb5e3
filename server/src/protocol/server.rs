//! What an HTTP protocol's server says of its models: Triton's metadata, configuration,
//! repository index and statistics over its HTTP API, and an OpenAI-compatible server's
//! `/v1/models`. The answers become what the gRPC side reads from Triton, so a run plans its
//! requests and reports its model the same way whatever the protocol.

use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use shared::api::ModelChoice;
use shared::protocol::{Endpoint, Protocol};
use shared::server_stats::ServerCounters;
use shared::spec::InputStyle;
use shared::{ModelInfo, SweepSpec};
use tokio::sync::Mutex;

use super::client::{Address, HttpConnection, error_message};
use crate::arrival::Waits;
use crate::convention::{ModelSignature, RequestPlan, TensorSig, resolve_style};

/// How long finding a model may take, per answer.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected server of an HTTP protocol, asked about its models.
pub struct HttpServer {
    protocol: Protocol,
    address: Arc<Address>,
    connection: Mutex<HttpConnection>,
}

impl HttpServer {
    /// Connects to an HTTP protocol's server; the error says what to do.
    pub async fn connect(endpoint: &Endpoint) -> Result<Self, String> {
        let address = Arc::new(Address::of(endpoint)?);
        let connection = HttpConnection::open(address.clone(), DISCOVERY_TIMEOUT, Arc::new(Waits::default())).await?;
        Ok(Self { protocol: endpoint.protocol, address, connection: Mutex::new(connection) })
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    /// GETs (or POSTs, empty) `path` and reads its JSON answer; an error answer's status is
    /// kept apart so callers can tell "no such model" from a broken server.
    async fn ask<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<T, Refusal> {
        let mut connection = self.connection.lock().await;
        if !connection.is_open() {
            *connection = HttpConnection::open(self.address.clone(), DISCOVERY_TIMEOUT, Arc::new(Waits::default()))
                .await
                .map_err(Refusal::Broken)?;
        }
        let body = (method == Method::POST).then(|| hyper::body::Bytes::from_static(b"{}"));
        let asked = async {
            let answer = connection.send(method, path, body).await?;
            let status = answer.status;
            Ok::<_, String>((status, answer.text().await?))
        };
        let (status, text) = tokio::time::timeout(DISCOVERY_TIMEOUT, asked)
            .await
            .map_err(|_| Refusal::Broken(format!("{path} gave no answer within {} s", DISCOVERY_TIMEOUT.as_secs())))?
            .map_err(Refusal::Broken)?;
        if !status.is_success() {
            return Err(Refusal::Status(status, error_message(status, &text)));
        }
        serde_json::from_str(&text).map_err(|err| {
            Refusal::Broken(format!("{} answered {path} with JSON tokenscope cannot read: {err}", self.address))
        })
    }

    /// Reads a Triton model's signature: its metadata and, where served, its configuration.
    pub async fn signature(&self, model: &str, version: &str) -> Result<ModelSignature, String> {
        let base = super::generate::model_path(model, Some(version));
        let meta: MetadataJson = match self.ask(Method::GET, &base).await {
            Ok(meta) => meta,
            Err(Refusal::Status(status, message)) if status.is_client_error() => {
                return Err(self.explain_missing(model, message).await);
            }
            Err(refusal) => return Err(refusal.into_message()),
        };
        let config: Option<ConfigJson> = self.ask(Method::GET, &format!("{base}/config")).await.ok();
        let tensor = |t: TensorJson| TensorSig { name: t.name, datatype: t.datatype, shape: t.shape };
        Ok(ModelSignature {
            name: meta.name,
            versions: meta.versions,
            inputs: meta.inputs.into_iter().map(tensor).collect(),
            outputs: meta.outputs.into_iter().map(tensor).collect(),
            max_batch_size: config.as_ref().and_then(|c| c.max_batch_size),
            decoupled: config.and_then(|c| c.model_transaction_policy).and_then(|p| p.decoupled),
        })
    }

    /// A refusal of an unknown or unready model, worded from the repository's index.
    async fn explain_missing(&self, model: &str, message: String) -> String {
        let Ok(index) = self.ask::<Vec<IndexJson>>(Method::POST, "/v2/repository/index").await else {
            return format!("model '{model}' cannot be measured on {}: {message}", self.address);
        };
        match index.iter().find(|m| m.name == model) {
            None => format!(
                "model '{model}' is not on {}; {}",
                self.address,
                listed(index.iter().map(|m| format!("{} ({})", m.name, m.state.as_deref().unwrap_or("state unknown"))))
            ),
            Some(entry) => format!(
                "model '{model}' is not ready on {} (state {}{}); load it or wait until it is READY",
                self.address,
                entry.state.as_deref().unwrap_or("unknown"),
                entry.reason.as_deref().filter(|r| !r.is_empty()).map(|r| format!(": {r}")).unwrap_or_default()
            ),
        }
    }

    /// The names an OpenAI-compatible server serves.
    pub async fn openai_models(&self) -> Result<Vec<String>, String> {
        let list: ModelListJson = self.ask(Method::GET, "/v1/models").await.map_err(Refusal::into_message)?;
        Ok(list.data.into_iter().map(|m| m.id).collect())
    }

    /// Finds the model `spec` names and plans its requests: for Triton, from its signature as
    /// over gRPC; for an OpenAI-compatible server, from its model list (a plan is not needed).
    pub async fn prepare(&self, spec: &SweepSpec) -> Result<(ModelInfo, Option<RequestPlan>), String> {
        let version = spec.model_version.as_deref().unwrap_or_default();
        match self.protocol {
            Protocol::OpenAi => {
                let models = self.openai_models().await?;
                if !models.contains(&spec.model) {
                    return Err(format!(
                        "model '{}' is not served by {}; {}",
                        spec.model,
                        self.address,
                        listed(models.iter().cloned())
                    ));
                }
                Ok((openai_info(&spec.model), None))
            }
            Protocol::TritonHttp | Protocol::TritonGrpc => {
                let sig = self.signature(&spec.model, version).await?;
                let (info, plan) = crate::triton::plan_model(&sig, spec).map_err(|err| err.to_string())?;
                Ok((info, Some(plan)))
            }
        }
    }

    /// Every model with what a sweep form shows of it.
    pub async fn model_choices(&self) -> Result<Vec<ModelChoice>, String> {
        if self.protocol == Protocol::OpenAi {
            return Ok(self.openai_models().await?.into_iter().map(openai_choice).collect());
        }
        let index: Vec<IndexJson> =
            self.ask(Method::POST, "/v2/repository/index").await.map_err(Refusal::into_message)?;
        let mut out = Vec::with_capacity(index.len());
        for entry in index {
            let state = entry.state.clone().unwrap_or_else(|| "state unknown".into());
            let ready = state == "READY";
            let mut choice = ModelChoice {
                name: entry.name,
                version: entry.version.filter(|v| !v.is_empty()),
                state,
                ready,
                reason: entry.reason.filter(|r| !r.is_empty()),
                input_style: None,
                streaming: None,
                problem: None,
            };
            if !ready {
                choice.problem = Some(format!("not ready (state {}); load it or wait until it is READY", choice.state));
            } else {
                match self.signature(&choice.name, choice.version.as_deref().unwrap_or_default()).await {
                    Ok(sig) => {
                        choice.streaming = sig.decoupled;
                        match resolve_style(&sig, InputStyle::Auto) {
                            Ok(style) => choice.input_style = Some(style),
                            Err(err) => choice.problem = Some(err.to_string()),
                        }
                    }
                    Err(err) => choice.problem = Some(err),
                }
            }
            out.push(choice);
        }
        Ok(out)
    }

    /// Triton's cumulative statistics of `model` (all versions, or `version`) over HTTP.
    pub async fn model_counters(&self, model: &str, version: &str) -> Result<ServerCounters, String> {
        if self.protocol == Protocol::OpenAi {
            return Err("an OpenAI-compatible server reports no per-model statistics".into());
        }
        let path = format!("{}/stats", super::generate::model_path(model, Some(version)));
        let stats: StatsJson = self
            .ask(Method::GET, &path)
            .await
            .map_err(|refusal| format!("the model's statistics could not be read: {}", refusal.into_message()))?;
        let mut total = ServerCounters::default();
        let mut found = false;
        for stats in stats.model_stats.into_iter().filter(|s| s.name == model) {
            found = true;
            let s = stats.inference_stats;
            for (sum, part) in [
                (&mut total.success, s.success),
                (&mut total.fail, s.fail),
                (&mut total.queue, s.queue),
                (&mut total.compute_input, s.compute_input),
                (&mut total.compute_infer, s.compute_infer),
                (&mut total.compute_output, s.compute_output),
            ] {
                *sum = (sum.0.saturating_add(part.count), sum.1.saturating_add(part.ns));
            }
        }
        if found { Ok(total) } else { Err(format!("the server's statistics have no entry for the model {model:?}")) }
    }
}

/// Why a question got no usable answer.
enum Refusal {
    /// The server answered with an error status, and this message.
    Status(StatusCode, String),
    /// No answer, or one that cannot be read.
    Broken(String),
}

impl Refusal {
    fn into_message(self) -> String {
        match self {
            Refusal::Status(_, message) | Refusal::Broken(message) => message,
        }
    }
}

/// "it has: a, b", or that it has none.
fn listed(names: impl Iterator<Item = String>) -> String {
    let names: Vec<String> = names.collect();
    if names.is_empty() { "the server has no models".into() } else { format!("it has: {}", names.join(", ")) }
}

/// What a run reports of an OpenAI-compatible server's model: its name, and that it streams.
pub fn openai_info(model: &str) -> ModelInfo {
    ModelInfo {
        name: model.to_string(),
        version: None,
        input_style: InputStyle::Auto,
        decoupled: true,
        batched: false,
        inputs: Vec::new(),
        outputs: Vec::new(),
    }
}

fn openai_choice(name: String) -> ModelChoice {
    ModelChoice {
        name,
        version: None,
        state: "READY".into(),
        ready: true,
        reason: None,
        input_style: None,
        streaming: Some(true),
        problem: None,
    }
}

#[derive(Deserialize)]
struct MetadataJson {
    name: String,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    inputs: Vec<TensorJson>,
    #[serde(default)]
    outputs: Vec<TensorJson>,
}

#[derive(Deserialize)]
struct TensorJson {
    name: String,
    datatype: String,
    #[serde(default)]
    shape: Vec<i64>,
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    max_batch_size: Option<i32>,
    #[serde(default)]
    model_transaction_policy: Option<PolicyJson>,
}

#[derive(Deserialize)]
struct PolicyJson {
    #[serde(default)]
    decoupled: Option<bool>,
}

#[derive(Deserialize)]
struct IndexJson {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct ModelListJson {
    #[serde(default)]
    data: Vec<ModelIdJson>,
}

#[derive(Deserialize)]
struct ModelIdJson {
    id: String,
}

#[derive(Deserialize)]
struct StatsJson {
    #[serde(default)]
    model_stats: Vec<ModelStatsJson>,
}

#[derive(Deserialize)]
struct ModelStatsJson {
    name: String,
    #[serde(default)]
    inference_stats: InferenceStatsJson,
}

#[derive(Deserialize, Default)]
struct InferenceStatsJson {
    #[serde(default)]
    success: DurationJson,
    #[serde(default)]
    fail: DurationJson,
    #[serde(default)]
    queue: DurationJson,
    #[serde(default)]
    compute_input: DurationJson,
    #[serde(default)]
    compute_infer: DurationJson,
    #[serde(default)]
    compute_output: DurationJson,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct DurationJson {
    #[serde(default)]
    count: u64,
    #[serde(default)]
    ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tritons_statistics_json_reads_as_its_counters() {
        let json = r#"{"model_stats":[{"name":"m","version":"1","last_inference":1,"inference_count":3,
            "inference_stats":{"success":{"count":3,"ns":300},"fail":{"count":1,"ns":5},"queue":{"count":3,"ns":30},
            "compute_input":{"count":3,"ns":3},"compute_infer":{"count":3,"ns":200},"compute_output":{"count":3,"ns":6},
            "cache_hit":{"count":0,"ns":0}}}]}"#;
        let stats: StatsJson = serde_json::from_str(json).unwrap();
        let s = &stats.model_stats[0].inference_stats;
        assert_eq!((s.success.count, s.success.ns, s.fail.count, s.compute_infer.ns), (3, 300, 1, 200));
    }

    #[test]
    fn tritons_metadata_and_config_json_read_as_a_signature() {
        let meta: MetadataJson = serde_json::from_str(
            r#"{"name":"vllm_model","versions":["1"],"platform":"vllm",
               "inputs":[{"name":"text_input","datatype":"BYTES","shape":[1]}],
               "outputs":[{"name":"text_output","datatype":"BYTES","shape":[-1]}]}"#,
        )
        .unwrap();
        assert_eq!((meta.inputs[0].name.as_str(), meta.outputs[0].shape.as_slice()), ("text_input", &[-1][..]));
        let config: ConfigJson = serde_json::from_str(
            r#"{"name":"vllm_model","max_batch_size":0,"model_transaction_policy":{"decoupled":true}}"#,
        )
        .unwrap();
        assert_eq!(config.model_transaction_policy.and_then(|p| p.decoupled), Some(true));
        assert_eq!(listed(std::iter::empty()), "the server has no models");
        assert_eq!(listed(["a".to_string(), "b".into()].into_iter()), "it has: a, b");
    }
}
