//! The exports of a capture: "copy as curl" and the HAR file.

use super::capture::Exchange;
use super::view::{header, millis, pairs, reason, rfc3339};

/// Headers the tunnel server adds on the way in, and ones curl sets
/// itself: a curl through the public URL gets them anew.
const NOT_FOR_CURL: &[&str] = &[
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-host",
    "x-amzn-trace-id",
    "forwarded",
];

/// A curl command that sends the captured request to `base` (the public
/// URL, or the local service when the tunnel has none yet). Binary bodies
/// use bash's `$'…'` quoting; a truncated body is sent as captured, after a
/// comment saying so.
pub fn curl(e: &Exchange, base: &str) -> String {
    let mut out = String::new();
    let body = &e.request.body;
    if body.truncated() {
        out.push_str(&format!(
            "# The body was truncated in the capture: only its first {} of {} bytes are sent.\n",
            body.bytes.len(),
            body.size
        ));
    }
    let url = format!("{}{}", base.trim_end_matches('/'), e.request.uri);
    out.push_str("curl");
    match e.request.method.as_str() {
        "GET" => {}
        "HEAD" => out.push_str(" --head"),
        other => {
            out.push_str(" -X ");
            out.push_str(&shell_quote(other));
        }
    }
    out.push(' ');
    out.push_str(&shell_quote(&url));
    let hop_by_hop = protocol::headers::HopByHop::from_connection(
        e.request
            .headers
            .get("connection")
            .into_iter()
            .flatten()
            .map(String::as_str),
    );
    for (name, value) in pairs(&e.request.headers) {
        let lower = name.to_ascii_lowercase();
        if NOT_FOR_CURL.contains(&lower.as_str()) || hop_by_hop.contains(&lower) {
            continue;
        }
        out.push_str(" \\\n  -H ");
        out.push_str(&shell_quote(&format!("{name}: {value}")));
    }
    if !body.bytes.is_empty() {
        out.push_str(" \\\n  --data-binary ");
        out.push_str(&shell_bytes(&body.bytes));
    }
    out
}

/// `'…'` for the shell, `'` written as `'\''`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Text as `'…'`; anything with control bytes or invalid UTF-8 as `$'…'`.
fn shell_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t') =>
        {
            shell_quote(text)
        }
        _ => {
            let mut out = String::from("$'");
            for &b in bytes {
                match b {
                    b'\'' => out.push_str(r"\'"),
                    b'\\' => out.push_str(r"\\"),
                    0x20..=0x7e => out.push(b as char),
                    _ => out.push_str(&format!("\\x{b:02x}")),
                }
            }
            out.push('\'');
            out
        }
    }
}

