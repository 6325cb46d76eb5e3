//! The JSON bodies of the dashboard's HTTP API.

use serde::{Deserialize, Serialize};

use crate::report::{ModelInfo, RunStatus};
use crate::spec::{InputStyle, SweepSpec};
use crate::stats::PointStats;

/// Every failed API call answers with this body and a matching status code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, in words; they may change from one version to the next.
    pub error: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// What kind of failure it is, for programs: stable, unlike the words.
    #[serde(default)]
    pub code: ErrorCode,
    /// The HTTP status the answer came with, where a client noted it; never in the body.
    #[serde(skip)]
    pub status: Option<u16>,
}

impl ApiError {
    /// A failure with no status, such as one found before any request was made.
    pub fn new(code: ErrorCode, error: impl Into<String>, hint: Option<&str>) -> ApiError {
        ApiError { error: error.into(), hint: hint.map(Into::into), code, status: None }
    }
}

/// The kinds of API failure, written in snake case (`"no_run"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The run named does not exist (404).
    NoRun,
    /// Something else named does not exist (404).
    NotFound,
    /// The request could not be read, or asks for something invalid (400, 413, 415, 422).
    Invalid,
    /// The visitor is not signed in (401).
    Unauthorized,
    /// The visitor's role, or the dashboard's target list or origin rule, refuses it (403).
    Forbidden,
    /// It conflicts with the state of a run, such as deleting one in progress (409).
    Conflict,
    /// A limit of the dashboard is reached; retry after `Retry-After` (503).
    Busy,
    /// The run store failed (500, 503).
    Store,
    /// The measured server could not be reached or refused (502, 504).
    Target,
    /// A fault in tokenscope (500).
    Internal,
    /// Any other failure, and one from before codes were given.
    #[default]
    Other,
}

impl ErrorCode {
    /// The code a status means when nothing more precise is known.
    pub fn of_status(status: u16) -> ErrorCode {
        match status {
            400 | 405 | 413 | 415 | 422 => ErrorCode::Invalid,
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            409 => ErrorCode::Conflict,
            502 | 504 => ErrorCode::Target,
            503 => ErrorCode::Busy,
            500 => ErrorCode::Internal,
            _ => ErrorCode::Other,
        }
    }
}

/// `GET /api/info`: what the dashboard needs before the user types anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub version: String,
    /// The target to preselect in the form.
    pub default_target: String,
    /// The default target is the built-in simulated Triton.
    pub default_is_simulated: bool,
    /// What the visitor asking may do.
    #[serde(default)]
    pub role: Role,
    /// Whether visitors sign in (the dashboard has tokens); the page then offers to sign out.
    #[serde(default)]
    pub sign_in: bool,
    /// The targets this dashboard may measure, as `host:port` patterns (`*` matches any
    /// part of a host, or any port); empty when any target may be measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_targets: Vec<String>,
    /// The most finished runs the dashboard keeps (`--keep-runs`); absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_runs: Option<u32>,
    /// The most days the dashboard keeps a finished run (`--keep-days`); absent: forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u32>,
}

/// What a visitor of the dashboard may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Opens runs, the runs list, comparisons, exports and reports.
    Viewer,
    /// Also starts, cancels, edits, deletes and imports runs.
    #[default]
    Operator,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
        }
    }
}

/// One model of a target, as the sweep form lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelChoice {
    pub name: String,
    /// The version the repository lists, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The repository's state, such as `READY` or `UNAVAILABLE`.
    pub state: String,
    pub ready: bool,
    /// Why the model is not ready, in the server's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The input style `auto` picks, when the model is ready and matches one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_style: Option<InputStyle>,
    /// Whether the model streams (is decoupled); unknown when not ready or when its
    /// configuration cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<bool>,
    /// Why a sweep cannot run on this model, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// `GET /api/targets/models?target=URL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetModels {
    pub target: String,
    /// The protocol the target's address names, which the models were asked over.
    #[serde(default)]
    pub protocol: crate::protocol::Protocol,
    /// The target is the built-in simulated Triton.
    pub simulated: bool,
    /// The built-in simulator's addresses in its other protocols, when the target is it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub simulator_elsewhere: Vec<String>,
    pub models: Vec<ModelChoice>,
}

