//! One visitor request → one local HTTP request → one protocol message.
//!
//! The URL is the local base plus the request's raw `uri`, concatenated. It
//! then goes through `url::Url` (reqwest's URL type), which keeps `%2F`, `+`,
//! `%20`, repeated and reordered query parameters as they are, but does
//! normalise a few things a browser would have normalised anyway: `.` and `..`
//! path segments are resolved, `\` in the path becomes `/`, and characters
//! that are not allowed raw in a URL (space, `"`, `<`, `>`, `` ` ``, `{`, `}`
//! in the path; space, `"`, `'`, `<`, `>` in the query) are percent-encoded.
//! Requests that arrive through API Gateway are already in that form.
//!
//! reqwest is built without compression features, so bodies are never
//! decompressed and no `Accept-Encoding` is added; redirects are never
//! followed. reqwest adds `Accept: */*` when the visitor sent no `Accept`.
//!
//! A request body too large for a message is fetched from the bodies bucket
//! before anything else (`body_download`), and an answer body over
//! [`INLINE_ANSWER_BODY_BYTES`] is PUT to the request's `response_upload`
//! when the server gave one (`body_uploaded`); otherwise it goes inline, and
//! an answer too large for one message without an upload URL is a 502 with
//! a short reason ([`crate::bodies`], `docs/contracts.md` "The data path").
//!
//! A failed request has two texts: a short reason for the visitor (sent in
//! the `error` message; no local address, no error chain) and the details
//! for the agent's console ([`RequestOutcome::Failed`]). Neither carries the
//! request's URL: its query may hold a secret.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use protocol::body::encoded_len;
use protocol::headers::HopByHop;
use protocol::limits::{INLINE_ANSWER_BODY_BYTES, MAX_BODY_BYTES, MAX_MESSAGE_BYTES};
use protocol::{
    BodyUploaded, ErrorCode, ErrorMessage, Headers, HttpRequest, HttpResponse, Message,
    ProtocolError, SignedUrl, encode_body,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::bodies::{Storage, TransferError};
use crate::config::{Config, HostHeader, Target, UriError};
use crate::exchange::{MAX_LOGGED_METHOD_CHARS, Recorder, Recording, RequestLog, RequestOutcome};
use crate::text::{clip, error_chain, humanize};

/// Forwards requests to the local service through one pooled client, and
/// holds the cap on how many may be with it at once.
#[derive(Clone)]
pub struct Forwarder {
    client: reqwest::Client,
    target: Target,
    host_header: HostHeader,
    timeout: Duration,
    /// Bodies to and from the bodies bucket.
    storage: Storage,
    /// One permit per request with the local service
    /// ([`Config::max_in_flight`]): visitors' requests and the inspector's
    /// replays take them from the same pool.
    slots: Arc<Semaphore>,
    max_in_flight: usize,
    /// Sees every exchange (the request inspector).
    recorder: Option<Arc<dyn Recorder>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("target", &self.target)
            .field("host_header", &self.host_header)
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("recorded", &self.recorder.is_some())
            .finish()
    }
}

/// A place among the [`Config::max_in_flight`] requests with the local
/// service; free again once dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
}

