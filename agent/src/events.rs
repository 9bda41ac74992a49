//! What a running agent tells whoever watches it: the [`Event`]s it emits,
//! the [`ConnectionState`] it is in, and the [`AgentError`] it stops with.
//! Plain data, shared by the supervisor ([`crate::agent`]), the connection
//! loop (`session`), the console ([`crate::console`]) and the request
//! inspector ([`crate::inspect`]).

use std::sync::Arc;
use std::time::Duration;

use protocol::ConnectionEstablished;

use crate::exchange::RequestLog;

/// Something the user should hear about. The CLI prints these; tests wait
/// for them.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Opening the WebSocket (`attempt` 0 is the first).
    Connecting { attempt: u32 },
    /// The server confirmed the tunnel.
    Connected(ConnectionEstablished),
    /// The connection ended; the agent will reconnect.
    Disconnected { reason: String },
    /// Next attempt after `delay`.
    Reconnecting { delay: Duration, attempt: u32 },
    /// One request was answered or failed.
    Request(RequestLog),
    /// The server sent an `error` message not tied to a request.
    ServerError {
        code: protocol::ErrorCode,
        message: String,
    },
    /// The connection neared its age limit and handed the tunnel over to a
    /// new one on the same URL; `dropped` requests were lost on the old one
    /// (0 unless it died before finishing them).
    Renewed { dropped: usize },
    /// A successor connection could not take the tunnel over (`reason`);
    /// it is tried again after `retry_in`, or with `None` no more: the old
    /// connection serves until it ends, then the agent reconnects.
    RenewFailed {
        reason: String,
        retry_in: Option<Duration>,
    },
    /// The server refused a visitor's request by the tunnel's access policy
    /// (it never reached the agent).
    Rejected(protocol::policy::Rejected),
    /// Shutdown began; `in_flight` requests get up to the grace period.
    ShuttingDown { in_flight: usize },
    /// The agent stopped (after a shutdown or a fatal error).
    Stopped,
}

/// Where the agent is now.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionState {
    Connecting,
    Connected(ConnectionEstablished),
    Reconnecting {
        delay: Duration,
        reason: String,
    },
    /// Stopped for good: `None` after a requested shutdown.
    Stopped(Option<AgentError>),
}

/// Why the agent stopped on its own (it retries everything else).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentError {
    #[error(
        "the server rejected the token ({status}): {}",
        if *.status == 401 { "it is missing, invalid or expired — pass it with --token or TUNNEL_TOKEN, or get a new one from your operator (`tunnel token issue`)" } else { "it is valid but not allowed this tunnel (its reserved subdomain is in use by another agent) — stop the other agent or ask your operator" }
    )]
    Unauthorized { status: u16 },
    /// 426 Upgrade Required: the server needs a newer protocol than this
    /// agent speaks ([`protocol::PROTOCOL_VERSION`]).
    #[error(
        "the server refused this agent as too old (HTTP 426 Upgrade Required: it speaks tunnel protocol {} and the server needs a newer one) — update the agent",
        protocol::PROTOCOL_VERSION
    )]
    Outdated,
    #[error(
        "the server refused the access policy (HTTP 400): it is invalid or too large — check --basic-auth, --allow-cidr and the webhook options"
    )]
    PolicyRefused,
    #[error("{0}")]
    ClientInit(Arc<str>),
    #[error("the agent was shut down before the tunnel was established")]
    Stopped,
    #[error("the agent task failed: {0}")]
    Crashed(Arc<str>),
}
