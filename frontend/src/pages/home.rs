//! The dashboard: the sweep form, the run being watched, the runs list and the glossary.
//! Everything a page shows is in its address: the path names the page, the query holds
//! the run's view, the list's filters or the sweep to fill the form with.

use crate::view::{CompareState, ListFilter, RunViewState, query_pairs, spec_in_query, to_query};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::{ApiError, Role, RunCreated, RunSummary, ServerInfo};
use shared::{RunStatus, SweepSpec};

use crate::api;
use crate::components::compare_view::CompareView;
use crate::components::form::SweepForm;
use crate::components::glossary::Glossary;
use crate::components::run_view::RunView;
use crate::components::runs_list::RunsList;
use crate::components::{CanOperate, ErrorBox};
use crate::lazy;
use crate::nav::{self, Route};
use leptos::wasm_split::wasm_split;

/// The sweep a `/new?spec=` query carries: its JSON, and the spec or why it cannot be read.
pub fn spec_from_query(query: &str) -> Option<(Option<String>, Result<SweepSpec, ApiError>)> {
    let hint = Some(
        "the form shows its defaults instead. A link from \"Link to this sweep\" or \"Rerun…\" carries a whole \
         spec; this one may have been cut short when it was copied",
    );
    Some(match spec_in_query(query)? {
        Ok(json) => {
            let spec = crate::json::from_json::<SweepSpec>(&json)
                .map_err(|err| api::failure(format!("The link's sweep spec could not be read: {err}"), hint));
            (Some(json), spec)
        }
        Err(why) => (None, Err(api::failure(format!("The link's sweep spec could not be read: {why}"), hint))),
    })
}

/// What the page shows, all of it in its address: the route, a run's or comparison's chart
/// controls, the runs list's filters and the runs compared (the baseline first).
#[derive(Clone, Copy)]
struct Address {
    route: RwSignal<Route>,
    view: RwSignal<RunViewState>,
    filter: RwSignal<ListFilter>,
    compared: RwSignal<Vec<String>>,
    /// The path and query of what the page shows; the address bar follows it.
    link: Memo<String>,
}

impl Address {
    /// The address the page was opened at; `spec_json` is the sweep a `/new` link carries.
    fn opened(spec_json: Option<String>) -> Address {
        let pairs = query_pairs(&nav::current_query());
        let route = RwSignal::new(Route::of(&nav::current_path()));
        let view = RwSignal::new(RunViewState::from_pairs(&pairs));
        let filter = RwSignal::new(ListFilter::from_pairs(&pairs));
        let compared = RwSignal::new(CompareState::from_pairs(&pairs).runs);
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
        Address { route, view, filter, compared, link }
    }

    /// Keeps the address bar on `link` without a reload, and the page on the address when
    /// the browser goes back or forward.
    fn follow(self) {
        Effect::new(move |_| {
            let url = self.link.get();
            if url != format!("{}{}", nav::current_path(), nav::current_query()) {
                nav::set_url(&url, false);
            }
        });
        let _ = window_event_listener(leptos::ev::popstate, move |_| {
            let pairs = query_pairs(&nav::current_query());
            self.view.set(RunViewState::from_pairs(&pairs));
            self.filter.set(ListFilter::from_pairs(&pairs));
            self.compared.set(CompareState::from_pairs(&pairs).runs);
            self.route.set(Route::of(&nav::current_path()));
        });
    }

    /// Opens another page as a new history entry, keeping the list's filters.
    fn go(self, to: Route) {
        self.view.set(RunViewState::default());
        nav::set_url(&format!("{}{}", to.path(), to_query(&self.filter.get_untracked().pairs())), true);
        self.route.set(to);
    }

    /// Opens the comparison of `ids`, the first as the baseline.
    fn compare(self, ids: Vec<String>) {
        self.view.set(RunViewState::default());
        self.compared.set(ids.clone());
        let mut pairs = CompareState::new(ids, RunViewState::default()).pairs();
        pairs.extend(self.filter.get_untracked().pairs());
        nav::set_url(&format!("/compare{}", to_query(&pairs)), true);
        self.route.set(Route::Compare);
    }
}

