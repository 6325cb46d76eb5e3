//! The sweep form's tokenizer: none (prompt lengths in words of synthetic text), one the
//! dashboard keeps, a `tokenizer.json` uploaded here and then chosen, or a path on the
//! proxy's machine in a folder the dashboard allows.

use leptos::html::Input;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::SweepSpec;
use shared::api::{ApiError, KeptTokenizer, Tokenizers};

use crate::api;
use crate::components::{ErrorBox, can_operate};

/// What the list shows for no tokenizer.
pub const NONE_LABEL: &str = "none (approximate tokens: words of synthetic text)";

/// A kept tokenizer as the list shows it.
pub fn label(tokenizer: &KeptTokenizer) -> String {
    let specials = match tokenizer.specials {
        1 => "1 special token".to_string(),
        n => format!("{n} special tokens"),
    };
    format!("{} ({specials}, {})", tokenizer.name, size(tokenizer.bytes))
}

/// A file's size in kB or MB.
fn size(bytes: u64) -> String {
    if bytes >= 1_000_000 { format!("{:.1} MB", bytes as f64 / 1e6) } else { format!("{} kB", bytes.div_ceil(1000)) }
}

/// The name an upload gets until one is typed: the file's, without `.json`, unless that is
/// only `tokenizer`, which names no model.
pub fn default_name(file_name: &str) -> String {
    let stem = file_name.strip_suffix(".json").unwrap_or(file_name);
    if stem == "tokenizer" { String::new() } else { stem.to_string() }
}

/// What prompt lengths count with the tokenizer at `path` (empty for none).
pub fn length_unit(path: &str) -> String {
    let spec = SweepSpec { tokenizer: Some(path.trim().to_string()).filter(|p| !p.is_empty()), ..SweepSpec::default() };
    match spec.tokenizer_name() {
        Some(name) => format!("tokens, tokenizer {name}"),
        None => "approx. tokens".into(),
    }
}

/// The tokenizer control of the sweep form.
#[component]
pub fn TokenizerPicker(
    /// The chosen tokenizer's path on the proxy's machine; empty for none.
    #[prop(into)]
    chosen: Signal<String>,
    /// Called with the path chosen, or an empty one for none.
    on_choose: Callback<String>,
) -> impl IntoView {
    let listed = RwSignal::new(None::<Result<Tokenizers, ApiError>>);
    let failure = RwSignal::new(None::<ApiError>);
    let uploading = RwSignal::new(false);
    let name = RwSignal::new(String::new());
    let file_input = NodeRef::<Input>::new();
    let operator = can_operate();
    let refresh = move || spawn_local(async move { listed.set(Some(api::get_json("/api/tokenizers").await)) });
    refresh();

    let kept = move || listed.with(|l| l.as_ref().and_then(|l| l.as_ref().ok()).map(|l| l.kept.clone()));
    let folders = move || listed.with(|l| l.as_ref().and_then(|l| l.as_ref().ok()).map(|l| l.folders.join(", ")));
    let picked = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let file = input.files().and_then(|files| files.get(0));
        if let Some(file) = file.filter(|_| name.with_untracked(String::is_empty)) {
            name.set(default_name(&file.name()));
        }
    };
    let upload = move |_| {
        let file = file_input.get_untracked().and_then(|input| input.files()).and_then(|files| files.get(0));
        let Some(file) = file else {
            let hint = "pick the file first: a model's tokenizer.json, as Hugging Face publishes it";
            failure.set(Some(api::failure("no tokenizer.json is picked", Some(hint))));
            return;
        };
        let url = format!("/api/tokenizers?name={}", api::encode(name.get_untracked().trim()));
        uploading.set(true);
        failure.set(None);
        spawn_local(async move {
            match api::post_file::<KeptTokenizer>(&url, &file).await {
                Ok(kept) => {
                    on_choose.run(kept.path);
                    refresh();
                }
                Err(err) => failure.set(Some(err)),
            }
            uploading.set(false);
        });
    };

    view! {
        <div class="tokenizer">
            <label class="wide" title="With a tokenizer, prompts are natural text of exactly each length in its tokens, special tokens included">
                "Tokenizer"
                <select id="tokenizer" on:change=move |ev| on_choose.run(event_target_value(&ev))>
                    <option value="" selected=move || chosen.with(String::is_empty)>{NONE_LABEL}</option>
                    {move || kept().unwrap_or_default().into_iter().map(|t| {
                        let path = t.path.clone();
                        view! {
                            <option value=t.path.clone() selected=move || chosen.with(|c| *c == path)>{label(&t)}</option>
                        }
                    }).collect_view()}
                    // A path from a link or typed below, which the list does not hold.
                    {move || {
                        let path = chosen.get();
                        let listed = kept().unwrap_or_default().iter().any(|t| t.path == path);
                        (!path.is_empty() && !listed).then(|| view! {
                            <option value=path.clone() selected=true>{format!("path: {path}")}</option>
                        })
                    }}
                </select>
            </label>
            <Show when=move || operator.get()>
                <label title="A Hugging Face tokenizer.json: the dashboard keeps it in its data folder for every later sweep">
                    "Upload a tokenizer.json"
                    <input type="file" id="tokenizer-file" accept=".json,application/json" node_ref=file_input on:change=picked/>
                </label>
                <label title="What charts call the tokenizer: letters, digits, dots, dashes and underscores">
                    "Its name"
                    <input type="text" id="tokenizer-name" spellcheck="false" placeholder="llama-3-8b"
                        prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                </label>
                <button type="button" id="tokenizer-upload" disabled=move || uploading.get() on:click=upload>
                    {move || if uploading.get() { "Uploading…" } else { "Upload" }}
                </button>
            </Show>
            {move || folders().filter(|f| !f.is_empty()).map(|folders| view! {
                <label class="wide">
                    {format!("Or a tokenizer.json, or a folder holding one, on the proxy's machine in {folders}")}
                    <input type="text" id="tokenizer-path" spellcheck="false" prop:value=move || chosen.get()
                        on:change=move |ev| on_choose.run(event_target_value(&ev).trim().to_string())/>
                </label>
            })}
            {move || listed.get().and_then(Result::err).map(|err| view! { <ErrorBox error=err/> })}
            {move || failure.get().map(|err| view! { <ErrorBox error=err/> })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizers_are_named_and_counted_as_the_form_shows_them() {
        let kept = KeptTokenizer {
            name: "bpe".into(),
            path: "/d/tokenizers/bpe/tokenizer.json".into(),
            bytes: 61_440,
            specials: 1,
        };
        assert_eq!(label(&kept), "bpe (1 special token, 62 kB)");
        let big = KeptTokenizer { bytes: 9_085_657, specials: 2, ..kept.clone() };
        assert_eq!(label(&big), "bpe (2 special tokens, 9.1 MB)");
        assert_eq!(default_name("llama-3.json"), "llama-3");
        assert_eq!(default_name("tokenizer.json"), "");
        assert_eq!(length_unit(""), "approx. tokens");
        assert_eq!(length_unit(&kept.path), "tokens, tokenizer bpe");
    }
}
