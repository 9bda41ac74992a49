//! HTTP API: payload format 2.0 events and response mapping.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use serde_json::Value;

use crate::common::{Reports, config_with, http_client, is_api_gateway_id, start};

#[tokio::test]
async fn a_plain_get_is_mapped_like_aws() {
    let reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let response = http_client()
        .get(format!("{}/", emulator.http_url()))
        .header("user-agent", "curl/7.58.0")
        .header("accept", "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("apigw-requestid"));
    let event: Value = response.json().await.unwrap();

    let parsed: ApiGatewayV2httpRequest =
        serde_json::from_value(event.clone()).expect("parses as aws_lambda_events");
    assert_eq!(parsed.raw_path.as_deref(), Some("/"));

    // Keys, types and formats against AWS's recordings: events.rs.
    assert_eq!(event["rawQueryString"], "");
    assert_eq!(event["isBase64Encoded"], false);
    let context = &event["requestContext"];
    assert_eq!(context["stage"], "$default");
    assert_eq!(context["routeKey"], "$default");
    assert_eq!(context["http"]["method"], "GET");
    assert_eq!(context["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(context["http"]["userAgent"], "curl/7.58.0");
    assert_eq!(context["http"]["protocol"], "HTTP/1.1");
    assert!(is_api_gateway_id(&context["requestId"]));
    let now_ms = i64::try_from(
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let epoch = context["timeEpoch"].as_i64().unwrap();
    assert!(
        (now_ms - 60_000..=now_ms).contains(&epoch),
        "timeEpoch is in ms: {epoch}"
    );
}

#[tokio::test]
async fn cookies_headers_query_and_body_are_mapped_like_aws() {
    let reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let response = http_client()
        .post(format!("{}/some/path?a=1&a=2&b=x%20y", emulator.http_url()))
        .header("Cookie", "c1=v1; c2=v2")
        .header("X-Custom", "one")
        .header("x-custom", "two")
        .header("content-type", "application/json")
        .body(r#"{"k":"v"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let event: Value = response.json().await.unwrap();
    let _: ApiGatewayV2httpRequest = serde_json::from_value(event.clone()).expect("parses");
    assert_eq!(event["rawPath"], "/some/path");
    assert_eq!(event["rawQueryString"], "a=1&a=2&b=x%20y");
    assert_eq!(event["queryStringParameters"]["a"], "1,2");
    assert_eq!(event["queryStringParameters"]["b"], "x y");
    assert_eq!(event["cookies"], serde_json::json!(["c1=v1", "c2=v2"]));
    assert!(event["headers"].get("cookie").is_none());
    assert_eq!(event["headers"]["x-custom"], "one,two");
    assert!(
        event["headers"]["x-amzn-trace-id"]
            .as_str()
            .unwrap()
            .starts_with("Root=1-")
    );
    assert_eq!(event["headers"]["x-forwarded-proto"], "http");
    assert_eq!(
        event["headers"]["x-forwarded-port"],
        emulator.http_addr().port().to_string()
    );
    assert_eq!(event["body"], r#"{"k":"v"}"#);
    assert_eq!(event["isBase64Encoded"], false);

    // No content type: base64.
    let response = http_client()
        .put(format!("{}/b", emulator.http_url()))
        .body(vec![0u8, 1, 2])
        .send()
        .await
        .unwrap();
    let event: Value = response.json().await.unwrap();
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "AAEC");
}

#[tokio::test]
async fn responses_are_mapped_like_aws() {
    let reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let client = http_client();
    let get = |mode: &str| {
        client
            .get(format!("{}/", emulator.http_url()))
            .header("x-fixture-mode", mode)
            .send()
    };

    let response = get("cookies").await.unwrap();
    assert_eq!(response.status(), 201);
    let cookies: Vec<_> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
    assert_eq!(response.headers().get_all("x-list").iter().count(), 1);
    assert_eq!(response.headers()["x-list"], "a, b, c");
    assert_eq!(response.text().await.unwrap(), "hello");

    let response = get("json").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        serde_json::json!({"hello": "world"})
    );

    let response = get("status:418").await.unwrap();
    assert_eq!(response.status(), 418);

    for mode in ["error", "invalid", "crash", "large:6300000"] {
        let response = get(mode).await.unwrap();
        assert_eq!(response.status(), 500, "{mode}");
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"message":"Internal Server Error"}"#,
            "{mode}"
        );
    }
    // After all that the API still answers.
    assert_eq!(get("echo").await.unwrap().status(), 200);
}

#[tokio::test]
async fn integration_timeout_is_503() {
    let reports = Reports::start().await;
    let mut config = config_with(&reports, &[]);
    if let Some(http) = config.http.as_mut() {
        http.timeout_secs = 1;
    }
    let emulator = start(config).await;
    let response = http_client()
        .get(format!("{}/", emulator.http_url()))
        .header("x-fixture-mode", "sleep:5000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"message":"Service Unavailable"}"#
    );
}

#[tokio::test]
async fn payload_limits() {
    let reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let client = http_client();
    // Over the HTTP API's 10 MB.
    let response = client
        .post(format!("{}/", emulator.http_url()))
        .body(vec![b'a'; 10 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"message":"Request Entity Too Large"}"#
    );
    // Under 10 MB but over Lambda's 6 MB once base64-encoded into the event.
    let response = client
        .post(format!("{}/", emulator.http_url()))
        .body(vec![b'a'; 5 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        emulator.counters().functions["f"].cold_starts,
        0,
        "never reached the function"
    );
}
