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
//! - [`config`]: [`Config`] and its validated parts (endpoint, shown with
//!   its secrets masked; target, and the rule that keeps requests under its
//!   base path; host header mode, token, durations, limits).
//! - [`agent`]: [`Agent::start`] and the [`AgentHandle`] that observes and
//!   stops it.
//! - [`events`]: what the agent reports: [`Event`], [`ConnectionState`],
//!   [`AgentError`] (plain data; the supervisor, the session and the console
//!   all use it, so it depends on none of them).
//! - `session`: one WebSocket connection (handshake, `ready`, heartbeat,
//!   dispatch, graceful close) and the reconnect loop.
//! - [`chunks`]: request bodies arriving in `body_chunk` messages, bounded.
//! - [`bodies`]: bodies too large for a message, downloaded from and
//!   uploaded to the tunnel's bucket through presigned URLs, bounded.
//! - [`forward`]: one visitor request to the local service and back.
//! - [`frames`]: fragmenting messages into frames API Gateway accepts.
//! - [`backoff`], [`heartbeat`]: reconnect delays and link liveness, pure.
//! - [`console`]: the human-readable lines the CLI prints.
//! - [`inspect`]: the request inspector (capture ring, local web page and
//!   JSON API, replay).
//! - [`token`]: minting agent tokens (`tunnel token issue`).

pub mod agent;
pub mod backoff;
pub mod bodies;
pub mod chunks;
pub mod config;
pub mod console;
pub mod events;
pub mod forward;
pub mod frames;
pub mod heartbeat;
pub mod inspect;
mod session;
pub mod token;

pub use agent::{Agent, AgentHandle};
pub use config::{BackoffConfig, Config, ConfigError, Endpoint, HostHeader, Target, Token};
pub use events::{AgentError, ConnectionState, Event};
pub use forward::{RequestLog, RequestOutcome};
pub use protocol::ConnectionEstablished;
