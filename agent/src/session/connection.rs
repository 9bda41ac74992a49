//! One connection's loop: `ready`, heartbeat, the server's messages, the
//! requests in flight and their answers, the `--max-in-flight` refusal,
//! asking for a successor and retiring once it holds the tunnel, graceful
//! close.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use protocol::{
    ConnectionEstablished, ErrorCode, HttpRequest, Message, ProtocolError, Ready,
    is_valid_request_id,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tracing::Instrument as _;

use super::ctx::{Ctx, End};
use super::dial::Ws;
use crate::config::Config;
use crate::events::{ConnectionState, Event};
use crate::exchange::{RequestLog, RequestOutcome};
use crate::forward::Forwarder;
use crate::frames::text_frames;
use crate::heartbeat::{Beat, Heartbeat};
use crate::text::{clip, error_chain, humanize};
use crate::wire::{self, MAX_ERROR_MESSAGE_CHARS, error_json};

/// Answers waiting for the socket: at most this many messages of at most
/// 128 KB (8 MB); a task with more waits for room.
const OUT_QUEUE_MESSAGES: usize = 64;

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

/// What a successor connection knows of the one it is to succeed.
pub(super) struct Successor {
    /// The tunnel's URL: the successor must get the same.
    pub(super) url: String,
    /// Set once the old connection ended before the successor took over.
    pub(super) gone: watch::Receiver<bool>,
}

/// Longest fields a `connection_established` may have: generous for any
/// real server (a URL, a 12-character subdomain, an API Gateway connection
/// id, a resume token), and a bound on what the agent keeps and reports.
const MAX_ESTABLISHED_FIELD_BYTES: usize = 2048;

fn plausible(e: &ConnectionEstablished) -> bool {
    [
        Some(&e.connection_id),
        Some(&e.subdomain),
        Some(&e.public_url),
        e.resume_token.as_ref(),
    ]
    .into_iter()
    .flatten()
    .all(|field| field.len() <= MAX_ESTABLISHED_FIELD_BYTES)
}

