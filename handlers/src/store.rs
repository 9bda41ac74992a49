//! The narrow interfaces the handlers talk to: the two tables and the
//! WebSocket connections. [`crate::dynamo`] and [`crate::notifier`] implement
//! them with the AWS SDK; the tests implement them with in-memory fakes that
//! record every call as a [`crate::manifest::DynamoDbAction`].
//!
//! Methods return `impl Future + Send` (rather than `async fn`) so that the
//! futures of generic handlers stay `Send`.

use std::future::Future;

use protocol::HttpResponse;

/// Prefix of subdomain claim items in the connections table: `#` never occurs
/// in an API Gateway connection id (URL-safe base64), so the keys cannot clash.
pub const CLAIM_PREFIX: &str = "sub#";

/// The key of the claim item of `subdomain`.
pub fn claim_key(subdomain: &str) -> String {
    format!("{CLAIM_PREFIX}{subdomain}")
}

/// A connection item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub connection_id: String,
    pub public_subdomain: String,
    pub public_url: String,
    /// Epoch seconds.
    pub created_at: i64,
    /// Epoch seconds.
    pub ttl: i64,
    pub agent_version: Option<String>,
    pub agent_platform: Option<String>,
    pub source_ip: Option<String>,
    /// The current resume token, kept here only so the response function can
    /// hand it to the agent at `ready`; the claim holds its hash, which is
    /// all that outlives the connection.
    pub resume_token: Option<String>,
}

/// A subdomain claim item.
///
/// Live: `ttl` = the connection's TTL. Released (its connection ended):
/// `released_at` set and `ttl` = end of the resume window; until then only
/// the holder of the resume token (or, for a reserved subdomain, its user)
/// may take it, and forwarding answers 502 "reconnecting".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    pub subdomain: String,
    pub owner_connection_id: String,
    pub created_at: i64,
    pub ttl: i64,
    /// SHA-256 of the current resume token (`protocol::auth::resume_token_hash`).
    pub resume_token_hash: Option<String>,
    /// The token's `sub` (none with authentication disabled).
    pub owner_user: Option<String>,
    /// When the owner's connection ended (epoch seconds).
    pub released_at: Option<i64>,
}

/// A pending request item, as forwarding writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    pub request_id: String,
    pub connection_id: String,
    pub api_gateway_request_id: String,
    pub created_at: i64,
    pub ttl: i64,
}

/// What forwarding sees when it polls a pending request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingState {
    Pending,
    Completed(HttpResponse),
}

/// The outcome of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The condition failed: the subdomain is taken, or the request is unknown,
    /// already completed or belongs to another connection.
    ConditionFailed,
}

/// A store call failed (not a failed condition: that is [`Written`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} failed")]
    DynamoDb {
        operation: &'static str,
        #[source]
        source: Box<aws_sdk_dynamodb::Error>,
    },
    #[error("item {key:?} is malformed: {problem}")]
    Malformed { key: String, problem: String },
    #[error("stored response of {key:?} is not valid JSON")]
    ResponseJson {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// Only produced by test fakes.
    #[error("injected failure")]
    Injected,
}

