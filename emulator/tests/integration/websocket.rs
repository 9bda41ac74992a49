//! WebSocket API: events, routing, status mapping, limits and disconnects.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{
        self, Message,
        client::IntoClientRequest as _,
        protocol::{
            CloseFrame,
            frame::{
                Frame,
                coding::{CloseCode, Data, OpCode},
            },
        },
    },
};

use crate::common::{Reports, WAIT, config_with, is_api_gateway_id, keys, start};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(url: &str) -> Client {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-custom", "custom-value".parse().unwrap());
    request
        .headers_mut()
        .insert("user-agent", "emulator-tests".parse().unwrap());
    connect_async(request).await.expect("handshake").0
}

/// The next close frame the server sends (other frames are skipped).
async fn close_frame(client: &mut Client) -> Option<CloseFrame> {
    tokio::time::timeout(WAIT, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("closed in time")
}

async fn next_text(client: &mut Client) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            match client.next().await.expect("open").expect("frame") {
                Message::Text(text) => return text.to_string(),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("a text frame in time")
}

#[tokio::test]
async fn connect_and_disconnect_events_carry_the_connection() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let mut client = connect(emulator.websocket_url()).await;
    let connect = reports.next_event_type("CONNECT").await["event"].clone();

    let parsed: ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(connect.clone()).expect("parses");
    assert_eq!(
        parsed.request_context.route_key.as_deref(),
        Some("$connect")
    );
    // Keys, types and formats against AWS's recordings: events.rs.
    assert_eq!(
        keys(&connect["headers"]),
        keys(&connect["multiValueHeaders"])
    );
    for name in [
        "Host",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "X-Amzn-Trace-Id",
        "X-Forwarded-For",
        "X-Forwarded-Port",
        "X-Forwarded-Proto",
        "x-custom",
    ] {
        assert!(
            connect["headers"].get(name).is_some(),
            "{name} in {:?}",
            keys(&connect["headers"])
        );
    }
    // The client's own casing: tungstenite writes `Host` and `Sec-WebSocket-Key`
    // that way and the extra headers in lowercase.
    assert_eq!(connect["headers"]["x-custom"], "custom-value");
    assert_eq!(
        connect["multiValueHeaders"]["x-custom"],
        serde_json::json!(["custom-value"])
    );
    let context = &connect["requestContext"];
    assert_eq!(context["eventType"], "CONNECT");
    assert_eq!(context["messageDirection"], "IN");
    assert_eq!(context["stage"], "local");
    assert_eq!(context["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(context["requestId"], context["extendedRequestId"]);
    assert!(is_api_gateway_id(&context["connectionId"]));
    assert!(is_api_gateway_id(&context["requestId"]));
    assert!(context["requestTime"].as_str().unwrap().ends_with(" +0000"));
    assert!(
        context["requestTimeEpoch"].as_i64().unwrap() >= context["connectedAt"].as_i64().unwrap()
    );

    client.close(None).await.unwrap();
    let disconnect = reports.next_event_type("DISCONNECT").await["event"].clone();
    let _: ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(disconnect.clone()).expect("parses");
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1005);
    assert_eq!(
        disconnect["requestContext"]["disconnectReason"],
        "Client-side close frame status not set"
    );
    assert_eq!(
        disconnect["requestContext"]["connectedAt"],
        context["connectedAt"]
    );
    assert_eq!(
        disconnect["requestContext"]["connectionId"],
        context["connectionId"]
    );
}

#[tokio::test]
async fn query_strings_reach_connect_only_when_present() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let _client = connect(&format!("{}?a=1&a=2&b=x%20y", emulator.websocket_url())).await;
    let event = reports.next_event_type("CONNECT").await["event"].clone();
    assert_eq!(event["queryStringParameters"]["a"], "2");
    assert_eq!(event["queryStringParameters"]["b"], "x y");
    assert_eq!(
        event["multiValueQueryStringParameters"]["a"],
        serde_json::json!(["1", "2"])
    );
    let _: ApiGatewayWebsocketProxyRequest = serde_json::from_value(event).expect("parses");
}

