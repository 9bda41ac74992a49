//! The HTTP API's function: route a visitor's request to its tunnel, post it
//! to the agent, wait for the answer and return it.
//!
//! The HTTP API uses payload format 2.0 (`ApiGatewayV2httpRequest`): format
//! 1.0, which the seed parsed, keeps only the last value of a repeated header
//! in `headers` and rebuilds the query string from decoded, deduplicated
//! parameters; 2.0 gives `rawPath` and `rawQueryString` byte-exact, every
//! header value (comma-joined) and every cookie.
//!
//! Every failure on the request path is an HTTP response with the right
//! status and a short text body: a Lambda error would reach the visitor as
//! API Gateway's opaque 500.

use std::collections::BTreeMap;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use http::HeaderMap;
use protocol::headers::HopByHop;
use protocol::limits::{MAX_BODY_BYTES, TTL_SLACK};
use protocol::{Headers, HttpRequest, HttpResponse, ProtocolError};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::claims;
use crate::config::ForwardingConfig;
use crate::logging::chain;
use crate::notifier::{Notifier, PostError};
use crate::pages::PLAIN_TEXT;
use crate::poll::PollSchedule;
use crate::store::{
    ChunkStore, ConnectionStore, PendingRequest, PendingState, PendingStore, Written,
};

/// A payload format 2.0 response.
///
/// Not `aws_lambda_events::apigw::ApiGatewayV2httpResponse`: its `headers`
/// (an `http::HeaderMap`) serialize only the first value of a repeated header
/// and it always writes `multiValueHeaders`. Here repeated values are joined
/// with `, ` and every `Set-Cookie` is its own `cookies` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiResponse {
    pub status_code: u16,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub is_base64_encoded: bool,
}

impl HttpApiResponse {
    /// A short plain-text answer produced by the tunnel itself.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        let mut text = text.into();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Self {
            status_code: status,
            headers: BTreeMap::from([("content-type".to_string(), PLAIN_TEXT.to_string())]),
            cookies: Vec::new(),
            body: Some(text),
            is_base64_encoded: false,
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub subdomain: String,
    /// What the local service sees: path plus `?` and the raw query, if any.
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no tunnel name in the request")]
    NoSubdomain,
    #[error("{0:?} is not a valid tunnel name")]
    InvalidSubdomain(String),
}

/// Host routing `<sub>.<domain>` (one DNS label, any case, port ignored),
/// else path routing `/<sub>/rest…` → `/rest…`.
pub fn route(
    host: Option<&str>,
    raw_path: &str,
    raw_query: &str,
    domain: &str,
) -> Result<Target, RouteError> {
    let with_query = |path: &str| {
        if raw_query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{raw_query}")
        }
    };
    let path = if raw_path.is_empty() { "/" } else { raw_path };

    if let Some(host) = host.map(host_without_port)
        && let Some(label) = host
            .strip_suffix(domain)
            .and_then(|prefix| prefix.strip_suffix('.'))
    {
        let label = label.to_ascii_lowercase();
        if !protocol::is_valid_subdomain(&label) {
            return Err(RouteError::InvalidSubdomain(label));
        }
        return Ok(Target {
            subdomain: label,
            uri: with_query(path),
        });
    }

    let rest = path.strip_prefix('/').unwrap_or(path);
    let (first, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if first.is_empty() {
        return Err(RouteError::NoSubdomain);
    }
    let label = first.to_ascii_lowercase();
    if !protocol::is_valid_subdomain(&label) {
        return Err(RouteError::InvalidSubdomain(label));
    }
    Ok(Target {
        subdomain: label,
        uri: with_query(tail),
    })
}

