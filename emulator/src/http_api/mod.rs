//! The HTTP API: any method and path → a payload format 2.0 event for one
//! function (`payload_v2`), its result mapped back as API Gateway maps it.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use tracing::{Instrument as _, debug, info_span, warn};

use crate::{
    bodies::{self, Body, BodyError, json_response},
    ids,
    lambda::{Functions, InvokeError},
    limits::HTTP_BODY_MAX,
    payload_v2::{Entry, RequestParts, map_response},
};

#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    pub function: String,
    pub timeout: Duration,
    pub api_id: String,
    pub account_id: String,
    pub port: u16,
}

/// The path as the HTTP API hands it to the Lambda (`rawPath` and
/// `requestContext.http.path`), or `None` when API Gateway refuses the
/// request before the Lambda (400).
///
/// AWS decodes the path although the field is called `rawPath`. Live
/// captures (hotsock/voker `vokerhttp/testdata/ingress-paths.json`, HTTP API
/// payload 2.0, us-west-2, July 2026) show: percent-escapes decoded (`%20` →
/// space, `%2F` → `/`, `%23` → `#`, UTF-8 sequences → characters), a decoded
/// `?` ends the path, and what is left is decoded a second time (`%252F` →
/// `/`, `%253F` → `?` without a cut, `%2525` → `%`) while a `%` that is then
/// not followed by two hex digits (`%25done` → `%do…`) is rejected with a
/// 400 (the probe's `exc.code == 400`; `examples/aws-ingress-probe/paths.py`).
/// Not covered by the captures, so the stricter choice: a raw `%` without two
/// hex digits is refused as well, and bytes that are not UTF-8 after decoding
/// become U+FFFD (the event is JSON text).
pub(crate) fn decode_path(raw: &str) -> Option<String> {
    let once = percent_decode_strict(raw.as_bytes())?;
    let path = match once.iter().position(|&b| b == b'?') {
        Some(cut) => &once[..cut],
        None => &once[..],
    };
    let twice = percent_decode_strict(path)?;
    Some(String::from_utf8_lossy(&twice).into_owned())
}

/// Percent-decodes `bytes`; `None` when a `%` is not followed by two hex digits.
fn percent_decode_strict(bytes: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = hex(*bytes.get(i + 1)?)?;
            let low = hex(*bytes.get(i + 2)?)?;
            out.push(u8::try_from(high * 16 + low).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn internal_error() -> Response<Body> {
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        r#"{"message":"Internal Server Error"}"#,
    )
}

/// Serves one HTTP API request.
pub(crate) async fn handle(
    settings: &HttpSettings,
    functions: &Functions,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Response<Body> {
    let request_id = ids::new_api_gateway_id();
    let span = info_span!("http", request_id = %request_id);
    let mut response = async {
        let (parts, body) = req.into_parts();
        let body = match bodies::read_body(body, HTTP_BODY_MAX).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return json_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    r#"{"message":"Request Entity Too Large"}"#,
                );
            }
            Err(BodyError::Io) => {
                return json_response(StatusCode::BAD_REQUEST, r#"{"message":"Bad Request"}"#);
            }
        };
        let Some(path) = decode_path(parts.uri.path()) else {
            return json_response(StatusCode::BAD_REQUEST, r#"{"message":"Bad Request"}"#);
        };
        let entry = Entry {
            account_id: &settings.account_id,
            api_id: &settings.api_id,
            domain_name: None,
            request_id: &request_id,
            port: settings.port,
            keep_cookie_header: false,
            added_headers: &[],
        };
        let event = entry.build_event(&RequestParts {
            method: parts.method.as_str(),
            // The HTTP API decodes `rawPath` too (see `decode_path`).
            raw_path: &path,
            path: &path,
            query: parts.uri.query(),
            version: parts.version,
            headers: &parts.headers,
            body: &body,
            peer,
        });
        let payload = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
        debug!(method = %parts.method, "invoking");
        match tokio::time::timeout(
            settings.timeout,
            functions.invoke(&settings.function, payload),
        )
        .await
        {
            Err(_) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"message":"Service Unavailable"}"#,
            ),
            Ok(Err(InvokeError::RequestTooLarge)) => json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                r#"{"message":"Request Entity Too Large"}"#,
            ),
            Ok(Err(error)) => {
                warn!(%error, "integration failed");
                internal_error()
            }
            Ok(Ok(result)) => map_response(&result)
                .map(|r| r.map(Body::new))
                .unwrap_or_else(|| {
                    warn!("invalid function response");
                    internal_error()
                }),
        }
    }
    .instrument(span)
    .await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The live captures of aws-semantics.md ("HTTP API payload format 2.0"),
    /// plus the raw-`%` case they do not cover.
    #[test]
    fn paths_are_decoded_as_aws_decodes_them() {
        for (sent, expected) in [
            ("/a/plain", Some("/a/plain")),
            ("/a/space%20value", Some("/a/space value")),
            ("/a/question%3Fvalue", Some("/a/question")),
            ("/a/percent%25done", None),
            ("/a/hash%23value", Some("/a/hash#value")),
            ("/a/slash%2Fvalue", Some("/a/slash/value")),
            ("/a/unicode-%CE%BB", Some("/a/unicode-λ")),
            ("/a/literal%252Fvalue", Some("/a/literal/value")),
            ("/a/literal%253Fvalue", Some("/a/literal?value")),
            ("/a/literal%2525value", Some("/a/literal%value")),
            ("/a/lower%2f%ce%bb", Some("/a/lower/λ")),
            ("/a/raw%zz", None),
            ("/a/trailing%2", None),
            ("/a/not-utf8%FF", Some("/a/not-utf8\u{fffd}")),
        ] {
            assert_eq!(decode_path(sent).as_deref(), expected, "{sent}");
        }
    }
}
