//! The tunnel's Lambda functions.
//!
//! # Layout
//!
//! The four functions:
//! - [`connect`], [`disconnect`], [`response`], [`forwarding`]: one module per
//!   function, each with a `handle` generic over the interfaces it uses.
//!   [`forwarding`] is a sequence of steps ([`forwarding::routing`],
//!   [`forwarding::http_api`], a large body to the bucket, posting,
//!   polling, an uploaded answer read back) whose
//!   failures map to the visitor's answer in one table,
//!   [`forwarding::error`].
//!
//! What they share:
//! - [`access`]: the checks of a tunnel's access policy (source address,
//!   URL token, basic-auth, webhook signatures), run by forwarding.
//! - [`claims`]: the subdomain claim state machine (claim, offer the next
//!   resume token, resume, release; only token hashes are stored).
//! - [`pages`]: every text the tunnel itself shows a visitor.
//! - [`poll`]: forwarding's polling schedule (adaptive or fixed).
//! - [`websocket`]: what the WebSocket routes' functions take and return.
//!
//! The interfaces to AWS, and their implementations:
//! - [`store`]: the tables as narrow interfaces (connections and claims,
//!   the agents' answers), their items and an SDK-free error;
//!   [`store::dynamo`] implements them on DynamoDB.
//! - [`bodies`]: the bodies bucket (large request and answer bodies,
//!   presigned URLs) as an interface; [`bodies::s3`] implements it on S3.
//! - [`notifier`]: the WebSocket connections (`@connections`) as an
//!   interface; [`notifier::api_gateway`] implements it.
//! - `fake` (feature `fake`): the tables, the bucket and `@connections` in memory, for
//!   unit tests of the logic.
//! - `contract` (feature `contract`): the store contract suite, run on the
//!   fake here and on DynamoDB in `integration-tests`.
//! - `untrusted_input` (tests only): property tests of the response and
//!   forwarding entry points with random and hostile input.
//!
//! Deployment and start-up:
//! - [`manifest`]: tables, environment variables and IAM actions per function
//!   (the contract with Terraform and the integration harness).
//! - [`config`]: each function's configuration, read once per cold start
//!   (the authentication settings included).
//! - [`auth`]: agent tokens on `$connect` (the secret, read from SSM and
//!   re-read on a refresh interval; the check of each handshake).
//! - [`path`]: the decoded path the HTTP API gives, re-encoded into a URI
//!   path (what the local service receives).
//! - [`runtime`]: what the four thin binaries in `src/bin/` share (init, SDK
//!   configuration); [`logging`]: `tracing` setup.

pub mod access;
pub mod auth;
pub mod bodies;
pub mod claims;
pub mod config;
pub mod connect;
#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod disconnect;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod forwarding;
pub mod logging;
pub mod manifest;
pub mod notifier;
pub mod pages;
pub mod path;
pub mod poll;
pub mod response;
pub mod runtime;
pub mod store;
pub mod websocket;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod untrusted_input;

/// Current time, epoch seconds.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Current time, epoch milliseconds.
pub(crate) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod event_tests {
    use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayWebsocketProxyRequest};

    /// Every sample under `test-events/` parses as the event type of the
    /// function it is for (usable with `cargo lambda invoke <fn> --data-file`).
    #[test]
    fn sample_events_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/test-events");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            if name.starts_with("forwarding") {
                let event: ApiGatewayV2httpRequest =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(
                    event.raw_path.is_some() && event.request_context.request_id.is_some(),
                    "{name}"
                );
            } else {
                let event: ApiGatewayWebsocketProxyRequest =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(event.request_context.connection_id.is_some(), "{name}");
                let route = event.request_context.route_key.as_deref().unwrap();
                let expected = match name.split(['-', '.']).next().unwrap() {
                    "connect" => "$connect",
                    "disconnect" => "$disconnect",
                    "response" => "$default",
                    other => panic!("unexpected sample {other}"),
                };
                assert_eq!(route, expected, "{name}");
                if route == "$default" {
                    protocol::Message::from_json(event.body.as_deref().unwrap()).unwrap();
                }
            }
            seen += 1;
        }
        assert!(seen >= 6, "{seen}");
    }

    /// The recorded AWS fixtures shipped with `aws_lambda_events` (the shapes
    /// the samples are modelled on) parse the same way.
    #[test]
    fn recorded_fixtures_parse() {
        let ws = r#"{"headers":{"Host":"x","X-Tunnel-Agent-Version":"1"},"requestContext":{"routeKey":"$connect","eventType":"CONNECT","connectedAt":1645556857902,"requestTimeEpoch":1645556857902,"identity":{"sourceIp":"10.0.0.13"},"requestId":"asdf=","connectionId":"asdfasdf=","apiId":"a"},"isBase64Encoded":false}"#;
        let event: ApiGatewayWebsocketProxyRequest = serde_json::from_str(ws).unwrap();
        assert_eq!(
            event.headers.get(protocol::HEADER_AGENT_VERSION).unwrap(),
            "1"
        );
    }
}
