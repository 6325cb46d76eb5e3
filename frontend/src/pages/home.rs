//! The landing page: what tokenscope is and what its numbers mean.

use leptos::prelude::*;

use crate::components::glossary::Glossary;

/// The page shown at `/`: a header, then the metric glossary.
#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <header class="page-header">
            <h1>"tokenscope"</h1>
            <p class="tagline">
                "Measures the latency of LLM inference on Triton: time to first token, \
                 token-to-token latency and throughput, per prompt length."
            </p>
        </header>
        <main>
            <Glossary/>
        </main>
    }
}
