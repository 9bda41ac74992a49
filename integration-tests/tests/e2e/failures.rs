//! What visitors get when something is missing, down, slow or gone.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use emulator::DisconnectDelivery;
use itest::{LocalService, Logs, Stack, StackConfig, TestEnv, Tunnel};

use crate::support::{PATIENCE, header_values, visitor};

#[tokio::test]
async fn an_unknown_tunnel_is_a_404() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let client = visitor();
    let unknown = protocol::generate_subdomain();
    let response = client
        .get(format!("{}/{unknown}/anything", env.public_base_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    assert!(header_values(&response, "x-service").is_empty());
    // By Host, with host routing: tests/routing.rs.
    Ok(())
}

#[tokio::test]
async fn a_local_service_that_is_down_is_a_502() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    // A port that was just free: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let tunnel = env.expose(&port.to_string()).await?;
    let response = visitor()
        .get(format!("{}/", tunnel.public_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 502);
    Ok(())
}

#[tokio::test]
async fn a_slow_local_service_is_a_504() -> anyhow::Result<()> {
    const TIMEOUT: Duration = Duration::from_millis(2000);
    let env = TestEnv::start_with(StackConfig {
        request_timeout: Some(TIMEOUT),
        ..StackConfig::for_tests()
    })
    .await?;
    if env.local_or_skip("a short REQUEST_TIMEOUT_MS").is_none() {
        return Ok(());
    }
    let service = LocalService::start("slow").await?;
    // The agent's own local timeout (20 s) is longer: the tunnel gives up first.
    let tunnel = env.expose(&service.port()).await?;
    let started = Instant::now();
    let response = visitor()
        .get(format!("{}/hold", tunnel.public_url()))
        .send()
        .await?;
    let waited = started.elapsed();
    assert_eq!(response.status(), 504);
    assert!(
        service.next_held(PATIENCE).await.is_some(),
        "the service got the request"
    );
    assert!(
        waited >= TIMEOUT,
        "504 after {waited:?}, before the timeout"
    );
    assert!(
        waited < TIMEOUT + Duration::from_secs(5),
        "504 only after {waited:?}"
    );
    Ok(())
}

#[tokio::test]
async fn killing_the_agent_fails_its_in_flight_request_with_a_502_at_once() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("held").await?;
    let tunnel = env.expose(&service.port()).await?;
    let url = format!("{}/hold", tunnel.public_url());
    let visit = tokio::spawn(async move { visitor().get(url).send().await });

    service
        .next_held(PATIENCE)
        .await
        .expect("the request reached the local service");
    // Abort the agent: its WebSocket goes away without a close frame.
    let killed = Instant::now();
    drop(tunnel);

    let response = visit.await??;
    let waited = killed.elapsed();
    eprintln!("502 {waited:?} after the agent died");
    assert_eq!(response.status(), 502);
    assert!(
        waited < Duration::from_secs(3),
        "the visitor waited {waited:?} after the agent died"
    );
    Ok(())
}

/// A connection item and live claim for `connection_id`, claimed `age`
/// seconds ago, as if its `$disconnect` never ran; API Gateway does not know
/// the id (PostToConnection → 410).
async fn stale_connection(stack: &Stack, connection_id: &str, age: u64) -> anyhow::Result<String> {
    let subdomain = protocol::generate_subdomain();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let n = |v: u64| AttributeValue::N(v.to_string());
    let s = |v: &str| AttributeValue::S(v.to_string());
    let db = stack.dynamodb();
    db.put_item()
        .table_name(stack.tables().connections())
        .item("connectionId", s(&format!("sub#{subdomain}")))
        .item("ownerConnectionId", s(connection_id))
        .item("createdAt", n(now - age))
        .item("ttl", n(now + 3600))
        .send()
        .await?;
    db.put_item()
        .table_name(stack.tables().connections())
        .item("connectionId", s(connection_id))
        .item("publicSubdomain", s(&subdomain))
        .item("publicUrl", s(&stack.path_url(&subdomain)))
        .item("createdAt", n(now - age))
        .item("ttl", n(now + 3600))
        .send()
        .await?;
    Ok(subdomain)
}

