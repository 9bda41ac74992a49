//! Every way forwarding can fail, and what each one means for the visitor
//! (status and page) and for the operator (log level and message), in one
//! table: [`ForwardError::outcome`]. A Lambda error would reach the visitor
//! as API Gateway's opaque 500, so every failure is an answer.

use std::borrow::Cow;

use protocol::ProtocolError;
use protocol::limits::MAX_BODY_BYTES;
use tracing::{Level, error, info, warn};

use super::http_api::{HttpApiResponse, MapError};
use super::routing::RouteError;
use crate::bodies::BodiesError;
use crate::logging::chain;
use crate::notifier::PostError;
use crate::pages;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    // --- the request itself ---
    #[error(transparent)]
    NotRoutable(#[from] RouteError),
    #[error("the request body could not be decoded")]
    BodyUndecodable(#[source] MapError),
    #[error("the request body is {len} bytes, over the {MAX_BODY_BYTES}-byte ceiling")]
    BodyTooLarge { len: usize },
    #[error("the request's head is {size} bytes once encoded (body {body_bytes} bytes)")]
    HeadTooLarge { size: usize, body_bytes: usize },
    #[error("the request could not be serialized")]
    Encode(#[source] ProtocolError),

    // --- its tunnel ---
    #[error("the tunnel lookup failed")]
    Lookup(#[source] StoreError),
    #[error("no live claim for {subdomain}")]
    NoTunnel { subdomain: String },
    #[error("the claim is released, held for the agent's resume")]
    Reconnecting,
    #[error("refused by the tunnel's access policy: {0}")]
    Denied(#[from] crate::access::Denied),

    // --- handing it to the agent ---
    #[error("could not store the request body or sign the bucket's URLs")]
    Bodies(#[source] BodiesError),
    #[error("PostToConnection answered 410")]
    AgentGone,
    #[error(
        "PostToConnection answered 410 for a connection young enough to be inside $connect, after every retry"
    )]
    StillConnecting,
    #[error("@connections refused the post (403)")]
    Forbidden(#[source] PostError),
    #[error("a message of {message_bytes} bytes in all was refused")]
    MessageTooLarge { message_bytes: usize },
    #[error("could not post the request to the agent")]
    Post(#[source] PostError),

    // --- the answer ---
    #[error("no answer within {timeout_ms} ms")]
    TimedOut { timeout_ms: u64 },
    #[error("the silent agent's connection is gone (GetConnection answered 410)")]
    AgentVanished,
    #[error(
        "the agent announced an uploaded body of {length} bytes, over the {MAX_BODY_BYTES}-byte ceiling"
    )]
    AnswerTooLarge { length: u64 },
    #[error("could not read the uploaded answer body")]
    AnswerBody(#[source] BodiesError),
    #[error("the agent's response is unusable")]
    InvalidResponse(#[source] MapError),
}

/// What a failure means: the visitor's status and page, the log's level and
/// message (the error chain goes in the `error` field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: u16,
    pub page: Cow<'static, str>,
    pub level: Level,
    pub message: &'static str,
}

impl ForwardError {
    /// The table.
    pub fn outcome(&self) -> Outcome {
        use ForwardError::*;
        let (status, page, level, message): (u16, Cow<'static, str>, Level, &'static str) =
            match self {
                NotRoutable(e) => (
                    404,
                    pages::not_routable(e).into(),
                    Level::INFO,
                    "not routable",
                ),
                BodyUndecodable(_) => (
                    400,
                    pages::BODY_UNDECODABLE.into(),
                    Level::WARN,
                    "bad request body",
                ),
                BodyTooLarge { len } => (
                    413,
                    pages::body_too_large(*len).into(),
                    Level::INFO,
                    "request body over the ceiling",
                ),
                HeadTooLarge { .. } => (
                    413,
                    pages::head_too_large().into(),
                    Level::INFO,
                    "request head too large for the tunnel",
                ),
                Encode(_) => (
                    500,
                    pages::CANNOT_ENCODE.into(),
                    Level::ERROR,
                    "request could not be serialized",
                ),
                Lookup(_) => (
                    502,
                    pages::LOOKUP_FAILED.into(),
                    Level::ERROR,
                    "tunnel lookup failed",
                ),
                NoTunnel { subdomain } => (
                    404,
                    pages::no_tunnel_connected(subdomain).into(),
                    Level::INFO,
                    "no tunnel connected",
                ),
                Reconnecting => (
                    502,
                    pages::AGENT_RECONNECTING.into(),
                    Level::INFO,
                    "agent reconnecting",
                ),
                Denied(d) => (
                    d.status(),
                    denied_page(d).into(),
                    Level::INFO,
                    "refused by the access policy",
                ),
                Bodies(_) => (
                    502,
                    pages::CANNOT_ACCEPT.into(),
                    Level::ERROR,
                    "could not use the bodies bucket for the request",
                ),
                AgentGone => (
                    502,
                    pages::AGENT_GONE.into(),
                    Level::WARN,
                    "agent connection is gone; removed it",
                ),
                StillConnecting => (
                    502,
                    pages::AGENT_CONNECTING.into(),
                    Level::INFO,
                    "agent connection still connecting; nothing removed",
                ),
                Forbidden(_) => (
                    502,
                    pages::NOT_ALLOWED_TO_REACH_AGENT.into(),
                    Level::ERROR,
                    "@connections refused the post (403)",
                ),
                MessageTooLarge { .. } => (
                    413,
                    pages::MESSAGE_TOO_LARGE.into(),
                    Level::WARN,
                    "API Gateway refused a message as too large",
                ),
                Post(_) => (
                    502,
                    pages::CANNOT_REACH_AGENT.into(),
                    Level::ERROR,
                    "could not post the request to the agent",
                ),
                TimedOut { .. } => (
                    504,
                    pages::AGENT_TIMED_OUT.into(),
                    Level::INFO,
                    "agent did not answer in time",
                ),
                AgentVanished => (
                    502,
                    pages::AGENT_GONE.into(),
                    Level::WARN,
                    "agent connection vanished while the request waited; removed it",
                ),
                AnswerTooLarge { .. } => (
                    502,
                    pages::INVALID_RESPONSE.into(),
                    Level::WARN,
                    "uploaded answer body over the ceiling",
                ),
                // The agent's doing: nothing, or not what it announced.
                AnswerBody(BodiesError::Missing | BodiesError::WrongLength { .. }) => (
                    502,
                    pages::INVALID_RESPONSE.into(),
                    Level::WARN,
                    "uploaded answer body missing or not the announced length",
                ),
                AnswerBody(BodiesError::Backend { .. }) => (
                    502,
                    pages::CANNOT_READ_BODY.into(),
                    Level::ERROR,
                    "could not read the uploaded answer body",
                ),
                InvalidResponse(_) => (
                    502,
                    pages::INVALID_RESPONSE.into(),
                    Level::WARN,
                    "agent response unusable",
                ),
            };
        Outcome {
            status,
            page,
            level,
            message,
        }
    }

    /// The agent's connection turned out to be dead (its items are stale):
    /// release its claim and delete its item.
    pub fn connection_ended(&self) -> bool {
        matches!(self, ForwardError::AgentGone | ForwardError::AgentVanished)
    }

    /// The visitor's answer.
    pub fn response(&self) -> HttpApiResponse {
        let Outcome { status, page, .. } = self.outcome();
        let mut response = HttpApiResponse::text(status, page);
        if let ForwardError::Denied(d) = self
            && let Some((name, value)) = d.headers()
        {
            response.headers.insert(name.into(), value.into());
        }
        response
    }

    /// One log event at the table's level (never a body or a token: the
    /// chain holds ids, sizes and the causes' messages).
    pub fn log(&self) {
        let Outcome { level, message, .. } = self.outcome();
        let error = chain(self);
        if level == Level::ERROR {
            error!(%error, "{message}");
        } else if level == Level::WARN {
            warn!(%error, "{message}");
        } else {
            info!(%error, "{message}");
        }
    }
}

/// The page of a visitor the access policy refused.
fn denied_page(denied: &crate::access::Denied) -> &'static str {
    use crate::access::Denied;
    match denied {
        Denied::SourceNotAllowed => pages::SOURCE_NOT_ALLOWED,
        Denied::NoUrlToken => pages::URL_TOKEN_NEEDED,
        Denied::Credentials => pages::CREDENTIALS_NEEDED,
        Denied::Signature(_) => pages::BAD_SIGNATURE,
    }
}
