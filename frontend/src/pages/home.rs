//! The dashboard: the sweep form, the run being watched, earlier runs and the glossary.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::RunStatus;
use shared::api::{ApiError, RunCreated, RunSummary, ServerInfo};

use crate::api;
use crate::components::ErrorBox;
use crate::components::form::SweepForm;
use crate::components::glossary::Glossary;
use crate::components::run_view::RunView;

/// The run id in a path such as `/runs/ID`.
pub fn run_in_path(path: &str) -> Option<String> {
    path.strip_prefix("/runs/").map(|id| id.trim_end_matches('/')).filter(|id| !id.is_empty()).map(Into::into)
}

fn current_path() -> String {
    web_sys::window().and_then(|w| w.location().pathname().ok()).unwrap_or_default()
}

/// Shows `id`'s run and puts it in the address bar, so the address can be shared.
fn navigate(current: RwSignal<Option<String>>, id: String) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&format!("/runs/{id}")));
    }
    current.set(Some(id));
}

/// The page at `/` and `/runs/ID`.
#[component]
pub fn HomePage() -> impl IntoView {
    let info = RwSignal::new(None::<Result<ServerInfo, ApiError>>);
    let runs = RwSignal::new(Vec::<RunSummary>::new());
    let current = RwSignal::new(run_in_path(&current_path()));
    let import_error = RwSignal::new(None::<ApiError>);
    let refresh_runs = move || {
        spawn_local(async move {
            if let Ok(list) = api::get_json::<Vec<RunSummary>>("/api/runs").await {
                runs.set(list);
            }
        })
    };
    spawn_local(async move { info.set(Some(api::get_json::<ServerInfo>("/api/info").await)) });
    refresh_runs();
    let _ = window_event_listener(leptos::ev::popstate, move |_| current.set(run_in_path(&current_path())));
    let running = Signal::derive(move || runs.with(|r| r.iter().any(|r| r.status == RunStatus::Running)));
    // Keep the list (and so the Run button) current while a run goes on.
    let poll = set_interval_with_handle(
        move || {
            if running.get_untracked() {
                refresh_runs();
            }
        },
        std::time::Duration::from_secs(1),
    );
    on_cleanup(move || {
        if let Ok(poll) = poll {
            poll.clear();
        }
    });
    view! {
        <header class="page-header">
            <h1><a href="/">"tokenscope"</a></h1>
            <p class="tagline">
                "Time to first token and token-to-token latency of an LLM on Triton, per prompt length, live."
            </p>
        </header>
        <main>
            {move || match info.get() {
                None => view! { <p>"Connecting to the dashboard server…"</p> }.into_any(),
                Some(Err(err)) => view! { <ErrorBox error=err/> }.into_any(),
                Some(Ok(info)) => view! {
                    <SweepForm default_target=info.default_target running=running
                        on_started=Callback::new(move |id: String| { navigate(current, id); refresh_runs(); })/>
                }.into_any(),
            }}
            {move || match current.get() {
                Some(id) => view! { <RunView id=id/> }.into_any(),
                None => view! { <p class="placeholder">"Pick a preset, set prompt lengths and press Run: the charts fill in as responses arrive."</p> }.into_any(),
            }}
            <section class="runs">
                <h2>"Runs"</h2>
                <label class="import">
                    "Open a perf_analyzer profile export as a run: "
                    <input type="file" id="import-file" accept=".json,application/json" on:change=move |ev| {
                        let input: web_sys::HtmlInputElement = event_target(&ev);
                        let Some(file) = input.files().and_then(|files| files.get(0)) else { return };
                        import_error.set(None);
                        spawn_local(async move {
                            let created = match api::file_text(&file).await {
                                Ok(text) => api::post_text::<RunCreated>("/api/runs/import", text).await,
                                Err(err) => Err(err),
                            };
                            match created {
                                Ok(created) => { navigate(current, created.id); refresh_runs(); }
                                Err(err) => import_error.set(Some(err)),
                            }
                        });
                    }/>
                </label>
                {move || import_error.get().map(|err| view! { <ErrorBox error=err/> })}
                <ul>
                    {move || runs.get().into_iter().map(|r| {
                        let id = r.id.clone();
                        let state = match &r.status {
                            RunStatus::Running => "running".to_string(),
                            RunStatus::Completed => "completed".into(),
                            RunStatus::Cancelled => "cancelled".into(),
                            RunStatus::Failed { .. } => "failed".into(),
                            RunStatus::Interrupted => "interrupted".into(),
                        };
                        view! {
                            <li>
                                <a href=format!("/runs/{id}") on:click=move |ev| { ev.prevent_default(); navigate(current, id.clone()); }>
                                    <code>{r.id.clone()}</code>
                                </a>
                                {format!(" {} · {} lengths · max_tokens {} · {state}", r.spec.model, r.spec.prompt_lengths.len(), r.spec.max_tokens)}
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </section>
            <Glossary/>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_come_from_the_path() {
        assert_eq!(run_in_path("/runs/20261128-1"), Some("20261128-1".into()));
        assert_eq!(run_in_path("/runs/x/"), Some("x".into()));
        assert_eq!(run_in_path("/runs/"), None);
        assert_eq!(run_in_path("/"), None);
    }
}
