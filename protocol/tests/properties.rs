//! Properties of every parser of untrusted input in the protocol: messages
//! and tokens. Whatever arrives, parsing never panics, a refusal is an error
//! that says something, and what is accepted round-trips.
//!
//! Bounded: a fixed number of cases per property and small inputs, so the
//! whole file runs in seconds.

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use protocol::auth::{self, Claims, Secret, TokenError};
use protocol::limits::MAX_MESSAGE_BYTES;
use protocol::{
    BodyDownload, BodyUploaded, ConnectionEstablished, ErrorCode, ErrorMessage, Headers,
    HttpRequest, HttpResponse, Message, ProtocolError, Ready, SignedUrl,
};
use serde_json::Value;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 2000,
        max_shrink_time: 20_000,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------------------- strategies

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", "[ -~]{0,40}", Just(String::new())]
}

fn headers() -> impl Strategy<Value = Headers> {
    btree_map("[a-z-]{1,12}", vec(text(), 1..3), 0..4)
}

fn signed_url() -> impl Strategy<Value = SignedUrl> {
    prop_oneof![
        "https://[a-z0-9.-]{1,20}/(req|res)/[0-9a-f]{32}\\?X-Amz-Signature=[0-9a-f]{8}",
        text(),
    ]
    .prop_map(SignedUrl::new)
}

fn body_download() -> impl Strategy<Value = BodyDownload> {
    (signed_url(), any::<u64>()).prop_map(|(url, length)| BodyDownload { url, length })
}

fn base64() -> impl Strategy<Value = String> {
    vec(any::<u8>(), 0..64).prop_map(|b| protocol::encode_body(&b))
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::InvalidRequest),
        Just(ErrorCode::Timeout),
        Just(ErrorCode::LocalServiceUnavailable),
        Just(ErrorCode::PayloadTooLarge),
        Just(ErrorCode::InternalError),
        Just(ErrorCode::Overloaded),
        Just(ErrorCode::Unknown),
    ]
}

/// Any message a peer can send (every variant but `Unknown`, which is only
/// ever parsed).
fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::Ready(Ready {})),
        Just(Message::Ping),
        Just(Message::Pong),
        (
            text(),
            text(),
            text(),
            option::of(text()),
            option::of(any::<u64>())
        )
            .prop_map(|(c, s, u, r, m)| {
                Message::ConnectionEstablished(ConnectionEstablished {
                    connection_id: c,
                    subdomain: s,
                    public_url: u,
                    resume_token: r,
                    max_age_secs: m,
                })
            }),
        (
            text(),
            text(),
            text(),
            headers(),
            base64(),
            any::<u64>(),
            option::of(body_download()),
            option::of(signed_url()),
        )
            .prop_map(
                |(
                    request_id,
                    method,
                    uri,
                    headers,
                    body,
                    timestamp,
                    body_download,
                    response_upload,
                )| {
                    Message::HttpRequest(HttpRequest {
                        request_id,
                        method,
                        uri,
                        headers,
                        body,
                        timestamp,
                        body_download,
                        response_upload,
                    })
                }
            ),
        (
            text(),
            any::<u16>(),
            headers(),
            base64(),
            any::<u64>(),
            option::of(any::<u64>().prop_map(|length| BodyUploaded { length })),
        )
            .prop_map(
                |(request_id, status_code, headers, body, processing_time_ms, body_uploaded)| {
                    Message::HttpResponse(HttpResponse {
                        request_id,
                        status_code,
                        headers,
                        body,
                        processing_time_ms,
                        body_uploaded,
                    })
                }
            ),
        (option::of(text()), error_code(), text()).prop_map(|(request_id, code, message)| {
            Message::Error(ErrorMessage {
                request_id,
                code,
                message,
            })
        }),
    ]
}

/// Field names the messages use, and some they do not.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "type",
            "request_id",
            "method",
            "uri",
            "headers",
            "body",
            "timestamp",
            "body_chunks",
            "body_download",
            "response_upload",
            "body_uploaded",
            "url",
            "count",
            "length",
            "index",
            "data",
            "code",
            "message",
            "status_code",
            "processing_time_ms",
            "connection_id",
            "subdomain",
            "public_url",
            "resume_token",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,8}",
    ]
}

/// JSON of any shape, with message-like field names.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 40, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object tagged with a real (or made-up) message type.
fn tagged_json() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        prop::sample::select(vec![
            "ready",
            "connection_established",
            "http_request",
            "http_response",
            "body_chunk",
            "ping",
            "pong",
            "error",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{0,10}",
    ];
    (kind, btree_map(field_name(), json(), 0..8)).prop_map(|(kind, fields)| {
        let mut object: serde_json::Map<String, Value> = fields.into_iter().collect();
        object.insert("type".into(), Value::from(kind));
        Value::Object(object).to_string()
    })
}

