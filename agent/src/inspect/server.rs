//! The inspector's HTTP server: the page (static files embedded in the
//! binary) and the JSON API under `/api/`.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (`assets/`) |
//! | `GET /api/status` | the agent's connection, public URL, target, limits |
//! | `GET /api/requests` | summaries, newest first; `?q= &method= &status= &replay= &limit=` |
//! | `DELETE /api/requests` | forget every capture |
//! | `GET /api/requests/{id}` | one exchange: headers, bodies (base64), timing |
//! | `GET /api/requests/{id}/{request,response}/body` | a body's captured bytes (`?download=1`: as a file) |
//! | `GET /api/requests/{id}/curl` | the request as a curl command |
//! | `POST /api/requests/{id}/replay` | replay it, optionally edited; answers when the local service did |
//! | `GET /api/events` | live changes (server-sent events) |
//! | `GET /api/har` | every capture as a HAR 1.2 file |
//!
//! Guards (the page can replay requests, so other sites must not reach
//! it): only `Host` names that are IP addresses or `localhost` are
//! answered (DNS rebinding); `/api/` refuses requests a browser marks as
//! coming from another site (`Sec-Fetch-Site`); and anything but GET must
//! come from the inspector's own origin when it carries `Origin`.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::view::{self, Detail, Filter};
use super::{Change, Edits, Inspector, ReplayError};

/// The inspector's usual port.
pub const DEFAULT_PORT: u16 = 4040;
/// Ports tried after [`DEFAULT_PORT`] when it is taken (another agent has
/// it), before any free port.
const DEFAULT_PORTS_TRIED: u16 = 20;

/// Where to listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// `127.0.0.1:4040`, else the next free port up to 4059, else any free
    /// port.
    Default,
    /// This address exactly (port 0: any free port).
    Exact(SocketAddr),
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "the inspector cannot listen on {addr} (pass another address with --inspect, port 0 for any free port, or --no-inspect)"
    )]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A listener for `bind`.
pub async fn bind(bind: &Bind) -> Result<TcpListener, BindError> {
    let listen = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| BindError::Listen { addr, source })
    };
    match *bind {
        Bind::Exact(addr) => listen(addr).await,
        Bind::Default => {
            let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
            for port in DEFAULT_PORT..DEFAULT_PORT + DEFAULT_PORTS_TRIED {
                match listen(SocketAddr::new(loopback, port)).await {
                    Ok(listener) => return Ok(listener),
                    Err(BindError::Listen { source, .. })
                        if source.kind() == std::io::ErrorKind::AddrInUse => {}
                    Err(e) => return Err(e),
                }
            }
            listen(SocketAddr::new(loopback, 0)).await
        }
    }
}

/// The running server. Dropping it stops it (live pages are disconnected,
/// requests in progress finish).
#[derive(Debug)]
pub struct InspectServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl InspectServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:4040`: where to open the page (a wildcard address
    /// shows as loopback).
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// Whether only this machine can reach it.
    pub fn is_loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }

    /// Stops and waits until the server is done.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for InspectServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

#[derive(Clone)]
struct App {
    inspector: Inspector,
    shutdown: watch::Receiver<bool>,
}

impl Inspector {
    /// Serves the page and the API on `listener` until the returned handle
    /// is dropped.
    pub fn serve(&self, listener: TcpListener) -> InspectServer {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let app = router(App {
            inspector: self.clone(),
            shutdown: shutdown_rx.clone(),
        });
        let mut stop = shutdown_rx;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "the inspector stopped serving");
            }
        });
        InspectServer {
            addr,
            shutdown,
            task: Some(task),
        }
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset(FAVICON, "image/svg+xml") }),
        )
        .route("/api/status", get(status))
        .route("/api/requests", get(list).delete(clear))
        .route("/api/requests/{id}", get(detail))
        .route("/api/requests/{id}/curl", get(curl))
        .route("/api/requests/{id}/replay", post(replay))
        .route("/api/requests/{id}/{part}/body", get(body))
        .route("/api/events", get(events))
        .route("/api/har", get(har))
        .fallback(|| async { ApiError::NoRoute })
        .layer(middleware::from_fn(guard))
        .with_state(app)
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON: &str = include_str!("assets/favicon.svg");

/// The page may load only its own files; captured bodies are never
/// rendered as HTML (images come in as `blob:` URLs).
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(text: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        text,
    )
        .into_response()
}

/// Refuses what another site could send through a visitor's browser.
async fn guard(request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Some(host) = headers.get(header::HOST)
        && !host_allowed(host.as_bytes())
    {
        return ApiError::Forbidden(
            "the inspector answers only to an IP address or localhost in the Host header (DNS rebinding protection)",
        )
        .into_response();
    }
    let api = request.uri().path().starts_with("/api/");
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if api && matches!(fetch_site, "cross-site" | "same-site") {
        return ApiError::Forbidden("the inspector's API does not answer other sites' pages")
            .into_response();
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD)
        && let Some(origin) = headers.get(header::ORIGIN)
        && !same_origin(origin.as_bytes(), headers.get(header::HOST))
    {
        return ApiError::Forbidden("cross-origin requests may not change the inspector")
            .into_response();
    }
    next.run(request).await
}

/// An IP literal, `localhost` or `*.localhost`, with or without a port.
fn host_allowed(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let name = name.to_ascii_lowercase();
    name.parse::<Ipv4Addr>().is_ok() || name == "localhost" || name.ends_with(".localhost")
}

/// `Origin: http://host:port` names the same host and port as `Host`.
fn same_origin(origin: &[u8], host: Option<&HeaderValue>) -> bool {
    let Some(host) = host else { return false };
    let origin = String::from_utf8_lossy(origin);
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    rest.eq_ignore_ascii_case(&String::from_utf8_lossy(host.as_bytes()))
}

