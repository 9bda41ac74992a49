//! A live WebSocket connection: frames in, `@connections` frames out, its
//! routes invoked per message, and `$disconnect` when it ends.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{sync::mpsc, time::Instant};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        protocol::{CloseFrame, Role, WebSocketConfig as FrameConfig, frame::coding::CloseCode},
    },
};
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::{Connection, ConnectionInfo, Outbound, WebSocketApi};
use crate::{
    config::DisconnectDelivery,
    ids,
    limits::{WS_FRAME_MAX, WS_MESSAGE_MAX},
    timestamps::now_epoch_ms,
};

impl WebSocketApi {
    pub(super) async fn run_connection(
        self: Arc<Self>,
        upgraded: hyper::upgrade::Upgraded,
        info: ConnectionInfo,
        user_agent: Option<String>,
    ) {
        let config = FrameConfig::default()
            .max_frame_size(Some(WS_FRAME_MAX))
            .max_message_size(Some(WS_MESSAGE_MAX));
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let (outbound, mut outbound_rx) = mpsc::unbounded_channel();
        let connection = Arc::new(Connection {
            connected_at_ms: info.connected_at_ms,
            last_active_ms: AtomicI64::new(info.connected_at_ms),
            source_ip: info.source_ip.clone(),
            user_agent,
            outbound,
        });
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(info.connection_id.clone(), connection.clone());
        info!("connected");

        let max_age_at = Instant::now() + self.settings.max_age;
        let mut idle_at = Instant::now() + self.settings.idle_timeout;
        let going_away = || (1001, "Going away".to_owned(), Some(CloseCode::Away));
        // (disconnectStatusCode, disconnectReason, close frame we send)
        let (code, reason, close) = loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        idle_at = Instant::now() + self.settings.idle_timeout;
                        connection.last_active_ms.store(now_epoch_ms(), Ordering::Relaxed);
                        self.on_message(&info, text.to_string());
                    }
                    Some(Ok(Message::Binary(_))) => {
                        break (1003, "Binary frames are not supported".to_owned(), Some(CloseCode::Unsupported));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        idle_at = Instant::now() + self.settings.idle_timeout;
                    }
                    Some(Ok(Message::Close(Some(frame)))) => break (u16::from(frame.code), frame.reason.to_string(), None),
                    Some(Ok(Message::Close(None))) => {
                        break (1005, "Client-side close frame status not set".to_owned(), None);
                    }
                    Some(Ok(Message::Frame(_))) => {}
                    Some(Err(tungstenite::Error::Capacity(_))) => {
                        break (1009, "Message too big".to_owned(), Some(CloseCode::Size));
                    }
                    Some(Err(_)) | None => break (1006, "Connection closed abnormally".to_owned(), None),
                },
                command = outbound_rx.recv() => match command {
                    Some(Outbound::Send(message)) => {
                        if ws.send(message).await.is_err() {
                            break (1006, "Connection closed abnormally".to_owned(), None);
                        }
                    }
                    Some(Outbound::Close) | None => break (1000, String::new(), Some(CloseCode::Normal)),
                },
                () = tokio::time::sleep_until(idle_at) => break going_away(),
                () = tokio::time::sleep_until(max_age_at) => break going_away(),
            }
        };
        // Decided before the connection disappears, so that whoever sees it
        // gone (GetConnection → 410) knows the decision was taken.
        let disconnect = self
            .settings
            .routes
            .get("$disconnect")
            .and_then(|f| Some((f.clone(), self.functions.disconnect_delivery(f)?)));
        self.remove_connection(&info.connection_id);
        info!(code, %reason, "disconnected");

        // Finish the closing handshake, briefly: the peer may be gone.
        if code != 1006 {
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                if let Some(code) = close {
                    let _ = ws
                        .close(Some(CloseFrame {
                            code,
                            reason: reason.clone().into(),
                        }))
                        .await;
                }
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        }
        drop(ws);

        if let Some((function, delivery)) = disconnect {
            // `$disconnect` is best effort on AWS ("API Gateway will make a
            // best-effort attempt to deliver the $disconnect event", API
            // Gateway developer guide, "Working with $connect and
            // $disconnect routes"); the setting reproduces a lost or late one.
            match delivery {
                DisconnectDelivery::Deliver => {}
                DisconnectDelivery::Drop => {
                    info!("$disconnect dropped (disconnect_delivery = drop)");
                    return;
                }
                DisconnectDelivery::Delay(delay) => {
                    debug!(?delay, "$disconnect delayed");
                    tokio::time::sleep(delay).await;
                }
            }
            let mut event = self.event_base(&info, "$disconnect", "DISCONNECT");
            // API Gateway sends placeholder headers on `$disconnect`.
            let placeholders = [
                ("Host", info.domain_name.clone()),
                ("x-api-key", String::new()),
                ("X-Forwarded-For", String::new()),
                ("x-restapi", String::new()),
            ];
            event.headers = Some(
                placeholders
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
            );
            event.multi_value_headers = Some(
                placeholders
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), vec![v.clone()]))
                    .collect(),
            );
            event.request_context.disconnect_status_code = Some(code);
            event.request_context.disconnect_reason = Some(reason);
            if let Err(error) = self.invoke(&function, &event).await {
                warn!(%error, "$disconnect failed");
            }
        }
    }

    /// Invokes the route of one text message; messages of one connection may
    /// run concurrently, as in AWS.
    fn on_message(self: &Arc<Self>, info: &ConnectionInfo, text: String) {
        let route = select_route(&text, &self.settings.routes);
        let mut event = self.event_base(info, route.as_deref().unwrap_or("$default"), "MESSAGE");
        event.request_context.message_id = Some(ids::new_api_gateway_id());
        event.body = Some(text);
        let api = self.clone();
        let connection_id = info.connection_id.clone();
        self.tasks.spawn(
            async move {
                let request_id = event.request_context.request_id.clone();
                let message = match route.and_then(|r| api.settings.routes.get(&r).cloned()) {
                    None => "Forbidden",
                    Some(function) => match api.invoke(&function, &event).await {
                        Ok(_) => return,
                        Err(error) => {
                            warn!(%error, "message route failed");
                            "Internal server error"
                        }
                    },
                };
                // AWS's exact text, spacing included.
                let frame = format!(
                    r#"{{"message": "{message}", "connectionId":"{connection_id}", "requestId":"{request_id}"}}"#
                );
                if let Some(connection) = api.connection(&connection_id) {
                    let _ = connection.outbound.send(Outbound::Send(Message::text(frame)));
                }
            }
            .instrument(info_span!("message")),
        );
    }
}

