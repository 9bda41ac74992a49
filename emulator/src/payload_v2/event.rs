//! The payload format 2.0 request event, built from an HTTP request.

use std::{collections::BTreeMap, net::SocketAddr};

use base64::Engine as _;
use http::{HeaderMap, header};
use percent_encoding::percent_decode_str;
use serde::Serialize;

use crate::{
    ids,
    timestamps::{self, now_epoch_ms},
};

/// The event. Empty parts are omitted, not null, as in AWS's recordings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Event {
    pub version: &'static str,
    pub route_key: &'static str,
    pub raw_path: String,
    pub raw_query_string: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<String>,
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_string_parameters: Option<BTreeMap<String, String>>,
    pub request_context: RequestContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub is_base64_encoded: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RequestContext {
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

/// The request parts the event is built from.
pub(crate) struct RequestParts<'a> {
    pub method: &'a str,
    /// `rawPath`, as the entry hands it over (decoded by the HTTP API, raw
    /// behind a Function URL).
    pub raw_path: &'a str,
    /// `requestContext.http.path`.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub version: http::Version,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub peer: SocketAddr,
}

/// What the entry (HTTP API or Function URL) puts in the event.
pub(crate) struct Entry<'a> {
    pub account_id: &'a str,
    pub api_id: &'a str,
    /// `requestContext.domainName`; `None`: the request's `Host`.
    pub domain_name: Option<&'a str>,
    pub request_id: &'a str,
    /// `x-forwarded-port`.
    pub port: u16,
    /// Whether the `cookie` header stays in `headers` beside `cookies`.
    pub keep_cookie_header: bool,
    /// Headers the entry adds besides `x-forwarded-*` and `x-amzn-trace-id`.
    pub added_headers: &'a [(&'static str, &'static str)],
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

/// Bodies passed as text; everything else is base64.
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

/// Appends `value` to a comma-joined entry (how repeats are passed).
fn join_into(map: &mut BTreeMap<String, String>, key: String, value: String) {
    map.entry(key)
        .and_modify(|existing| {
            existing.push(',');
            existing.push_str(&value);
        })
        .or_insert(value);
}

impl Entry<'_> {
    pub(crate) fn build_event(&self, parts: &RequestParts<'_>) -> Event {
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
                if !self.keep_cookie_header {
                    continue;
                }
            }
            join_into(&mut headers, name.as_str().to_owned(), value);
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
        for (name, value) in self.added_headers {
            headers.insert((*name).to_owned(), (*value).to_owned());
        }

        let raw_query = parts.query.unwrap_or("").to_owned();
        let mut query: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in parse_query(&raw_query) {
            join_into(&mut query, key, value);
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

        let domain_name = match self.domain_name {
            Some(name) => name.to_owned(),
            None => headers.get("host").cloned().unwrap_or_default(),
        };
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
        Event {
            version: "2.0",
            route_key: "$default",
            raw_path: parts.raw_path.to_owned(),
            raw_query_string: raw_query,
            cookies,
            request_context: RequestContext {
                account_id: self.account_id.to_owned(),
                api_id: self.api_id.to_owned(),
                domain_name,
                domain_prefix,
                http: HttpDescription {
                    method: parts.method.to_owned(),
                    path: parts.path.to_owned(),
                    protocol: protocol.to_owned(),
                    source_ip,
                    user_agent: headers.get("user-agent").cloned().unwrap_or_default(),
                },
                request_id: self.request_id.to_owned(),
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

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue};
    use serde_json::Value;

    use super::*;

    const HTTP_API: Entry<'static> = Entry {
        account_id: "123456789012",
        api_id: "api",
        domain_name: None,
        request_id: "rid",
        port: 8080,
        keep_cookie_header: false,
        added_headers: &[],
    };

    fn event(
        entry: &Entry<'_>,
        headers: &[(&str, &str)],
        query: Option<&str>,
        body: &[u8],
    ) -> Value {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let parts = RequestParts {
            method: "POST",
            raw_path: "/a/b%20c",
            path: "/a/b c",
            query,
            version: http::Version::HTTP_11,
            headers: &map,
            body,
            peer: "10.1.2.3:5555".parse().unwrap(),
        };
        serde_json::to_value(entry.build_event(&parts)).unwrap()
    }

    #[test]
    fn cookies_headers_and_query() {
        let e = event(
            &HTTP_API,
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
        assert_eq!(e["requestContext"]["domainName"], "sub.example.com:9");
        assert_eq!(e["requestContext"]["domainPrefix"], "sub");
        assert_eq!(e["rawPath"], "/a/b%20c");
        assert_eq!(e["requestContext"]["http"]["path"], "/a/b c");
        assert!(e.get("body").is_none());
        assert_eq!(e["isBase64Encoded"], false);
    }

    #[test]
    fn what_an_entry_adds() {
        let entry = Entry {
            domain_name: Some("urlid.lambda-url.us-east-1.on.aws"),
            keep_cookie_header: true,
            added_headers: &[("x-amzn-tls-version", "TLSv1.3")],
            ..HTTP_API
        };
        let e = event(
            &entry,
            &[
                ("Cookie", "a=1; b=2"),
                ("x-forwarded-for", "1.1.1.1"),
                ("host", "h:1"),
            ],
            None,
            b"",
        );
        assert_eq!(e["cookies"], serde_json::json!(["a=1", "b=2"]));
        assert_eq!(e["headers"]["cookie"], "a=1; b=2");
        assert_eq!(e["headers"]["x-amzn-tls-version"], "TLSv1.3");
        assert_eq!(e["headers"]["x-forwarded-for"], "1.1.1.1, 10.1.2.3");
        assert_eq!(e["headers"]["host"], "h:1");
        assert_eq!(
            e["requestContext"]["domainName"],
            "urlid.lambda-url.us-east-1.on.aws"
        );
        assert_eq!(e["requestContext"]["domainPrefix"], "urlid");
    }

    #[test]
    fn no_query_means_empty_raw_and_no_map() {
        let e = event(&HTTP_API, &[], None, b"");
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
            let e = event(&HTTP_API, &headers, None, b"hello");
            assert_eq!(e["isBase64Encoded"], base64, "{content_type:?}");
            let expected = if base64 { "aGVsbG8=" } else { "hello" };
            assert_eq!(e["body"], expected, "{content_type:?}");
        }
    }
}
