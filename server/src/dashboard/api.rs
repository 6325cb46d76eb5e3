//! The JSON API and the events WebSocket. Every error answers `{"error", "hint"}` with a
//! status code that says whose fault it is.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::SweepSpec;
use shared::api::{ApiError, RunCreated, RunSummary, ServerInfo, TargetModels};

use super::AppState;
use super::runs::{RunHandle, StartError};
use crate::triton::{Triton, TritonError, normalize_target};

/// An API failure: a status code and a body a user can act on.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    body: ApiError,
}

impl HttpError {
    pub fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        Self { status, body: ApiError { error: error.into(), hint: (!hint.is_empty()).then_some(hint) } }
    }

    fn no_run(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("there is no run {id:?}"),
            "runs are kept while the dashboard runs; GET /api/runs lists them",
        )
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<TritonError> for HttpError {
    fn from(err: TritonError) -> Self {
        let (status, hint) = match &err {
            TritonError::InvalidTarget { .. } => {
                (StatusCode::BAD_REQUEST, "give the server's gRPC address, such as http://127.0.0.1:8001")
            }
            TritonError::Unreachable { .. } => {
                (StatusCode::BAD_GATEWAY, "start the server, or check the host and the gRPC port (8001 by default)")
            }
            TritonError::NotGrpc { .. } => {
                (StatusCode::BAD_GATEWAY, "point the target at Triton's gRPC port (8001 by default), not HTTP (8000)")
            }
            TritonError::UnknownModel { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "pick one of the server's models"),
            TritonError::NotReady { .. } => (StatusCode::CONFLICT, "load the model, or wait until it is READY"),
            TritonError::NotDecoupled { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "untick Streaming to time whole responses, or pick a model that streams",
            ),
            TritonError::Decoupled { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "tick Streaming for this model"),
            TritonError::Style(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "pick the input style that matches the model's inputs")
            }
            TritonError::Rpc { .. } => (StatusCode::BAD_GATEWAY, "check the server's log"),
        };
        Self::new(status, err.to_string(), hint)
    }
}

type ApiResult<T> = Result<T, HttpError>;

/// `GET /api/info`.
pub async fn info(State(state): State<AppState>) -> Json<ServerInfo> {
    let config = state.config();
    Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        default_target: config.default_target.clone(),
        default_is_simulated: config.simulator.is_some() && state.is_simulator(&config.default_target),
    })
}

#[derive(Debug, Deserialize)]
pub struct TargetQuery {
    target: Option<String>,
}

/// `GET /api/targets/models?target=URL`: the target's models, for the form.
pub async fn target_models(
    State(state): State<AppState>,
    Query(query): Query<TargetQuery>,
) -> ApiResult<Json<TargetModels>> {
    let target = query.target.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| state.config().default_target.clone());
    let triton = Triton::connect(&target).await?;
    let models = triton.model_choices().await?;
    Ok(Json(TargetModels { simulated: state.is_simulator(&target), target: normalize_target(&target), models }))
}

fn busy(err: StartError) -> HttpError {
    HttpError::new(
        StatusCode::CONFLICT,
        err.to_string(),
        "one run at a time keeps the timing honest; wait for it to finish or cancel it",
    )
}

/// Reads a sweep spec from JSON: unknown fields are refused (a misspelt field must not
/// silently run with its default), and a missing target means the dashboard's default.
pub fn read_spec(mut value: serde_json::Value, default_target: &str) -> Result<SweepSpec, String> {
    let known = serde_json::to_value(SweepSpec::default()).expect("a spec serializes");
    let (Some(object), Some(known)) = (value.as_object_mut(), known.as_object()) else {
        return Err("the sweep spec must be a JSON object".into());
    };
    if let Some(unknown) = object.keys().find(|k| !known.contains_key(*k)) {
        let fields: Vec<&str> = known.keys().map(String::as_str).collect();
        return Err(format!("unknown field {unknown:?}; a sweep spec has {}", fields.join(", ")));
    }
    if object.get("target").and_then(|t| t.as_str()).is_none_or(|t| t.trim().is_empty()) {
        object.insert("target".into(), default_target.into());
    }
    let mut spec: SweepSpec = serde_json::from_value(value).map_err(|e| e.to_string())?;
    spec.target = normalize_target(&spec.target);
    spec.model = spec.model.trim().to_string();
    spec.model_version = spec.model_version.filter(|v| !v.trim().is_empty());
    spec.prompt_lengths.sort_unstable();
    spec.prompt_lengths.dedup();
    Ok(spec)
}

/// A JSON body, or an error naming `what` could not be read.
fn json_body(
    body: Result<Json<serde_json::Value>, JsonRejection>,
    what: &str,
    hint: &str,
) -> ApiResult<serde_json::Value> {
    body.map(|Json(value)| value).map_err(|rejection| {
        HttpError::new(rejection.status(), format!("{what} could not be read: {}", rejection.body_text()), hint)
    })
}