/// `$request.body.action`: the `action` of a JSON body if a route has that
/// key, else `$default` (if configured). `None` = no route at all.
fn select_route(body: &str, routes: &BTreeMap<String, String>) -> Option<String> {
    let action = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("action").and_then(Value::as_str).map(str::to_owned));
    match action {
        Some(action) if !action.starts_with('$') && routes.contains_key(&action) => Some(action),
        _ if routes.contains_key("$default") => Some("$default".to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_action_with_default_fallback() {
        let routes: BTreeMap<String, String> =
            [("$default", "d"), ("sendmessage", "s"), ("$connect", "c")]
                .map(|(a, b)| (a.into(), b.into()))
                .into();
        assert_eq!(
            select_route(r#"{"action":"sendmessage"}"#, &routes).as_deref(),
            Some("sendmessage")
        );
        assert_eq!(
            select_route(r#"{"action":"other"}"#, &routes).as_deref(),
            Some("$default")
        );
        assert_eq!(
            select_route(r#"{"action":"$connect"}"#, &routes).as_deref(),
            Some("$default")
        );
        assert_eq!(
            select_route(r#"{"action":3}"#, &routes).as_deref(),
            Some("$default")
        );
        assert_eq!(
            select_route("not json", &routes).as_deref(),
            Some("$default")
        );
        let no_default: BTreeMap<String, String> = [("a".to_owned(), "f".to_owned())].into();
        assert_eq!(select_route("{}", &no_default), None);
    }
}
