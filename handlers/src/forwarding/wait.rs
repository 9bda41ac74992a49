//! Waiting for the agent's answer: polling the pending item.
//!
//! The item is read strongly consistently on a schedule (adaptive unless
//! `POLL_INTERVAL_MS` is set: [`crate::poll`]) until the response function
//! has completed it or the request timeout has passed. A read that fails is
//! retried until the deadline.
//!
//! Seam: a silent agent whose connection has vanished (no `$disconnect` yet)
//! is only noticed at the deadline today; asking `@connections` about it
//! from this loop belongs here.

use std::time::Duration;

use protocol::HttpResponse;
use tokio::time::Instant;
use tracing::warn;

use super::error::ForwardError;
use crate::logging::chain;
use crate::poll::PollSchedule;
use crate::store::{PendingState, PendingStore};

/// The completed response, or [`ForwardError::TimedOut`] /
/// [`ForwardError::Lost`] (the item disappeared: nobody but this invocation
/// deletes it before the TTL, so something is badly wrong).
pub(super) async fn answer<P: PendingStore + Sync>(
    pending: &P,
    request_id: &str,
    timeout: Duration,
    mut schedule: PollSchedule,
) -> Result<HttpResponse, ForwardError> {
    let deadline = Instant::now() + timeout;
    loop {
        match pending.get_pending(request_id).await {
            Ok(Some(PendingState::Completed(response))) => return Ok(response),
            Ok(Some(PendingState::Pending)) => {}
            Ok(None) => return Err(ForwardError::Lost),
            Err(e) => warn!(error = %chain(&e), "polling failed, retrying"),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ForwardError::TimedOut {
                timeout_ms: timeout.as_millis() as u64,
            });
        }
        let delay = schedule.next().unwrap_or(PollSchedule::CAP);
        tokio::time::sleep_until((now + delay).min(deadline)).await;
    }
}
