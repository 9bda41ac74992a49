//! The subdomain claim state machine, written once (items `sub#<subdomain>`
//! in the connections table, see `docs/contracts.md`):
//!
//! ```text
//! free ──claim (random, or reserved by the agent's token)──▶ live
//! live ──offer (at `ready`: a fresh resume token, the successor)──▶ live
//! live or released ──resume (the current token or its successor)──▶ live
//! live ──release ($disconnect, forwarding's 410, a failed $connect)──▶ released
//! released ──claim (the reserving user, without a token)──▶ live
//! released ──ttl passes (RESUME_WINDOW)──▶ free
//! ```
//!
//! A live claim has `ttl` = the connection's TTL; releasing sets
//! `releasedAt` and `ttl` = now + [`RESUME_WINDOW`]. Every transition is one
//! conditional write ([`ConnectionStore`]), so two connections never hold one
//! subdomain.
//!
//! # Resume tokens: never void the one the agent holds
//!
//! A token reaches the agent only in `connection_established`, after `ready`,
//! on a connection that may die first; so the claim keeps two hashes (never
//! a token: only its SHA-256 is stored anywhere):
//!
//! - **current**: the token the holder presented to take the claim, so known
//!   to be in its hands (none for a claim taken without one);
//! - **successor**: a fresh token offered at `ready` ([`offer`], generated
//!   there and handed straight to the agent), which it may not have received.
//!
//! Either resumes the claim; resuming makes the presented one current and
//! voids the other (the agent presents the newest token it received, so the
//! other is one it never got or has replaced). So the agent's token stays
//! valid until it proves it holds the successor, whatever point its
//! connection dies at; at most two tokens are valid at once, both given to
//! the holder's latest connections; a guessed token (256 random bits) or one
//! older than the current never matches.

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