/// `Host` without the port and the root dot, lowercased.
fn host_without_port(host: &str) -> String {
    let host = host.trim();
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The request's headers as the agent gets them: every header but the
/// hop-by-hop ones, values as received (the HTTP API has already joined
/// repeats with commas), and `cookie` rebuilt from `cookies[]`.
pub fn request_headers(headers: &HeaderMap, cookies: Option<&[String]>) -> Headers {
    let hop_by_hop = HopByHop::from_connection(
        headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let mut out = Headers::new();
    for (name, value) in headers {
        let name = name.as_str();
        if hop_by_hop.contains(name) || (name == "cookie" && cookies.is_some_and(|c| !c.is_empty()))
        {
            continue;
        }
        out.entry(name.to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    if let Some(cookies) = cookies.filter(|c| !c.is_empty()) {
        out.insert("cookie".to_string(), vec![cookies.join("; ")]);
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("the request body is flagged base64 but is not valid base64")]
    RequestBody(#[source] base64::DecodeError),
    #[error("the agent answered with status {0}, which is not an HTTP status")]
    Status(u16),
    #[error("the agent's response body is not valid base64")]
    ResponseBody(#[source] base64::DecodeError),
}

/// The body bytes of the event, decoded by `isBase64Encoded`.
pub fn request_body(event: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, MapError> {
    match &event.body {
        None => Ok(Vec::new()),
        Some(b) if event.is_base64_encoded => {
            protocol::decode_body(b).map_err(MapError::RequestBody)
        }
        Some(b) => Ok(b.as_bytes().to_vec()),
    }
}

/// The agent's response as the HTTP API returns it.
pub fn to_api_response(response: &HttpResponse) -> Result<HttpApiResponse, MapError> {
    if !(100..=599).contains(&response.status_code) {
        return Err(MapError::Status(response.status_code));
    }
    let hop_by_hop = HopByHop::from_connection(
        response
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, values)| values.iter().map(String::as_str)),
    );
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, values) in &response.headers {
        let name = name.to_ascii_lowercase();
        if hop_by_hop.contains(&name) || name == "content-length" {
            continue;
        }
        if name == "set-cookie" {
            cookies.extend(values.iter().cloned());
            continue;
        }
        if values.is_empty() {
            continue;
        }
        let joined = values.join(", ");
        headers
            .entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&joined);
            })
            .or_insert(joined);
    }
    let bytes = protocol::decode_body(&response.body).map_err(MapError::ResponseBody)?;
    let body = (!bytes.is_empty()).then(|| protocol::encode_body(&bytes));
    Ok(HttpApiResponse {
        status_code: response.status_code,
        headers,
        cookies,
        is_base64_encoded: body.is_some(),
        body,
    })
}

/// Handles one visitor request.
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
        let response = forward(
            config,
            connections,
            pending,
            notifier,
            &event,
            &request_id,
            &apigw_request_id,
        )
        .await;
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

async fn forward<C, P, N>(
    config: &ForwardingConfig,
    connections: &C,
    store: &P,
    notifier: &N,
    event: &ApiGatewayV2httpRequest,
    request_id: &str,
    apigw_request_id: &str,
) -> HttpApiResponse
where
    C: ConnectionStore + Sync,
    P: PendingStore + ChunkStore + Sync,
    N: Notifier + Sync,
{
    let host = event
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let raw_path = event
        .raw_path
        .as_deref()
        .or(event.request_context.http.path.as_deref())
        .unwrap_or("/");
    let raw_query = event.raw_query_string.as_deref().unwrap_or("");
    let target = match route(host, raw_path, raw_query, &config.domain_name) {
        Ok(t) => t,
        Err(e) => {
            info!(error = %e, "not routable");
            return HttpApiResponse::text(404, format!("No tunnel here: {e}."));
        }
    };
    let span = tracing::Span::current();
    span.record("subdomain", target.subdomain.as_str());

    let body = match request_body(event) {
        Ok(b) => b,
        Err(e) => {
            warn!(error = %chain(&e), "bad request body");
            return HttpApiResponse::text(400, "The request body could not be decoded.");
        }
    };
    // Checked before anything is stored or posted: nothing half-delivered.
    if body.len() > MAX_BODY_BYTES {
        info!(body_bytes = body.len(), "request body over the ceiling");
        return HttpApiResponse::text(413, too_large_text(body.len()));
    }
    let request = HttpRequest {
        request_id: request_id.to_string(),
        method: event.request_context.http.method.to_string(),
        uri: target.uri.clone(),
        headers: request_headers(&event.headers, event.cookies.as_deref()),
        body: String::new(),
        timestamp: crate::now_millis(),
        body_chunks: None,
    };
    let messages = match protocol::chunk::to_messages(request, &body) {
        Ok(messages) => messages,
        Err(ProtocolError::TooLarge { size }) => {
            info!(
                body_bytes = body.len(),
                message_bytes = size,
                "request head too large for the tunnel"
            );
            return HttpApiResponse::text(
                413,
                format!(
                    "The request is too large for the tunnel: its headers must fit in {} KB once encoded.",
                    protocol::limits::MAX_MESSAGE_BYTES / 1024
                ),
            );
        }
        Err(e) => {
            error!(error = %chain(&e), "request could not be serialized");
            return HttpApiResponse::text(500, "The tunnel could not encode the request.");
        }
    };
    let message_bytes: usize = messages.iter().map(String::len).sum();
    drop(body);

    let claim = match connections.get_claim(&target.subdomain).await {
        Ok(claim) => claim.filter(|c| c.ttl >= crate::now_secs()),
        Err(e) => {
            error!(error = %chain(&e), "tunnel lookup failed");
            return HttpApiResponse::text(502, "The tunnel could not look up its connection.");
        }
    };
    let Some(claim) = claim else {
        info!("no tunnel connected");
        return HttpApiResponse::text(
            404,
            format!(
                "No tunnel is connected at {}. Start the agent, or check the URL it printed.",
                target.subdomain
            ),
        );
    };
    if claim.released_at.is_some() {
        // Its connection ended; the subdomain is held for the agent's resume.
        info!("agent reconnecting");
        return HttpApiResponse::text(AGENT_RECONNECTING_STATUS, AGENT_RECONNECTING);
    }
    let connection_id = claim.owner_connection_id;
    span.record("connection_id", connection_id.as_str());

    let now = crate::now_secs();
    let pending = PendingRequest {
        request_id: request_id.to_string(),
        connection_id: connection_id.clone(),
        api_gateway_request_id: apigw_request_id.to_string(),
        created_at: now,
        ttl: now + (config.request_timeout + TTL_SLACK).as_secs() as i64,
    };
    if let Err(e) = store.put_pending(&pending).await {
        error!(error = %chain(&e), "could not save the pending request");
        return HttpApiResponse::text(502, "The tunnel could not accept the request.");
    }

    // In order: the head first, so the agent knows the body's size before
    // its chunks (it copes with any order anyway).
    let mut posted = Ok(());
    for json in &messages {
        posted = notifier.post(&connection_id, json).await;
        if posted.is_err() {
            break;
        }
    }
    drop(messages);
    if let Err(e) = posted {
        forget(store, request_id).await;
        return match e {
            PostError::Gone => {
                warn!("agent connection is gone; removing it");
                remove_stale_connection(connections, &connection_id, &target.subdomain).await;
                HttpApiResponse::text(502, "The tunnel's agent is no longer connected.")
            }
            PostError::PayloadTooLarge => {
                warn!(message_bytes, "API Gateway refused a message as too large");
                HttpApiResponse::text(413, "The request is too large for the tunnel.")
            }
            PostError::Other(_) => {
                error!(error = %chain(&e), "could not post the request to the agent");
                HttpApiResponse::text(502, "The tunnel could not reach its agent.")
            }
        };
    }
    debug!(message_bytes, "request posted");

    let outcome = wait(
        store,
        request_id,
        config.request_timeout,
        config.poll_schedule(),
    )
    .await;
    // Delete rather than leave it to TTL: the item may carry a response of up
    // to 128 KB, TTL deletion can lag by days, and once it is deleted a late
    // answer fails its `attribute_exists` condition instead of completing a
    // request nobody waits for. TTL remains the backstop for a crashed run.
    forget(store, request_id).await;

    match outcome {
        Waited::Completed(response) => match with_body(store, &connection_id, response).await {
            Ok(response) => match to_api_response(&response) {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %chain(&e), "agent response unusable");
                    HttpApiResponse::text(502, "The tunnel's agent sent an invalid response.")
                }
            },
            Err(answer) => answer,
        },
        Waited::TimedOut => {
            info!(
                timeout_ms = config.request_timeout.as_millis() as u64,
                "agent did not answer in time"
            );
            HttpApiResponse::text(504, "The tunnel's agent did not answer in time.")
        }
        Waited::Lost => HttpApiResponse::text(502, "The tunnel lost track of the request."),
    }
}

