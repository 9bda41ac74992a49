//! What the API returns: a summary per exchange for the list, the full
//! exchange for the detail view, the agent's status; plus the list filter
//! and the header helpers the exports share.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::capture::{Body, Exchange, Limits, State};
use crate::events::ConnectionState;
use crate::exchange::{RequestLog, RequestOutcome};

/// One line of the list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub id: u64,
    pub request_id: String,
    /// Set on a replay: the exchange it replays.
    pub replay_of: Option<u64>,
    /// When the agent received the request (RFC 3339, UTC).
    pub started_at: String,
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub state: State,
    /// What the visitor got: the local service's status, or the error's.
    pub status: Option<u16>,
    /// How long the local service took, in milliseconds.
    pub duration_ms: Option<f64>,
    pub request_size: usize,
    pub response_size: Option<usize>,
    pub request_content_type: Option<String>,
    pub response_content_type: Option<String>,
    /// Why the request failed, in plain words.
    pub error: Option<String>,
    /// Whether a body was cut in the capture.
    pub truncated: bool,
    /// Set when the request was refused at the edge by the access policy
    /// (`state` is `refused`): it never reached the agent, so there are no
    /// headers, body, response or duration, and it cannot be replayed.
    pub refused: Option<RefusedView>,
}

/// Why the tunnel server refused a request, as its notice said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefusedView {
    /// Always `edge`: the tunnel server refused it before it reached the
    /// agent.
    pub at: &'static str,
    /// Which check refused it, in a few words.
    pub reason: String,
    /// The visitor's IP, as API Gateway reported it.
    pub source_ip: Option<String>,
}

impl Summary {
    pub fn of(e: &Exchange) -> Summary {
        Summary {
            id: e.id,
            request_id: e.request_id.clone(),
            replay_of: e.replay_of,
            started_at: rfc3339(e.started_at),
            method: e.request.method.clone(),
            uri: e.request.uri.clone(),
            state: e.state(),
            status: e.status(),
            // A refused request never had a local service to wait for.
            duration_ms: e.duration.filter(|_| e.refused.is_none()).map(millis),
            request_size: e.request.body.size,
            response_size: e.response.as_ref().map(|r| r.body.size),
            request_content_type: header(&e.request.headers, "content-type").map(str::to_owned),
            response_content_type: e
                .response
                .as_ref()
                .and_then(|r| header(&r.headers, "content-type"))
                .map(str::to_owned),
            error: e.failure.as_ref().map(|f| f.message.clone()),
            truncated: e.request.body.truncated()
                || e.response.as_ref().is_some_and(|r| r.body.truncated()),
            refused: e.refused.as_ref().map(|r| RefusedView {
                at: "edge",
                reason: r.reason.clone(),
                source_ip: r.source_ip.clone(),
            }),
        }
    }

    /// A replay that was dropped from the ring before it could be read back
    /// (a ring of one or two exchanges): what its log line says.
    pub(crate) fn gone(id: u64, replay_of: u64, log: &RequestLog, started: SystemTime) -> Summary {
        let (state, status, error) = match &log.outcome {
            RequestOutcome::Status(s) => (State::Answered, Some(*s), None),
            RequestOutcome::Failed { code, message } => (
                State::Failed,
                Some(code.http_status()),
                Some(message.clone()),
            ),
        };
        Summary {
            id,
            request_id: log.request_id.clone(),
            replay_of: Some(replay_of),
            started_at: rfc3339(started),
            method: log.method.clone(),
            uri: log.path.clone(),
            state,
            status,
            duration_ms: Some(millis(log.duration)),
            request_size: 0,
            response_size: None,
            request_content_type: None,
            response_content_type: None,
            error,
            truncated: false,
            refused: None,
        }
    }
}

