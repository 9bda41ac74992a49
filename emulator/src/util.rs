//! Small shared pieces: ids, AWS timestamp formats, HTTP helpers, task ownership.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use time::{OffsetDateTime, format_description::BorrowedFormatItem, macros::format_description};
use tokio::{net::TcpListener, task::JoinSet};
use tracing::{Instrument as _, debug, info_span};

pub(crate) type Body = Full<Bytes>;

/// An API Gateway id: 11 random bytes as URL-safe base64 with padding, e.g.
/// `L0SM9cOFvHcCIhw=` (connection ids, request ids, message ids).
pub(crate) fn new_api_gateway_id() -> String {
    let bytes: [u8; 11] = rand::random();
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// A Lambda request id (a UUID v4).
pub(crate) fn new_lambda_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An X-Ray trace header value.
pub(crate) fn new_trace_id() -> String {
    let secs = now_epoch_ms() / 1000;
    let random: [u8; 12] = rand::random();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("Root=1-{secs:08x}-{hex}")
}

pub(crate) fn now_epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn datetime_from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

const REQUEST_TIME: &[BorrowedFormatItem<'_>] =
    format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
const ISO_MS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `requestTime` / `time` of API Gateway events: `05/Apr/2020:05:20:58 +0000`.
pub(crate) fn request_time(ms: i64) -> String {
    datetime_from_ms(ms)
        .format(REQUEST_TIME)
        .unwrap_or_default()
}

/// ISO-8601 as the management API writes it: `2020-04-05T05:20:58.123Z`.
pub(crate) fn iso8601(ms: i64) -> String {
    datetime_from_ms(ms).format(ISO_MS).unwrap_or_default()
}

/// A JSON response with the given status.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn empty_response(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    TooLarge,
    Io,
}

/// Reads a whole request body, refusing more than `max` bytes.
pub(crate) async fn read_body(body: Incoming, max: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Io),
    }
}

/// Aborts its task when dropped: how every spawned task gets an owner.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A set of tasks that can be spawned into from anywhere and aborted at once.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tasks(Arc<Mutex<JoinSet<()>>>);

impl Tasks {
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Reap finished tasks so the set does not grow without bound.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    pub fn abort_all(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).abort_all();
    }
}

/// The header-name casing a client used in the first request of its
/// connection (hyper lowercases names). Known when the whole request head
/// arrived in the first segment, as a WebSocket handshake nearly always does.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderCase(Arc<HashMap<String, String>>);

impl HeaderCase {
    /// The client's spelling of a (lowercase) header name.
    pub fn get(&self, lower: &str) -> Option<&str> {
        self.0.get(lower).map(String::as_str)
    }

    fn from_head(head: &[u8]) -> Option<Self> {
        let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
        let text = std::str::from_utf8(&head[..end]).ok()?;
        let names = text
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, _)| (name.to_ascii_lowercase(), name.to_owned()))
            .collect();
        Some(Self(Arc::new(names)))
    }

    async fn peek(stream: &tokio::net::TcpStream) -> Option<Self> {
        let mut buf = vec![0; 16 * 1024];
        let n = stream.peek(&mut buf).await.ok()?;
        Self::from_head(&buf[..n])
    }
}

/// Serves HTTP/1.1 on `listener` with `handler` until the returned task is
/// aborted; connections live in `tasks`. With `keep_header_case` the first
/// request of each connection carries a [`HeaderCase`] extension.
pub(crate) fn serve<H, F>(
    listener: TcpListener,
    tasks: Tasks,
    name: &'static str,
    keep_header_case: bool,
    handler: H,
) -> AbortOnDrop
where
    H: Fn(SocketAddr, hyper::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let conn_tasks = tasks.clone();
    AbortOnDrop(tokio::spawn(
        async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: keep serving.
                        debug!(%error, "accept failed");
                        tokio::task::yield_now().await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                conn_tasks.spawn(async move {
                    let case = if keep_header_case {
                        HeaderCase::peek(&stream).await
                    } else {
                        None
                    };
                    let first = Mutex::new(case);
                    let service = hyper::service::service_fn(move |mut req| {
                        if let Some(case) = first.lock().unwrap_or_else(|p| p.into_inner()).take() {
                            req.extensions_mut().insert(case);
                        }
                        let fut = handler(peer, req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    if let Err(error) = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await
                    {
                        debug!(%error, %peer, "connection ended with an error");
                    }
                });
            }
        }
        .instrument(info_span!("listener", name)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_16_url_safe_base64_chars_with_padding() {
        for _ in 0..100 {
            let id = new_api_gateway_id();
            assert_eq!(id.len(), 16);
            assert!(id.ends_with('='));
            assert!(
                id[..15]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            );
        }
    }

    #[test]
    fn formats_times_like_aws() {
        // 2020-04-05T05:20:58.123Z
        let ms = 1_586_064_058_123;
        assert_eq!(request_time(ms), "05/Apr/2020:05:20:58 +0000");
        assert_eq!(iso8601(ms), "2020-04-05T05:20:58.123Z");
    }

    #[test]
    fn header_case_from_a_request_head() {
        let case = HeaderCase::from_head(
            b"GET /local HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: k\r\nx-api-key: a\r\n\r\n",
        )
        .unwrap();
        assert_eq!(case.get("host"), Some("Host"));
        assert_eq!(case.get("sec-websocket-key"), Some("Sec-WebSocket-Key"));
        assert_eq!(case.get("x-api-key"), Some("x-api-key"));
        assert!(HeaderCase::from_head(b"GET / HTTP/1.1\r\nHost: partial").is_none());
    }

    #[test]
    fn trace_ids_have_the_xray_shape() {
        let id = new_trace_id();
        assert!(id.starts_with("Root=1-"));
        assert_eq!(id.len(), "Root=1-".len() + 8 + 1 + 24);
    }
}
