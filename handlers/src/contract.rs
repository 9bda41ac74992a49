//! The store contract: every behaviour of the store interfaces that the
//! handlers rely on, as plain functions generic over the interfaces (feature
//! `contract`). Each case takes a fresh, empty store and panics with a
//! message when the store breaks the contract (a store call that fails is
//! returned as the error).
//!
//! Every implementation runs every case: the fake in this crate's unit tests
//! (`crate::fake`), the DynamoDB stores against a real DynamoDB API (moto or
//! LocalStack) in `integration-tests/tests/dynamo_store.rs`. Both lists are
//! checked against [`CASES`], and [`CASES`] against the functions below, so a
//! new case cannot be left out of either. A fake is trustworthy only because
//! the same suite passes on it and on the real service; where they disagree,
//! the fake is wrong.
//!
//! What the cases state:
//! - claims: conditional claim (free or expired only), held while released,
//!   owner-only offer and release, resume only with the current token's or
//!   the offered successor's hash inside the window (the presented one
//!   becomes current, the other is voided), reserved subdomains only for
//!   their user, no condition ever creates a claim, the access policy
//!   stored with the claim, replaced on resume and removed at release;
//! - connections: round trip, idempotent delete, claim keys are no
//!   connections;
//! - answers: one per connection and request, exactly once (a second from
//!   the same connection is refused, the first stays), read only under the
//!   connection asked about (another connection's answer is never seen),
//!   stored with their TTL and whole (an uploaded body's marker, a body up
//!   to the inline limit, a long header list).
//!
//! Every read follows the write it checks at once: the reads the handlers
//! use are strongly consistent (a fresh tunnel must never 404).

use protocol::limits::MAX_MESSAGE_BYTES;
use protocol::policy::{self, AccessPolicy, Webhook, WebhookProvider};
use protocol::{BodyUploaded, Headers, HttpResponse};

use crate::store::{
    Claim, Connection, ConnectionStore, PendingStore, StoreError, StoredAnswer, Written, claim_key,
};

/// The name of every case, in the order both implementations run them.
pub const CASES: [&str; 10] = [
    "claims_and_resume_follow_their_conditions",
    "resume_tokens_stay_valid_until_their_successor_is_presented",
    "resuming_respects_the_user",
    "reserved_subdomains_go_back_only_to_their_user",
    "the_policy_lives_with_the_claim_until_release",
    "missing_claims_are_never_created",
    "connections_round_trip_and_delete_idempotently",
    "an_answer_is_written_once_per_connection",
    "an_answer_is_read_only_under_its_connection",
    "answers_keep_their_ttl_and_whole_response",
];

const NOW: i64 = 1_764_000_000;
const CONN: &str = "L0SM9cOFvHcCIhw=";
const OTHER: &str = "Other0000000AA=";
const REQ: &str = "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a";

/// A live claim of `owner` as `$connect` writes it for a new subdomain: no
/// resume token yet (the first is offered at `ready`).
fn claim(owner: &str, ttl: i64) -> Claim {
    Claim {
        subdomain: "abc".into(),
        owner_connection_id: owner.into(),
        created_at: NOW,
        ttl,
        resume_token_hash: None,
        next_resume_token_hash: None,
        owner_user: None,
        released_at: None,
        policy: None,
    }
}

/// What `$connect` asks for when `owner` presents the token hashed as
/// `presented`; also the claim a successful resume leaves.
fn resuming(owner: &str, presented: &str) -> Claim {
    Claim {
        resume_token_hash: Some(presented.into()),
        ..claim(owner, NOW + 7500)
    }
}

fn response(request_id: &str, status: u16) -> HttpResponse {
    let mut headers = Headers::new();
    headers.insert("set-cookie".into(), vec!["a=1".into(), "b=2".into()]);
    HttpResponse {
        request_id: request_id.into(),
        status_code: status,
        headers,
        body: protocol::encode_body(b"hello"),
        processing_time_ms: 1,
        body_uploaded: None,
    }
}

// --- connections table ---

