//! A button that copies a link, or shows it selected for copying by hand where the browser
//! offers no clipboard (a plain-http page on another host).

use leptos::html::Input;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::nav;

#[derive(Debug, Clone, PartialEq)]
enum Copied {
    Not,
    Done,
    /// The clipboard was unavailable: the link to copy by hand.
    ByHand(String),
}

/// A "copy link" button.
#[component]
pub fn CopyLink(
    /// The button's element id; the status and the fallback field get `ID-status` and `ID-field`.
    id: &'static str,
    /// The button's text.
    label: &'static str,
    /// The link as a path and query on this origin; empty disables the button.
    #[prop(into)]
    path: Signal<String>,
) -> impl IntoView {
    let copied = RwSignal::new(Copied::Not);
    let field = NodeRef::<Input>::new();
    // A new link makes the old message stale.
    Effect::new(move |_| {
        path.track();
        copied.set(Copied::Not);
    });
    Effect::new(move |_| {
        if let (Copied::ByHand(_), Some(input)) = (copied.get(), field.get()) {
            let _ = input.focus();
            input.select();
        }
    });
    let copy = move |_| {
        let url = format!("{}{}", nav::origin(), path.get_untracked());
        spawn_local(async move {
            copied.set(if nav::copy_text(&url).await { Copied::Done } else { Copied::ByHand(url) });
        });
    };
    view! {
        <span class="copy-link">
            <button type="button" id=id on:click=copy disabled=move || path.with(String::is_empty)>{label}</button>
            {move || match copied.get() {
                Copied::Not => ().into_any(),
                Copied::Done => view! { <span class="copied" id=format!("{id}-status") role="status">"Link copied"</span> }.into_any(),
                Copied::ByHand(url) => view! {
                    <label class="copy-by-hand">"This browser offers no clipboard here; copy the link: "
                        <input node_ref=field id=format!("{id}-field") type="text" readonly value=url/>
                    </label>
                }.into_any(),
            }}
        </span>
    }
}
