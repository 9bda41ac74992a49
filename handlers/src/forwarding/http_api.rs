//! The HTTP API's side of forwarding (payload format 2.0): the visitor's
//! request as the agent gets it, and the agent's answer as the HTTP API
//! returns it.
//!
//! Format 2.0 (`ApiGatewayV2httpRequest`), not 1.0 which the seed parsed: 1.0
//! keeps only the last value of a repeated header in `headers` and rebuilds
//! the query string from decoded, deduplicated parameters; 2.0 gives
//! `rawQueryString` byte-exact, every header value (comma-joined) and every
//! cookie.

use std::collections::BTreeMap;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use http::HeaderMap;
use protocol::headers::HopByHop;
use protocol::{Headers, HttpRequest, HttpResponse};
use serde::Serialize;

use super::cookies::CookieScope;
use crate::pages::PLAIN_TEXT;

/// A payload format 2.0 response.
///
/// Not `aws_lambda_events::apigw::ApiGatewayV2httpResponse`: its `headers`
/// (an `http::HeaderMap`) serialize only the first value of a repeated header
/// and it always writes `multiValueHeaders`. Here repeated values are joined
/// with `, ` and every `Set-Cookie` is its own `cookies` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiResponse {
    pub status_code: u16,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub is_base64_encoded: bool,
}