#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error(
        "no captured request {0} (it was never captured, or dropped to stay within the inspector's limits)"
    )]
    NotFound(u64),
    #[error("{0:?} is not a request id (a number)")]
    BadId(String),
    #[error("{0:?} is neither `request` nor `response`")]
    BadPart(String),
    #[error("the replay's edits are not valid JSON: {0}")]
    BadJson(#[source] serde_json::Error),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("no such inspector route")]
    NoRoute,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::BadId(_) | ApiError::BadPart(_) | ApiError::BadJson(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Replay(e) => match e {
                ReplayError::NotFound(_) => StatusCode::NOT_FOUND,
                ReplayError::Truncated { .. } | ReplayError::Refused(_) => StatusCode::CONFLICT,
                ReplayError::Invalid(_) => StatusCode::BAD_REQUEST,
                ReplayError::AgentStopped | ReplayError::Busy { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ReplayError::Crashed => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        (self.status(), no_store(), axum::Json(body)).into_response()
    }
}

fn no_store() -> [(header::HeaderName, &'static str); 1] {
    [(header::CACHE_CONTROL, "no-store")]
}

fn json<T: serde::Serialize>(value: T) -> Response {
    (no_store(), axum::Json(value)).into_response()
}

fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.parse().map_err(|_| ApiError::BadId(id.to_owned()))
}

/// Where curl commands and HAR URLs point: the public URL once known.
fn base_url(inspector: &Inspector) -> String {
    let status = inspector.status();
    status
        .public_url
        .or(status.target)
        .unwrap_or_else(|| "http://localhost".into())
}

async fn status(State(app): State<App>) -> Response {
    json(app.inspector.status())
}

async fn list(State(app): State<App>, Query(filter): Query<Filter>) -> Response {
    let requests = app.inspector.summaries(&filter);
    json(serde_json::json!({ "requests": requests }))
}

async fn clear(State(app): State<App>) -> StatusCode {
    app.inspector.clear();
    StatusCode::NO_CONTENT
}

async fn detail(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let exchange = app.inspector.exchange(id).ok_or(ApiError::NotFound(id))?;
    Ok(json(Detail::of(&exchange)))
}

async fn curl(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let exchange = app.inspector.exchange(id).ok_or(ApiError::NotFound(id))?;
    let command = view::curl(&exchange, &base_url(&app.inspector));
    Ok((
        no_store(),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        command + "\n",
    )
        .into_response())
}

async fn replay(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let edits: Edits = if body.iter().all(u8::is_ascii_whitespace) {
        Edits::default()
    } else {
        serde_json::from_slice(&body).map_err(ApiError::BadJson)?
    };
    let summary = app.inspector.replay(id, edits).await?;
    let location = format!("/api/requests/{}", summary.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        no_store(),
        axum::Json(summary),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct BodyQuery {
    #[serde(default)]
    download: Option<String>,
}

async fn body(
    State(app): State<App>,
    Path((id, part)): Path<(String, String)>,
    Query(query): Query<BodyQuery>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let exchange = app.inspector.exchange(id).ok_or(ApiError::NotFound(id))?;
    let (headers, body) = match part.as_str() {
        "request" => (&exchange.request.headers, &exchange.request.body),
        "response" => match &exchange.response {
            Some(r) => (&r.headers, &r.body),
            None => return Err(ApiError::NotFound(id)),
        },
        _ => return Err(ApiError::BadPart(part)),
    };
    let content_type = view::header(headers, "content-type").unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    // Captured bytes are someone else's content: never served as anything
    // a browser would run on this origin.
    let image = essence.starts_with("image/") && essence != "image/svg+xml";
    let served_type = if image {
        essence.clone()
    } else {
        "application/octet-stream".into()
    };
    let mut out = HeaderMap::new();
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    out.insert(header::CONTENT_TYPE, value(&served_type));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out.insert("x-body-size", value(&body.size.to_string()));
    out.insert(
        "x-body-truncated",
        HeaderValue::from_static(if body.truncated() { "true" } else { "false" }),
    );
    if query.download.is_some() || !image {
        let name = format!("{part}-{id}.{}", extension(&essence));
        out.insert(
            header::CONTENT_DISPOSITION,
            value(&format!("attachment; filename=\"{name}\"")),
        );
    }
    Ok((out, body.bytes.clone()).into_response())
}

/// A file extension for a content type, for downloads.
fn extension(essence: &str) -> &'static str {
    match essence {
        "application/json" => "json",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/csv" => "csv",
        "text/css" => "css",
        "application/xml" | "text/xml" => "xml",
        "application/javascript" | "text/javascript" => "js",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "application/x-www-form-urlencoded" => "txt",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        _ => "bin",
    }
}

async fn har(State(app): State<App>) -> Response {
    let har = view::har(&app.inspector.exchanges(), &base_url(&app.inspector));
    (
        no_store(),
        [(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"tunnel-inspector.har\"",
        )],
        axum::Json(har),
    )
        .into_response()
}

/// Server-sent events: first `snapshot` (the list and status), then
/// `request` (a summary, on start and end), `evicted` (ids), `cleared` and
/// `status`. A page that falls behind gets a new `snapshot`.
async fn events(State(app): State<App>) -> impl IntoResponse {
    let (rx, list, status) = app.inspector.subscribe();
    let first = snapshot(&list, &status);
    let inspector = app.inspector.clone();
    let changes = futures_util::stream::unfold(
        (Some(first), rx, inspector),
        |(first, mut rx, inspector)| async move {
            if let Some(first) = first {
                return Some((first, (None, rx, inspector)));
            }
            let event = match rx.recv().await {
                Ok(change) => change_event(change),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let (fresh, list, status) = inspector.subscribe();
                    rx = fresh;
                    snapshot(&list, &status)
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((event, (None, rx, inspector)))
        },
    );
    let mut stop = app.shutdown.clone();
    let stream = changes
        .take_until(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .map(Ok::<_, Infallible>);
    (
        no_store(),
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
}

fn snapshot(list: &[view::Summary], status: &view::Status) -> SseEvent {
    sse(
        "snapshot",
        &serde_json::json!({ "requests": list, "status": status }),
    )
}

fn change_event(change: Change) -> SseEvent {
    match change {
        Change::Upsert(summary) => sse("request", &summary),
        Change::Evicted(ids) => sse("evicted", &ids),
        Change::Cleared => sse("cleared", &serde_json::json!({})),
        Change::Status(status) => sse("status", &status),
    }
}

fn sse<T: serde::Serialize>(name: &str, data: &T) -> SseEvent {
    SseEvent::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_else(|_| "null".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("127.0.0.1:4040", true)]
    #[case("127.0.0.1", true)]
    #[case("localhost:4040", true)]
    #[case("LOCALHOST", true)]
    #[case("app.localhost:4040", true)]
    #[case("192.168.1.20:4040", true)]
    #[case("[::1]:4040", true)]
    #[case("[::1]", true)]
    #[case("evil.example.com", false)]
    #[case("evil.example.com:4040", false)]
    #[case("localhost.evil.com", false)]
    #[case("[not-ip]:1", false)]
    #[case("", false)]
    fn hosts(#[case] host: &str, #[case] allowed: bool) {
        assert_eq!(host_allowed(host.as_bytes()), allowed, "{host}");
    }

    #[test]
    fn origins() {
        let host = HeaderValue::from_static("127.0.0.1:4040");
        assert!(same_origin(b"http://127.0.0.1:4040", Some(&host)));
        assert!(!same_origin(b"http://127.0.0.1:3000", Some(&host)));
        assert!(!same_origin(b"https://127.0.0.1:4040", Some(&host)));
        assert!(!same_origin(b"null", Some(&host)));
        assert!(!same_origin(b"http://127.0.0.1:4040", None));
    }

    #[tokio::test]
    async fn default_bind_moves_to_the_next_port_when_4040_is_taken() {
        // Whatever holds 4040 now (this test, another agent, another test
        // process), the default bind never fails on it.
        let held = TcpListener::bind(("127.0.0.1", DEFAULT_PORT)).await.ok();
        let listener = bind(&Bind::Default).await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), DEFAULT_PORT, "4040 is held");
        drop(held);
    }

    #[tokio::test]
    async fn an_exact_address_in_use_is_a_clear_error() {
        let held = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = held.local_addr().unwrap();
        let err = bind(&Bind::Exact(addr)).await.unwrap_err().to_string();
        assert!(err.contains(&addr.to_string()), "{err}");
        assert!(err.contains("--inspect"), "{err}");
    }

    #[test]
    fn urls_show_a_reachable_address() {
        let server = |addr: &str| InspectServer {
            addr: addr.parse().unwrap(),
            shutdown: watch::channel(false).0,
            task: None,
        };
        assert_eq!(server("127.0.0.1:4040").url(), "http://127.0.0.1:4040");
        assert_eq!(server("0.0.0.0:4041").url(), "http://127.0.0.1:4041");
        assert_eq!(server("[::]:4042").url(), "http://[::1]:4042");
        assert!(server("127.0.0.1:1").is_loopback());
        assert!(!server("0.0.0.0:1").is_loopback());
    }
}
