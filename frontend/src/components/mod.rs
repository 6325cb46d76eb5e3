//! Reusable pieces of the pages.

pub mod charts;
pub mod compare_view;
pub mod copy_link;
pub mod form;
pub mod glossary;
pub mod run_details;
pub mod run_view;
pub mod runs_list;

use leptos::prelude::*;
use shared::api::ApiError;

/// A failure and what to do about it.
#[component]
pub fn ErrorBox(
    /// The failure to show.
    error: ApiError,
) -> impl IntoView {
    view! {
        <div class="error" role="alert">
            <strong>{error.error}</strong>
            {error.hint.map(|hint| view! { <p class="hint">{hint}</p> })}
        </div>
    }
}