impl HttpApiResponse {
    /// A short plain-text answer produced by the tunnel itself.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        let mut text = text.into();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Self {
            status_code: status,
            headers: BTreeMap::from([("content-type".to_string(), PLAIN_TEXT.to_string())]),
            cookies: Vec::new(),
            body: Some(text),
            is_base64_encoded: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("the request body is flagged base64 but is not valid base64")]
    RequestBody(#[source] base64::DecodeError),
    #[error("the agent answered with status {0}, which is not an HTTP status")]
    Status(u16),
    #[error("the agent's response body is not valid base64")]
    ResponseBody(#[source] base64::DecodeError),
}

/// The visitor's request as the agent gets it, without its body, and the
/// body's bytes (to be sent inline or through the bodies bucket).
pub fn to_request(
    event: &ApiGatewayV2httpRequest,
    request_id: &str,
    uri: String,
) -> Result<(HttpRequest, Vec<u8>), MapError> {
    let body = request_body(event)?;
    let request = HttpRequest {
        request_id: request_id.to_string(),
        method: event.request_context.http.method.to_string(),
        uri,
        headers: request_headers(&event.headers, event.cookies.as_deref()),
        body: String::new(),
        timestamp: crate::now_millis(),
        body_download: None,
        response_upload: None,
    };
    Ok((request, body))
}

/// The request's headers as the agent gets them: every header but the
/// hop-by-hop ones, values as received (the HTTP API has already joined
/// repeats with commas), and `cookie` rebuilt from `cookies[]`.
pub fn request_headers(headers: &HeaderMap, cookies: Option<&[String]>) -> Headers {
    let hop_by_hop = HopByHop::from_connection(
        headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let mut out = Headers::new();
    for (name, value) in headers {
        let name = name.as_str();
        if hop_by_hop.contains(name) || (name == "cookie" && cookies.is_some_and(|c| !c.is_empty()))
        {
            continue;
        }
        out.entry(name.to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    if let Some(cookies) = cookies.filter(|c| !c.is_empty()) {
        out.insert("cookie".to_string(), vec![cookies.join("; ")]);
    }
    out
}

/// The body bytes of the event, decoded by `isBase64Encoded`.
pub fn request_body(event: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, MapError> {
    match &event.body {
        None => Ok(Vec::new()),
        Some(b) if event.is_base64_encoded => {
            protocol::decode_body(b).map_err(MapError::RequestBody)
        }
        Some(b) => Ok(b.as_bytes().to_vec()),
    }
}

/// The agent's response as the HTTP API returns it, its cookies confined to
/// the tunnel (`cookies`, from routing: see [`CookieScope`]).
pub fn to_api_response(
    response: &HttpResponse,
    cookies: &CookieScope,
) -> Result<HttpApiResponse, MapError> {
    if !(100..=599).contains(&response.status_code) {
        return Err(MapError::Status(response.status_code));
    }
    let hop_by_hop = HopByHop::from_connection(
        response
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, values)| values.iter().map(String::as_str)),
    );
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let scope = cookies;
    let mut cookies = Vec::new();
    for (name, values) in &response.headers {
        let name = name.to_ascii_lowercase();
        if hop_by_hop.contains(&name) || name == "content-length" {
            continue;
        }
        if name == "set-cookie" {
            cookies.extend(values.iter().filter_map(|value| scope.apply(value)));
            continue;
        }
        if values.is_empty() {
            continue;
        }
        let joined = values.join(", ");
        headers
            .entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&joined);
            })
            .or_insert(joined);
    }
    let bytes = protocol::decode_body(&response.body).map_err(MapError::ResponseBody)?;
    let body = (!bytes.is_empty()).then(|| protocol::encode_body(&bytes));
    Ok(HttpApiResponse {
        status_code: response.status_code,
        headers,
        cookies,
        is_base64_encoded: body.is_some(),
        body,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::*;

    pub(crate) fn headers(pairs: &[(&str, &[&str])]) -> Headers {
        pairs
            .iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect()
    }

    /// An agent's answer with repeated, hop-by-hop and framing headers.
    pub(crate) fn agent_response(request_id: &str) -> HttpResponse {
        HttpResponse {
            request_id: request_id.to_string(),
            status_code: 201,
            headers: headers(&[
                ("content-type", &["application/json"]),
                ("set-cookie", &["a=1; Path=/", "b=2; HttpOnly"]),
                ("vary", &["accept", "origin"]),
                ("connection", &["keep-alive"]),
                ("content-length", &["2"]),
            ]),
            body: protocol::encode_body(b"{}"),
            processing_time_ms: 3,
            body_uploaded: None,
        }
    }

    #[rstest]
    #[case::cookies_rebuilt(&[("accept", "a, b")], Some(&["a=1", "b=2"][..]), &[("accept", &["a, b"][..]), ("cookie", &["a=1; b=2"][..])])]
    #[case::cookies_replace_header(&[("cookie", "stale=1")], Some(&["a=1"][..]), &[("cookie", &["a=1"][..])])]
    #[case::cookie_header_kept_without_cookies(&[("cookie", "a=1")], None, &[("cookie", &["a=1"][..])])]
    #[case::empty_cookies(&[("cookie", "a=1")], Some(&[][..]), &[("cookie", &["a=1"][..])])]
    #[case::hop_by_hop_dropped(&[("connection", "close"), ("te", "trailers"), ("x-a", "1")], None, &[("x-a", &["1"][..])])]
    #[case::authorization_passes(&[("authorization", "Bearer t")], None, &[("authorization", &["Bearer t"][..])])]
    fn maps_request_headers(
        #[case] input: &[(&str, &str)],
        #[case] cookies: Option<&[&str]>,
        #[case] expected: &[(&str, &[&str])],
    ) {
        let mut map = HeaderMap::new();
        for (k, v) in input {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let cookies: Option<Vec<String>> =
            cookies.map(|c| c.iter().map(|s| s.to_string()).collect());
        assert_eq!(request_headers(&map, cookies.as_deref()), headers(expected));
    }

    #[rstest]
    #[case(200)]
    #[case(204)]
    #[case(302)]
    #[case(404)]
    #[case(503)]
    fn passes_status_through(#[case] status: u16) {
        let mut r = agent_response("r");
        r.status_code = status;
        assert_eq!(
            to_api_response(&r, &CookieScope::Host).unwrap().status_code,
            status
        );
    }

    #[rstest]
    #[case(0)]
    #[case(99)]
    #[case(600)]
    fn rejects_impossible_status(#[case] status: u16) {
        let mut r = agent_response("r");
        r.status_code = status;
        assert!(
            matches!(to_api_response(&r, &CookieScope::Host), Err(MapError::Status(s)) if s == status)
        );
    }

    /// The exact JSON the HTTP API receives.
    #[test]
    fn pins_the_response_json() {
        let mut r = agent_response("r");
        r.headers.insert("X-Mixed".into(), vec!["1".into()]);
        r.headers.insert("x-mixed".into(), vec!["2".into()]);
        let json = serde_json::to_value(to_api_response(&r, &CookieScope::Host).unwrap()).unwrap();
        assert_eq!(
            json,
            json!({
                "statusCode": 201,
                "headers": {
                    "content-type": "application/json",
                    "vary": "accept, origin",
                    "x-mixed": "1, 2"
                },
                "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
                "body": "e30=",
                "isBase64Encoded": true
            })
        );
    }

    /// Each `Set-Cookie` goes through the request's cookie scope: its
    /// `Domain` removed, its `Path` under the tunnel's prefix with path
    /// routing, a value browsers would ignore dropped.
    #[test]
    fn cookies_are_confined_to_the_tunnel() {
        let mut r = agent_response("r");
        r.headers.insert(
            "Set-Cookie".into(),
            vec![
                "a=1; Domain=.tunnel.example.com; Path=/".into(),
                "b=2\u{0}; Path=/".into(),
                "c=3; HttpOnly".into(),
            ],
        );
        r.headers.remove("set-cookie");
        let host = to_api_response(&r, &CookieScope::Host).unwrap();
        assert_eq!(host.cookies, ["a=1; Path=/", "c=3; HttpOnly"]);
        let path = to_api_response(&r, &CookieScope::path("/abc123", "/app/page")).unwrap();
        assert_eq!(
            path.cookies,
            ["a=1; Path=/abc123", "c=3; HttpOnly; Path=/abc123/app"]
        );
    }

    #[test]
    fn empty_body_has_no_body() {
        let mut r = agent_response("r");
        r.body = String::new();
        r.headers.clear();
        let json = serde_json::to_value(to_api_response(&r, &CookieScope::Host).unwrap()).unwrap();
        assert_eq!(json, json!({"statusCode": 201, "isBase64Encoded": false}));
    }

    #[test]
    fn invalid_response_body_is_an_error() {
        let mut r = agent_response("r");
        r.body = "not base64!".into();
        assert!(matches!(
            to_api_response(&r, &CookieScope::Host),
            Err(MapError::ResponseBody(_))
        ));
    }

    #[test]
    fn text_response_json() {
        assert_eq!(
            serde_json::to_value(HttpApiResponse::text(404, "No")).unwrap(),
            json!({
                "statusCode": 404,
                "headers": {"content-type": "text/plain; charset=utf-8"},
                "body": "No\n",
                "isBase64Encoded": false
            })
        );
    }
}
