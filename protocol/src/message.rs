//! The messages, parsed and serialized in one place.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::limits::MAX_MESSAGE_BYTES;

/// Header name → every value, in the order received. Names are lowercase on
/// the server side (the HTTP API lowercases them); values are never joined, so
/// repeated headers and every `Set-Cookie` survive.
pub type Headers = BTreeMap<String, Vec<String>>;

/// One WebSocket text message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Agent → server, right after the upgrade: "send me my URL".
    Ready(Ready),
    /// Server → agent: the tunnel is live at `public_url`.
    ConnectionEstablished(ConnectionEstablished),
    /// Server → agent: a visitor's request.
    #[serde(deserialize_with = "without_chunks")]
    HttpRequest(HttpRequest),
    /// Agent → server: the local service's answer.
    #[serde(deserialize_with = "without_chunks")]
    HttpResponse(HttpResponse),
    /// Heartbeat, either direction.
    Ping,
    /// Answer to a heartbeat.
    Pong,
    /// Something went wrong, for one request (`request_id`) or the connection.
    Error(ErrorMessage),
    /// Server → agent: a visitor's request was refused by the tunnel's
    /// access policy (see [`crate::policy`]). Informational; an older agent
    /// parses it as [`Message::Unknown`].
    Rejected(crate::policy::Rejected),
    /// A `type` this version does not know: log it and carry on.
    #[serde(other, skip_serializing)]
    Unknown,
}

/// Sent by the agent after the upgrade. Fields are optional so later versions
/// can add what they need (a resume token, say) without breaking old servers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionEstablished {
    pub connection_id: String,
    pub subdomain: String,
    pub public_url: String,
    /// Present it on the next handshake ([`crate::HEADER_RESUME_TOKEN`]) to
    /// get `subdomain` back within [`crate::limits::RESUME_WINDOW`]. A secret:
    /// never log it. Absent from servers that do not support resuming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<String>,
    /// How long the server lets this connection live (API Gateway: 2 h),
    /// counted from the handshake. The agent opens a successor before then
    /// and hands the tunnel over without dropping a request. Absent from
    /// older servers: the agent assumes API Gateway's 2 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
}

// By hand: the resume token is a secret and `Debug` output ends up in logs.
impl std::fmt::Debug for ConnectionEstablished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionEstablished")
            .field("connection_id", &self.connection_id)
            .field("subdomain", &self.subdomain)
            .field("public_url", &self.public_url)
            .field("resume_token", &self.resume_token.as_ref().map(|_| "***"))
            .field("max_age_secs", &self.max_age_secs)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub request_id: String,
    pub method: String,
    /// Path plus the raw query string (`/a/b?x=1&x=2`), byte-exact as received.
    pub uri: String,
    #[serde(default)]
    pub headers: Headers,
    /// Base64 of the body bytes; empty for no body.
    #[serde(default)]
    pub body: String,
    /// When the server received the request, epoch milliseconds.
    #[serde(default)]
    pub timestamp: u64,
    /// Set when the body waits in the bodies bucket (`body` is empty): the
    /// agent fetches exactly `length` bytes before calling its service.
    /// Protocol 2 ([`crate::PROTOCOL_VERSION`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_download: Option<BodyDownload>,
    /// Where the agent PUTs an answer body larger than
    /// [`crate::limits::INLINE_ANSWER_BODY_BYTES`] (then sending
    /// [`HttpResponse::body_uploaded`] instead of `body`). Absent: every
    /// answer body travels in the message. Protocol 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_upload: Option<SignedUrl>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    pub request_id: String,
    pub status_code: u16,
    #[serde(default)]
    pub headers: Headers,
    /// Base64 of the body bytes; empty for no body.
    #[serde(default)]
    pub body: String,
    /// Time the agent spent on the local request, milliseconds.
    #[serde(default)]
    pub processing_time_ms: u64,
    /// Set when the agent has PUT the body to the request's
    /// [`HttpRequest::response_upload`] (`body` is empty). Protocol 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_uploaded: Option<BodyUploaded>,
}

