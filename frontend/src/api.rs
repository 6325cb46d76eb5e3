//! Calls to the dashboard's JSON API and its events WebSocket.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::RunEvent;
use shared::api::{ApiError, ErrorCode};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{CloseEvent, MessageEvent, Request, RequestInit, Response, WebSocket};

/// A failed call, ready to show: what went wrong and what to do.
pub fn failure(error: impl Into<String>, hint: Option<&str>) -> ApiError {
    ApiError::new(ErrorCode::Other, error, hint)
}

fn js_text(value: &JsValue) -> String {
    value.as_string().or_else(|| js_sys::JSON::stringify(value).ok().and_then(|s| s.as_string())).unwrap_or_default()
}

async fn call(method: &str, url: &str, body: Option<String>) -> Result<String, ApiError> {
    send(method, url, body.map(|text| JsValue::from_str(&text))).await
}

/// Sends a request whose body, if any, is JSON: text, or a file's bytes as they are.
async fn send(method: &str, url: &str, body: Option<JsValue>) -> Result<String, ApiError> {
    let unreachable = |err: JsValue| {
        failure(
            format!("the dashboard server did not answer: {}", js_text(&err)),
            Some("is `tokenscope serve` still running? Start it again and reload the page"),
        )
    };
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(body) = &body {
        init.set_body(body);
    }
    let request = Request::new_with_str_and_init(url, &init).map_err(unreachable)?;
    if body.is_some() {
        request.headers().set("content-type", "application/json").map_err(unreachable)?;
    }
    let window = web_sys::window().ok_or_else(|| failure("no browser window", None))?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(unreachable)?
        .dyn_into()
        .map_err(unreachable)?;
    let text = JsFuture::from(response.text().map_err(unreachable)?).await.map_err(unreachable)?;
    let text = text.as_string().unwrap_or_default();
    if response.ok() {
        Ok(text)
    } else if response.status() == 401 {
        // No sign-in, or one that no longer counts: the sign-in page comes back here.
        crate::nav::sign_in();
        Err(failure("this dashboard needs a sign-in", Some("the sign-in page is opening")))
    } else {
        let status = response.status();
        let body = crate::json::from_json::<ApiError>(&text).unwrap_or_else(|_| {
            let error = format!("the dashboard server answered {status}: {text}");
            ApiError::new(ErrorCode::of_status(status), error, None)
        });
        Err(ApiError { status: Some(status), ..body })
    }
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    crate::json::from_json(text).map_err(|err| {
        failure(format!("the dashboard server's answer could not be read: {err}"), Some("reload the page"))
    })
}

pub async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, ApiError> {
    parse(&call("GET", url, None).await?)
}

pub async fn post_json<T: DeserializeOwned>(url: &str, body: &impl Serialize) -> Result<T, ApiError> {
    let body = serde_json::to_string(body).map_err(|err| failure(err.to_string(), None))?;
    parse(&call("POST", url, Some(body)).await?)
}

pub async fn patch_json<T: DeserializeOwned>(url: &str, body: &impl Serialize) -> Result<T, ApiError> {
    let body = serde_json::to_string(body).map_err(|err| failure(err.to_string(), None))?;
    parse(&call("PATCH", url, Some(body)).await?)
}

/// `DELETE`: the answer's body, if any, is not read.
pub async fn delete(url: &str) -> Result<(), ApiError> {
    call("DELETE", url, None).await.map(drop)
}

/// Posts a body that is already JSON text, such as a file the user picked.
pub async fn post_text<T: DeserializeOwned>(url: &str, body: String) -> Result<T, ApiError> {
    parse(&call("POST", url, Some(body)).await?)
}

/// Posts a file the user picked as the body, its bytes as they are (a JSON file).
pub async fn post_file<T: DeserializeOwned>(url: &str, file: &web_sys::File) -> Result<T, ApiError> {
    parse(&send("POST", url, Some(JsValue::from(file.clone()))).await?)
}

/// The text of a file the user picked.
pub async fn file_text(file: &web_sys::File) -> Result<String, ApiError> {
    let text = JsFuture::from(file.text())
        .await
        .map_err(|err| failure(format!("{} could not be read: {}", file.name(), js_text(&err)), None))?;
    Ok(text.as_string().unwrap_or_default())
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    js_sys::encode_uri_component(value).as_string().unwrap_or_default()
}

/// A JavaScript callback kept alive while its socket may call it.
type Callback = Closure<dyn FnMut(JsValue)>;

/// The state of an events connection, for the page to show.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    Connecting,
    Open,
    /// The run's log was read to its end.
    Complete,
    /// Lost; trying again after a pause.
    Retrying(String),
    /// The server has no such run (it may have restarted); no more tries.
    Gone(ApiError),
}

