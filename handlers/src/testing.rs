//! Event fixtures, configurations and log capture for the unit tests; the
//! in-memory store and notifier are [`crate::fake`].

use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayWebsocketProxyRequest};

use crate::config::{
    ConnectConfig, DisconnectConfig, ForwardingConfig, PublicUrlTemplate, ResponseConfig,
};

pub fn test_event(name: &str) -> String {
    let path = format!("{}/test-events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn ws_event(name: &str) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_str(&test_event(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn http_event(name: &str) -> ApiGatewayV2httpRequest {
    serde_json::from_str(&test_event(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn connect_config() -> ConnectConfig {
    ConnectConfig {
        connections_table: "connections".into(),
        domain_name: "tunnel.example.com".into(),
        public_url: PublicUrlTemplate::for_domain("tunnel.example.com"),
        auth: crate::config::AuthSettings::Disabled,
    }
}

pub fn disconnect_config() -> DisconnectConfig {
    DisconnectConfig {
        connections_table: "connections".into(),
    }
}

pub fn response_config() -> ResponseConfig {
    ResponseConfig {
        connections_table: "connections".into(),
        pending_table: "pending".into(),
        websocket_api_endpoint: "https://abc.execute-api.eu-west-1.amazonaws.com/prod".into(),
        connection_max_age: ResponseConfig::DEFAULT_CONNECTION_MAX_AGE,
    }
}

pub fn forwarding_config() -> ForwardingConfig {
    ForwardingConfig {
        connections_table: "connections".into(),
        pending_table: "pending".into(),
        domain_name: "tunnel.example.com".into(),
        routing: crate::config::Routing::Host,
        websocket_api_endpoint: "https://abc.execute-api.eu-west-1.amazonaws.com/prod".into(),
        request_timeout: Duration::from_secs(25),
        poll_interval: None,
        bodies_bucket: "tunnel-bodies".into(),
    }
}

/// An in-memory log destination (a `MakeWriter` through its clones).
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `f` with every `tracing` event of this thread captured as text (the
/// tests run on a current-thread runtime, so the whole future is covered).
pub async fn capture_logs<F: std::future::Future>(f: F) -> (F::Output, String) {
    let buf = LogBuffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let out = f.await;
    drop(guard);
    (out, buf.text())
}
