//! The address bar and the clipboard: which page a path names, reading and rewriting the
//! URL without a reload, and copying a link.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// The page a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/`: the form and the runs list.
    Home,
    /// `/new`: the form, filled from `?spec=` when there is one.
    New,
    /// `/runs`: the runs list.
    Runs,
    /// `/runs/ID`: one run.
    Run(String),
    /// `/compare?runs=ID1,ID2`: runs side by side.
    Compare,
}

impl Route {
    pub fn of(path: &str) -> Route {
        let path = path.trim_end_matches('/');
        match path {
            "" => Route::Home,
            "/new" => Route::New,
            "/runs" => Route::Runs,
            "/compare" => Route::Compare,
            _ => path
                .strip_prefix("/runs/")
                .filter(|id| !id.is_empty() && !id.contains('/'))
                .map_or(Route::Home, |id| Route::Run(id.to_string())),
        }
    }

    pub fn path(&self) -> String {
        match self {
            Route::Home => "/".into(),
            Route::New => "/new".into(),
            Route::Runs => "/runs".into(),
            Route::Run(id) => format!("/runs/{id}"),
            Route::Compare => "/compare".into(),
        }
    }
}

fn location() -> Option<web_sys::Location> {
    web_sys::window().map(|w| w.location())
}

pub fn current_path() -> String {
    location().and_then(|l| l.pathname().ok()).unwrap_or_default()
}

/// The query string with its `?`, or empty.
pub fn current_query() -> String {
    location().and_then(|l| l.search().ok()).unwrap_or_default()
}

/// `http://host:port`.
pub fn origin() -> String {
    location().and_then(|l| l.origin().ok()).unwrap_or_default()
}

/// Opens the sign-in page, which comes back to this page once signed in.
pub fn sign_in() {
    let here = format!("{}{}", current_path(), current_query());
    let next = js_sys::encode_uri_component(&here).as_string().unwrap_or_default();
    if let Some(location) = location() {
        let _ = location.assign(&format!("/signin?next={next}"));
    }
}

/// Puts `url` (a path and query) in the address bar: as a new history entry, or in place of
/// the current one. The page does not reload.
pub fn set_url(url: &str, new_entry: bool) {
    let Some(history) = web_sys::window().and_then(|w| w.history().ok()) else { return };
    let result = if new_entry {
        history.push_state_with_url(&JsValue::NULL, "", Some(url))
    } else {
        history.replace_state_with_url(&JsValue::NULL, "", Some(url))
    };
    if let Err(err) = result {
        leptos::logging::warn!("the address could not be set to {url}: {err:?}");
    }
}

/// Copies `text` with the asynchronous clipboard API. `false` when the browser has none
/// (it is offered only to secure origins: https or this machine) or refuses.
pub async fn copy_text(text: &str) -> bool {
    let Some(window) = web_sys::window() else { return false };
    let get = |target: &JsValue, key: &str| js_sys::Reflect::get(target, &JsValue::from_str(key)).ok();
    let Some(clipboard) = get(&window, "navigator").and_then(|n| get(&n, "clipboard")).filter(|c| c.is_object()) else {
        return false;
    };
    let Some(write) = get(&clipboard, "writeText").and_then(|f| f.dyn_into::<js_sys::Function>().ok()) else {
        return false;
    };
    let Ok(promise) = write.call1(&clipboard, &JsValue::from_str(text)) else { return false };
    match promise.dyn_into::<js_sys::Promise>() {
        Ok(promise) => JsFuture::from(promise).await.is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_pages() {
        assert_eq!(Route::of("/"), Route::Home);
        assert_eq!(Route::of(""), Route::Home);
        assert_eq!(Route::of("/new"), Route::New);
        assert_eq!(Route::of("/runs/"), Route::Runs);
        assert_eq!(Route::of("/runs/20261128-1"), Route::Run("20261128-1".into()));
        assert_eq!(Route::of("/runs/x/"), Route::Run("x".into()));
        assert_eq!(Route::of("/elsewhere"), Route::Home);
        assert_eq!(Route::of("/compare"), Route::Compare);
        for route in [Route::Home, Route::New, Route::Runs, Route::Run("a-1".into()), Route::Compare] {
            assert_eq!(Route::of(&route.path()), route);
        }
    }
}