/// A WebSocket following one run's events. It reconnects after an unexpected close; the
/// server replays the whole log to every new connection, starting with `Started`, which
/// resets the receiver's state. Dropping it closes the socket.
pub struct EventStream {
    inner: Rc<Inner>,
}

struct Inner {
    url: String,
    socket: RefCell<Option<WebSocket>>,
    on_event: Box<dyn Fn(RunEvent)>,
    on_link: Box<dyn Fn(Link)>,
    stopped: Cell<bool>,
    complete: Cell<bool>,
    /// Whether the current socket opened; a socket that never opens may name an unknown run.
    opened: Cell<bool>,
    /// Failed tries in a row, for the pause before the next one.
    failures: Cell<u32>,
    run_id: String,
    closures: RefCell<Vec<Callback>>,
}

impl EventStream {
    pub fn open(run_id: &str, on_event: impl Fn(RunEvent) + 'static, on_link: impl Fn(Link) + 'static) -> Self {
        let location = web_sys::window().expect("a window").location();
        let scheme = if location.protocol().unwrap_or_default() == "https:" { "wss" } else { "ws" };
        let host = location.host().unwrap_or_default();
        let url = format!("{scheme}://{host}/api/runs/{}/events", encode(run_id));
        let inner = Rc::new(Inner {
            url,
            socket: RefCell::new(None),
            on_event: Box::new(on_event),
            on_link: Box::new(on_link),
            stopped: Cell::new(false),
            complete: Cell::new(false),
            opened: Cell::new(false),
            failures: Cell::new(0),
            run_id: run_id.to_string(),
            closures: RefCell::new(Vec::new()),
        });
        connect(&inner);
        Self { inner }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.inner.stopped.set(true);
        if let Some(socket) = self.inner.socket.borrow_mut().take() {
            // The callbacks are freed with this stream: the socket must not call them after.
            socket.set_onopen(None);
            socket.set_onmessage(None);
            socket.set_onclose(None);
            let _ = socket.close();
        }
    }
}

fn connect(inner: &Rc<Inner>) {
    if inner.stopped.get() {
        return;
    }
    (inner.on_link)(Link::Connecting);
    inner.opened.set(false);
    let socket = match WebSocket::new(&inner.url) {
        Ok(socket) => socket,
        Err(err) => return retry(inner, js_text(&err)),
    };
    let weak = Rc::downgrade(inner);
    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        if let Some(inner) = weak.upgrade() {
            inner.opened.set(true);
            inner.failures.set(0);
            (inner.on_link)(Link::Open);
        }
    });
    let weak = Rc::downgrade(inner);
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let Some(inner) = weak.upgrade() else { return };
        let Some(text) = event.dyn_ref::<MessageEvent>().and_then(|m| m.data().as_string()) else { return };
        match crate::json::from_json::<RunEvent>(&text) {
            Ok(event) => {
                if matches!(event, RunEvent::Finished { .. }) {
                    inner.complete.set(true);
                }
                (inner.on_event)(event);
            }
            Err(err) => leptos::logging::warn!("an event could not be read ({err}): {text}"),
        }
    });
    let weak = Rc::downgrade(inner);
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let Some(inner) = weak.upgrade() else { return };
        if inner.complete.get() {
            (inner.on_link)(Link::Complete);
        } else if !inner.stopped.get() {
            let code = event.dyn_ref::<CloseEvent>().map_or(0, CloseEvent::code);
            let why = format!("the connection closed (code {code})");
            if inner.opened.get() {
                retry(&inner, why);
            } else {
                // Refused before opening: ask whether the run exists at all.
                let inner = inner.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let url = format!("/api/runs/{}", encode(&inner.run_id));
                    match get_json::<shared::api::RunSummary>(&url).await {
                        Err(err) if err.code == ErrorCode::NoRun => {
                            inner.stopped.set(true);
                            (inner.on_link)(Link::Gone(err));
                        }
                        _ => retry(&inner, why),
                    }
                });
            }
        }
    });
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    *inner.closures.borrow_mut() = vec![on_open, on_message, on_close];
    *inner.socket.borrow_mut() = Some(socket);
}

fn retry(inner: &Rc<Inner>, why: String) {
    (inner.on_link)(Link::Retrying(why));
    // 1, 2, 4, 8, then every 10 seconds.
    let failures = inner.failures.get();
    inner.failures.set(failures + 1);
    let pause = std::time::Duration::from_secs((1u64 << failures.min(4)).min(10));
    let weak = Rc::downgrade(inner);
    leptos::prelude::set_timeout(
        move || {
            if let Some(inner) = weak.upgrade() {
                connect(&inner);
            }
        },
        pause,
    );
}
