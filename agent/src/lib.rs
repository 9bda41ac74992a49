//! The tunnel agent: exposes a local HTTP service through the serverless
//! tunnel. A library (so end-to-end tests drive it in-process) plus the thin
//! `tunnel` binary.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = agent::Config::new("wss://tunnel.example.com/prod", "3000")?.with_token("t0k3n");
//! let mut handle = agent::Agent::start(config);
//! let tunnel = handle.established().await?;
//! println!("{}", tunnel.public_url);
//! handle.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: [`Config`] and its validated parts (endpoint, target, host
//!   header mode, token, durations).
//! - [`agent`]: [`Agent::start`], [`AgentHandle`], [`Event`],
//!   [`ConnectionState`], [`AgentError`].
//! - `session`: one WebSocket connection (handshake, `ready`, heartbeat,
//!   dispatch, graceful close) and the reconnect loop.
//! - [`chunks`]: request bodies arriving in `body_chunk` messages.
//! - [`forward`]: one visitor request to the local service and back.
//! - [`frames`]: fragmenting messages into frames API Gateway accepts.
//! - [`backoff`], [`heartbeat`]: reconnect delays and link liveness, pure.
//! - [`console`]: the human-readable lines the CLI prints.
//! - [`inspect`]: the request inspector (capture ring, local web page and
//!   JSON API, replay).
//! - [`token`]: minting agent tokens (`tunnel token issue`).

pub mod agent;
pub mod backoff;
pub mod chunks;
pub mod config;
pub mod console;
pub mod forward;
pub mod frames;
pub mod heartbeat;
pub mod inspect;
mod session;
pub mod token;

pub use agent::{Agent, AgentError, AgentHandle, ConnectionState, Event};
pub use config::{BackoffConfig, Config, ConfigError, Endpoint, HostHeader, Target, Token};
pub use forward::{RequestLog, RequestOutcome};
pub use protocol::ConnectionEstablished;
