//! The tables as the handlers see them: the items, three narrow interfaces
//! and their outcomes, free of any SDK.
//!
//! - [`connections`]: connection items and subdomain claims
//!   ([`ConnectionStore`], connections table).
//! - [`pending`]: pending requests ([`PendingStore`], pending requests table).
//! - [`chunks`]: chunk items of chunked responses and the progress on their
//!   request ([`ChunkStore`], pending requests table).
//! - [`dynamo`]: all three on DynamoDB (`aws-sdk-dynamodb`), one type per
//!   table: a function holds exactly the tables its IAM role names.
//!
//! The in-memory fake (`crate::fake`, feature `fake`) implements them too,
//! and the contract suite (`crate::contract`, feature `contract`) states what
//! the handlers rely on; both implementations pass it.
//!
//! Methods return `impl Future + Send` (rather than `async fn`) so that the
//! futures of generic handlers stay `Send`.

pub mod chunks;
pub mod connections;
pub mod dynamo;
pub mod pending;

pub use chunks::{ChunkStore, HEAD_PART, Part, Progress, chunk_key};
pub use connections::{CLAIM_PREFIX, Claim, Connection, ConnectionStore, claim_key};
pub use pending::{PendingRequest, PendingState, PendingStore};

/// The outcome of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The condition failed: the subdomain is taken, or the request is unknown,
    /// already completed or belongs to another connection.
    ConditionFailed,
}

/// The backend's own error, whatever the backend.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// A store call failed (not a failed condition: that is [`Written`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The call itself failed (network, throttling, permissions, a missing
    /// table, or an error the fake was told to inject).
    #[error("{operation} failed")]
    Backend {
        /// What was called, e.g. `DynamoDB GetItem`.
        operation: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("item {key:?} is malformed: {problem}")]
    Malformed { key: String, problem: String },
    #[error("stored response of {key:?} is not valid JSON")]
    ResponseJson {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    pub fn backend(operation: &'static str, source: impl Into<BackendError>) -> Self {
        StoreError::Backend {
            operation,
            source: source.into(),
        }
    }
}
