//! One connection's loop: `ready`, then one `select!` that says what woke
//! it ([`Wake`]) and one `match` that handles it, until the connection ends.
//! The server's messages are dispatched in [`dispatch`], the requests in
//! flight live in [`requests`]. A connection asks the chain for a successor
//! before its age limit, retires once the successor holds the tunnel, and
//! on shutdown gives its requests the grace period; either way it finishes
//! ([`Connection::finish`]) by sending what is queued, then closing.

mod dispatch;
mod requests;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use protocol::{ConnectionEstablished, ErrorCode, Message, Ready};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

use self::requests::{Joined, Requests};
use super::ctx::{Ctx, End};
use super::dial::Ws;
use crate::config::Config;
use crate::events::{ConnectionState, Event};
use crate::forward::Forwarder;
use crate::frames::text_frames;
use crate::heartbeat::{Beat, Heartbeat};
use crate::text::{error_chain, humanize};
use crate::wire::error_json;

/// How long a server that does not say (no `max_age_secs`) keeps a
/// connection: API Gateway's maximum connection duration, 2 hours
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html>).
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(2 * 60 * 60);

/// How long a connection that handed its tunnel over keeps listening after
/// its successor is established, for requests forwarding had already chosen
/// it for (read the claim before the move, posting now): milliseconds in
/// practice.
const RETIRE_GRACE: Duration = Duration::from_secs(2);

/// When to open a successor: `margin` before the server's age limit, where
/// `margin` = min(5 min, a quarter of the age).
fn renew_after(max_age: Duration) -> Duration {
    max_age - (max_age / 4).min(Duration::from_secs(5 * 60))
}

/// The close frame's reason on shutdown.
const SHUTTING_DOWN: &str = "agent shutting down";
/// The close frame's reason once a successor holds the tunnel.
const HANDED_OVER: &str = "handed over to a new connection";

/// What a successor connection knows of the one it is to succeed.
pub(super) struct Successor {
    /// The tunnel's URL: the successor must get the same.
    pub(super) url: String,
    /// Set once the old connection ended before the successor took over.
    pub(super) gone: watch::Receiver<bool>,
}

pub(super) struct Connection<'a> {
    config: &'a Config,
    ctx: &'a Ctx,
    forwarder: &'a Arc<Forwarder>,
    requests: Requests,
    /// The answers request tasks queued, encoded, for the socket.
    answers: mpsc::Receiver<String>,
    /// When the handshake completed: the server's age limit counts from here.
    connected_at: Instant,
    established_at: Option<Instant>,
    /// This connection's `connection_established`.
    established: Option<ConnectionEstablished>,
    /// Opened to take over from a connection nearing its age limit.
    successor: Option<Successor>,
    /// Asks the chain for a successor, with this connection's age limit.
    renew: mpsc::UnboundedSender<Instant>,
    /// A successor holds the tunnel now: finish what is here, then close.
    retired: bool,
}

/// What the loop waits for besides the socket and the request tasks, from
/// `ready` on.
struct Waits {
    heartbeat: Heartbeat,
    ticks: Interval,
    establish_deadline: Pin<Box<Sleep>>,
    shutdown: watch::Receiver<bool>,
    state: watch::Receiver<ConnectionState>,
    /// Set once shutdown began: the end of the grace period.
    draining: Option<Pin<Box<Sleep>>>,
    /// Set once established: when to ask for a successor.
    renew_at: Option<Instant>,
    /// Once retired: until when requests already on their way may arrive.
    retire_grace: Option<Instant>,
}

impl Waits {
    fn new(config: &Config, ctx: &Ctx) -> Waits {
        let now = Instant::now();
        let mut ticks =
            tokio::time::interval_at(now + config.heartbeat_interval, config.heartbeat_interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Waits {
            heartbeat: Heartbeat::new(config.dead_after, now),
            ticks,
            establish_deadline: Box::pin(tokio::time::sleep(config.establish_timeout)),
            shutdown: ctx.shutdown.clone(),
            state: ctx.state.subscribe(),
            draining: None,
            renew_at: None,
            retire_grace: None,
        }
    }
}

/// What woke the loop.
enum Wake {
    /// Shutdown was requested.
    Shutdown,
    /// The shutdown's grace period is over.
    GraceOver,
    /// Time to ask for a successor.
    Renew,
    /// A retired connection's grace for late requests is over.
    RetireGraceOver,
    /// The agent's connection state changed.
    StateChanged,
    /// A frame from the server, an error, or the end of the stream.
    Frame(Option<Result<WsMessage, tungstenite::Error>>),
    /// An answer a request task queued.
    Answer(String),
    /// A request task ended.
    Joined(Joined),
    /// A heartbeat tick.
    Tick,
    /// The server did not confirm the tunnel in time.
    EstablishTimeout,
}

impl<'a> Connection<'a> {
    /// A connection whose handshake just completed.
    pub(super) fn new(
        config: &'a Config,
        ctx: &'a Ctx,
        forwarder: &'a Arc<Forwarder>,
        renew: mpsc::UnboundedSender<Instant>,
        successor: Option<Successor>,
    ) -> Connection<'a> {
        let (requests, answers) = Requests::new();
        Connection {
            config,
            ctx,
            forwarder,
            requests,
            answers,
            connected_at: Instant::now(),
            established_at: None,
            established: None,
            successor,
            renew,
            retired: false,
        }
    }

