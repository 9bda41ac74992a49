//! Requests and responses pass through byte-exact.

use itest::{LocalService, TestEnv};

use crate::support::visitor;

#[tokio::test]
async fn a_get_reaches_the_local_service_and_back() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("one").await?;
    let tunnel = env.expose(&service.port()).await?;
    let response = visitor()
        .get(format!("{}/hello?x=1", tunnel.public_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-service"], "one");
    let echo: serde_json::Value = response.json().await?;
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["uri"], "/hello?x=1");
    Ok(())
}
