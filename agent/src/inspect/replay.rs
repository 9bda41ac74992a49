//! A replayed request: the captured one, or with some parts edited. It then
//! goes through the agent's own forwarder, like a visitor's request.

use http::{HeaderName, HeaderValue, Method};
use protocol::{Headers, HttpRequest};
use serde::Deserialize;

use super::capture::Exchange;

/// What to change before replaying (`POST /api/requests/{id}/replay`, JSON).
/// Every field is optional: an empty object (or no body) replays the
/// request exactly as captured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edits {
    pub method: Option<String>,
    /// Path and query, starting with `/`.
    pub uri: Option<String>,
    /// Replaces every header: `[name, value]` pairs, repeats allowed.
    pub headers: Option<Vec<(String, String)>>,
    /// The new body as text (UTF-8).
    pub body: Option<String>,
    /// The new body as base64 (for bytes that are not text).
    pub body_base64: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "no captured request {0} (it was never captured, or dropped to stay within the inspector's limits)"
    )]
    NotFound(u64),
    #[error(
        "the captured body was truncated ({captured} of {size} bytes), so it cannot be replayed as it was; send an edited body, or raise --inspect-body-limit"
    )]
    Truncated { captured: usize, size: usize },
    #[error("invalid edit: {0}")]
    Invalid(String),
    #[error("the agent is not running, so there is nothing to replay through")]
    AgentStopped,
    #[error(
        "the agent is already forwarding {max_in_flight} requests to the local service (the limit, --max-in-flight); try the replay again in a moment"
    )]
    Busy { max_in_flight: usize },
    #[error("the replay failed inside the agent")]
    Crashed,
    #[error(
        "request {0} was refused at the edge by the tunnel's access policy: the local service never saw it, and nothing of it was captured to replay"
    )]
    Refused(u64),
}

