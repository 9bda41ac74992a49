//! Many agents and misbehaving agents. (Agents that come back after the
//! server drops them: `auth.rs`, with the URL they keep.)

use aws_sdk_dynamodb::types::AttributeValue;
use itest::{LocalService, StackConfig, TestEnv};
use protocol::{HttpResponse, Message};

use crate::support::{PATIENCE, RawAgent, header_values, the_pending_request_of, visitor};

#[tokio::test]
async fn concurrent_requests_over_three_agents_each_get_their_own_answer() -> anyhow::Result<()> {
    const PER_TUNNEL: usize = 40;
    let env = TestEnv::start().await?;
    let services = [
        LocalService::start("alpha").await?,
        LocalService::start("beta").await?,
        LocalService::start("gamma").await?,
    ];
    let tunnels =
        futures_util::future::try_join_all(services.iter().map(|s| env.expose(&s.port()))).await?;
    let client = visitor();

    let mut requests = tokio::task::JoinSet::new();
    for (t, tunnel) in tunnels.iter().enumerate() {
        for i in 0..PER_TUNNEL {
            let client = client.clone();
            let url = format!("{}/req/{t}-{i}?n={i}&t={t}", tunnel.public_url());
            let body = format!("payload {t}-{i}");
            requests.spawn(async move {
                let response = client
                    .post(url)
                    .header("content-type", "text/plain")
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                let service = header_values(&response, "x-service");
                let echo: serde_json::Value = response.json().await?;
                anyhow::Ok((t, i, status, service, echo))
            });
        }
    }
    let mut answered = 0;
    while let Some(result) = requests.join_next().await {
        let (t, i, status, service, echo) = result??;
        assert_eq!(status, 200, "request {t}-{i}");
        assert_eq!(
            service,
            [services[t].name()],
            "request {t}-{i} answered by the wrong service"
        );
        assert_eq!(echo["uri"], format!("/req/{t}-{i}?n={i}&t={t}"));
        assert_eq!(
            echo["body_base64"],
            protocol::encode_body(format!("payload {t}-{i}").as_bytes())
        );
        answered += 1;
    }
    assert_eq!(answered, 3 * PER_TUNNEL);
    Ok(())
}

/// A raw client that holds its own tunnel sends an `http_response` for a
/// request that was posted to another agent: it must not reach the visitor.
#[tokio::test]
async fn a_response_from_another_connection_is_rejected() -> anyhow::Result<()> {
    // One invocation at a time: the forger's ping/pong proves its forged
    // message was handled before the real answer is let through.
    let env = TestEnv::start_with(StackConfig {
        concurrency: 1,
        // Queued, not throttled: the forger's messages must wait for each
        // other, not be refused.
        over_concurrency: emulator::OverConcurrency::Queue,
        ..StackConfig::for_tests()
    })
    .await?;
    let Some(stack) = env.local_or_skip("reading the pending-requests table") else {
        return Ok(());
    };
    let service = LocalService::start("victim").await?;
    let tunnel = env.expose(&service.port()).await?;
    let mut forger = RawAgent::connect(&env).await?;
    assert_ne!(forger.established.connection_id, tunnel.connection_id());

    let url = format!("{}/gate", tunnel.public_url());
    let visit = tokio::spawn(async move { visitor().get(url).send().await });
    service
        .next_held(PATIENCE)
        .await
        .expect("the request reached the service");

    // The request id, as an attacker who guessed or sniffed it would know it.
    let request_id = the_pending_request_of(stack, tunnel.connection_id()).await?;

    forger
        .send(&Message::HttpResponse(HttpResponse {
            request_id: request_id.clone(),
            status_code: 418,
            headers: [("x-forged".to_string(), vec!["yes".to_string()])].into(),
            body: protocol::encode_body(b"forged"),
            processing_time_ms: 0,
            body_uploaded: None,
        }))
        .await?;
    forger.round_trip().await?;
    // Stored under the forger's own key, which forwarding never reads; the
    // victim's key is still empty.
    let answer = |connection: &str| {
        stack
            .dynamodb()
            .get_item()
            .table_name(stack.tables().pending())
            .key(
                "requestId",
                AttributeValue::S(handlers::store::answer_key(&request_id, connection)),
            )
            .consistent_read(true)
            .send()
    };
    assert!(
        answer(&forger.established.connection_id)
            .await?
            .item()
            .is_some()
    );
    assert!(answer(tunnel.connection_id()).await?.item().is_none());

    service.open_gates();
    let response = visit.await??;
    assert_eq!(response.status(), 200);
    assert!(header_values(&response, "x-forged").is_empty());
    assert_eq!(header_values(&response, "x-service"), ["victim"]);
    let echo: serde_json::Value = response.json().await?;
    assert_eq!(echo["uri"], "/gate");
    Ok(())
}

#[tokio::test]
async fn malformed_agent_messages_leave_the_tunnel_working() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("bystander").await?;
    let bystander = env.expose(&service.port()).await?;
    let mut raw = RawAgent::connect(&env).await?;

    for garbage in [
        "not json at all",
        "{",
        "[]",
        "null",
        "42",
        r#"{"no_type": true}"#,
        r#"{"type": "bogus_type", "x": 1}"#,
        r#"{"type": "http_response"}"#,
        r#"{"type": "http_response", "request_id": 42, "status_code": "ok"}"#,
        r#"{"type": "http_response", "request_id": "00000000-0000-4000-8000-000000000000", "status_code": 200}"#,
        r#"{"type": "error", "code": "no_such_code", "message": "?"}"#,
        r#"{"type": "ready", "unexpected": [1, 2, 3]}"#,
        r#"{"action": "sendmessage", "data": "x"}"#,
    ] {
        raw.send_text(garbage).await?;
    }
    // The connection survived all of it.
    raw.round_trip().await?;

    // The raw agent's tunnel still carries a request both ways.
    let url = format!("{}/raw?x=1", raw.established.public_url);
    let visit = tokio::spawn(async move { visitor().get(url).send().await });
    let request = loop {
        match raw.next_message().await? {
            Message::HttpRequest(request) => break request,
            _ => continue,
        }
    };
    assert_eq!(request.uri, "/raw?x=1");
    raw.send(&Message::HttpResponse(HttpResponse {
        request_id: request.request_id,
        status_code: 207,
        headers: [("x-raw".to_string(), vec!["1".to_string()])].into(),
        body: protocol::encode_body(b"raw ok"),
        processing_time_ms: 1,
        body_uploaded: None,
    }))
    .await?;
    let response = visit.await??;
    assert_eq!(response.status(), 207);
    assert_eq!(header_values(&response, "x-raw"), ["1"]);
    assert_eq!(response.text().await?, "raw ok");

    // And the other tunnel never noticed.
    let response = visitor()
        .get(format!("{}/", bystander.public_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(header_values(&response, "x-service"), ["bystander"]);
    Ok(())
}
