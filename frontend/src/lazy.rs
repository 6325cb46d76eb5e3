//! Parts of the page that arrive when first shown.
//!
//! The page's wasm is split after it is built (`scripts/split-wasm.sh`, Trunk's post-build
//! hook): each function marked `#[wasm_split(NAME, ..)]` moves, with the code only it
//! reaches, into the chunk NAME, fetched the first time the function is called: what only
//! operators use (`form`: the sweep form, the run's editor and Rerun link), the comparison,
//! the throughput charts, the report and `/bench`. A view downloads
//! the main module and the chunks of the parts it shows. The functions are `fallible`: a
//! chunk that cannot be fetched is an error to show, not a panic, and is fetched again the
//! next time. Natively the functions are called directly.

use leptos::prelude::*;
use leptos::wasm_split::SplitLoaderError;
use send_wrapper::SendWrapper;
use shared::api::ApiError;

use crate::components::ErrorBox;

/// What a split function gives: the part, or why its chunk did not arrive.
pub type Part = Result<AnyView, SplitLoaderError>;

/// Shows `part` once its chunk has arrived, a line while it loads, and what to do if it
/// cannot be loaded (the dashboard went away, or was updated since the page was opened).
pub fn shown(what: &'static str, part: impl Future<Output = Part> + 'static) -> impl IntoView {
    let loaded = RwSignal::new(false);
    view! {
        <Show when=move || !loaded.get()><p class="loading">"Loading the " {what} "…"</p></Show>
        {arrived(what, part, Some(loaded))}
    }
}

/// [`shown`] without the line while it loads, for a small part such as a link.
pub fn quietly(what: &'static str, part: impl Future<Output = Part> + 'static) -> impl IntoView {
    arrived(what, part, None)
}

/// `part` once it has arrived, or what to do; `loaded` set then.
fn arrived(
    what: &'static str,
    part: impl Future<Output = Part> + 'static,
    loaded: Option<RwSignal<bool>>,
) -> Suspend<AnyView> {
    Suspend::new(SendWrapper::new(async move {
        let part = part.await.unwrap_or_else(|_| view! { <ErrorBox error=failed(what)/> }.into_any());
        if let Some(loaded) = loaded {
            loaded.set(true);
        }
        part
    }))
}

/// The error shown when a part's chunk cannot be loaded.
pub fn failed(what: &str) -> ApiError {
    crate::api::failure(
        format!("The {what} could not be loaded from the dashboard."),
        Some("the dashboard may have stopped or been updated since this page was opened: reload the page"),
    )
}

/// What a split function that can fail gave, or the words for its chunk's failure.
pub fn or_failed<T>(what: &str, given: Result<Result<T, String>, SplitLoaderError>) -> Result<T, String> {
    given.unwrap_or_else(|_| {
        let failed = failed(what);
        Err(format!("{} ({})", failed.error.trim_end_matches('.'), failed.hint.unwrap_or_default()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_that_cannot_be_loaded_says_what_to_do() {
        let error = failed("report");
        assert_eq!(error.error, "The report could not be loaded from the dashboard.");
        assert!(error.hint.unwrap().ends_with("reload the page"));
    }

    #[test]
    fn what_a_split_function_gave_passes_through() {
        assert_eq!(or_failed("report", Ok(Ok("<html>"))), Ok("<html>"));
        assert_eq!(or_failed::<&str>("report", Ok(Err("no points".into()))), Err("no points".into()));
    }
}