/// A subdomain now held by the claimant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub subdomain: String,
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

    /// The live claim this connection holds `subdomain` with, with the hash
    /// of the resume token it presented, if any. No token is made here: the
    /// agent would get it only at `ready` (see [`offer`]).
    fn claim_of(&self, subdomain: &str, presented_hash: Option<String>) -> Claim {
        Claim {
            subdomain: subdomain.to_string(),
            owner_connection_id: self.connection_id.to_string(),
            created_at: self.now,
            ttl: self.ttl,
            resume_token_hash: presented_hash,
            next_resume_token_hash: None,
            owner_user: self.user.map(str::to_string),
            released_at: None,
            policy: self.policy.cloned(),
        }
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
        let claim = self.claim_of(subdomain, Some(resume_token_hash(presented)));
        match store.resume_claim(&claim, self.now).await? {
            Written::Yes => {
                info!(%subdomain, "resumed the subdomain");
                Ok(Some(Granted {
                    subdomain: subdomain.to_string(),
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
        let claim = self.claim_of(subdomain, None);
        match store.claim_reserved(&claim, self.now).await? {
            Written::Yes => Ok(Granted {
                subdomain: subdomain.to_string(),
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
            let claim = self.claim_of(&candidate, None);
            match store.claim_subdomain(&claim, self.now).await? {
                Written::Yes => {
                    return Ok(Granted {
                        subdomain: candidate,
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

/// Offers `owner`, at `ready`, a fresh resume token for `subdomain`: its
/// hash becomes the claim's successor, and the token itself goes to the
/// agent in `connection_established` and is kept nowhere. The token the
/// agent holds stays valid meanwhile: if this one never arrives, the old one
/// still resumes. `None` when `owner` no longer holds the claim (released and
/// taken, or resumed by a newer connection): it has nothing to resume.
pub async fn offer<C: ConnectionStore + Sync>(
    store: &C,
    subdomain: &str,
    owner: &str,
) -> Result<Option<String>, StoreError> {
    let token = generate_resume_token(subdomain);
    match store
        .offer_resume_token(subdomain, owner, &resume_token_hash(&token))
        .await?
    {
        Written::Yes => Ok(Some(token)),
        Written::ConditionFailed => Ok(None),
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

#[cfg(test)]
mod tests {
    //! The transitions as connect (claim), response (offer at `ready`) and
    //! disconnect (release) drive them, on the fake; the store conditions
    //! themselves are the contract suite's (`crate::contract`).

    use super::*;
    use crate::fake::Fake;

    const NOW: i64 = 1_764_000_000;
    const TTL: i64 = NOW + 7500;

    /// An agent's connection asking for a subdomain.
    fn claimant<'a>(
        connection_id: &'a str,
        user: Option<&'a str>,
        reserved: Option<&'a str>,
        resume_token: Option<&'a str>,
    ) -> Claimant<'a> {
        Claimant {
            connection_id,
            user,
            reserved,
            resume_token,
            now: NOW,
            ttl: TTL,
            policy: None,
        }
    }

    /// The subdomain `who` gets; a fresh one is `fresh<n>`.
    async fn claim(fake: &Fake, who: Claimant<'_>) -> String {
        static FRESH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let generate = || {
            format!(
                "fresh{}",
                FRESH.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )
        };
        who.claim(fake, &generate).await.expect("claimed").subdomain
    }

    fn is_fresh(subdomain: &str) -> bool {
        subdomain.starts_with("fresh")
    }

    /// What `$disconnect` does when a connection dies.
    async fn dies(fake: &Fake, subdomain: &str, connection_id: &str) {
        assert_eq!(
            release(fake, subdomain, connection_id, NOW).await.unwrap(),
            Written::Yes
        );
    }

    /// A first connection: a random subdomain, then `ready` hands the agent
    /// its first resume token.
    async fn first_connection(fake: &Fake, user: Option<&str>) -> (String, String) {
        let subdomain = Claimant {
            user,
            ..claimant("C1", None, None, None)
        }
        .claim(fake, &|| "abc123def456".to_string())
        .await
        .unwrap()
        .subdomain;
        let token = offer(fake, &subdomain, "C1")
            .await
            .unwrap()
            .expect("offered");
        assert_eq!(resume_token_subdomain(&token), Some(subdomain.as_str()));
        (subdomain, token)
    }

    #[tokio::test]
    async fn the_holder_keeps_its_url_across_a_connection_that_died_before_ready() {
        let fake = Fake::default();
        let (subdomain, t1) = first_connection(&fake, None).await;
        dies(&fake, &subdomain, "C1").await;
        // C2 resumes with t1 and dies before sending `ready`: no successor
        // was ever offered, t1 stays the token to present.
        assert_eq!(
            claim(&fake, claimant("C2", None, None, Some(&t1))).await,
            subdomain
        );
        dies(&fake, &subdomain, "C2").await;
        assert_eq!(
            claim(&fake, claimant("C3", None, None, Some(&t1))).await,
            subdomain
        );
        let held = fake.claim(&subdomain).unwrap();
        assert_eq!(
            (held.owner_connection_id.as_str(), held.released_at),
            ("C3", None)
        );
    }

    #[tokio::test]
    async fn the_holder_keeps_its_url_when_its_successor_token_is_lost() {
        let fake = Fake::default();
        let (subdomain, t1) = first_connection(&fake, None).await;
        assert_eq!(
            claim(&fake, claimant("C2", None, None, Some(&t1))).await,
            subdomain
        );
        // `ready` on C2 offers t2, but `connection_established` never
        // arrives: the agent still holds t1.
        let t2 = offer(&fake, &subdomain, "C2").await.unwrap().unwrap();
        dies(&fake, &subdomain, "C2").await;
        assert_eq!(
            claim(&fake, claimant("C3", None, None, Some(&t1))).await,
            subdomain
        );
        // Presenting t1 voided the lost t2.
        assert!(is_fresh(
            &claim(&fake, claimant("C4", None, None, Some(&t2))).await
        ));
        assert_eq!(fake.claim(&subdomain).unwrap().owner_connection_id, "C3");

        // Once the agent presents the successor it did get, the one before
        // is void.
        let t3 = offer(&fake, &subdomain, "C3").await.unwrap().unwrap();
        assert_eq!(
            claim(&fake, claimant("C5", None, None, Some(&t3))).await,
            subdomain
        );
        assert!(is_fresh(
            &claim(&fake, claimant("C6", None, None, Some(&t1))).await
        ));
        assert_eq!(fake.claim(&subdomain).unwrap().owner_connection_id, "C5");
    }

    #[tokio::test]
    async fn a_stranger_cannot_take_the_name() {
        let fake = Fake::default();
        let (subdomain, t1) = first_connection(&fake, Some("alice")).await;
        dies(&fake, &subdomain, "C1").await;
        let guessed = generate_resume_token(&subdomain);
        let malformed = format!("{subdomain}.short");
        for presented in [guessed.as_str(), malformed.as_str(), subdomain.as_str()] {
            let got = claim(
                &fake,
                claimant("S1", Some("mallory"), None, Some(presented)),
            )
            .await;
            assert!(is_fresh(&got), "{presented}");
        }
        // The right token in another user's hands.
        assert!(is_fresh(
            &claim(&fake, claimant("S2", Some("mallory"), None, Some(&t1))).await
        ));
        // A token of the holder's that its successor replaced.
        assert_eq!(
            claim(&fake, claimant("C2", Some("alice"), None, Some(&t1))).await,
            subdomain
        );
        let t2 = offer(&fake, &subdomain, "C2").await.unwrap().unwrap();
        assert_eq!(
            claim(&fake, claimant("C3", Some("alice"), None, Some(&t2))).await,
            subdomain
        );
        assert!(
            is_fresh(&claim(&fake, claimant("S3", Some("alice"), None, Some(&t1))).await),
            "stale: older than the current token"
        );
        // And a connection that lost the claim is offered nothing.
        assert_eq!(offer(&fake, &subdomain, "C2").await.unwrap(), None);
        assert_eq!(fake.claim(&subdomain).unwrap().owner_connection_id, "C3");
    }

    /// The planned handover (make-before-break): the agent opens a successor
    /// while the holder is still live and up.
    #[tokio::test]
    async fn a_live_holder_hands_over_to_its_successor_and_its_disconnect_is_a_no_op() {
        let fake = Fake::default();
        let (subdomain, t1) = first_connection(&fake, None).await;
        // C1 is live (no `$disconnect` yet): C2 presents the current token
        // and takes the claim at its `$connect`.
        assert_eq!(
            claim(&fake, claimant("C2", None, None, Some(&t1))).await,
            subdomain
        );
        let held = fake.claim(&subdomain).unwrap();
        assert_eq!(
            (held.owner_connection_id.as_str(), held.released_at),
            ("C2", None)
        );
        // The old connection's `$disconnect` (or forwarding's 410 on it)
        // comes after the move: it leaves the successor's claim alone.
        assert_eq!(
            release(&fake, &subdomain, "C1", NOW).await.unwrap(),
            Written::ConditionFailed
        );
        let held = fake.claim(&subdomain).unwrap();
        assert_eq!(
            (
                held.owner_connection_id.as_str(),
                held.released_at,
                held.ttl
            ),
            ("C2", None, TTL)
        );
        // And the old connection is offered no token any more.
        assert_eq!(offer(&fake, &subdomain, "C1").await.unwrap(), None);
        assert!(offer(&fake, &subdomain, "C2").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_stranger_with_a_guessed_token_cannot_take_a_live_claim() {
        let fake = Fake::default();
        let (subdomain, _t1) = first_connection(&fake, Some("alice")).await;
        let guessed = generate_resume_token(&subdomain);
        let got = claim(&fake, claimant("S1", Some("mallory"), None, Some(&guessed))).await;
        assert!(is_fresh(&got));
        let held = fake.claim(&subdomain).unwrap();
        assert_eq!(
            (held.owner_connection_id.as_str(), held.released_at),
            ("C1", None)
        );
    }

    /// Two successors racing with the same token (a retried handshake):
    /// the later one wins; the earlier one holds nothing, is offered
    /// nothing and its end releases nothing.
    #[tokio::test]
    async fn a_stale_successor_loses_cleanly() {
        let fake = Fake::default();
        let (subdomain, t1) = first_connection(&fake, None).await;
        assert_eq!(
            claim(&fake, claimant("C2", None, None, Some(&t1))).await,
            subdomain
        );
        assert_eq!(
            claim(&fake, claimant("C3", None, None, Some(&t1))).await,
            subdomain
        );
        assert_eq!(offer(&fake, &subdomain, "C2").await.unwrap(), None);
        let t3 = offer(&fake, &subdomain, "C3").await.unwrap().unwrap();
        for stale in ["C1", "C2"] {
            assert_eq!(
                release(&fake, &subdomain, stale, NOW).await.unwrap(),
                Written::ConditionFailed,
                "{stale}"
            );
        }
        assert_eq!(fake.claim(&subdomain).unwrap().owner_connection_id, "C3");
        // Once C3's successor token is presented, a third copy of t1 loses.
        assert_eq!(
            claim(&fake, claimant("C4", None, None, Some(&t3))).await,
            subdomain
        );
        assert!(is_fresh(
            &claim(&fake, claimant("C5", None, None, Some(&t1))).await
        ));
        assert_eq!(fake.claim(&subdomain).unwrap().owner_connection_id, "C4");
    }

    #[tokio::test]
    async fn reserved_subdomain_users_keep_their_url_the_same_way() {
        let fake = Fake::default();
        let alice = |conn, token| claimant(conn, Some("alice"), Some("alice-app"), token);
        assert_eq!(claim(&fake, alice("C1", None)).await, "alice-app");
        let t1 = offer(&fake, "alice-app", "C1").await.unwrap().unwrap();
        // Reconnects: the resume token is tried first and succeeds, live
        // (before C1's `$disconnect`) or released; a connection dying before
        // `ready` voids nothing.
        assert_eq!(claim(&fake, alice("C2", Some(&t1))).await, "alice-app");
        dies(&fake, "alice-app", "C2").await;
        assert_eq!(claim(&fake, alice("C3", Some(&t1))).await, "alice-app");
        // Another user's grant of the same name is refused while it is held.
        let bob = claimant("B1", Some("bob"), Some("alice-app"), None);
        assert!(matches!(
            bob.claim(&fake, &|| unreachable!()).await,
            Err(ClaimError::SubdomainTaken { .. })
        ));
        // A restarted agent (no resume token) takes its released name back.
        dies(&fake, "alice-app", "C3").await;
        assert_eq!(claim(&fake, alice("C4", None)).await, "alice-app");
        assert_eq!(fake.claim("alice-app").unwrap().owner_connection_id, "C4");
    }
}
