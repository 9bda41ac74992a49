//! The HTTP API: any method and path → a payload format 2.0 event for one
//! function, its result mapped back as API Gateway maps it.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::Value;
use tracing::{Instrument as _, debug, info_span, warn};

use crate::{
    bodies::{self, Body, BodyError, json_response},
    ids,
    lambda::{Functions, InvokeError},
    limits::HTTP_BODY_MAX,
    timestamps::{self, now_epoch_ms},
};

#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    pub function: String,
    pub timeout: Duration,
    pub api_id: String,
    pub account_id: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpEvent {
    pub version: &'static str,
    pub route_key: &'static str,
    pub raw_path: String,
    pub raw_query_string: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<String>,
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_string_parameters: Option<BTreeMap<String, String>>,
    pub request_context: HttpRequestContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub is_base64_encoded: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpRequestContext {
    pub account_id: String,
    pub api_id: String,
    pub domain_name: String,
    pub domain_prefix: String,
    pub http: HttpDescription,
    pub request_id: String,
    pub route_key: &'static str,
    pub stage: &'static str,
    pub time: String,
    pub time_epoch: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpDescription {
    pub method: String,
    pub path: String,
    pub protocol: String,
    pub source_ip: String,
    pub user_agent: String,
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

/// Decoded `key=value` pairs of a raw query string, in order.
pub(crate) fn parse_query(raw: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// Bodies that API Gateway passes as text; everything else is base64.
fn is_text_content_type(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "application/json" | "application/xml" | "application/javascript"
        )
}

/// The request parts the event is built from.
pub(crate) struct RequestParts<'a> {
    pub method: &'a str,
    /// Already decoded as AWS decodes it ([`decode_path`]).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub version: http::Version,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub peer: SocketAddr,
}

impl HttpSettings {
    pub(crate) fn build_event(&self, parts: &RequestParts<'_>, request_id: &str) -> HttpEvent {
        let now = now_epoch_ms();
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        let mut cookies = Vec::new();
        for (name, value) in parts.headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            if name == header::COOKIE {
                cookies.extend(
                    value
                        .split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned),
                );
                continue;
            }
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|existing| {
                    existing.push(',');
                    existing.push_str(&value);
                })
                .or_insert(value);
        }
        let source_ip = parts.peer.ip().to_string();
        let forwarded_for = match headers.remove("x-forwarded-for") {
            Some(existing) => format!("{existing}, {source_ip}"),
            None => source_ip.clone(),
        };
        headers.insert("x-forwarded-for".into(), forwarded_for);
        headers.insert("x-forwarded-port".into(), self.port.to_string());
        headers.insert("x-forwarded-proto".into(), "http".into());
        headers.insert("x-amzn-trace-id".into(), ids::new_trace_id());

        let raw_query = parts.query.unwrap_or("").to_owned();
        let mut query: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in parse_query(&raw_query) {
            query
                .entry(key)
                .and_modify(|existing| {
                    existing.push(',');
                    existing.push_str(&value);
                })
                .or_insert(value);
        }

        let (body, is_base64_encoded) = if parts.body.is_empty() {
            (None, false)
        } else if is_text_content_type(headers.get("content-type").map(String::as_str))
            && let Ok(text) = std::str::from_utf8(parts.body)
        {
            (Some(text.to_owned()), false)
        } else {
            (
                Some(base64::engine::general_purpose::STANDARD.encode(parts.body)),
                true,
            )
        };

        let domain_name = headers.get("host").cloned().unwrap_or_default();
        let domain_prefix = domain_name
            .split(['.', ':'])
            .next()
            .unwrap_or("")
            .to_owned();
        let protocol = match parts.version {
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            _ => "HTTP/1.1",
        };
        HttpEvent {
            version: "2.0",
            route_key: "$default",
            raw_path: parts.path.to_owned(),
            raw_query_string: raw_query,
            cookies,
            request_context: HttpRequestContext {
                account_id: self.account_id.clone(),
                api_id: self.api_id.clone(),
                domain_name,
                domain_prefix,
                http: HttpDescription {
                    method: parts.method.to_owned(),
                    path: parts.path.to_owned(),
                    protocol: protocol.to_owned(),
                    source_ip,
                    user_agent: headers.get("user-agent").cloned().unwrap_or_default(),
                },
                request_id: request_id.to_owned(),
                route_key: "$default",
                stage: "$default",
                time: timestamps::request_time(now),
                time_epoch: now,
            },
            headers,
            query_string_parameters: (!query.is_empty()).then_some(query),
            body,
            is_base64_encoded,
        }
    }
}

fn internal_error() -> Response<Body> {
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        r#"{"message":"Internal Server Error"}"#,
    )
}

