//! Handing the tunnel over to a successor connection before the age limit
//! (make-before-break): the chain of a connection and its successors, a
//! successor tried again while the old connection has time, and how the
//! end of each connection counts for the chain.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::connection::{Connection, Successor};
use super::ctx::{Ctx, End};
use super::dial::{DialError, dial};
use crate::config::Config;
use crate::events::{ConnectionState, Event};
use crate::forward::Forwarder;

/// A successor that could not be opened is tried again after 1 s, then 2 s,
/// 4 s… (at most 30 s apart), while the old connection has time left.
const SUCCESSOR_RETRY_FIRST: Duration = Duration::from_secs(1);
const SUCCESSOR_RETRY_MAX: Duration = Duration::from_secs(30);
/// What a successor attempt needs of the old connection's time: a handshake
/// and `connection_established` (milliseconds on AWS; more locally).
const SUCCESSOR_NEEDS: Duration = Duration::from_secs(1);

/// The delay after `delay` between successor attempts: doubled, capped.
fn next_successor_delay(delay: Duration) -> Duration {
    (delay * 2).min(SUCCESSOR_RETRY_MAX)
}

/// Whether a successor attempt after `delay` still starts `SUCCESSOR_NEEDS`
/// before the old connection's `limit`.
fn successor_retry_fits(now: Instant, delay: Duration, limit: Instant) -> bool {
    now + delay + SUCCESSOR_NEEDS <= limit
}

/// One connection and the successors it hands the tunnel over to before its
/// age limit (make-before-break): each asks for its successor on `renew`,
/// keeps serving until the successor is established, finishes what it has,
/// then retires. A successor that cannot be opened is tried again while the
/// old connection has time left. Ends when the last of them ends unplanned
/// (the end of a retired connection, or of a successor that never took
/// over, is not the chain's); `true` with it when the loss was already
/// announced (`Disconnected`), because a successor was still on its way.
pub(super) async fn chain(
    config: &Config,
    forwarder: &Arc<Forwarder>,
    ctx: &Ctx,
    resume: Option<&str>,
) -> (End, bool) {
    let (renew_tx, mut renew_rx) = mpsc::unbounded_channel::<Instant>();
    let mut live: FuturesUnordered<std::pin::Pin<Box<dyn Future<Output = End> + Send + '_>>> =
        FuturesUnordered::new();
    live.push(Box::pin(connection(
        config,
        forwarder,
        ctx,
        resume.map(str::to_owned),
        renew_tx.clone(),
        None,
    )));
    let mut last: Option<(End, bool)> = None;
    // Tells the successor on its way that the connection it was to succeed
    // has ended.
    let mut predecessor_gone: Option<watch::Sender<bool>> = None;
    loop {
        tokio::select! {
            Some(limit) = renew_rx.recv() => {
                let (token, url) = match &*ctx.state.borrow() {
                    ConnectionState::Connected(e) => (e.resume_token.clone(), e.public_url.clone()),
                    _ => (None, String::new()),
                };
                let Some(token) = token else {
                    tracing::info!("no resume token to hand the tunnel over with; it reconnects when the connection ends");
                    continue;
                };
                tracing::info!("opening a successor connection before the age limit");
                let (gone_tx, gone) = watch::channel(false);
                predecessor_gone = Some(gone_tx);
                live.push(Box::pin(successor(
                    config,
                    forwarder,
                    ctx,
                    token,
                    renew_tx.clone(),
                    Successor { url, gone },
                    limit,
                )));
            }
            ended = live.next() => match ended {
                Some(End::Retired | End::NotTakenOver { .. }) => {}
                Some(end) => {
                    // The connection holding the tunnel ended unplanned;
                    // others (a successor on its way, a retiring one) are
                    // still live.
                    let announced = match &end {
                        End::Lost { reason, .. } | End::GoingAway { reason, .. } if !live.is_empty() => {
                            tracing::info!(%reason, "connection lost while another of the chain is live");
                            ctx.emit(Event::Disconnected { reason: reason.clone() });
                            true
                        }
                        _ => false,
                    };
                    if let Some(gone) = predecessor_gone.take() {
                        let _ = gone.send(true);
                    }
                    last = Some((end, announced));
                }
                None => {
                    return last.unwrap_or((
                        End::Lost {
                            reason: "the connection ended".into(),
                            up_for: Duration::ZERO,
                        },
                        false,
                    ));
                }
            },
        }
    }
}

