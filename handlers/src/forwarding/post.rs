//! Handing the request to the agent: PostToConnection of its message, and
//! what a 410 means.
//!
//! API Gateway answers 410 for a closed connection, but also for one still
//! inside `$connect` or just upgraded (aws-semantics.md, `@connections`):
//! the connect function writes the claim before it returns, so a visitor can
//! find a connection API Gateway does not let anyone post to yet. Tearing it
//! down then would cost a live tunnel its item and its URL. So:
//!
//! - a **young** connection (its claim written less than [`YOUNG`] ago)
//!   whose message gets 410 is retried after [`YOUNG_RETRY_DELAYS`]
//!   (1.55 s in all, within the request's deadline), then answered with
//!   [`ForwardError::StillConnecting`] and nothing removed: a dead young
//!   connection is cleaned up by its `$disconnect`, by a later visitor once
//!   it is old, or by the agent's resume;
//! - an old connection's 410 means it is dead: [`ForwardError::AgentGone`].
//!
//! Why [`YOUNG`] is 30 s: the claim's `createdAt` is written by `$connect`,
//! which API Gateway cuts off at its 29-second integration timeout (API
//! Gateway quotas for WebSocket APIs), so 30 s after `createdAt` (one second
//! for clocks and the upgrade itself) the connection is either upgraded or
//! refused; a 410 can only mean it is gone. The items hold nothing closer to
//! the upgrade (the agent's `ready` writes nothing), and reading the claim is
//! what forwarding does anyway: deciding costs no call.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info};

use super::error::ForwardError;
use crate::notifier::{Notifier, PostError};
use crate::store::Claim;

/// How long after its claim was written a connection may still be inside
/// `$connect` (29 s integration timeout + 1 s).
pub const YOUNG: Duration = Duration::from_secs(30);

/// Delays before re-posting a young connection's first message after a 410.
/// A healthy `$connect` returns within milliseconds of writing the claim;
/// the last retry leaves time for a slow one, and the sum stays well under
/// the 2 s a visitor of a vanished agent may wait for its 502.
pub const YOUNG_RETRY_DELAYS: [Duration; 5] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];

/// Whether the claim's connection may still be inside `$connect` at `now`
/// (epoch seconds).
pub fn is_young(claim: &Claim, now: i64) -> bool {
    now - claim.created_at < YOUNG.as_secs() as i64
}

/// Posts the request's message. See the module for what a 410 does;
/// nothing here removes anything.
pub(super) async fn message<N: Notifier + Sync>(
    notifier: &N,
    claim: &Claim,
    json: &str,
    deadline: Instant,
) -> Result<(), ForwardError> {
    let connection_id = claim.owner_connection_id.as_str();
    let young = is_young(claim, crate::now_secs());
    let mut retries = YOUNG_RETRY_DELAYS.iter().filter(|_| young);
    loop {
        match notifier.post(connection_id, json).await {
            Ok(()) => break,
            // Maybe still inside `$connect`.
            Err(PostError::Gone) if young => match retries.next() {
                Some(delay) if Instant::now() + *delay < deadline => {
                    debug!(?delay, "410 on a young connection; posting again");
                    tokio::time::sleep(*delay).await;
                }
                _ => return Err(ForwardError::StillConnecting),
            },
            Err(PostError::Gone) => return Err(ForwardError::AgentGone),
            Err(PostError::PayloadTooLarge) => {
                return Err(ForwardError::MessageTooLarge {
                    message_bytes: json.len(),
                });
            }
            Err(e @ PostError::Forbidden(_)) => return Err(ForwardError::Forbidden(e)),
            Err(e) => return Err(ForwardError::Post(e)),
        }
    }
    // At INFO: the one line that ties a request id to its connection while
    // the request waits (the end-to-end tests read it as a sniffer would).
    info!(message_bytes = json.len(), "request posted");
    Ok(())
}