#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client for the local service")]
pub struct ClientInitError(#[source] reqwest::Error);

impl Forwarder {
    pub fn new(config: &Config) -> Result<Forwarder, ClientInitError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(ClientInitError)?;
        Ok(Forwarder {
            client,
            target: config.target.clone(),
            host_header: config.host_header.clone(),
            timeout: config.request_timeout,
            storage: Storage::new(config.request_timeout).map_err(ClientInitError)?,
            slots: Arc::new(Semaphore::new(config.max_in_flight)),
            max_in_flight: config.max_in_flight,
            recorder: None,
        })
    }

    /// Shows every exchange [`Forwarder::forward`] makes to `recorder`.
    pub fn with_recorder(mut self, recorder: impl Recorder + 'static) -> Forwarder {
        self.recorder = Some(Arc::new(recorder));
        self
    }

    /// Shows a request the server refused at the edge to the recorder.
    pub(crate) fn refused(&self, rejected: &protocol::policy::Rejected) {
        if let Some(recorder) = &self.recorder {
            recorder.refused(rejected);
        }
    }

    /// A place for one more request with the local service, or `None` when
    /// [`Forwarder::max_in_flight`] are already there. The caller holds it
    /// for as long as the request counts.
    pub(crate) fn try_slot(&self) -> Option<Slot> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().ok()?;
        Some(Slot { _permit: permit })
    }

    /// The cap on requests with the local service (`--max-in-flight`).
    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Forwards `req` and returns the message to send back (a response or an
    /// error, already checked against the message limit; none only if not
    /// even an error fits) and a log line.
    ///
    /// A body over [`INLINE_ANSWER_BODY_BYTES`] goes to the request's upload
    /// URL; without one, an answer too large for one message becomes a
    /// `payload_too_large` error (502). The body is checked against
    /// `MAX_BODY_BYTES` while it is read.
    ///
    /// It does not take a [`Slot`]: the caller does, and holds it until the
    /// answer is on its way.
    pub async fn forward(&self, mut req: HttpRequest) -> (Option<String>, RequestLog) {
        // A stored body first: the recorder and the local service see it.
        let stored = match req.body_download.take() {
            None => None,
            Some(download) => match self.storage.download(&download).await {
                Ok(body) => Some(body),
                Err(e) => {
                    let (message, outcome) =
                        failure_message(&req.request_id, Failure::transfer(&e));
                    return (message, RequestLog::for_request(&req, outcome));
                }
            },
        };
        // Recorder hook: the request as the agent received it.
        let recording = self
            .recorder
            .as_ref()
            .map(|r| r.record(&req, stored.as_deref()));
        self.forward_recorded(req, stored, recording).await
    }

    /// [`Forwarder::forward`] once a stored body is fetched (`stored`; else
    /// the body is `req.body`), shown to `recording` instead of the
    /// forwarder's own recorder (the inspector's replays come in here with
    /// their own).
    pub(crate) async fn forward_recorded(
        &self,
        mut req: HttpRequest,
        stored: Option<Vec<u8>>,
        mut recording: Option<Box<dyn Recording>>,
    ) -> (Option<String>, RequestLog) {
        let started = Instant::now();
        let request_id = req.request_id.clone();
        let upload = req.response_upload.take();
        let mut log = RequestLog::for_request(&req, RequestOutcome::Status(0));
        let exchange = self.exchange(req, stored);
        let result = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::detailed(
                ErrorCode::Timeout,
                format!(
                    "the local service did not answer within {}",
                    humanize(self.timeout)
                ),
                format!(
                    "the local service at {} did not answer within {}",
                    self.target.authority(),
                    humanize(self.timeout)
                ),
            )),
        };
        let elapsed = started.elapsed();
        let (message, outcome) = match result {
            Ok((mut response, body)) => {
                response.processing_time_ms = elapsed.as_millis() as u64;
                let status = response.status_code;
                // Recorder hook: the response as the local service gave it.
                if let Some(recording) = &mut recording {
                    recording.response(status, &response.headers, &body);
                }
                match self.answer(response, body, upload.as_ref()).await {
                    Ok(json) => (Some(json), RequestOutcome::Status(status)),
                    Err(failure) => failure_message(&request_id, failure),
                }
            }
            Err(failure) => failure_message(&request_id, failure),
        };
        log.outcome = outcome;
        log.duration = elapsed;
        // Recorder hook: what the visitor got.
        if let Some(recording) = recording {
            recording.finish(&log.outcome, elapsed);
        }
        (message, log)
    }

    /// The message that carries `response` with `body`: its body uploaded
    /// to `upload` when it is over [`INLINE_ANSWER_BODY_BYTES`], else inline.
    async fn answer(
        &self,
        mut response: HttpResponse,
        body: Vec<u8>,
        upload: Option<&SignedUrl>,
    ) -> Result<String, Failure> {
        let too_large = |e: protocol::ProtocolError| {
            Failure::new(
                ErrorCode::PayloadTooLarge,
                format!("the local service's response cannot be carried through the tunnel ({e})"),
            )
        };
        match upload {
            Some(url) if body.len() > INLINE_ANSWER_BODY_BYTES => {
                let length = body.len() as u64;
                self.storage
                    .upload(url, body)
                    .await
                    .map_err(|e| Failure::transfer(&e))?;
                response.body_uploaded = Some(BodyUploaded { length });
                Message::HttpResponse(response).to_json().map_err(too_large)
            }
            // A server always offers an upload URL (connect refuses agents
            // that cannot use one); without it, nothing else can carry a body
            // too large for the message, so the visitor gets a clear 502.
            // Checked before encoding so a large body is not copied first.
            None if encoded_len(body.len()) >= MAX_MESSAGE_BYTES => Err(no_upload(body.len())),
            _ => {
                let len = body.len();
                response.body = encode_body(&body);
                match Message::HttpResponse(response).to_json() {
                    // The headers took the rest of the room.
                    Err(ProtocolError::TooLarge { .. }) if upload.is_none() && len > 0 => {
                        Err(no_upload(len))
                    }
                    json => json.map_err(too_large),
                }
            }
        }
    }

    /// The local service's response (without body) and its body. The
    /// request's body is `stored` when it came from the bucket.
    async fn exchange(
        &self,
        req: HttpRequest,
        stored: Option<Vec<u8>>,
    ) -> Result<(HttpResponse, Vec<u8>), Failure> {
        let method = Method::from_bytes(req.method.as_bytes()).map_err(|_| {
            Failure::detailed(
                ErrorCode::InvalidRequest,
                "invalid HTTP method",
                format!(
                    "invalid HTTP method {:?}",
                    clip(&req.method, MAX_LOGGED_METHOD_CHARS)
                ),
            )
        })?;
        let url = self.target.url_for(&req.uri).map_err(|e| match e {
            UriError::EscapesBasePath => Failure::detailed(
                ErrorCode::InvalidRequest,
                e.to_string(),
                format!(
                    "refused: the request path leaves the base path of {}",
                    self.target
                ),
            ),
            UriError::NotOriginForm | UriError::Invalid => {
                Failure::new(ErrorCode::InvalidRequest, e.to_string())
            }
        })?;
        let body = match stored {
            Some(body) => body,
            None => protocol::decode_body(&req.body).map_err(|e| {
                Failure::new(
                    ErrorCode::InvalidRequest,
                    format!("the request body is not valid base64 ({e})"),
                )
            })?,
        };
        let had_length = req.headers.contains_key("content-length");
        let headers = self.request_headers(&req.headers);
        let mut builder = self.client.request(method, url).headers(headers);
        if !body.is_empty() || had_length {
            builder = builder.body(body);
        }
        let mut response = builder
            .send()
            .await
            .map_err(|e| self.send_failure(e.without_url()))?;

        let status_code = response.status().as_u16();
        let headers = response_headers(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.body_failure(e.without_url()))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Failure::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "the local service's response body is over the tunnel's limit of {MAX_BODY_BYTES} bytes (about {:.1} MB)",
                        MAX_BODY_BYTES as f64 / 1_000_000.0
                    ),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((
            http_response(req.request_id, status_code, headers, String::new())?,
            body,
        ))
    }

    /// The visitor's headers minus hop-by-hop ones, with `Host` and the
    /// `X-Forwarded-*` headers set.
    fn request_headers(&self, incoming: &Headers) -> HeaderMap {
        let hop_by_hop = HopByHop::from_connection(
            incoming
                .get("connection")
                .into_iter()
                .flatten()
                .map(String::as_str),
        );
        let mut out = HeaderMap::new();
        let mut original_host = None;
        for (name, values) in incoming {
            let lower = name.to_ascii_lowercase();
            if lower == "host" {
                original_host = values.first().cloned();
                continue;
            }
            if lower == "content-length" || hop_by_hop.contains(&lower) {
                continue;
            }
            let Ok(name) = HeaderName::from_bytes(lower.as_bytes()) else {
                tracing::debug!(header = %lower, "dropping request header with an invalid name");
                continue;
            };
            for value in values {
                match HeaderValue::from_str(value) {
                    Ok(v) => {
                        out.append(name.clone(), v);
                    }
                    Err(_) => {
                        tracing::debug!(header = %name, "dropping invalid request header value")
                    }
                }
            }
        }
        let host = match &self.host_header {
            HostHeader::Rewrite => None, // reqwest sets it from the URL
            HostHeader::Preserve => original_host.clone(),
            HostHeader::Custom(value) => Some(value.clone()),
        };
        if let Some(v) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
            out.insert(http::header::HOST, v);
        }
        if !out.contains_key("x-forwarded-proto") {
            out.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        }
        if let Some(v) = original_host.and_then(|h| HeaderValue::from_str(&h).ok()) {
            out.insert("x-forwarded-host", v);
        }
        out
    }

    /// `e` without its URL (the visitor's query may hold a secret).
    fn send_failure(&self, e: reqwest::Error) -> Failure {
        let at = self.target.authority();
        if e.is_timeout() {
            return Failure::detailed(
                ErrorCode::Timeout,
                "the local service did not answer in time",
                format!("the local service at {at} did not answer in time"),
            );
        }
        if e.is_connect() {
            if has_io_kind(&e, std::io::ErrorKind::ConnectionRefused) {
                return Failure::detailed(
                    ErrorCode::LocalServiceUnavailable,
                    "the local service refused the connection",
                    format!("local service at {at} refused the connection — is it running?"),
                );
            }
            return Failure::detailed(
                ErrorCode::LocalServiceUnavailable,
                "the tunnel agent could not connect to the local service",
                format!(
                    "could not connect to the local service at {at}: {}",
                    error_chain(&e)
                ),
            );
        }
        if e.is_builder() {
            return Failure::detailed(
                ErrorCode::InvalidRequest,
                "the request cannot be sent to the local service",
                format!(
                    "the request cannot be sent to the local service: {}",
                    error_chain(&e)
                ),
            );
        }
        Failure::detailed(
            ErrorCode::LocalServiceUnavailable,
            "the local service closed the connection without a valid answer",
            format!(
                "the local service at {at} closed the connection without a valid answer: {}",
                error_chain(&e)
            ),
        )
    }

    /// `e` without its URL, as for [`Forwarder::send_failure`].
    fn body_failure(&self, e: reqwest::Error) -> Failure {
        Failure::detailed(
            ErrorCode::LocalServiceUnavailable,
            "the local service failed while sending its response body",
            format!(
                "the local service at {} failed while sending its response body: {}",
                self.target.authority(),
                error_chain(&e)
            ),
        )
    }
}

