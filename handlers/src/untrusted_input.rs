//! Properties of the handlers' parsers of untrusted input, through their
//! real entry points on the fake: whatever an agent sends the response
//! function, and whatever event the HTTP API hands forwarding, nothing
//! panics, the answer is a clear status, and nothing is written for anyone
//! else's request. Bounded: a fixed number of cases, each on its own fake.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::fake::Fake;
use crate::manifest;
use crate::testing::{forwarding_config, response_config, ws_event};
use crate::websocket::WebsocketResponse;

const CONN: &str = "L0SM9cOFvHcCIhw=";
const OTHER: &str = "Other0000000AA=";
/// A request answered by another connection (another tunnel's).
const THEIRS: &str = "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Sends `body` as a message from `CONN` while `OTHER` has answered
/// `THEIRS`, and checks what must hold whatever the body was.
fn agent_sends(body: String) -> Result<Fake, TestCaseError> {
    let fake = Fake::default();
    fake.insert_connection(CONN, "abc123def456");
    let their_answer = crate::pages::text_response(THEIRS, 201, "theirs");
    fake.insert_answer(OTHER, &their_answer);
    let mut event = ws_event("response-ready.json");
    event.body = Some(body);
    let status = block_on(crate::response::handle(
        &response_config(),
        &fake,
        &fake,
        &fake,
        event,
    ));
    prop_assert_eq!(status, WebsocketResponse::OK);
    fake.assert_within(&manifest::RESPONSE);
    prop_assert_eq!(
        fake.answer(THEIRS, OTHER),
        Some(their_answer),
        "another tunnel's answer changed"
    );
    prop_assert!(
        fake.count("PutItem") <= 1,
        "more than one write for a message"
    );
    prop_assert!(
        fake.answer_count() <= 2,
        "more than this connection's answer"
    );
    for (to, _) in fake.posts() {
        prop_assert_eq!(to, CONN, "posted to another connection");
    }
    Ok(fake)
}

/// A request id: the other tunnel's, a well-formed stranger, or junk.
fn request_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(THEIRS)),
        Just(json!("00000000-0000-4000-8000-000000000000")),
        ".{0,64}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

/// A base64 body: valid, invalid, or huge.
fn body() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256)
            .prop_map(|b| json!(protocol::encode_body(&b))),
        "[^\"]{0,64}".prop_map(Value::from),
        (0usize..4).prop_map(|n| json!("A".repeat(n * 70_000))),
        any::<bool>().prop_map(Value::from),
    ]
}

/// A number that is sometimes in range, sometimes not a count at all.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u32..60).prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,8}".prop_map(Value::from),
    ]
}

/// Messages shaped like the protocol's, with hostile values.
fn hostile_message() -> impl Strategy<Value = String> {
    let response = (
        request_id(),
        number(),
        body(),
        proptest::option::of((number(), number())),
    )
        .prop_map(|(id, status, body, chunks)| {
            let mut m = json!({"type": "http_response", "request_id": id,
                "status_code": status, "headers": {"x": ["y"]}, "body": body});
            if let Some((count, length)) = chunks {
                m["body_chunks"] = json!({"count": count, "length": length});
            }
            m.to_string()
        });
    let error = (request_id(), ".{0,16}", ".{0,300}").prop_map(|(id, code, message)| {
        json!({"type": "error", "request_id": id, "code": code, "message": message}).to_string()
    });
    let other = prop_oneof![
        Just(r#"{"type":"ready"}"#.to_string()),
        Just(r#"{"type":"ping"}"#.to_string()),
        ".{0,12}".prop_map(|t| json!({ "type": t }).to_string()),
    ];
    prop_oneof![3 => response, 3 => body_chunk(), 1 => error, 1 => other]
}

/// What a protocol-1 agent sent for a large answer: a head announcing
/// `body_chunks` (any values, any body), or a `body_chunk`.
fn protocol_1_chunks() -> impl Strategy<Value = String> {
    let head = (request_id(), number(), body(), number(), number()).prop_map(
        |(id, status, body, count, length)| {
            json!({"type": "http_response", "request_id": id, "status_code": status,
                "body": body, "body_chunks": {"count": count, "length": length}})
            .to_string()
        },
    );
    prop_oneof![head, body_chunk()]
}

/// A protocol-1 `body_chunk`, with hostile values.
fn body_chunk() -> impl Strategy<Value = String> {
    (request_id(), number(), body()).prop_map(|(id, index, data)| {
        json!({"type": "body_chunk", "request_id": id, "index": index, "data": data}).to_string()
    })
}

/// Text that is almost JSON: truncated, nested, or any characters at all.
fn junk() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        hostile_message().prop_flat_map(|m| {
            let len = m.len();
            (Just(m), 0..=len).prop_map(|(m, cut)| {
                // Cut on a character boundary.
                let cut = (0..=cut)
                    .rev()
                    .find(|&i| m.is_char_boundary(i))
                    .unwrap_or(0);
                m[..cut].to_string()
            })
        }),
        (1usize..200).prop_map(|depth| "[".repeat(depth * 10)),
        Just("A".repeat(protocol::limits::MAX_MESSAGE_BYTES + 1)),
    ]
}

