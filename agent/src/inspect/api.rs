//! The inspector's JSON API under `/api/`: its routes (the table is in
//! `server.rs`), one handler each, and the errors they answer with.

use std::convert::Infallible;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use super::export;
use super::view::{self, Detail, Filter};
use super::{Change, Edits, Inspector, ReplayError};

/// What every route gets.
#[derive(Clone)]
pub(super) struct App {
    pub(super) inspector: Inspector,
    pub(super) shutdown: watch::Receiver<bool>,
}

/// The API's routes, for the server's router.
pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/requests", get(list).delete(clear))
        .route("/api/requests/{id}", get(detail))
        .route("/api/requests/{id}/curl", get(curl))
        .route("/api/requests/{id}/replay", post(replay))
        .route("/api/requests/{id}/{part}/body", get(body))
        .route("/api/events", get(events))
        .route("/api/har", get(har))
}

#[derive(Debug, thiserror::Error)]
pub(super) enum ApiError {
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
    let command = export::curl(&exchange, &base_url(&app.inspector));
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
    let har = export::har(&app.inspector.exchanges(), &base_url(&app.inspector));
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