pub async fn claims_and_resume_follow_their_conditions<C: ConnectionStore + Sync>(
    conns: &C,
) -> Result<(), StoreError> {
    // Claims: conditional put, expiry takeover, owner-only offer and release.
    assert_eq!(
        conns.claim_subdomain(&claim("A=", NOW + 100), NOW).await?,
        Written::Yes
    );
    assert_eq!(
        conns.claim_subdomain(&claim("B=", NOW + 100), NOW).await?,
        Written::ConditionFailed
    );
    assert_eq!(
        conns
            .claim_subdomain(&claim("B=", NOW + 500), NOW + 101)
            .await?,
        Written::Yes,
        "an expired claim is taken over"
    );
    assert_eq!(conns.get_claim("abc").await?, Some(claim("B=", NOW + 500)));
    assert_eq!(
        conns.offer_resume_token("abc", "A=", "hash-A1").await?,
        Written::ConditionFailed,
        "only the holder is offered a resume token"
    );
    assert_eq!(
        conns.offer_resume_token("abc", "B=", "hash-B1").await?,
        Written::Yes
    );
    assert_eq!(
        conns.get_claim("abc").await?,
        Some(Claim {
            next_resume_token_hash: Some("hash-B1".into()),
            ..claim("B=", NOW + 500)
        })
    );
    assert_eq!(
        conns
            .release_claim("abc", "A=", NOW + 200, NOW + 800)
            .await?,
        Written::ConditionFailed
    );
    assert_eq!(
        conns.get_claim("abc").await?.expect("claimed").released_at,
        None
    );
    assert_eq!(
        conns
            .release_claim("abc", "B=", NOW + 200, NOW + 800)
            .await?,
        Written::Yes
    );
    let released = conns.get_claim("abc").await?.expect("claimed");
    assert_eq!(
        (released.released_at, released.ttl),
        (Some(NOW + 200), NOW + 800)
    );
    assert_eq!(
        conns
            .claim_subdomain(&claim("C=", NOW + 900), NOW + 300)
            .await?,
        Written::ConditionFailed,
        "a released claim is held for its resume window"
    );

    // Resume: only with a hash the claim holds, within the window.
    assert_eq!(
        conns
            .resume_claim(&resuming("D=", "hash-wrong"), NOW + 300)
            .await?,
        Written::ConditionFailed
    );
    assert_eq!(
        conns
            .resume_claim(&resuming("D=", "hash-B1"), NOW + 801)
            .await?,
        Written::ConditionFailed,
        "the window is over"
    );
    assert_eq!(
        conns
            .resume_claim(&resuming("D=", "hash-B1"), NOW + 300)
            .await?,
        Written::Yes
    );
    assert_eq!(
        conns.get_claim("abc").await?,
        Some(resuming("D=", "hash-B1")),
        "live again, the presented token current, no successor"
    );
    Ok(())
}

/// The scheme of `crate::claims`: the token the agent holds stays valid
/// until it presents the successor it was offered; presenting one voids the
/// other; a replaced offer, a token older than the current one and a claim
/// without any token never match.
pub async fn resume_tokens_stay_valid_until_their_successor_is_presented<
    C: ConnectionStore + Sync,
>(
    conns: &C,
) -> Result<(), StoreError> {
    assert_eq!(
        conns.claim_subdomain(&claim("A=", NOW + 7500), NOW).await?,
        Written::Yes
    );
    assert_eq!(
        conns.resume_claim(&claim("X=", NOW + 7500), NOW).await?,
        Written::ConditionFailed,
        "no token presented: nothing matches, not even a claim without one"
    );
    assert_eq!(
        conns.offer_resume_token("abc", "A=", "t1").await?,
        Written::Yes
    );
    assert_eq!(
        conns.resume_claim(&resuming("B=", "t1"), NOW).await?,
        Written::Yes,
        "the offered successor"
    );
    assert_eq!(conns.get_claim("abc").await?, Some(resuming("B=", "t1")));

    // A second offer replaces the first; the current token stays.
    for next in ["t2", "t3"] {
        assert_eq!(
            conns.offer_resume_token("abc", "B=", next).await?,
            Written::Yes
        );
    }
    assert_eq!(
        conns.get_claim("abc").await?,
        Some(Claim {
            next_resume_token_hash: Some("t3".into()),
            ..resuming("B=", "t1")
        })
    );
    assert_eq!(
        conns
            .release_claim("abc", "B=", NOW + 10, NOW + 610)
            .await?,
        Written::Yes
    );
    assert_eq!(
        conns.resume_claim(&resuming("C=", "t2"), NOW + 20).await?,
        Written::ConditionFailed,
        "a replaced offer"
    );
    // t3 never reached the agent (its connection died first): the token it
    // holds still brings the subdomain back, and voids the lost offer.
    assert_eq!(
        conns.resume_claim(&resuming("C=", "t1"), NOW + 20).await?,
        Written::Yes,
        "the current token, live or released"
    );
    assert_eq!(conns.get_claim("abc").await?, Some(resuming("C=", "t1")));
    assert_eq!(
        conns.resume_claim(&resuming("D=", "t3"), NOW + 20).await?,
        Written::ConditionFailed,
        "an offer voided by presenting the current token"
    );

    // Presenting the successor voids the token before it.
    assert_eq!(
        conns.offer_resume_token("abc", "C=", "t4").await?,
        Written::Yes
    );
    assert_eq!(
        conns.resume_claim(&resuming("D=", "t4"), NOW + 30).await?,
        Written::Yes
    );
    assert_eq!(
        conns.resume_claim(&resuming("E=", "t1"), NOW + 30).await?,
        Written::ConditionFailed,
        "older than the current token"
    );
    assert_eq!(conns.get_claim("abc").await?, Some(resuming("D=", "t4")));
    Ok(())
}

