//! Every text the tunnel itself shows a visitor: the short plain-text pages
//! that stand in for an answer the local service could not give. Which
//! failure gets which page and status is decided where the failure is
//! handled (forwarding's `ForwardError`, the response and disconnect
//! functions); the words are all here.

use std::fmt::Display;

use protocol::limits::{MAX_BODY_BYTES, MAX_MESSAGE_BYTES};
use protocol::{ErrorCode, Headers, HttpResponse};

/// The content type of every page.
pub const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

/// Longest agent error message shown to a visitor.
const MAX_ERROR_TEXT: usize = 1024;

// --- forwarding: the request never reached the agent ---

/// The request names no tunnel, or not a valid one.
pub fn not_routable(reason: impl Display) -> String {
    format!("No tunnel here: {reason}.")
}

/// No live claim for the subdomain.
pub fn no_tunnel_connected(subdomain: &str) -> String {
    format!("No tunnel is connected at {subdomain}. Start the agent, or check the URL it printed.")
}

/// What a visitor sees while the subdomain's agent is between connections.
pub const AGENT_RECONNECTING: &str = "The tunnel's agent is reconnecting; try again in a moment.";

/// Visitors the tunnel's access policy refused (`access::Denied`; the
/// mapping is in `forwarding::error`).
pub const SOURCE_NOT_ALLOWED: &str = "Your address is not allowed to reach this tunnel.";
pub const URL_TOKEN_NEEDED: &str =
    "This tunnel needs its access token: use the full link its owner shared.";
pub const CREDENTIALS_NEEDED: &str = "This tunnel needs a user name and password.";
pub const BAD_SIGNATURE: &str = "The webhook signature is missing or invalid.";

pub const BODY_UNDECODABLE: &str = "The request body could not be decoded.";

/// A request body over [`MAX_BODY_BYTES`].
pub fn body_too_large(len: usize) -> String {
    format!(
        "The request body is too large for the tunnel: {len} bytes, the limit is {MAX_BODY_BYTES} bytes (about {:.1} MB).",
        MAX_BODY_BYTES as f64 / 1_000_000.0
    )
}

/// A request whose head alone does not fit in one WebSocket message.
pub fn head_too_large() -> String {
    format!(
        "The request is too large for the tunnel: its headers must fit in {} KB once encoded.",
        MAX_MESSAGE_BYTES / 1024
    )
}

/// API Gateway refused a message as too large.
pub const MESSAGE_TOO_LARGE: &str = "The request is too large for the tunnel.";
pub const CANNOT_ENCODE: &str = "The tunnel could not encode the request.";
pub const LOOKUP_FAILED: &str = "The tunnel could not look up its connection.";
pub const CANNOT_ACCEPT: &str = "The tunnel could not accept the request.";
pub const AGENT_GONE: &str = "The tunnel's agent is no longer connected.";
pub const CANNOT_REACH_AGENT: &str = "The tunnel could not reach its agent.";
/// A connection so young it may still be inside `$connect` refused the post.
pub const AGENT_CONNECTING: &str = "The tunnel's agent is still connecting; try again in a moment.";
/// `@connections` answered 403: the deployment lacks a permission (the
/// details go to the operator's log and alarm, not to visitors).
pub const NOT_ALLOWED_TO_REACH_AGENT: &str =
    "The tunnel is misconfigured and cannot reach its agent; its operator has to fix it.";

// --- forwarding: waiting for the answer ---

pub const AGENT_TIMED_OUT: &str = "The tunnel's agent did not answer in time.";
pub const INVALID_RESPONSE: &str = "The tunnel's agent sent an invalid response.";
pub const CANNOT_READ_BODY: &str = "The tunnel could not read the response body.";

// --- the answers the handlers write in the agent's place ---

/// The page a visitor sees when the agent reports an error for its request.
pub fn error_response(request_id: &str, code: ErrorCode, message: &str) -> HttpResponse {
    let what = match code {
        ErrorCode::LocalServiceUnavailable => "The tunnel's local service is unavailable",
        ErrorCode::Timeout => "The tunnel's local service did not answer in time",
        ErrorCode::InvalidRequest => "The tunnel could not pass this request to its local service",
        ErrorCode::PayloadTooLarge => "The local service's response is too large for the tunnel",
        ErrorCode::Overloaded => "The tunnel's agent is busy",
        ErrorCode::InternalError | ErrorCode::Unknown => {
            "The tunnel's agent failed to handle this request"
        }
    };
    let detail = printable(message.trim(), MAX_ERROR_TEXT);
    let text = if detail.is_empty() {
        format!("{what}.\n")
    } else {
        format!("{what}: {detail}\n")
    };
    text_response(request_id, code.http_status(), &text)
}

/// A plain-text response, as the agent would send it.
pub fn text_response(request_id: &str, status: u16, text: &str) -> HttpResponse {
    let mut headers = Headers::new();
    headers.insert("content-type".into(), vec![PLAIN_TEXT.into()]);
    HttpResponse {
        request_id: request_id.to_string(),
        status_code: status,
        headers,
        body: protocol::encode_body(text.as_bytes()),
        processing_time_ms: 0,
        body_uploaded: None,
    }
}

/// At most `max_chars` of `text`, control characters removed (for pages and
/// log fields that quote an agent).
pub fn printable(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect()
}
