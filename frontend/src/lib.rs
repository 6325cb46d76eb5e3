//! tokenscope's browser UI: the root component and the modules it is built from.
//!
//! `main.rs` only mounts [`App`]; pages live in [`pages`], reusable pieces in
//! [`components`], chart geometry and drawing in [`chart`]. Everything also compiles
//! natively so that pure functions are unit-tested with plain `cargo test -p frontend`.

pub mod api;
pub mod chart;
pub mod compare;
pub mod components;
pub mod download;
pub mod json;
pub mod lazy;
pub mod nav;
pub mod pages;
pub mod report;
pub mod view;

use leptos::prelude::*;
use leptos::wasm_split::wasm_split;

use components::charts::Resized;

/// The drawing benchmark, from its own chunk.
#[wasm_split(bench, wasm_split_path = ::leptos::wasm_split, fallible)]
fn bench_page() -> lazy::Part {
    Ok(view! { <pages::bench::BenchPage/> }.into_any())
}

/// The application: the dashboard, or the drawing benchmark at `/bench`.
#[component]
pub fn App() -> impl IntoView {
    let resized = RwSignal::new(0u32);
    provide_context(Resized(resized));
    let _ = window_event_listener(leptos::ev::resize, move |_| resized.update(|n| *n += 1));
    let path = web_sys::window().and_then(|w| w.location().pathname().ok()).unwrap_or_default();
    if path == "/bench" {
        lazy::shown("benchmark", bench_page()).into_any()
    } else {
        view! { <pages::home::HomePage/> }.into_any()
    }
}