/// Waits for the drain timer; forever without one (the `select!` arm is
/// disabled then anyway).
async fn sleep_until_some_sleep(sleep: Option<&mut std::pin::Pin<Box<tokio::time::Sleep>>>) {
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

async fn send_json(sink: &mut Ws, json: String) -> Result<(), tungstenite::Error> {
    for frame in text_frames(json) {
        sink.feed(frame).await?;
    }
    sink.flush().await
}

pub(super) struct Connection<'a> {
    config: &'a Config,
    ctx: &'a Ctx,
    forwarder: &'a Arc<Forwarder>,
    pub(super) tasks: JoinSet<()>,
    in_flight: HashMap<tokio::task::Id, String>,
    /// When the handshake completed: the server's age limit counts from here.
    connected_at: Instant,
    established_at: Option<Instant>,
    /// This connection's `connection_established`.
    pub(super) established: Option<ConnectionEstablished>,
    /// Opened to take over from a connection nearing its age limit.
    successor: Option<Successor>,
    /// Asks the chain for a successor, with this connection's age limit.
    renew: mpsc::UnboundedSender<Instant>,
    /// A successor holds the tunnel now: finish what is here, then close.
    pub(super) retired: bool,
    pub(super) out: (mpsc::Sender<String>, mpsc::Receiver<String>),
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
        Connection {
            config,
            ctx,
            forwarder,
            tasks: JoinSet::new(),
            in_flight: HashMap::new(),
            connected_at: Instant::now(),
            established_at: None,
            established: None,
            successor,
            renew,
            retired: false,
            out: mpsc::channel(OUT_QUEUE_MESSAGES),
        }
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
        let now = Instant::now();
        let mut heartbeat = Heartbeat::new(self.config.dead_after, now);
        let mut ticks = tokio::time::interval_at(
            now + self.config.heartbeat_interval,
            self.config.heartbeat_interval,
        );
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let establish_deadline = tokio::time::sleep(self.config.establish_timeout);
        tokio::pin!(establish_deadline);
        let mut shutdown = self.ctx.shutdown.clone();
        let mut draining: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        // Set once established: when to ask for a successor.
        let mut renew_at: Option<Instant> = None;
        // Once retired: until when requests already on their way may arrive.
        let mut retire_grace: Option<Instant> = None;
        let mut state = self.ctx.state.subscribe();

        loop {
            if self.retired && retire_grace.is_none() && draining.is_none() && self.tasks.is_empty()
            {
                while let Ok(json) = self.out.1.try_recv() {
                    if let Err(e) = send_json(ws, json).await {
                        return self
                            .lost(format!("could not send a response: {}", error_chain(&e)));
                    }
                }
                self.close(ws, "handed over to a new connection").await;
                return End::Retired;
            }
            if renew_at.is_none() && !self.retired && self.established.is_some() {
                renew_at = Some(self.connected_at + renew_after(self.max_age()));
            }
            if draining.is_some() && self.tasks.is_empty() {
                // Every task has finished; their responses may still be queued.
                while let Ok(json) = self.out.1.try_recv() {
                    if let Err(e) = send_json(ws, json).await {
                        return self
                            .lost(format!("could not send a response: {}", error_chain(&e)));
                    }
                }
                return self.close(ws, "agent shutting down").await;
            }
            tokio::select! {
                () = stop_requested(&mut shutdown), if draining.is_none() => {
                    let in_flight = self.tasks.len();
                    tracing::info!(in_flight, "shutting down");
                    self.ctx.emit(Event::ShuttingDown { in_flight });
                    draining = Some(Box::pin(tokio::time::sleep(self.config.shutdown_grace)));
                }
                () = sleep_until_some_sleep(draining.as_mut()), if draining.is_some() => {
                    self.fail_in_flight(ws).await;
                    return self.close(ws, "agent shutting down").await;
                }
                () = sleep_until_some(renew_at), if renew_at.is_some() && !self.retired && draining.is_none() => {
                    // Once: the chain tries the successor again while this
                    // connection has time; if it never takes over, this one
                    // serves until the server ends it, then the agent
                    // reconnects.
                    renew_at = Some(Instant::now() + DEFAULT_MAX_AGE);
                    let _ = self.renew.send(self.connected_at + self.max_age());
                }
                () = sleep_until_some(retire_grace), if retire_grace.is_some() => {
                    retire_grace = None;
                }
                Ok(()) = state.changed(), if !self.retired && self.established.is_some() => {
                    if self.superseded(&state.borrow_and_update()) {
                        tracing::info!(in_flight = self.tasks.len(), "the successor connection holds the tunnel; finishing what is here");
                        self.retired = true;
                        retire_grace = Some(Instant::now() + RETIRE_GRACE);
                    }
                }
                frame = ws.next() => {
                    heartbeat.heard(Instant::now());
                    match frame {
                        None => return self.lost("the server closed the connection"),
                        Some(Err(e)) => return self.lost(format!("connection error: {}", error_chain(&e))),
                        Some(Ok(WsMessage::Text(text))) => {
                            if let Err(end) = self.on_text(ws, text.as_str(), draining.is_some()).await {
                                return end;
                            }
                        }
                        Some(Ok(WsMessage::Close(frame))) => {
                            let going_away = frame.as_ref().is_some_and(|f| f.code == CloseCode::Away);
                            let why = frame.map_or_else(
                                || "no reason given".to_owned(),
                                |f| format!("code {}{}", u16::from(f.code), if f.reason.is_empty() { String::new() } else { format!(", {}", f.reason) }),
                            );
                            let reason = format!("the server closed the connection ({why})");
                            if going_away {
                                // API Gateway at its age or idle limit: resume now.
                                return End::GoingAway {
                                    reason,
                                    up_for: self.up_for(),
                                };
                            }
                            return self.lost(reason);
                        }
                        Some(Ok(WsMessage::Binary(b))) => {
                            tracing::warn!(bytes = b.len(), "ignoring a binary message from the server");
                        }
                        Some(Ok(_)) => {} // WebSocket ping/pong: answered by tungstenite
                    }
                }
                Some(json) = self.out.1.recv() => {
                    if let Err(e) = send_json(ws, json).await {
                        return self.lost(format!("could not send a response: {}", error_chain(&e)));
                    }
                }
                Some(joined) = self.tasks.join_next_with_id() => {
                    let id = match &joined { Ok((id, ())) => *id, Err(e) => e.id() };
                    let request_id = self.in_flight.remove(&id);
                    if let Err(e) = joined && e.is_panic() {
                        tracing::error!(?request_id, "request task panicked");
                        if let Some(rid) = request_id
                            && let Err(end) = self.send_error(ws, &rid, ErrorCode::InternalError, "the tunnel agent failed while handling this request").await
                        {
                            return end;
                        }
                    }
                }
                _ = ticks.tick() => match heartbeat.tick(Instant::now()) {
                    Beat::Dead { silent_for } => {
                        return self.lost(format!("no message from the server for {}; the link looks dead", humanize(silent_for)));
                    }
                    Beat::Ping => {
                        if let Err(end) = self.send_message(ws, &Message::Ping).await {
                            return end;
                        }
                    }
                },
                () = &mut establish_deadline, if self.established_at.is_none() && draining.is_none() => {
                    return self.lost(format!("the server did not confirm the tunnel within {}", humanize(self.config.establish_timeout)));
                }
            }
        }
    }

    /// Handles one text message from the server.
    async fn on_text(&mut self, ws: &mut Ws, text: &str, draining: bool) -> Result<(), End> {
        let message = match Message::from_json(text) {
            Ok(m) => m,
            Err(ProtocolError::Malformed(e)) => {
                // Never the text itself: it may carry a body.
                tracing::warn!(bytes = text.len(), kind = ?e.classify(), line = e.line(), column = e.column(), "ignoring a malformed message from the server");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a message from the server");
                return Ok(());
            }
        };
        // An id the agent could not echo back in an answer: nothing can be
        // done for the request, and it must not reach the code below.
        let request_id = match &message {
            Message::HttpRequest(r) => Some(&r.request_id),
            _ => None,
        };
        if let Some(id) = request_id
            && !is_valid_request_id(id)
        {
            tracing::warn!(
                kind = message.kind(),
                id_bytes = id.len(),
                "ignoring a message from the server with an invalid request id"
            );
            return Ok(());
        }
        match message {
            Message::ConnectionEstablished(established) => self.on_established(established)?,
            Message::HttpRequest(request) if draining => {
                self.send_error(
                    ws,
                    &request.request_id,
                    ErrorCode::LocalServiceUnavailable,
                    "the tunnel agent is shutting down",
                )
                .await?;
            }
            Message::HttpRequest(request) => self.spawn_request(ws, request).await?,
            Message::Ping => self.send_message(ws, &Message::Pong).await?,
            Message::Pong => {}
            Message::Rejected(rejected) => {
                // The server's words, clipped: events are buffered, and the
                // inspector keeps them.
                let rejected = protocol::policy::Rejected {
                    method: clip(&rejected.method, 16),
                    path: clip(&rejected.path, 256),
                    reason: clip(&rejected.reason, 128),
                    source_ip: rejected.source_ip.as_deref().map(|ip| clip(ip, 64)),
                    status: rejected.status,
                };
                self.forwarder.refused(&rejected);
                self.ctx.emit(Event::Rejected(rejected));
            }
            Message::Error(err) => {
                // Clipped: events are buffered, and the text is the server's.
                let message = clip(&err.message, MAX_ERROR_MESSAGE_CHARS);
                let request_id = err.request_id.as_deref().map(|id| clip(id, 64));
                tracing::info!(code = ?err.code, ?request_id, %message, "error from the server");
                if err.request_id.is_none() {
                    self.ctx.emit(Event::ServerError {
                        code: err.code,
                        message,
                    });
                }
            }
            // ready, http_response, unknown types, and whatever
            // later protocol versions add that this agent does not handle yet.
            #[allow(unreachable_patterns)]
            other => {
                tracing::warn!(
                    kind = other.kind(),
                    "ignoring an unexpected message from the server"
                );
            }
        }
        Ok(())
    }

    fn on_established(&mut self, established: ConnectionEstablished) -> Result<(), End> {
        if !plausible(&established) {
            tracing::warn!("ignoring a connection_established with implausibly long fields");
            return Ok(());
        }
        if let Some(successor) = &self.successor
            && self.established.is_none()
            && successor.url != established.public_url
        {
            // The resume token was not accepted: the tunnel stays on the
            // old connection rather than move to another URL.
            return Err(self.lost("the successor connection did not get the tunnel's URL"));
        }
        tracing::info!(
            public_url = %established.public_url,
            subdomain = %established.subdomain,
            connection_id = %established.connection_id,
            successor = self.successor.is_some(),
            "tunnel established"
        );
        if self.established_at.is_none() {
            self.established_at = Some(Instant::now());
        }
        let first = self.established.is_none();
        self.established = Some(established.clone());
        // Tells the connection this one succeeds to retire.
        let _ = self
            .ctx
            .state
            .send(ConnectionState::Connected(established.clone()));
        // A successor taking over is announced by its predecessor
        // (`Renewed`) once it has finished; unless the predecessor ended
        // first, when this is a reconnect.
        let handover = self
            .successor
            .as_ref()
            .is_some_and(|s| first && !*s.gone.borrow());
        if !handover {
            self.ctx.emit(Event::Connected(established));
        }
        Ok(())
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

    /// Forwards a complete request, or refuses it with `overloaded` when
    /// `max_in_flight` requests (replays included) are already with the
    /// local service. The task gives its slot back once its answer is
    /// queued, so a finished task not yet reaped does not count.
    async fn spawn_request(&mut self, ws: &mut Ws, request: HttpRequest) -> Result<(), End> {
        let Some(slot) = self.forwarder.try_slot() else {
            let in_flight = self.config.max_in_flight;
            tracing::warn!(in_flight, request_id = %request.request_id, "too many requests in flight; refusing one");
            let visitor = format!(
                "the tunnel agent is already handling {in_flight} requests; try again in a moment"
            );
            self.ctx.emit(Event::Request(RequestLog::for_request(
                &request,
                RequestOutcome::Failed {
                    code: ErrorCode::Overloaded,
                    message: format!(
                        "refused: {in_flight} requests already in flight (the limit, --max-in-flight)"
                    ),
                },
            )));
            return self
                .send_error(ws, &request.request_id, ErrorCode::Overloaded, &visitor)
                .await;
        };
        let forwarder = Arc::clone(self.forwarder);
        let out = self.out.0.clone();
        let events = self.ctx.events.clone();
        let request_id = request.request_id.clone();
        let span = tracing::info_span!("request", id = %request_id);
        let handle = self.tasks.spawn(
            async move {
                let (answer, log) = forwarder.forward(request).await;
                tracing::debug!(outcome = ?log.outcome, duration = ?log.duration, "request done");
                match wire::answer_json(answer) {
                    // Queued as soon as the channel has room.
                    Ok(json) => {
                        let _ = out.send(json).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot answer the request with an error")
                    }
                }
                drop(slot);
                let _ = events.send(Event::Request(log));
            }
            .instrument(span),
        );
        self.in_flight.insert(handle.id(), request_id);
        Ok(())
    }

    /// Grace period over: abort what is left and tell the server.
    async fn fail_in_flight(&mut self, ws: &mut Ws) {
        self.tasks.abort_all();
        // Tasks that finished before the abort have queued their response.
        while let Some(joined) = self.tasks.join_next_with_id().await {
            if let Ok((id, ())) = joined {
                self.in_flight.remove(&id);
            }
        }
        // Responses that made it into the queue still go out.
        while let Ok(json) = self.out.1.try_recv() {
            if send_json(ws, json).await.is_err() {
                return;
            }
        }
        let unanswered: Vec<String> = self.in_flight.drain().map(|(_, id)| id).collect();
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
    async fn close(&mut self, ws: &mut Ws, reason: &'static str) -> End {
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
        End::Shutdown
    }
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
