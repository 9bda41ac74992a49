//! Waiting for the agent's answer: polling for the answer item, and asking
//! API Gateway about an agent that stays silent.
//!
//! The key of this request and the connection it was posted to is read
//! strongly consistently on a schedule (adaptive unless `POLL_INTERVAL_MS`
//! is set: [`crate::poll`]) until the response function has written it or
//! the deadline has passed. A read that fails is retried until the deadline.
//! An answer from another connection is under another key: never read.
//!
//! # A vanished agent
//!
//! An agent that died holding the request never writes its answer, and its
//! visitor would wait for the 504; `$disconnect` touches no request (it is
//! best effort anyway: "API Gateway will make a best-effort attempt to
//! deliver the $disconnect event", API Gateway developer guide, "Working
//! with $connect and $disconnect routes"). So once the agent has been silent for
//! [`PROBE_AFTER`], the loop asks GetConnection, and again every
//! [`PROBE_EVERY`]; a 410 there means the connection has ended (it accepted
//! this request's post, so it is past `$connect`): one last poll (the answer
//! may have landed just before the agent left), then
//! [`ForwardError::AgentVanished`], and the caller releases the claim.
//! Worst case, a visitor learns of a dead agent [`PROBE_EVERY`] plus one poll
//! interval and one call after it died: well within 2 s.
//!
//! Why GetConnection rather than re-reading the connection item: the item
//! only disappears when `$disconnect` runs, which may be late or never;
//! only API Gateway knows at once that a connection has ended. Cost: a strongly consistent re-read is one read
//! unit ($0.125 per million on demand); GetConnection sends no WebSocket
//! message, and API Gateway bills WebSocket APIs by messages and connection
//! minutes only (pricing page), so it adds no charge; either one adds one
//! call's latency to a wait that is billed anyway. And none of it happens for
//! an answer within [`PROBE_AFTER`]: a request the agent answers quickly
//! makes no extra call at all. A slow one (the local service takes 10 s)
//! makes one GetConnection a second beside its ten reads a second.

use std::time::Duration;

use protocol::HttpResponse;
use tokio::time::Instant;
use tracing::{info, warn};

use super::error::ForwardError;
use crate::logging::chain;
use crate::notifier::{Notifier, Presence, ProbeError};
use crate::poll::PollSchedule;
use crate::store::PendingStore;

/// Silence after the post before the first GetConnection.
pub const PROBE_AFTER: Duration = Duration::from_secs(1);
/// Between GetConnections while the agent stays silent.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// What the wait needs to know about its request.
pub(super) struct Waiting<'a> {
    pub request_id: &'a str,
    /// The connection the request was posted to.
    pub connection_id: &'a str,
    pub timeout: Duration,
    pub deadline: Instant,
}

/// The answer, or [`ForwardError::TimedOut`] or
/// [`ForwardError::AgentVanished`].
pub(super) async fn answer<P, N>(
    pending: &P,
    notifier: &N,
    waiting: Waiting<'_>,
    mut schedule: PollSchedule,
) -> Result<HttpResponse, ForwardError>
where
    P: PendingStore + Sync,
    N: Notifier + Sync,
{
    let mut next_probe = Some(Instant::now() + PROBE_AFTER);
    loop {
        if let Some(response) = poll(pending, &waiting).await {
            return Ok(response);
        }
        let now = Instant::now();
        if now >= waiting.deadline {
            return Err(ForwardError::TimedOut {
                timeout_ms: waiting.timeout.as_millis() as u64,
            });
        }
        if next_probe.is_some_and(|at| now >= at) {
            next_probe = match notifier.presence(waiting.connection_id).await {
                Ok(Presence::Connected) => Some(Instant::now() + PROBE_EVERY),
                Ok(Presence::Gone) => {
                    // The answer may have landed just before the agent left.
                    return match poll(pending, &waiting).await {
                        Some(response) => Ok(response),
                        None => Err(ForwardError::AgentVanished),
                    };
                }
                // Logged as an alarm by the notifier. The agent may still
                // answer: keep waiting, without asking again.
                Err(ProbeError::Forbidden(_)) => {
                    info!("cannot ask API Gateway about the connection; waiting for the answer");
                    None
                }
                Err(e @ ProbeError::Other(_)) => {
                    warn!(error = %chain(&e), "GetConnection failed; asking again later");
                    Some(Instant::now() + PROBE_EVERY)
                }
            };
        }
        let delay = schedule.next().unwrap_or(PollSchedule::CAP);
        tokio::time::sleep_until((Instant::now() + delay).min(waiting.deadline)).await;
    }
}

/// One read of the answer item: the response once written; `None` while
/// there is none or when the read failed (retried at the next poll).
async fn poll<P: PendingStore + Sync>(pending: &P, waiting: &Waiting<'_>) -> Option<HttpResponse> {
    match pending
        .get_answer(waiting.request_id, waiting.connection_id)
        .await
    {
        Ok(answer) => answer.map(|a| a.response),
        Err(e) => {
            warn!(error = %chain(&e), "polling failed, retrying");
            None
        }
    }
}
