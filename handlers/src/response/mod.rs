//! WebSocket `$default`: messages from agents.
//!
//! - `ready` → offer the agent a fresh resume token (its hash becomes the
//!   claim's successor, see [`crate::claims`]) and post
//!   `connection_established` with the tunnel's URL and that token.
//! - `http_response` → write the answer: one item keyed by the request id
//!   and this very connection (the id API Gateway gives the event, never
//!   one the agent claims), once (`crate::store::pending`). A body the
//!   agent uploaded to the bodies bucket is only announced
//!   (`body_uploaded`); forwarding reads it back.
//! - `error` with a `request_id` → the same, with a short plain-text error
//!   page (status from `ErrorCode::http_status`).
//! - `ping` → post `pong`: the agent's heartbeat then proves the whole path
//!   (API Gateway → Lambda → `@connections`) works, so it can detect a dead
//!   link and reconnect instead of waiting for the 10-minute idle close.
//! - anything else → a warning (never the body), and 200 so the connection
//!   lives on. That includes protocol 1's chunked bodies (connect refuses
//!   the agents that sent them): the protocol parses an `http_response` with
//!   `body_chunks` as malformed (never as an answer with an empty, so
//!   wrong, body) and a `body_chunk` as an unknown type. Nothing is written:
//!   forwarding's visitor gets the 504 of an agent that never answered.

use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use protocol::limits::{MAX_REQUEST_TIMEOUT, TTL_SLACK};
use protocol::{ConnectionEstablished, ErrorMessage, HttpResponse, Message, ProtocolError};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::claims;
use crate::config::ResponseConfig;
use crate::logging::chain;
use crate::notifier::{Notifier, PostError};
use crate::pages::{error_response, printable};
use crate::store::{ConnectionStore, PendingStore, StoreError, Written};
use crate::websocket::{self, WebsocketResponse};

/// Delays before the retries of the `connection_established` post: right
/// after the upgrade, API Gateway can still answer 410 for a moment.
pub const ESTABLISHED_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(50),
    Duration::from_millis(150),
    Duration::from_millis(300),
];

#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not post {kind} to the connection")]
    Post {
        kind: &'static str,
        #[source]
        source: PostError,
    },
}

/// Handles one agent message. Returns 200 unless something internal failed.
pub async fn handle<C, P, N>(
    config: &ResponseConfig,
    connections: &C,
    pending: &P,
    notifier: &N,
    event: ApiGatewayWebsocketProxyRequest,
) -> WebsocketResponse
where
    C: ConnectionStore + Sync,
    P: PendingStore + Sync,
    N: Notifier + Sync,
{
    let Some(connection_id) = websocket::connection_id(&event).map(str::to_string) else {
        warn!("message event without requestContext.connectionId");
        return WebsocketResponse::BAD_REQUEST;
    };
    let span =
        info_span!("response", connection_id = %connection_id, request_id = tracing::field::Empty);
    async move {
        let Some(body) = event.body else {
            warn!("message event without a body");
            return WebsocketResponse::OK;
        };
        let message = match Message::from_json(&body) {
            Ok(m) => m,
            Err(ProtocolError::Malformed(e)) => {
                // Not `%e`: serde's message can quote parts of the input.
                warn!(bytes = body.len(), category = ?e.classify(), line = e.line(), column = e.column(), "malformed message dropped");
                return WebsocketResponse::OK;
            }
            Err(ProtocolError::TooLarge { size }) => {
                warn!(bytes = size, "oversize message dropped");
                return WebsocketResponse::OK;
            }
        };
        match dispatch(config, connections, pending, notifier, &connection_id, message).await {
            Ok(()) => WebsocketResponse::OK,
            Err(e) => {
                error!(error = %chain(&e), "message handling failed");
                WebsocketResponse::INTERNAL_ERROR
            }
        }
    }
    .instrument(span)
    .await
}

