//! Triton's HTTP/REST protocol (KServe v2) as the simulator serves it: health, model metadata
//! and configuration, the repository index, and the generate extension's
//! `generate_stream`, whose requests go through the same scheduler as gRPC's.

use std::convert::Infallible;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::events::{self, Unstamped};
use super::model::{self, MODELS, SimModel};
use super::scheduler::HttpItem;
use super::{Sim, tensors};
use crate::pb;

/// The routes of Triton's HTTP protocol, answered from `sim`.
pub fn router(sim: &Sim) -> Router {
    Router::new()
        .route("/v2/health/live", get(StatusCode::OK))
        .route("/v2/health/ready", get(StatusCode::OK))
        .route("/v2/models/{name}", get(metadata))
        .route("/v2/models/{name}/versions/{version}", get(metadata))
        .route("/v2/models/{name}/ready", get(ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(ready))
        .route("/v2/models/{name}/config", get(config))
        .route("/v2/models/{name}/versions/{version}/config", get(config))
        .route("/v2/repository/index", post(index))
        .route("/v2/models/{name}/generate_stream", post(generate_stream))
        .route("/v2/models/{name}/versions/{version}/generate_stream", post(generate_stream))
        .with_state(sim.clone())
}

/// A model as a path names it; the version is taken as the gRPC side takes it: every
/// simulated model has only version 1, which answers for any.
#[derive(Debug, Deserialize)]
struct ModelPath {
    name: String,
    #[serde(default)]
    version: Option<String>,
}

/// Triton's error answer: `{"error": message}` with its status.
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

/// A request the model cannot take: 400.
fn bad_request(message: String) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message)
}

/// A model that can answer, or Triton's error for one that is unknown (404) or failed to
/// load (503), worded as the gRPC side words it.
fn model(sim: &Sim, name: &str) -> Result<&'static SimModel, Refusal> {
    sim.find(name).map_err(|message| {
        let status = if model::find(name).is_some() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::NOT_FOUND };
        Refusal(status, message)
    })
}

/// `GET /v2/models/NAME`: the model's tensors, as ModelMetadata gives them.
async fn metadata(State(sim): State<Sim>, Path(path): Path<ModelPath>) -> Result<Response, Refusal> {
    let metadata = model(&sim, &path.name)?.metadata();
    Ok(axum::Json(metadata_json(&metadata)).into_response())
}

/// Model metadata as Triton's HTTP protocol writes it.
fn metadata_json(metadata: &pb::ModelMetadataResponse) -> Value {
    let tensors = |tensors: &[pb::model_metadata_response::TensorMetadata]| -> Vec<Value> {
        tensors.iter().map(|t| json!({"name": t.name, "datatype": t.datatype, "shape": t.shape})).collect()
    };
    json!({
        "name": metadata.name,
        "versions": metadata.versions,
        "platform": metadata.platform,
        "inputs": tensors(&metadata.inputs),
        "outputs": tensors(&metadata.outputs),
    })
}

/// 200 for a model that can answer, 400 otherwise, as Triton answers.
async fn ready(State(sim): State<Sim>, Path(path): Path<ModelPath>) -> StatusCode {
    if sim.find(&path.name).is_ok() { StatusCode::OK } else { StatusCode::BAD_REQUEST }
}

/// `GET /v2/models/NAME/config`: the model's configuration, as ModelConfig gives it.
async fn config(State(sim): State<Sim>, Path(path): Path<ModelPath>) -> Result<Response, Refusal> {
    let config = model(&sim, &path.name)?.config();
    Ok(axum::Json(config_json(&config)).into_response())
}

/// A model configuration as Triton's HTTP protocol writes it: protobuf's JSON names, with
/// numbers as numbers.
fn config_json(config: &pb::ModelConfig) -> Value {
    let data_type = |code: i32| pb::DataType::try_from(code).map_or("TYPE_INVALID", |d| d.as_str_name());
    let inputs: Vec<Value> = config
        .input
        .iter()
        .map(|t| json!({"name": t.name, "data_type": data_type(t.data_type), "dims": t.dims, "optional": t.optional}))
        .collect();
    let outputs: Vec<Value> = config
        .output
        .iter()
        .map(|t| json!({"name": t.name, "data_type": data_type(t.data_type), "dims": t.dims}))
        .collect();
    let decoupled = config.model_transaction_policy.is_some_and(|p| p.decoupled);
    json!({
        "name": config.name,
        "platform": config.platform,
        "backend": config.backend,
        "max_batch_size": config.max_batch_size,
        "input": inputs,
        "output": outputs,
        "model_transaction_policy": {"decoupled": decoupled},
    })
}

/// `POST /v2/repository/index`: every model with its state, and why one is unavailable.
async fn index(State(sim): State<Sim>) -> axum::Json<Value> {
    let models: Vec<Value> = MODELS
        .iter()
        .map(|m| match sim.is_available(m.name) {
            true => json!({"name": m.name, "version": "1", "state": "READY"}),
            false => {
                json!({"name": m.name, "version": "1", "state": "UNAVAILABLE", "reason": super::UNAVAILABLE_REASON})
            }
        })
        .collect();
    axum::Json(Value::Array(models))
}

/// `generate_stream`: the body's inputs go to the scheduler as a gRPC request would, and each
/// response comes back as one event. A request the model refuses is answered 400 before any
/// event; an error once streaming is one `{"error": ...}` event, which ends the stream.
async fn generate_stream(
    State(sim): State<Sim>,
    Path(path): Path<ModelPath>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let arrived = Instant::now();
    let model = model(&sim, &path.name)?;
    let version = path.version.as_deref().unwrap_or_default();
    let request = tensors::request(model, version, &body).map_err(bad_request)?;
    let (_, responses) = sim.submit(model, &request, arrived).map_err(bad_request)?;
    Ok(events::response(futures::stream::unfold(responses, next_event)))
}

/// The next event of a generate stream, rendered and stamped as the connection takes it;
/// `None` once the request has ended.
async fn next_event(
    mut responses: mpsc::UnboundedReceiver<HttpItem>,
) -> Option<(Result<Bytes, Infallible>, mpsc::UnboundedReceiver<HttpItem>)> {
    loop {
        let frame = match responses.recv().await? {
            // An empty response only flags the end, which the stream's end says.
            Ok(response) if response.outputs.is_empty() => continue,
            Ok(response) => events::stamp_all(vec![Unstamped::new(&tensors::outputs(&response))]),
            Err(message) => {
                // The scheduler sends nothing after an error: the channel ends next.
                events::plain(&json!({ "error": message }).to_string())
            }
        };
        return Some((Ok(Bytes::from(frame)), responses));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_configuration_are_written_as_triton_writes_them() {
        let trtllm = model::find("sim-trtllm").unwrap();
        let metadata = metadata_json(&trtllm.metadata());
        assert_eq!(metadata["platform"], "ensemble");
        assert_eq!(metadata["versions"], json!(["1"]));
        assert_eq!(metadata["inputs"][0], json!({"name": "text_input", "datatype": "BYTES", "shape": [-1, 1]}));
        let config = config_json(&trtllm.config());
        assert_eq!(config["max_batch_size"], 8);
        assert_eq!(config["model_transaction_policy"], json!({"decoupled": true}));
        assert_eq!(
            config["input"][1],
            json!({"name": "max_tokens", "data_type": "TYPE_INT32", "dims": [1], "optional": false})
        );
        let unary = config_json(&model::find("sim-unary").unwrap().config());
        assert_eq!(unary["model_transaction_policy"], json!({"decoupled": false}));
    }
}
