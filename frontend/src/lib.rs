//! tokenscope's browser UI: the root component and the modules it is built from.
//!
//! `main.rs` only mounts [`App`]; pages live in [`pages`], reusable pieces in
//! [`components`]. Everything here also compiles natively so that pure functions
//! (formatting, later chart geometry) are unit-tested with plain `cargo test -p frontend`.

pub mod components;
pub mod pages;

use leptos::prelude::*;

/// The whole application: for now a single page.
#[component]
pub fn App() -> impl IntoView {
    leptos::logging::log!("tokenscope frontend started");
    view! { <pages::home::HomePage/> }
}
