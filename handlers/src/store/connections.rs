//! The connections table: one item per WebSocket connection and one claim
//! item per subdomain in use (see `docs/contracts.md`; the claim states are
//! in [`crate::claims`]).

use std::future::Future;

use protocol::policy::AccessPolicy;

use super::outcome::{StoreError, Written};

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
}

/// A subdomain claim item.
///
/// Live: `ttl` = the connection's TTL. Released (its connection ended):
/// `released_at` set and `ttl` = end of the resume window; until then only
/// the holder of a resume token (or, for a reserved subdomain, its user)
/// may take it, and forwarding answers 502 "reconnecting".
///
/// Two resume token hashes (`protocol::auth::resume_token_hash`; the tokens
/// themselves are stored nowhere), either of which resumes the claim (see
/// [`crate::claims`]): the one the holder is known to have, and the
/// successor offered to it at `ready`, which it may not have received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    pub subdomain: String,
    pub owner_connection_id: String,
    pub created_at: i64,
    pub ttl: i64,
    /// The token the holder presented to take the claim (`resumeTokenHash`):
    /// proven to be in its hands.
    pub resume_token_hash: Option<String>,
    /// The successor offered at `ready` (`nextResumeTokenHash`), not yet
    /// presented back.
    pub next_resume_token_hash: Option<String>,
    /// The token's `sub` (none with authentication disabled).
    pub owner_user: Option<String>,
    /// When the owner's connection ended (epoch seconds).
    pub released_at: Option<i64>,
    /// The access policy the owner's agent declared (attribute
    /// `accessPolicy`, JSON): written with the claim, replaced on resume,
    /// removed at release (it may hold a webhook secret).
    pub policy: Option<AccessPolicy>,
}

/// The connections table: connection items and subdomain claims. Every read
/// is strongly consistent: a claim written a moment ago is seen.
pub trait ConnectionStore {
    /// PutItem the claim of `claim.subdomain` unless a live claim exists
    /// (one whose `ttl >= now`, released or not).
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
    /// may be taken before its resume window ends. Without a user, the same
    /// as [`ConnectionStore::claim_subdomain`].
    fn claim_reserved(
        &self,
        claim: &Claim,
        now: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// UpdateItem the claim of `claim.subdomain` to `claim`: its owner,
    /// creation time, TTL, user and policy, its `resume_token_hash` (the presented
    /// token's) as the current hash, no successor and not released; if the
    /// stored claim's current *or* successor hash is `claim.resume_token_hash`,
    /// it has not expired (`ttl >= now`), and, with a user, it has no user or
    /// the same one. Never creates a claim.
    fn resume_claim(
        &self,
        claim: &Claim,
        now: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// UpdateItem the claim of `subdomain`, if `owner` holds it, to offer
    /// `next_hash` as the successor of its resume token (replacing any
    /// earlier offer; the current hash stays valid). Never creates a claim.
    fn offer_resume_token(
        &self,
        subdomain: &str,
        owner: &str,
        next_hash: &str,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// UpdateItem the claim of `subdomain`, if `owner` still holds it, to
    /// released at `now`, held for resuming until `until`, without its
    /// policy. Never creates a claim.
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

    /// GetItem (consistent) a connection item; `None` for a claim key.
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
