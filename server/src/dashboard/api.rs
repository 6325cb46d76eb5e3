//! The JSON API and the events WebSocket. Every error answers `{"error", "hint", "code"}`
//! with a status code that says whose fault it is; `code` is stable for programs to match.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::api::{ApiError, ErrorCode, MetricsCheck, Role, RunCreated, RunEdit, RunSummary, ServerInfo, TargetModels};
use shared::spec::SPEC_FIELDS;
use shared::{RunReport, SweepSpec};

use super::AppState;
use super::runs::{ChangeError, EVENTS_PER_SEND, RunHandle, StartError, Watching};
use crate::export::Export;
use crate::protocol::server::HttpServer;
use crate::store::{RunMeta, StoreError};
use crate::triton::{Triton, TritonError, normalize_target};
use shared::protocol::{Protocol, read_target};

/// The longest run name, in characters.
pub const MAX_NAME: usize = 200;
/// The longest notes, in characters.
pub const MAX_NOTES: usize = 10_000;
/// The longest tag, in characters.
pub const MAX_TAG: usize = 40;
/// The most tags a run carries.
pub const MAX_TAGS: usize = 20;

/// An API failure: a status code and a body a user can act on.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    body: ApiError,
    /// Seconds after which a refusal for being busy may be retried (`Retry-After`).
    retry_after: Option<u32>,
}

/// How long a client refused for the dashboard's limits waits before trying again.
pub const RETRY_AFTER_S: u32 = 5;

impl HttpError {
    pub fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        let code = ErrorCode::of_status(status.as_u16());
        let body = ApiError::new(code, error, (!hint.is_empty()).then_some(hint.as_str()));
        Self { status, body, retry_after: None }
    }

    /// The same failure, of a more precise kind than its status says.
    pub(crate) fn code(mut self, code: ErrorCode) -> Self {
        self.body.code = code;
        self
    }

    /// 503 for a limit reached, with a `Retry-After` of [`RETRY_AFTER_S`].
    pub(crate) fn busy(error: String, hint: String) -> Self {
        Self { retry_after: Some(RETRY_AFTER_S), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, error, hint) }
    }

    /// What it says, error and hint, as a test reads it.
    #[cfg(test)]
    pub(crate) fn text(&self) -> String {
        format!("{} ({})", self.body.error, self.body.hint.as_deref().unwrap_or_default())
    }

    fn no_run(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("there is no run {id:?}"),
            "it may have been deleted; GET /api/runs lists the runs there are",
        )
        .code(ErrorCode::NoRun)
    }

    /// The run store failed: the disk, not the request, is at fault. The store's path is
    /// logged, never answered: a client learns nothing of the machine's folders.
    fn store(err: StoreError, what: &str, path: &std::path::Path) -> Self {
        tracing::error!(cause = %err, store = %path.display(), "{what} failed");
        let error = without_path(&format!("{what} failed: {}", err.for_client()), path);
        match &err {
            StoreError::NoRun(id) => return Self::no_run(id),
            StoreError::Damaged { .. } | StoreError::BadValue { .. } => {
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error,
                    "the stored run is damaged and cannot be read; other runs are unaffected, and this one can be deleted",
                )
                .code(ErrorCode::Store);
            }
            _ => {}
        }
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            error,
            "check that the dashboard's data folder (its log names it) is readable and writable and that its disk \
             has space, then retry; runs in memory are unchanged",
        )
        .code(ErrorCode::Store)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// `text` with the store's file and its folder named only as "the data folder", however a
