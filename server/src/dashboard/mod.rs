//! The dashboard: one server for the browser app, a JSON API and a WebSocket of events per run.
//!
//! `app` builds the router, so tests drive it on a port-0 listener; `serve` runs it until
//! shutdown. Runs live in [`runs::Runs`] and keep going whether or not a browser watches;
//! they are kept in the [`Store`] under the data folder, so they outlive the process.

pub mod access;
pub mod api;
mod assets;
pub mod runs;
mod signin;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};
use crate::triton::normalize_target;
use access::Access;
use runs::Runs;

/// What the dashboard serves and where it points by default.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// The target the form starts with.
    pub default_target: String,
    /// The address of the built-in simulated Triton, when one runs.
    pub simulator: Option<String>,
    /// The folder that keeps the runs.
    pub data_dir: PathBuf,
    /// Who may view and operate, from which names and pages, and which targets they may measure.
    pub access: Access,
}

/// The dashboard's state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: DashboardConfig,
    runs: Runs,
}

impl AppState {
    /// Opens the store in the data folder and lists its runs; runs stop when `shutdown` is
    /// cancelled.
    pub async fn open(config: DashboardConfig, shutdown: CancellationToken) -> Result<Self, StoreError> {
        let config = DashboardConfig {
            default_target: normalize_target(&config.default_target),
            simulator: config.simulator.map(|s| normalize_target(&s)),
            data_dir: config.data_dir,
            access: config.access,
        };
        let store = Store::open(&config.data_dir).await?;
        let runs = Runs::load(store, shutdown).await?;
        Ok(Self { inner: Arc::new(Inner { config, runs }) })
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

    /// Whether a target is the built-in simulator.
    pub fn is_simulator(&self, target: &str) -> bool {
        self.inner.config.simulator.as_deref() == Some(normalize_target(target).as_str())
    }
}

/// The router: the API under `/api`, the browser app everywhere else.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/signin", get(signin::page).post(signin::sign_in))
        .route("/signout", post(signin::sign_out))
        .route("/api/info", get(api::info))
        .route("/api/targets/models", get(api::target_models))
        .route("/api/runs", get(api::list_runs).post(api::create_run))
        .route("/api/runs/import", post(api::import_run).layer(DefaultBodyLimit::max(api::IMPORT_LIMIT)))
        .route("/api/runs/{id}", get(api::get_run).patch(api::edit_run).delete(api::delete_run))
        .route("/api/runs/{id}/cancel", post(api::cancel_run))
        .route("/api/runs/{id}/events", get(api::events))
        .route("/api/runs/{id}/report", get(api::report))
        .route("/api/runs/{id}/export/{file}", get(api::export))
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
