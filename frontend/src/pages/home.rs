//! The dashboard: the sweep form, the run being watched, the runs list and the glossary.
//! Everything a page shows is in its address: the path names the page, the query holds
//! the run's view, the list's filters or the sweep to fill the form with.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::{ApiError, Role, RunCreated, RunSummary, ServerInfo};
use crate::view::{CompareState, ListFilter, RunViewState, query_pairs, spec_in_query, to_query};
use shared::{RunStatus, SweepSpec};

use crate::api;
use crate::components::compare_view::CompareView;
use crate::components::form::SweepForm;
use crate::components::glossary::Glossary;
use crate::components::run_view::RunView;
use crate::components::runs_list::RunsList;
use crate::components::{CanOperate, ErrorBox};
use crate::nav::{self, Route};

/// The sweep a `/new?spec=` query carries: its JSON, and the spec or why it cannot be read.
pub fn spec_from_query(query: &str) -> Option<(Option<String>, Result<SweepSpec, ApiError>)> {
    let hint = Some(
        "the form shows its defaults instead. A link from \"Link to this sweep\" or \"Rerun…\" carries a whole \
         spec; this one may have been cut short when it was copied",
    );
    Some(match spec_in_query(query)? {
        Ok(json) => {
            let spec = serde_json::from_str::<SweepSpec>(&json)
                .map_err(|err| api::failure(format!("The link's sweep spec could not be read: {err}"), hint));
            (Some(json), spec)
        }
        Err(why) => (None, Err(api::failure(format!("The link's sweep spec could not be read: {why}"), hint))),
    })
}