/// A resume with a user takes a claim without a user or of the same user,
/// live (the agent reconnects before its `$disconnect` ran) or released; a
/// resume without a user (authentication off) also clears the user.
pub async fn resuming_respects_the_user<C: ConnectionStore + Sync>(
    conns: &C,
) -> Result<(), StoreError> {
    let as_user = |claim: Claim, user: Option<&str>| Claim {
        owner_user: user.map(str::to_string),
        ..claim
    };
    assert_eq!(
        conns
            .claim_subdomain(&as_user(claim("A=", NOW + 7500), Some("bob")), NOW)
            .await?,
        Written::Yes
    );
    assert_eq!(
        conns.offer_resume_token("abc", "A=", "hash-A").await?,
        Written::Yes
    );
    assert_eq!(
        conns
            .resume_claim(&as_user(resuming("B=", "hash-A"), Some("alice")), NOW)
            .await?,
        Written::ConditionFailed,
        "another user's resume token"
    );
    assert_eq!(
        conns.get_claim("abc").await?.map(|c| c.owner_connection_id),
        Some("A=".into())
    );
    assert_eq!(
        conns
            .resume_claim(&as_user(resuming("B=", "hash-A"), Some("bob")), NOW)
            .await?,
        Written::Yes,
        "the same user, live claim"
    );
    assert_eq!(
        conns.get_claim("abc").await?,
        Some(as_user(resuming("B=", "hash-A"), Some("bob")))
    );
    assert_eq!(
        conns
            .resume_claim(&as_user(resuming("C=", "hash-A"), None), NOW)
            .await?,
        Written::Yes,
        "without a user"
    );
    assert_eq!(
        conns.get_claim("abc").await?,
        Some(resuming("C=", "hash-A"))
    );
    assert_eq!(
        conns.release_claim("abc", "C=", NOW, NOW + 600).await?,
        Written::Yes
    );
    assert_eq!(
        conns
            .resume_claim(&as_user(resuming("D=", "hash-A"), Some("alice")), NOW + 1)
            .await?,
        Written::Yes,
        "a claim without a user, released"
    );
    let resumed = conns.get_claim("abc").await?.expect("claimed");
    assert_eq!(
        (resumed.owner_connection_id.as_str(), resumed.released_at),
        ("D=", None)
    );
    Ok(())
}

pub async fn reserved_subdomains_go_back_only_to_their_user<C: ConnectionStore + Sync>(
    conns: &C,
) -> Result<(), StoreError> {
    let reserved = |owner: &str, user: &str| Claim {
        subdomain: "alice-app".into(),
        owner_user: Some(user.into()),
        ..claim(owner, NOW + 7500)
    };
    assert_eq!(
        conns.claim_reserved(&reserved("A=", "alice"), NOW).await?,
        Written::Yes
    );
    assert_eq!(
        conns.claim_reserved(&reserved("B=", "alice"), NOW).await?,
        Written::ConditionFailed,
        "live"
    );
    assert_eq!(
        conns
            .release_claim("alice-app", "A=", NOW, NOW + 600)
            .await?,
        Written::Yes
    );
    assert_eq!(
        conns.claim_reserved(&reserved("B=", "bob"), NOW).await?,
        Written::ConditionFailed,
        "another user"
    );
    assert_eq!(
        conns.claim_reserved(&reserved("B=", "alice"), NOW).await?,
        Written::Yes
    );
    assert_eq!(
        conns.get_claim("alice-app").await?,
        Some(reserved("B=", "alice"))
    );
    assert_eq!(
        conns
            .claim_reserved(&reserved("C=", "bob"), NOW + 7501)
            .await?,
        Written::Yes,
        "an expired claim is anyone's"
    );
    Ok(())
}

