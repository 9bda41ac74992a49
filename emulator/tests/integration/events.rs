//! Every event the emulator produces, compared field by field with AWS's own
//! recordings (`tests/fixtures/aws/`, sources in its NOTICE): the same keys
//! at every depth, the same JSON types, the same value formats. Only values
//! that must differ are normalised (ids, times, addresses, API id, domain,
//! the trace id, what the local client itself sent differently).

use std::collections::BTreeSet;

use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::{
    connect_async,
    tungstenite::{Message, client::IntoClientRequest as _},
};

use crate::common::{Reports, aws_fixture, config_with, http_client, is_api_gateway_id, start};

/// Differences between `ours` and `aws` in keys and JSON types, at every
/// depth (`skip`: JSON pointers AWS has and the emulator must not, each for
/// a reason given where it is listed).
pub fn shape_differences(ours: &Value, aws: &Value, skip: &[&str]) -> Vec<String> {
    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "float",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
    fn walk(path: &str, ours: &Value, aws: &Value, skip: &[&str], out: &mut Vec<String>) {
        if kind(ours) != kind(aws) {
            out.push(format!("{path}: {} here, {} on AWS", kind(ours), kind(aws)));
            return;
        }
        match (ours, aws) {
            (Value::Object(o), Value::Object(a)) => {
                let keys: BTreeSet<&String> = o.keys().chain(a.keys()).collect();
                for key in keys {
                    let child = format!("{path}/{key}");
                    if skip.contains(&child.as_str()) {
                        continue;
                    }
                    match (o.get(key), a.get(key)) {
                        (Some(x), Some(y)) => walk(&child, x, y, skip, out),
                        (Some(_), None) => out.push(format!("{child}: only here")),
                        (None, Some(_)) => out.push(format!("{child}: only on AWS")),
                        (None, None) => {}
                    }
                }
            }
            (Value::Array(o), Value::Array(a)) => {
                if let (Some(x), Some(y)) = (o.first(), a.first()) {
                    walk(&format!("{path}/0"), x, y, skip, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", ours, aws, skip, &mut out);
    out
}

/// `05/Apr/2020:05:20:58 +0000`, AWS's `requestTime` / `time`.
pub fn is_request_time(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    s.len() == 26
        && b[2] == b'/'
        && b[6] == b'/'
        && b[11] == b':'
        && s.ends_with(" +0000")
        && s[3..6]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase())
        && [&s[0..2], &s[7..11], &s[12..14], &s[15..17], &s[18..20]]
            .iter()
            .all(|d| d.bytes().all(|c| c.is_ascii_digit()))
}

/// Epoch milliseconds of this century (13 digits), not seconds.
pub fn is_epoch_ms(v: &Value) -> bool {
    v.as_i64()
        .is_some_and(|n| (1_000_000_000_000..10_000_000_000_000).contains(&n))
}

/// The value formats of a WebSocket event's `requestContext`.
fn assert_websocket_formats(context: &Value) {
    for key in ["connectionId", "requestId", "extendedRequestId"] {
        assert!(is_api_gateway_id(&context[key]), "{key}: {}", context[key]);
    }
    assert_eq!(context["requestId"], context["extendedRequestId"]);
    assert!(
        is_request_time(&context["requestTime"]),
        "{}",
        context["requestTime"]
    );
    assert!(is_epoch_ms(&context["connectedAt"]));
    assert!(is_epoch_ms(&context["requestTimeEpoch"]));
    assert_eq!(context["messageDirection"], "IN");
}

#[test]
fn the_formats_hold_on_aws_recordings() {
    // The checks above are AWS's formats: they accept what AWS recorded.
    let v2 = aws_fixture("voker-apigwv2-request.json");
    assert!(is_api_gateway_id(&v2["requestContext"]["requestId"]));
    assert!(is_request_time(&v2["requestContext"]["time"]));
    assert!(is_epoch_ms(&v2["requestContext"]["timeEpoch"]));
    let v2 = aws_fixture("example-apigw-v2-request-no-authorizer.json");
    assert!(is_api_gateway_id(&v2["requestContext"]["requestId"]));
    assert!(is_request_time(&v2["requestContext"]["time"]));
    for name in [
        "example-apigw-websocket-request-without-method.json",
        "example-apigw-websocket-request-disconnect-route.json",
    ] {
        let context = &aws_fixture(name)["requestContext"];
        assert!(is_request_time(&context["requestTime"]), "{name}");
        assert!(is_epoch_ms(&context["connectedAt"]), "{name}");
        assert!(is_epoch_ms(&context["requestTimeEpoch"]), "{name}");
    }
    // And refuse the classic mistakes.
    assert!(!is_epoch_ms(&json!(1_587_481_701)));
    assert!(!is_request_time(&json!("2020-04-21T15:08:21Z")));
    assert!(!is_request_time(&json!("12/Mar/2020:19:03:58+0000")));
}

/// The HTTP API event for the very request AWS recorded (hotsock/voker's
/// live capture): every field equal to AWS's, but those that must differ.
#[tokio::test]
async fn http_api_event_matches_aws_live_capture() {
    let reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let aws = aws_fixture("voker-apigwv2-request.json");
    let url = format!(
        "{}{}?{}",
        emulator.http_url(),
        "/capture/space%20value",
        aws["rawQueryString"].as_str().unwrap()
    );
    let response = http_client()
        .post(url)
        .header("accept", "*/*")
        .header("content-type", "application/json")
        .header("user-agent", "curl/8.7.1")
        .header("cookie", "session=abc123; theme=dark")
        .header("x-voker-probe", "first")
        .header("x-voker-probe", "second")
        .body(aws["body"].as_str().unwrap().to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let ours: Value = response.json().await.unwrap();

    // The capture was re-serialised by a typed Go logger, which writes every
    // optional field: `null` maps and empty authorizer/mTLS blocks that AWS
    // omits (its own no-authorizer recording below has none of them).
    let logger_artefacts = [
        "/pathParameters",
        "/stageVariables",
        "/requestContext/authentication",
        "/requestContext/authorizer",
    ];
    assert_eq!(
        shape_differences(&ours, &aws, &logger_artefacts),
        Vec::<String>::new()
    );

    // Equal values, except what must differ.
    let mut expected = aws.clone();
    let mut actual = ours.clone();
    for artefact in logger_artefacts {
        let (parent, key) = artefact.rsplit_once('/').unwrap();
        expected
            .pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(key);
    }
    for pointer in [
        "/headers/host",
        "/headers/x-amzn-trace-id",
        "/headers/x-forwarded-for",
        "/headers/x-forwarded-port",
        "/headers/x-forwarded-proto",
        "/requestContext/accountId",
        "/requestContext/apiId",
        "/requestContext/domainName",
        "/requestContext/domainPrefix",
        "/requestContext/http/sourceIp",
        "/requestContext/requestId",
        "/requestContext/time",
        "/requestContext/timeEpoch",
    ] {
        for value in [&mut expected, &mut actual] {
            if let Some(v) = value.pointer_mut(pointer) {
                *v = json!("(normalised)");
            }
        }
    }
    assert_eq!(actual, expected);

    // And the formats of what was normalised.
    let context = &ours["requestContext"];
    assert!(is_api_gateway_id(&context["requestId"]));
    assert!(is_request_time(&context["time"]));
    assert!(is_epoch_ms(&context["timeEpoch"]));
    assert_eq!(context["domainName"], ours["headers"]["host"]);
    assert!(
        ours["headers"]["x-amzn-trace-id"]
            .as_str()
            .unwrap()
            .starts_with("Root=1-")
    );
}

/// The same request checked against AWS's own recorded GET (aws_lambda_events'
/// fixture): no body, no query, no cookies → those keys are omitted, not null.
#[tokio::test]
async fn http_api_event_omits_empty_parts_as_aws_does() {
    let reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let ours: Value = http_client()
        .get(format!("{}/", emulator.http_url()))
        .header("user-agent", "curl/7.58.0")
        .header("accept", "*/*")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let aws = aws_fixture("example-apigw-v2-request-no-authorizer.json");
    // Recorded with mutual TLS; curl sent a content-length that reqwest does not.
    let skip = ["/requestContext/authentication", "/headers/content-length"];
    assert_eq!(shape_differences(&ours, &aws, &skip), Vec::<String>::new());
}

async fn connect_with_fixture_headers(
    emulator: &emulator::Emulator,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = emulator.websocket_url().into_client_request().unwrap();
    // What the recorded client sent (besides the handshake itself).
    request
        .headers_mut()
        .insert("x-api-key", "asdfasdf".parse().unwrap());
    connect_async(request).await.expect("handshake").0
}

#[tokio::test]
async fn websocket_events_match_aws_recordings() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let mut client = connect_with_fixture_headers(&emulator).await;

    let connect = reports.next_event_type("CONNECT").await["event"].clone();
    let aws = aws_fixture("example-apigw-websocket-request-without-method.json");
    // The recorded API required API keys: only then does `identity` carry
    // `apiKey` and `apiKeyId` (the emulator has no API keys; README).
    let skip = [
        "/requestContext/identity/apiKey",
        "/requestContext/identity/apiKeyId",
    ];
    assert_eq!(
        shape_differences(&connect, &aws, &skip),
        Vec::<String>::new()
    );
    assert_websocket_formats(&connect["requestContext"]);
    // Header casing as the client wrote it; values API Gateway adds.
    assert_eq!(connect["headers"]["x-api-key"], "asdfasdf");
    assert_eq!(connect["headers"]["Sec-WebSocket-Version"], "13");
    assert_eq!(
        connect["headers"]["X-Forwarded-Proto"], "http",
        "no TLS locally"
    );
    for (name, value) in connect["headers"].as_object().unwrap() {
        assert_eq!(connect["multiValueHeaders"][name], json!([value]), "{name}");
    }

    // MESSAGE: AWS's recorded `$connect` context plus `messageId`, a body,
    // and no headers at all (aws-semantics.md, WebSocket API → Lambda events).
    client.send(Message::text(r#"{"k":"v"}"#)).await.unwrap();
    let message = reports.next_event_type("MESSAGE").await["event"].clone();
    let mut aws_message = json!({
        "requestContext": aws["requestContext"].clone(),
        "body": "text",
        "isBase64Encoded": false,
    });
    aws_message["requestContext"]["messageId"] = json!("Kf2dGd9lywMCEng=");
    assert_eq!(
        shape_differences(&message, &aws_message, &skip),
        Vec::<String>::new()
    );
    assert_websocket_formats(&message["requestContext"]);
    assert!(is_api_gateway_id(&message["requestContext"]["messageId"]));
    assert_eq!(
        message["requestContext"]["connectedAt"],
        connect["requestContext"]["connectedAt"]
    );

    client.close(None).await.unwrap();
    let disconnect = reports.next_event_type("DISCONNECT").await["event"].clone();
    let aws = aws_fixture("example-apigw-websocket-request-disconnect-route.json");
    assert_eq!(
        shape_differences(&disconnect, &aws, &[]),
        Vec::<String>::new()
    );
    assert_websocket_formats(&disconnect["requestContext"]);
    // The placeholders, exactly (but the host).
    let mut ours = disconnect["headers"].clone();
    let mut theirs = aws["headers"].clone();
    ours["Host"] = json!("h");
    theirs["Host"] = json!("h");
    assert_eq!(ours, theirs);
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1005);
    assert_eq!(
        disconnect["requestContext"]["disconnectReason"],
        aws["requestContext"]["disconnectReason"]
    );
}
