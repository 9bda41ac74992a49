//! `@connections` through the real `aws-sdk-apigatewaymanagement` client.

use aws_sdk_apigatewaymanagement::primitives::Blob;
use futures_util::StreamExt as _;
use tokio_tungstenite::{
    connect_async,
    tungstenite::{Message, protocol::frame::coding::CloseCode},
};

use crate::common::{Reports, WAIT, config_with, http_client, sdk_client, sdk_client_with, start};

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
    let client = sdk_client(&emulator, "f");

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
    let client = sdk_client(&emulator, "f");
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

    // Malformed id: 400 with the error type header.
    let error = client
        .post_to_connection()
        .connection_id("bad id")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    let raw = error.raw_response().expect("an HTTP answer");
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(
        raw.headers().get("x-amzn-errortype"),
        Some("BadRequestException")
    );
    // Gone, with the header the SDK relies on.
    let error = client
        .post_to_connection()
        .connection_id("AAAAAAAAAAAAAAA=")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    let raw = error.raw_response().expect("an HTTP answer");
    assert_eq!(raw.status().as_u16(), 410);
    assert_eq!(raw.headers().get("x-amzn-errortype"), Some("GoneException"));
}

type PostResult = Result<
    aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionOutput,
    aws_sdk_apigatewaymanagement::error::SdkError<
        aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError,
        aws_sdk_apigatewaymanagement::config::http::HttpResponse,
    >,
>;

/// A 403 with `x-amzn-ErrorType: ForbiddenException`, which the SDK models.
fn forbidden(result: PostResult, what: &str) {
    let error = result.expect_err(what);
    let raw = error.raw_response().expect("an HTTP answer");
    assert_eq!(raw.status().as_u16(), 403, "{what}");
    assert_eq!(
        raw.headers().get("x-amzn-errortype"),
        Some("ForbiddenException"),
        "{what}"
    );
    assert!(
        error.into_service_error().is_forbidden_exception(),
        "{what}"
    );
}

/// AWS wants SigV4 for `execute-api` in the API's region, from a role that
/// grants `execute-api:ManageConnections`; anything else is a 403
/// `ForbiddenException`, checked before the connection id.
#[tokio::test]
async fn only_signed_calls_of_granted_functions_are_accepted() {
    let mut reports = Reports::start().await;
    let mut config = config_with(&reports, &[]);
    config.functions.push(reports.function("no-grant", &[]));
    let emulator = start(config).await;
    let (_ws, _) = connect_async(emulator.websocket_url()).await.unwrap();
    let id = reports.next_event_type("CONNECT").await["event"]["requestContext"]["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let granted = emulator.function_credentials("f").unwrap();
    let post = |client: aws_sdk_apigatewaymanagement::Client, id: String| async move {
        client
            .post_to_connection()
            .connection_id(id)
            .data(Blob::new("x"))
            .send()
            .await
    };
    post(sdk_client(&emulator, "f"), id.clone())
        .await
        .expect("signed by a granted function");

    let wrong_secret = emulator::AwsCredentials {
        secret_access_key: format!("{}x", granted.secret_access_key),
        ..granted.clone()
    };
    let client = sdk_client_with(
        emulator.management_endpoint(),
        emulator.region(),
        &wrong_secret,
    );
    forbidden(post(client, id.clone()).await, "wrong secret");

    let client = sdk_client_with(emulator.management_endpoint(), "eu-north-1", &granted);
    forbidden(post(client, id.clone()).await, "wrong region");

    let unknown = emulator::AwsCredentials::generate();
    let client = sdk_client_with(emulator.management_endpoint(), emulator.region(), &unknown);
    forbidden(
        post(client, id.clone()).await,
        "credentials the emulator never gave",
    );

    // Signed by a function whose role has no execute-api:ManageConnections;
    // an unknown id is still a 403, not a 410.
    forbidden(
        post(sdk_client(&emulator, "no-grant"), id.clone()).await,
        "no grant",
    );
    forbidden(
        post(sdk_client(&emulator, "no-grant"), "AAAAAAAAAAAAAAA=".into()).await,
        "no grant, unknown id",
    );

    // Unsigned raw HTTP, every method.
    let url = format!(
        "{}/@connections/{}",
        emulator.management_endpoint(),
        id.replace('=', "%3D")
    );
    for method in [
        reqwest::Method::POST,
        reqwest::Method::GET,
        reqwest::Method::DELETE,
    ] {
        let response = http_client()
            .request(method.clone(), &url)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "unsigned {method}");
        assert_eq!(
            response.headers()["x-amzn-errortype"],
            "ForbiddenException",
            "unsigned {method}"
        );
    }
    // None of it closed the connection.
    sdk_client(&emulator, "f")
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("still connected");
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
    let client = sdk_client(&emulator, "f");
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
