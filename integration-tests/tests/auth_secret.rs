//! The agent-token secret in SSM, as deployed connect functions read it
//! (`AUTH_SECRET_PARAMETER`), against the backend's real SSM API (moto or
//! LocalStack) with the real `aws-sdk-ssm`: a missing parameter, the
//! placeholder Terraform writes, a real secret, and a secret set or rotated
//! while connect is warm, which takes effect within the refresh interval.
//!
//! First the library the binary uses, with an explicit clock; then the real
//! connect binary under the emulator, through real WebSocket handshakes.

use std::time::{Duration, Instant};

use handlers::auth::{Auth, AuthSource, fetch_ssm_secret};
use handlers::config::AuthSettings;
use itest::{DynamoDb, Stack, StackConfig, backend::ssm_client_for};
use protocol::auth::{Claims, Secret};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};

/// A safety net for waits, never a synchronisation device.
const PATIENCE: Duration = Duration::from_secs(30);

/// An SSM client on the shared backend, once its SSM service answers: moto
/// loads its SSM data on the first call, which can take longer than
/// connect's read timeout on a busy machine; that wait belongs to the
/// fixture, not to the code under test.
async fn ssm() -> anyhow::Result<aws_sdk_ssm::Client> {
    let ssm = ssm_client_for(DynamoDb::shared().await?.endpoint());
    ssm.describe_parameters().max_results(1).send().await?;
    Ok(ssm)
}

/// A parameter name no other test uses.
fn unique_name() -> String {
    format!("/itest-{}/auth-secret", uuid::Uuid::new_v4().simple())
}

/// What `terraform apply` writes into the parameter: read from the HCL, so
/// this test follows any change to it.
fn terraform_placeholder() -> anyhow::Result<String> {
    let path = itest::paths::workspace_root().join("terraform/modules/auth_secret/main.tf");
    let body = hcl::parse(&std::fs::read_to_string(&path)?)?;
    body.blocks()
        .filter(|block| block.identifier() == "resource")
        .filter(|block| block.labels().first().map(|l| l.as_str()) == Some("aws_ssm_parameter"))
        .flat_map(|block| block.body().attributes())
        .find(|attribute| attribute.key() == "value_wo")
        .and_then(|attribute| match attribute.expr() {
            hcl::Expression::String(value) => Some(value.clone()),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("no literal aws_ssm_parameter value in {}", path.display()))
}

/// `aws ssm put-parameter --overwrite --type SecureString`.
async fn put(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) -> anyhow::Result<()> {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn fetch_ssm_secret_reads_the_decrypted_value_or_nothing() -> anyhow::Result<()> {
    let ssm = ssm().await?;
    let name = unique_name();
    assert_eq!(fetch_ssm_secret(&ssm, &name).await?, None, "missing");
    let secret = Secret::generate();
    let value = String::from_utf8(secret.expose().to_vec())?;
    put(&ssm, &name, &value).await?;
    // WithDecryption: the value itself, not its ciphertext.
    assert_eq!(fetch_ssm_secret(&ssm, &name).await?, Some(value));
    Ok(())
}

/// The source connect builds from `AUTH_SECRET_PARAMETER`, on the real SSM
/// API, its clock driven by the test: refused while the parameter is
/// missing or holds a placeholder, the real secret once set, the rotated
/// one a refresh interval after the rotation, never before.
#[tokio::test]
async fn the_parameter_is_refused_until_set_and_reread_on_the_interval() -> anyhow::Result<()> {
    const REFRESH: Duration = Duration::from_secs(60);
    let ssm = ssm().await?;
    let name = unique_name();
    let settings = AuthSettings::Parameter {
        name: name.clone(),
        refresh: REFRESH,
    };
    let source = AuthSource::new(&settings, || ssm.clone());
    let start = tokio::time::Instant::now();
    let at = |refreshes: u32, extra_ms: u64| {
        start + REFRESH * refreshes + Duration::from_millis(extra_ms)
    };

    assert_eq!(
        source.current_at(at(0, 0)).await,
        Auth::Unconfigured,
        "missing"
    );
    put(&ssm, &name, &terraform_placeholder()?).await?;
    assert_eq!(
        source.current_at(at(1, 0)).await,
        Auth::Unconfigured,
        "placeholder"
    );
    put(
        &ssm,
        &name,
        "placeholder: set me with aws ssm put-parameter --overwrite",
    )
    .await?;
    assert_eq!(
        source.current_at(at(2, 0)).await,
        Auth::Unconfigured,
        "old placeholder"
    );

    let first = Secret::generate();
    put(&ssm, &name, std::str::from_utf8(first.expose())?).await?;
    assert_eq!(
        source.current_at(at(3, 0)).await,
        Auth::Required(first.clone())
    );

    let rotated = Secret::generate();
    put(&ssm, &name, std::str::from_utf8(rotated.expose())?).await?;
    assert_eq!(
        source.current_at(at(4, 0) - Duration::from_millis(1)).await,
        Auth::Required(first),
        "warm, within the interval: the secret read before"
    );
    assert_eq!(source.current_at(at(4, 0)).await, Auth::Required(rotated));
    Ok(())
}

/// The handshake's HTTP status with this token (101 = accepted).
async fn handshake(stack: &Stack, token: &str) -> anyhow::Result<u16> {
    let mut request = stack.websocket_url().into_client_request()?;
    // The current protocol: connect refuses older agents with 426.
    request.headers_mut().insert(
        protocol::HEADER_PROTOCOL,
        protocol::PROTOCOL_VERSION.to_string().parse()?,
    );
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let result = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request)).await?;
    Ok(match result {
        Ok((_ws, response)) => response.status().as_u16(),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => return Err(e.into()),
    })
}

