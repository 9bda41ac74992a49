//! Opening the WebSocket: the handshake headers, TLS, and what a refused
//! handshake means.

use http::HeaderValue;
use protocol::limits::MAX_MESSAGE_BYTES;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::Config;
use crate::events::AgentError;
use crate::text::{error_chain, humanize};

pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why the WebSocket could not be opened.
pub(super) enum DialError {
    /// Worth another attempt: why, in plain words.
    Failed(String),
    /// Retrying cannot help.
    Fatal(AgentError),
}

/// The TLS client configuration for `wss://` endpoints, built once.
///
/// The crypto provider is named explicitly rather than left to rustls: when
/// a build enables both `ring` and `aws-lc-rs` (feature unification does),
/// rustls cannot pick a process default and panics on first use.
fn tls_connector() -> Result<tokio_tungstenite::Connector, AgentError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, Arc<str>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    });
    match config {
        Ok(config) => Ok(tokio_tungstenite::Connector::Rustls(Arc::clone(config))),
        Err(e) => Err(AgentError::ClientInit(Arc::clone(e))),
    }
}

/// Opens the WebSocket with the handshake headers.
pub(super) async fn dial(config: &Config, resume: Option<&str>) -> Result<Ws, DialError> {
    let failed = DialError::Failed;
    let mut request = config
        .endpoint
        .as_str()
        .into_client_request()
        .map_err(|e| failed(format!("invalid endpoint: {e}")))?;
    let headers = request.headers_mut();
    if let Some(token) = &config.token {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| failed("the token contains characters not allowed in a header".into()))?;
        value.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, value);
    }
    if let Some(resume) = resume.and_then(|r| HeaderValue::from_str(r).ok()) {
        let mut value = resume;
        value.set_sensitive(true);
        headers.insert(protocol::HEADER_RESUME_TOKEN, value);
    }
    headers.insert(
        protocol::HEADER_AGENT_VERSION,
        HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    // The server refuses an older protocol with 426 (`docs/contracts.md`).
    headers.insert(
        protocol::HEADER_PROTOCOL,
        HeaderValue::from(protocol::PROTOCOL_VERSION),
    );
    if let Ok(platform) = HeaderValue::from_str(&platform()) {
        headers.insert(protocol::HEADER_AGENT_PLATFORM, platform);
    }
    if let Some(policy) = &config.policy {
        // base64url: always a valid header value. Sensitive: it may hold a
        // webhook secret.
        let mut value = HeaderValue::from_str(&policy.to_header())
            .map_err(|_| failed("the access policy cannot be sent as a header".into()))?;
        value.set_sensitive(true);
        headers.insert(protocol::policy::HEADER_POLICY, value);
    }
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(4 * MAX_MESSAGE_BYTES))
        .max_frame_size(Some(4 * MAX_MESSAGE_BYTES));
    let tls = tls_connector().map_err(DialError::Fatal)?;
    let handshake =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(ws_config), true, Some(tls));
    match tokio::time::timeout(config.connect_timeout, handshake).await {
        Err(_) => Err(failed(format!(
            "no answer from {} within {}",
            config.endpoint,
            humanize(config.connect_timeout)
        ))),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            if status == 401 || status == 403 {
                Err(DialError::Fatal(AgentError::Unauthorized { status }))
            } else if status == 426 {
                // Retrying cannot help: only a newer agent can.
                Err(DialError::Fatal(AgentError::Outdated))
            } else if status == 400 && config.policy.is_some() {
                Err(DialError::Fatal(AgentError::PolicyRefused))
            } else {
                Err(failed(format!(
                    "the server answered the handshake with HTTP {status}{}",
                    match status {
                        404 => " (is the stage in the endpoint URL right?)",
                        503 =>
                            " (the server may have no authentication secret configured; ask the operator)",
                        _ => "",
                    }
                )))
            }
        }
        Ok(Err(e)) => Err(failed(format!(
            "could not connect to {}: {}",
            config.endpoint,
            error_chain(&e)
        ))),
    }
}

/// `linux-x86_64`, `macos-aarch64`…
fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}