/// Every kept exchange as a HAR 1.2 log (oldest first), for browsers'
/// developer tools and other HAR viewers. URLs start with `base`. Bodies
/// are base64 (`encoding: base64`); a truncated one has `_truncated: true`.
/// Requests refused at the edge are left out: they have no request or
/// response to show.
pub fn har(exchanges: &[Exchange], base: &str) -> serde_json::Value {
    use serde_json::json;
    let base = base.trim_end_matches('/');
    let header_list = |h: &protocol::Headers| -> Vec<serde_json::Value> {
        pairs(h)
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    };
    let entries: Vec<serde_json::Value> = exchanges
        .iter()
        .filter(|e| e.refused.is_none())
        .map(|e| {
            let url = format!("{base}{}", e.request.uri);
            let query: Vec<serde_json::Value> = e
                .request
                .uri
                .split_once('?')
                .map(|(_, q)| {
                    q.split('&')
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (n, v) = p.split_once('=').unwrap_or((p, ""));
                            json!({"name": n, "value": v})
                        })
                        .collect()
                })
                .unwrap_or_default();
            let wait = e.duration.map_or(-1.0, millis);
            let mut request = json!({
                "method": e.request.method,
                "url": url,
                "httpVersion": "HTTP/1.1",
                "cookies": [],
                "headers": header_list(&e.request.headers),
                "queryString": query,
                "headersSize": -1,
                "bodySize": e.request.body.size,
            });
            if !e.request.body.bytes.is_empty() {
                request["postData"] = json!({
                    "mimeType": header(&e.request.headers, "content-type").unwrap_or(""),
                    "text": protocol::encode_body(&e.request.body.bytes),
                    "encoding": "base64",
                    "_truncated": e.request.body.truncated(),
                });
            }
            let response = match &e.response {
                Some(r) => json!({
                    "status": r.status,
                    "statusText": reason(r.status),
                    "httpVersion": "HTTP/1.1",
                    "cookies": [],
                    "headers": header_list(&r.headers),
                    "content": {
                        "size": r.body.size,
                        "mimeType": header(&r.headers, "content-type").unwrap_or(""),
                        "text": protocol::encode_body(&r.body.bytes),
                        "encoding": "base64",
                        "_truncated": r.body.truncated(),
                    },
                    "redirectURL": header(&r.headers, "location").unwrap_or(""),
                    "headersSize": -1,
                    "bodySize": r.body.size,
                }),
                None => json!({
                    "status": e.status().unwrap_or(0),
                    "statusText": e.failure.as_ref().map_or("", |f| f.message.as_str()),
                    "httpVersion": "HTTP/1.1",
                    "cookies": [],
                    "headers": [],
                    "content": {"size": 0, "mimeType": ""},
                    "redirectURL": "",
                    "headersSize": -1,
                    "bodySize": -1,
                }),
            };
            json!({
                "startedDateTime": rfc3339(e.started_at),
                "time": wait.max(0.0),
                "request": request,
                "response": response,
                "cache": {},
                "timings": {"send": 0, "wait": wait, "receive": 0},
                "_id": e.id,
                "_replayOf": e.replay_of,
            })
        })
        .collect();
    json!({
        "log": {
            "version": "1.2",
            "creator": {"name": "tunnel inspector", "version": env!("CARGO_PKG_VERSION")},
            "entries": entries,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::inspect::capture::{Body, CapturedResponse};
    use crate::inspect::view::tests::{exchange, headers, refused};

    #[test]
    fn curl_for_a_text_body() {
        let e = exchange("POST", "/hook?a=1&b=2", br#"{"it's":1}"#);
        assert_eq!(
            curl(&e, "https://abc.tunnel.example.com/"),
            "curl -X 'POST' 'https://abc.tunnel.example.com/hook?a=1&b=2' \\\n  \
             -H 'accept: a' \\\n  \
             -H 'accept: b' \\\n  \
             -H 'content-type: application/json' \\\n  \
             -H 'x-signature: it'\\''s' \\\n  \
             --data-binary '{\"it'\\''s\":1}'"
        );
    }

    #[test]
    fn curl_for_binary_and_truncated_bodies() {
        let mut e = exchange("PUT", "/up", b"");
        e.request.headers.clear();
        e.request.body = Body::capture(b"\x00\x01'\\a\xff", 5);
        assert_eq!(
            curl(&e, "http://127.0.0.1:3000"),
            "# The body was truncated in the capture: only its first 5 of 6 bytes are sent.\n\
             curl -X 'PUT' 'http://127.0.0.1:3000/up' \\\n  --data-binary $'\\x00\\x01\\'\\\\a'"
        );
        let mut get = exchange("GET", "/", b"");
        get.request.headers.clear();
        assert_eq!(curl(&get, "http://h"), "curl 'http://h/'");
        get.request.method = "HEAD".into();
        assert_eq!(curl(&get, "http://h"), "curl --head 'http://h/'");
    }

    #[test]
    fn har_has_one_entry_per_exchange() {
        let mut e = exchange("POST", "/hook?a=1&b", b"{}");
        e.response = Some(CapturedResponse {
            status: 200,
            headers: headers(&[("content-type", "application/json")]),
            body: Body::capture(b"[1]", 2),
        });
        e.duration = Some(Duration::from_millis(5));
        let har = har(&[e.clone(), exchange("GET", "/", b"")], "https://x.example");
        let entries = har["log"]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        let first = &entries[0];
        assert_eq!(first["request"]["url"], "https://x.example/hook?a=1&b");
        assert_eq!(
            first["request"]["queryString"],
            serde_json::json!([{"name": "a", "value": "1"}, {"name": "b", "value": ""}])
        );
        assert_eq!(first["request"]["postData"]["text"], "e30=");
        assert_eq!(first["response"]["content"]["text"], "WzE=");
        assert_eq!(first["response"]["content"]["_truncated"], true);
        assert_eq!(first["time"], 5.0);
        // In flight: no response yet.
        assert_eq!(entries[1]["response"]["status"], 0);
    }

    #[test]
    fn har_leaves_refused_requests_out() {
        let har = har(&[refused(), exchange("GET", "/", b"")], "https://x.example");
        let entries = har["log"]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["request"]["url"], "https://x.example/");
    }
}
