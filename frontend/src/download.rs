//! Saving what the page made (a chart's PNG or SVG, a report) as a file: the content as a
//! Blob URL (a PNG as the canvas's data URL), clicked through an `<a download=NAME>`.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Blob, BlobPropertyBag, HtmlAnchorElement, HtmlCanvasElement, Url};

fn js_error(err: JsValue) -> String {
    format!("the file could not be saved: {}", err.as_string().unwrap_or_else(|| format!("{err:?}")))
}

/// Saves the resource at `url` as `name`.
fn save_url(name: &str, url: &str) -> Result<(), String> {
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let anchor: HtmlAnchorElement = document.create_element("a").map_err(js_error)?.unchecked_into();
    anchor.set_href(url);
    anchor.set_download(name);
    anchor.set_attribute("hidden", "").map_err(js_error)?;
    let body = document.body().ok_or("no body")?;
    body.append_child(&anchor).map_err(js_error)?;
    anchor.click();
    anchor.remove();
    Ok(())
}

/// Saves `text` as `name`, of type `mime`.
pub fn save_text(name: &str, mime: &str, text: &str) -> Result<(), String> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = BlobPropertyBag::new();
    options.set_type(mime);
    let blob = Blob::new_with_str_sequence_and_options(&parts, &options).map_err(js_error)?;
    let url = Url::create_object_url_with_blob(&blob).map_err(js_error)?;
    let saved = save_url(name, &url);
    // The download has started from the click; the URL is let go a moment later.
    let revoke = Closure::once_into_js(move || {
        let _ = Url::revoke_object_url(&url);
    });
    if let Some(window) = web_sys::window() {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(revoke.unchecked_ref(), 10_000);
    }
    saved
}

/// Saves what a canvas shows as a PNG named `name`.
pub fn save_png(name: &str, canvas: &HtmlCanvasElement) -> Result<(), String> {
    let url = canvas.to_data_url_with_type("image/png").map_err(js_error)?;
    save_url(name, &url)
}