/// `POST /api/runs`: checks the spec and the model, then starts the run.
pub async fn create_run(
    State(state): State<AppState>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<RunCreated>)> {
    let body = json_body(body, "the sweep spec", "send a JSON sweep spec with Content-Type: application/json")?;
    let spec = read_spec(body, &state.config().default_target).map_err(|err| {
        HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("the sweep spec could not be read: {err}"), "")
    })?;
    let problems = spec.problems();
    if !problems.is_empty() {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            problems.join("; "),
            "fix these fields and retry",
        ));
    }
    // Refuse before touching a server that a run in progress is measuring.
    if let Some(id) = state.runs().busy() {
        return Err(busy(StartError::Busy(id)));
    }
    // Check the model now, so the form can say what is wrong before a run exists.
    let triton = Triton::connect(&spec.target).await?;
    triton.prepare(&spec).await?;
    let simulated = state.is_simulator(&spec.target);
    let run = state.runs().start(spec, simulated).map_err(busy)?;
    tracing::info!(run = %run.id, "run started");
    Ok((StatusCode::CREATED, Json(RunCreated { id: run.id.clone() })))
}

/// `POST /api/runs/import`: a perf_analyzer profile export, shown as a finished run.
pub async fn import_run(
    State(state): State<AppState>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<RunCreated>)> {
    let body =
        json_body(body, "the profile export", "send the JSON file perf_analyzer wrote with --profile-export-file")?;
    let report = crate::import::profile_to_report(&body, "perf_analyzer profile export").map_err(|err| {
        HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            err.to_string(),
            "send the file perf_analyzer wrote with --profile-export-file",
        )
    })?;
    let run = state.runs().add_finished(report);
    Ok((StatusCode::CREATED, Json(RunCreated { id: run.id.clone() })))
}

/// `GET /api/runs`: every run, newest first.
pub async fn list_runs(State(state): State<AppState>) -> Json<Vec<RunSummary>> {
    Json(state.runs().list().iter().map(|run| run.summary()).collect())
}

fn find(state: &AppState, id: &str) -> ApiResult<Arc<RunHandle>> {
    state.runs().get(id).ok_or_else(|| HttpError::no_run(id))
}

/// `GET /api/runs/{id}`.
pub async fn get_run(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<RunSummary>> {
    Ok(Json(find(&state, &id)?.summary()))
}

/// `POST /api/runs/{id}/cancel`: the run stops soon after and keeps what it measured.
pub async fn cancel_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RunSummary>)> {
    let run = find(&state, &id)?;
    if run.is_finished() {
        return Err(HttpError::new(StatusCode::CONFLICT, format!("run {id} has already finished"), ""));
    }
    run.cancel();
    Ok((StatusCode::ACCEPTED, Json(run.summary())))
}

/// `GET /api/runs/{id}/report`: the whole run as `tokenscope sweep --out` writes it.
pub async fn report(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let run = find(&state, &id)?;
    let report = run.report().ok_or_else(|| {
        HttpError::new(
            StatusCode::CONFLICT,
            format!("run {id} is still in progress"),
            "the report is ready when it ends",
        )
    })?;
    Ok(Json(report.as_ref()).into_response())
}

/// `GET /api/runs/{id}/events`: a WebSocket that replays the run's log, follows it, and
/// closes after the run's last event.
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let run = find(&state, &id)?;
    let upgrade = upgrade.map_err(|rejection| {
        HttpError::new(
            rejection.status(),
            format!("this endpoint is a WebSocket: {}", rejection.body_text()),
            format!("open ws://HOST/api/runs/{id}/events; GET /api/runs/{id}/report has the whole run as JSON"),
        )
    })?;
    Ok(upgrade.on_upgrade(move |socket| follow(socket, run)))
}

async fn follow(mut socket: WebSocket, run: Arc<RunHandle>) {
    let mut changed = run.subscribe();
    let mut sent = 0;
    loop {
        changed.mark_unchanged();
        let (events, complete) = run.events_since(sent);
        for event in events {
            if socket.send(Message::Text(event)).await.is_err() {
                return;
            }
            sent += 1;
        }
        if complete {
            let close = CloseFrame { code: close_code::NORMAL, reason: "the run has finished".into() };
            let _ = socket.send(Message::Close(Some(close))).await;
            return;
        }
        tokio::select! {
            result = changed.changed() => if result.is_err() { return },
            message = socket.recv() => match message {
                // The browser went away; the run goes on without it.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// A known path asked with the wrong method.
pub async fn wrong_method(method: Method) -> HttpError {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed here"),
        "POST /api/runs starts a run and POST /api/runs/{id}/cancel stops one; everything else is GET",
    )
}

/// Refuses requests that change something or open a WebSocket when they come from a page
/// of another origin, so that no other site a user visits can start, cancel or watch runs.
pub async fn same_origin(headers: HeaderMap, request: Request, next: Next) -> Response {
    let changes = request.method() != Method::GET || headers.contains_key(header::UPGRADE);
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if let Some(origin) = origin.filter(|_| changes) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin_host != host {
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
    next.run(request).await
}

/// Any other path under `/api`.
pub async fn no_such_endpoint() -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "no such API endpoint",
        "the API has /api/info, /api/targets/models, /api/runs and /api/runs/{id}[/cancel|/events|/report]",
    )
}