/// lower layer came to mention them.
fn without_path(text: &str, store: &std::path::Path) -> String {
    let mut text = text.to_string();
    for path in store.ancestors().take(2) {
        let shown = path.display().to_string();
        if !shown.is_empty() && text.contains(&shown) {
            text = text.replace(&shown, "the data folder");
        }
    }
    text
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
            TritonError::Tls { .. } => (
                StatusCode::BAD_GATEWAY,
                "check the target's scheme (http:// or https://) and the server's certificate",
            ),
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

/// `GET /api/info`: the form's defaults and what the visitor may do.
pub async fn info(State(state): State<AppState>, Extension(role): Extension<Role>) -> Json<ServerInfo> {
    let config = state.config();
    Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        default_target: config.default_target.clone(),
        default_is_simulated: config.simulator.is_some() && state.is_simulator(&config.default_target),
        role,
        sign_in: state.access().signs_in(),
        allowed_targets: state.access().target_list(),
        keep_runs: state.runs().retention().keep_runs,
        keep_days: state.runs().retention().keep_days,
    })
}

/// Refuses a target outside `--allow-target` with one answer, whatever is or is not
/// listening there, so the dashboard cannot be used to probe a network.
fn allowed_target(state: &AppState, target: &str) -> ApiResult<()> {
    if state.access().may_measure(&normalize_target(target)) {
        return Ok(());
    }
    Err(HttpError::new(
        StatusCode::FORBIDDEN,
        "this dashboard does not measure that target",
        "its operator can allow it with --allow-target HOST:PORT (a * in the host matches any part of it)",
    ))
}

#[derive(Debug, Deserialize)]
pub struct TargetQuery {
    target: Option<String>,
}

/// The metrics address a run on `target` reads: `url`, or the default for the target; refused
/// where this dashboard may not read.
fn metrics_address(state: &AppState, target: &str, url: Option<&str>) -> ApiResult<String> {
    let url = match url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => url.to_string(),
        None => state.default_metrics_url(target).ok_or_else(|| {
            HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the target {target:?} has no host to read metrics from"),
                "give the metrics address, or turn metrics off",
            )
        })?,
    };
    if let Some(problem) = shared::telemetry::url_problem(&url) {
        return Err(HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, problem, ""));
    }
    let simulators = state.config().simulator_metrics.as_deref() == Some(url.as_str()) && state.is_simulator(target);
    if !simulators && !state.access().may_read_metrics(&normalize_target(target), &url) {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "this dashboard does not read metrics from that address",
            "leave the metrics address empty to read the target's own (its host, port 8002), or its operator can \
             allow the address with --allow-target HOST:PORT",
        ));
    }
    Ok(url)
}

#[derive(Debug, Deserialize)]
pub struct MetricsQuery {
    target: Option<String>,
    url: Option<String>,
}

/// `GET /api/targets/metrics?target=URL[&url=METRICS_URL]`: where a run reads the server's
/// metrics, and whether they answer now.
pub async fn target_metrics(
    State(state): State<AppState>,
    Query(query): Query<MetricsQuery>,
) -> ApiResult<Json<MetricsCheck>> {
    let target = query.target.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| state.config().default_target.clone());
    allowed_target(&state, &target)?;
    let url = metrics_address(&state, &target, query.url.as_deref())?;
    Ok(Json(crate::telemetry::check(&url).await))
}

/// `GET /api/targets/models?target=URL`: the target's models, for the form.
pub async fn target_models(
    State(state): State<AppState>,
    Query(query): Query<TargetQuery>,
) -> ApiResult<Json<TargetModels>> {
    let target = query.target.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| state.config().default_target.clone());
    allowed_target(&state, &target)?;
    let endpoint = read_target(&target, Protocol::TritonGrpc)
        .map_err(|problem| HttpError::new(StatusCode::BAD_REQUEST, problem, ""))?;
    let models = if endpoint.protocol == Protocol::TritonGrpc {
        Triton::connect(&target).await?.model_choices().await?
    } else {
        let server = HttpServer::connect(&endpoint).await.map_err(unreachable_http)?;
        server
            .model_choices()
            .await
            .map_err(|err| HttpError::new(StatusCode::BAD_GATEWAY, err, "check the server's log"))?
    };
    Ok(Json(TargetModels {
        simulated: state.is_simulator(&target),
        simulator_elsewhere: state.simulator_elsewhere(&target),
        target: normalize_target(&target),
        protocol: endpoint.protocol,
        models,
    }))
}

