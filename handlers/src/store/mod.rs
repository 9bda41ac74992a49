//! The tables as the handlers see them: the items, three narrow interfaces
//! and their outcomes, free of any SDK.
//!
//! - [`connections`]: connection items and subdomain claims
//!   ([`ConnectionStore`], connections table).
//! - [`pending`]: pending requests ([`PendingStore`], pending requests table).
//! - [`chunks`]: chunk items of chunked responses and the progress on their
//!   request ([`ChunkStore`], pending requests table).
//! - [`outcome`]: what a call answers besides its value: [`Written`] for a
//!   conditional write, [`StoreError`] when the call itself failed.
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
pub mod outcome;
pub mod pending;

pub use chunks::{ChunkStore, HEAD_PART, Part, Progress, Receiving, chunk_key};
pub use connections::{CLAIM_PREFIX, Claim, Connection, ConnectionStore, claim_key};
pub use outcome::{BackendError, StoreError, Written};
pub use pending::{PendingRequest, PendingState, PendingStore, parse_response_data, response_data};