    /// Whether the server confirmed the tunnel on this connection.
    pub(super) fn established(&self) -> bool {
        self.established.is_some()
    }

    /// Whether this connection handed its tunnel over.
    pub(super) fn retired(&self) -> bool {
        self.retired
    }

    /// Aborts what is left of the requests: nothing outlives the connection
    /// (their answers could not go out on another one anyway). Returns how
    /// many were left, answers queued but not sent included.
    pub(super) fn abort(&mut self) -> usize {
        let dropped = self.requests.len() + self.answers.len();
        self.requests.abort_all();
        dropped
    }

    fn lost(&self, reason: impl Into<String>) -> End {
        End::Lost {
            reason: reason.into(),
            up_for: self.up_for(),
        }
    }

    /// How long this connection has been established.
    fn up_for(&self) -> Duration {
        self.established_at.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// How long the server keeps this connection (`max_age_secs`).
    fn max_age(&self) -> Duration {
        self.established
            .as_ref()
            .and_then(|e| e.max_age_secs)
            .map_or(DEFAULT_MAX_AGE, Duration::from_secs)
    }

    pub(super) async fn serve(&mut self, ws: &mut Ws) -> End {
        if let Err(end) = self.send_message(ws, &Message::Ready(Ready {})).await {
            return end;
        }
        let mut waits = Waits::new(self.config, self.ctx);
        loop {
            if let Some(end) = self.finish(ws, &waits).await {
                return end;
            }
            if waits.renew_at.is_none() && !self.retired && self.established.is_some() {
                waits.renew_at = Some(self.connected_at + renew_after(self.max_age()));
            }
            let wake = self.next_wake(ws, &mut waits).await;
            if let Err(end) = self.on_wake(ws, &mut waits, wake).await {
                return end;
            }
        }
    }

    async fn next_wake(&mut self, ws: &mut Ws, w: &mut Waits) -> Wake {
        let draining = w.draining.is_some();
        let holding = !self.retired && self.established.is_some();
        tokio::select! {
            () = stop_requested(&mut w.shutdown), if !draining => Wake::Shutdown,
            () = sleep_until_some_sleep(w.draining.as_mut()), if draining => Wake::GraceOver,
            () = sleep_until_some(w.renew_at), if w.renew_at.is_some() && !self.retired && !draining => Wake::Renew,
            () = sleep_until_some(w.retire_grace), if w.retire_grace.is_some() => Wake::RetireGraceOver,
            Ok(()) = w.state.changed(), if holding => Wake::StateChanged,
            frame = ws.next() => Wake::Frame(frame),
            Some(json) = self.answers.recv() => Wake::Answer(json),
            Some(joined) = self.requests.join_next() => Wake::Joined(joined),
            _ = w.ticks.tick() => Wake::Tick,
            () = &mut w.establish_deadline, if self.established_at.is_none() && !draining => Wake::EstablishTimeout,
        }
    }

    /// Handles what woke the loop; `Err` with how the connection ended.
    async fn on_wake(&mut self, ws: &mut Ws, w: &mut Waits, wake: Wake) -> Result<(), End> {
        match wake {
            Wake::Shutdown => {
                let in_flight = self.requests.len();
                tracing::info!(in_flight, "shutting down");
                self.ctx.emit(Event::ShuttingDown { in_flight });
                w.draining = Some(Box::pin(tokio::time::sleep(self.config.shutdown_grace)));
            }
            Wake::GraceOver => {
                self.fail_in_flight(ws).await;
                self.close(ws, SHUTTING_DOWN).await;
                return Err(End::Shutdown);
            }
            Wake::Renew => {
                // Once: the chain tries the successor again while this
                // connection has time; if it never takes over, this one
                // serves until the server ends it, then the agent
                // reconnects.
                w.renew_at = Some(Instant::now() + DEFAULT_MAX_AGE);
                let _ = self.renew.send(self.connected_at + self.max_age());
            }
            Wake::RetireGraceOver => w.retire_grace = None,
            Wake::StateChanged => {
                if self.superseded(&w.state.borrow_and_update()) {
                    tracing::info!(
                        in_flight = self.requests.len(),
                        "the successor connection holds the tunnel; finishing what is here"
                    );
                    self.retired = true;
                    w.retire_grace = Some(Instant::now() + RETIRE_GRACE);
                }
            }
            Wake::Frame(frame) => {
                w.heartbeat.heard(Instant::now());
                self.on_frame(ws, frame, w.draining.is_some()).await?;
            }
            Wake::Answer(json) => send_json(ws, json).await.map_err(|e| {
                self.lost(format!("could not send a response: {}", error_chain(&e)))
            })?,
            Wake::Joined(joined) => {
                if let Some(request_id) = self.requests.ended(joined) {
                    self.send_error(
                        ws,
                        &request_id,
                        ErrorCode::InternalError,
                        "the tunnel agent failed while handling this request",
                    )
                    .await?;
                }
            }
            Wake::Tick => match w.heartbeat.tick(Instant::now()) {
                Beat::Dead { silent_for } => {
                    return Err(self.lost(format!(
                        "no message from the server for {}; the link looks dead",
                        humanize(silent_for)
                    )));
                }
                Beat::Ping => self.send_message(ws, &Message::Ping).await?,
            },
            Wake::EstablishTimeout => {
                return Err(self.lost(format!(
                    "the server did not confirm the tunnel within {}",
                    humanize(self.config.establish_timeout)
                )));
            }
        }
        Ok(())
    }

    /// How the connection ends once it has nothing left to do: shutting
    /// down, or retired past its grace, with every request task finished.
    /// Then the answers still queued go out and the connection closes; the
    /// one way out for both the shutdown drain and the handover.
    async fn finish(&mut self, ws: &mut Ws, w: &Waits) -> Option<End> {
        if !self.requests.is_empty() {
            return None;
        }
        let (reason, end) = if w.draining.is_some() {
            (SHUTTING_DOWN, End::Shutdown)
        } else if self.retired && w.retire_grace.is_none() {
            (HANDED_OVER, End::Retired)
        } else {
            return None;
        };
        if let Err(e) = self.send_queued(ws).await {
            return Some(self.lost(format!("could not send a response: {}", error_chain(&e))));
        }
        self.close(ws, reason).await;
        Some(end)
    }

    /// Sends the answers queued so far.
    async fn send_queued(&mut self, ws: &mut Ws) -> Result<(), tungstenite::Error> {
        while let Ok(json) = self.answers.try_recv() {
            send_json(ws, json).await?;
        }
        Ok(())
    }

    /// Grace period over: abort what is left and tell the server.
    async fn fail_in_flight(&mut self, ws: &mut Ws) {
        let unanswered = self.requests.abort().await;
        // Answers that made it into the queue still go out.
        if self.send_queued(ws).await.is_err() {
            return;
        }
        for request_id in unanswered {
            let sent = self
                .send_error(
                    ws,
                    &request_id,
                    ErrorCode::LocalServiceUnavailable,
                    "the tunnel agent shut down before the local service answered",
                )
                .await;
            if sent.is_err() {
                return;
            }
        }
    }

    /// Whether `state` is another connection of this agent established on
    /// this connection's URL: its successor, which holds the tunnel now.
    pub(super) fn superseded(&self, state: &ConnectionState) -> bool {
        match (state, &self.established) {
            (ConnectionState::Connected(now), Some(mine)) => {
                now.connection_id != mine.connection_id && now.public_url == mine.public_url
            }
            _ => false,
        }
    }

    /// Sends a close frame and waits briefly for the server's answer.
    async fn close(&mut self, ws: &mut Ws, reason: &'static str) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: reason.into(),
        };
        if ws.close(Some(frame)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                // Until the server's close reply (or the end of the stream).
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_close() {
                        break;
                    }
                }
            })
            .await;
        }
    }

    /// Answers one request with an `error` message.
    async fn send_error(
        &self,
        ws: &mut Ws,
        request_id: &str,
        code: ErrorCode,
        message: &str,
    ) -> Result<(), End> {
        match error_json(Some(request_id), code, message) {
            Ok(json) => send_json(ws, json)
                .await
                .map_err(|e| self.lost(format!("could not send an error: {}", error_chain(&e)))),
            // Only an id longer than any valid one: logged, not fatal.
            Err(e) => {
                tracing::error!(error = %e, "cannot answer a request with an error");
                Ok(())
            }
        }
    }

    /// Sends one of the agent's own small messages (`ready`, `ping`, `pong`).
    async fn send_message(&self, ws: &mut Ws, message: &Message) -> Result<(), End> {
        let kind = message.kind();
        let json = message
            .to_json()
            .map_err(|e| self.lost(format!("could not build a {kind} message: {e}")))?;
        send_json(ws, json)
            .await
            .map_err(|e| self.lost(format!("could not send a {kind}: {}", error_chain(&e))))
    }
}

/// Waits for the drain timer; forever without one (the `select!` arm is
/// disabled then anyway).
async fn sleep_until_some_sleep(sleep: Option<&mut Pin<Box<Sleep>>>) {
    match sleep {
        Some(sleep) => sleep.await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Resolves once shutdown is requested (or the handle is gone).
async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Sends one protocol message, in frames API Gateway accepts.
async fn send_json(sink: &mut Ws, json: String) -> Result<(), tungstenite::Error> {
    for frame in text_frames(json) {
        sink.feed(frame).await?;
    }
    sink.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_successor_is_opened_a_margin_before_the_age_limit() {
        let secs = |s| Duration::from_secs(s);
        // API Gateway's 2 hours: 5 minutes before.
        assert_eq!(renew_after(secs(7200)), secs(6900));
        // Short limits (the tests' emulator): a quarter before.
        assert_eq!(renew_after(secs(20)), secs(15));
        assert_eq!(renew_after(secs(1)), Duration::from_millis(750));
    }
}