/// The request to send for `original` with `edits` applied.
pub fn build(original: &Exchange, edits: Edits) -> Result<HttpRequest, ReplayError> {
    if original.refused.is_some() {
        return Err(ReplayError::Refused(original.id));
    }
    let invalid = |s: String| ReplayError::Invalid(s);
    let method = match edits.method {
        Some(m) => {
            let m = m.trim().to_owned();
            Method::from_bytes(m.as_bytes())
                .map_err(|_| invalid(format!("{m:?} is not an HTTP method")))?;
            m
        }
        None => original.request.method.clone(),
    };
    let uri = match edits.uri {
        Some(u) => {
            let u = u.trim().to_owned();
            if !u.starts_with('/') || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(format!(
                    "the path {u:?} must start with '/' and contain no spaces (encode them as %20)"
                )));
            }
            u
        }
        None => original.request.uri.clone(),
    };
    let headers = match edits.headers {
        Some(pairs) => {
            let mut headers = Headers::new();
            for (name, value) in pairs {
                let name = name.trim().to_ascii_lowercase();
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| invalid(format!("{name:?} is not a header name")))?;
                HeaderValue::from_str(&value)
                    .map_err(|_| invalid(format!("the value of header {name:?} is not valid")))?;
                headers.entry(name).or_default().push(value);
            }
            headers
        }
        None => original.request.headers.clone(),
    };
    let body = match (edits.body, edits.body_base64) {
        (Some(_), Some(_)) => {
            return Err(invalid("give either body or body_base64, not both".into()));
        }
        (Some(text), None) => protocol::encode_body(text.as_bytes()),
        (None, Some(b64)) => {
            protocol::decode_body(&b64)
                .map_err(|e| invalid(format!("body_base64 is not valid base64: {e}")))?;
            b64
        }
        (None, None) => {
            let captured = &original.request.body;
            if captured.truncated() {
                return Err(ReplayError::Truncated {
                    captured: captured.bytes.len(),
                    size: captured.size,
                });
            }
            protocol::encode_body(&captured.bytes)
        }
    };
    let request_id = format!("replay-{}", protocol::generate_request_id());
    // Through serde, so optional fields that later protocol versions add
    // take their defaults.
    let request = serde_json::json!({
        "request_id": request_id,
        "method": method,
        "uri": uri,
        "headers": headers,
        "body": body,
        "timestamp": now_ms(),
    });
    serde_json::from_value(request).map_err(|e| invalid(e.to_string()))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::capture::{Body, CapturedRequest};
    use std::time::SystemTime;

    fn original(body: Body) -> Exchange {
        let mut headers = Headers::new();
        headers.insert("x-a".into(), vec!["1".into(), "2".into()]);
        Exchange {
            id: 3,
            request_id: "orig".into(),
            replay_of: None,
            started_at: SystemTime::UNIX_EPOCH,
            server_timestamp_ms: 5,
            request: CapturedRequest {
                method: "POST".into(),
                uri: "/hook?x=1".into(),
                headers,
                body,
            },
            response: None,
            failure: None,
            refused: None,
            duration: None,
        }
    }

    #[test]
    fn a_refused_request_cannot_be_replayed_even_edited() {
        let mut o = original(Body::default());
        o.refused = Some(crate::inspect::capture::Refusal {
            reason: "no valid basic-auth credentials".into(),
            source_ip: None,
            status: 401,
        });
        let edits = Edits {
            method: Some("GET".into()),
            ..Edits::default()
        };
        let err = build(&o, edits).unwrap_err();
        assert!(matches!(err, ReplayError::Refused(3)), "{err}");
        assert!(err.to_string().contains("refused at the edge"), "{err}");
    }

    #[test]
    fn replays_exactly_as_captured() {
        let o = original(Body::capture(b"\x00body\xff", 100));
        let r = build(&o, Edits::default()).unwrap();
        assert_eq!((r.method.as_str(), r.uri.as_str()), ("POST", "/hook?x=1"));
        assert_eq!(r.headers, o.request.headers);
        assert_eq!(protocol::decode_body(&r.body).unwrap(), b"\x00body\xff");
        assert!(r.request_id.starts_with("replay-"));
        assert_ne!(r.request_id, o.request_id);
    }

    #[test]
    fn applies_edits() {
        let o = original(Body::capture(b"old", 100));
        let r = build(
            &o,
            Edits {
                method: Some("PUT".into()),
                uri: Some("/other".into()),
                headers: Some(vec![("X-B".into(), "1".into()), ("x-b".into(), "2".into())]),
                body: Some("new".into()),
                body_base64: None,
            },
        )
        .unwrap();
        assert_eq!((r.method.as_str(), r.uri.as_str()), ("PUT", "/other"));
        assert_eq!(r.headers["x-b"], ["1", "2"]);
        assert!(!r.headers.contains_key("x-a"));
        assert_eq!(protocol::decode_body(&r.body).unwrap(), b"new");
        let r = build(
            &o,
            Edits {
                body_base64: Some("AAE=".into()),
                ..Edits::default()
            },
        )
        .unwrap();
        assert_eq!(protocol::decode_body(&r.body).unwrap(), [0, 1]);
    }

    #[test]
    fn a_truncated_body_needs_an_edit() {
        let o = original(Body::capture(b"0123456789", 4));
        let err = build(&o, Edits::default()).unwrap_err();
        assert_eq!(
            err,
            ReplayError::Truncated {
                captured: 4,
                size: 10
            }
        );
        assert!(err.to_string().contains("--inspect-body-limit"), "{err}");
        let edited = Edits {
            body: Some("whole".into()),
            ..Edits::default()
        };
        assert!(build(&o, edited).is_ok());
    }

    #[test]
    fn refuses_bad_edits_with_reasons() {
        let o = original(Body::default());
        let cases = [
            (
                Edits {
                    method: Some("GE T".into()),
                    ..Edits::default()
                },
                "not an HTTP method",
            ),
            (
                Edits {
                    uri: Some("hook".into()),
                    ..Edits::default()
                },
                "must start with '/'",
            ),
            (
                Edits {
                    uri: Some("/a b".into()),
                    ..Edits::default()
                },
                "%20",
            ),
            (
                Edits {
                    headers: Some(vec![("bad name".into(), "v".into())]),
                    ..Edits::default()
                },
                "not a header name",
            ),
            (
                Edits {
                    headers: Some(vec![("x".into(), "a\nb".into())]),
                    ..Edits::default()
                },
                "not valid",
            ),
            (
                Edits {
                    body: Some("a".into()),
                    body_base64: Some("YQ==".into()),
                    ..Edits::default()
                },
                "not both",
            ),
            (
                Edits {
                    body_base64: Some("!!".into()),
                    ..Edits::default()
                },
                "not valid base64",
            ),
        ];
        for (edits, says) in cases {
            let err = build(&o, edits.clone()).unwrap_err().to_string();
            assert!(err.contains(says), "{edits:?}: {err}");
        }
    }
}
