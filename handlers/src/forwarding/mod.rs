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
//! 4. the message to post ([`message`]): the body inline when it fits one
//!    WebSocket message with the head, else stored in the bodies bucket
//!    (`req/<id>`) and announced with a presigned GET (`body_download`);
//!    every request offers a presigned PUT for its answer body
//!    (`response_upload`). Presigning is local, no call;
//! 5. post it ([`post`]: a young connection's 410 is retried, never torn
//!    down) and wait for the answer item the response function writes under
//!    this request and **this connection** ([`wait`]: a silent agent's
//!    connection is checked with GetConnection); forwarding writes nothing
//!    to DynamoDB, and an answer from any other connection is never read;
//!    clean up after a connection found dead;
//! 6. read an uploaded answer body back ([`answer_body`]: exactly the
//!    announced length, at most `MAX_BODY_BYTES`), delete the request's
//!    objects, and map the answer for the HTTP API ([`http_api`]).

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use protocol::limits::MAX_BODY_BYTES;
use protocol::{BodyDownload, HttpRequest, HttpResponse, ProtocolError};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::bodies::{Bodies, Objects};
use crate::config::ForwardingConfig;
use crate::logging::chain;
use crate::notifier::Notifier;
use crate::store::{Claim, ConnectionStore, PendingStore};
use crate::{access, claims};

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
pub async fn handle<C, P, N, B>(
    config: &ForwardingConfig,
    connections: &C,
    pending: &P,
    notifier: &N,
    bodies: &B,
    event: ApiGatewayV2httpRequest,
) -> HttpApiResponse
where
    C: ConnectionStore + Sync,
    P: PendingStore + Sync,
    N: Notifier + Sync,
    B: Bodies + Sync,
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
        let stores = Stores {
            connections,
            pending,
            notifier,
            bodies,
        };
        let response = match forward(config, stores, &event, &request_id).await {
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

/// What forwarding talks to.
struct Stores<'a, C, P, N, B> {
    connections: &'a C,
    pending: &'a P,
    notifier: &'a N,
    bodies: &'a B,
}

impl<C, P, N, B> Clone for Stores<'_, C, P, N, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C, P, N, B> Copy for Stores<'_, C, P, N, B> {}

