//! What the local service receives for each row of AWS's path table
//! (aws-semantics.md, "HTTP API payload format 2.0"): the HTTP API decodes
//! the path, forwarding re-encodes it (`handlers::path`), so what a URI can
//! carry comes through and `%2F` versus `/` is lost. These hold on a deployed
//! stack and on the emulator, which decodes as AWS does.

use itest::{LocalService, TestEnv};

use crate::support::{PATIENCE, visitor};

/// Visitor's path (after the tunnel name) → what the local service gets,
/// `None` when API Gateway refuses it before any Lambda.
const ROWS: &[(&str, Option<&str>)] = &[
    ("/a/plain", Some("/a/plain")),
    ("/a/space%20value", Some("/a/space%20value")),
    // The decoded `?` ends the path; the real query is kept.
    ("/a/question%3Fvalue", Some("/a/question")),
    ("/a/percent%25done", None),
    ("/a/hash%23value", Some("/a/hash%23value")),
    // Lost: the service cannot tell `%2F` from `/`.
    ("/a/slash%2Fvalue", Some("/a/slash/value")),
    ("/a/unicode-%CE%BB", Some("/a/unicode-%CE%BB")),
    // Decoded twice by AWS.
    ("/a/literal%252Fvalue", Some("/a/literal/value")),
    ("/a/literal%253Fvalue", Some("/a/literal%3Fvalue")),
    ("/a/literal%2525value", Some("/a/literal%25value")),
];

#[tokio::test]
async fn each_path_of_aws_table_reaches_the_service_as_deployed() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("paths").await?;
    let tunnel = env.expose(&service.port()).await?;
    let client = visitor();

    for (sent, expected) in ROWS {
        let url = format!("{}{sent}?x=%2F1&y", tunnel.public_url());
        assert!(
            reqwest::Url::parse(&url)?.path().ends_with(sent),
            "the client kept {sent} as written"
        );
        let response = client.get(&url).send().await?;
        match expected {
            Some(expected) => {
                assert_eq!(response.status(), 200, "{sent}");
                let seen = service.next_request(PATIENCE).await.expect("seen");
                assert_eq!(seen.uri, format!("{expected}?x=%2F1&y"), "{sent}");
            }
            None => {
                assert_eq!(response.status(), 400, "{sent}");
                assert!(
                    service
                        .next_request(std::time::Duration::from_millis(300))
                        .await
                        .is_none(),
                    "{sent} reached the local service"
                );
            }
        }
    }
    Ok(())
}
