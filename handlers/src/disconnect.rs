//! `$disconnect`: release the subdomain (held for the agent's resume token
//! during `RESUME_WINDOW`) and delete the connection. Requests in flight are
//! not touched (the pending table holds only answers): forwarding, waiting
//! for one, asks API Gateway about a silent connection and answers 502 once
//! it is gone (`crate::forwarding::wait`).

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use tracing::{Instrument, error, info, info_span, warn};

use crate::claims;
use crate::config::DisconnectConfig;
use crate::logging::chain;
use crate::store::{ConnectionStore, StoreError, Written};
use crate::websocket::{self, WebsocketResponse};

/// Handles one `$disconnect` event. Every step is attempted even if an
/// earlier one failed; any failure makes it a 500 (ignored by API Gateway,
/// but counted in the function's error logs).
pub async fn handle<C>(
    _config: &DisconnectConfig,
    connections: &C,
    event: ApiGatewayWebsocketProxyRequest,
) -> WebsocketResponse
where
    C: ConnectionStore + Sync,
{
    let Some(connection_id) = websocket::connection_id(&event).map(str::to_string) else {
        warn!("disconnect event without requestContext.connectionId");
        return WebsocketResponse::BAD_REQUEST;
    };
    let span = info_span!("disconnect", connection_id = %connection_id);
    let status = event.request_context.disconnect_status_code;
    let reason = event.request_context.disconnect_reason;
    async move {
        let mut failed = false;
        let mut note = |step: &str, e: StoreError| {
            error!(error = %chain(&e), step, "disconnect cleanup step failed");
            failed = true;
        };

        match connections.get_connection(&connection_id).await {
            Ok(Some(connection)) => {
                let subdomain = connection.public_subdomain;
                let now = crate::now_secs();
                match claims::release(connections, &subdomain, &connection_id, now).await {
                    Ok(Written::Yes) => {}
                    // The agent resumed on a new connection first: its claim
                    // is not ours to touch.
                    Ok(Written::ConditionFailed) => {
                        info!(%subdomain, "claim already gone or taken over")
                    }
                    Err(e) => note("release claim", e),
                }
            }
            Ok(None) => info!("connection item already gone"),
            Err(e) => note("get connection", e),
        }
        if let Err(e) = connections.delete_connection(&connection_id).await {
            note("delete connection", e);
        }

        info!(
            disconnect_status_code = status,
            disconnect_reason = reason.as_deref().unwrap_or(""),
            "connection cleaned up"
        );
        if failed {
            WebsocketResponse::INTERNAL_ERROR
        } else {
            WebsocketResponse::OK
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Fail, Fake};
    use crate::manifest;
    use crate::testing::{disconnect_config, ws_event};

    const CONN: &str = "L0SM9cOFvHcCIhw=";

    async fn run(fake: &Fake, event: ApiGatewayWebsocketProxyRequest) -> WebsocketResponse {
        let response = handle(&disconnect_config(), fake, event).await;
        fake.assert_within(&manifest::DISCONNECT);
        response
    }

    #[tokio::test]
    async fn releases_the_claim_and_deletes_the_connection_touching_no_request() {
        let fake = Fake::default();
        fake.insert_connection(CONN, "abc123def456");
        fake.insert_connection("Other0000000AA=", "other");

        assert_eq!(
            run(&fake, ws_event("disconnect.json")).await,
            WebsocketResponse::OK
        );

        assert!(fake.connection(CONN).is_none());
        // Released, not deleted: held for the resume window, then free.
        let claim = fake.claim("abc123def456").unwrap();
        let now = crate::now_secs();
        assert!(
            claim
                .released_at
                .is_some_and(|t| (now - 5..=now).contains(&t))
        );
        let window = protocol::limits::RESUME_WINDOW.as_secs() as i64;
        assert!(
            (now + window - 5..=now + window).contains(&claim.ttl),
            "{claim:?}"
        );
        assert!(fake.connection("Other0000000AA=").is_some());
        assert_eq!(fake.claim("other").unwrap().released_at, None);
        assert!(
            fake.actions().iter().all(|a| a.table == "connections"),
            "{:?}",
            fake.actions()
        );
    }

    #[tokio::test]
    async fn keeps_a_claim_taken_over_by_another_connection() {
        let fake = Fake::default();
        fake.insert_connection(CONN, "abc123def456");
        fake.insert_claim("abc123def456", "New000000000AA=", i64::MAX);
        assert_eq!(
            run(&fake, ws_event("disconnect.json")).await,
            WebsocketResponse::OK
        );
        let claim = fake.claim("abc123def456").unwrap();
        assert_eq!(claim.owner_connection_id, "New000000000AA=");
        assert_eq!((claim.ttl, claim.released_at), (i64::MAX, None));
        assert!(fake.connection(CONN).is_none());
    }

    #[tokio::test]
    async fn unknown_connection_is_fine() {
        let fake = Fake::default();
        assert_eq!(
            run(&fake, ws_event("disconnect.json")).await,
            WebsocketResponse::OK
        );
        assert!(fake.connection(CONN).is_none());
    }

    #[tokio::test]
    async fn a_failed_step_does_not_stop_the_others() {
        let fake = Fake::default();
        fake.insert_connection(CONN, "abc123def456");
        fake.fail(Fail::GetConnection);
        assert_eq!(
            run(&fake, ws_event("disconnect.json")).await,
            WebsocketResponse::INTERNAL_ERROR
        );
        assert!(fake.connection(CONN).is_none());
    }

    #[tokio::test]
    async fn missing_connection_id() {
        let fake = Fake::default();
        let mut event = ws_event("disconnect.json");
        event.request_context.connection_id = None;
        assert_eq!(run(&fake, event).await, WebsocketResponse::BAD_REQUEST);
        assert!(fake.actions().is_empty());
    }
}
