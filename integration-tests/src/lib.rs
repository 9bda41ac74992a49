//! Integration harness for the serverless tunnel: a DynamoDB backend, the
//! tables from the handlers' manifest, the four real Lambda binaries under
//! the API Gateway emulator, and agents, all on localhost; or a deployed
//! stage for the pipeline's gate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), itest::HarnessError> {
//! let stack = itest::Stack::start(itest::StackConfig::for_tests()).await?;
//! let tunnel = stack.expose("3000").await?;
//! println!("{} → 127.0.0.1:3000", tunnel.public_url());
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`backend`]: which DynamoDB (`ITEST_DYNAMODB`: LocalStack, moto or a URL),
//!   started once per process or per owner, stopped on drop / at exit.
//! - [`moto`]: `moto[server]` installed into `target/venvs/moto` and run on an
//!   ephemeral port.
//! - [`tables`]: the manifest's tables under a unique prefix.
//! - [`buckets`]: the manifest's buckets under the same prefix, on the
//!   backend's S3 (same endpoint).
//! - [`binaries`]: the four handler binaries, built once per process and
//!   profile (or found prebuilt).
//! - [`concurrency`]: each function's concurrency, from Terraform's reservations.
//! - [`stack`]: [`StackBuilder`] and [`Stack`], the emulator running the
//!   handlers against the tables with the environment Terraform sets; the
//!   one stack the tests, `local-stack` and the benchmark (`bench/`) start.
//! - [`interpose`]: a proxy a stack can put in front of DynamoDB, S3 or
//!   `@connections`, showing every call to an [`interpose::Observer`].
//! - [`tunnel`]: [`Tunnel`], an in-process agent and its public URL.
//! - [`service`]: [`LocalService`], a real HTTP service for agents to expose.
//! - [`load`]: [`Load`], a steady visitor load through a tunnel to a
//!   [`LocalService`], every answer checked against its request, handovers
//!   counted (the handover tests and the benchmark's handover phase).
//! - [`target`]: [`TestEnv`], the local stack or a deployed stage
//!   (`ITEST_TARGET=deployed`).
//! - [`error`]: [`HarnessError`], which says what to install or set.
//! - [`paths`]: the workspace and its target directory.
//! - [`management`]: `@connections` clients signed as a function would sign.

mod at_exit;
pub mod backend;
pub mod binaries;
pub mod buckets;
pub mod concurrency;
pub mod error;
pub mod interpose;
pub mod load;
pub mod management;
pub mod moto;
pub mod paths;
pub mod service;
pub mod stack;
pub mod tables;
pub mod target;
pub mod tunnel;

pub use backend::{BackendChoice, DynamoDb};
pub use binaries::{HandlerBinaries, HandlerSource, Profile};
pub use buckets::Buckets;
pub use error::HarnessError;
pub use interpose::{Exchange, Interposed, Observer};
pub use load::{Load, LoadOutcome};
pub use service::{LocalService, Seen};
pub use stack::{Logs, Stack, StackBuilder, StackConfig};
pub use tables::Tables;
pub use target::{Deployed, TestEnv};
pub use tunnel::Tunnel;
