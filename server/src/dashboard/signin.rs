//! The sign-in page: a form that takes a token, sets the sign-in cookie and returns to the
//! page the visitor came from; and signing out.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::access::sign_out_cookie;

#[derive(Debug, Default, Deserialize)]
pub struct Next {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
    next: Option<String>,
}

/// Where to go after signing in: a path of this dashboard, never another site.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => path.to_string(),
        _ => "/".into(),
    }
}

/// `GET /signin?next=PATH`.
pub async fn page(State(state): State<AppState>, Query(query): Query<Next>) -> Response {
    let next = local_path(query.next.as_deref());
    if !state.access().signs_in() {
        return Html(document(
            "<p>This dashboard has no sign-in: everyone who can reach it may use it.</p>\
             <p><a href=\"/\">Open the dashboard</a></p>",
        ))
        .into_response();
    }
    Html(form(&next, None)).into_response()
}

/// `POST /signin` (a form with `token` and `next`): sets the cookie and returns to `next`.
pub async fn sign_in(State(state): State<AppState>, Form(form_data): Form<SignIn>) -> Response {
    let next = local_path(form_data.next.as_deref());
    match state.access().sign_in(&form_data.token) {
        Some((role, cookie)) => {
            tracing::info!(role = role.name(), "a browser signed in");
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        None => {
            tracing::warn!("a sign-in with a wrong token was refused");
            let page = form(&next, Some("That token was refused. Ask the dashboard's operator for the right one."));
            (StatusCode::UNAUTHORIZED, Html(page)).into_response()
        }
    }
}

/// `POST /signout`: forgets the cookie and shows the sign-in page.
pub async fn sign_out() -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/signin")]).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&sign_out_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn form(next: &str, error: Option<&str>) -> String {
    let error = error.map(|e| format!("<p class=\"error\" id=\"signin-error\" role=\"alert\">{}</p>", escape(e)));
    document(&format!(
        "<p>This dashboard needs a token. Viewers open runs, comparisons and exports; operators also start, \
         cancel, change, delete and import runs.</p>\
         {}\
         <form method=\"post\" action=\"/signin\">\
         <label>Token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" \
         required autofocus></label>\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <button type=\"submit\" id=\"signin\">Sign in</button></form>",
        error.unwrap_or_default(),
        escape(next)
    ))
}

fn document(body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\"><title>Sign in · tokenscope</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}\
         label{{display:block;margin:1rem 0}}input{{font:inherit;width:100%;padding:.4rem}}\
         button{{font:inherit;padding:.4rem 1rem}}.error{{color:#b00020}}</style></head>\
         <body><h1>tokenscope</h1>{body}</body></html>"
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_this_dashboard() {
        assert_eq!(local_path(Some("/runs/abc?view=1")), "/runs/abc?view=1");
        for other in ["//evil.example/", "https://evil.example/", "/\\evil.example", "runs"] {
            assert_eq!(local_path(Some(other)), "/", "{other}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn the_form_escapes_what_it_repeats() {
        let page = form("/runs/\"><script>", Some("<b>"));
        assert!(!page.contains("<script>") && !page.contains("<b>"), "{page}");
    }
}