/// An HTTP API payload format 2.0 event with hostile parts (or not an event).
fn http_api_event() -> impl Strategy<Value = Value> {
    // Mostly what a header can carry (printable ASCII), sometimes anything.
    let text = || prop_oneof![4 => "[ -~]{0,40}", 1 => ".{0,40}"];
    let host = prop_oneof![
        Just("abc123def456.tunnel.example.com".to_string()),
        Just("tunnel.example.com".to_string()),
        text(),
    ];
    let header_name = "[a-zA-Z0-9-]{1,20}";
    (
        (
            prop_oneof![
                Just("GET".to_string()),
                Just("POST".to_string()),
                text().prop_map(String::from)
            ],
            text(),
            text(),
            host,
        ),
        proptest::collection::btree_map(header_name, text(), 0..6),
        proptest::option::of(proptest::collection::vec(text(), 0..4)),
        proptest::option::of(prop_oneof![4 => body(), 1 => text().prop_map(Value::from)]),
        any::<Option<bool>>(),
        any::<u8>(),
    )
        .prop_map(
            |((method, path, query, host), headers, cookies, body, base64, drop)| {
                let mut headers: serde_json::Map<String, Value> = headers
                    .into_iter()
                    .map(|(k, v)| (k.to_lowercase(), json!(v)))
                    .collect();
                headers.insert("host".into(), json!(host));
                let mut event = json!({
                    "version": "2.0",
                    "routeKey": "$default",
                    "rawPath": path,
                    "rawQueryString": query,
                    "headers": headers,
                    "requestContext": {
                        "accountId": "123456789012", "apiId": "httpapi01",
                        "domainName": host, "requestId": "JKJaXmPLvHcESHA=",
                        "routeKey": "$default", "stage": "$default",
                        "time": "25/Nov/2026:21:08:00 +0000", "timeEpoch": 1764104880000u64,
                        "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                 "sourceIp": "198.51.100.20", "userAgent": "x"}
                    },
                });
                if let Some(cookies) = cookies {
                    event["cookies"] = json!(cookies);
                }
                if let Some(body) = body {
                    event["body"] = body;
                }
                if let Some(base64) = base64 {
                    event["isBase64Encoded"] = json!(base64);
                }
                // Sometimes a part API Gateway always sends is missing.
                match drop % 8 {
                    0 => drop_key(&mut event, "requestContext"),
                    1 => drop_key(&mut event, "rawPath"),
                    2 => drop_key(&mut event, "headers"),
                    _ => {}
                }
                event
            },
        )
}

fn drop_key(event: &mut Value, key: &str) {
    event.as_object_mut().expect("an object").remove(key);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any text at all from an agent: no panic, 200 (the message is dropped
    /// with a warning), nothing done to another tunnel's request.
    #[test]
    fn any_text_from_an_agent_is_dropped_or_handled(body in junk()) {
        agent_sends(body)?;
    }

    /// Protocol-shaped messages with unknown ids, another tunnel's id, wrong
    /// indexes and counts, bad and huge bodies: the same.
    #[test]
    fn hostile_agent_messages_touch_no_other_request(body in hostile_message()) {
        agent_sends(body)?;
    }

    /// Protocol 1's chunks are invalid messages: nothing written for any
    /// request (a head's empty body would be a wrong answer), nothing posted.
    #[test]
    fn protocol_1_chunks_write_nothing(body in protocol_1_chunks()) {
        let fake = agent_sends(body)?;
        prop_assert_eq!(fake.count("PutItem"), 0);
        prop_assert!(fake.posts().is_empty());
    }

    /// Any HTTP API event forwarding can be handed (no tunnel is connected):
    /// the runtime's parse fails with an error, or forwarding answers a
    /// clear 4xx page; never a panic, a 5xx, a store write or a post.
    #[test]
    fn any_http_api_event_gets_a_clear_answer(event in http_api_event()) {
        let Ok(event) = serde_json::from_value::<ApiGatewayV2httpRequest>(event) else {
            // lambda_runtime reports a parse failure as the invocation's
            // error; nothing of ours runs.
            return Ok(());
        };
        let fake = Fake::default();
        let response = block_on(crate::forwarding::handle(&forwarding_config(), &fake, &fake, &fake, &fake, event));
        prop_assert!(
            matches!(response.status_code, 400 | 404 | 413),
            "status {}", response.status_code
        );
        prop_assert!(response.body.as_deref().is_some_and(|b| !b.trim().is_empty()), "no explanation");
        prop_assert!(fake.posts().is_empty());
        prop_assert!(fake.actions().iter().all(|a| a.action == "GetItem"), "a write");
        prop_assert!(fake.objects().is_empty(), "a stored body");
        fake.assert_within(&manifest::FORWARDING);
    }
}