/// The pages at `/`, `/new`, `/runs`, `/runs/ID` and `/compare`.
#[component]
pub fn HomePage() -> impl IntoView {
    let info = RwSignal::new(None::<Result<ServerInfo, ApiError>>);
    let runs = RwSignal::new(Vec::<RunSummary>::new());
    let import_error = RwSignal::new(None::<ApiError>);
    let route = RwSignal::new(Route::of(&nav::current_path()));
    let query = nav::current_query();
    let pairs = query_pairs(&query);
    let view = RwSignal::new(RunViewState::from_pairs(&pairs));
    let filter = RwSignal::new(ListFilter::from_pairs(&pairs));
    // The runs a comparison shows, the baseline first.
    let compared = RwSignal::new(CompareState::from_pairs(&pairs).runs);
    let (spec_json, link_spec) = match route.get_untracked() {
        Route::New => spec_from_query(&query).map_or((None, None), |(json, spec)| (json, Some(spec))),
        _ => (None, None),
    };
    let current = Memo::new(move |_| route.with(Route::run_id));

    // The address of what the page shows; the address bar follows it without a reload.
    let link = Memo::new(move |_| {
        let route = route.get();
        let mut pairs = match &route {
            Route::Run(_) => view.get().pairs(),
            Route::Compare => CompareState::new(compared.get(), view.get()).pairs(),
            Route::New => spec_json.iter().map(|json| ("spec", json.clone())).collect(),
            _ => Vec::new(),
        };
        pairs.extend(filter.get().pairs());
        format!("{}{}", route.path(), to_query(&pairs))
    });
    Effect::new(move |_| {
        let url = link.get();
        if url != format!("{}{}", nav::current_path(), nav::current_query()) {
            nav::set_url(&url, false);
        }
    });
    let go = move |to: Route| {
        view.set(RunViewState::default());
        nav::set_url(&format!("{}{}", to.path(), to_query(&filter.get_untracked().pairs())), true);
        route.set(to);
    };
    let compare = move |ids: Vec<String>| {
        view.set(RunViewState::default());
        compared.set(ids.clone());
        let state = CompareState::new(ids, RunViewState::default());
        let mut pairs = state.pairs();
        pairs.extend(filter.get_untracked().pairs());
        nav::set_url(&format!("/compare{}", to_query(&pairs)), true);
        route.set(Route::Compare);
    };
    let _ = window_event_listener(leptos::ev::popstate, move |_| {
        let pairs = query_pairs(&nav::current_query());
        view.set(RunViewState::from_pairs(&pairs));
        filter.set(ListFilter::from_pairs(&pairs));
        compared.set(CompareState::from_pairs(&pairs).runs);
        route.set(Route::of(&nav::current_path()));
    });

    let refresh_runs = move || {
        spawn_local(async move {
            if let Ok(list) = api::get_json::<Vec<RunSummary>>("/api/runs").await {
                runs.set(list);
            }
        })
    };
    spawn_local(async move { info.set(Some(api::get_json::<ServerInfo>("/api/info").await)) });
    refresh_runs();
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
    let open_run = Callback::new(move |id: String| go(Route::Run(id)));
    let open_compare = Callback::new(compare);
    let listing = move || route.with(|r| matches!(r, Route::Runs | Route::Compare));
    let role =
        Signal::derive(move || info.with(|i| i.as_ref().and_then(|i| i.as_ref().ok()).map(|i| (i.role, i.sign_in))));
    // Until the server has said, nothing that changes runs is offered.
    let operator = Signal::derive(move || role.get().is_some_and(|(role, _)| role == Role::Operator));
    provide_context(CanOperate(operator));
    view! {
        <header class="page-header">
            <h1><a href="/">"tokenscope"</a></h1>
            <p class="tagline">
                "Time to first token and token-to-token latency of an LLM on Triton, per prompt length, live."
            </p>
            <nav class="page-nav">
                <a href="/" id="nav-new">"New sweep"</a>
                <a href="/runs" id="nav-runs" on:click=move |ev| { ev.prevent_default(); go(Route::Runs); }>"Runs"</a>
                {move || role.get().map(|(role, sign_in)| view! {
                    <span class="role" id="role" data-role=role.name()
                        title=match role { Role::Operator => "You may start, cancel, change, delete and import runs", Role::Viewer => "You may open runs, compare and export them" }>
                        {role.name()}</span>
                    {sign_in.then(|| view! {
                        <form class="sign-out" method="post" action="/signout">
                            <button type="submit" id="sign-out">{if role == Role::Viewer { "Sign in as operator" } else { "Sign out" }}</button>
                        </form>
                    })}
                })}
            </nav>
        </header>
        <main>
            {link_spec.clone().and_then(Result::err).map(|err| view! { <div id="spec-error"><ErrorBox error=err/></div> })}
            <Show when=move || !listing()>
                {let link_spec = link_spec.clone();
                move || match info.get() {
                    None => view! { <p>"Connecting to the dashboard server…"</p> }.into_any(),
                    Some(Err(err)) => view! { <ErrorBox error=err/> }.into_any(),
                    Some(Ok(info)) if info.role == Role::Viewer => view! {
                        <p class="note" id="viewer-note">"You are a viewer here: you can open runs, compare and export them. Starting, cancelling, changing, deleting and importing runs needs the operator's token."</p>
                    }.into_any(),
                    Some(Ok(info)) => view! {
                        <SweepForm default_target=info.default_target running=running
                            initial=link_spec.clone().and_then(Result::ok)
                            on_started=Callback::new(move |id: String| { go(Route::Run(id)); refresh_runs(); })/>
                    }.into_any(),
                }}
            </Show>
            {move || match (current.get(), listing()) {
                (None, true) if route.with(|r| *r == Route::Compare) => view! {
                    <CompareView ids=compared.get() view=view address=link/>
                }.into_any(),
                (Some(id), _) => view! {
                    <RunView id=id view=view address=link
                        on_changed=Callback::new(move |_| refresh_runs())
                        on_deleted=Callback::new(move |()| { go(Route::Runs); refresh_runs(); })/>
                }.into_any(),
                (None, false) => view! { <p class="placeholder">"Pick a preset, set prompt lengths and press Run: the charts fill in as responses arrive."</p> }.into_any(),
                (None, true) => ().into_any(),
            }}
            <section class="runs" id="runs">
                <h2>"Runs"</h2>
                <Show when=move || operator.get()>
                <label class="import">
                    "Open a run.json (tokenscope sweep --out, or a run's export) or a perf_analyzer profile export as a run: "
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
                                Ok(created) => { go(Route::Run(created.id)); refresh_runs(); }
                                Err(err) => import_error.set(Some(err)),
                            }
                        });
                    }/>
                </label>
                {move || import_error.get().map(|err| view! { <ErrorBox error=err/> })}
                </Show>
                <RunsList runs=runs filter=filter on_open=open_run on_compare=open_compare/>
            </section>
            <Glossary/>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_carries_a_spec_or_says_why_not() {
        let spec = SweepSpec { model: "m".into(), prompt_lengths: vec![32, 64], ..SweepSpec::default() };
        let path = crate::components::run_view::rerun_path(&spec);
        let query = path.strip_prefix("/new").unwrap();
        let (json, parsed) = spec_from_query(query).unwrap();
        assert_eq!(parsed.unwrap(), spec);
        assert!(json.unwrap().contains("\"prompt_lengths\":[32,64]"));
        assert!(spec_from_query("?len=3").is_none());
        let (_, bad) = spec_from_query("?spec=%7Bnope").unwrap();
        assert!(bad.unwrap_err().error.starts_with("The link's sweep spec could not be read"));
        let (json, bad) = spec_from_query("?spec=%E").unwrap();
        assert!(json.is_none() && bad.is_err());
    }
}
