//! `@connections` through the real `aws-sdk-apigatewaymanagement` client.

use aws_sdk_apigatewaymanagement::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
    primitives::Blob,
};
use futures_util::StreamExt as _;
use tokio_tungstenite::{
    connect_async,
    tungstenite::{Message, protocol::frame::coding::CloseCode},
};

use crate::common::{Reports, WAIT, config_with, http_client, start};

fn sdk_client(endpoint: &str) -> Client {
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
        .build();
    Client::from_conf(config)
}

#[tokio::test]
async fn post_get_and_delete_with_the_sdk() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let (mut ws, _) = connect_async(emulator.websocket_url()).await.unwrap();
    let connect = reports.next_event_type("CONNECT").await;
    let id = connect["event"]["requestContext"]["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(id.ends_with('='), "exercises %3D decoding");
    let client = sdk_client(emulator.management_endpoint());

    client
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new("hello"))
        .send()
        .await
        .expect("post");
    let frame = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame, Message::text("hello"));

    let got = client
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("get");
    let connected_at = got
        .connected_at()
        .expect("connectedAt")
        .to_millis()
        .unwrap();
    assert_eq!(
        connected_at,
        connect["event"]["requestContext"]["connectedAt"]
            .as_i64()
            .unwrap()
    );
    assert!(got.last_active_at().is_some());
    assert_eq!(
        got.identity().and_then(|i| i.source_ip()),
        Some("127.0.0.1")
    );

    client
        .delete_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("delete");
    let close = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Ok(Message::Close(frame))) = ws.next().await {
                return frame;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Normal));
    let disconnect = reports.next_event_type("DISCONNECT").await;
    assert_eq!(
        disconnect["event"]["requestContext"]["disconnectStatusCode"],
        1000
    );

    let error = client
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new("late"))
        .send()
        .await
        .unwrap_err();
    assert!(error.into_service_error().is_gone_exception());
    let error = client
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(error.into_service_error().is_gone_exception());
    let error = client
        .delete_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(error.into_service_error().is_gone_exception());
}

#[tokio::test]
async fn unknown_ids_are_gone_and_large_posts_are_rejected() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let client = sdk_client(emulator.management_endpoint());
    let error = client
        .post_to_connection()
        .connection_id("AAAAAAAAAAAAAAA=")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert!(error.into_service_error().is_gone_exception());

    let (_ws, _) = connect_async(emulator.websocket_url()).await.unwrap();
    let id = reports.next_event_type("CONNECT").await["event"]["requestContext"]["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    client
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new(vec![b'a'; 131_072]))
        .send()
        .await
        .expect("128 KB is allowed");
    let error = client
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new(vec![b'a'; 131_073]))
        .send()
        .await
        .unwrap_err();
    assert!(error.into_service_error().is_payload_too_large_exception());

    // Malformed id, raw: 400 with the error type header.
    let response = http_client()
        .post(format!(
            "{}/@connections/bad%20id",
            emulator.management_endpoint()
        ))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "BadRequestException"
    );
    // Raw gone, with the header the SDK relies on.
    let response = http_client()
        .post(format!(
            "{}/@connections/AAAAAAAAAAAAAAA%3D",
            emulator.management_endpoint()
        ))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 410);
    assert_eq!(response.headers()["x-amzn-errortype"], "GoneException");
}

#[tokio::test]
async fn posting_while_connect_runs_is_gone() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let url = format!("{}?mode=sleep:1500", emulator.websocket_url());
    let handshake = tokio::spawn(async move { connect_async(url).await.map(|(ws, _)| ws) });
    // The fixture reports before it sleeps: `$connect` is running now.
    let id = reports.next_event_type("CONNECT").await["event"]["requestContext"]["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = sdk_client(emulator.management_endpoint());
    let error = client
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new("early"))
        .send()
        .await
        .unwrap_err();
    assert!(error.into_service_error().is_gone_exception());

    let mut ws = handshake.await.unwrap().expect("handshake completes");
    // Once the 101 is out the connection exists (the server registers it right after).
    let posted = tokio::time::timeout(WAIT, async {
        loop {
            match client
                .post_to_connection()
                .connection_id(&id)
                .data(Blob::new("now"))
                .send()
                .await
            {
                Ok(_) => return,
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_gone_exception()) =>
                {
                    tokio::task::yield_now().await
                }
                Err(error) => panic!("{error:?}"),
            }
        }
    })
    .await;
    assert!(posted.is_ok());
    let frame = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame, Message::text("now"));
}