#[tokio::test]
async fn a_stale_connection_is_removed_and_answered_with_a_502() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let Some(stack) = env.local_or_skip("writing items into the connections table") else {
        return Ok(());
    };
    // An hour old: long past `$connect`, so one 410 means it is gone.
    let connection_id = "R0NFcXZhYmxlMTI=";
    let subdomain = stale_connection(stack, connection_id, 3600).await?;
    let claim_key = format!("sub#{subdomain}");
    let s = |v: &str| AttributeValue::S(v.to_string());
    let db = stack.dynamodb();

    let client = visitor();
    let started = Instant::now();
    let response = client
        .get(format!("{}/", stack.path_url(&subdomain)))
        .send()
        .await?;
    assert_eq!(response.status(), 502);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "502 took {:?}",
        started.elapsed()
    );

    let get = |key: String| {
        db.get_item()
            .table_name(stack.tables().connections())
            .key("connectionId", s(&key))
            .consistent_read(true)
            .send()
    };
    let item = get(connection_id.to_string()).await?;
    assert!(
        item.item().is_none(),
        "{connection_id} is still in the table"
    );
    // The claim is released, not deleted: held for the agent's resume token.
    let claim = get(claim_key.clone()).await?;
    assert!(
        claim.item().is_some_and(|i| i.contains_key("releasedAt")),
        "{claim_key} was not released: {claim:?}"
    );
    // Until the agent resumes, visitors hear that it is reconnecting.
    let response = client
        .get(format!("{}/", stack.path_url(&subdomain)))
        .send()
        .await?;
    assert_eq!(response.status(), 502);
    assert!(response.text().await?.contains("reconnecting"));
    Ok(())
}

/// Issue 14.2: a connection claimed a second ago may still be inside
/// `$connect` (API Gateway answers 410 until the upgrade): its 410 is
/// retried, then answered with a 502 "still connecting", and nothing of it
/// is removed.
#[tokio::test]
async fn a_young_connections_410_removes_nothing() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let Some(stack) = env.local_or_skip("writing items into the connections table") else {
        return Ok(());
    };
    let connection_id = "WW91bmdDb25uMTI=";
    let subdomain = stale_connection(stack, connection_id, 1).await?;
    let started = Instant::now();
    let response = visitor()
        .get(format!("{}/", stack.path_url(&subdomain)))
        .send()
        .await?;
    let waited = started.elapsed();
    assert_eq!(response.status(), 502);
    assert!(response.text().await?.contains("still connecting"));
    // The retries take 1.55 s; a visitor learns within 2 s plus the calls.
    assert!(
        Duration::from_millis(1500) <= waited && waited < Duration::from_secs(5),
        "502 after {waited:?}"
    );
    let s = |v: &str| AttributeValue::S(v.to_string());
    for key in [connection_id.to_string(), format!("sub#{subdomain}")] {
        let item = stack
            .dynamodb()
            .get_item()
            .table_name(stack.tables().connections())
            .key("connectionId", s(&key))
            .consistent_read(true)
            .send()
            .await?;
        let item = item.item().cloned().unwrap_or_default();
        assert!(!item.is_empty(), "{key} was removed");
        assert!(!item.contains_key("releasedAt"), "{key} was released");
    }
    Ok(())
}

/// Issue 13.3: an agent killed (no close frame) while a visitor waits, and
/// its `$disconnect` lost (AWS delivers it on a best-effort basis): the
/// visitor gets a 502 within 2 s (forwarding asks GetConnection after 1 s
/// of silence), and the owner's reconnecting agent gets its subdomain back.
#[tokio::test]
async fn an_agent_vanished_without_disconnect_is_a_502_within_2s_and_frees_its_subdomain()
-> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let Some(stack) = env.local_or_skip("dropping $disconnect deliveries") else {
        return Ok(());
    };
    stack
        .emulator()
        .set_disconnect_delivery("disconnect", DisconnectDelivery::Drop)?;
    let service = LocalService::start("held").await?;
    // The owner reserves a subdomain: only a released claim lets it back in.
    let subdomain = protocol::generate_subdomain();
    let token = stack.config().mint_token("owner", Some(&subdomain));
    let config =
        || itest::tunnel::agent_config(stack.websocket_url(), token.as_deref(), &service.port());
    let tunnel = Tunnel::start(config()?).await?;
    assert_eq!(tunnel.subdomain(), subdomain);
    let public_url = tunnel.public_url().to_string();

    let url = format!("{public_url}/hold");
    let visit = tokio::spawn(async move { visitor().get(url).send().await });
    service
        .next_held(PATIENCE)
        .await
        .expect("the request reached the local service");
    let killed = Instant::now();
    drop(tunnel);

    let response = visit.await??;
    let waited = killed.elapsed();
    eprintln!("502 {waited:?} after the agent vanished");
    assert_eq!(response.status(), 502);
    assert!(
        waited < Duration::from_secs(2),
        "the visitor waited {waited:?} after the agent vanished"
    );
    assert!(response.text().await?.contains("no longer connected"));
    let disconnects = stack
        .counters()
        .functions
        .get("disconnect")
        .map_or(0, |c| c.invocations);
    assert_eq!(disconnects, 0, "$disconnect ran: the test proves nothing");

    // The owner reconnects (a new agent, same token): same subdomain, same URL.
    let again = Tunnel::start(config()?).await?;
    assert_eq!(again.subdomain(), subdomain);
    assert_eq!(again.public_url(), public_url);
    Ok(())
}