/// Built through serde rather than a struct literal so optional fields that
/// newer protocol versions add (`body_uploaded`…) take their defaults and this
/// crate builds against either.
fn http_response(
    request_id: String,
    status_code: u16,
    headers: Headers,
    body: String,
) -> Result<HttpResponse, Failure> {
    serde_json::from_value(serde_json::json!({
        "request_id": request_id,
        "status_code": status_code,
        "headers": headers,
        "body": body,
    }))
    .map_err(|e| {
        Failure::new(
            ErrorCode::InternalError,
            format!("the tunnel agent could not build the response ({e})"),
        )
    })
}

/// A request that gets an `error` message instead of a response.
#[derive(Debug)]
struct Failure {
    code: ErrorCode,
    /// For the visitor: short, no address, no error chain.
    visitor: String,
    /// For the console.
    detail: String,
}

impl Failure {
    /// A failure whose reason is fit for both the visitor and the console.
    fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        let message = message.into();
        Failure {
            code,
            visitor: message.clone(),
            detail: message,
        }
    }

    fn detailed(code: ErrorCode, visitor: impl Into<String>, detail: String) -> Failure {
        Failure {
            code,
            visitor: visitor.into(),
            detail,
        }
    }

    /// A body that could not go through the bucket: the visitor gets 502,
    /// the console the host and S3's error code (never the URL).
    fn transfer(e: &TransferError) -> Failure {
        Failure::detailed(ErrorCode::InternalError, e.visitor_message(), e.to_string())
    }
}

