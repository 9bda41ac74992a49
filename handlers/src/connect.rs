//! `$connect`: allocate a subdomain no live connection holds, store the
//! connection, accept the upgrade.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use http::HeaderMap;
use protocol::limits::{CONNECTION_TTL, TTL_SLACK};
use protocol::{HEADER_AGENT_PLATFORM, HEADER_AGENT_VERSION};
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::ConnectConfig;
use crate::logging::chain;
use crate::store::{Claim, Connection, ConnectionStore, StoreError, Written};
use crate::websocket::WebsocketResponse;

/// How many fresh subdomains to try before giving up. With 62-bit random
/// names a collision is already astronomically unlikely; the bound only
/// guards against a misbehaving table.
pub const MAX_CLAIM_ATTEMPTS: usize = 5;

/// Longest agent version/platform string stored.
const MAX_AGENT_FIELD: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the event has no requestContext.connectionId")]
    MissingConnectionId,
    #[error("no free subdomain after {MAX_CLAIM_ATTEMPTS} attempts")]
    NoFreeSubdomain,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Handles one `$connect` event: 200 accepts the upgrade, 500 rejects it.
pub async fn handle<C: ConnectionStore + Sync>(
    config: &ConnectConfig,
    store: &C,
    event: ApiGatewayWebsocketProxyRequest,
) -> WebsocketResponse {
    let connection_id = event
        .request_context
        .connection_id
        .clone()
        .unwrap_or_default();
    let span = info_span!("connect", connection_id = %connection_id);
    async move {
        match connect(config, store, &event, &protocol::generate_subdomain).await {
            Ok(connection) => {
                info!(
                    subdomain = %connection.public_subdomain,
                    public_url = %connection.public_url,
                    agent_version = connection.agent_version.as_deref().unwrap_or(""),
                    agent_platform = connection.agent_platform.as_deref().unwrap_or(""),
                    "connection registered"
                );
                WebsocketResponse::OK
            }
            Err(e) => {
                error!(error = %chain(&e), "connection rejected");
                WebsocketResponse::INTERNAL_ERROR
            }
        }
    }
    .instrument(span)
    .await
}

/// A handshake header, matched case-insensitively (`HeaderMap` keys are
/// lowercase whatever the client sent), cleaned for storage.
fn agent_header(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    let clean: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_AGENT_FIELD)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

