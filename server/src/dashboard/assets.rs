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
    /// The same bytes, compressed with Brotli at build time.
    pub brotli: &'static [u8],
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
    let accepted = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut response = match encoding(asset, accepted) {
        Some((coding, bytes)) => {
            let mut response = bytes.into_response();
            response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
            response
        }
        None => asset.body.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(asset.path)));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // Trunk puts a content hash in every file name but the page's own.
    let cache = if asset.path.ends_with(".html") { "no-cache" } else { "public, max-age=31536000, immutable" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// The smallest of the asset's compressed copies that the `Accept-Encoding` header takes, with
/// its coding's name; `None` where the plain bytes are as small or no coding is taken.
fn encoding(asset: &Asset, accepted: &str) -> Option<(&'static str, &'static [u8])> {
    [("br", asset.brotli), ("gzip", asset.gzip)]
        .into_iter()
        .filter(|(coding, bytes)| bytes.len() < asset.body.len() && accepts(accepted, coding))
        .min_by_key(|(_, bytes)| bytes.len())
}

/// Whether an `Accept-Encoding` header takes `coding`: named, or through `*`, with a weight
/// above zero (`gzip;q=0` refuses gzip).
fn accepts(header: &str, coding: &str) -> bool {
    let weight_of = |name: &str| {
        header.split(',').find_map(|item| {
            let mut parts = item.split(';');
            let named = parts.next()?.trim();
            named.eq_ignore_ascii_case(name).then(|| {
                parts
                    .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                    .find_map(|q| q.trim().parse::<f64>().ok())
                    .unwrap_or(1.0)
            })
        })
    };
    weight_of(coding).or_else(|| weight_of("*")).is_some_and(|q| q > 0.0)
}

fn not_built() -> Response {
    let page = "<!DOCTYPE html><title>tokenscope</title><h1>tokenscope</h1>\
        <p>This binary was built without the dashboard's page: <code>dist/</code> did not exist when it was \
        compiled. Run <code>scripts/dashboard.sh</code>, which builds the page with Trunk and then this \
        binary. The JSON API under <code>/api</code> works without it.</p>";
    (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coding_is_taken_when_named_or_starred_with_a_weight_above_zero() {
        assert!(accepts("gzip, deflate, br, zstd", "br"));
        assert!(accepts("gzip, deflate, br, zstd", "gzip"));
        assert!(accepts("GZIP", "gzip"));
        assert!(accepts("gzip;q=0.5, br;q=1.0", "br"));
        assert!(!accepts("gzip", "br"));
        assert!(!accepts("br;q=0, gzip", "br"));
        assert!(!accepts("br; q=0.000", "br"));
        assert!(!accepts("", "gzip"));
        assert!(!accepts("identity", "gzip"));
        assert!(accepts("*", "br"));
        assert!(!accepts("*;q=0", "gzip"));
        assert!(!accepts("gzip;q=0, *", "gzip"), "a coding named with no weight is refused whatever * says");
        assert!(!accepts("gzipx", "gzip"));
    }

    #[test]
    fn the_smallest_copy_the_browser_takes_is_served() {
        static ASSET: Asset = Asset { path: "/a.wasm", body: &[0; 10], gzip: &[0; 6], brotli: &[0; 4] };
        assert_eq!(encoding(&ASSET, "gzip, br").map(|(c, b)| (c, b.len())), Some(("br", 4)));
        assert_eq!(encoding(&ASSET, "gzip").map(|(c, b)| (c, b.len())), Some(("gzip", 6)));
        assert_eq!(encoding(&ASSET, "identity"), None);
        static TINY: Asset = Asset { path: "/a.txt", body: &[0; 3], gzip: &[0; 6], brotli: &[0; 4] };
        assert_eq!(encoding(&TINY, "gzip, br"), None, "a copy no smaller than the file is not served");
    }
}
