//! The dashboard: one server for the browser app, a JSON API and a WebSocket of events per run.
//!
//! `app` builds the router, so tests drive it on a port-0 listener; `serve` runs it until
//! shutdown. Runs live in [`runs::Runs`] and keep going whether or not a browser watches;
//! they are kept in the [`Store`] under the data folder, so they outlive the process.

pub mod access;
pub mod api;
mod assets;
mod recorder;
pub mod runs;
mod signin;
pub mod tokenizers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};
use crate::triton::normalize_target;
use access::Access;
use runs::{Retention, Runs};
use tokenizers::TokenizerPlaces;

/// What the dashboard serves and where it points by default.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// The target the form starts with.
    pub default_target: String,
    /// The address of the built-in simulated Triton, when one runs.
    pub simulator: Option<String>,
    /// The same simulator's addresses in the other protocols it serves (Triton HTTP, OpenAI).
    pub simulator_protocols: Vec<String>,
    /// Where the built-in simulated Triton serves its Prometheus metrics.
    pub simulator_metrics: Option<String>,
    /// The folder that keeps the runs.
    pub data_dir: PathBuf,
    /// Who may view and operate, from which names and pages, and which targets they may measure.
    pub access: Access,
    /// Folders of this machine whose tokenizers a sweep may name by path (`--tokenizer-dir`),
    /// besides the data folder's uploaded ones.
    pub tokenizer_dirs: Vec<PathBuf>,
}

/// How long a WebSocket may take to accept an event before it is closed: a client that
/// stopped reading must not hold a task, a socket and a run's log for ever.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The most WebSockets one run's events go to at once; each holds the run's log (a finished
/// run's is read back from the store for it), so a page opened in a hundred tabs cannot
/// multiply the dashboard's memory. Past it, `GET /api/runs/{id}/events` answers 503.
pub const FOLLOWERS_PER_RUN: usize = 64;

/// The most exports and reports rendered at once. Each renders a whole run on a blocking
/// thread, taking a core and a few times the run's size in memory while it does; past it,
/// `GET /api/runs/{id}/export/{file}` and `/report` answer 503 with a time to retry.
pub const EXPORTS_AT_ONCE: usize = 2;

/// How much work the dashboard takes on at once, and how many runs it keeps.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Which finished runs are deleted, and when.
    pub retention: Retention,
    /// See [`SEND_TIMEOUT`].
    pub send_timeout: Duration,
    /// See [`FOLLOWERS_PER_RUN`].
    pub followers_per_run: usize,
    /// See [`EXPORTS_AT_ONCE`].
    pub exports_at_once: usize,
    /// The largest tokenizer.json taken; see [`tokenizers::TOKENIZER_LIMIT`].
    pub tokenizer_bytes: usize,
    /// The most tokenizers kept; see [`tokenizers::MOST_KEPT`].
    pub tokenizers_kept: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            retention: Retention::default(),
            send_timeout: SEND_TIMEOUT,
            followers_per_run: FOLLOWERS_PER_RUN,
            exports_at_once: EXPORTS_AT_ONCE,
            tokenizer_bytes: tokenizers::TOKENIZER_LIMIT,
            tokenizers_kept: tokenizers::MOST_KEPT,
        }
    }
}

/// The dashboard's state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: DashboardConfig,
    runs: Runs,
    limits: Limits,
    /// One permit per export rendering; see [`EXPORTS_AT_ONCE`].
    exports: Arc<Semaphore>,
    /// One import is read at a time, so only one file's worth of memory is ever taken.
    imports: Arc<Semaphore>,
    tokenizers: TokenizerPlaces,
}

impl AppState {
    /// Opens the store in the data folder and lists its runs; runs stop when `shutdown` is
    /// cancelled.
    pub async fn open(config: DashboardConfig, shutdown: CancellationToken) -> Result<Self, StoreError> {
        Self::open_with(config, Limits::default(), shutdown).await
    }

    /// [`AppState::open`] with limits of its own; deletes the runs that `limits.retention`
    /// keeps no longer.
    pub async fn open_with(
        config: DashboardConfig,
        limits: Limits,
        shutdown: CancellationToken,
    ) -> Result<Self, StoreError> {
        let config = DashboardConfig {
            default_target: normalize_target(&config.default_target),
            simulator: config.simulator.map(|s| normalize_target(&s)),
            simulator_protocols: config.simulator_protocols.iter().map(|s| normalize_target(s)).collect(),
            simulator_metrics: config.simulator_metrics,
            data_dir: config.data_dir,
            access: config.access,
            tokenizer_dirs: config.tokenizer_dirs,
        };
        let store = Store::open(&config.data_dir).await?;
        let tokenizers = TokenizerPlaces::open(&config.data_dir, &config.tokenizer_dirs)
            .map_err(|source| StoreError::CreateDir { path: config.data_dir.join(tokenizers::FOLDER), source })?;
        let runs = Runs::load(store, shutdown, limits.retention).await?;
        let exports = Arc::new(Semaphore::new(limits.exports_at_once));
        let imports = Arc::new(Semaphore::new(1));
        Ok(Self { inner: Arc::new(Inner { config, runs, limits, exports, imports, tokenizers }) })
    }