/// Issue 13.4: a forwarding function whose role lacks
/// execute-api:ManageConnections gets 403 from @connections: the visitor
/// gets a 502 saying so (not a silent timeout) and the log has the alarm
/// line the metric filter counts.
#[tokio::test]
async fn a_403_from_connections_is_a_visible_502_and_an_alarm() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    if env.local_or_skip("a role without the grant").is_none() {
        return Ok(());
    }
    let stack = Stack::builder(StackConfig::for_tests())
        .configure_function("forwarding", |f| f.manage_connections = false)
        .start()
        .await?;
    let service = LocalService::start("svc").await?;
    let tunnel = stack.expose(&service.port()).await?;
    let response = visitor()
        .get(format!("{}/anything", tunnel.public_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 502);
    assert!(response.text().await?.contains("misconfigured"));
    if matches!(stack.config().logs, Logs::Capture) {
        let logs = stack.captured_logs();
        assert!(
            logs.iter()
                .any(|l| l.contains(handlers::notifier::FORBIDDEN_ALARM) && l.contains("ERROR")),
            "no alarm line in {logs:#?}"
        );
    }
    drop(tunnel);
    stack.shutdown().await;
    Ok(())
}

/// Throttling is visible, never silent: a throttled forwarding invocation is
/// the HTTP API's 500 at once; a throttled response invocation loses the
/// agent's answer (API Gateway sends the agent an "Internal server error"
/// frame and retries nothing), so its visitor gets the 504 at the request
/// timeout, and the tunnel works again as soon as the throttling ends.
#[tokio::test]
async fn a_throttled_function_is_a_visible_error_and_the_tunnel_recovers() -> anyhow::Result<()> {
    const TIMEOUT: Duration = Duration::from_millis(2000);
    let env = TestEnv::start().await?;
    if env
        .local_or_skip("throttling a function at run time")
        .is_none()
    {
        return Ok(());
    }
    let stack = Stack::builder(StackConfig {
        request_timeout: Some(TIMEOUT),
        ..StackConfig::for_tests()
    })
    .start()
    .await?;
    let service = LocalService::start("svc").await?;
    let tunnel = stack.expose(&service.port()).await?;
    let url = |path: &str| format!("{}/{path}", tunnel.public_url());

    stack.emulator().set_reserved_zero("response", true)?;
    let started = Instant::now();
    let response = visitor().get(url("lost-answer")).send().await?;
    let waited = started.elapsed();
    assert_eq!(response.status(), 504, "a lost answer is the timeout's 504");
    assert!(
        waited >= TIMEOUT,
        "504 after {waited:?}, before the timeout"
    );
    let seen = service
        .next_request(PATIENCE)
        .await
        .expect("the agent delivered the request; only its answer was throttled");
    assert_eq!(seen.uri, "/lost-answer");
    let throttles = stack.emulator().counters().functions["response"].throttles;
    assert!(throttles >= 1, "the response function was not throttled");

    stack.emulator().set_reserved_zero("response", false)?;
    stack.emulator().set_reserved_zero("forwarding", true)?;
    let started = Instant::now();
    let response = visitor().get(url("throttled-visit")).send().await?;
    assert_eq!(response.status(), 500);
    assert!(
        started.elapsed() < TIMEOUT,
        "a throttled forwarding invocation is answered at once"
    );
    assert_eq!(
        response.text().await?,
        r#"{"message":"Internal Server Error"}"#
    );

    stack.emulator().set_reserved_zero("forwarding", false)?;
    let response = visitor().get(url("recovered")).send().await?;
    assert_eq!(response.status(), 200, "the tunnel works again");
    let seen = service
        .next_request(PATIENCE)
        .await
        .expect("the request after the throttling reached the service");
    assert_eq!(
        seen.uri, "/recovered",
        "the throttled visit never reached it"
    );
    drop(tunnel);
    stack.shutdown().await;
    Ok(())
}
