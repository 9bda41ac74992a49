//! A local emulator of API Gateway (WebSocket API, HTTP API, `@connections`
//! management API), of Lambda Function URLs and of the Lambda Runtime API,
//! running real custom-runtime
//! Lambda binaries the way AWS runs them. It knows nothing about what those
//! functions do.
//!
//! ```no_run
//! # async fn demo() -> Result<(), emulator::EmulatorError> {
//! let config = emulator::Config::from_toml_file("emulator.toml".as_ref())?;
//! let emulator = emulator::Emulator::start(config).await?;
//! println!("{}", emulator.websocket_url());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`config`]: the TOML / struct configuration and `${…}` placeholders.
//! - [`emulator`]: [`Emulator`], the handle that owns every listener, task and process.
//! - [`lambda`]: function pools, one process per concurrent invocation, and the
//!   per-process Runtime API server (`lambda::runtime_api`), which relays a
//!   streamed response as the function writes it (`lambda::stream`).
//! - [`websocket`]: the WebSocket API (`$connect`/MESSAGE/`$disconnect`) and the
//!   `@connections` management API, which share one listener.
//! - [`http_api`]: the HTTP API, payload format 2.0.
//! - [`function_url`]: Lambda Function URLs, buffered or streamed, each on
//!   its own listener.
//! - `payload_v2` (private): the payload format 2.0 event and response
//!   mapping that the HTTP API and Function URLs share.
//! - [`counters`]: per-function invocation counters for benchmarks.
//! - [`limits`]: every AWS limit and timeout the emulator enforces, in one place.
//! - [`sigv4`]: Signature Version 4 checks (`@connections`) and the
//!   credentials the emulator gives each function.
//! - private helpers, one job each: `ids` (AWS id formats), `timestamps`
//!   (AWS time formats), `bodies` (reading bodies under a limit, fixed
//!   responses), `serve` (the HTTP/1.1 accept loop), `header_case` (a client's
//!   header-name spelling), `tasks` (task ownership).

pub mod config;
pub mod counters;
pub mod emulator;
pub mod error;
pub mod function_url;
pub mod http_api;
pub mod lambda;
pub mod limits;
pub mod sigv4;
pub mod websocket;

mod bodies;
mod header_case;
mod ids;
mod payload_v2;
mod serve;
mod tasks;
mod timestamps;

pub use config::{
    ClientDisconnect, Config, DisconnectDelivery, FunctionConfig, FunctionUrlConfig, HttpConfig,
    InvokeMode, LimitsConfig, ListenConfig, OverConcurrency, WebSocketConfig,
};
pub use counters::{Counters, FunctionCounters};
pub use emulator::{Emulator, EmulatorBuilder};
pub use error::EmulatorError;
pub use lambda::InvokeError;
pub use lambda::{LogLine, LogSink, LogStream};
pub use sigv4::AwsCredentials;