/// The runs list, fetched now and each second while a run goes on (so the Run button
/// knows); with whether one does, and a way to fetch it again.
fn runs_kept_current() -> (RwSignal<Vec<RunSummary>>, Signal<bool>, impl Fn() + Copy + 'static) {
    let runs = RwSignal::new(Vec::<RunSummary>::new());
    let refresh = move || {
        spawn_local(async move {
            if let Ok(list) = api::get_json::<Vec<RunSummary>>("/api/runs").await {
                runs.set(list);
            }
        })
    };
    refresh();
    let running = Signal::derive(move || runs.with(|r| r.iter().any(|r| r.status == RunStatus::Running)));
    let poll = set_interval_with_handle(
        move || {
            if running.get_untracked() {
                refresh();
            }
        },
        std::time::Duration::from_secs(1),
    );
    on_cleanup(move || {
        if let Ok(poll) = poll {
            poll.clear();
        }
    });
    (runs, running, refresh)
}

/// The pages at `/`, `/new`, `/runs`, `/runs/ID` and `/compare`.
#[component]
pub fn HomePage() -> impl IntoView {
    let info = RwSignal::new(None::<Result<ServerInfo, ApiError>>);
    spawn_local(async move { info.set(Some(api::get_json::<ServerInfo>("/api/info").await)) });
    let (spec_json, link_spec) = match Route::of(&nav::current_path()) {
        Route::New => spec_from_query(&nav::current_query()).map_or((None, None), |(json, spec)| (json, Some(spec))),
        _ => (None, None),
    };
    let address = Address::opened(spec_json);
    address.follow();
    let Address { route, view, filter, compared, link } = address;
    let go = move |to: Route| address.go(to);
    let (runs, running, refresh_runs) = runs_kept_current();
    let open_run = Callback::new(move |id: String| go(Route::Run(id)));
    let open_compare = Callback::new(move |ids| address.compare(ids));
    let listing = move || route.with(|r| matches!(r, Route::Runs | Route::Compare));
    let role =
        Signal::derive(move || info.with(|i| i.as_ref().and_then(|i| i.as_ref().ok()).map(|i| (i.role, i.sign_in))));
    // Until the server has said, nothing that changes runs is offered.
    let operator = Signal::derive(move || role.get().is_some_and(|(role, _)| role == Role::Operator));
    provide_context(CanOperate(operator));
    // The page below the form; a memo, so that setting the same route keeps its view.
    let page = Memo::new(move |_| route.get());
    view! {
        <PageHeader role=role on_runs=Callback::new(move |()| go(Route::Runs))/>
        <main>
            {link_spec.clone().and_then(Result::err).map(|err| view! { <div id="spec-error"><ErrorBox error=err/></div> })}
            <Show when=move || !listing()>
                <FormOrNote info=info running=running initial=link_spec.clone().and_then(Result::ok)
                    on_started=Callback::new(move |id: String| { go(Route::Run(id)); refresh_runs(); })/>
            </Show>
            {move || match page.get() {
                Route::Compare => lazy::shown("comparison", compare_view(compared.get(), view, link.into())).into_any(),
                Route::Run(id) => view! {
                    <RunView id=id view=view address=link
                        on_changed=Callback::new(move |_| refresh_runs())
                        on_deleted=Callback::new(move |()| { go(Route::Runs); refresh_runs(); })/>
                }.into_any(),
                Route::Home | Route::New => view! {
                    <p class="placeholder">"Pick a preset, set prompt lengths and press Run: the charts fill in as responses arrive."</p>
                }.into_any(),
                Route::Runs => ().into_any(),
            }}
            <section class="runs" id="runs">
                <h2>"Runs"</h2>
                <Show when=move || operator.get()>
                    <ImportRun on_imported=Callback::new(move |id: String| { go(Route::Run(id)); refresh_runs(); })/>
                </Show>
                <RunsList runs=runs filter=filter on_open=open_run on_compare=open_compare/>
            </section>
            <Glossary/>
        </main>
    }
}

