//! Reusable pieces of the pages.

pub mod charts;
pub mod compare_view;
pub mod copy_link;
pub mod form;
pub mod glossary;
pub mod points_table;
pub mod run_details;
pub mod run_view;
pub mod runs_list;
pub mod telemetry;
pub mod throughput;
pub mod tokenizer;

use leptos::prelude::*;
use shared::api::ApiError;

/// Whether the visitor may start, cancel, change, delete and import runs; viewers only look.
/// The page provides it once it knows the visitor's role.
#[derive(Debug, Clone, Copy)]
pub struct CanOperate(pub Signal<bool>);

/// The visitor's [`CanOperate`], or `true` where no page provided one.
pub fn can_operate() -> Signal<bool> {
    use_context::<CanOperate>().map_or_else(|| Signal::stored(true), |c| c.0)
}

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