/// The connections table: connection items and subdomain claims.
pub trait ConnectionStore {
    /// PutItem the claim of `subdomain` unless a live claim exists.
    fn claim_subdomain(
        &self,
        claim: &Claim,
        now: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// GetItem (consistent) the claim of `subdomain`.
    fn get_claim(
        &self,
        subdomain: &str,
    ) -> impl Future<Output = Result<Option<Claim>, StoreError>> + Send;

    /// PutItem the claim of a reserved subdomain (`claim.owner_user` is its
    /// user) unless a live claim exists; a released claim of the same user
    /// may be taken before its resume window ends.
    fn claim_reserved(
        &self,
        claim: &Claim,
        now: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// UpdateItem the claim of `claim.subdomain` over to `claim`'s owner if
    /// its stored resume token hash is `token_hash`, it has not expired
    /// (`ttl >= now`), and (with a user) it belongs to the same user.
    fn resume_claim(
        &self,
        claim: &Claim,
        token_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// UpdateItem the claim of `subdomain`, if `owner` still holds it, to
    /// released at `now`, held for resuming until `until`.
    fn release_claim(
        &self,
        subdomain: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// PutItem a connection item.
    fn put_connection(
        &self,
        connection: &Connection,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// GetItem (consistent) a connection item.
    fn get_connection(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<Connection>, StoreError>> + Send;

    /// DeleteItem a connection item (no error if it is gone already).
    fn delete_connection(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The pending requests table.
pub trait PendingStore {
    /// PutItem a new request with status `pending`.
    fn put_pending(
        &self,
        request: &PendingRequest,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// GetItem (consistent); `None` if the item does not exist.
    fn get_pending(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<PendingState>, StoreError>> + Send;

    /// DeleteItem (no error if it is gone already).
    fn delete_pending(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// UpdateItem to `completed` with `response`, only if the request exists,
    /// is still pending and was posted to `connection_id`.
    fn complete_pending(
        &self,
        request_id: &str,
        connection_id: &str,
        response: &HttpResponse,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// Query the `connectionId-index`: ids of the requests posted to `connection_id`.
    fn pending_for_connection(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// Why a PostToConnection failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// 410: the connection is closed (or still inside `$connect`).
    #[error("the connection is gone")]
    Gone,
    /// 413: the message exceeds the 128 KB limit.
    #[error("the message is too large for the connection")]
    PayloadTooLarge,
    #[error("PostToConnection failed")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Sends text messages to WebSocket connections.
pub trait Notifier {
    /// PostToConnection: `data` is one complete text message.
    fn post(
        &self,
        connection_id: &str,
        data: &str,
    ) -> impl Future<Output = Result<(), PostError>> + Send;
}

/// A connections store and a pending store as one value, for the handlers
/// that use both tables.
#[derive(Debug, Clone)]
pub struct Stores<C, P> {
    pub connections: C,
    pub pending: P,
}

impl<C: ConnectionStore + Sync, P: Sync> ConnectionStore for Stores<C, P> {
    fn claim_subdomain(
        &self,
        claim: &Claim,
        now: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send {
        self.connections.claim_subdomain(claim, now)
    }
    fn get_claim(
        &self,
        subdomain: &str,
    ) -> impl Future<Output = Result<Option<Claim>, StoreError>> + Send {
        self.connections.get_claim(subdomain)
    }
    fn claim_reserved(
        &self,
        claim: &Claim,
        now: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send {
        self.connections.claim_reserved(claim, now)
    }
    fn resume_claim(
        &self,
        claim: &Claim,
        token_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send {
        self.connections.resume_claim(claim, token_hash, now)
    }
    fn release_claim(
        &self,
        subdomain: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send {
        self.connections.release_claim(subdomain, owner, now, until)
    }
    fn put_connection(
        &self,
        connection: &Connection,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.connections.put_connection(connection)
    }
    fn get_connection(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<Connection>, StoreError>> + Send {
        self.connections.get_connection(connection_id)
    }
    fn delete_connection(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.connections.delete_connection(connection_id)
    }
}

impl<C: Sync, P: PendingStore + Sync> PendingStore for Stores<C, P> {
    fn put_pending(
        &self,
        request: &PendingRequest,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.pending.put_pending(request)
    }
    fn get_pending(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<PendingState>, StoreError>> + Send {
        self.pending.get_pending(request_id)
    }
    fn delete_pending(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.pending.delete_pending(request_id)
    }
    fn complete_pending(
        &self,
        request_id: &str,
        connection_id: &str,
        response: &HttpResponse,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send {
        self.pending
            .complete_pending(request_id, connection_id, response)
    }
    fn pending_for_connection(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        self.pending.pending_for_connection(connection_id)
    }
}
