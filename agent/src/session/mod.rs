//! One WebSocket connection at a time, and the loop that reconnects.
//!
//! From the top down: the supervisor (this module: reconnect with backoff,
//! at once after a "going away" close, the 403 retry window); the chain of
//! a connection and the successors it hands the tunnel over to
//! ([`handover`]); one connection's loop ([`connection`]), with the server's
//! messages dispatched in `connection::dispatch` and the requests in flight
//! in `connection::requests`; opening the WebSocket ([`dial`]); what they
//! all share and how a connection ends ([`ctx`]).

mod connection;
mod ctx;
mod dial;
mod handover;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use self::ctx::End;
use self::handover::chain;
use crate::backoff::Backoff;
use crate::config::Config;
use crate::events::{AgentError, ConnectionState, Event};
use crate::forward::Forwarder;
use crate::text::humanize;

pub(crate) use self::ctx::Ctx;

/// A connection closed by the server with "going away" (1001) after being
/// established for at least this long is resumed at once, without backoff.
/// Shorter ones back off as after any loss: a server that accepts and then
/// closes every connection at once must not get a tight reconnect loop.
const GOING_AWAY_RESUME_AFTER: Duration = Duration::from_secs(1);

/// Connects, serves and reconnects with backoff until shutdown or a fatal
/// error.
pub(crate) async fn supervise(
    config: &Config,
    forwarder: Arc<Forwarder>,
    ctx: &Ctx,
) -> Result<(), AgentError> {
    let mut backoff = Backoff::new(config.backoff);
    // The last `connection_established`'s resume token: presented on every
    // reconnect so the server gives the same subdomain (URL) back.
    let mut resume: Option<String> = None;
    // Whether a connection of this run was ever established: a 403 after
    // that is most likely our own old connection still holding the name.
    let mut connected_once = false;
    // When the current run of 403s on reconnect began.
    let mut forbidden_since: Option<Instant> = None;
    loop {
        if ctx.shutdown_requested() {
            return Ok(());
        }
        ctx.emit(Event::Connecting {
            attempt: backoff.attempt(),
        });
        let (end, announced) = chain(config, &forwarder, ctx, resume.as_deref()).await;
        if let ConnectionState::Connected(established) = &*ctx.state.borrow() {
            connected_once = true;
            forbidden_since = None;
            if established.resume_token.is_some() {
                resume.clone_from(&established.resume_token);
            }
        }
        let end = match end {
            End::Fatal(AgentError::Unauthorized { status: 403 }) if connected_once => {
                let since = *forbidden_since.get_or_insert_with(Instant::now);
                if since.elapsed() < config.forbidden_retry_for {
                    End::Lost {
                        reason: forbidden_reason(config.forbidden_retry_for),
                        up_for: Duration::ZERO,
                    }
                } else {
                    end
                }
            }
            end => end,
        };
        let (reason, up_for, at_once) = match end {
            End::Shutdown => return Ok(()),
            End::Fatal(err) => {
                tracing::info!(error = %err, "giving up");
                return Err(err);
            }
            End::Lost { reason, up_for } => (reason, up_for, false),
            End::GoingAway { reason, up_for } => {
                (reason, up_for, up_for >= GOING_AWAY_RESUME_AFTER)
            }
            End::Retired | End::NotTakenOver { .. } => (
                "the connection was handed over".to_owned(),
                Duration::ZERO,
                false,
            ),
        };
        backoff.connection_ended(up_for);
        let attempt = backoff.attempt();
        let delay = if at_once {
            Duration::ZERO
        } else {
            backoff.next_delay()
        };
        tracing::info!(%reason, delay = %humanize(delay), "connection lost; reconnecting");
        if !announced {
            ctx.emit(Event::Disconnected {
                reason: reason.clone(),
            });
        }
        ctx.emit(Event::Reconnecting { delay, attempt });
        let _ = ctx
            .state
            .send(ConnectionState::Reconnecting { delay, reason });
        if !delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = ctx.shutdown_signal() => return Ok(()),
            }
        }
        let _ = ctx.state.send(ConnectionState::Connecting);
    }
}

/// What the console says while a reconnect is refused with 403. Always the
/// same words, so the console prints it once, not at every attempt.
fn forbidden_reason(retry_for: Duration) -> String {
    format!(
        "the server refused the reconnect (HTTP 403): the tunnel's subdomain is still held, \
         most likely by this agent's previous connection, which the server has not yet seen \
         close; retrying for up to {} before giving up",
        humanize(retry_for)
    )
}
