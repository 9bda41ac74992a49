//! What visitors get when something is missing, down, slow or gone.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use itest::{LocalService, StackConfig, TestEnv};

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

#[tokio::test]
async fn a_stale_connection_is_removed_and_answered_with_a_502() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let Some(stack) = env.local_or_skip("writing items into the connections table") else {
        return Ok(());
    };
    // A connection API Gateway no longer knows (PostToConnection → 410),
    // left in the table as if its $disconnect never ran.
    let subdomain = protocol::generate_subdomain();
    let connection_id = "R0NFcXZhYmxlMTI=";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let n = |v: u64| AttributeValue::N(v.to_string());
    let s = |v: &str| AttributeValue::S(v.to_string());
    let db = stack.dynamodb();
    let claim_key = format!("sub#{subdomain}");
    db.put_item()
        .table_name(stack.tables().connections())
        .item("connectionId", s(&claim_key))
        .item("ownerConnectionId", s(connection_id))
        .item("createdAt", n(now))
        .item("ttl", n(now + 3600))
        .send()
        .await?;
    db.put_item()
        .table_name(stack.tables().connections())
        .item("connectionId", s(connection_id))
        .item("publicSubdomain", s(&subdomain))
        .item("publicUrl", s(&stack.path_url(&subdomain)))
        .item("createdAt", n(now))
        .item("ttl", n(now + 3600))
        .send()
        .await?;

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