fn failure_message(request_id: &str, failure: Failure) -> (Option<String>, RequestOutcome) {
    let message = match error_json(Some(request_id), failure.code, &failure.visitor) {
        Ok(json) => Some(json),
        Err(e) => {
            tracing::error!(error = %e, "cannot answer the request with an error");
            None
        }
    };
    let outcome = RequestOutcome::Failed {
        code: failure.code,
        message: failure.detail,
    };
    (message, outcome)
}

/// An answer of `len` bytes that fits no message, with no upload URL.
fn no_upload(len: usize) -> Failure {
    Failure::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "the local service's response ({len} bytes) is too large for one message, \
             and the server offered no upload for it"
        ),
    )
}

/// Longest `message` in an `error` the agent sends: a sentence, never a
/// dump (the visitor sees it).
pub(crate) const MAX_ERROR_MESSAGE_CHARS: usize = 512;

/// An `error` message, its text clipped to [`MAX_ERROR_MESSAGE_CHARS`]. Fails
/// only for a request id too long to fit a message, which the session never
/// passes (it drops requests whose id is not [`protocol::is_valid_request_id`]).
pub(crate) fn error_json(
    request_id: Option<&str>,
    code: ErrorCode,
    message: &str,
) -> Result<String, protocol::ProtocolError> {
    Message::Error(ErrorMessage {
        request_id: request_id.map(str::to_owned),
        code,
        message: clip(message, MAX_ERROR_MESSAGE_CHARS),
    })
    .to_json()
}

