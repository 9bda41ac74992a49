//! The WebSocket API (`ws://HOST:PORT/{stage}`) and, on the same listener, the
//! `@connections` management API (`/{stage}/@connections/{id}`) and the
//! counters endpoint (`GET /_emulator/counters`).

mod events;
mod management;

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
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

use crate::{
    bodies::{Body, empty_response, json_response},
    config::DisconnectDelivery,
    header_case::HeaderCase,
    ids,
    lambda::{Functions, InvokeError},
    limits::{WS_FRAME_MAX, WS_MESSAGE_MAX},
    tasks::Tasks,
    timestamps::{self, now_epoch_ms},
};
use events::{Identity, RequestContext, WebSocketEvent};

/// What the management API (or the emulator) asks a connection to do.
#[derive(Debug)]
pub(crate) enum Outbound {
    Send(Message),
    /// DeleteConnection.
    Close,
}

/// A connection that completed its handshake (only those exist for `@connections`).
#[derive(Debug)]
pub(crate) struct Connection {
    pub connected_at_ms: i64,
    pub last_active_ms: AtomicI64,
    pub source_ip: String,
    pub user_agent: Option<String>,
    pub outbound: mpsc::UnboundedSender<Outbound>,
}

/// Settings of the WebSocket API.
#[derive(Debug, Clone)]
pub(crate) struct WebSocketSettings {
    pub stage: String,
    pub api_id: String,
    pub routes: BTreeMap<String, String>,
    pub idle_timeout: Duration,
    pub max_age: Duration,
    pub integration_timeout: Duration,
    pub port: u16,
    /// The API's region: the SigV4 scope of `@connections`.
    pub region: String,
}

#[derive(Debug)]
pub(crate) struct WebSocketApi {
    settings: WebSocketSettings,
    functions: Functions,
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    /// Connection tasks and MESSAGE invocations.
    tasks: Tasks,
}

/// What `$connect` (or a MESSAGE) knows about the connection.
#[derive(Debug, Clone)]
struct ConnectionInfo {
    connection_id: String,
    connected_at_ms: i64,
    source_ip: String,
    domain_name: String,
}

impl WebSocketApi {
    pub fn new(settings: WebSocketSettings, functions: Functions) -> Arc<Self> {
        Arc::new(Self {
            settings,
            functions,
            connections: Mutex::new(HashMap::new()),
            tasks: Tasks::default(),
        })
    }

    pub fn tasks(&self) -> Tasks {
        self.tasks.clone()
    }

    fn connection(&self, id: &str) -> Option<Arc<Connection>> {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn remove_connection(&self, id: &str) -> Option<Arc<Connection>> {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// Routes one request on the shared listener.
    pub async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        req: hyper::Request<Incoming>,
    ) -> Response<Body> {
        let path = req.uri().path().to_owned();
        if path == "/_emulator/counters" {
            return match serde_json::to_vec(&self.functions.counters()) {
                Ok(json) if req.method() == Method::GET => json_response(StatusCode::OK, json),
                _ => forbidden(),
            };
        }
        let Some(rest) = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(self.settings.stage.as_str()))
        else {
            return forbidden();
        };
        if rest.is_empty() || rest == "/" {
            return self.handshake(peer, req).await;
        }
        if let Some(id) = rest.strip_prefix("/@connections/") {
            let id = id.to_owned();
            return management::handle(&self, &id, req).await;
        }
        forbidden()
    }

