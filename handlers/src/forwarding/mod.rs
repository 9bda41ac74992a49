//! The HTTP API's function: route a visitor's request to its tunnel, post it
//! to the agent, wait for the answer and return it.
//!
//! [`forward`] is the whole request path as a sequence of steps, each
//! failing with a [`ForwardError`] that says what the visitor gets (one
//! table, in [`error`]):
//!
//! 1. route: which tunnel, which local URI ([`routing`]);
//! 2. the request as the agent gets it ([`http_api`]), a body over the
//!    ceiling refused with 413;
//! 3. look up the tunnel's connection (a strongly consistent read of its
//!    claim), and check the access policy stored on it ([`crate::access`]):
//!    a refused request gets its 401/403 here, before any write or post;
//! 4. split the request into messages that each fit a WebSocket message
//!    (`protocol::chunk`), refused with 413 before anything is stored or
//!    posted;
//! 5. save the pending request, post the messages ([`post`]: a young
//!    connection's 410 is retried, never torn down), wait for the answer
//!    ([`wait`]: a silent agent's connection is checked with GetConnection),
//!    delete the pending item whatever happened, and clean up after a
//!    connection found dead;
//! 6. read a chunked body back ([`chunks`]) and map the answer for the HTTP
//!    API ([`http_api`]).

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use protocol::limits::{MAX_BODY_BYTES, TTL_SLACK};
use protocol::{HttpRequest, ProtocolError};
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

use crate::config::ForwardingConfig;
use crate::logging::chain;
use crate::notifier::Notifier;
use crate::store::{ChunkStore, Claim, ConnectionStore, PendingRequest, PendingStore};
use crate::{access, claims};

mod chunks;
pub mod cookies;
pub mod error;
pub mod http_api;
pub mod post;
pub mod routing;
pub mod wait;

pub use error::ForwardError;
pub use http_api::HttpApiResponse;
pub use routing::{RouteError, Target, route};

/// Handles one visitor request: always an HTTP answer, logged once.
pub async fn handle<C, P, N>(
    config: &ForwardingConfig,
    connections: &C,
    pending: &P,
    notifier: &N,
    event: ApiGatewayV2httpRequest,
) -> HttpApiResponse
where
    C: ConnectionStore + Sync,
    P: PendingStore + ChunkStore + Sync,
    N: Notifier + Sync,
{
    let request_id = protocol::generate_request_id();
    let apigw_request_id = event.request_context.request_id.clone().unwrap_or_default();
    let span = info_span!(
        "forwarding",
        request_id = %request_id,
        apigw_request_id = %apigw_request_id,
        connection_id = tracing::field::Empty,
        subdomain = tracing::field::Empty,
    );
    async move {
        let method = event.request_context.http.method.to_string();
        let started = Instant::now();
        let ids = Ids {
            request: &request_id,
            api_gateway: &apigw_request_id,
        };
        let response = match forward(config, connections, pending, notifier, &event, ids).await {
            Ok(response) => response,
            Err(e) => {
                e.log();
                e.response()
            }
        };
        info!(
            %method,
            status = response.status_code,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request done"
        );
        response
    }
    .instrument(span)
    .await
}

/// The request's ids: ours (also the protocol's `request_id`) and the HTTP
/// API's (for log correlation).
#[derive(Debug, Clone, Copy)]
struct Ids<'a> {
    request: &'a str,
    api_gateway: &'a str,
}

