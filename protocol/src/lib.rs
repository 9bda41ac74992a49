//! The wire protocol between the tunnel's Lambda handlers and its agent.
//!
//! Every message is one JSON text frame tagged by `type` (snake_case). Bodies
//! travel as standard base64 so they stay bytes, never re-encoded text.
//!
//! # Layout
//! - [`Message`] and its payloads: what goes over the WebSocket; a body too
//!   large for it goes through the bodies bucket ([`BodyDownload`],
//!   [`BodyUploaded`], [`SignedUrl`]).
//! - [`limits`]: the AWS limits and timeouts the protocol lives within.
//! - [`ids`]: subdomain and request id generation and validation.
//! - [`body`]: base64 body encoding.
//! - [`headers`]: the hop-by-hop rule, which headers never cross the tunnel.
//! - [`auth`]: agent tokens (JWT HS256: mint, verify) and resume tokens.
//! - [`policy`]: the access policy an agent declares for its tunnel, and
//!   the `rejected` notice of a request it refused.
//!
//! # Compatibility
//! Unknown fields are ignored and optional fields default, so a newer peer can
//! add fields without breaking an older one. An unknown message `type`
//! deserializes to [`Message::Unknown`] instead of failing, so the receiver can
//! log it and carry on. Protocol 1's chunked bodies are the one exception:
//! an `http_request` or `http_response` with `body_chunks` is malformed
//! ([`ProtocolError::Malformed`]), never a message with an empty body.

pub mod auth;
pub mod body;
pub mod headers;
pub mod ids;
pub mod limits;
mod message;
pub mod policy;

pub use body::{decode_body, encode_body};
pub use ids::{
    generate_object_id, generate_request_id, generate_subdomain, is_valid_request_id,
    is_valid_subdomain,
};
pub use message::{
    BodyDownload, BodyUploaded, ConnectionEstablished, ErrorCode, ErrorMessage, Headers,
    HttpRequest, HttpResponse, Message, ProtocolError, Ready, SignedUrl,
};

/// Handshake header carrying the agent's version (stored with the connection).
pub const HEADER_AGENT_VERSION: &str = "x-tunnel-agent-version";
/// Handshake header carrying the agent's platform, e.g. `linux-x86_64`.
pub const HEADER_AGENT_PLATFORM: &str = "x-tunnel-agent-platform";
/// Handshake header carrying the resume token from the previous
/// `connection_established`: the server gives the same subdomain back.
pub const HEADER_RESUME_TOKEN: &str = "x-tunnel-resume-token";
/// Handshake header carrying the agent's [`PROTOCOL_VERSION`]. A server
/// refuses an agent without it, or with an older one, with 426 Upgrade
/// Required: an older agent cannot fetch or upload stored bodies.
pub const HEADER_PROTOCOL: &str = "x-tunnel-protocol";
/// The protocol this crate speaks. 1 (no header): bodies inline or in
/// `body_chunk`s, which this crate no longer parses (see [`Message`]); 2:
/// bodies inline or through the bodies bucket ([`BodyDownload`],
/// [`BodyUploaded`]).
pub const PROTOCOL_VERSION: u32 = 2;