/// The local service's headers minus hop-by-hop ones; repeats kept in order.
fn response_headers(map: &HeaderMap) -> Headers {
    let hop_by_hop = HopByHop::from_connection(
        map.get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let mut out = Headers::new();
    for (name, value) in map {
        if hop_by_hop.contains(name.as_str()) {
            continue;
        }
        out.entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    out
}

fn has_io_kind(e: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == kind
        {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[&str])]) -> Headers {
        pairs
            .iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect()
    }

    fn forwarder(host: HostHeader) -> Forwarder {
        let mut config = Config::new("ws://127.0.0.1:1/x", "3000").unwrap();
        config.host_header = host;
        Forwarder::new(&config).unwrap()
    }

    #[test]
    fn request_headers_drop_hop_by_hop_and_add_forwarded() {
        let f = forwarder(HostHeader::Rewrite);
        let out = f.request_headers(&headers(&[
            ("host", &["abc.tunnel.example.com"]),
            ("connection", &["keep-alive, X-Secret-Hop"]),
            ("x-secret-hop", &["1"]),
            ("keep-alive", &["timeout=5"]),
            ("te", &["trailers"]),
            ("transfer-encoding", &["chunked"]),
            ("upgrade", &["websocket"]),
            ("proxy-authorization", &["Basic x"]),
            ("content-length", &["3"]),
            ("accept", &["a", "b"]),
            ("x-forwarded-for", &["203.0.113.7"]),
        ]));
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        for gone in [
            "connection",
            "x-secret-hop",
            "keep-alive",
            "te",
            "transfer-encoding",
            "upgrade",
            "proxy-authorization",
            "content-length",
            "host",
        ] {
            assert!(!names.contains(&gone), "{gone} forwarded: {names:?}");
        }
        let accept: Vec<_> = out.get_all("accept").iter().collect();
        assert_eq!(accept, ["a", "b"]);
        assert_eq!(out["x-forwarded-for"], "203.0.113.7");
        assert_eq!(out["x-forwarded-proto"], "https");
        assert_eq!(out["x-forwarded-host"], "abc.tunnel.example.com");
    }

    #[test]
    fn host_header_modes() {
        let incoming = headers(&[
            ("host", &["pub.example.com"]),
            ("x-forwarded-proto", &["http"]),
        ]);
        let preserve = forwarder(HostHeader::Preserve).request_headers(&incoming);
        assert_eq!(preserve["host"], "pub.example.com");
        assert_eq!(preserve["x-forwarded-proto"], "http");
        let custom = forwarder(HostHeader::Custom("api.test".into())).request_headers(&incoming);
        assert_eq!(custom["host"], "api.test");
    }

    #[test]
    fn response_headers_keep_repeats_and_drop_hop_by_hop() {
        let mut map = HeaderMap::new();
        map.append("set-cookie", HeaderValue::from_static("a=1"));
        map.append("set-cookie", HeaderValue::from_static("b=2"));
        map.append("connection", HeaderValue::from_static("x-hop"));
        map.append("x-hop", HeaderValue::from_static("1"));
        map.append("transfer-encoding", HeaderValue::from_static("chunked"));
        map.append("content-encoding", HeaderValue::from_static("gzip"));
        let out = response_headers(&map);
        assert_eq!(out["set-cookie"], ["a=1", "b=2"]);
        assert_eq!(out["content-encoding"], ["gzip"]);
        assert_eq!(out.len(), 2, "{out:?}");
    }
}
