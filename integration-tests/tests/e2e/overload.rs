//! An agent at its limit of requests in flight: the visitor gets a clear 503
//! through the real forwarding and response functions, and the tunnel keeps
//! serving.

use itest::{LocalService, TestEnv, Tunnel};

use crate::support::{PATIENCE, visitor};

#[tokio::test]
async fn over_the_agents_in_flight_cap_a_visitor_gets_a_503() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("busy").await?;
    let mut config = env.agent_config(&service.port())?;
    config.max_in_flight = 1;
    let tunnel = Tunnel::start(config).await?;

    // One request held by the local service fills the only slot…
    let held_url = format!("{}/hold", tunnel.public_url());
    let held = tokio::spawn(async move { visitor().get(held_url).send().await });
    assert!(
        service.next_held(PATIENCE).await.is_some(),
        "the first request reached the service"
    );
    // …so the next one is refused at once, with a page that says why.
    let response = visitor()
        .get(format!("{}/anything", tunnel.public_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 503);
    let text = response.text().await?;
    assert!(
        text.contains("busy") && text.contains("try again"),
        "{text}"
    );
    held.abort();
    Ok(())
}