async fn forward<C, P, N>(
    config: &ForwardingConfig,
    connections: &C,
    pending: &P,
    notifier: &N,
    event: &ApiGatewayV2httpRequest,
    ids: Ids<'_>,
) -> Result<HttpApiResponse, ForwardError>
where
    C: ConnectionStore + Sync,
    P: PendingStore + ChunkStore + Sync,
    N: Notifier + Sync,
{
    let span = tracing::Span::current();
    let target = routing::target(event, &config.domain_name, config.routing)?;
    span.record("subdomain", target.subdomain.as_str());
    let (mut request, body) = request(event, ids.request, target.uri)?;
    let claim = live_claim(connections, &target.subdomain).await?;
    let connection_id = claim.owner_connection_id.as_str();
    span.record("connection_id", connection_id);
    let visitor = access::Visitor::of(event, &target.subdomain, &body);
    let policy = claim.policy.as_ref();
    let admitted = access::check(notifier, connection_id, policy, &visitor, event).await?;
    admitted.apply(&mut request);
    let messages = messages(request, &body)?;

    pending
        .put_pending(&pending_item(config, ids, connection_id))
        .await
        .map_err(ForwardError::Save)?;
    // One deadline for posting (a young connection's retries) and waiting.
    let deadline = Instant::now() + config.request_timeout;
    let answer = match post::messages(notifier, &claim, &messages, deadline).await {
        Ok(()) => {
            let waiting = wait::Waiting {
                request_id: ids.request,
                connection_id,
                timeout: config.request_timeout,
                deadline,
            };
            wait::answer(pending, notifier, waiting, config.poll_schedule()).await
        }
        Err(e) => Err(e),
    };
    // Delete rather than leave it to TTL: the item may carry a response of up
    // to 128 KB, TTL deletion can lag by days, and once it is deleted a late
    // answer fails its `attribute_exists` condition instead of completing a
    // request nobody waits for. TTL remains the backstop for a crashed run.
    forget(pending, ids.request).await;
    if answer.as_ref().is_err_and(ForwardError::connection_ended) {
        remove_stale_connection(connections, connection_id, &target.subdomain).await;
    }

    let response = chunks::with_body(pending, connection_id, answer?).await?;
    http_api::to_api_response(&response, &target.cookies)
        .map(|mut r| {
            r.cookies.extend(admitted.into_set_cookie());
            r
        })
        .map_err(ForwardError::InvalidResponse)
}

/// The request as the agent gets it, and its body (within the ceiling).
fn request(
    event: &ApiGatewayV2httpRequest,
    request_id: &str,
    uri: String,
) -> Result<(HttpRequest, Vec<u8>), ForwardError> {
    let (request, body) =
        http_api::to_request(event, request_id, uri).map_err(ForwardError::BodyUndecodable)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ForwardError::BodyTooLarge { len: body.len() });
    }
    Ok((request, body))
}

/// The request as messages to post, in order: one, or the head and its body
/// chunks. Checked before anything is stored or posted: nothing is
/// half-delivered.
fn messages(request: HttpRequest, body: &[u8]) -> Result<Vec<String>, ForwardError> {
    protocol::chunk::to_messages(request, body).map_err(|e| match e {
        ProtocolError::TooLarge { size } => ForwardError::HeadTooLarge {
            size,
            body_bytes: body.len(),
        },
        e => ForwardError::Encode(e),
    })
}

/// The subdomain's live claim: its connection and access policy (a strongly
/// consistent read: a brand-new tunnel never 404s).
async fn live_claim<C: ConnectionStore + Sync>(
    connections: &C,
    subdomain: &str,
) -> Result<Claim, ForwardError> {
    let claim = connections
        .get_claim(subdomain)
        .await
        .map_err(ForwardError::Lookup)?
        .filter(|c| c.ttl >= crate::now_secs())
        .ok_or_else(|| ForwardError::NoTunnel {
            subdomain: subdomain.to_string(),
        })?;
    if claim.released_at.is_some() {
        // Its connection ended; the subdomain is held for the agent's resume.
        return Err(ForwardError::Reconnecting);
    }
    Ok(claim)
}

fn pending_item(config: &ForwardingConfig, ids: Ids<'_>, connection_id: &str) -> PendingRequest {
    let now = crate::now_secs();
    PendingRequest {
        request_id: ids.request.to_string(),
        connection_id: connection_id.to_string(),
        api_gateway_request_id: ids.api_gateway.to_string(),
        created_at: now,
        ttl: now + (config.request_timeout + TTL_SLACK).as_secs() as i64,
    }
}

/// The connection is dead although its items are still there (its
/// `$disconnect` never ran, or has not yet): its claim is released, not
/// deleted (the agent may be reconnecting with its resume token, or its user
/// with the reserved name), and only if this connection still holds it; its
/// item is deleted.
async fn remove_stale_connection<C: ConnectionStore + Sync>(
    connections: &C,
    connection_id: &str,
    subdomain: &str,
) {
    if let Err(e) = claims::release(connections, subdomain, connection_id, crate::now_secs()).await
    {
        warn!(error = %chain(&e), "could not release the stale claim");
    }
    if let Err(e) = connections.delete_connection(connection_id).await {
        warn!(error = %chain(&e), "could not delete the stale connection");
    }
}