#[tokio::test]
async fn messages_are_routed_by_action_with_default_fallback() {
    let mut reports = Reports::start().await;
    let mut config = config_with(&reports, &[]);
    config.functions.push(reports.function("send", &[]));
    config
        .websocket
        .routes
        .insert("sendmessage".into(), "send".into());
    let emulator = start(config).await;
    let mut client = connect(emulator.websocket_url()).await;
    let connect_event = reports.next_event_type("CONNECT").await["event"].clone();

    client
        .send(Message::text(r#"{"action":"sendmessage","data":1}"#))
        .await
        .unwrap();
    let routed = reports.next_event_type("MESSAGE").await["event"].clone();
    let _: ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(routed.clone()).expect("parses");
    assert_eq!(routed["requestContext"]["routeKey"], "sendmessage");
    assert_eq!(routed["body"], r#"{"action":"sendmessage","data":1}"#);
    assert_eq!(routed["isBase64Encoded"], false);
    assert!(routed.get("headers").is_none() && routed.get("queryStringParameters").is_none());
    assert!(is_api_gateway_id(&routed["requestContext"]["messageId"]));
    assert_eq!(
        routed["requestContext"]["connectedAt"],
        connect_event["requestContext"]["connectedAt"]
    );
    let mut expected_keys = keys(&connect_event["requestContext"]);
    expected_keys.insert("messageId".into());
    assert_eq!(keys(&routed["requestContext"]), expected_keys);
    assert_eq!(emulator.counters().functions["send"].invocations, 1);

    for body in [r#"{"action":"unknown"}"#, "plain text"] {
        client.send(Message::text(body)).await.unwrap();
        let event = reports.next_event_type("MESSAGE").await["event"].clone();
        assert_eq!(event["requestContext"]["routeKey"], "$default");
        assert_eq!(event["body"], body);
    }
}

#[tokio::test]
async fn a_failing_message_route_sends_internal_server_error_and_stays_open() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let mut client = connect(emulator.websocket_url()).await;
    let connection_id =
        reports.next_event_type("CONNECT").await["event"]["requestContext"]["connectionId"].clone();

    client
        .send(Message::text(r#"{"mode":"error"}"#))
        .await
        .unwrap();
    let frame: Value = serde_json::from_str(&next_text(&mut client).await).unwrap();
    assert_eq!(frame["message"], "Internal server error");
    assert_eq!(frame["connectionId"], connection_id);
    assert!(is_api_gateway_id(&frame["requestId"]));

    // Still open: the next message goes through.
    client
        .send(Message::text(r#"{"mode":"echo","n":2}"#))
        .await
        .unwrap();
    let event = reports
        .next_where(|e| e["body"] == r#"{"mode":"echo","n":2}"#)
        .await;
    assert_eq!(
        event["event"]["requestContext"]["connectionId"],
        connection_id
    );
}

#[tokio::test]
async fn connect_status_is_passed_through_and_failures_are_502() {
    let reports = Reports::start().await;
    let mut config = config_with(&reports, &[]);
    config.websocket.integration_timeout_secs = Some(1);
    let emulator = start(config).await;
    for (mode, status) in [
        ("status:403", 403),
        ("status:401", 401),
        ("error", 502),
        ("crash", 502),
        ("sleep:5000", 502),
    ] {
        let url = format!("{}?mode={mode}", emulator.websocket_url());
        match connect_async(url).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), status, "{mode}")
            }
            other => panic!(
                "{mode}: expected a rejected handshake, got {:?}",
                other.map(|(_, r)| r.status())
            ),
        }
    }
    // 2xx other than 200 accepts.
    let _client = connect(&format!("{}?mode=status:204", emulator.websocket_url())).await;
}

#[tokio::test]
async fn binary_frames_close_1003() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let mut client = connect(emulator.websocket_url()).await;
    client.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        close_frame(&mut client).await.map(|f| f.code),
        Some(CloseCode::Unsupported)
    );
    let event = reports.next_event_type("DISCONNECT").await;
    assert_eq!(
        event["event"]["requestContext"]["disconnectStatusCode"],
        1003
    );
}

#[tokio::test]
async fn frames_over_32_kb_close_1009() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let mut client = connect(emulator.websocket_url()).await;
    // Exactly 32 KB is fine.
    client
        .send(Message::text("a".repeat(32 * 1024)))
        .await
        .unwrap();
    let event = reports.next_event_type("MESSAGE").await;
    assert_eq!(event["event"]["body"].as_str().unwrap().len(), 32 * 1024);
    client
        .send(Message::text("a".repeat(32 * 1024 + 1)))
        .await
        .unwrap();
    assert_eq!(
        close_frame(&mut client).await.map(|f| f.code),
        Some(CloseCode::Size)
    );
    let event = reports.next_event_type("DISCONNECT").await;
    assert_eq!(
        event["event"]["requestContext"]["disconnectStatusCode"],
        1009
    );
}

