//! A real local HTTP service (axum on `127.0.0.1:0`) for agents to expose.
//! It records what it received, byte for byte, so tests can compare.
//!
//! | path | answer |
//! |---|---|
//! | `/hold…` | never answers (until the client goes away); reports arrival |
//! | `/gate…` | answers like the echo once [`LocalService::open_gates`] is called; reports arrival |
//! | `/gzip` | 200 `content-encoding: gzip` with fixed gzip bytes (never decompressed) |
//! | `/sleep/{ms}` | answers 200 after `ms` milliseconds, body `slept {ms} ms: {path and query}` |
//! | `/redirect` | 302 `Location: /elsewhere?x=1` |
//! | `/cookies` | 200 with three `Set-Cookie` and a repeated `x-multi` |
//! | `/binary` | 200 `application/octet-stream`, the request body back (or 0..=255) |
//! | `/empty` | 200 with a zero-length body |
//! | `/status/{code}` | that status, body `status {code}` |
//! | anything else | 200 JSON echo: method, uri, headers, body (base64) |
//!
//! Every answer carries `x-service: <name>`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderValue, Response, StatusCode, header},
};
use tokio::sync::{Mutex, mpsc};

use crate::error::HarnessError;

/// What the service received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// Path and query exactly as on the request line.
    pub uri: String,
    /// Every header in order, repeats kept.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

impl Seen {
    /// Every value of header `name` (lowercase).
    pub fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

/// A running local service. Dropping it stops it.
pub struct LocalService {
    addr: SocketAddr,
    name: String,
    seen: Mutex<mpsc::UnboundedReceiver<Seen>>,
    held: Mutex<mpsc::UnboundedReceiver<Seen>>,
    gates: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LocalService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalService")
            .field("addr", &self.addr)
            .field("name", &self.name)
            .finish()
    }
}

#[derive(Clone)]
struct State {
    name: Arc<str>,
    seen: mpsc::UnboundedSender<Seen>,
    held: mpsc::UnboundedSender<Seen>,
    gates: tokio::sync::watch::Receiver<bool>,
}

impl LocalService {
    /// Starts on `127.0.0.1:0`; `name` comes back in `x-service`.
    pub async fn start(name: &str) -> Result<LocalService, HarnessError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(HarnessError::io("binding the local service"))?;
        let addr = listener
            .local_addr()
            .map_err(HarnessError::io("local service address"))?;
        let (seen_tx, seen_rx) = mpsc::unbounded_channel();
        let (held_tx, held_rx) = mpsc::unbounded_channel();
        let (gates, gates_rx) = tokio::sync::watch::channel(false);
        let state = State {
            name: name.into(),
            seen: seen_tx,
            held: held_tx,
            gates: gates_rx,
        };
        let app = Router::new().fallback(move |request: Request| {
            let state = state.clone();
            async move { answer(state, request).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(LocalService {
            addr,
            name: name.to_string(),
            seen: Mutex::new(seen_rx),
            held: Mutex::new(held_rx),
            gates,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port, as the agent's target.
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next request the service received (waits at most `timeout`).
    pub async fn next_request(&self, timeout: Duration) -> Option<Seen> {
        let mut seen = self.seen.lock().await;
        tokio::time::timeout(timeout, seen.recv())
            .await
            .ok()
            .flatten()
    }

    /// Lets every request waiting at `/gate…` (and every later one) through.
    pub fn open_gates(&self) {
        let _ = self.gates.send(true);
    }

    /// The next request that reached `/hold…` or `/gate…` and is waiting.
    pub async fn next_held(&self, timeout: Duration) -> Option<Seen> {
        let mut held = self.held.lock().await;
        tokio::time::timeout(timeout, held.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for LocalService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `hello\n`, gzip-compressed.
pub const GZIP_HELLO: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xe7,
    0x02, 0x00, 0x20, 0x30, 0x3a, 0x36, 0x06, 0x00, 0x00, 0x00,
];

async fn answer(state: State, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| parts.uri.to_string());
    let seen = Seen {
        method: parts.method.to_string(),
        uri: uri.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect(),
        body: body.clone(),
    };
    let _ = state.seen.send(seen.clone());
    let path = parts.uri.path();

    if path.starts_with("/gate") {
        let _ = state.held.send(seen.clone());
        let mut gates = state.gates.clone();
        let _ = gates.wait_for(|open| *open).await;
    }

    let mut response = if path.starts_with("/hold") {
        let _ = state.held.send(seen);
        // Until the agent gives up on us (the connection closes).
        std::future::pending::<()>().await;
        unreachable!()
    } else if let Some(ms) = path.strip_prefix("/sleep/") {
        let ms = ms.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Response::new(Body::from(format!("slept {ms} ms: {uri}")))
    } else if path == "/redirect" {
        let mut response = Response::new(Body::from("moved"));
        *response.status_mut() = StatusCode::FOUND;
        response
            .headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/elsewhere?x=1"));
        response
    } else if path == "/cookies" {
        let mut response = Response::new(Body::from("cookies"));
        let headers = response.headers_mut();
        for cookie in [
            "a=1; Path=/",
            "b=2; HttpOnly",
            "c=3; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
        ] {
            headers.append(header::SET_COOKIE, HeaderValue::from_static(cookie));
        }
        headers.append("x-multi", HeaderValue::from_static("one"));
        headers.append("x-multi", HeaderValue::from_static("two"));
        response
    } else if path == "/binary" {
        let bytes = if body.is_empty() {
            Bytes::from((0..=255u8).collect::<Vec<u8>>())
        } else {
            body
        };
        let mut response = Response::new(Body::from(bytes));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        response
    } else if path == "/empty" {
        // A 200 with a zero-length body (not a 204: the body must be absent
        // by content, not by status).
        Response::new(Body::empty())
    } else if path == "/gzip" {
        let mut response = Response::new(Body::from(Bytes::from_static(GZIP_HELLO)));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
    } else if let Some(code) = path.strip_prefix("/status/") {
        let status = code
            .parse()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = Response::new(Body::from(format!("status {}", status.as_u16())));
        *response.status_mut() = status;
        response
    } else {
        let headers: Vec<_> = seen
            .headers
            .iter()
            .map(|(n, v)| serde_json::json!([n, String::from_utf8_lossy(v)]))
            .collect();
        let echo = serde_json::json!({
            "service": &*state.name,
            "method": seen.method,
            "uri": seen.uri,
            "headers": headers,
            "body_base64": protocol::encode_body(&seen.body),
        });
        let mut response = Response::new(Body::from(echo.to_string()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    if let Ok(name) = HeaderValue::from_str(&state.name) {
        response.headers_mut().insert("x-service", name);
    }
    response
}
