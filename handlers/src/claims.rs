//! The subdomain claim state machine, written once (items `sub#<subdomain>`
//! in the connections table, see `docs/contracts.md`):
//!
//! ```text
//! free ──claim (random, or reserved by the agent's token)──▶ live
//! live ──release ($disconnect, forwarding's 410, a failed $connect)──▶ released
//! released ──resume (the current resume token) or claim (the reserving user)──▶ live
//! released ──ttl passes (RESUME_WINDOW)──▶ free
//! ```
//!
//! A live claim has `ttl` = the connection's TTL and the hash of a fresh
//! resume token; releasing sets `releasedAt` and `ttl` = now +
//! [`RESUME_WINDOW`]; resuming is conditioned on the stored hash and
//! replaces it (a token works once). Every transition is one conditional
//! write ([`ConnectionStore`]), so two connections never hold one subdomain.

use protocol::auth::{generate_resume_token, resume_token_hash, resume_token_subdomain};
use protocol::limits::RESUME_WINDOW;
use protocol::policy::AccessPolicy;
use tracing::{info, warn};

use crate::store::{Claim, ConnectionStore, StoreError, Written};

/// How many fresh subdomains to try before giving up. With 62-bit random
/// names a collision is already astronomically unlikely; the bound only
/// guards against a misbehaving table.
pub const MAX_CLAIM_ATTEMPTS: usize = 5;

/// Who asks for a subdomain, and with what.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    pub connection_id: &'a str,
    /// The agent token's `sub` (none with authentication disabled).
    pub user: Option<&'a str>,
    /// The subdomain the agent token reserves for its user.
    pub reserved: Option<&'a str>,
    /// The resume token the agent presented (`<subdomain>.<random>`).
    pub resume_token: Option<&'a str>,
    /// Epoch seconds.
    pub now: i64,
    /// The claim's TTL while live (the connection's).
    pub ttl: i64,
    /// The access policy the agent declared, stored on the claim.
    pub policy: Option<&'a AccessPolicy>,
}

/// A subdomain now held by the claimant, and the resume token whose hash
/// the claim holds (for the agent, at `ready`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub subdomain: String,
    pub resume_token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("the reserved subdomain {subdomain} is held by another live connection")]
    SubdomainTaken { subdomain: String },
    #[error("no free subdomain after {MAX_CLAIM_ATTEMPTS} attempts")]
    NoFreeSubdomain,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Claimant<'_> {
    /// Claims a subdomain, in order: (1) the one the resume token names
    /// (ignored if the agent token reserves another one: the token decides;
    /// a token not accepted falls through), (2) the one the agent token
    /// reserves (held by another live connection: refused, never taken
    /// over), (3) a fresh one from `generate`.
    pub async fn claim<C: ConnectionStore + Sync>(
        &self,
        store: &C,
        generate: &(dyn Fn() -> String + Sync),
    ) -> Result<Granted, ClaimError> {
        if let Some(granted) = self.resume(store).await? {
            return Ok(granted);
        }
        if let Some(subdomain) = self.reserved {
            return self.reserved(store, subdomain).await;
        }
        self.random(store, generate).await
    }

    /// The claim this connection writes for `subdomain`, carrying the hash
    /// of a fresh resume token.
    fn new_claim(&self, subdomain: &str) -> (Claim, String) {
        let token = generate_resume_token(subdomain);
        let claim = Claim {
            subdomain: subdomain.to_string(),
            owner_connection_id: self.connection_id.to_string(),
            created_at: self.now,
            ttl: self.ttl,
            resume_token_hash: Some(resume_token_hash(&token)),
            owner_user: self.user.map(str::to_string),
            released_at: None,
            policy: self.policy.cloned(),
        };
        (claim, token)
    }

    async fn resume<C: ConnectionStore + Sync>(
        &self,
        store: &C,
    ) -> Result<Option<Granted>, StoreError> {
        let Some(presented) = self.resume_token else {
            return Ok(None);
        };
        let Some(subdomain) = resume_token_subdomain(presented) else {
            return Ok(None);
        };
        if self.reserved.is_some_and(|r| r != subdomain) {
            return Ok(None);
        }
        let (claim, resume_token) = self.new_claim(subdomain);
        match store
            .resume_claim(&claim, &resume_token_hash(presented), self.now)
            .await?
        {
            Written::Yes => {
                info!(%subdomain, "resumed the subdomain");
                Ok(Some(Granted {
                    subdomain: subdomain.to_string(),
                    resume_token,
                }))
            }
            Written::ConditionFailed => {
                info!(%subdomain, "resume token not accepted (expired, replaced or unknown)");
                Ok(None)
            }
        }
    }

    async fn reserved<C: ConnectionStore + Sync>(
        &self,
        store: &C,
        subdomain: &str,
    ) -> Result<Granted, ClaimError> {
        let (claim, resume_token) = self.new_claim(subdomain);
        match store.claim_reserved(&claim, self.now).await? {
            Written::Yes => Ok(Granted {
                subdomain: subdomain.to_string(),
                resume_token,
            }),
            Written::ConditionFailed => Err(ClaimError::SubdomainTaken {
                subdomain: subdomain.to_string(),
            }),
        }
    }

    async fn random<C: ConnectionStore + Sync>(
        &self,
        store: &C,
        generate: &(dyn Fn() -> String + Sync),
    ) -> Result<Granted, ClaimError> {
        for attempt in 1..=MAX_CLAIM_ATTEMPTS {
            let candidate = generate();
            let (claim, resume_token) = self.new_claim(&candidate);
            match store.claim_subdomain(&claim, self.now).await? {
                Written::Yes => {
                    return Ok(Granted {
                        subdomain: candidate,
                        resume_token,
                    });
                }
                Written::ConditionFailed => {
                    warn!(subdomain = %candidate, attempt, "subdomain taken, trying another")
                }
            }
        }
        Err(ClaimError::NoFreeSubdomain)
    }
}

/// Releases `owner`'s claim of `subdomain` at `now`: held for the agent's
/// resume token (or its reserving user) during [`RESUME_WINDOW`], then free.
/// Released, not deleted: deleting would let anyone take the subdomain while
/// the agent reconnects. [`Written::ConditionFailed`] when the claim is gone
/// or has moved to another connection (the agent resumed first): it is not
/// `owner`'s to touch.
pub async fn release<C: ConnectionStore + Sync>(
    store: &C,
    subdomain: &str,
    owner: &str,
    now: i64,
) -> Result<Written, StoreError> {
    let until = now + RESUME_WINDOW.as_secs() as i64;
    store.release_claim(subdomain, owner, now, until).await
}