/// A server of an HTTP protocol that could not be reached.
fn unreachable_http(err: String) -> HttpError {
    HttpError::new(
        StatusCode::BAD_GATEWAY,
        err,
        "start the server, or check the target: triton-http://HOST:8000 for Triton's HTTP port, openai://HOST:PORT \
         for an OpenAI-compatible server, http://HOST:8001 for Triton's gRPC",
    )
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
    let Some(object) = value.as_object_mut() else {
        return Err("the sweep spec must be a JSON object".into());
    };
    if let Some(unknown) = object.keys().find(|k| !SPEC_FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field {unknown:?}; a sweep spec has {}", SPEC_FIELDS.join(", ")));
    }
    if object.get("target").and_then(|t| t.as_str()).is_none_or(|t| t.trim().is_empty()) {
        object.insert("target".into(), default_target.into());
    }
    let mut spec: SweepSpec = serde_json::from_value(value).map_err(|e| e.to_string())?;
    spec.target = normalize_target(&spec.target);
    spec.model = spec.model.trim().to_string();
    spec.model_version = spec.model_version.filter(|v| !v.trim().is_empty());
    spec.tokenizer = spec.tokenizer.filter(|t| !t.trim().is_empty());
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
    let mut spec = read_spec(body, &state.config().default_target).map_err(|err| {
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
    // A path on this machine, which the proxy would open for whoever can start a run.
    if spec.prompts_file.is_some() {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the dashboard does not open prompts files by their path on the proxy's machine",
            "run `tokenscope sweep --prompts FILE` on that machine to send a file's prompts",
        ));
    }
    // Refuse before touching a server that a run in progress is measuring.
    if let Some(id) = state.runs().busy() {
        return Err(busy(StartError::Busy(id)));
    }
    allowed_target(&state, &spec.target)?;
    // The run's spec records where its metrics were read.
    if !spec.no_metrics {
        spec.metrics_url = Some(metrics_address(&state, &spec.target, spec.metrics_url.as_deref())?);
    }
    // A tokenizer is opened only from an allowed place, and the run opens the file checked.
    super::tokenizers::check_spec(&state, &mut spec).await?;
    // Check the model now, so the form can say what is wrong before a run exists.
    match spec.endpoint() {
        Ok(endpoint) if endpoint.protocol != Protocol::TritonGrpc => {
            let server = HttpServer::connect(&endpoint).await.map_err(unreachable_http)?;
            server.prepare(&spec).await.map_err(|err| {
                HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, err, "pick one of the server's models")
            })?;
        }
        _ => {
            Triton::connect(&spec.target).await?.prepare(&spec).await?;
        }
    }
    let simulated = state.is_simulator(&spec.target);
    let run = state.runs().start(spec, simulated).map_err(busy)?;
    tracing::info!(run = %run.id, "run started");
    Ok((StatusCode::CREATED, Json(RunCreated { id: run.id.clone() })))
}

/// The largest file `POST /api/runs/import` takes. Read whole and parsed, a file takes a few
/// times its size in memory; `tokenscope import FILE` reads files of any size.
pub const IMPORT_LIMIT: usize = 512 << 20;

/// How long an import's body may take to arrive.
const IMPORT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// How an uploaded file's body is read: its most bytes and time, and what to say when it is
/// too large, too slow or broken.
pub struct BodyLimits {
    pub most_bytes: usize,
    pub timeout: std::time::Duration,
    /// What the file is taken as, for the message when it is too large (`" as a tokenizer"`).
    pub what: &'static str,
    pub slow_hint: &'static str,
    pub large_hint: &'static str,
    /// What to send, when the body breaks off.
    pub hint: &'static str,
}