/// The 413 text for a request body over [`MAX_BODY_BYTES`].
pub fn too_large_text(len: usize) -> String {
    format!(
        "The request body is too large for the tunnel: {len} bytes, the limit is {MAX_BODY_BYTES} bytes (about {:.1} MB).",
        MAX_BODY_BYTES as f64 / 1_000_000.0
    )
}

/// A completed response whose body came in chunks, with its body assembled
/// from the chunk items; any other response as it is.
async fn with_body<S: ChunkStore + Sync>(
    store: &S,
    connection_id: &str,
    mut response: HttpResponse,
) -> Result<HttpResponse, HttpApiResponse> {
    let Some(head) = response.body_chunks.take() else {
        return Ok(response);
    };
    let invalid = || HttpApiResponse::text(502, "The tunnel's agent sent an invalid response.");
    if let Err(e) = head.validate() {
        warn!(error = %e, "chunked response head invalid");
        return Err(invalid());
    }
    let chunks = match store
        .get_chunks(&response.request_id, connection_id, head.count)
        .await
    {
        Ok(chunks) => chunks,
        Err(e) => {
            error!(error = %chain(&e), "could not read the response chunks");
            return Err(HttpApiResponse::text(
                502,
                "The tunnel could not read the response body.",
            ));
        }
    };
    match protocol::chunk::assemble(head, chunks) {
        Ok(body) => {
            debug!(
                body_bytes = body.len(),
                chunks = head.count,
                "chunked response assembled"
            );
            response.body = protocol::encode_body(&body);
            Ok(response)
        }
        Err(e) => {
            warn!(error = %e, "chunked response body incomplete");
            Err(invalid())
        }
    }
}