/// One exchange in full.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detail {
    #[serde(flatten)]
    pub summary: Summary,
    /// When the tunnel server received the request (RFC 3339), if it said.
    pub server_received_at: Option<String>,
    pub request: RequestView,
    /// `None` while in flight, or when the local service never answered.
    pub response: Option<ResponseView>,
    /// Set when the visitor got an error page.
    pub failure: Option<FailureView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestView {
    pub method: String,
    pub uri: String,
    /// `[name, value]` pairs, repeats kept.
    pub headers: Vec<(String, String)>,
    pub body: BodyView,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseView {
    pub status: u16,
    /// `OK`, `Not Found`… (empty for unusual codes).
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: BodyView,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureView {
    /// The protocol's error code (`timeout`, `local_service_unavailable`…).
    pub code: protocol::ErrorCode,
    pub message: String,
    /// The status the visitor got.
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BodyView {
    /// The whole body's size.
    pub size: usize,
    /// Bytes kept in the capture.
    pub captured: usize,
    pub truncated: bool,
    /// The captured bytes, base64.
    pub base64: String,
}

impl BodyView {
    fn of(body: &Body) -> BodyView {
        BodyView {
            size: body.size,
            captured: body.bytes.len(),
            truncated: body.truncated(),
            base64: protocol::encode_body(&body.bytes),
        }
    }
}

impl Detail {
    pub fn of(e: &Exchange) -> Detail {
        Detail {
            summary: Summary::of(e),
            server_received_at: (e.server_timestamp_ms > 0).then(|| {
                rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(e.server_timestamp_ms))
            }),
            request: RequestView {
                method: e.request.method.clone(),
                uri: e.request.uri.clone(),
                headers: pairs(&e.request.headers),
                body: BodyView::of(&e.request.body),
            },
            response: e.response.as_ref().map(|r| ResponseView {
                status: r.status,
                reason: reason(r.status).to_owned(),
                headers: pairs(&r.headers),
                body: BodyView::of(&r.body),
            }),
            failure: e.failure.as_ref().map(|f| FailureView {
                code: f.code,
                message: f.message.clone(),
                status: f.code.http_status(),
            }),
        }
    }
}

/// The agent as the page's header shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// `starting`, `connecting`, `connected`, `reconnecting` or `stopped`.
    pub connection: &'static str,
    /// Why it is reconnecting or stopped.
    pub reason: Option<String>,
    pub public_url: Option<String>,
    /// The local service.
    pub target: Option<String>,
    pub limits: LimitsView,
    /// Exchanges kept now.
    pub captured: usize,
    /// Body bytes kept now.
    pub body_bytes: usize,
    /// The agent's version.
    pub version: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitsView {
    pub max_requests: usize,
    pub max_body_bytes: usize,
    /// Each body is cut after this many bytes.
    pub body_limit: usize,
}

impl Status {
    pub(crate) fn new(limits: Limits) -> Status {
        Status {
            connection: "starting",
            reason: None,
            public_url: None,
            target: None,
            limits: LimitsView {
                max_requests: limits.max_requests,
                max_body_bytes: limits.max_body_bytes,
                body_limit: limits.per_body(),
            },
            captured: 0,
            body_bytes: 0,
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    pub(crate) fn set_connection(&mut self, state: &ConnectionState) {
        let (connection, reason) = match state {
            ConnectionState::Connecting => ("connecting", None),
            ConnectionState::Connected(established) => {
                self.public_url = Some(established.public_url.clone());
                ("connected", None)
            }
            ConnectionState::Reconnecting { reason, .. } => ("reconnecting", Some(reason.clone())),
            ConnectionState::Stopped(error) => ("stopped", error.as_ref().map(|e| e.to_string())),
        };
        self.connection = connection;
        self.reason = reason;
    }
}

/// The list's filter (`GET /api/requests?q=…&method=…&status=…&replay=…&limit=…`),
/// the same rules the page applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Filter {
    /// Text found (case-insensitively) in the method, path and query,
    /// status, request id or error message.
    pub q: Option<String>,
    /// Exact method, any case.
    pub method: Option<String>,
    /// `2xx`…`5xx`, an exact code (`404`), `error` (the agent answered with
    /// an error page), `pending` (in flight) or `refused` (refused at the
    /// edge by the access policy).
    pub status: Option<String>,
    /// Only replays (`true`) or only visitors' requests (`false`).
    pub replay: Option<bool>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

impl Filter {
    pub fn matches(&self, e: &Exchange) -> bool {
        if let Some(method) = self.method.as_deref().filter(|m| !m.is_empty())
            && !e.request.method.eq_ignore_ascii_case(method)
        {
            return false;
        }
        if let Some(replay) = self.replay
            && e.replay_of.is_some() != replay
        {
            return false;
        }
        if let Some(status) = self.status.as_deref().filter(|s| !s.is_empty()) {
            let code = e.status();
            let ok = match status.to_ascii_lowercase().as_str() {
                "error" => e.state() == State::Failed,
                "pending" => e.state() == State::InFlight,
                "refused" => e.state() == State::Refused,
                class if class.len() == 3 && class.ends_with("xx") => {
                    let digit = class.as_bytes()[0];
                    code.is_some_and(|c| (c / 100) as u8 + b'0' == digit)
                }
                exact => code.is_some_and(|c| c.to_string() == exact),
            };
            if !ok {
                return false;
            }
        }
        if let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let q = q.to_lowercase();
            let status = e.status().map(|s| s.to_string()).unwrap_or_default();
            let error = match (&e.failure, &e.refused) {
                (Some(f), _) => f.message.as_str(),
                (None, Some(r)) => r.reason.as_str(),
                (None, None) => "",
            };
            let hay = [
                e.request.method.as_str(),
                e.request.uri.as_str(),
                status.as_str(),
                e.request_id.as_str(),
                error,
            ];
            if !hay.iter().any(|h| h.to_lowercase().contains(&q)) {
                return false;
            }
        }
        true
    }
}

/// `[name, value]` pairs in the headers' order, repeats kept.
pub fn pairs(headers: &protocol::Headers) -> Vec<(String, String)> {
    headers
        .iter()
        .flat_map(|(name, values)| values.iter().map(move |v| (name.clone(), v.clone())))
        .collect()
}

/// The first value of header `name`, any case.
pub fn header<'a>(headers: &'a protocol::Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

pub(super) fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

pub(super) fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t).format(&Rfc3339).unwrap_or_default()
}

/// Milliseconds with two decimals.
pub(super) fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::inspect::capture::{CapturedRequest, CapturedResponse, Failure};
    use protocol::{ErrorCode, Headers};

    pub(crate) fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in pairs {
            h.entry(n.to_string()).or_default().push(v.to_string());
        }
        h
    }

    pub(crate) fn exchange(method: &str, uri: &str, body: &[u8]) -> Exchange {
        Exchange {
            id: 7,
            request_id: "req-1".into(),
            replay_of: None,
            started_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            server_timestamp_ms: 0,
            request: CapturedRequest {
                method: method.into(),
                uri: uri.into(),
                headers: headers(&[
                    ("host", "abc.tunnel.example.com"),
                    ("content-type", "application/json"),
                    ("x-forwarded-for", "203.0.113.7"),
                    ("x-signature", "it's"),
                    ("accept", "a"),
                    ("accept", "b"),
                ]),
                body: Body::capture(body, 1000),
            },
            response: None,
            failure: None,
            refused: None,
            duration: None,
        }
    }

    #[test]
    fn summary_says_what_the_visitor_got() {
        let mut e = exchange("POST", "/hook?x=1", b"{}");
        let s = Summary::of(&e);
        assert_eq!(s.state, State::InFlight);
        assert_eq!(s.started_at, "2023-11-14T22:13:20.123Z");
        assert_eq!((s.status, s.duration_ms), (None, None));
        assert_eq!(s.request_content_type.as_deref(), Some("application/json"));

        e.response = Some(CapturedResponse {
            status: 201,
            headers: headers(&[("Content-Type", "text/plain")]),
            body: Body::capture(b"created", 3),
        });
        e.duration = Some(Duration::from_micros(14_250));
        let s = Summary::of(&e);
        assert_eq!(s.state, State::Answered);
        assert_eq!(s.status, Some(201));
        assert_eq!(s.duration_ms, Some(14.25));
        assert_eq!(s.response_size, Some(7));
        assert_eq!(s.response_content_type.as_deref(), Some("text/plain"));
        assert!(s.truncated);

        // The response arrived but could not be carried: the visitor got 502.
        e.failure = Some(Failure {
            code: ErrorCode::PayloadTooLarge,
            message: "too large".into(),
        });
        let s = Summary::of(&e);
        assert_eq!((s.state, s.status), (State::Failed, Some(502)));
        assert_eq!(s.error.as_deref(), Some("too large"));
    }

    #[test]
    fn detail_json_shape() {
        let mut e = exchange("GET", "/a", b"hi");
        e.server_timestamp_ms = 1_700_000_000_100;
        e.response = Some(CapturedResponse {
            status: 404,
            headers: headers(&[("set-cookie", "a=1"), ("set-cookie", "b=2")]),
            body: Body::capture(b"nope", 100),
        });
        e.duration = Some(Duration::from_millis(2));
        let json = serde_json::to_value(Detail::of(&e)).unwrap();
        assert_eq!(json["id"], 7);
        assert_eq!(json["server_received_at"], "2023-11-14T22:13:20.1Z");
        assert_eq!(json["request"]["body"]["base64"], "aGk=");
        assert_eq!(
            json["request"]["headers"][0],
            serde_json::json!(["accept", "a"])
        );
        assert_eq!(
            json["request"]["headers"][1],
            serde_json::json!(["accept", "b"])
        );
        assert_eq!(json["response"]["reason"], "Not Found");
        assert_eq!(
            json["response"]["headers"],
            serde_json::json!([["set-cookie", "a=1"], ["set-cookie", "b=2"]])
        );
        assert_eq!(
            json["response"]["body"],
            serde_json::json!({"size": 4, "captured": 4, "truncated": false, "base64": "bm9wZQ=="})
        );
        assert_eq!(json["failure"], serde_json::Value::Null);
    }

    #[test]
    fn filters() {
        let mut e = exchange("POST", "/webhooks/Stripe?x=1", b"");
        e.response = Some(CapturedResponse {
            status: 404,
            headers: Headers::new(),
            body: Body::default(),
        });
        e.duration = Some(Duration::ZERO);
        let f = |q: &str, method: &str, status: &str| Filter {
            q: Some(q.into()),
            method: Some(method.into()),
            status: Some(status.into()),
            ..Filter::default()
        };
        assert!(f("", "", "").matches(&e));
        assert!(f("stripe", "post", "4xx").matches(&e));
        assert!(f("x=1", "", "404").matches(&e));
        assert!(f("404", "", "").matches(&e));
        assert!(!f("github", "", "").matches(&e));
        assert!(!f("", "GET", "").matches(&e));
        assert!(!f("", "", "2xx").matches(&e));
        assert!(!f("", "", "error").matches(&e));
        assert!(!f("", "", "pending").matches(&e));
        let replays = Filter {
            replay: Some(true),
            ..Filter::default()
        };
        assert!(!replays.matches(&e));
        e.replay_of = Some(1);
        assert!(replays.matches(&e));

        e.failure = Some(Failure {
            code: ErrorCode::Timeout,
            message: "did not answer within 20 s".into(),
        });
        assert!(f("within 20", "", "error").matches(&e));
        assert!(f("", "", "5xx").matches(&e));
    }

    pub(crate) fn refused() -> Exchange {
        let mut e = exchange("GET", "/admin", b"");
        e.request.headers = Headers::new();
        e.refused = Some(super::super::capture::Refusal {
            reason: "source IP not allowed".into(),
            source_ip: Some("198.51.100.9".into()),
            status: 403,
        });
        e.duration = Some(Duration::ZERO);
        e
    }

    #[test]
    fn a_refused_request_is_marked_and_filtered_by_its_reason() {
        let e = refused();
        let s = Summary::of(&e);
        assert_eq!(s.state, State::Refused);
        assert_eq!(s.status, Some(403));
        assert_eq!(s.duration_ms, None);
        let r = s.refused.unwrap();
        assert_eq!((r.at, r.reason.as_str()), ("edge", "source IP not allowed"));
        assert_eq!(r.source_ip.as_deref(), Some("198.51.100.9"));
        let status = |status: &str| Filter {
            status: Some(status.into()),
            ..Filter::default()
        };
        assert!(status("refused").matches(&e));
        assert!(status("4xx").matches(&e));
        assert!(!status("refused").matches(&exchange("GET", "/", b"")));
        let q = Filter {
            q: Some("IP NOT".into()),
            ..Filter::default()
        };
        assert!(q.matches(&e));
    }
}
