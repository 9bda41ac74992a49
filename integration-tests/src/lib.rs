//! Integration harness for the serverless tunnel: a DynamoDB backend, the
//! tables from the handlers' manifest, the four real Lambda binaries under
//! the API Gateway emulator, and agents, all on localhost.
//!
//! # Layout
//!
//! - [`backend`]: which DynamoDB (`ITEST_DYNAMODB`: LocalStack, moto or a URL),
//!   started once per process or per owner, stopped on drop / at exit.
//! - [`moto`]: `moto[server]` installed into `target/venvs/moto` and run on an
//!   ephemeral port.
//! - [`tables`]: the manifest's tables under a unique prefix.
//! - [`error`]: [`HarnessError`], which says what to install or set.
//! - [`paths`]: the workspace and its target directory.

pub mod backend;
pub mod error;
pub mod moto;
pub mod paths;
pub mod tables;

pub use backend::{BackendChoice, DynamoDb};
pub use error::HarnessError;
pub use tables::Tables;