async fn forget<P: PendingStore + Sync>(pending: &P, request_id: &str) {
    if let Err(e) = pending.delete_pending(request_id).await {
        warn!(error = %chain(&e), "could not delete the pending request; TTL will");
    }
}
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rstest::rstest;

    use super::*;
    use crate::fake::{Fail, Fake, Post, Probe};
    use crate::forwarding::http_api::tests::agent_response;
    use crate::forwarding::http_api::to_api_response;
    use crate::manifest;
    use crate::pages::{
        AGENT_CONNECTING, AGENT_GONE, AGENT_RECONNECTING, NOT_ALLOWED_TO_REACH_AGENT, PLAIN_TEXT,
        body_too_large,
    };
    use crate::testing::{forwarding_config, http_event};
    use protocol::{ChunkedBody, HttpRequest, Message};

    const CONN: &str = "L0SM9cOFvHcCIhw=";
    const SUB: &str = "abc123def456";

    fn tunnel() -> Fake {
        let fake = Fake::default();
        fake.insert_connection(CONN, SUB);
        fake
    }

    /// The fake agent answers every request at poll `at`.
    fn answering(fake: &Fake, at: usize) {
        fake.set_agent(Box::new(move |req| {
            Some((at, agent_response(&req.request_id)))
        }));
    }

    async fn run(fake: &Fake, event: ApiGatewayV2httpRequest) -> HttpApiResponse {
        run_with(&forwarding_config(), fake, event).await
    }

    async fn run_with(
        config: &ForwardingConfig,
        fake: &Fake,
        event: ApiGatewayV2httpRequest,
    ) -> HttpApiResponse {
        let response = handle(config, fake, fake, fake, event).await;
        fake.assert_within(&manifest::FORWARDING);
        response
    }

    fn posted_request(fake: &Fake) -> HttpRequest {
        let posts = fake.posts();
        assert_eq!(posts.len(), 1, "{posts:?}");
        assert_eq!(posts[0].0, CONN);
        match &posts[0].1 {
            Message::HttpRequest(r) => r.clone(),
            other => panic!("posted {other:?}"),
        }
    }

    fn text(r: &HttpApiResponse) -> &str {
        assert!(!r.is_base64_encoded);
        assert_eq!(r.headers["content-type"], PLAIN_TEXT);
        r.body.as_deref().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn forwards_a_get_and_returns_the_answer() {
        let fake = tunnel();
        answering(&fake, 3);
        let response = run(&fake, http_event("forwarding-get.json")).await;

        let req = posted_request(&fake);
        assert_eq!(req.method, "GET");
        assert_eq!(req.uri, "/api/items?tag=a&tag=b&q=%20x%2By&empty=");
        assert_eq!(req.headers["cookie"], vec!["session=abc; theme=dark"]);
        assert_eq!(req.headers["accept"], vec!["text/html,application/json"]);
        assert_eq!(req.headers["x-custom"], vec!["one,two"]);
        assert_eq!(req.headers["host"], vec!["abc123def456.tunnel.example.com"]);
        assert!(!req.headers.contains_key("connection"));
        assert_eq!(req.body, "");
        assert!(req.timestamp > 0);

        assert_eq!(
            response,
            to_api_response(
                &agent_response(&req.request_id),
                &cookies::CookieScope::Host
            )
            .unwrap()
        );
        // The pending item was deleted once answered.
        assert_eq!(fake.pending_count(), 0);
        assert_eq!(fake.deleted_pending(), vec![req.request_id.clone()]);
        assert_eq!(fake.count("GetItem"), 1 + 3);
    }

    #[rstest]
    #[case::base64_binary("forwarding-post-base64.json", &[0u8, 1, 2, 255, 254][..])]
    #[case::plain_text("forwarding-post-json.json", "{\"name\":\"café\",\"n\":1}".as_bytes())]
    #[tokio::test(start_paused = true)]
    async fn forwards_bodies_by_the_base64_flag(#[case] name: &str, #[case] bytes: &[u8]) {
        let fake = tunnel();
        answering(&fake, 1);
        let response = run(&fake, http_event(name)).await;
        assert_eq!(response.status_code, 201);
        let req = posted_request(&fake);
        assert_eq!(req.method, "POST");
        assert_eq!(protocol::decode_body(&req.body).unwrap(), bytes);
    }

    #[tokio::test(start_paused = true)]
    async fn path_routing_strips_the_tunnel_name() {
        let fake = tunnel();
        answering(&fake, 1);
        let config = ForwardingConfig {
            routing: crate::config::Routing::Path,
            ..forwarding_config()
        };
        let response = run_with(&config, &fake, http_event("forwarding-path-routing.json")).await;
        assert_eq!(response.status_code, 201);
        assert_eq!(posted_request(&fake).uri, "/webhooks/github?x=1&x=2");
        // The agent's `Path=/` cookie stays under the tunnel's prefix.
        assert_eq!(
            response.cookies,
            [
                "a=1; Path=/abc123def456",
                "b=2; HttpOnly; Path=/abc123def456/webhooks"
            ]
        );
    }

    #[tokio::test]
    async fn invalid_body_encoding_is_a_400() {
        let fake = tunnel();
        let mut event = http_event("forwarding-post-base64.json");
        event.body = Some("%%%".into());
        let response = run(&fake, event).await;
        assert_eq!(response.status_code, 400);
        assert!(fake.posts().is_empty());
    }

    #[rstest]
    #[case::unknown_tunnel(
        Some("zzz999.tunnel.example.com"),
        "/",
        "No tunnel is connected at zzz999."
    )]
    #[case::invalid_name(
        Some("a_b.tunnel.example.com"),
        "/",
        "No tunnel here: \"a_b\" is not a valid tunnel name."
    )]
    #[case::missing_host(
        None,
        "/",
        "No tunnel here: tunnels are served at <name>.tunnel.example.com."
    )]
    #[case::bare_domain(
        Some("tunnel.example.com"),
        "/abc123def456/",
        "No tunnel here: tunnels are served at <name>.tunnel.example.com."
    )]
    #[tokio::test]
    async fn unroutable_requests_are_404(
        #[case] host: Option<&str>,
        #[case] path: &str,
        #[case] text_start: &str,
    ) {
        let fake = tunnel();
        let mut event = http_event("forwarding-get.json");
        event.headers.remove(http::header::HOST);
        if let Some(h) = host {
            event.headers.insert(http::header::HOST, h.parse().unwrap());
        }
        event.raw_path = Some(path.into());
        let response = run(&fake, event).await;
        assert_eq!(response.status_code, 404);
        assert!(
            text(&response).starts_with(text_start),
            "{:?}",
            response.body
        );
        assert!(fake.posts().is_empty());
        assert_eq!(fake.count("PutItem"), 0);
    }

    /// Each failure is logged once, at the level of its row in the table,
    /// with the error chain.
    #[tokio::test]
    async fn a_failure_is_logged_once_at_its_level() {
        let fake = tunnel();
        let mut event = http_event("forwarding-get.json");
        event.headers.insert(
            http::header::HOST,
            "zzz999.tunnel.example.com".parse().unwrap(),
        );
        let (response, logs) = crate::testing::capture_logs(run(&fake, event)).await;
        assert_eq!(response.status_code, 404);
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("no tunnel connected"))
            .collect();
        assert_eq!(lines.len(), 1, "{logs}");
        assert!(
            lines[0].contains("INFO") && lines[0].contains("no live claim for zzz999"),
            "{logs}"
        );

        let fake = tunnel();
        fake.fail(Fail::GetClaim);
        let (response, logs) =
            crate::testing::capture_logs(run(&fake, http_event("forwarding-get.json"))).await;
        assert_eq!(response.status_code, 502);
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("tunnel lookup failed"))
            .collect();
        assert_eq!(lines.len(), 1, "{logs}");
        assert!(
            lines[0].contains("ERROR") && lines[0].contains("injected failure"),
            "{logs}"
        );
    }

    #[tokio::test]
    async fn expired_claim_is_a_404() {
        let fake = tunnel();
        fake.insert_claim(SUB, CONN, 1);
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 404);
        assert!(fake.posts().is_empty());
    }

    #[tokio::test]
    async fn oversize_request_is_a_413_without_saving_or_posting() {
        let fake = tunnel();
        let mut event = http_event("forwarding-post-base64.json");
        event.body = Some(protocol::encode_body(&vec![7u8; MAX_BODY_BYTES + 1]));
        let response = run(&fake, event).await;
        assert_eq!(response.status_code, 413);
        assert_eq!(
            text(&response),
            format!("{}\n", body_too_large(MAX_BODY_BYTES + 1))
        );
        assert!(fake.posts().is_empty());
        assert!(fake.actions().is_empty(), "{:?}", fake.actions());
    }

    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 256) as u8).collect()
    }

    /// The posted messages: the head and the body reassembled from chunks.
    fn posted_chunked(fake: &Fake) -> (HttpRequest, Vec<u8>) {
        let posts = fake.posts();
        let Message::HttpRequest(head) = &posts[0].1 else {
            panic!("first post is not the head: {:?}", posts[0].1.kind());
        };
        let spec = head.body_chunks.expect("chunked head");
        assert_eq!(head.body, "");
        let mut r = protocol::chunk::Reassembly::new();
        r.set_head(spec).unwrap();
        for (conn, m) in &posts[1..] {
            assert_eq!(conn, CONN);
            let Message::BodyChunk(c) = m else {
                panic!("not a chunk")
            };
            assert_eq!(c.request_id, head.request_id);
            r.insert(c).unwrap();
        }
        assert_eq!(posts.len(), spec.count as usize + 1);
        (head.clone(), r.into_body().unwrap())
    }

    #[rstest]
    #[case::two_chunks(2 * protocol::limits::BODY_CHUNK_BYTES, 2)]
    #[case::two_chunks_and_a_byte(2 * protocol::limits::BODY_CHUNK_BYTES + 1, 3)]
    #[case::the_ceiling(MAX_BODY_BYTES, protocol::limits::MAX_BODY_CHUNKS)]
    #[tokio::test(start_paused = true)]
    async fn large_requests_go_as_a_head_and_chunks(#[case] len: usize, #[case] count: usize) {
        let fake = tunnel();
        answering(&fake, 1);
        let body = bytes(len);
        let mut event = http_event("forwarding-post-base64.json");
        event.body = Some(protocol::encode_body(&body));
        assert_eq!(run(&fake, event).await.status_code, 201);
        let (head, got) = posted_chunked(&fake);
        assert_eq!(head.method, "POST");
        assert_eq!(head.body_chunks.unwrap().count as usize, count);
        assert_eq!(got, body);
        for (_, m) in fake.posts() {
            assert!(m.to_json().unwrap().len() <= protocol::limits::MAX_MESSAGE_BYTES);
        }
    }

    #[tokio::test]
    async fn a_failed_chunk_post_fails_the_request_and_forgets_it() {
        let fake = tunnel();
        fake.script_posts(&[Post::Ok, Post::Other]);
        let mut event = http_event("forwarding-post-base64.json");
        event.body = Some(protocol::encode_body(&bytes(300_000)));
        let response = run(&fake, event).await;
        assert_eq!(response.status_code, 502);
        // Head and the failed chunk; nothing after it.
        assert_eq!(fake.posts().len(), 2);
        assert_eq!(fake.pending_count(), 0);
    }

    fn answering_chunked(fake: &Fake, body: &[u8]) {
        let len = body.len();
        fake.chunked_answer_body(body.to_vec());
        fake.set_agent(Box::new(move |req| {
            let mut head = agent_response(&req.request_id);
            head.body = String::new();
            head.body_chunks = Some(ChunkedBody::for_length(len).unwrap());
            Some((2, head))
        }));
    }

    #[rstest]
    #[case(protocol::limits::BODY_CHUNK_BYTES + 1)]
    #[case(MAX_BODY_BYTES)]
    #[tokio::test(start_paused = true)]
    async fn a_chunked_response_is_assembled_from_its_chunk_items(#[case] len: usize) {
        let fake = tunnel();
        let body = bytes(len);
        answering_chunked(&fake, &body);
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 201);
        let got = protocol::decode_body(response.body.as_deref().unwrap()).unwrap();
        assert!(got == body, "body differs");
        assert_eq!(fake.count("BatchGetItem"), 1);
        // The whole answer fits in the 6 MB Lambda payload.
        let json = serde_json::to_string(&response).unwrap();
        assert!(
            json.len() <= protocol::limits::LAMBDA_PAYLOAD_BYTES,
            "{}",
            json.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_chunked_response_missing_a_chunk_is_a_502() {
        let fake = tunnel();
        let body = bytes(3 * protocol::limits::BODY_CHUNK_BYTES);
        answering_chunked(&fake, &body);
        // The chunk items hold one chunk fewer than the head announces.
        fake.chunked_answer_body(body[..2 * protocol::limits::BODY_CHUNK_BYTES].to_vec());
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 502);
        assert_eq!(
            text(&response),
            "The tunnel's agent sent an invalid response.\n"
        );
    }

    #[tokio::test]
    async fn a_body_just_under_the_limit_is_forwarded() {
        let fake = tunnel();
        answering(&fake, 1);
        let mut event = http_event("forwarding-post-base64.json");
        // Leave room for the JSON envelope and headers.
        let raw = protocol::limits::MAX_MESSAGE_BYTES / 4 * 3 - 2048;
        event.body = Some(protocol::encode_body(&vec![7u8; raw]));
        assert_eq!(run(&fake, event).await.status_code, 201);
    }

    #[tokio::test]
    async fn gone_connection_is_removed_and_a_502() {
        let fake = tunnel();
        fake.script_posts(&[Post::Gone]);
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 502);
        assert_eq!(
            text(&response),
            "The tunnel's agent is no longer connected.\n"
        );
        assert!(fake.connection(CONN).is_none());
        // Released for the resume window, not deleted.
        let claim = fake.claim(SUB).unwrap();
        assert!(
            claim.released_at.is_some() && claim.ttl > crate::now_secs(),
            "{claim:?}"
        );
        assert_eq!(fake.pending_count(), 0);
    }

    /// The tunnel's claim was written `age` seconds ago.
    fn claimed_ago(fake: &Fake, age: i64) {
        let mut claim = fake.claim(SUB).unwrap();
        claim.created_at = crate::now_secs() - age;
        fake.put_claim(claim);
    }

    /// The connection and its live claim are untouched.
    fn assert_intact(fake: &Fake) {
        assert!(
            fake.connection(CONN).is_some(),
            "the connection was removed"
        );
        let claim = fake.claim(SUB).unwrap();
        assert_eq!(claim.owner_connection_id, CONN);
        assert!(claim.released_at.is_none(), "released: {claim:?}");
    }

    /// Issue 14.2: a connection that may still be inside `$connect` answers
    /// 410 for a moment; the post is retried and the request goes through.
    #[tokio::test(start_paused = true)]
    async fn a_young_connections_410_is_retried_not_torn_down() {
        let fake = tunnel();
        claimed_ago(&fake, 2);
        answering(&fake, 1);
        fake.script_posts(&[Post::Gone, Post::Gone]);
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 201);
        assert_eq!(fake.posts().len(), 3, "two 410s, then the post");
        assert_intact(&fake);
        assert!(fake.probes().is_empty());
    }

    /// A young connection that keeps answering 410: a 502 within the
    /// retries' bound, and nothing removed (its `$disconnect`, a later
    /// visitor once it is old, or the agent's resume cleans up).
    #[tokio::test(start_paused = true)]
    async fn a_young_connection_still_gone_after_the_retries_is_a_502_removing_nothing() {
        let fake = tunnel();
        claimed_ago(&fake, post::YOUNG.as_secs() as i64 - 2);
        fake.script_posts(&[Post::Gone; 10]);
        let start = Instant::now();
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 502);
        assert_eq!(text(&response), format!("{AGENT_CONNECTING}\n"));
        let retries: Duration = post::YOUNG_RETRY_DELAYS.iter().sum();
        assert_eq!(start.elapsed(), retries);
        assert!(retries <= Duration::from_millis(1600), "{retries:?}");
        assert_eq!(fake.posts().len(), post::YOUNG_RETRY_DELAYS.len() + 1);
        assert_intact(&fake);
        assert_eq!(fake.pending_count(), 0);
    }

    /// Old enough to be past `$connect`: one 410 means gone (no retry).
    #[tokio::test(start_paused = true)]
    async fn an_old_connections_410_is_not_retried() {
        let fake = tunnel();
        claimed_ago(&fake, post::YOUNG.as_secs() as i64 + 1);
        fake.script_posts(&[Post::Gone, Post::Ok]);
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 502);
        assert_eq!(text(&response), format!("{AGENT_GONE}\n"));
        assert_eq!(fake.posts().len(), 1);
        assert!(fake.connection(CONN).is_none());
        assert!(fake.claim(SUB).unwrap().released_at.is_some());
    }

    /// A young connection that accepted the head and then answers 410 has
    /// ended: not retried, cleaned up.
    #[tokio::test(start_paused = true)]
    async fn a_410_after_an_accepted_message_is_gone_even_when_young() {
        let fake = tunnel();
        claimed_ago(&fake, 0);
        fake.script_posts(&[Post::Ok, Post::Gone]);
        let mut event = http_event("forwarding-post-base64.json");
        event.body = Some(protocol::encode_body(&bytes(300_000)));
        let response = run(&fake, event).await;
        assert_eq!(text(&response), format!("{AGENT_GONE}\n"));
        assert_eq!(fake.posts().len(), 2);
        assert!(fake.connection(CONN).is_none());
    }

    /// Issue 13.4: a 403 is a deployment error: a 502 the visitor sees,
    /// logged at ERROR once by forwarding (the notifier adds the alarm
    /// line), and the connection left alone.
    #[tokio::test(start_paused = true)]
    async fn a_403_on_the_post_is_a_visible_502_and_an_error() {
        let fake = tunnel();
        fake.script_posts(&[Post::Forbidden]);
        let (response, logs) =
            crate::testing::capture_logs(run(&fake, http_event("forwarding-get.json"))).await;
        assert_eq!(response.status_code, 502);
        assert_eq!(text(&response), format!("{NOT_ALLOWED_TO_REACH_AGENT}\n"));
        let lines: Vec<&str> = logs.lines().filter(|l| l.contains("(403)")).collect();
        assert_eq!(lines.len(), 1, "{logs}");
        assert!(lines[0].contains("ERROR"), "{logs}");
        assert_eq!(fake.posts().len(), 1, "a 403 is not retried");
        assert_intact(&fake);
        assert_eq!(fake.pending_count(), 0);
    }

    /// Issue 13.3: the agent took the request and vanished without a
    /// `$disconnect`; after [`wait::PROBE_AFTER`] of silence GetConnection
    /// says 410: a 502 within 2 s, the claim released for the owner, the
    /// connection item deleted.
    #[tokio::test(start_paused = true)]
    async fn a_vanished_agent_is_a_502_within_2s_and_its_claim_is_released() {
        let fake = tunnel();
        fake.script_probes(&[Probe::Gone]);
        let start = Instant::now();
        let response = run(&fake, http_event("forwarding-get.json")).await;
        let waited = start.elapsed();
        assert_eq!(response.status_code, 502);
        assert_eq!(text(&response), format!("{AGENT_GONE}\n"));
        assert!(
            wait::PROBE_AFTER <= waited && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        assert_eq!(fake.probes(), [CONN]);
        assert!(fake.connection(CONN).is_none());
        let claim = fake.claim(SUB).unwrap();
        assert!(
            claim.released_at.is_some() && claim.ttl > crate::now_secs(),
            "{claim:?}"
        );
        assert_eq!(fake.pending_count(), 0);
    }

    /// A silent agent still connected is asked about once a second, and
    /// the visitor gets the usual 504; a fast answer costs no call at all.
    #[tokio::test(start_paused = true)]
    async fn a_silent_connected_agent_is_probed_once_a_second() {
        let fake = tunnel();
        let mut config = forwarding_config();
        config.request_timeout = Duration::from_millis(3500);
        let response = run_with(&config, &fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 504);
        assert_eq!(fake.probes().len(), 3, "{:?}", fake.probes());
        assert_intact(&fake);

        let fake = tunnel();
        answering(&fake, 5);
        assert_eq!(
            run(&fake, http_event("forwarding-get.json"))
                .await
                .status_code,
            201
        );
        assert!(fake.probes().is_empty());
    }

    /// GetConnection failing does not fail the request: a 403 (alarmed by
    /// the notifier) stops the probing, another error is asked again later.
    #[rstest]
    #[case(Probe::Forbidden, 1)]
    #[case(Probe::Other, 3)]
    #[tokio::test(start_paused = true)]
    async fn a_failing_get_connection_keeps_waiting(#[case] probe: Probe, #[case] probes: usize) {
        let fake = tunnel();
        fake.script_probes(&[probe]);
        let mut config = forwarding_config();
        config.request_timeout = Duration::from_millis(3500);
        let response = run_with(&config, &fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 504);
        assert_eq!(fake.probes().len(), probes);
        assert_intact(&fake);
    }

    #[tokio::test]
    async fn a_released_claim_is_a_502_reconnecting_without_posting() {
        let fake = tunnel();
        let mut claim = fake.claim(SUB).unwrap();
        claim.released_at = Some(crate::now_secs());
        fake.put_claim(claim);
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 502);
        assert_eq!(text(&response), format!("{AGENT_RECONNECTING}\n"));
        assert!(fake.posts().is_empty());
        assert_eq!(fake.pending_count(), 0);
    }

    #[rstest]
    #[case(Post::Other, 502)]
    #[case(Post::TooLarge, 413)]
    #[tokio::test]
    async fn other_post_failures(#[case] post: Post, #[case] status: u16) {
        let fake = tunnel();
        fake.script_posts(&[post]);
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, status);
        assert!(
            fake.connection(CONN).is_some(),
            "only a 410 removes the connection"
        );
        assert_eq!(fake.pending_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_504_and_deletes_the_pending_item() {
        let fake = tunnel();
        let start = Instant::now();
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 504);
        assert_eq!(
            text(&response),
            "The tunnel's agent did not answer in time.\n"
        );
        let elapsed = start.elapsed();
        assert_eq!(elapsed, Duration::from_secs(25));
        let polls = fake.count("GetItem") - 1;
        assert!((250..=262).contains(&polls), "{polls} polls");
        assert_eq!(fake.pending_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn honours_the_configured_timeout() {
        let fake = tunnel();
        let mut config = forwarding_config();
        config.request_timeout = Duration::from_millis(300);
        let start = Instant::now();
        let response = run_with(&config, &fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 504);
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_answer_is_returned_within_milliseconds() {
        let fake = tunnel();
        answering(&fake, 2);
        let start = Instant::now();
        assert_eq!(
            run(&fake, http_event("forwarding-get.json"))
                .await
                .status_code,
            201
        );
        assert_eq!(start.elapsed(), Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_poll_interval_replaces_the_adaptive_schedule() {
        let fake = tunnel();
        answering(&fake, 2);
        let mut config = forwarding_config();
        config.poll_interval = Some(Duration::from_millis(100));
        let start = Instant::now();
        let response = run_with(&config, &fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 201);
        // Answered at the second poll: one fixed interval, not 5 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(100));

        let fake = tunnel();
        config.request_timeout = Duration::from_millis(1000);
        let response = run_with(&config, &fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 504);
        // One read at 0 ms, then one every 100 ms up to the deadline.
        assert_eq!(fake.count("GetItem") - 1, 11);
    }

    #[tokio::test(start_paused = true)]
    async fn polling_errors_are_retried_until_the_deadline() {
        let fake = tunnel();
        fake.fail(Fail::GetPending);
        let mut config = forwarding_config();
        config.request_timeout = Duration::from_millis(200);
        let response = run_with(&config, &fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 504);
        assert!(fake.count("GetItem") > 3);
    }

    #[rstest]
    #[case(Fail::GetClaim, 502)]
    #[case(Fail::PutPending, 502)]
    #[tokio::test]
    async fn store_failures_are_502s_not_lambda_errors(#[case] fail: Fail, #[case] status: u16) {
        let fake = tunnel();
        fake.fail(fail);
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, status);
        assert!(fake.posts().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn agent_error_page_passes_through() {
        let fake = tunnel();
        fake.set_agent(Box::new(|req| {
            Some((
                1,
                crate::pages::error_response(
                    &req.request_id,
                    protocol::ErrorCode::LocalServiceUnavailable,
                    "connection refused",
                ),
            ))
        }));
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 502);
        assert_eq!(response.headers["content-type"], PLAIN_TEXT);
        let body = protocol::decode_body(response.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            b"The tunnel's local service is unavailable: connection refused\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_agent_response_is_a_502() {
        let fake = tunnel();
        fake.set_agent(Box::new(|req| {
            let mut r = agent_response(&req.request_id);
            r.status_code = 1000;
            Some((1, r))
        }));
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 502);
    }

    #[tokio::test(start_paused = true)]
    async fn pending_item_records_the_connection_and_ttl() {
        let fake = tunnel();
        answering(&fake, 1);
        let before = crate::now_secs();
        run(&fake, http_event("forwarding-get.json")).await;
        let req = posted_request(&fake);
        let saved = fake.saved_pending();
        assert_eq!(saved.len(), 1);
        let item = &saved[0];
        assert_eq!(item.request_id, req.request_id);
        assert_eq!(item.connection_id, CONN);
        assert_eq!(item.api_gateway_request_id, "JKJaXmPLvHcESHA=");
        assert!(item.created_at >= before);
        assert_eq!(item.ttl, item.created_at + 25 + 300);
    }
}