async fn dispatch<C, P, N>(
    config: &ResponseConfig,
    connections: &C,
    pending: &P,
    notifier: &N,
    connection_id: &str,
    message: Message,
) -> Result<(), ResponseError>
where
    C: ConnectionStore + Sync,
    P: PendingStore + Sync,
    N: Notifier + Sync,
{
    match message {
        Message::Ready(_) => ready(config, connections, notifier, connection_id).await,
        Message::HttpResponse(response) => {
            tracing::Span::current().record("request_id", response.request_id.as_str());
            let bytes = response.body.len();
            let uploaded = response.body_uploaded.map(|u| u.length);
            complete(pending, connection_id, response, "http_response").await?;
            debug!(body_base64_bytes = bytes, uploaded_bytes = ?uploaded, "answer stored");
            Ok(())
        }
        Message::Error(ErrorMessage {
            request_id: Some(request_id),
            code,
            message,
        }) => {
            tracing::Span::current().record("request_id", request_id.as_str());
            info!(?code, message = %printable(&message, 200), "agent reported a request error");
            let response = error_response(&request_id, code, &message);
            complete(pending, connection_id, response, "error").await
        }
        Message::Error(ErrorMessage {
            request_id: None,
            code,
            message,
        }) => {
            warn!(?code, message = %printable(&message, 200), "agent reported an error");
            Ok(())
        }
        Message::Ping => {
            let pong = Message::Pong.to_json().expect("pong serializes");
            match notifier.post(connection_id, &pong).await {
                Ok(()) => Ok(()),
                // The agent is gone: $disconnect cleans up; nothing to do here.
                Err(PostError::Gone) => {
                    info!("ping from a connection that is already gone");
                    Ok(())
                }
                Err(source) => Err(ResponseError::Post {
                    kind: "pong",
                    source,
                }),
            }
        }
        other @ (Message::Pong
        | Message::ConnectionEstablished(_)
        | Message::HttpRequest(_)
        | Message::Rejected(_)
        | Message::Unknown) => {
            warn!(kind = other.kind(), "unexpected message type dropped");
            Ok(())
        }
    }
}

/// How long an answer item is kept: past the longest a forwarding
/// invocation can wait for it, then TTL reclaims it.
pub const ANSWER_TTL: Duration =
    Duration::from_secs(MAX_REQUEST_TIMEOUT.as_secs() + TTL_SLACK.as_secs());

/// Writes this connection's answer, unless it already answered.
async fn complete<P: PendingStore + Sync>(
    pending: &P,
    connection_id: &str,
    response: HttpResponse,
    kind: &'static str,
) -> Result<(), ResponseError> {
    let ttl = crate::now_secs() + ANSWER_TTL.as_secs() as i64;
    match pending.put_answer(connection_id, &response, ttl).await? {
        Written::Yes => {
            info!(kind, status = response.status_code, "answer stored");
        }
        Written::ConditionFailed => {
            warn!(
                kind,
                "dropped: this connection already answered the request"
            );
        }
    }
    Ok(())
}