    fn event_base(
        &self,
        info: &ConnectionInfo,
        route_key: &str,
        event_type: &'static str,
    ) -> WebSocketEvent {
        let now = now_epoch_ms();
        let request_id = ids::new_api_gateway_id();
        WebSocketEvent {
            headers: None,
            multi_value_headers: None,
            query_string_parameters: None,
            multi_value_query_string_parameters: None,
            request_context: RequestContext {
                route_key: route_key.to_owned(),
                message_id: None,
                disconnect_status_code: None,
                event_type,
                extended_request_id: request_id.clone(),
                request_time: timestamps::request_time(now),
                message_direction: "IN",
                disconnect_reason: None,
                stage: self.settings.stage.clone(),
                connected_at: info.connected_at_ms,
                request_time_epoch: now,
                identity: Identity {
                    source_ip: info.source_ip.clone(),
                },
                request_id,
                domain_name: info.domain_name.clone(),
                connection_id: info.connection_id.clone(),
                api_id: self.settings.api_id.clone(),
            },
            body: None,
            is_base64_encoded: false,
        }
    }

    async fn invoke(&self, function: &str, event: &WebSocketEvent) -> Result<Bytes, InvokeError> {
        let payload = serde_json::to_vec(event)
            .map(Bytes::from)
            .unwrap_or_default();
        match tokio::time::timeout(
            self.settings.integration_timeout,
            self.functions.invoke(function, payload),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(InvokeError::Timeout(self.settings.integration_timeout)),
        }
    }