/// `GET /api/targets/metrics?target=URL[&url=METRICS_URL]`: where a run on the target reads
/// the server's metrics, and whether they answer now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsCheck {
    /// The address a run reads, given or derived from the target.
    pub url: String,
    /// Whether one scrape answered with metrics.
    pub answers: bool,
    /// Series and families it held.
    pub series: u32,
    /// Family names, sorted, at most [`MetricsCheck::MAX_FAMILIES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub families: Vec<String>,
    /// How long the scrape took, milliseconds.
    pub took_ms: f64,
    /// Why it did not answer, with what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl MetricsCheck {
    pub const MAX_FAMILIES: usize = 512;
}

/// `POST /api/runs` answers `201` with this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCreated {
    pub id: String,
}

/// A run as `GET /api/runs` and `GET /api/runs/{id}` describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub spec: SweepSpec,
    /// Wall-clock time of the run's zero, nanoseconds since the Unix epoch.
    pub started_unix_ns: i64,
    pub simulated: bool,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelInfo>,
    /// Requests the run sends in all, warm-up included.
    pub total_requests: u64,
    /// Requests finished so far, warm-up included.
    pub finished_requests: u64,
    /// Finished requests that ended in an error.
    pub errors: u64,
    /// Statistics of every point settled so far, in sweep order.
    pub points: Vec<PointStats>,
    /// The name the user gave the run; empty when none.
    #[serde(default)]
    pub name: String,
    /// The user's notes on the run.
    #[serde(default)]
    pub notes: String,
    /// The user's tags, in the order given, without duplicates.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Why the run is not in the run store, if it could not be written there: it lasts only
    /// as long as the dashboard that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_saved: Option<String>,
}

impl RunSummary {
    /// A run that is starting: nothing finished, no model read, no name, notes or tags yet.
    pub fn starting(id: String, spec: SweepSpec, started_unix_ns: i64, simulated: bool) -> RunSummary {
        RunSummary {
            id,
            total_requests: spec.total_requests(),
            spec,
            started_unix_ns,
            simulated,
            status: RunStatus::Running,
            model: None,
            finished_requests: 0,
            errors: 0,
            points: Vec::new(),
            name: String::new(),
            notes: String::new(),
            tags: Vec::new(),
            not_saved: None,
        }
    }
}

/// The files a finished run exports as, `GET /api/runs/{id}/export/{file}`, with what each
/// holds, in the order the dashboard lists them.
pub const EXPORTS: [(&str, &str); 5] = [
    ("run.json", "the run"),
    ("requests.csv", "one CSV row per request"),
    ("points.csv", "one CSV row per prompt length"),
    ("profile.json", "perf_analyzer profile export"),
    ("metrics.csv", "the server's metrics, one CSV row per series per scrape"),
];

/// `PATCH /api/runs/{id}`: what to change of a run's name, notes and tags; an absent field
/// is left as it is. Answers with the run's [`RunSummary`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunEdit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// A tokenizer the dashboard keeps (uploaded with `POST /api/tokenizers?name=NAME`), as
/// `GET /api/tokenizers` lists it and the upload answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptTokenizer {
    /// Its name: the folder it is kept in, and what charts call it.
    pub name: String,
    /// What a spec's `tokenizer` names it by: its `tokenizer.json` on the proxy's machine.
    pub path: String,
    /// The size of its `tokenizer.json`.
    pub bytes: u64,
    /// Special tokens it adds to every prompt.
    pub specials: u32,
}

/// `GET /api/tokenizers`: the tokenizers a sweep may use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tokenizers {
    /// The uploaded ones, by name.
    pub kept: Vec<KeptTokenizer>,
    /// Folders on the proxy's machine (`serve --tokenizer-dir`) whose tokenizers a spec may
    /// also name by path; empty when there are none.
    #[serde(default)]
    pub folders: Vec<String>,
    /// The most tokenizers the dashboard keeps.
    pub most: u32,
}
