//! The browser app, embedded at build time from Trunk's `dist/` (see `build.rs`).

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

/// One file of the built app.
pub struct Asset {
    /// The URL path, such as `/index.html`.
    pub path: &'static str,
    pub body: &'static [u8],
    /// The same bytes, gzipped at build time.
    pub gzip: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

pub fn has_frontend() -> bool {
    find("/index.html").is_some()
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// Serves a file of the app; any path without a file extension gets the app's page, which
/// routes in the browser (so `/runs/ID` links open the run).
pub async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let last = path.rsplit('/').next().unwrap_or_default();
    let asset = match find(path) {
        Some(asset) => asset,
        None if !last.contains('.') => match find("/index.html") {
            Some(index) => index,
            None => return not_built(),
        },
        None => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    let gzip_ok = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut response = if gzip_ok && asset.gzip.len() < asset.body.len() {
        let mut response = asset.gzip.into_response();
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        asset.body.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(asset.path)));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // Trunk puts a content hash in every file name but the page's own.
    let cache = if asset.path.ends_with(".html") { "no-cache" } else { "public, max-age=31536000, immutable" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

fn not_built() -> Response {
    let page = "<!DOCTYPE html><title>tokenscope</title><h1>tokenscope</h1>\
        <p>This binary was built without the dashboard's page: <code>dist/</code> did not exist when it was \
        compiled. Run <code>scripts/dashboard.sh</code>, which builds the page with Trunk and then this \
        binary. The JSON API under <code>/api</code> works without it.</p>";
    (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response()
}