/// A few edits: delete, insert or replace a character.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let c = prop_oneof![
        prop::sample::select(vec![
            '{', '}', '[', ']', '"', ':', ',', '\\', '0', '9', '-', 'e', '.', 'n', ' ', 'é'
        ]),
        any::<char>(),
    ];
    vec(
        prop_oneof![
            any::<usize>().prop_map(Edit::Delete),
            (any::<usize>(), c.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
            (any::<usize>(), c).prop_map(|(i, c)| Edit::Replace(i, c)),
        ],
        1..5,
    )
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let len = chars.len().max(1);
        match *edit {
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i % chars.len());
            }
            Edit::Delete(_) => {}
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::Replace(i, c) if !chars.is_empty() => chars[i % len] = c,
            Edit::Replace(_, c) => chars.push(c),
        }
    }
    chars.into_iter().collect()
}

/// Whatever parsed must serialize and parse back to itself (an `Unknown`
/// type cannot be sent; an over-limit one is refused, not truncated).
fn assert_round_trips(message: &Message) {
    match message.to_json() {
        Ok(json) => {
            assert!(json.len() <= MAX_MESSAGE_BYTES);
            assert_eq!(&Message::from_json(&json).unwrap(), message);
        }
        Err(ProtocolError::TooLarge { size }) => assert!(size > MAX_MESSAGE_BYTES),
        Err(ProtocolError::Malformed(_)) => assert_eq!(message, &Message::Unknown),
    }
}

fn assert_clear(error: &ProtocolError) {
    let text = error.to_string();
    assert!(text.starts_with("message "), "{text}");
}

// ------------------------------------------------------------- messages

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_text_parses_or_is_a_clear_error(text in ".*") {
        match Message::from_json(&text) {
            Ok(message) => assert_round_trips(&message),
            Err(e) => assert_clear(&e),
        }
    }

    #[test]
    fn json_of_any_shape_parses_or_is_a_clear_error(text in tagged_json()) {
        match Message::from_json(&text) {
            Ok(message) => assert_round_trips(&message),
            Err(e) => assert_clear(&e),
        }
    }

    #[test]
    fn every_message_round_trips(message in message()) {
        assert_round_trips(&message);
    }

    #[test]
    fn mutated_messages_parse_or_are_clear_errors(message in message(), edits in edits()) {
        let json = message.to_json().unwrap();
        let mutated = apply(&json, &edits);
        match Message::from_json(&mutated) {
            Ok(parsed) => assert_round_trips(&parsed),
            Err(e) => assert_clear(&e),
        }
    }
}

/// The fields protocol 2 added ([`protocol::PROTOCOL_VERSION`]).
const PROTOCOL_2_FIELDS: [&str; 3] = ["body_download", "response_upload", "body_uploaded"];

/// `message` as a protocol-1 peer sees it: without protocol 2's fields.
fn as_protocol_1(message: &Message) -> Message {
    match message.clone() {
        Message::HttpRequest(request) => Message::HttpRequest(HttpRequest {
            body_download: None,
            response_upload: None,
            ..request
        }),
        Message::HttpResponse(response) => Message::HttpResponse(HttpResponse {
            body_uploaded: None,
            ..response
        }),
        other => other,
    }
}

/// An `http_request` as a protocol-1 agent parses it (its struct had only
/// these fields, and serde ignores the others).
#[derive(Debug, PartialEq, serde::Deserialize)]
struct Protocol1Request {
    request_id: String,
    method: String,
    uri: String,
    #[serde(default)]
    headers: Headers,
    #[serde(default)]
    body: String,
    #[serde(default)]
    timestamp: u64,
    #[serde(default)]
    body_chunks: Option<Value>,
}

proptest! {
    #![proptest_config(config(256))]

    /// Protocol 2 only adds optional fields: a message without them is
    /// exactly what protocol 1 sent, and a protocol-1 message (the fields
    /// stripped) parses to the same message with the fields absent.
    #[test]
    fn protocol_2_fields_are_optional_both_ways(message in message()) {
        let Ok(json) = message.to_json() else { return Ok(()) };
        let mut value: Value = serde_json::from_str(&json).unwrap();
        let object = value.as_object_mut().unwrap();
        for field in PROTOCOL_2_FIELDS {
            object.remove(field);
        }
        let old = Message::from_json(&value.to_string()).unwrap();
        prop_assert_eq!(&old, &as_protocol_1(&message));
        let old_json = old.to_json().unwrap();
        for field in PROTOCOL_2_FIELDS {
            prop_assert!(!old_json.contains(&format!("\"{field}\"")), "{}", old_json);
        }
    }

    /// A protocol-1 agent reads a protocol-2 request (stored body or not)
    /// without an error: that is why connect must refuse it with 426 rather
    /// than rely on it noticing.
    #[test]
    fn a_protocol_1_agent_parses_protocol_2_requests(
        download in option::of(body_download()),
        upload in option::of(signed_url()),
        body in base64(),
    ) {
        let request = HttpRequest {
            request_id: "r".into(),
            method: "POST".into(),
            uri: "/".into(),
            headers: Headers::new(),
            body,
            timestamp: 1,
            body_download: download,
            response_upload: upload,
        };
        let json = Message::HttpRequest(request.clone()).to_json().unwrap();
        let old: Protocol1Request = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(old, Protocol1Request {
            request_id: request.request_id,
            method: request.method,
            uri: request.uri,
            headers: request.headers,
            body: request.body,
            timestamp: 1,
            body_chunks: None,
        });
    }
}