/// Maps a function result to the client's response; `None` = invalid result (500).
pub(crate) fn map_response(payload: &[u8]) -> Option<Response<Body>> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    let Some(object) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        // Valid JSON without a statusCode: a 200 with that JSON as the body.
        let mut response = json_response(StatusCode::OK, Bytes::copy_from_slice(payload));
        *response.status_mut() = StatusCode::OK;
        return Some(response);
    };
    let status = object
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())?;
    let is_base64 = match object.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(v) => v.as_bool()?,
    };
    let body = match object.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if is_base64 => {
            Bytes::from(base64::engine::general_purpose::STANDARD.decode(s).ok()?)
        }
        Some(Value::String(s)) => Bytes::from(s.clone()),
        Some(_) => return None,
    };
    let mut response = Response::new(http_body_util::Full::new(body));
    *response.status_mut() = status;
    let out = response.headers_mut();
    if let Some(headers) = object.get("headers").filter(|h| !h.is_null()) {
        for (name, value) in headers.as_object()? {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            let name = HeaderName::try_from(name.as_str()).ok()?;
            // A value with commas goes out as given, in one header line.
            out.append(name, HeaderValue::from_str(&value).ok()?);
        }
    }
    if let Some(cookies) = object.get("cookies").filter(|c| !c.is_null()) {
        for cookie in cookies.as_array()? {
            out.append(
                header::SET_COOKIE,
                HeaderValue::from_str(cookie.as_str()?).ok()?,
            );
        }
    }
    // API Gateway sets the framing headers itself.
    out.remove(header::CONTENT_LENGTH);
    out.remove(header::TRANSFER_ENCODING);
    out.remove(header::CONNECTION);
    Some(response)
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
        let event = settings.build_event(
            &RequestParts {
                method: parts.method.as_str(),
                path: &path,
                query: parts.uri.query(),
                version: parts.version,
                headers: &parts.headers,
                body: &body,
                peer,
            },
            &request_id,
        );
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
            Ok(Ok(result)) => map_response(&result).unwrap_or_else(|| {
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

    fn settings() -> HttpSettings {
        HttpSettings {
            function: "f".into(),
            timeout: Duration::from_secs(30),
            api_id: "api".into(),
            account_id: "123456789012".into(),
            port: 8080,
        }
    }

    fn event(headers: &[(&str, &str)], query: Option<&str>, body: &[u8]) -> Value {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let parts = RequestParts {
            method: "POST",
            path: "/a/b",
            query,
            version: http::Version::HTTP_11,
            headers: &map,
            body,
            peer: "10.1.2.3:5555".parse().unwrap(),
        };
        serde_json::to_value(settings().build_event(&parts, "rid")).unwrap()
    }

    #[test]
    fn cookies_headers_and_query() {
        let e = event(
            &[
                ("Cookie", "a=1; b=2"),
                ("cookie", "c=3"),
                ("X-Multi", "1"),
                ("x-multi", "2"),
                ("host", "sub.example.com:9"),
            ],
            Some("q=a%20b&q=c&plus=x+y&empty"),
            b"",
        );
        assert_eq!(e["cookies"], serde_json::json!(["a=1", "b=2", "c=3"]));
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["headers"]["x-multi"], "1,2");
        assert_eq!(e["headers"]["x-forwarded-for"], "10.1.2.3");
        assert_eq!(e["headers"]["x-forwarded-port"], "8080");
        assert_eq!(e["rawQueryString"], "q=a%20b&q=c&plus=x+y&empty");
        assert_eq!(e["queryStringParameters"]["q"], "a b,c");
        assert_eq!(e["queryStringParameters"]["plus"], "x y");
        assert_eq!(e["queryStringParameters"]["empty"], "");
        assert_eq!(e["requestContext"]["domainPrefix"], "sub");
        assert!(e.get("body").is_none());
        assert_eq!(e["isBase64Encoded"], false);
    }

    #[test]
    fn no_query_means_empty_raw_and_no_map() {
        let e = event(&[], None, b"");
        assert_eq!(e["rawQueryString"], "");
        assert!(e.get("queryStringParameters").is_none());
        assert!(e.get("cookies").is_none());
    }

    #[test]
    fn body_encoding_by_content_type() {
        for (content_type, base64) in [
            (Some("text/plain; charset=utf-8"), false),
            (Some("application/json"), false),
            (Some("application/xml"), false),
            (Some("application/javascript"), false),
            (Some("application/x-www-form-urlencoded"), true),
            (Some("application/octet-stream"), true),
            (None, true),
        ] {
            let headers: Vec<(&str, &str)> = content_type
                .map(|c| ("content-type", c))
                .into_iter()
                .collect();
            let e = event(&headers, None, b"hello");
            assert_eq!(e["isBase64Encoded"], base64, "{content_type:?}");
            let expected = if base64 { "aGVsbG8=" } else { "hello" };
            assert_eq!(e["body"], expected, "{content_type:?}");
        }
    }

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

    #[test]
    fn response_mapping() {
        let r = map_response(br#"{"statusCode":201,"headers":{"x-a":"1, 2","n":3},"cookies":["a=1","b=2; Path=/"],"body":"aGk=","isBase64Encoded":true}"#).unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers().get_all("x-a").iter().count(), 1);
        assert_eq!(r.headers()["x-a"], "1, 2");
        assert_eq!(r.headers()["n"], "3");
        assert_eq!(r.headers().get_all("set-cookie").iter().count(), 2);
        let r = map_response(br#"{"hello":"world"}"#).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert!(map_response(b"not json").is_none());
        assert!(map_response(br#"{"statusCode":"abc"}"#).is_none());
        assert!(
            map_response(br#"{"statusCode":200,"body":"%%","isBase64Encoded":true}"#).is_none()
        );
    }
}