async fn forward<C, P, N, B>(
    config: &ForwardingConfig,
    stores: Stores<'_, C, P, N, B>,
    event: &ApiGatewayV2httpRequest,
    request_id: &str,
) -> Result<HttpApiResponse, ForwardError>
where
    C: ConnectionStore + Sync,
    P: PendingStore + Sync,
    N: Notifier + Sync,
    B: Bodies + Sync,
{
    let span = tracing::Span::current();
    let target = routing::target(event, &config.domain_name, config.routing)?;
    span.record("subdomain", target.subdomain.as_str());
    let (mut request, body) = request(event, request_id, target.uri)?;
    let claim = live_claim(stores.connections, &target.subdomain).await?;
    let connection_id = claim.owner_connection_id.as_str();
    span.record("connection_id", connection_id);
    let visitor = access::Visitor::of(event, &target.subdomain, &body);
    let policy = claim.policy.as_ref();
    let admitted = access::check(stores.notifier, connection_id, policy, &visitor, event).await?;
    admitted.apply(&mut request);

    let objects = Objects::generate();
    let (message, stored) = message(stores.bodies, &objects, request, body).await?;
    // One deadline for posting (a young connection's retries) and waiting.
    let deadline = Instant::now() + config.request_timeout;
    let answer = match post::message(stores.notifier, &claim, &message, deadline).await {
        Ok(()) => {
            let waiting = wait::Waiting {
                request_id,
                connection_id,
                timeout: config.request_timeout,
                deadline,
            };
            wait::answer(
                stores.pending,
                stores.notifier,
                waiting,
                config.poll_schedule(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    if answer.as_ref().is_err_and(ForwardError::connection_ended) {
        remove_stale_connection(stores.connections, connection_id, &target.subdomain).await;
    }
    let answer = match answer {
        Ok(answer) => answer_body(stores.bodies, &objects, answer).await,
        Err(e) => Err(e),
    };
    if stored {
        forget(stores.bodies, &objects.request).await;
    }

    http_api::to_api_response(&answer?, &target.cookies)
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

/// The message to post, and whether the body was stored in the bucket.
/// The body goes inline when it fits one WebSocket message with the head;
/// else it is stored under `objects.request` and the agent gets a presigned
/// GET. Every request offers a presigned PUT of `objects.answer`.
async fn message<B: Bodies + Sync>(
    bodies: &B,
    objects: &Objects,
    mut request: HttpRequest,
    body: Vec<u8>,
) -> Result<(String, bool), ForwardError> {
    request.response_upload = Some(
        bodies
            .presign_put(&objects.answer)
            .await
            .map_err(ForwardError::Bodies)?,
    );
    if protocol::body::encoded_len(body.len()) < protocol::limits::MAX_MESSAGE_BYTES {
        request.body = protocol::encode_body(&body);
        match protocol::Message::HttpRequest(request.clone()).to_json() {
            Ok(json) => return Ok((json, false)),
            // The headers took the room: the body goes to the bucket.
            Err(ProtocolError::TooLarge { .. }) if !body.is_empty() => {}
            Err(e) => return Err(too_large(e, body.len())),
        }
        request.body = String::new();
    }
    let length = body.len() as u64;
    let body_bytes = body.len();
    bodies
        .put(&objects.request, body)
        .await
        .map_err(ForwardError::Bodies)?;
    let url = bodies
        .presign_get(&objects.request)
        .await
        .map_err(ForwardError::Bodies)?;
    request.body_download = Some(BodyDownload { url, length });
    debug!(body_bytes, "request body stored in the bucket");
    match protocol::Message::HttpRequest(request).to_json() {
        Ok(json) => Ok((json, true)),
        Err(e) => {
            forget(bodies, &objects.request).await;
            Err(too_large(e, body_bytes))
        }
    }
}

fn too_large(e: ProtocolError, body_bytes: usize) -> ForwardError {
    match e {
        ProtocolError::TooLarge { size } => ForwardError::HeadTooLarge { size, body_bytes },
        e => ForwardError::Encode(e),
    }
}

/// The answer with its body: an uploaded one read back from the bucket
/// (exactly the announced length, at most `MAX_BODY_BYTES`) and deleted.
async fn answer_body<B: Bodies + Sync>(
    bodies: &B,
    objects: &Objects,
    mut answer: HttpResponse,
) -> Result<HttpResponse, ForwardError> {
    let Some(uploaded) = answer.body_uploaded.take() else {
        return Ok(answer);
    };
    if uploaded.length > MAX_BODY_BYTES as u64 {
        forget(bodies, &objects.answer).await;
        return Err(ForwardError::AnswerTooLarge {
            length: uploaded.length,
        });
    }
    let read = bodies.get(&objects.answer, uploaded.length).await;
    forget(bodies, &objects.answer).await;
    let body = read.map_err(ForwardError::AnswerBody)?;
    debug!(body_bytes = body.len(), "answer body read from the bucket");
    answer.body = protocol::encode_body(&body);
    Ok(answer)
}

/// Deletes an object once used (S3 DELETE is free); the lifecycle rule
/// reclaims one this misses.
async fn forget<B: Bodies + Sync>(bodies: &B, key: &str) {
    if let Err(e) = bodies.delete(key).await {
        warn!(error = %chain(&e), "could not delete a body object; the lifecycle rule will");
    }
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
    use protocol::{HttpRequest, Message};

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
        let response = handle(config, fake, fake, fake, fake, event).await;
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
        // Forwarding writes nothing: one claim read, three polls.
        assert_eq!(fake.count("GetItem"), 1 + 3);
        assert_eq!(fake.actions().len(), 1 + 3, "{:?}", fake.actions());
        // No body stored: only the answer's PUT presigned, nothing deleted.
        let calls = fake.s3_calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(calls[0].starts_with("PresignPut res/"), "{calls:?}");
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

    /// A request body too large for the message is stored in the bucket
    /// and fetched by the agent through its presigned GET; only the head
    /// crosses the WebSocket. Both objects are deleted once answered.
    #[rstest]
    #[case::just_over_one_message(protocol::limits::MAX_MESSAGE_BYTES / 4 * 3)]
    #[case::one_megabyte(1 << 20)]
    #[case::the_ceiling(MAX_BODY_BYTES)]
    #[tokio::test(start_paused = true)]
    async fn a_large_request_body_goes_through_the_bucket(#[case] len: usize) {
        let fake = tunnel();
        answering(&fake, 1);
        let body = bytes(len);
        let mut event = http_event("forwarding-post-base64.json");
        event.body = Some(protocol::encode_body(&body));
        assert_eq!(run(&fake, event).await.status_code, 201);
        let posts = fake.posts();
        assert_eq!(posts.len(), 1);
        let json = posts[0].1.to_json().unwrap();
        assert!(json.len() < 4096, "only the head is posted: {}", json.len());
        let req = posted_request(&fake);
        assert_eq!(req.body, "");
        let download = req.body_download.expect("a presigned GET");
        assert_eq!(download.length, len as u64);
        assert!(download.url.expose().contains("/req/"));
        let calls = fake.s3_calls();
        let stored = calls[1]
            .strip_prefix("PutObject ")
            .expect("stored")
            .to_string();
        assert!(
            stored.starts_with("req/") && stored.len() == 4 + 32,
            "{stored}"
        );
        // What the agent would fetch, byte for byte, while the request waits;
        // deleted once answered.
        assert!(
            fake.download(&download.url).is_none(),
            "deleted after the answer"
        );
        assert!(
            calls.contains(&format!("DeleteObject {stored}")),
            "{calls:?}"
        );
        assert!(fake.objects().is_empty(), "{:?}", fake.objects());
    }

    /// The agent sees exactly the body the visitor sent.
    #[tokio::test(start_paused = true)]
    async fn the_stored_request_body_is_the_visitors() {
        let fake = tunnel();
        let body = bytes(300_000);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let url = seen.clone();
        fake.set_agent(Box::new(move |req| {
            *url.lock().unwrap() = req.body_download.clone();
            Some((3, agent_response(&req.request_id)))
        }));
        let mut event = http_event("forwarding-post-base64.json");
        event.body = Some(protocol::encode_body(&body));
        let objects_while_waiting = {
            let run = run(&fake, event);
            tokio::pin!(run);
            // Poll the handler until it has posted, then look at the bucket.
            loop {
                tokio::select! {
                    r = &mut run => panic!("answered before the check: {r:?}"),
                    _ = tokio::task::yield_now() => {}
                }
                if !fake.posts().is_empty() {
                    break;
                }
            }
            let download = seen
                .lock()
                .unwrap()
                .clone()
                .expect("posted with a download");
            let fetched = fake.download(&download.url).expect("stored");
            assert!(fetched == body, "the stored body differs");
            assert_eq!(run.await.status_code, 201);
            fake.objects()
        };
        assert!(objects_while_waiting.is_empty());
    }

    #[tokio::test]
    async fn a_request_body_the_bucket_refuses_is_a_502_before_posting() {
        let fake = tunnel();
        fake.fail(Fail::PutBody);
        let mut event = http_event("forwarding-post-base64.json");
        event.body = Some(protocol::encode_body(&bytes(300_000)));
        let response = run(&fake, event).await;
        assert_eq!(response.status_code, 502);
        assert_eq!(
            text(&response),
            format!("{}\n", crate::pages::CANNOT_ACCEPT)
        );
        assert!(fake.posts().is_empty());
    }

    /// The fake agent uploads `body` and announces `announced` bytes.
    fn answering_uploaded(fake: &Fake, body: &[u8], announced: u64) {
        fake.agent_uploads(body.to_vec());
        fake.set_agent(Box::new(move |req| {
            let mut answer = agent_response(&req.request_id);
            answer.body = String::new();
            answer.body_uploaded = Some(protocol::BodyUploaded { length: announced });
            Some((2, answer))
        }));
    }

    /// Every request offers a presigned PUT; an answer announcing an upload
    /// is read back from the bucket, whole, and the object deleted.
    #[rstest]
    #[case::just_over_inline(protocol::limits::INLINE_ANSWER_BODY_BYTES + 1)]
    #[case::one_megabyte(1 << 20)]
    #[case::the_ceiling(MAX_BODY_BYTES)]
    #[tokio::test(start_paused = true)]
    async fn an_uploaded_answer_is_read_from_the_bucket(#[case] len: usize) {
        let fake = tunnel();
        let body = bytes(len);
        answering_uploaded(&fake, &body, len as u64);
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 201);
        let got = protocol::decode_body(response.body.as_deref().unwrap()).unwrap();
        assert!(got == body, "body differs");
        let upload = posted_request(&fake)
            .response_upload
            .expect("a presigned PUT");
        assert!(upload.expose().contains("/res/"));
        assert!(fake.objects().is_empty(), "deleted: {:?}", fake.objects());
        // The whole answer fits in the 6 MB Lambda payload.
        let json = serde_json::to_string(&response).unwrap();
        assert!(
            json.len() <= protocol::limits::LAMBDA_PAYLOAD_BYTES,
            "{}",
            json.len()
        );
        // Forwarding wrote nothing to DynamoDB.
        assert!(
            fake.actions().iter().all(|a| a.action == "GetItem"),
            "{:?}",
            fake.actions()
        );
    }

    /// An upload that is not what was announced (shorter, longer, missing,
    /// over the ceiling) is a clear 502, never a truncated or padded body.
    #[rstest]
    #[case::shorter(1000, 1001)]
    #[case::longer(1001, 1000)]
    #[case::over_the_ceiling(10, MAX_BODY_BYTES as u64 + 1)]
    #[tokio::test(start_paused = true)]
    async fn an_upload_other_than_announced_is_a_502(
        #[case] stored: usize,
        #[case] announced: u64,
    ) {
        let fake = tunnel();
        answering_uploaded(&fake, &bytes(stored), announced);
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 502);
        assert_eq!(
            text(&response),
            "The tunnel's agent sent an invalid response.\n"
        );
        assert!(fake.objects().is_empty(), "deleted: {:?}", fake.objects());
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_upload_is_a_502() {
        let fake = tunnel();
        fake.set_agent(Box::new(move |req| {
            let mut answer = agent_response(&req.request_id);
            answer.body_uploaded = Some(protocol::BodyUploaded { length: 9000 });
            Some((2, answer))
        }));
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 502);
        assert_eq!(
            text(&response),
            "The tunnel's agent sent an invalid response.\n"
        );
    }

    /// The S3 client in the fake bodies bucket failed: an operator's 502.
    #[tokio::test(start_paused = true)]
    async fn an_unreadable_upload_is_a_502() {
        let fake = tunnel();
        answering_uploaded(&fake, &bytes(9000), 9000);
        fake.fail(Fail::GetBody);
        let response = run(&fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 502);
        assert_eq!(
            text(&response),
            format!("{}\n", crate::pages::CANNOT_READ_BODY)
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
        fake.fail(Fail::GetAnswer);
        let mut config = forwarding_config();
        config.request_timeout = Duration::from_millis(200);
        let response = run_with(&config, &fake, http_event("forwarding-get.json")).await;
        assert_eq!(response.status_code, 504);
        assert!(fake.count("GetItem") > 3);
    }

    #[rstest]
    #[case(Fail::GetClaim, 502)]
    #[case(Fail::Presign, 502)]
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

    /// Ownership by construction: an answer from another connection to the
    /// same request (a hostile agent that learnt the id) is never read.
    #[tokio::test(start_paused = true)]
    async fn an_answer_from_another_connection_is_never_read() {
        let fake = tunnel();
        fake.set_agent(Box::new(|req| {
            let mut answer = agent_response(&req.request_id);
            answer.status_code = 299;
            Some((3, answer))
        }));
        let mut config = forwarding_config();
        config.request_timeout = Duration::from_millis(2500);
        let event = http_event("forwarding-get.json");
        let run = run_with(&config, &fake, event);
        tokio::pin!(run);
        loop {
            tokio::select! {
                r = &mut run => panic!("answered before the forgery: {r:?}"),
                _ = tokio::task::yield_now() => {}
            }
            if !fake.posts().is_empty() {
                break;
            }
        }
        let req = posted_request(&fake);
        fake.insert_answer(
            "Other0000000AA=",
            &crate::pages::text_response(&req.request_id, 418, "forged"),
        );
        let response = run.await;
        assert_eq!(
            response.status_code, 299,
            "the real answer, not the forged one"
        );
    }
}