fn token(secret: &Secret) -> String {
    let claims = Claims::new("itest", agent::token::now_secs(), 3600, None);
    protocol::auth::mint(secret, &claims)
}

/// Waits until the captured logs satisfy `done` (the functions' output
/// reaches the harness through a pipe, a moment after the handshake's
/// answer); fails after [`PATIENCE`].
async fn logs_until(
    stack: &Stack,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let logs = stack.captured_logs().join("\n");
        if done(&logs) {
            return Ok(logs);
        }
        anyhow::ensure!(
            started.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real connect binary with `AUTH_SECRET_PARAMETER` (as Terraform sets
/// it) and a zero refresh interval (every handshake reads the parameter, so
/// each change shows at the very next handshake, no clock or wait needed):
/// 503 for every agent while the parameter is missing or holds Terraform's
/// placeholder (with an ERROR naming the parameter and no secret in any log
/// line); then, without a restart, the secret set in SSM is accepted and,
/// rotated while warm, replaces the old one.
#[tokio::test]
async fn the_connect_function_takes_a_secret_set_after_its_cold_start() -> anyhow::Result<()> {
    let ssm = ssm().await?;
    let name = unique_name();
    let first = Secret::generate();
    let stack = Stack::start(StackConfig {
        auth_secret: Some(first.clone()),
        auth_secret_parameter: Some(name.clone()),
        auth_secret_refresh: Some(Duration::ZERO),
        ..StackConfig::for_tests()
    })
    .await?;

    assert_eq!(handshake(&stack, &token(&first)).await?, 503, "missing");
    put(&ssm, &name, &terraform_placeholder()?).await?;
    assert_eq!(handshake(&stack, &token(&first)).await?, 503, "placeholder");

    put(&ssm, &name, std::str::from_utf8(first.expose())?).await?;
    assert_eq!(handshake(&stack, &token(&first)).await?, 101, "set");
    // A real agent gets its tunnel.
    let service = itest::LocalService::start("after-set").await?;
    let tunnel = stack.expose(&service.port()).await?;
    assert!(!tunnel.subdomain().is_empty());

    let rotated = Secret::generate();
    put(&ssm, &name, std::str::from_utf8(rotated.expose())?).await?;
    assert_eq!(handshake(&stack, &token(&rotated)).await?, 101, "rotated");
    assert_eq!(
        handshake(&stack, &token(&first)).await?,
        401,
        "the old secret"
    );

    let logs = logs_until(&stack, "the refusals and the rotation logged", |logs| {
        logs.lines().any(|line| {
            line.contains("ERROR") && line.contains(&name) && line.contains("placeholder")
        }) && logs.contains("agent-token secret changed")
    })
    .await?;
    for secret in [&first, &rotated] {
        let text = std::str::from_utf8(secret.expose())?;
        assert!(!logs.contains(text), "a secret in the logs");
    }
    Ok(())
}