async fn ready<C, N>(
    config: &ResponseConfig,
    connections: &C,
    notifier: &N,
    connection_id: &str,
) -> Result<(), ResponseError>
where
    C: ConnectionStore + Sync,
    N: Notifier + Sync,
{
    let Some(connection) = connections.get_connection(connection_id).await? else {
        warn!("ready from a connection that is not registered");
        return Ok(());
    };
    // Made here, where it is handed over, so it is never stored; the
    // agent's previous token stays valid until it presents this one.
    let Some(resume_token) =
        claims::offer(connections, &connection.public_subdomain, connection_id).await?
    else {
        // Superseded (the agent resumed on a newer connection, or the claim
        // expired and was taken): this connection holds no URL to announce. The agent's wait for
        // `connection_established` times out and it reconnects.
        warn!(subdomain = %connection.public_subdomain, "ready from a connection that no longer holds its subdomain");
        return Ok(());
    };
    let message = Message::ConnectionEstablished(ConnectionEstablished {
        connection_id: connection_id.to_string(),
        subdomain: connection.public_subdomain.clone(),
        public_url: connection.public_url.clone(),
        resume_token: Some(resume_token),
        max_age_secs: Some(config.connection_max_age.as_secs()),
    })
    .to_json()
    .expect("connection_established is small");

    let mut delays = ESTABLISHED_RETRY_DELAYS.iter();
    loop {
        match notifier.post(connection_id, &message).await {
            Ok(()) => {
                info!(subdomain = %connection.public_subdomain, public_url = %connection.public_url, "connection established");
                return Ok(());
            }
            Err(e @ (PostError::Gone | PostError::Other(_))) => match delays.next() {
                Some(delay) => {
                    debug!(error = %chain(&e), ?delay, "posting connection_established failed, retrying");
                    tokio::time::sleep(*delay).await;
                }
                None => {
                    return Err(ResponseError::Post {
                        kind: "connection_established",
                        source: e,
                    });
                }
            },
            Err(e) => {
                return Err(ResponseError::Post {
                    kind: "connection_established",
                    source: e,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::fake::{Fail, Fake, Post};
    use crate::manifest;
    use crate::pages::{PLAIN_TEXT, text_response};
    use crate::testing::{capture_logs, response_config, ws_event};

    const CONN: &str = "L0SM9cOFvHcCIhw=";
    const REQ: &str = "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a";

    fn event_with_body(body: &str) -> ApiGatewayWebsocketProxyRequest {
        let mut event = ws_event("response-ready.json");
        event.body = Some(body.to_string());
        event
    }

    async fn run(fake: &Fake, event: ApiGatewayWebsocketProxyRequest) -> WebsocketResponse {
        let response = handle(&response_config(), fake, fake, fake, event).await;
        fake.assert_within(&manifest::RESPONSE);
        response
    }

    fn body_text(r: &HttpResponse) -> String {
        String::from_utf8(protocol::decode_body(&r.body).unwrap()).unwrap()
    }

    /// The one `connection_established` posted, with its resume token.
    fn established(fake: &Fake) -> (ConnectionEstablished, String) {
        let posts = fake.posts();
        let [(to, Message::ConnectionEstablished(established))] = posts.as_slice() else {
            panic!("expected one connection_established, got {posts:?}");
        };
        assert_eq!(to, CONN);
        let token = established.resume_token.clone().expect("a resume token");
        (established.clone(), token)
    }

    #[tokio::test]
    async fn ready_posts_connection_established_with_a_fresh_resume_token() {
        let fake = Fake::default();
        fake.insert_connection(CONN, "abc123def456");
        let mut claim = fake.claim("abc123def456").unwrap();
        claim.resume_token_hash = Some("hash-of-the-token-the-agent-holds".into());
        fake.put_claim(claim);
        assert_eq!(
            run(&fake, ws_event("response-ready.json")).await,
            WebsocketResponse::OK
        );
        let (established, token) = established(&fake);
        assert_eq!(
            established,
            ConnectionEstablished {
                connection_id: CONN.into(),
                subdomain: "abc123def456".into(),
                public_url: "https://abc123def456.tunnel.example.com".into(),
                resume_token: Some(token.clone()),
                max_age_secs: Some(7200),
            }
        );
        assert_eq!(
            protocol::auth::resume_token_subdomain(&token),
            Some("abc123def456")
        );
        // Offered as the successor, by hash only; the agent's current token
        // stays valid until it presents this one.
        let claim = fake.claim("abc123def456").unwrap();
        assert_eq!(
            claim.next_resume_token_hash,
            Some(protocol::auth::resume_token_hash(&token))
        );
        assert_eq!(
            claim.resume_token_hash.as_deref(),
            Some("hash-of-the-token-the-agent-holds")
        );
    }

    #[tokio::test]
    async fn ready_from_a_connection_that_no_longer_holds_its_subdomain_posts_nothing() {
        let fake = Fake::default();
        fake.insert_connection(CONN, "abc123def456");
        // The agent resumed on a newer connection meanwhile.
        fake.insert_claim("abc123def456", "Newer0000000AA=", i64::MAX);
        assert_eq!(
            run(&fake, ws_event("response-ready.json")).await,
            WebsocketResponse::OK
        );
        assert!(fake.posts().is_empty(), "{:?}", fake.posts());
        assert_eq!(
            fake.claim("abc123def456").unwrap().next_resume_token_hash,
            None
        );
    }

    #[tokio::test]
    async fn ready_fails_when_the_token_cannot_be_offered() {
        let fake = Fake::default();
        fake.insert_connection(CONN, "abc123def456");
        fake.fail(Fail::OfferToken);
        assert_eq!(
            run(&fake, ws_event("response-ready.json")).await,
            WebsocketResponse::INTERNAL_ERROR
        );
        assert!(fake.posts().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn ready_retries_a_410_right_after_the_upgrade() {
        let fake = Fake::default();
        fake.insert_connection(CONN, "abc123def456");
        fake.script_posts(&[Post::Gone, Post::Gone]);
        let start = tokio::time::Instant::now();
        assert_eq!(
            run(&fake, ws_event("response-ready.json")).await,
            WebsocketResponse::OK
        );
        assert_eq!(fake.posts().len(), 3);
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        // One token, offered once, whatever the retries: every post carried it.
        assert_eq!(fake.count("UpdateItem"), 1);
        let tokens: std::collections::BTreeSet<_> = fake
            .posts()
            .into_iter()
            .map(|(_, m)| match m {
                Message::ConnectionEstablished(e) => e.resume_token,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tokens.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ready_gives_up_within_a_second() {
        let fake = Fake::default();
        fake.insert_connection(CONN, "abc123def456");
        fake.script_posts(&[Post::Gone; 10]);
        let start = tokio::time::Instant::now();
        assert_eq!(
            run(&fake, ws_event("response-ready.json")).await,
            WebsocketResponse::INTERNAL_ERROR
        );
        assert_eq!(fake.posts().len(), 1 + ESTABLISHED_RETRY_DELAYS.len());
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn ready_from_an_unknown_connection_posts_nothing() {
        let fake = Fake::default();
        assert_eq!(
            run(&fake, ws_event("response-ready.json")).await,
            WebsocketResponse::OK
        );
        assert!(fake.posts().is_empty());
    }

    #[tokio::test]
    async fn http_response_is_stored_once_under_this_connection() {
        let fake = Fake::default();
        let before = crate::now_secs();
        assert_eq!(
            run(&fake, ws_event("response-http-response.json")).await,
            WebsocketResponse::OK
        );
        let done = fake.answer(REQ, CONN).expect("stored");
        assert_eq!(done.status_code, 200);
        assert_eq!(done.headers["set-cookie"], vec!["a=1; Path=/", "b=2"]);
        assert_eq!(body_text(&done), "hello");
        assert_eq!(fake.answer_count(), 1);
        assert_eq!(fake.count("PutItem"), 1, "one write, nothing else");
        assert_eq!(fake.actions().len(), 1);

        // The same connection again: refused, the first answer stays.
        let mut event = ws_event("response-http-response.json");
        event.body = Some(event.body.unwrap().replace("hello", "again"));
        assert_eq!(run(&fake, event).await, WebsocketResponse::OK);
        assert_eq!(body_text(&fake.answer(REQ, CONN).unwrap()), "hello");
        // Reclaimed by TTL once no forwarding can still wait for it.
        let ttl = fake.get_answer(REQ, CONN).await.unwrap().unwrap().ttl;
        let ttl_secs = ANSWER_TTL.as_secs() as i64;
        assert!(
            ttl >= before + ttl_secs && ttl <= crate::now_secs() + ttl_secs,
            "{ttl}"
        );
        assert!(ANSWER_TTL >= protocol::limits::MAX_REQUEST_TIMEOUT);
    }

    /// The connection id is the event's, never one the message names: an
    /// answer from another connection lands under its own key, which no
    /// poller of this request reads.
    #[tokio::test]
    async fn an_answer_is_keyed_by_the_connection_that_sent_it() {
        let fake = Fake::default();
        let mut event = ws_event("response-http-response.json");
        event.request_context.connection_id = Some("Other0000000AA=".into());
        assert_eq!(run(&fake, event).await, WebsocketResponse::OK);
        assert!(fake.answer(REQ, CONN).is_none());
        assert!(fake.answer(REQ, "Other0000000AA=").is_some());
    }

    /// An uploaded answer is stored as its marker: no body, the length.
    #[tokio::test]
    async fn an_uploaded_answer_is_stored_as_its_marker() {
        let fake = Fake::default();
        let body = format!(
            r#"{{"type":"http_response","request_id":"{REQ}","status_code":200,"headers":{{}},"body":"","body_uploaded":{{"length":70000}}}}"#
        );
        assert_eq!(
            run(&fake, event_with_body(&body)).await,
            WebsocketResponse::OK
        );
        let done = fake.answer(REQ, CONN).unwrap();
        assert_eq!(done.body, "");
        assert_eq!(
            done.body_uploaded,
            Some(protocol::BodyUploaded { length: 70_000 })
        );
    }

    #[rstest]
    #[case(
        "local_service_unavailable",
        502,
        "The tunnel's local service is unavailable: connection refused\n"
    )]
    #[case(
        "timeout",
        504,
        "The tunnel's local service did not answer in time: connection refused\n"
    )]
    #[case(
        "invalid_request",
        400,
        "The tunnel could not pass this request to its local service: connection refused\n"
    )]
    #[case(
        "internal_error",
        502,
        "The tunnel's agent failed to handle this request: connection refused\n"
    )]
    #[case(
        "payload_too_large",
        502,
        "The local service's response is too large for the tunnel: connection refused\n"
    )]
    #[case(
        "from_the_future",
        502,
        "The tunnel's agent failed to handle this request: connection refused\n"
    )]
    #[tokio::test]
    async fn error_completes_with_a_text_page(
        #[case] code: &str,
        #[case] status: u16,
        #[case] text: &str,
    ) {
        let fake = Fake::default();
        let body = format!(
            r#"{{"type":"error","request_id":"{REQ}","code":"{code}","message":"connection refused"}}"#
        );
        assert_eq!(
            run(&fake, event_with_body(&body)).await,
            WebsocketResponse::OK
        );
        let done = fake.answer(REQ, CONN).unwrap();
        assert_eq!(done.status_code, status);
        assert_eq!(done.headers["content-type"], vec![PLAIN_TEXT]);
        assert_eq!(body_text(&done), text);
    }

    #[tokio::test]
    async fn an_error_after_an_answer_is_dropped() {
        let fake = Fake::default();
        fake.insert_answer(CONN, &text_response(REQ, 201, "first"));
        let body =
            format!(r#"{{"type":"error","request_id":"{REQ}","code":"timeout","message":"x"}}"#);
        assert_eq!(
            run(&fake, event_with_body(&body)).await,
            WebsocketResponse::OK
        );
        assert_eq!(fake.answer(REQ, CONN).unwrap().status_code, 201);
    }

    #[tokio::test]
    async fn ping_gets_a_pong() {
        let fake = Fake::default();
        assert_eq!(
            run(&fake, ws_event("response-ping.json")).await,
            WebsocketResponse::OK
        );
        assert_eq!(fake.posts(), vec![(CONN.to_string(), Message::Pong)]);
    }

    #[tokio::test]
    async fn ping_from_a_gone_connection_is_fine() {
        let fake = Fake::default();
        fake.script_posts(&[Post::Gone]);
        assert_eq!(
            run(&fake, ws_event("response-ping.json")).await,
            WebsocketResponse::OK
        );
    }

    #[rstest]
    #[case::not_json("hello")]
    #[case::empty("")]
    #[case::array("[1,2]")]
    #[case::no_type(r#"{"request_id":"x"}"#)]
    #[case::bad_field(r#"{"type":"http_response","request_id":"r","status_code":"200"}"#)]
    #[case::unknown_type(r#"{"type":"from_the_future","seq":1}"#)]
    #[case::wrong_direction(r#"{"type":"http_request","request_id":"r","method":"GET","uri":"/"}"#)]
    #[case::pong(r#"{"type":"pong"}"#)]
    #[case::connection_error(r#"{"type":"error","code":"internal_error","message":"oops"}"#)]
    #[tokio::test]
    async fn bad_or_unexpected_messages_are_dropped_with_200(#[case] body: &str) {
        let fake = Fake::default();
        assert_eq!(
            run(&fake, event_with_body(body)).await,
            WebsocketResponse::OK
        );
        assert!(fake.posts().is_empty());
        assert_eq!(fake.answer_count(), 0);
        assert!(fake.actions().is_empty());
    }

    /// Protocol 1's chunks go the way of any malformed or unknown message:
    /// the same warning, nothing written (a head's empty body would be a
    /// wrong answer), nothing posted.
    #[rstest]
    #[case::chunked_head(
        r#"{"type":"http_response","request_id":"r","status_code":200,"body":"","body_chunks":{"count":2,"length":100000}}"#,
        "malformed message dropped"
    )]
    #[case::chunk(
        r#"{"type":"body_chunk","request_id":"r","index":0,"data":"AAAA"}"#,
        "unexpected message type dropped kind=\"unknown\""
    )]
    #[tokio::test]
    async fn protocol_1_chunks_are_invalid_messages(#[case] body: &str, #[case] log: &str) {
        let fake = Fake::default();
        let (status, logs) = capture_logs(run(&fake, event_with_body(body))).await;
        assert_eq!(status, WebsocketResponse::OK);
        assert!(logs.contains(log), "{logs}");
        assert!(!logs.contains("chunk"), "a special case: {logs}");
        assert_eq!(fake.answer_count(), 0);
        assert!(fake.posts().is_empty());
        assert!(fake.actions().is_empty());
    }

    #[tokio::test]
    async fn missing_body_or_connection_id() {
        let fake = Fake::default();
        let mut event = ws_event("response-ready.json");
        event.body = None;
        assert_eq!(run(&fake, event).await, WebsocketResponse::OK);
        let mut event = ws_event("response-ready.json");
        event.request_context.connection_id = None;
        assert_eq!(run(&fake, event).await, WebsocketResponse::BAD_REQUEST);
        assert!(fake.actions().is_empty());
    }

    #[tokio::test]
    async fn store_failure_is_a_500() {
        let fake = Fake::default();
        fake.fail(Fail::PutAnswer);
        assert_eq!(
            run(&fake, ws_event("response-http-response.json")).await,
            WebsocketResponse::INTERNAL_ERROR
        );
    }
}
