//! Bodies beyond one 128 KB WebSocket message, both ways, up to the ceiling
//! (`protocol::limits::MAX_BODY_BYTES`): the local service's `/binary` route
//! echoes the request body, so each round trip carries the same bytes as a
//! request and a response, inline or through the bodies bucket.

use protocol::limits::{INLINE_ANSWER_BODY_BYTES, MAX_BODY_BYTES, MAX_MESSAGE_BYTES};

use itest::{LocalService, TestEnv};

use crate::support::{PATIENCE as WAIT, visitor};

fn noise(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[tokio::test]
async fn large_binary_bodies_pass_both_ways_byte_for_byte() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("large").await?;
    let tunnel = env.expose(&service.port()).await?;
    let client = visitor();
    for len in [
        1,
        INLINE_ANSWER_BODY_BYTES,
        INLINE_ANSWER_BODY_BYTES + 1,
        // Around where a request body's base64 no longer fits one message.
        MAX_MESSAGE_BYTES / 4 * 3 - 1,
        MAX_MESSAGE_BYTES / 4 * 3,
        1_000_000,
        MAX_BODY_BYTES,
    ] {
        let body = noise(len);
        let response = client
            .post(format!("{}/binary", tunnel.public_url()))
            .header("content-type", "application/octet-stream")
            .body(body.clone())
            .send()
            .await?;
        assert_eq!(response.status(), 200, "{len} bytes");
        let returned = response.bytes().await?;
        assert!(returned == body.as_slice(), "{len} bytes: response differs");
        let seen = service.next_request(WAIT).await.expect("seen");
        assert!(seen.body == body.as_slice(), "{len} bytes: request differs");
    }
    // 0 B both ways: an empty request body reaches the service empty, and an
    // empty 200 comes back empty (no stray bytes).
    let response = client
        .post(format!("{}/empty", tunnel.public_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await?.len(), 0);
    let seen = service.next_request(WAIT).await.expect("seen");
    assert_eq!((seen.uri.as_str(), seen.body.len()), ("/empty", 0));
    // Empty request, non-empty response: the service answers its 256-byte sample.
    let response = client
        .post(format!("{}/binary", tunnel.public_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await?.len(), 256);
    Ok(())
}

#[tokio::test]
async fn a_request_body_over_the_ceiling_is_a_413_and_never_reaches_the_agent() -> anyhow::Result<()>
{
    let env = TestEnv::start().await?;
    let service = LocalService::start("over").await?;
    let tunnel = env.expose(&service.port()).await?;
    let response = visitor()
        .post(format!("{}/binary", tunnel.public_url()))
        .header("content-type", "application/octet-stream")
        .body(noise(MAX_BODY_BYTES + 1))
        .send()
        .await?;
    assert_eq!(response.status(), 413);
    let text = response.text().await?;
    assert!(text.contains("4620288"), "{text}");
    assert!(
        service
            .next_request(std::time::Duration::from_millis(200))
            .await
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn several_large_transfers_at_once_on_one_agent() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("many").await?;
    let tunnel = env.expose(&service.port()).await?;
    let client = visitor();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4usize {
        let client = client.clone();
        let url = format!("{}/binary", tunnel.public_url());
        tasks.spawn(async move {
            let body: Vec<u8> = noise(600_000 + i * 7)
                .into_iter()
                .map(|b| b ^ i as u8)
                .collect();
            let response = client
                .post(url)
                .header("content-type", "application/octet-stream")
                .body(body.clone())
                .send()
                .await?;
            anyhow::ensure!(response.status() == 200, "{i}: {}", response.status());
            anyhow::ensure!(
                response.bytes().await? == body.as_slice(),
                "{i}: body differs"
            );
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(())
}