    /// Waits for the run in progress to record its end, then closes the store. Call after
    /// cancelling the shutdown token.
    pub async fn close(&self) {
        self.inner.runs.until_idle().await;
        self.inner.runs.store().close().await;
    }

    pub fn config(&self) -> &DashboardConfig {
        &self.inner.config
    }

    pub fn access(&self) -> &Access {
        &self.inner.config.access
    }

    pub fn runs(&self) -> &Runs {
        &self.inner.runs
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Leave to render an export now, or `None` while [`Limits::exports_at_once`] render.
    pub fn export_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.inner.exports.clone().try_acquire_owned().ok()
    }

    /// Leave to read an import now, or `None` while another is read.
    pub fn import_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.inner.imports.clone().try_acquire_owned().ok()
    }

    /// Where tokenizers may be opened from.
    pub fn tokenizers(&self) -> &TokenizerPlaces {
        &self.inner.tokenizers
    }

    /// The built-in simulator's addresses, one per protocol it serves; none without it.
    fn simulator_targets(&self) -> impl Iterator<Item = &String> {
        let config = &self.inner.config;
        config.simulator.iter().chain(&config.simulator_protocols)
    }

    /// Whether a target is the built-in simulator, in any protocol it serves.
    pub fn is_simulator(&self, target: &str) -> bool {
        let target = normalize_target(target);
        self.simulator_targets().any(|t| *t == target)
    }

    /// The built-in simulator's addresses besides `target`, when `target` is one of them.
    pub fn simulator_elsewhere(&self, target: &str) -> Vec<String> {
        let target = normalize_target(target);
        if !self.simulator_targets().any(|t| *t == target) {
            return Vec::new();
        }
        self.simulator_targets().filter(|t| **t != target).cloned().collect()
    }

    /// Where a run on `target` reads the server's metrics by default: the built-in
    /// simulator's own address, or the target's host on Triton's metrics port.
    pub fn default_metrics_url(&self, target: &str) -> Option<String> {
        match &self.inner.config.simulator_metrics {
            Some(url) if self.is_simulator(target) => Some(url.clone()),
            _ => shared::telemetry::default_url(&normalize_target(target)),
        }
    }
}

/// The router: the API under `/api`, the browser app everywhere else.
pub fn app(state: AppState) -> Router {
    let tokenizer_bytes = state.limits().tokenizer_bytes;
    Router::new()
        .route("/signin", get(signin::page).post(signin::sign_in))
        .route("/signout", post(signin::sign_out))
        .route("/api/info", get(api::info))
        .route("/api/targets/models", get(api::target_models))
        .route("/api/targets/metrics", get(api::target_metrics))
        .route("/api/runs", get(api::list_runs).post(api::create_run))
        .route("/api/runs/import", post(api::import_run).layer(DefaultBodyLimit::max(api::IMPORT_LIMIT)))
        .route("/api/runs/{id}", get(api::get_run).patch(api::edit_run).delete(api::delete_run))
        .route("/api/runs/{id}/cancel", post(api::cancel_run))
        .route("/api/runs/{id}/events", get(api::events))
        .route("/api/runs/{id}/report", get(api::report))
        .route("/api/runs/{id}/export/{file}", get(api::export))
        .route(
            "/api/tokenizers",
            get(tokenizers::list).post(tokenizers::upload).layer(DefaultBodyLimit::max(tokenizer_bytes)),
        )
        .route("/api", any(api::no_such_endpoint))
        .route("/api/{*rest}", any(api::no_such_endpoint))
        .method_not_allowed_fallback(api::wrong_method)
        .fallback(assets::serve)
        .layer(axum::middleware::from_fn_with_state(state.clone(), access::guard))
        .with_state(state)
}

/// Serves the dashboard on `listener` until `shutdown` is cancelled, which also cancels any
/// run in progress.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

/// Whether the binary carries the built browser app (it does when `dist/` existed at build time).
pub fn has_frontend() -> bool {
    assets::has_frontend()
}