/// Reads an uploaded file's whole body within `limits`: a body that trickles in would hold
/// the one upload's turn, so it gets a while, not forever (408); one too large gets 413.
pub async fn read_body(body: axum::body::Body, limits: &BodyLimits) -> ApiResult<axum::body::Bytes> {
    let Ok(received) = tokio::time::timeout(limits.timeout, axum::body::to_bytes(body, limits.most_bytes)).await else {
        return Err(HttpError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the file did not arrive within the limit of {} s", limits.timeout.as_secs()),
            limits.slow_hint,
        ));
    };
    received.map_err(|err| {
        let too_large = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
            .any(|e| e.to_string().contains("length limit exceeded"));
        if too_large {
            HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the file is larger than the {} MiB the dashboard takes{}",
                    limits.most_bytes >> 20,
                    limits.what
                ),
                limits.large_hint,
            )
        } else {
            HttpError::new(StatusCode::BAD_REQUEST, format!("the file could not be received: {err}"), limits.hint)
        }
    })
}

/// `POST /api/runs/import`: a tokenscope run.json or a perf_analyzer profile export, shown
/// as a finished run. The body is read only once no other import is being read (else 503
/// with Retry-After), and parsed off the async runtime; a file beyond any of
/// `shared::limits`'s caps is refused with 422, naming the cap.
pub async fn import_run(
    State(state): State<AppState>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<RunCreated>), Response> {
    const HINT: &str = "send a run.json (tokenscope sweep --out, or a run's run.json export) or the file \
                        perf_analyzer wrote with --profile-export-file";
    let Some(permit) = state.import_permit() else {
        return Err(HttpError::busy(
            "another file is being imported; the dashboard reads one at a time".into(),
            format!("send it again in {RETRY_AFTER_S} seconds"),
        )
        .into_response());
    };
    let limits = BodyLimits {
        most_bytes: IMPORT_LIMIT,
        timeout: IMPORT_READ_TIMEOUT,
        what: "",
        slow_hint: "send it again over a faster link, or read it with tokenscope import FILE",
        large_hint: "tokenscope import FILE reads it in a terminal, and writes its statistics and CSV files",
        hint: HINT,
    };
    let bytes = read_body(body, &limits).await.map_err(IntoResponse::into_response)?;
    let report = tokio::task::spawn_blocking(move || crate::import::bytes_to_report(bytes, "the file"))
        .await
        .map_err(|err| {
            HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the file failed: {err}"), "")
                .into_response()
        })?
        .map_err(|err| HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string(), HINT).into_response())?;
    drop(permit);
    let runs = state.runs();
    let run = runs
        .add_finished(report)
        .await
        .map_err(|err| HttpError::store(err, "storing the imported run", runs.store().path()).into_response())?;
    Ok((StatusCode::CREATED, Json(RunCreated { id: run.id.clone() })))
}

/// `GET /api/runs` filters: each one given must match exactly.
#[derive(Debug, Default, Deserialize)]
pub struct RunFilter {
    model: Option<String>,
    target: Option<String>,
    tag: Option<String>,
}

impl RunFilter {
    fn matches(&self, run: &RunSummary) -> bool {
        let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        given(&self.model).is_none_or(|model| run.spec.model == model)
            && given(&self.target).is_none_or(|target| run.spec.target == normalize_target(&target))
            && given(&self.tag).is_none_or(|tag| run.tags.contains(&tag))
    }
}

