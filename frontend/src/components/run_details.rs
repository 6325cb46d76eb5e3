//! A run's notes and tags; for an operator, its name, notes and tags edited in place, and
//! deleting it after a confirmation in the page.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::wasm_split::wasm_split;
use shared::api::{ApiError, RunEdit, RunSummary};

use crate::api;
use crate::components::ErrorBox;

/// Tags as typed, comma-separated: trimmed, empty ones and repeats left out, in order.
pub fn parse_tags(text: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
    }
    tags
}

/// The run's notes and tags; for an operator, a form to change them with its name, and
/// Delete, whose code comes in the `form` chunk with the sweep form (viewers never fetch it).
#[component]
pub fn RunDetails(
    /// The run's id.
    id: String,
    /// The run as the server last described it; `None` until it has answered.
    summary: RwSignal<Option<RunSummary>>,
    /// Called with the run's new description after a change was saved.
    on_changed: Callback<RunSummary>,
    /// Called once the run has been deleted.
    on_deleted: Callback<()>,
) -> impl IntoView {
    let operator = crate::components::can_operate();
    view! {
        <div class="run-details">
            {move || summary.with(|s| s.as_ref().filter(|s| !s.tags.is_empty()).map(|s| view! {
                <ul class="tags" id="run-tags">{s.tags.iter().map(|t| view! { <li>{t.clone()}</li> }).collect_view()}</ul>
            }))}
            {move || summary.with(|s| s.as_ref().filter(|s| !s.notes.trim().is_empty()).map(|s| view! {
                <p class="run-notes" id="run-notes">{s.notes.clone()}</p>
            }))}
            {move || operator.get().then(|| {
                crate::lazy::quietly("run's editor", editor(id.clone(), summary, on_changed, on_deleted))
            })}
        </div>
    }
}

/// The form that renames the run and changes its notes and tags, and Delete; from the `form`
/// chunk.
#[wasm_split(form, wasm_split_path = ::leptos::wasm_split, fallible)]
fn editor(
    id: String,
    summary: RwSignal<Option<RunSummary>>,
    on_changed: Callback<RunSummary>,
    on_deleted: Callback<()>,
) -> crate::lazy::Part {
    Ok(edit_and_delete(id, summary, on_changed, on_deleted).into_any())
}

/// What [`editor`] shows.
fn edit_and_delete(
    id: String,
    summary: RwSignal<Option<RunSummary>>,
    on_changed: Callback<RunSummary>,
    on_deleted: Callback<()>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let tags = RwSignal::new(String::new());
    let notes = RwSignal::new(String::new());
    let saved = RwSignal::new(false);
    let saving = RwSignal::new(false);
    let edit_error = RwSignal::new(None::<ApiError>);
    let confirming = RwSignal::new(false);
    let delete_error = RwSignal::new(None::<ApiError>);
    // The fields start from the server's values each time it describes the run.
    Effect::new(move |_| {
        if let Some(run) = summary.get() {
            name.set(run.name.clone());
            tags.set(run.tags.join(", "));
            notes.set(run.notes.clone());
        }
    });
    let url = format!("/api/runs/{}", api::encode(&id));
    let save = {
        let url = url.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let edit = RunEdit {
                name: Some(name.get_untracked().trim().to_string()),
                notes: Some(notes.get_untracked()),
                tags: Some(parse_tags(&tags.get_untracked())),
            };
            let url = url.clone();
            saving.set(true);
            saved.set(false);
            edit_error.set(None);
            spawn_local(async move {
                match api::patch_json::<RunSummary>(&url, &edit).await {
                    Ok(run) => {
                        summary.set(Some(run.clone()));
                        saved.set(true);
                        on_changed.run(run);
                    }
                    Err(err) => edit_error.set(Some(err)),
                }
                saving.set(false);
            });
        }
    };
    let delete = move |_| {
        let url = url.clone();
        delete_error.set(None);
        spawn_local(async move {
            match api::delete(&url).await {
                Ok(()) => on_deleted.run(()),
                Err(err) => {
                    confirming.set(false);
                    delete_error.set(Some(err));
                }
            }
        });
    };
    let title = {
        let id = id.clone();
        Signal::derive(move || summary.with(|s| s.as_ref().map_or(id.clone(), crate::view::run_title)))
    };
    view! {
        <details class="run-edit" id="run-edit">
            <summary>"Rename, notes and tags"</summary>
            <form on:submit=save>
                <label>"Name"<input id="edit-name" type="text" placeholder=id prop:value=name
                    on:input=move |ev| { name.set(event_target_value(&ev)); saved.set(false); }/></label>
                <label>"Tags, comma-separated"<input id="edit-tags" type="text" prop:value=tags
                    on:input=move |ev| { tags.set(event_target_value(&ev)); saved.set(false); }/></label>
                <label class="wide">"Notes"<textarea id="edit-notes" rows="3" prop:value=notes
                    on:input=move |ev| { notes.set(event_target_value(&ev)); saved.set(false); }></textarea></label>
                <div class="actions">
                    <button type="submit" id="edit-save" disabled=move || saving.get()>"Save"</button>
                    <Show when=move || saved.get()><span id="edit-status" role="status">"Saved"</span></Show>
                </div>
                {move || edit_error.get().map(|err| view! { <ErrorBox error=err/> })}
            </form>
        </details>
        <div class="delete">
            <Show when=move || confirming.get()
                fallback=move || view! { <button type="button" id="delete" on:click=move |_| confirming.set(true)>"Delete run…"</button> }>
                <span class="confirm" id="delete-confirm" role="alertdialog">
                    {move || format!("Delete run {}? ", title.get())}
                    <button type="button" id="delete-yes" class="danger" on:click=delete.clone()>"Yes"</button>
                    <button type="button" id="delete-no" on:click=move |_| confirming.set(false)>"No"</button>
                </span>
            </Show>
        </div>
        {move || delete_error.get().map(|err| view! { <ErrorBox error=err/> })}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_and_unique() {
        assert_eq!(parse_tags(" a, b,,a , c d "), vec!["a", "b", "c d"]);
        assert!(parse_tags(" , ").is_empty());
    }
}
