//! The local HTTP client: one visitor request as a request to the local
//! service, and its response (head and body) or a [`Failure`].
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

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use protocol::headers::HopByHop;
use protocol::limits::MAX_BODY_BYTES;
use protocol::{ErrorCode, Headers, HttpRequest, HttpResponse};

use super::failure::Failure;
use crate::config::{Config, HostHeader, Target, UriError};
use crate::exchange::MAX_LOGGED_METHOD_CHARS;
use crate::text::{clip, error_chain, humanize};

/// The local service, through one pooled client.
#[derive(Debug, Clone)]
pub(super) struct LocalClient {
    client: reqwest::Client,
    pub(super) target: Target,
    pub(super) host_header: HostHeader,
    pub(super) timeout: Duration,
}

impl LocalClient {
    pub(super) fn new(config: &Config) -> Result<LocalClient, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.request_timeout)
            .build()?;
        Ok(LocalClient {
            client,
            target: config.target.clone(),
            host_header: config.host_header.clone(),
            timeout: config.request_timeout,
        })
    }

    /// [`LocalClient::exchange`] within the request timeout.
    pub(super) async fn call(
        &self,
        req: HttpRequest,
        stored: Option<Vec<u8>>,
    ) -> Result<(HttpResponse, Vec<u8>), Failure> {
        match tokio::time::timeout(self.timeout, self.exchange(req, stored)).await {
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
        }
    }

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

    /// `e` without its URL, as for [`LocalClient::send_failure`].
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

    fn client(host: HostHeader) -> LocalClient {
        let mut config = Config::new("ws://127.0.0.1:1/x", "3000").unwrap();
        config.host_header = host;
        LocalClient::new(&config).unwrap()
    }

    #[test]
    fn request_headers_drop_hop_by_hop_and_add_forwarded() {
        let f = client(HostHeader::Rewrite);
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
        let preserve = client(HostHeader::Preserve).request_headers(&incoming);
        assert_eq!(preserve["host"], "pub.example.com");
        assert_eq!(preserve["x-forwarded-proto"], "http");
        let custom = client(HostHeader::Custom("api.test".into())).request_headers(&incoming);
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