// ------------------------------------------------------- protocol 1 chunks

/// A `body_chunks` head as a protocol-1 peer sent it.
fn chunked_head() -> impl Strategy<Value = Value> {
    (any::<u32>(), any::<u64>())
        .prop_map(|(count, length)| serde_json::json!({"count": count, "length": length}))
}

proptest! {
    #![proptest_config(config(256))]

    /// A request or answer announcing protocol 1's chunks is malformed
    /// with a clear error, never parsed as a message with an empty (so
    /// wrong) body.
    #[test]
    fn a_chunked_head_is_a_clear_error(message in message(), head in chunked_head()) {
        if !matches!(message, Message::HttpRequest(_) | Message::HttpResponse(_)) {
            return Ok(());
        }
        let Ok(json) = message.to_json() else { return Ok(()) };
        let mut value: Value = serde_json::from_str(&json).unwrap();
        value["body"] = Value::from("");
        value["body_chunks"] = head;
        let err = Message::from_json(&value.to_string()).unwrap_err();
        assert_clear(&err);
        prop_assert!(err.to_string().contains("protocol 1's chunked bodies"), "{}", err);
    }

    /// A `body_chunk` of any content is a type this version does not know.
    #[test]
    fn a_body_chunk_is_unknown(fields in btree_map(field_name(), json(), 0..6)) {
        let mut object: serde_json::Map<String, Value> = fields.into_iter().collect();
        object.insert("type".into(), Value::from("body_chunk"));
        let parsed = Message::from_json(&Value::Object(object).to_string()).unwrap();
        prop_assert_eq!(parsed, Message::Unknown);
    }
}

// ------------------------------------------------------------- tokens

const NOW: i64 = 1_764_000_000;

fn secret() -> Secret {
    Secret::new("0123456789abcdef0123456789abcdef-proptest").unwrap()
}

fn subdomain() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
}

fn claims() -> impl Strategy<Value = Claims> {
    (
        "[^\\s].{0,30}",
        -100_000i64..100_000,
        1i64..100_000_000,
        option::of(subdomain()),
    )
        .prop_map(|(user, iat_offset, valid_for, sub)| {
            Claims::new(
                &user,
                NOW + iat_offset.min(0),
                valid_for + 100_000,
                sub.as_deref(),
            )
        })
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_text_is_refused_as_a_token(token in ".{0,200}") {
        let err = auth::verify(&secret(), &token, NOW).unwrap_err();
        prop_assert!(!err.to_string().is_empty());
        // Long enough not to be a word of the fixed error texts.
        if token.trim().len() > 30 {
            prop_assert!(!err.to_string().contains(token.trim()));
        }
    }

    /// Three base64url parts of any JSON, signed or not.
    #[test]
    fn jwt_shaped_garbage_is_refused(header in json(), payload in json(), signature in vec(any::<u8>(), 0..40)) {
        let token = format!(
            "{}.{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(payload.to_string().as_bytes()),
            b64url(&signature)
        );
        prop_assert!(auth::verify(&secret(), &token, NOW).is_err());
    }

    #[test]
    fn minted_tokens_verify_to_their_claims(claims in claims()) {
        let token = auth::mint(&secret(), &claims);
        prop_assert_eq!(auth::verify(&secret(), &token, NOW), Ok(claims.clone()));
        let other = Secret::new("another-secret-of-at-least-32-bytes!!").unwrap();
        prop_assert_eq!(auth::verify(&other, &token, NOW), Err(TokenError::BadSignature));
    }

    /// Any one character changed anywhere: refused.
    #[test]
    fn an_altered_token_never_verifies(
        claims in claims(),
        at in any::<usize>(),
        with in prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".chars().collect::<Vec<_>>()
        ),
    ) {
        let token = auth::mint(&secret(), &claims);
        let mut chars: Vec<char> = token.chars().collect();
        let at = at % chars.len();
        prop_assume!(chars[at] != with);
        chars[at] = with;
        let altered: String = chars.into_iter().collect();
        prop_assert!(auth::verify(&secret(), &altered, NOW).is_err(), "{altered}");
    }

    #[test]
    fn resume_tokens_parse_only_as_what_was_generated(text in ".{0,80}", sub in subdomain()) {
        if let Some(parsed) = auth::resume_token_subdomain(&text) {
            prop_assert!(protocol::is_valid_subdomain(parsed));
        }
        let token = auth::generate_resume_token(&sub);
        prop_assert_eq!(auth::resume_token_subdomain(&token), Some(sub.as_str()));
        prop_assert_eq!(auth::resume_token_hash(&token).len(), 43);
    }
}
