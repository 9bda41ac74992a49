//! The WebSocket API (`ws://HOST:PORT/{stage}`) and, on the same listener, the
//! `@connections` management API (`/{stage}/@connections/{id}`) and the
//! counters endpoint (`GET /_emulator/counters`).

mod connection;
mod events;
mod handshake;
mod management;

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex, atomic::AtomicI64},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, Response, StatusCode};
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    bodies::{Body, json_response},
    ids,
    lambda::{Functions, InvokeError},
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
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn forbidden() -> Response<Body> {
    json_response(StatusCode::FORBIDDEN, r#"{"message":"Forbidden"}"#)
}
