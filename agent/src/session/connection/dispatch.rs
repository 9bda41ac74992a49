//! What the server sends a connection: frames, and the protocol messages in
//! them, each handled in one `match` ([`Connection::on_text`]).

use protocol::{
    ConnectionEstablished, ErrorCode, HttpRequest, Message, ProtocolError, is_valid_request_id,
};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

use super::Connection;
use crate::events::{ConnectionState, Event};
use crate::exchange::{RequestLog, RequestOutcome};
use crate::session::ctx::End;
use crate::session::dial::Ws;
use crate::text::{clip, error_chain};
use crate::wire::MAX_ERROR_MESSAGE_CHARS;

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

impl Connection<'_> {
    /// Handles what the socket gave: a frame, an error, or its end.
    pub(super) async fn on_frame(
        &mut self,
        ws: &mut Ws,
        frame: Option<Result<WsMessage, tungstenite::Error>>,
        draining: bool,
    ) -> Result<(), End> {
        match frame {
            None => return Err(self.lost("the server closed the connection")),
            Some(Err(e)) => return Err(self.lost(format!("connection error: {}", error_chain(&e)))),
            Some(Ok(WsMessage::Text(text))) => self.on_text(ws, text.as_str(), draining).await?,
            Some(Ok(WsMessage::Close(frame))) => {
                let going_away = frame.as_ref().is_some_and(|f| f.code == CloseCode::Away);
                let why = frame.map_or_else(
                    || "no reason given".to_owned(),
                    |f| {
                        format!(
                            "code {}{}",
                            u16::from(f.code),
                            if f.reason.is_empty() {
                                String::new()
                            } else {
                                format!(", {}", f.reason)
                            }
                        )
                    },
                );
                let reason = format!("the server closed the connection ({why})");
                if going_away {
                    // API Gateway at its age or idle limit: resume now.
                    return Err(End::GoingAway {
                        reason,
                        up_for: self.up_for(),
                    });
                }
                return Err(self.lost(reason));
            }
            Some(Ok(WsMessage::Binary(b))) => {
                tracing::warn!(bytes = b.len(), "ignoring a binary message from the server");
            }
            Some(Ok(_)) => {} // WebSocket ping/pong: answered by tungstenite
        }
        Ok(())
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
            Message::HttpRequest(request) => self.on_request(ws, request).await?,
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

    /// Forwards a complete request, or refuses it with `overloaded` when
    /// `max_in_flight` requests (replays included) are already with the
    /// local service. The task gives its slot back once its answer is
    /// queued, so a finished task not yet reaped does not count.
    async fn on_request(&mut self, ws: &mut Ws, request: HttpRequest) -> Result<(), End> {
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
        self.requests
            .spawn(self.forwarder, slot, request, &self.ctx.events);
        Ok(())
    }
}