enum Waited {
    Completed(HttpResponse),
    TimedOut,
    Lost,
}

/// Polls the pending item (strongly consistent) on `schedule` (adaptive
/// unless `POLL_INTERVAL_MS` is set) until it is completed or `timeout` has
/// passed. Read errors are retried until the deadline.
async fn wait<S: PendingStore + Sync>(
    store: &S,
    request_id: &str,
    timeout: std::time::Duration,
    mut schedule: PollSchedule,
) -> Waited {
    let deadline = Instant::now() + timeout;
    loop {
        match store.get_pending(request_id).await {
            Ok(Some(PendingState::Completed(r))) => return Waited::Completed(r),
            Ok(Some(PendingState::Pending)) => {}
            Ok(None) => {
                error!("pending request vanished while waiting");
                return Waited::Lost;
            }
            Err(e) => warn!(error = %chain(&e), "polling failed, retrying"),
        }
        let now = Instant::now();
        if now >= deadline {
            return Waited::TimedOut;
        }
        let delay = schedule.next().unwrap_or(PollSchedule::CAP);
        tokio::time::sleep_until((now + delay).min(deadline)).await;
    }
}

async fn forget<S: PendingStore + Sync>(store: &S, request_id: &str) {
    if let Err(e) = store.delete_pending(request_id).await {
        warn!(error = %chain(&e), "could not delete the pending request; TTL will");
    }
}

/// What a visitor sees while the subdomain's agent is between connections.
pub const AGENT_RECONNECTING: &str = "The tunnel's agent is reconnecting; try again in a moment.";
pub const AGENT_RECONNECTING_STATUS: u16 = 502;