/// Release, resume and offer are conditional updates: on a subdomain nobody
/// claimed they fail and leave no item behind (no upsert).
/// The access policy is written with the claim (no write of its own), read
/// back whole, replaced (or removed) by a resume, and removed at release: a
/// webhook secret lives no longer than its connection.
pub async fn the_policy_lives_with_the_claim_until_release<C: ConnectionStore + Sync>(
    conns: &C,
) -> Result<(), StoreError> {
    let policy = |secret: &str| AccessPolicy {
        basic_auth: vec![policy::hash_credential("ann", "pw")],
        allow_cidrs: vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ],
        url_token_hash: Some(policy::url_token_hash("token")),
        webhook: Some(Webhook {
            provider: WebhookProvider::Github,
            secret: secret.into(),
            header: None,
        }),
    };
    let first = Claim {
        policy: Some(policy("one")),
        resume_token_hash: Some("hash-1".into()),
        ..claim("A=", NOW + 7500)
    };
    assert_eq!(conns.claim_subdomain(&first, NOW).await?, Written::Yes);
    assert_eq!(conns.get_claim("abc").await?, Some(first.clone()));

    // Resumed (before any release) with another policy: replaced.
    let second = Claim {
        policy: Some(policy("two")),
        resume_token_hash: Some("hash-1".into()),
        ..claim("B=", NOW + 7500)
    };
    assert_eq!(conns.resume_claim(&second, NOW).await?, Written::Yes);
    assert_eq!(conns.get_claim("abc").await?, Some(second));

    // Released: gone with the connection.
    assert_eq!(
        conns.release_claim("abc", "B=", NOW + 1, NOW + 800).await?,
        Written::Yes
    );
    let released = conns.get_claim("abc").await?.expect("held");
    assert_eq!(released.policy, None, "the policy outlived its connection");

    // Resumed without a policy (the agent declares none now): none.
    let third = Claim {
        resume_token_hash: Some("hash-1".into()),
        ..claim("C=", NOW + 7500)
    };
    assert_eq!(conns.resume_claim(&third, NOW + 2).await?, Written::Yes);
    let resumed = conns.get_claim("abc").await?.expect("held");
    assert_eq!(resumed.policy, None);
    Ok(())
}

pub async fn missing_claims_are_never_created<C: ConnectionStore + Sync>(
    conns: &C,
) -> Result<(), StoreError> {
    assert_eq!(conns.get_claim("abc").await?, None);
    assert_eq!(
        conns.release_claim("abc", "A=", NOW, NOW + 600).await?,
        Written::ConditionFailed
    );
    assert_eq!(
        conns.get_claim("abc").await?,
        None,
        "release created a claim"
    );
    assert_eq!(
        conns.resume_claim(&resuming("A=", "hash-A"), NOW).await?,
        Written::ConditionFailed
    );
    assert_eq!(
        conns.get_claim("abc").await?,
        None,
        "resume created a claim"
    );
    assert_eq!(
        conns.offer_resume_token("abc", "A=", "hash-A").await?,
        Written::ConditionFailed
    );
    assert_eq!(
        conns.get_claim("abc").await?,
        None,
        "an offer created a claim"
    );
    Ok(())
}

pub async fn connections_round_trip_and_delete_idempotently<C: ConnectionStore + Sync>(
    conns: &C,
) -> Result<(), StoreError> {
    let connection = Connection {
        connection_id: CONN.into(),
        public_subdomain: "abc".into(),
        public_url: "https://abc.tunnel.example.com".into(),
        created_at: NOW,
        ttl: NOW + 7500,
        agent_version: Some("0.3.1".into()),
        agent_platform: None,
        source_ip: Some("203.0.113.7".into()),
    };
    assert_eq!(conns.get_connection(CONN).await?, None);
    conns.put_connection(&connection).await?;
    assert_eq!(
        conns.get_connection(&connection.connection_id).await?,
        Some(connection.clone())
    );
    // Claims share the table; their keys are never connections.
    assert_eq!(
        conns.claim_subdomain(&claim(CONN, NOW + 7500), NOW).await?,
        Written::Yes
    );
    assert_eq!(conns.get_connection(&claim_key("abc")).await?, None);
    conns.delete_connection(&connection.connection_id).await?;
    conns.delete_connection(&connection.connection_id).await?;
    assert_eq!(conns.get_connection(&connection.connection_id).await?, None);
    assert!(
        conns.get_claim("abc").await?.is_some(),
        "deleting the connection keeps its claim"
    );
    Ok(())
}