/// A URL forwarding presigned for one object of the tunnel's bodies bucket:
/// one method on one key, valid for [`crate::limits::SIGNED_URL_TTL`]. It
/// is a credential while it lives: `Debug` shows only its scheme and host,
/// and nothing logs it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignedUrl(String);

impl SignedUrl {
    pub fn new(url: impl Into<String>) -> SignedUrl {
        SignedUrl(url.into())
    }

    /// The URL itself, to send a request to (never to print).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `scheme://host`, safe to show: no path, no query (the signature).
    pub fn origin(&self) -> &str {
        let after_scheme = self.0.find("://").map_or(0, |i| i + 3);
        let end = self.0[after_scheme..]
            .find(['/', '?', '#'])
            .map_or(self.0.len(), |i| after_scheme + i);
        &self.0[..end]
    }
}

impl std::fmt::Debug for SignedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignedUrl({}/…)", self.origin())
    }
}

/// A request body too large for the message, waiting in the bodies bucket:
/// a GET of `url` returns exactly `length` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyDownload {
    pub url: SignedUrl,
    pub length: u64,
}

/// An answer whose body the agent PUT to the request's upload URL
/// instead of sending it inline: `length` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyUploaded {
    pub length: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub code: ErrorCode,
    /// Plain words for a human; shown to the visitor for request errors.
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request could not be turned into a local request.
    InvalidRequest,
    /// The local service did not answer in time.
    Timeout,
    /// The local service refused or dropped the connection.
    LocalServiceUnavailable,
    /// The local service's response cannot be carried (too large).
    PayloadTooLarge,
    /// Anything else.
    InternalError,
    /// The agent is at its limit of requests in flight; the visitor may try
    /// again in a moment (503). Added after the first release: a server that
    /// does not know it parses it as [`ErrorCode::Unknown`] and answers 502
    /// with the agent's message, so an old server still gives a clear page.
    Overloaded,
    /// A code this version does not know; treated like `internal_error`.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The status a visitor sees when a request fails with this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::Timeout => 504,
            ErrorCode::Overloaded => 503,
            ErrorCode::LocalServiceUnavailable
            | ErrorCode::PayloadTooLarge
            | ErrorCode::InternalError
            | ErrorCode::Unknown => 502,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("message is not valid protocol JSON: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("message of {size} bytes exceeds the {MAX_MESSAGE_BYTES}-byte WebSocket limit")]
    TooLarge { size: usize },
}

/// A message JSON, refused above the WebSocket message limit.
fn within_limit(json: serde_json::Result<String>) -> Result<String, ProtocolError> {
    let json = json.map_err(ProtocolError::Malformed)?;
    if json.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge { size: json.len() });
    }
    Ok(json)
}

/// Protocol 1 announced a body too large for one message with
/// `body_chunks` (the body then followed in `body_chunk` messages, now an
/// unknown type). Parsed as a message with an empty body it would deliver a
/// wrong one, so it is malformed instead: a clear error, nothing delivered.
const RETIRED_CHUNKS: &str =
    "`body_chunks` (protocol 1's chunked bodies) is no longer carried: update the agent";

/// Deserializes an `http_request` or `http_response`, refusing a
/// `body_chunks` field.
fn without_chunks<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    struct Checked<T> {
        #[serde(flatten)]
        message: T,
        #[serde(default)]
        body_chunks: Option<serde::de::IgnoredAny>,
    }
    let checked = Checked::<T>::deserialize(deserializer)?;
    if checked.body_chunks.is_some() {
        return Err(serde::de::Error::custom(RETIRED_CHUNKS));
    }
    Ok(checked.message)
}

impl Message {
    /// Parses one text frame.
    pub fn from_json(text: &str) -> Result<Message, ProtocolError> {
        serde_json::from_str(text).map_err(ProtocolError::Malformed)
    }

    /// Serializes for a text frame, refusing what API Gateway would refuse.
    pub fn to_json(&self) -> Result<String, ProtocolError> {
        within_limit(serde_json::to_string(self))
    }

