//! The HTTP API decodes the path before the Lambda sees it, as AWS does
//! (aws-semantics.md, "HTTP API payload format 2.0"; live captures in
//! hotsock/voker `vokerhttp/testdata/ingress-paths.json`, copied to
//! `tests/fixtures/aws/voker-ingress-paths.json`).

use serde_json::Value;

use crate::common::{Reports, aws_fixture, config_with, http_client, start};

/// The query every row is sent with: it must reach the Lambda still encoded.
const QUERY: &str = "marker=path-probe&value=a%3Fb%25c%23d&repeat=one&repeat=two";

/// Every row of AWS's recorded table, sent to the emulator: the same
/// `rawPath` and `http.path`, or the same refusal before the Lambda.
#[tokio::test]
async fn paths_reach_the_lambda_as_aws_delivers_them() {
    let reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let client = http_client();
    let rows = aws_fixture("voker-ingress-paths.json");
    let rows = rows.as_array().expect("a list of rows");
    assert!(rows.len() >= 9, "the whole table");
    let mut rejected = 0;
    for row in rows {
        let sent = row["sentPath"].as_str().expect("sentPath");
        let url = format!("{}{sent}?{QUERY}", emulator.http_url());
        let response = client.get(&url).send().await.expect("request");
        if row["httpAPIRejected"] == true {
            assert_eq!(response.status(), 400, "{sent}");
            assert_eq!(
                response.text().await.unwrap(),
                r#"{"message":"Bad Request"}"#,
                "{sent}"
            );
            rejected += 1;
            continue;
        }
        assert_eq!(response.status(), 200, "{sent}");
        let event: Value = response.json().await.expect("the echoed event");
        let expected = &row["httpAPIPath"];
        assert_eq!(&event["rawPath"], expected, "rawPath of {sent}");
        assert_eq!(
            &event["requestContext"]["http"]["path"], expected,
            "http.path of {sent}"
        );
        assert_eq!(event["rawQueryString"], QUERY, "{sent}");
        assert_eq!(event["queryStringParameters"]["value"], "a?b%c#d");
    }
    assert_eq!(rejected, 1);
    // Refused before the Lambda: one invocation per accepted row only.
    assert_eq!(
        emulator.counters().functions["f"].invocations,
        u64::try_from(rows.len() - rejected).unwrap()
    );
}