#[tokio::test]
async fn messages_over_128_kb_close_1009() {
    let reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let mut client = connect(emulator.websocket_url()).await;
    // Five 30 KB fragments of one message: every frame is allowed, the message is not.
    let chunk = vec![b'a'; 30 * 1024];
    client
        .send(Message::Frame(Frame::message(
            chunk.clone(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .unwrap();
    for i in 0..4 {
        let last = i == 3;
        if client
            .send(Message::Frame(Frame::message(
                chunk.clone(),
                OpCode::Data(Data::Continue),
                last,
            )))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        close_frame(&mut client).await.map(|f| f.code),
        Some(CloseCode::Size)
    );
}

#[tokio::test]
async fn client_close_codes_are_reported() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let mut client = connect(emulator.websocket_url()).await;
    client
        .close(Some(CloseFrame {
            code: CloseCode::Library(4001),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    let event = reports.next_event_type("DISCONNECT").await;
    assert_eq!(
        event["event"]["requestContext"]["disconnectStatusCode"],
        4001
    );
    assert_eq!(event["event"]["requestContext"]["disconnectReason"], "bye");
}

#[tokio::test]
async fn an_abrupt_tcp_drop_is_1006() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let client = connect(emulator.websocket_url()).await;
    reports.next_event_type("CONNECT").await;
    drop(client);
    let event = reports.next_event_type("DISCONNECT").await;
    assert_eq!(
        event["event"]["requestContext"]["disconnectStatusCode"],
        1006
    );
}

#[tokio::test]
async fn idle_connections_are_closed_and_disconnected() {
    let mut reports = Reports::start().await;
    let mut config = config_with(&reports, &[]);
    config.limits.idle_timeout_secs = 1;
    let emulator = start(config).await;
    let mut client = connect(emulator.websocket_url()).await;
    assert_eq!(
        close_frame(&mut client).await.map(|f| f.code),
        Some(CloseCode::Away)
    );
    let event = reports.next_event_type("DISCONNECT").await;
    assert_eq!(
        event["event"]["requestContext"]["disconnectStatusCode"],
        1001
    );
}

#[tokio::test]
async fn connections_are_closed_at_their_maximum_age() {
    let mut reports = Reports::start().await;
    let mut config = config_with(&reports, &[]);
    config.limits.max_connection_age_secs = 1;
    let emulator = start(config).await;
    let mut client = connect(emulator.websocket_url()).await;
    assert_eq!(
        close_frame(&mut client).await.map(|f| f.code),
        Some(CloseCode::Away)
    );
    let event = reports.next_event_type("DISCONNECT").await;
    assert_eq!(
        event["event"]["requestContext"]["disconnectStatusCode"],
        1001
    );
    assert_eq!(
        event["event"]["requestContext"]["disconnectReason"],
        "Going away"
    );
}