    /// The message's `type` tag, for logs (never log the message itself: it
    /// may carry bodies).
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Ready(_) => "ready",
            Message::ConnectionEstablished(_) => "connection_established",
            Message::HttpRequest(_) => "http_request",
            Message::HttpResponse(_) => "http_response",
            Message::Ping => "ping",
            Message::Pong => "pong",
            Message::Error(_) => "error",
            Message::Rejected(_) => "rejected",
            Message::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::{Value, json};

    fn headers(pairs: &[(&str, &[&str])]) -> Headers {
        pairs
            .iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect()
    }

    fn request() -> HttpRequest {
        HttpRequest {
            request_id: "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a".into(),
            method: "POST".into(),
            uri: "/hooks/a%20b?x=1&x=2&y".into(),
            headers: headers(&[("accept", &["a", "b"]), ("cookie", &["k=v"])]),
            body: "AAEC/w==".into(),
            timestamp: 1_764_000_000_123,
            body_download: None,
            response_upload: None,
        }
    }

    fn response() -> HttpResponse {
        HttpResponse {
            request_id: "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a".into(),
            status_code: 201,
            headers: headers(&[("set-cookie", &["a=1", "b=2"])]),
            body: "aGk=".into(),
            processing_time_ms: 12,
            body_uploaded: None,
        }
    }

