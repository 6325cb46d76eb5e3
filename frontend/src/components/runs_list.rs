//! The runs list: newest first, filtered by model, target and tag.

use crate::report::status_words;
use crate::view::{ListFilter, list_runs, run_title};
use leptos::prelude::*;
use shared::api::RunSummary;

/// `2026-11-28 14:05`, in the browser's time zone.
fn started(unix_ns: i64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(unix_ns as f64 / 1e6));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        date.get_full_year(),
        date.get_month() + 1,
        date.get_date(),
        date.get_hours(),
        date.get_minutes()
    )
}

/// The runs, with their filters.
#[component]
pub fn RunsList(
    /// Every run the server has.
    #[prop(into)]
    runs: Signal<Vec<RunSummary>>,
    /// The filters, kept in the page's address.
    filter: RwSignal<ListFilter>,
    /// Called with a run's id when its link is clicked.
    on_open: Callback<String>,
    /// Called with the ticked runs' ids, in the order they were ticked, to compare them.
    on_compare: Callback<Vec<String>>,
) -> impl IntoView {
    // Ticked runs, in the order ticked: the first is the comparison's baseline.
    let chosen = RwSignal::new(Vec::<String>::new());
    // A run that is no longer listed (deleted) cannot be compared.
    Effect::new(move |_| {
        let known: Vec<String> = runs.with(|runs| runs.iter().map(|r| r.id.clone()).collect());
        if chosen.with(|c| c.iter().any(|id| !known.contains(id))) {
            chosen.update(|c| c.retain(|id| known.contains(id)));
        }
    });
    let input = move |id: &'static str,
                      label: &'static str,
                      get: fn(&ListFilter) -> &String,
                      set: fn(&mut ListFilter, String)| {
        view! {
            <label>{label}
                <input type="search" id=id prop:value=move || filter.with(|f| get(f).clone())
                    on:input=move |ev| { let value = event_target_value(&ev); filter.update(|f| set(f, value)); }
                    on:change=move |ev| { let value = event_target_value(&ev); filter.update(|f| set(f, value)); }/>
            </label>
        }
    };
    let listed = Memo::new(move |_| {
        runs.with(|runs| filter.with(|f| list_runs(runs, f).into_iter().cloned().collect::<Vec<_>>()))
    });
    view! {
        <div class="filters">
            {input("filter-model", "Model", |f| &f.model, |f, v| f.model = v)}
            {input("filter-target", "Target", |f| &f.target, |f, v| f.target = v)}
            {input("filter-tag", "Tag", |f| &f.tag, |f, v| f.tag = v)}
            <span class="compare-action">
                <Show when=move || chosen.with(|c| c.len() >= 2)
                    fallback=|| view! { <span class="hint">"Tick two runs or more to compare them."</span> }>
                    <button type="button" id="compare" class="primary" title="The first run ticked is the baseline"
                        on:click=move |_| on_compare.run(chosen.get_untracked())>
                        {move || format!("Compare ({})", chosen.with(Vec::len))}
                    </button>
                    <button type="button" id="compare-clear" on:click=move |_| chosen.set(Vec::new())>"Clear"</button>
                </Show>
            </span>
        </div>
        <table class="runs-list" id="runs-list">
            <thead>
                <tr>
                    <th class="select" title="Runs to compare">"compare"</th>
                    <th>"run"</th><th>"started"</th><th>"model"</th><th>"target"</th><th>"protocol"</th><th>"status"</th><th>"tags"</th>
                </tr>
            </thead>
            <tbody>
                {move || listed.get().into_iter().map(|r| {
                    let id = r.id.clone();
                    let title = run_title(&r);
                    let state = status_words(&r.status).name;
                    let pick = r.id.clone();
                    let ticked = r.id.clone();
                    view! {
                        <tr data-run=r.id.clone()>
                            <td class="select">
                                <input type="checkbox" class="compare-pick" aria-label=format!("compare {title}")
                                    prop:checked=move || chosen.with(|c| c.contains(&ticked))
                                    on:change=move |ev| {
                                        let on = event_target_checked(&ev);
                                        chosen.update(|c| {
                                            c.retain(|id| *id != pick);
                                            if on { c.push(pick.clone()); }
                                        });
                                    }/>
                            </td>
                            <td>
                                <a href=format!("/runs/{id}") on:click=move |ev| { ev.prevent_default(); on_open.run(id.clone()); }>{title}</a>
                                {(!r.name.trim().is_empty()).then(|| view! { " " <code class="id">{r.id.clone()}</code> })}
                            </td>
                            <td class="started">{started(r.started_unix_ns)}</td>
                            <td class="model">{r.spec.model.clone()}</td>
                            <td class="target">{r.spec.target.clone()}</td>
                            <td class="protocol">{r.spec.protocol_words()}</td>
                            <td class="status" data-state=state>{state}
                                {r.not_saved.clone().map(|why| view! { " " <span class="not-saved" title=format!("not in the run store: {why}")>"not saved"</span> })}
                            </td>
                            <td class="tags"><ul class="tags">{r.tags.iter().map(|t| view! { <li>{t.clone()}</li> }).collect_view()}</ul></td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        {move || (listed.with(Vec::is_empty)).then(|| view! {
            <p class="placeholder" id="runs-empty">{move || if filter.with(ListFilter::is_empty) { "No runs yet." } else { "No run matches these filters." }}</p>
        })}
    }
}
