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
//! From the top down; each module uses only those below it (no cycle).
//! - [`agent`]: [`Agent::start`] (or [`Agent::start_with_inspector`]) and
//!   the [`AgentHandle`] that observes and stops it.
//! - `session`: one WebSocket connection at a time. The reconnect loop (at
//!   once after a "going away" close) in `session` itself; the handover to
//!   a successor before the age limit, tried again while there is time
//!   (`session::handover`); one connection's loop (`ready`, heartbeat,
//!   retiring, graceful close: `session::connection`), the server's
//!   messages dispatched in one place with the `--max-in-flight` refusal
//!   (`session::connection::dispatch`) and the request tasks with their
//!   queued answers (`session::connection::requests`); the handshake and
//!   TLS (`session::dial`); what they share and how a connection ends
//!   (`session::ctx`).
//! - [`inspect`]: the request inspector (capture ring, local web page and
//!   JSON API, curl and HAR exports, replay through the agent's forwarder;
//!   its own `# Layout` names its parts).
//! - [`console`]: the human-readable lines the CLI prints.
//! - [`forward`]: one request to the local service and back as an
//!   [`Answer`](exchange::Answer), and the cap on how many are there at once
//!   (visitors' and replays alike): the local HTTP client (`forward::local`),
//!   whether an answer's body goes inline or through the bucket
//!   (`forward::carry`), a failure's two texts (`forward::failure`).
//! - `wire`: an answer as the message that carries it (`http_response` or
//!   `error`), and whether it fits one.
//! - [`events`]: what the agent reports: [`Event`], [`ConnectionState`],
//!   [`AgentError`] (plain data; the supervisor, the session, the console
//!   and the inspector all use it, so it depends on none of them).
//! - [`bodies`]: bodies too large for a message, downloaded from and
//!   uploaded to the tunnel's bucket through presigned URLs, bounded.
//! - [`frames`]: fragmenting messages into frames API Gateway accepts.
//! - [`backoff`], [`heartbeat`]: reconnect delays and link liveness, pure.
//! - [`token`]: minting agent tokens (`tunnel token issue`).
//! - [`exchange`]: one request as the others see it: the
//!   [`Answer`](exchange::Answer) the visitor gets, its log line
//!   ([`RequestLog`], [`RequestOutcome`]) and the [`Recorder`](exchange::Recorder)
//!   hook through which the forwarder shows every exchange (and every
//!   request refused at the edge) to the inspector without knowing it.
//! - [`access`]: the access options (`--basic-auth`, `--allow-cidr`,
//!   `--url-token`, `--verify-webhook`) turned into the policy the agent
//!   declares.
//! - [`config`]: [`Config`] and its validated parts (endpoint, shown with
//!   its secrets masked; target, and the rule that keeps requests under its
//!   base path; host header mode, token, durations, limits).
//! - `text`: plain-words helpers (durations, error chains, clipping).

pub mod access;
pub mod agent;
pub mod backoff;
pub mod bodies;
pub mod config;
pub mod console;
pub mod events;
pub mod exchange;
pub mod forward;
pub mod frames;
pub mod heartbeat;
pub mod inspect;
mod session;
mod text;
pub mod token;
mod wire;

pub use agent::{Agent, AgentHandle};
pub use config::{BackoffConfig, Config, ConfigError, Endpoint, HostHeader, Target, Token};
pub use events::{AgentError, ConnectionState, Event};
pub use exchange::{RequestLog, RequestOutcome};
pub use protocol::ConnectionEstablished;