pub(crate) async fn connect<C: ConnectionStore + Sync>(
    config: &ConnectConfig,
    store: &C,
    event: &ApiGatewayWebsocketProxyRequest,
    generate: &(dyn Fn() -> String + Sync),
) -> Result<Connection, ConnectError> {
    let connection_id = event
        .request_context
        .connection_id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or(ConnectError::MissingConnectionId)?;
    let now = crate::now_secs();
    let ttl = now + (CONNECTION_TTL + TTL_SLACK).as_secs() as i64;

    let mut subdomain = None;
    for attempt in 1..=MAX_CLAIM_ATTEMPTS {
        let candidate = generate();
        let claim = Claim {
            subdomain: candidate.clone(),
            owner_connection_id: connection_id.clone(),
            created_at: now,
            ttl,
        };
        match store.claim_subdomain(&claim, now).await? {
            Written::Yes => {
                subdomain = Some(candidate);
                break;
            }
            Written::ConditionFailed => {
                warn!(subdomain = %candidate, attempt, "subdomain taken, trying another")
            }
        }
    }
    let subdomain = subdomain.ok_or(ConnectError::NoFreeSubdomain)?;

    let connection = Connection {
        connection_id: connection_id.clone(),
        public_url: config.public_url.url(&subdomain),
        public_subdomain: subdomain.clone(),
        created_at: now,
        ttl,
        agent_version: agent_header(&event.headers, HEADER_AGENT_VERSION),
        agent_platform: agent_header(&event.headers, HEADER_AGENT_PLATFORM),
        source_ip: event.request_context.identity.source_ip.clone(),
    };
    if let Err(e) = store.put_connection(&connection).await {
        // Give the subdomain back; a failure here only leaves a claim that
        // its TTL (or a later claim after expiry) takes care of.
        if let Err(release) = store.release_claim(&subdomain, &connection_id).await {
            warn!(error = %chain(&release), %subdomain, "could not release the claim");
        }
        return Err(e.into());
    }
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest;
    use crate::testing::{Fail, Fake, connect_config, ws_event};

    #[tokio::test]
    async fn registers_the_connection_with_agent_headers_in_any_case() {
        let fake = Fake::default();
        let mut event = ws_event("connect.json");
        event
            .headers
            .insert("X-Tunnel-Agent-Version", "0.3.1".parse().unwrap());
        event
            .headers
            .insert("X-TUNNEL-AGENT-PLATFORM", "linux-x86_64".parse().unwrap());

        let response = handle(&connect_config(), &fake, event).await;
        assert_eq!(response, WebsocketResponse::OK);

        let conn = fake.connection("L0SM9cOFvHcCIhw=").expect("stored");
        assert_eq!(conn.public_subdomain.len(), protocol::limits::SUBDOMAIN_LEN);
        assert!(protocol::is_valid_subdomain(&conn.public_subdomain));
        assert_eq!(
            conn.public_url,
            format!("https://{}.tunnel.example.com", conn.public_subdomain)
        );
        assert_eq!(conn.agent_version.as_deref(), Some("0.3.1"));
        assert_eq!(conn.agent_platform.as_deref(), Some("linux-x86_64"));
        assert_eq!(conn.source_ip.as_deref(), Some("203.0.113.7"));
        let expected_ttl = conn.created_at + 2 * 3600 + 300;
        assert_eq!(conn.ttl, expected_ttl);

        let claim = fake.claim(&conn.public_subdomain).expect("claimed");
        assert_eq!(claim.owner_connection_id, "L0SM9cOFvHcCIhw=");
        assert_eq!(claim.ttl, expected_ttl);
        fake.assert_within(&manifest::CONNECT);
    }

    #[tokio::test]
    async fn without_agent_headers_stores_none() {
        let fake = Fake::default();
        let mut event = ws_event("connect.json");
        event.headers.remove(HEADER_AGENT_VERSION);
        event.headers.remove(HEADER_AGENT_PLATFORM);
        assert_eq!(
            handle(&connect_config(), &fake, event).await,
            WebsocketResponse::OK
        );
        let conn = fake.connection("L0SM9cOFvHcCIhw=").unwrap();
        assert_eq!((conn.agent_version, conn.agent_platform), (None, None));
    }

    #[tokio::test]
    async fn retries_with_a_new_subdomain_when_one_is_taken() {
        let fake = Fake::default();
        fake.insert_claim("taken1", "other=", i64::MAX);
        fake.insert_claim("taken2", "other=", i64::MAX);
        let names = std::sync::Mutex::new(vec!["free1", "taken2", "taken1"]);
        let generate = || names.lock().unwrap().pop().unwrap().to_string();
        let conn = connect(
            &connect_config(),
            &fake,
            &ws_event("connect.json"),
            &generate,
        )
        .await
        .unwrap();
        assert_eq!(conn.public_subdomain, "free1");
        assert_eq!(fake.claim("taken1").unwrap().owner_connection_id, "other=");
        fake.assert_within(&manifest::CONNECT);
    }

    #[tokio::test]
    async fn takes_over_an_expired_claim() {
        let fake = Fake::default();
        fake.insert_claim("stale", "old=", 1);
        let conn = connect(&connect_config(), &fake, &ws_event("connect.json"), &|| {
            "stale".to_string()
        })
        .await
        .unwrap();
        assert_eq!(conn.public_subdomain, "stale");
        assert_eq!(
            fake.claim("stale").unwrap().owner_connection_id,
            "L0SM9cOFvHcCIhw="
        );
    }

    #[tokio::test]
    async fn gives_up_after_bounded_attempts() {
        let fake = Fake::default();
        fake.insert_claim("same", "other=", i64::MAX);
        let err = connect(&connect_config(), &fake, &ws_event("connect.json"), &|| {
            "same".to_string()
        })
        .await
        .unwrap_err();
        assert!(matches!(err, ConnectError::NoFreeSubdomain));
        assert_eq!(fake.count("PutItem"), MAX_CLAIM_ATTEMPTS);
        assert!(fake.connection("L0SM9cOFvHcCIhw=").is_none());
    }

    #[tokio::test]
    async fn releases_the_claim_when_the_connection_cannot_be_stored() {
        let fake = Fake::default();
        fake.fail(Fail::PutConnection);
        let response = handle(&connect_config(), &fake, ws_event("connect.json")).await;
        assert_eq!(response, WebsocketResponse::INTERNAL_ERROR);
        assert!(fake.claims().is_empty(), "{:?}", fake.claims());
        fake.assert_within(&manifest::CONNECT);
    }

    #[tokio::test]
    async fn store_failure_rejects_the_handshake() {
        let fake = Fake::default();
        fake.fail(Fail::Claim);
        let response = handle(&connect_config(), &fake, ws_event("connect.json")).await;
        assert_eq!(response, WebsocketResponse::INTERNAL_ERROR);
    }

    #[tokio::test]
    async fn missing_connection_id_is_rejected_without_store_calls() {
        let fake = Fake::default();
        let mut event = ws_event("connect.json");
        event.request_context.connection_id = None;
        assert_eq!(
            handle(&connect_config(), &fake, event).await,
            WebsocketResponse::INTERNAL_ERROR
        );
        assert!(fake.actions().is_empty());
        assert!(fake.claims().is_empty());
    }

    #[tokio::test]
    async fn public_url_follows_the_template() {
        let fake = Fake::default();
        let mut config = connect_config();
        config.public_url =
            crate::config::PublicUrlTemplate::new("https://api.example.com/{subdomain}").unwrap();
        let conn = connect(&config, &fake, &ws_event("connect.json"), &|| {
            "abc".to_string()
        })
        .await
        .unwrap();
        assert_eq!(conn.public_url, "https://api.example.com/abc");
    }
}