// --- pending requests table: the answers ---

/// The response function writes a connection's answer once: a second one
/// (a retry, a duplicate, an `error` after the answer) is refused and the
/// first stays.
pub async fn an_answer_is_written_once_per_connection<P: PendingStore + Sync>(
    pending: &P,
) -> Result<(), StoreError> {
    assert_eq!(pending.get_answer(REQ, CONN).await?, None);
    assert_eq!(
        pending
            .put_answer(CONN, &response(REQ, 200), NOW + 330)
            .await?,
        Written::Yes
    );
    assert_eq!(
        pending
            .put_answer(CONN, &response(REQ, 500), NOW + 999)
            .await?,
        Written::ConditionFailed,
        "exactly once"
    );
    assert_eq!(
        pending.get_answer(REQ, CONN).await?,
        Some(StoredAnswer {
            response: response(REQ, 200),
            ttl: NOW + 330,
        })
    );
    // Another request of the same connection is its own item.
    let other = "0d4e6f1c-1c8e-4b8a-9d6a-1f2e3d4c5b6a";
    assert_eq!(
        pending
            .put_answer(CONN, &response(other, 201), NOW + 330)
            .await?,
        Written::Yes
    );
    assert_eq!(
        pending
            .get_answer(other, CONN)
            .await?
            .map(|a| a.response.status_code),
        Some(201)
    );
    Ok(())
}

/// Forwarding reads the key of the connection it posted to: an answer from
/// any other connection, written first or not, is never what it reads, and
/// never blocks the real one.
pub async fn an_answer_is_read_only_under_its_connection<P: PendingStore + Sync>(
    pending: &P,
) -> Result<(), StoreError> {
    assert_eq!(
        pending
            .put_answer(OTHER, &response(REQ, 403), NOW + 330)
            .await?,
        Written::Yes,
        "another connection writes under its own key"
    );
    assert_eq!(pending.get_answer(REQ, CONN).await?, None);
    assert_eq!(
        pending
            .put_answer(CONN, &response(REQ, 200), NOW + 330)
            .await?,
        Written::Yes,
        "the forged answer does not block the real one"
    );
    assert_eq!(
        pending.get_answer(REQ, CONN).await?.map(|a| a.response),
        Some(response(REQ, 200))
    );
    assert_eq!(
        pending
            .get_answer(REQ, OTHER)
            .await?
            .map(|a| a.response.status_code),
        Some(403)
    );
    Ok(())
}

/// What the response function writes comes back as written: the TTL, an
/// uploaded body's marker (no body), and an answer as large as one
/// WebSocket message can carry.
pub async fn answers_keep_their_ttl_and_whole_response<P: PendingStore + Sync>(
    pending: &P,
) -> Result<(), StoreError> {
    let uploaded = HttpResponse {
        body: String::new(),
        body_uploaded: Some(BodyUploaded { length: 4_000_000 }),
        ..response(REQ, 200)
    };
    pending.put_answer(CONN, &uploaded, NOW + 333).await?;
    assert_eq!(
        pending.get_answer(REQ, CONN).await?,
        Some(StoredAnswer {
            response: uploaded,
            ttl: NOW + 333,
        })
    );

    let mut headers = Headers::new();
    headers.insert(
        "x-many".into(),
        (0..200).map(|i| format!("value-{i}")).collect(),
    );
    let large = HttpResponse {
        headers,
        body: protocol::encode_body(&vec![7u8; MAX_MESSAGE_BYTES / 4 * 3 - 8192]),
        ..response(REQ, 200)
    };
    pending.put_answer(OTHER, &large, NOW + 330).await?;
    assert_eq!(
        pending.get_answer(REQ, OTHER).await?.map(|a| a.response),
        Some(large)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    /// [`super::CASES`] names exactly the public functions of this file, in
    /// order: a new case cannot be missing from the lists that run it.
    #[test]
    fn cases_name_every_public_function() {
        let source = include_str!("contract.rs");
        let found: Vec<&str> = source
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .map(|rest| rest.split(['<', '(']).next().unwrap_or(rest))
            .collect();
        assert_eq!(found, super::CASES);
    }
}