/// A successor connection, tried again after [`SUCCESSOR_RETRY_FIRST`],
/// doubling, while the old connection (ending at `limit`) has time left and
/// is still up. Once it took the tunnel over, its end is the chain's.
async fn successor(
    config: &Config,
    forwarder: &Arc<Forwarder>,
    ctx: &Ctx,
    token: String,
    renew: mpsc::UnboundedSender<Instant>,
    mut successor: Successor,
    limit: Instant,
) -> End {
    let mut delay = SUCCESSOR_RETRY_FIRST;
    loop {
        let end = connection(
            config,
            forwarder,
            ctx,
            Some(token.clone()),
            renew.clone(),
            Some(Successor {
                url: successor.url.clone(),
                gone: successor.gone.clone(),
            }),
        )
        .await;
        // Anything else: it took the tunnel over (and its end is the
        // chain's), or the agent is stopping. A refused token (`retry`
        // false) is not tried again: the old connection serves on and the
        // reconnect after it says why.
        let End::NotTakenOver { reason, retry } = end else {
            return end;
        };
        if *successor.gone.borrow() {
            // The old connection is gone: the chain reconnects as after it.
            return End::NotTakenOver { reason, retry };
        }
        let retry_in =
            (retry && successor_retry_fits(Instant::now(), delay, limit)).then_some(delay);
        tracing::info!(%reason, ?retry_in, "the successor connection could not take the tunnel over");
        ctx.emit(Event::RenewFailed { reason, retry_in });
        let Some(delay_now) = retry_in else {
            return End::NotTakenOver {
                reason: "no time left before the age limit".into(),
                retry: false,
            };
        };
        tokio::select! {
            () = tokio::time::sleep(delay_now) => {}
            _ = successor.gone.wait_for(|gone| *gone) => {
                return End::NotTakenOver { reason: "the old connection ended".into(), retry: false };
            }
            () = ctx.shutdown_signal() => return End::Shutdown,
        }
        delay = next_successor_delay(delay);
    }
}

/// One connection, from handshake to its end. A `successor` takes over the
/// tunnel of the connection that asked for it on `renew` (with its age
/// limit); if it never does, it ends `NotTakenOver`, for [`successor`] to
/// judge.
async fn connection(
    config: &Config,
    forwarder: &Arc<Forwarder>,
    ctx: &Ctx,
    resume: Option<String>,
    renew: mpsc::UnboundedSender<Instant>,
    successor: Option<Successor>,
) -> End {
    let successor_attempt = successor.is_some();
    let ws = tokio::select! {
        ws = dial(config, resume.as_deref()) => ws,
        () = ctx.shutdown_signal() => return End::Shutdown,
    };
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            let end = match e {
                DialError::Failed(reason) => End::Lost {
                    reason,
                    up_for: Duration::ZERO,
                },
                DialError::Fatal(err) => End::Fatal(err),
            };
            return if successor_attempt {
                not_taken_over(end)
            } else {
                end
            };
        }
    };
    let mut conn = Connection::new(config, ctx, forwarder, renew, successor);
    let end = conn.serve(&mut ws).await;
    let dropped = conn.abort();
    if successor_attempt && !conn.established() {
        return not_taken_over(end);
    }
    // Superseded while ending (its successor confirmed before this one's
    // end was seen): a handover all the same.
    let retired =
        conn.retired() || (!matches!(end, End::Shutdown) && conn.superseded(&ctx.state.borrow()));
    if !retired {
        return end;
    }
    let dropped = match end {
        End::Retired | End::NotTakenOver { .. } => 0,
        // Asked to stop while finishing: the shutdown reports it.
        End::Shutdown => return End::Retired,
        End::Fatal(_) | End::Lost { .. } | End::GoingAway { .. } => dropped,
    };
    tracing::info!(
        dropped,
        "handed the tunnel over to the successor connection"
    );
    ctx.emit(Event::Renewed { dropped });
    End::Retired
}

/// The end of a successor attempt that never took the tunnel over: worth
/// another try unless the server refused the token.
fn not_taken_over(end: End) -> End {
    match end {
        End::Lost { reason, .. } | End::GoingAway { reason, .. } => End::NotTakenOver {
            reason,
            retry: true,
        },
        End::Fatal(err) => End::NotTakenOver {
            reason: err.to_string(),
            retry: false,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_successor_is_tried_again_only_while_the_old_connection_has_time() {
        let now = Instant::now();
        let secs = |s| Duration::from_secs(s);
        // 2 hours: 5 minutes of margin hold 1, 2, 4, … 30 s retries.
        assert!(successor_retry_fits(now, secs(30), now + secs(60)));
        // The tests' 12 s: renewing at 9 s, a 1 s retry fits, 2 s more not.
        assert!(successor_retry_fits(now, secs(1), now + secs(3)));
        assert!(!successor_retry_fits(now + secs(1), secs(2), now + secs(3)));
        // Past the limit: never.
        assert!(!successor_retry_fits(now + secs(5), secs(1), now + secs(3)));
        let delays: Vec<u64> = std::iter::successors(Some(SUCCESSOR_RETRY_FIRST), |&d| {
            Some(next_successor_delay(d))
        })
        .take(7)
        .map(|d| d.as_secs())
        .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    }
}