    async fn handshake(
        self: Arc<Self>,
        peer: SocketAddr,
        mut req: hyper::Request<Incoming>,
    ) -> Response<Body> {
        let headers = req.headers();
        let has_token = |name: HeaderName, token: &str| {
            headers.get_all(name).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            })
        };
        let is_upgrade = req.method() == Method::GET
            && has_token(header::UPGRADE, "websocket")
            && has_token(header::CONNECTION, "upgrade")
            && headers
                .get(header::SEC_WEBSOCKET_VERSION)
                .is_some_and(|v| v == "13");
        let Some(key) = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .filter(|_| is_upgrade)
        else {
            return json_response(StatusCode::BAD_REQUEST, r#"{"message":"Bad Request"}"#);
        };

        let info = ConnectionInfo {
            connection_id: ids::new_api_gateway_id(),
            connected_at_ms: now_epoch_ms(),
            source_ip: peer.ip().to_string(),
            domain_name: header_str(headers, header::HOST)
                .unwrap_or_default()
                .to_owned(),
        };
        let user_agent = header_str(headers, header::USER_AGENT).map(str::to_owned);
        let span = info_span!("connection", id = %info.connection_id);

        let mut event = self.event_base(&info, "$connect", "CONNECT");
        let (single, multi) = self.connect_headers(headers, req.extensions(), peer);
        event.headers = Some(single);
        event.multi_value_headers = Some(multi);
        if let Some(query) = req.uri().query() {
            let (single, multi) = events::query_maps(query);
            event.query_string_parameters = Some(single);
            event.multi_value_query_string_parameters = Some(multi);
        }

        let mut extra_headers = HeaderMap::new();
        if let Some(function) = self.settings.routes.get("$connect") {
            let outcome = self.invoke(function, &event).instrument(span.clone()).await;
            match outcome.map(|payload| parse_connect_result(&payload)) {
                Ok((status, headers)) if status.is_success() => extra_headers = headers,
                Ok((status, _)) => {
                    debug!(parent: &span, %status, "$connect rejected the connection");
                    return empty_response(status);
                }
                // Lambda refused the invocation: API Gateway answers 500 ("If
                // the Lambda API rejects the invocation request, API Gateway
                // returns a 500 error code", Lambda developer guide,
                // "Handling Lambda errors with an API Gateway API").
                Err(error @ InvokeError::Throttled(_)) => {
                    warn!(parent: &span, %error, "$connect throttled");
                    return json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        r#"{"message": "Internal server error"}"#,
                    );
                }
                // The function ran and failed: 502, as for any integration error.
                Err(error) => {
                    warn!(parent: &span, %error, "$connect failed");
                    return json_response(
                        StatusCode::BAD_GATEWAY,
                        r#"{"message": "Internal server error"}"#,
                    );
                }
            }
        }

        // Registered only once the 101 is out: a post during `$connect` is a 410.
        let on_upgrade = hyper::upgrade::on(&mut req);
        let api = self.clone();
        self.tasks.spawn(
            async move {
                match on_upgrade.await {
                    Ok(upgraded) => api.run_connection(upgraded, info, user_agent).await,
                    Err(error) => debug!(%error, "upgrade failed"),
                }
            }
            .instrument(span),
        );

        let mut response = empty_response(StatusCode::SWITCHING_PROTOCOLS);
        let out = response.headers_mut();
        out.extend(extra_headers);
        out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(accept) =
            HeaderValue::from_str(&tungstenite::handshake::derive_accept_key(key.as_bytes()))
        {
            out.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }

    /// The handshake headers as `$connect` sees them, with what API Gateway adds.
    fn connect_headers(
        &self,
        headers: &HeaderMap,
        extensions: &http::Extensions,
        peer: SocketAddr,
    ) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
        let case = extensions.get::<HeaderCase>();
        let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            if name == header::CONNECTION || name == header::UPGRADE {
                // API Gateway terminates the upgrade itself.
                continue;
            }
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let name = match case.and_then(|c| c.get(name.as_str())) {
                Some(original) => original.to_owned(),
                None => events::client_header_case(name.as_str()),
            };
            multi.entry(name).or_default().push(value);
        }
        // API Gateway appends the source IP to whatever the client sent.
        let sent: Vec<String> = multi
            .keys()
            .filter(|k| k.eq_ignore_ascii_case("x-forwarded-for"))
            .cloned()
            .collect();
        let mut chain: Vec<String> = sent
            .iter()
            .filter_map(|k| multi.remove(k))
            .flatten()
            .collect();
        chain.push(peer.ip().to_string());
        let forwarded_for = chain.join(", ");
        multi.insert("X-Forwarded-For".into(), vec![forwarded_for]);
        multi.insert(
            "X-Forwarded-Port".into(),
            vec![self.settings.port.to_string()],
        );
        multi.insert("X-Forwarded-Proto".into(), vec!["http".into()]);
        multi.insert("X-Amzn-Trace-Id".into(), vec![ids::new_trace_id()]);
        let single = multi
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.last()?.clone())))
            .collect();
        (single, multi)
    }

    async fn run_connection(
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

/// `$connect`'s status (a result without one counts as 200) and the headers
/// it asks for on the 101 (e.g. `Sec-WebSocket-Protocol`).
fn parse_connect_result(payload: &[u8]) -> (StatusCode, HeaderMap) {
    let value: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let status = match value.get("statusCode") {
        None => Some(StatusCode::OK),
        Some(code) => code
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok()),
    }
    .unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    if let Some(map) = value.get("headers").and_then(Value::as_object) {
        for (name, value) in map {
            let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name.as_str()),
                value.as_str().map(HeaderValue::from_str),
            ) else {
                continue;
            };
            if name != header::CONNECTION
                && name != header::UPGRADE
                && name != header::SEC_WEBSOCKET_ACCEPT
            {
                headers.insert(name, value);
            }
        }
    }
    (status, headers)
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn forbidden() -> Response<Body> {
    json_response(StatusCode::FORBIDDEN, r#"{"message":"Forbidden"}"#)
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

    #[test]
    fn connect_results() {
        assert_eq!(
            parse_connect_result(br#"{"statusCode":200}"#).0,
            StatusCode::OK
        );
        assert_eq!(
            parse_connect_result(br#"{"statusCode":403}"#).0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(parse_connect_result(b"null").0, StatusCode::OK);
        assert_eq!(
            parse_connect_result(br#"{"statusCode":"x"}"#).0,
            StatusCode::BAD_GATEWAY
        );
        let (_, headers) = parse_connect_result(
            br#"{"statusCode":200,"headers":{"Sec-WebSocket-Protocol":"chat"}}"#,
        );
        assert_eq!(headers["sec-websocket-protocol"], "chat");
    }
}