/// The page's title, its navigation and the visitor's role (with signing in or out).
#[component]
fn PageHeader(role: Signal<Option<(Role, bool)>>, on_runs: Callback<()>) -> impl IntoView {
    view! {
        <header class="page-header">
            <h1><a href="/">"tokenscope"</a></h1>
            <p class="tagline">
                "Time to first token and token-to-token latency of an LLM on Triton, per prompt length, live."
            </p>
            <nav class="page-nav">
                <a href="/" id="nav-new">"New sweep"</a>
                <a href="/runs" id="nav-runs" on:click=move |ev| { ev.prevent_default(); on_runs.run(()); }>"Runs"</a>
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
    }
}

/// The sweep form for an operator; for a viewer, a note on what they may do; until the
/// server has answered, what the page waits for.
#[component]
fn FormOrNote(
    info: RwSignal<Option<Result<ServerInfo, ApiError>>>,
    running: Signal<bool>,
    initial: Option<SweepSpec>,
    on_started: Callback<String>,
) -> impl IntoView {
    move || {
        match info.get() {
        None => view! { <p>"Connecting to the dashboard server…"</p> }.into_any(),
        Some(Err(err)) => view! { <ErrorBox error=err/> }.into_any(),
        Some(Ok(info)) if info.role == Role::Viewer => view! {
            <p class="note" id="viewer-note">"You are a viewer here: you can open runs, compare and export them. Starting, cancelling, changing, deleting and importing runs needs the operator's token."</p>
        }.into_any(),
        Some(Ok(info)) => lazy::shown("sweep form", sweep_form(info.default_target, running, initial.clone(), on_started)).into_any(),
    }
    }
}

/// The comparison, from its own chunk.
#[wasm_split(compare, wasm_split_path = ::leptos::wasm_split, fallible)]
fn compare_view(ids: Vec<String>, view: RwSignal<RunViewState>, address: Signal<String>) -> lazy::Part {
    Ok(view! { <CompareView ids=ids view=view address=address/> }.into_any())
}

/// The sweep form, from its own chunk.
#[wasm_split(form, wasm_split_path = ::leptos::wasm_split, fallible)]
fn sweep_form(
    default_target: String,
    running: Signal<bool>,
    initial: Option<SweepSpec>,
    on_started: Callback<String>,
) -> lazy::Part {
    Ok(view! { <SweepForm default_target=default_target running=running initial=initial on_started=on_started/> }
        .into_any())
}

/// Opens a run.json or a perf_analyzer profile export as a run; `on_imported` gets its id.
#[component]
fn ImportRun(on_imported: Callback<String>) -> impl IntoView {
    let import_error = RwSignal::new(None::<ApiError>);
    let import = move |file: web_sys::File| {
        import_error.set(None);
        spawn_local(async move {
            let created = match api::file_text(&file).await {
                Ok(text) => api::post_text::<RunCreated>("/api/runs/import", text).await,
                Err(err) => Err(err),
            };
            match created {
                Ok(created) => on_imported.run(created.id),
                Err(err) => import_error.set(Some(err)),
            }
        });
    };
    view! {
        <label class="import">
            "Open a run.json (tokenscope sweep --out, or a run's export) or a perf_analyzer profile export as a run: "
            <input type="file" id="import-file" accept=".json,application/json" on:change=move |ev| {
                let input: web_sys::HtmlInputElement = event_target(&ev);
                if let Some(file) = input.files().and_then(|files| files.get(0)) {
                    import(file);
                }
            }/>
        </label>
        {move || import_error.get().map(|err| view! { <ErrorBox error=err/> })}
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