/// PostToConnection said 410: the connection is dead although its items are
/// still there (its `$disconnect` never ran or is still running): its claim
/// is released (the agent may be reconnecting with its resume token) and its
/// item deleted.
async fn remove_stale_connection<S: ConnectionStore + Sync>(
    store: &S,
    connection_id: &str,
    subdomain: &str,
) {
    match claims::release(store, subdomain, connection_id, crate::now_secs()).await {
        Ok(Written::Yes | Written::ConditionFailed) => {}
        Err(e) => warn!(error = %chain(&e), "could not release the stale claim"),
    }
    if let Err(e) = store.delete_connection(connection_id).await {
        warn!(error = %chain(&e), "could not delete the stale connection");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rstest::rstest;
    use serde_json::json;

    use super::*;
    use crate::fake::{Fail, Fake, Post};
    use crate::manifest;
    use crate::testing::{forwarding_config, http_event};
    use protocol::{ChunkedBody, Message};

    const CONN: &str = "L0SM9cOFvHcCIhw=";
    const SUB: &str = "abc123def456";

    fn headers(pairs: &[(&str, &[&str])]) -> Headers {
        pairs
            .iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect()
    }

    fn agent_response(request_id: &str) -> HttpResponse {
        HttpResponse {
            request_id: request_id.to_string(),
            status_code: 201,
            headers: headers(&[
                ("content-type", &["application/json"]),
                ("set-cookie", &["a=1; Path=/", "b=2; HttpOnly"]),
                ("vary", &["accept", "origin"]),
                ("connection", &["keep-alive"]),
                ("content-length", &["2"]),
            ]),
            body: protocol::encode_body(b"{}"),
            processing_time_ms: 3,
            body_chunks: None,
        }
    }

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
        let response = handle(&forwarding_config(), fake, fake, fake, event).await;
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

    #[rstest]
    #[case::host(Some("abc123.tunnel.example.com"), "/x/y", "a=1", Ok(("abc123", "/x/y?a=1")))]
    #[case::host_any_case_and_port(Some("ABC123.Tunnel.Example.com:443"), "/", "", Ok(("abc123", "/")))]
    #[case::host_root_dot(Some("abc123.tunnel.example.com."), "/", "", Ok(("abc123", "/")))]
    #[case::host_keeps_full_path(Some("my-app.tunnel.example.com"), "/my-app/x", "", Ok(("my-app", "/my-app/x")))]
    #[case::host_two_labels(Some("a.b.tunnel.example.com"), "/", "", Err(RouteError::InvalidSubdomain("a.b".into())))]
    #[case::host_bad_label(Some("a_b.tunnel.example.com"), "/", "", Err(RouteError::InvalidSubdomain("a_b".into())))]
    #[case::host_leading_dash(Some("-ab.tunnel.example.com"), "/", "", Err(RouteError::InvalidSubdomain("-ab".into())))]
    #[case::path(Some("id.execute-api.eu-west-1.amazonaws.com"), "/abc123/api/items", "x=1&x=2", Ok(("abc123", "/api/items?x=1&x=2")))]
    #[case::path_only_sub(Some("id.execute-api.eu-west-1.amazonaws.com"), "/abc123", "q", Ok(("abc123", "/?q")))]
    #[case::path_trailing_slash(None, "/abc123/", "", Ok(("abc123", "/")))]
    #[case::path_upper(None, "/ABC123/Keep/Case", "", Ok(("abc123", "/Keep/Case")))]
    #[case::path_on_bare_domain(Some("tunnel.example.com"), "/abc123/x", "", Ok(("abc123", "/x")))]
    #[case::other_suffix(Some("abc123.eviltunnel.example.com"), "/abc123/x", "", Ok(("abc123", "/x")))]
    #[case::missing_host_root(None, "/", "", Err(RouteError::NoSubdomain))]
    #[case::empty_path(None, "", "", Err(RouteError::NoSubdomain))]
    #[case::double_slash(None, "//x", "", Err(RouteError::NoSubdomain))]
    #[case::path_bad_label(None, "/a%20b/x", "", Err(RouteError::InvalidSubdomain("a%20b".into())))]
    fn routes(
        #[case] host: Option<&str>,
        #[case] path: &str,
        #[case] query: &str,
        #[case] expected: Result<(&str, &str), RouteError>,
    ) {
        let got = route(host, path, query, "tunnel.example.com");
        let expected = expected.map(|(s, u)| Target {
            subdomain: s.into(),
            uri: u.into(),
        });
        assert_eq!(got, expected);
    }

    #[rstest]
    #[case::cookies_rebuilt(&[("accept", "a, b")], Some(&["a=1", "b=2"][..]), &[("accept", &["a, b"][..]), ("cookie", &["a=1; b=2"][..])])]
    #[case::cookies_replace_header(&[("cookie", "stale=1")], Some(&["a=1"][..]), &[("cookie", &["a=1"][..])])]
    #[case::cookie_header_kept_without_cookies(&[("cookie", "a=1")], None, &[("cookie", &["a=1"][..])])]
    #[case::empty_cookies(&[("cookie", "a=1")], Some(&[][..]), &[("cookie", &["a=1"][..])])]
    #[case::hop_by_hop_dropped(&[("connection", "close"), ("te", "trailers"), ("x-a", "1")], None, &[("x-a", &["1"][..])])]
    #[case::authorization_passes(&[("authorization", "Bearer t")], None, &[("authorization", &["Bearer t"][..])])]
    fn maps_request_headers(
        #[case] input: &[(&str, &str)],
        #[case] cookies: Option<&[&str]>,
        #[case] expected: &[(&str, &[&str])],
    ) {
        let mut map = HeaderMap::new();
        for (k, v) in input {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let cookies: Option<Vec<String>> =
            cookies.map(|c| c.iter().map(|s| s.to_string()).collect());
        assert_eq!(request_headers(&map, cookies.as_deref()), headers(expected));
    }

    #[rstest]
    #[case(200)]
    #[case(204)]
    #[case(302)]
    #[case(404)]
    #[case(503)]
    fn passes_status_through(#[case] status: u16) {
        let mut r = agent_response("r");
        r.status_code = status;
        assert_eq!(to_api_response(&r).unwrap().status_code, status);
    }

    #[rstest]
    #[case(0)]
    #[case(99)]
    #[case(600)]
    fn rejects_impossible_status(#[case] status: u16) {
        let mut r = agent_response("r");
        r.status_code = status;
        assert!(matches!(to_api_response(&r), Err(MapError::Status(s)) if s == status));
    }

    /// The exact JSON the HTTP API receives.
    #[test]
    fn pins_the_response_json() {
        let mut r = agent_response("r");
        r.headers.insert("X-Mixed".into(), vec!["1".into()]);
        r.headers.insert("x-mixed".into(), vec!["2".into()]);
        let json = serde_json::to_value(to_api_response(&r).unwrap()).unwrap();
        assert_eq!(
            json,
            json!({
                "statusCode": 201,
                "headers": {
                    "content-type": "application/json",
                    "vary": "accept, origin",
                    "x-mixed": "1, 2"
                },
                "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
                "body": "e30=",
                "isBase64Encoded": true
            })
        );
    }

    #[test]
    fn empty_body_has_no_body() {
        let mut r = agent_response("r");
        r.body = String::new();
        r.headers.clear();
        let json = serde_json::to_value(to_api_response(&r).unwrap()).unwrap();
        assert_eq!(json, json!({"statusCode": 201, "isBase64Encoded": false}));
    }

    #[test]
    fn invalid_response_body_is_an_error() {
        let mut r = agent_response("r");
        r.body = "not base64!".into();
        assert!(matches!(
            to_api_response(&r),
            Err(MapError::ResponseBody(_))
        ));
    }

    #[test]
    fn text_response_json() {
        assert_eq!(
            serde_json::to_value(HttpApiResponse::text(404, "No")).unwrap(),
            json!({
                "statusCode": 404,
                "headers": {"content-type": "text/plain; charset=utf-8"},
                "body": "No\n",
                "isBase64Encoded": false
            })
        );
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
            to_api_response(&agent_response(&req.request_id)).unwrap()
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
        let response = run(&fake, http_event("forwarding-path-routing.json")).await;
        assert_eq!(response.status_code, 201);
        assert_eq!(posted_request(&fake).uri, "/webhooks/github?x=1&x=2");
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
    #[case::missing_host(None, "/", "No tunnel here: no tunnel name in the request.")]
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
            format!("{}\n", too_large_text(MAX_BODY_BYTES + 1))
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
        let response = handle(
            &config,
            &fake,
            &fake,
            &fake,
            http_event("forwarding-get.json"),
        )
        .await;
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
        let response = handle(
            &config,
            &fake,
            &fake,
            &fake,
            http_event("forwarding-get.json"),
        )
        .await;
        assert_eq!(response.status_code, 201);
        // Answered at the second poll: one fixed interval, not 5 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(100));

        let fake = tunnel();
        config.request_timeout = Duration::from_millis(1000);
        let response = handle(
            &config,
            &fake,
            &fake,
            &fake,
            http_event("forwarding-get.json"),
        )
        .await;
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
        let response = handle(
            &config,
            &fake,
            &fake,
            &fake,
            http_event("forwarding-get.json"),
        )
        .await;
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