    /// Every message's exact wire shape; a change here breaks deployed agents.
    #[rstest]
    #[case(Message::Ready(Ready {}), json!({"type": "ready"}))]
    #[case(
        Message::ConnectionEstablished(ConnectionEstablished {
            connection_id: "L0SM9cOFvHcCIhw=".into(),
            subdomain: "abc123def456".into(),
            public_url: "https://abc123def456.tunnel.example.com".into(),
            resume_token: None,
            max_age_secs: None,
        }),
        json!({
            "type": "connection_established",
            "connection_id": "L0SM9cOFvHcCIhw=",
            "subdomain": "abc123def456",
            "public_url": "https://abc123def456.tunnel.example.com"
        })
    )]
    #[case(
        Message::ConnectionEstablished(ConnectionEstablished {
            connection_id: "L0SM9cOFvHcCIhw=".into(),
            subdomain: "abc123def456".into(),
            public_url: "https://abc123def456.tunnel.example.com".into(),
            resume_token: Some("abc123def456.r".into()),
            max_age_secs: Some(7200),
        }),
        json!({
            "type": "connection_established",
            "connection_id": "L0SM9cOFvHcCIhw=",
            "subdomain": "abc123def456",
            "public_url": "https://abc123def456.tunnel.example.com",
            "resume_token": "abc123def456.r",
            "max_age_secs": 7200
        })
    )]
    #[case(
        Message::HttpRequest(request()),
        json!({
            "type": "http_request",
            "request_id": "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a",
            "method": "POST",
            "uri": "/hooks/a%20b?x=1&x=2&y",
            "headers": {"accept": ["a", "b"], "cookie": ["k=v"]},
            "body": "AAEC/w==",
            "timestamp": 1_764_000_000_123u64
        })
    )]
    #[case(
        Message::HttpResponse(response()),
        json!({
            "type": "http_response",
            "request_id": "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a",
            "status_code": 201,
            "headers": {"set-cookie": ["a=1", "b=2"]},
            "body": "aGk=",
            "processing_time_ms": 12
        })
    )]
    #[case(
        Message::HttpRequest(HttpRequest {
            body: String::new(),
            body_download: Some(BodyDownload {
                url: SignedUrl::new("https://b.s3.amazonaws.com/req/1?X-Amz-Signature=g"),
                length: 1_048_576,
            }),
            response_upload: Some(SignedUrl::new("https://b.s3.amazonaws.com/res/2?X-Amz-Signature=p")),
            ..request()
        }),
        json!({
            "type": "http_request",
            "request_id": "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a",
            "method": "POST",
            "uri": "/hooks/a%20b?x=1&x=2&y",
            "headers": {"accept": ["a", "b"], "cookie": ["k=v"]},
            "body": "",
            "timestamp": 1_764_000_000_123u64,
            "body_download": {
                "url": "https://b.s3.amazonaws.com/req/1?X-Amz-Signature=g",
                "length": 1_048_576
            },
            "response_upload": "https://b.s3.amazonaws.com/res/2?X-Amz-Signature=p"
        })
    )]
    #[case(
        Message::HttpResponse(HttpResponse {
            body: String::new(),
            body_uploaded: Some(BodyUploaded { length: 70_000 }),
            ..response()
        }),
        json!({
            "type": "http_response",
            "request_id": "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a",
            "status_code": 201,
            "headers": {"set-cookie": ["a=1", "b=2"]},
            "body": "",
            "processing_time_ms": 12,
            "body_uploaded": {"length": 70_000}
        })
    )]
    #[case(Message::Ping, json!({"type": "ping"}))]
    #[case(Message::Pong, json!({"type": "pong"}))]
    #[case(
        Message::Error(ErrorMessage {
            request_id: Some("r1".into()),
            code: ErrorCode::LocalServiceUnavailable,
            message: "connection refused".into(),
        }),
        json!({
            "type": "error",
            "request_id": "r1",
            "code": "local_service_unavailable",
            "message": "connection refused"
        })
    )]
    #[case(
        Message::Error(ErrorMessage {
            request_id: None,
            code: ErrorCode::InternalError,
            message: "boom".into(),
        }),
        json!({"type": "error", "code": "internal_error", "message": "boom"})
    )]
    fn pins_the_wire_shape(#[case] message: Message, #[case] expected: Value) {
        let json = message.to_json().unwrap();
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value, expected);
        assert_eq!(Message::from_json(&json).unwrap(), message);
    }

    #[rstest]
    #[case("invalid_request", ErrorCode::InvalidRequest, 400)]
    #[case("timeout", ErrorCode::Timeout, 504)]
    #[case("local_service_unavailable", ErrorCode::LocalServiceUnavailable, 502)]
    #[case("payload_too_large", ErrorCode::PayloadTooLarge, 502)]
    #[case("internal_error", ErrorCode::InternalError, 502)]
    #[case("overloaded", ErrorCode::Overloaded, 503)]
    #[case("from_the_future", ErrorCode::Unknown, 502)]
    fn error_codes_parse_and_map(#[case] wire: &str, #[case] code: ErrorCode, #[case] status: u16) {
        let text = format!(r#"{{"type":"error","code":"{wire}","message":"m"}}"#);
        let Message::Error(parsed) = Message::from_json(&text).unwrap() else {
            panic!("not an error message");
        };
        assert_eq!(parsed.code, code);
        assert_eq!(code.http_status(), status);
    }

    #[test]
    fn unknown_fields_are_ignored_and_optional_fields_default() {
        let text =
            r#"{"type":"http_request","request_id":"r","method":"GET","uri":"/","future":{"x":1}}"#;
        let Message::HttpRequest(req) = Message::from_json(text).unwrap() else {
            panic!("not a request");
        };
        assert!(req.headers.is_empty());
        assert_eq!(req.body, "");
        assert_eq!(req.timestamp, 0);
        // What a protocol-1 server sends: no stored body, no upload URL.
        assert_eq!(req.body_download, None);
        assert_eq!(req.response_upload, None);
        let text = r#"{"type":"http_response","request_id":"r","status_code":200}"#;
        let Message::HttpResponse(res) = Message::from_json(text).unwrap() else {
            panic!("not a response");
        };
        assert_eq!(res.body_uploaded, None);

        let ready = Message::from_json(r#"{"type":"ready","resume_token":"t"}"#).unwrap();
        assert_eq!(ready, Message::Ready(Ready {}));
        let ping = Message::from_json(r#"{"type":"ping","sent_at":1}"#).unwrap();
        assert_eq!(ping, Message::Ping);
    }

    /// The bodies' wire shapes (fields of `http_request` / `http_response`).
    #[test]
    fn pins_the_stored_body_shapes() {
        let download = BodyDownload {
            url: SignedUrl::new("https://b.s3.amazonaws.com/req/ab?X-Amz-Signature=s"),
            length: 1_048_576,
        };
        assert_eq!(
            serde_json::to_value(&download).unwrap(),
            json!({"url": "https://b.s3.amazonaws.com/req/ab?X-Amz-Signature=s", "length": 1_048_576})
        );
        assert_eq!(
            serde_json::from_value::<BodyDownload>(json!({"url": "u", "length": 3, "later": 1}))
                .unwrap(),
            BodyDownload {
                url: SignedUrl::new("u"),
                length: 3
            }
        );
        let uploaded = BodyUploaded { length: 9000 };
        assert_eq!(
            serde_json::to_value(uploaded).unwrap(),
            json!({"length": 9000})
        );
        assert!(serde_json::from_value::<BodyUploaded>(json!({"length": -1})).is_err());
    }

    #[rstest]
    #[case(
        "https://b.s3.us-east-1.amazonaws.com/res/x?X-Amz-Signature=abc",
        "https://b.s3.us-east-1.amazonaws.com"
    )]
    #[case("http://127.0.0.1:5000/bucket/req/x?sig", "http://127.0.0.1:5000")]
    #[case("http://h?q", "http://h")]
    #[case("no-scheme/path", "no-scheme")]
    fn a_signed_url_shows_only_its_origin(#[case] url: &str, #[case] origin: &str) {
        let url = SignedUrl::new(url);
        assert_eq!(url.origin(), origin);
        let debug = format!("{url:?}");
        assert_eq!(debug, format!("SignedUrl({origin}/…)"));
        assert!(
            !debug.contains("sig") && !debug.contains("Signature"),
            "{debug}"
        );
    }

    #[test]
    fn unknown_types_parse_as_unknown() {
        let msg = Message::from_json(r#"{"type":"from_the_future","seq":3}"#).unwrap();
        assert_eq!(msg, Message::Unknown);
        assert_eq!(msg.kind(), "unknown");
    }

    /// Protocol 1's chunked bodies: a head with `body_chunks` is malformed
    /// (never an empty body), a `body_chunk` an unknown type.
    #[rstest]
    #[case(r#"{"type":"http_response","request_id":"r","status_code":200,"body":"","body_chunks":{"count":2,"length":100000}}"#)]
    #[case(r#"{"type":"http_request","request_id":"r","method":"POST","uri":"/","body_chunks":{"count":1,"length":5}}"#)]
    fn a_chunked_head_is_malformed_with_a_clear_error(#[case] text: &str) {
        let Err(ProtocolError::Malformed(e)) = Message::from_json(text) else {
            panic!("a chunked head parsed");
        };
        assert!(e.to_string().contains(RETIRED_CHUNKS), "{e}");
        assert_eq!(e.classify(), serde_json::error::Category::Data);
    }

    #[test]
    fn a_body_chunk_is_an_unknown_type() {
        let text = r#"{"type":"body_chunk","request_id":"r","index":0,"data":"AAAA"}"#;
        assert_eq!(Message::from_json(text).unwrap(), Message::Unknown);
    }

    #[rstest]
    #[case("")]
    #[case("not json")]
    #[case("[]")]
    #[case(r#"{"no_type":1}"#)]
    #[case(r#"{"type":"http_response","request_id":"r"}"#)]
    #[case(r#"{"type":"http_response","request_id":"r","status_code":"200"}"#)]
    #[case(r#"{"type":"http_response","request_id":"r","status_code":70000}"#)]
    fn malformed_messages_are_errors(#[case] text: &str) {
        assert!(matches!(
            Message::from_json(text),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_to_serialize_over_the_message_limit() {
        let mut big = response();
        big.body = "A".repeat(MAX_MESSAGE_BYTES);
        let err = Message::HttpResponse(big).to_json().unwrap_err();
        assert!(matches!(err, ProtocolError::TooLarge { size } if size > MAX_MESSAGE_BYTES));
    }

    #[test]
    fn unknown_cannot_be_sent() {
        assert!(Message::Unknown.to_json().is_err());
    }
}