/// `GET /api/runs?model=&target=&tag=`: every run, newest first; an empty or absent filter
/// matches all.
pub async fn list_runs(
    State(state): State<AppState>,
    filter: Result<Query<RunFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<RunSummary>>> {
    let Query(filter) = filter.map_err(|rejection| {
        HttpError::new(rejection.status(), rejection.body_text(), "the filters are model, target and tag")
    })?;
    Ok(Json(state.runs().list().iter().map(|run| run.summary()).filter(|run| filter.matches(run)).collect()))
}

/// Applies an edit to a run's current name, notes and tags: names and tags are trimmed,
/// empty and duplicate tags refused or dropped, and every length checked.
pub fn apply_edit(edit: RunEdit, current: &RunSummary) -> Result<RunMeta, String> {
    let name = edit.name.map_or_else(|| current.name.clone(), |name| name.trim().to_string());
    let notes = edit.notes.unwrap_or_else(|| current.notes.clone());
    let tags = match edit.tags {
        None => current.tags.clone(),
        Some(given) => {
            let mut tags: Vec<String> = Vec::with_capacity(given.len());
            for tag in given.iter().map(|t| t.trim()) {
                if tag.is_empty() {
                    return Err("a tag is empty".into());
                }
                if tag.chars().count() > MAX_TAG {
                    return Err(format!("the tag {tag:?} is longer than {MAX_TAG} characters"));
                }
                if !tags.iter().any(|t| t == tag) {
                    tags.push(tag.to_string());
                }
            }
            tags
        }
    };
    if name.chars().count() > MAX_NAME {
        return Err(format!("the name has {} characters; at most {MAX_NAME} fit", name.chars().count()));
    }
    if notes.chars().count() > MAX_NOTES {
        return Err(format!("the notes have {} characters; at most {MAX_NOTES} fit", notes.chars().count()));
    }
    if tags.len() > MAX_TAGS {
        return Err(format!("{} tags were given; a run carries at most {MAX_TAGS}", tags.len()));
    }
    Ok(RunMeta { name, notes, tags })
}

fn change_error(err: ChangeError, state: &AppState, id: &str) -> HttpError {
    match err {
        ChangeError::NoRun(_) => HttpError::no_run(id),
        ChangeError::Running(_) => HttpError::new(
            StatusCode::CONFLICT,
            format!("run {id} is still in progress"),
            format!("cancel it first (POST /api/runs/{id}/cancel), then delete it once it has stopped"),
        ),
        ChangeError::Store(err) => HttpError::store(err, "saving the change", state.runs().store().path()),
    }
}

/// `PATCH /api/runs/{id}`: changes a run's name, notes or tags; absent fields stay.
pub async fn edit_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> ApiResult<Json<RunSummary>> {
    let run = find(&state, &id)?;
    let hint = "send a JSON object with any of name, notes and tags (a list of strings)";
    let body = json_body(body, "the edit", hint)?;
    let unprocessable = |error: String| HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, error, hint);
    let known = ["name", "notes", "tags"];
    if let Some(unknown) = body.as_object().and_then(|o| o.keys().find(|k| !known.contains(&k.as_str()))) {
        return Err(unprocessable(format!("unknown field {unknown:?}; an edit has name, notes and tags")));
    }
    let edit: RunEdit =
        serde_json::from_value(body).map_err(|err| unprocessable(format!("the edit could not be read: {err}")))?;
    let meta = apply_edit(edit, &run.summary()).map_err(|error| {
        HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            error,
            format!(
                "names take up to {MAX_NAME} characters, notes {MAX_NOTES}; up to {MAX_TAGS} tags of 1 to {MAX_TAG} characters"
            ),
        )
    })?;
    let summary = state.runs().set_meta(&id, meta).await.map_err(|err| change_error(err, &state, &id))?;
    Ok(Json(summary))
}

/// `DELETE /api/runs/{id}`: forgets a finished run, records and all.
pub async fn delete_run(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.runs().delete(&id).await.map_err(|err| change_error(err, &state, &id))?;
    tracing::info!(run = %id, "run deleted");
    Ok(StatusCode::NO_CONTENT)
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

/// A finished run's whole report, or 409 with `hint` while it is in progress.
async fn finished_report(state: &AppState, run: &RunHandle, hint: String) -> ApiResult<Arc<RunReport>> {
    let stored = state.runs().report(run).await;
    let report = stored.map_err(|err| HttpError::store(err, "reading the run", state.runs().store().path()))?;
    report.ok_or_else(|| HttpError::new(StatusCode::CONFLICT, format!("run {} is still in progress", run.id), hint))
}

/// Leave to render a whole run, or 503 while [`super::Limits::exports_at_once`] render.
fn export_permit(state: &AppState) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    state.export_permit().ok_or_else(|| {
        let most = state.limits().exports_at_once;
        HttpError::busy(
            format!("{most} exports are being made, the most this dashboard makes at once"),
            format!("retry in {RETRY_AFTER_S} seconds, once one of them is done"),
        )
    })
}

