//! The tables as the handlers see them: the items, two narrow interfaces
//! and their outcomes, free of any SDK.
//!
//! - [`connections`]: connection items and subdomain claims
//!   ([`ConnectionStore`], connections table).
//! - [`pending`]: the agents' answers, one item each ([`PendingStore`],
//!   pending requests table).
//! - [`outcome`]: what a call answers besides its value: [`Written`] for a
//!   conditional write, [`StoreError`] when the call itself failed.
//! - [`dynamo`]: both on DynamoDB (`aws-sdk-dynamodb`), one type per
//!   table: a function holds exactly the tables its IAM role names.
//!
//! The in-memory fake (`crate::fake`, feature `fake`) implements them too,
//! and the contract suite (`crate::contract`, feature `contract`) states what
//! the handlers rely on; both implementations pass it.
//!
//! Methods return `impl Future + Send` (rather than `async fn`) so that the
//! futures of generic handlers stay `Send`.

pub mod connections;
pub mod dynamo;
pub mod outcome;
pub mod pending;

pub use connections::{CLAIM_PREFIX, Claim, Connection, ConnectionStore, claim_key};
pub use outcome::{BackendError, StoreError, Written};
pub use pending::{PendingStore, StoredAnswer, answer_key, parse_response_data, response_data};