/// Renders a whole run on a blocking thread, so that a large one cannot delay the
/// timestamps of a run in progress.
async fn render<T: Send + 'static>(id: &str, what: &str, job: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(job).await.map_err(|err| {
        tracing::error!(run = %id, cause = %err, "rendering {what} failed");
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what} could not be made: {err}"),
            "please report it",
        )
    })
}

/// `GET /api/runs/{id}/report`: the whole run as `tokenscope sweep --out` writes it.
pub async fn report(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let run = find(&state, &id)?;
    let _permit = export_permit(&state)?;
    let report = finished_report(&state, &run, "the report is ready when it ends".into()).await?;
    let body = render(&id, "the report", move || serde_json::to_vec(&*report).expect("a report serializes")).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /api/runs/{id}/export/{file}`: a finished run as a download, `file` being one of
/// run.json, requests.csv, points.csv and profile.json.
pub async fn export(State(state): State<AppState>, Path((id, file)): Path<(String, String)>) -> ApiResult<Response> {
    let run = find(&state, &id)?;
    let names: Vec<&str> = Export::ALL.iter().map(|e| e.file_name()).collect();
    let export = Export::from_file_name(&file).ok_or_else(|| {
        HttpError::new(
            StatusCode::NOT_FOUND,
            format!("there is no export {file:?}"),
            format!("a run exports as /api/runs/{id}/export/ followed by {}", names.join(", ")),
        )
    })?;
    let hint = format!(
        "its exports are ready when it ends; GET /api/runs/{id} shows its progress, and \
         POST /api/runs/{id}/cancel stops it, keeping what it measured"
    );
    let _permit = export_permit(&state)?;
    let report = finished_report(&state, &run, hint).await?;
    // The profile export makes the run's prompts again, from a file of this machine when
    // they came from one: a tokenizer in a place the dashboard opens, and nothing else.
    if export == Export::Profile {
        let elsewhere = |path: &String| {
            HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("this run's prompts came from {path}, a file the dashboard does not open"),
                "write its profile export with `tokenscope sweep --profile-export FILE` as it runs",
            )
        };
        if let Some(path) = &report.spec.prompts_file {
            return Err(elsewhere(path));
        }
        if let Some(path) = &report.spec.tokenizer {
            super::tokenizers::for_export(&state, path).map_err(|err| err.unwrap_or_else(|| elsewhere(path)))?;
        }
    }
    let rendered = render(&id, &file, move || {
        let mut bytes = Vec::new();
        export.write_to(&report, &mut bytes).map(|()| bytes)
    })
    .await?;
    // Only a tokenizer that can no longer be read fails a rendering.
    let body = rendered.map_err(|err| {
        HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            err.to_string(),
            "the profile export needs the run's tokenizer where it was when the run started",
        )
    })?;
    let disposition = format!("attachment; filename=\"{}\"", export.download_name(&id));
    let headers =
        [(header::CONTENT_TYPE, export.content_type().to_string()), (header::CONTENT_DISPOSITION, disposition)];
    Ok((headers, body).into_response())
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
    let most = state.limits().followers_per_run;
    let watching = run.watch(most).ok_or_else(|| {
        HttpError::busy(
            format!("run {id} already has {most} WebSockets open, the most one run serves"),
            format!(
                "close another page watching it and retry in {RETRY_AFTER_S} seconds; GET /api/runs/{id} has its \
                 progress, and GET /api/runs/{id}/report the whole run once it ends"
            ),
        )
    })?;
    let timeout = state.limits().send_timeout;
    let Some(changed) = run.follow() else {
        let events = state.runs().stored_events(&run).await;
        let events = events.map_err(|err| HttpError::store(err, "reading the run", state.runs().store().path()))?;
        return Ok(upgrade.on_upgrade(move |socket| replay(socket, events, timeout, watching)));
    };
    Ok(upgrade.on_upgrade(move |socket| follow(socket, run, changed, timeout, watching)))
}

/// Sends one message; false when the client has gone, or has taken nothing for `timeout`:
/// the socket is then dropped, which closes the connection, and a client that stopped
/// reading holds no task, socket or log for longer.
async fn send(socket: &mut WebSocket, message: Message, timeout: std::time::Duration) -> bool {
    match tokio::time::timeout(timeout, socket.send(message)).await {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            tracing::info!("a WebSocket took no event for {} s and is closed", timeout.as_secs_f64());
            false
        }
    }
}

/// Sends a finished run's whole log, then closes.
async fn replay(
    mut socket: WebSocket,
    events: Vec<axum::extract::ws::Utf8Bytes>,
    timeout: std::time::Duration,
    _watching: Watching,
) {
    for event in events {
        if !send(&mut socket, Message::Text(event), timeout).await {
            return;
        }
    }
    send(&mut socket, Message::Close(Some(finished_frame())), timeout).await;
}

fn finished_frame() -> CloseFrame {
    CloseFrame { code: close_code::NORMAL, reason: "the run has finished".into() }
}

async fn follow(
    mut socket: WebSocket,
    run: Arc<RunHandle>,
    mut changed: tokio::sync::watch::Receiver<usize>,
    timeout: std::time::Duration,
    _watching: Watching,
) {
    let mut sent = 0;
    loop {
        changed.mark_unchanged();
        let (events, complete) = run.events_since(sent);
        let taken = events.len();
        for event in events {
            if !send(&mut socket, Message::Text(event), timeout).await {
                return;
            }
            sent += 1;
        }
        if complete {
            send(&mut socket, Message::Close(Some(finished_frame())), timeout).await;
            return;
        }
        if taken == EVENTS_PER_SEND {
            // The log has more than one take: go on without waiting for news.
            continue;
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
        "POST /api/runs starts a run, POST /api/runs/{id}/cancel stops one, PATCH /api/runs/{id} \
         renames it and DELETE /api/runs/{id} deletes it, POST /api/tokenizers?name=NAME uploads a tokenizer; \
         everything else is GET",
    )
}

/// Any other path under `/api`.
pub async fn no_such_endpoint() -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "no such API endpoint",
        "the API has /api/info, /api/targets/models, /api/tokenizers, /api/runs, \
         /api/runs/{id}[/cancel|/events|/report] and \
         /api/runs/{id}/export/{run.json|requests.csv|points.csv|profile.json}",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_are_answered_without_local_paths() {
        let data = std::path::Path::new("/home/someone/private-runs");
        let store = data.join(crate::store::FILE_NAME);
        let io = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let failures = [
            StoreError::CreateDir { path: data.into(), source: io() },
            StoreError::Open { path: store.clone(), source: rusqlite::Error::InvalidPath(store.clone()) },
            StoreError::TooNew { path: store.clone(), found: 9, supported: 2 },
            StoreError::Closed,
        ];
        for err in failures {
            let shown = err.to_string();
            let answer = HttpError::store(err, "reading the run", &store);
            let body = serde_json::to_string(&answer.body).unwrap();
            for part in ["someone", "private-runs", crate::store::FILE_NAME] {
                assert!(!body.contains(part), "{part:?} in {body} (from {shown})");
            }
            assert!(body.contains("reading the run failed") && body.contains("data folder"), "{body}");
            assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        }
    }

    #[test]
    fn a_refusal_for_a_limit_says_when_to_retry() {
        let response = HttpError::busy("too many".into(), "later".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], RETRY_AFTER_S.to_string().as_str());
    }
}
