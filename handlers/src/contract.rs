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
//! - pending requests: complete exactly once and only by the connection the
//!   request was posted to, never create an item, found by connection;
//! - chunks: stored per connection (never overwritten by another), counted
//!   only for the owning connection, completion exactly once with the
//!   announced count, the response function's limits and ownership check
//!   before any chunk write, nothing counted beyond the head's count.
//!
//! Every read follows the write it checks at once: the reads the handlers
//! use are strongly consistent (a fresh tunnel must never 404).

use protocol::chunk::{BodyChunk, ChunkedBody};
use protocol::limits::{BODY_CHUNK_BYTES, MAX_BODY_BYTES, MAX_BODY_CHUNKS, MAX_REQUEST_ID_LEN};
use protocol::policy::{self, AccessPolicy, Webhook, WebhookProvider};
use protocol::{Headers, HttpResponse};

use crate::response::chunks;
use crate::store::{
    ChunkStore, Claim, Connection, ConnectionStore, Part, PendingRequest, PendingState,
    PendingStore, Progress, Receiving, StoreError, Written, claim_key,
};

/// The name of every case, in the order both implementations run them.
pub const CASES: [&str; 15] = [
    "claims_and_resume_follow_their_conditions",
    "resume_tokens_stay_valid_until_their_successor_is_presented",
    "resuming_respects_the_user",
    "reserved_subdomains_go_back_only_to_their_user",
    "the_policy_lives_with_the_claim_until_release",
    "missing_claims_are_never_created",
    "connections_round_trip_and_delete_idempotently",
    "pending_requests_complete_once_and_are_indexed_by_connection",
    "missing_pending_requests_are_never_created",
    "chunks_out_of_order_and_duplicated_complete_exactly_once",
    "chunks_from_another_connection_are_refused",
    "completion_needs_the_announced_count",
    "a_request_collecting_parts_can_still_be_failed",
    "chunks_and_heads_beyond_the_limits_are_refused",
    "chunks_are_checked_before_they_are_written",
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

fn pending_request(id: &str, conn: &str) -> PendingRequest {
    PendingRequest {
        request_id: id.into(),
        connection_id: conn.into(),
        api_gateway_request_id: "gw".into(),
        created_at: NOW,
        ttl: NOW + 330,
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
        body_chunks: None,
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

// --- pending requests table ---

pub async fn pending_requests_complete_once_and_are_indexed_by_connection<
    P: PendingStore + Sync,
>(
    pending: &P,
) -> Result<(), StoreError> {
    pending.put_pending(&pending_request("r1", "A=")).await?;
    pending.put_pending(&pending_request("r2", "A=")).await?;
    pending.put_pending(&pending_request("r3", "B=")).await?;
    assert_eq!(
        pending.get_pending("r1").await?,
        Some(PendingState::Pending)
    );
    assert_eq!(pending.get_pending("nope").await?, None);

    assert_eq!(
        pending
            .complete_pending("r1", "B=", &response("r1", 200))
            .await?,
        Written::ConditionFailed,
        "another connection may not answer"
    );
    assert_eq!(
        pending
            .complete_pending("r1", "A=", &response("r1", 200))
            .await?,
        Written::Yes
    );
    assert_eq!(
        pending
            .complete_pending("r1", "A=", &response("r1", 500))
            .await?,
        Written::ConditionFailed,
        "exactly once"
    );
    assert_eq!(
        pending
            .complete_pending("unknown", "A=", &response("unknown", 200))
            .await?,
        Written::ConditionFailed
    );
    assert_eq!(pending.get_pending("unknown").await?, None, "no upsert");
    assert_eq!(
        pending.get_pending("r1").await?,
        Some(PendingState::Completed(response("r1", 200)))
    );

    // Completed requests stay in the index until deleted.
    let mut ids = pending.pending_for_connection("A=").await?;
    ids.sort();
    assert_eq!(ids, vec!["r1", "r2"]);

    pending.delete_pending("r1").await?;
    assert_eq!(pending.get_pending("r1").await?, None);
    assert_eq!(
        pending
            .complete_pending("r1", "A=", &response("r1", 200))
            .await?,
        Written::ConditionFailed,
        "a late answer after delete does not recreate the item"
    );
    assert_eq!(pending.pending_for_connection("A=").await?, vec!["r2"]);
    Ok(())
}

pub async fn missing_pending_requests_are_never_created<P: PendingStore + Sync>(
    pending: &P,
) -> Result<(), StoreError> {
    assert_eq!(pending.get_pending(REQ).await?, None);
    pending.delete_pending(REQ).await?;
    assert_eq!(
        pending
            .complete_pending(REQ, CONN, &response(REQ, 502))
            .await?,
        Written::ConditionFailed
    );
    assert_eq!(pending.get_pending(REQ).await?, None, "no upsert");
    assert_eq!(
        pending.pending_for_connection(CONN).await?,
        Vec::<String>::new()
    );
    Ok(())
}

// --- chunked responses (pending requests table) ---

/// Bytes that differ from chunk to chunk, so a swapped or repeated chunk
/// shows (a short period would make every full chunk identical).
fn noise(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The head of a chunked response carrying a body: the response as the
/// agent sends it, its chunk spec and its JSON (what `responseData` holds).
struct Head {
    response: HttpResponse,
    spec: ChunkedBody,
    json: String,
}

impl Head {
    fn of(body: &[u8]) -> Head {
        let spec = ChunkedBody::for_length(body.len()).expect("a body within the limits");
        let mut headers = Headers::new();
        headers.insert(
            "content-type".into(),
            vec!["application/octet-stream".into()],
        );
        let response = HttpResponse {
            request_id: REQ.into(),
            status_code: 200,
            headers,
            body: String::new(),
            processing_time_ms: 3,
            body_chunks: Some(spec),
            body_uploaded: None,
        };
        let json = serde_json::to_string(&response).expect("a response serializes");
        Head {
            response,
            spec,
            json,
        }
    }

    fn part(&self) -> Part<'_> {
        Part::Head {
            json: &self.json,
            count: self.spec.count,
        }
    }
}

/// What the response function does with a `body_chunk` from `conn`: write
/// the chunk item, then add its index to the head item.
async fn deliver<P: ChunkStore + Sync>(
    store: &P,
    conn: &str,
    index: u32,
    data: &[u8],
) -> Result<Option<Progress>, StoreError> {
    assert_eq!(
        store.put_chunk(REQ, conn, index, data, NOW + 2000).await?,
        Written::Yes,
        "chunk {index}"
    );
    store.add_part(REQ, conn, Part::Chunk(index)).await
}

fn progress(parts: usize, count: Option<u32>) -> Option<Progress> {
    Some(Progress { parts, count })
}

pub async fn chunks_out_of_order_and_duplicated_complete_exactly_once<
    P: PendingStore + ChunkStore + Sync,
>(
    store: &P,
) -> Result<(), StoreError> {
    store.put_pending(&pending_request(REQ, CONN)).await?;
    let bytes = noise(3 * BODY_CHUNK_BYTES + 5);
    let pieces: Vec<&[u8]> = bytes.chunks(BODY_CHUNK_BYTES).collect();
    let head = Head::of(&bytes);
    let spec = head.spec;
    assert_eq!(spec.count, 4);

    // 3, 1, head, 1 again, 0: ADD to a number set ignores the duplicate.
    assert_eq!(deliver(store, CONN, 3, pieces[3]).await?, progress(1, None));
    assert_eq!(deliver(store, CONN, 1, pieces[1]).await?, progress(2, None));
    assert_eq!(
        store.add_part(REQ, CONN, head.part()).await?,
        progress(3, Some(4))
    );
    assert_eq!(
        deliver(store, CONN, 1, pieces[1]).await?,
        progress(3, Some(4)),
        "a duplicate chunk adds nothing"
    );
    assert_eq!(
        deliver(store, CONN, 0, pieces[0]).await?,
        progress(4, Some(4))
    );
    assert_eq!(
        store.complete_chunked(REQ, CONN, spec.count).await?,
        Written::ConditionFailed,
        "chunk 2 is missing: size(receivedParts) is short"
    );
    assert_eq!(store.get_pending(REQ).await?, Some(PendingState::Pending));

    // Two invocations carrying chunk 2 both ADD before either completes (the
    // race, forced into this order rather than left to timing): both see the
    // complete set, only one of them completes the request.
    let first = deliver(store, CONN, 2, pieces[2]).await?;
    let second = deliver(store, CONN, 2, pieces[2]).await?;
    assert_eq!(first, progress(5, Some(4)));
    assert_eq!(second, progress(5, Some(4)));
    assert!(first.is_some_and(|p| p.is_complete()));
    let outcomes = [
        store.complete_chunked(REQ, CONN, spec.count).await?,
        store.complete_chunked(REQ, CONN, spec.count).await?,
    ];
    assert_eq!(outcomes, [Written::Yes, Written::ConditionFailed]);

    // Late duplicates no longer reach the head item.
    assert_eq!(
        store.add_part(REQ, CONN, Part::Chunk(2)).await?,
        None,
        "completed: a late chunk is not added"
    );
    assert_eq!(store.add_part(REQ, CONN, head.part()).await?, None);
    assert_eq!(
        store.put_chunk(REQ, CONN, 2, pieces[2], NOW + 2000).await?,
        Written::Yes,
        "the owner may rewrite its own chunk item (same bytes)"
    );

    // What forwarding reads: the head as sent, the chunks byte for byte.
    assert_eq!(
        store.get_pending(REQ).await?,
        Some(PendingState::Completed(head.response))
    );
    let mut read = store.get_chunks(REQ, CONN, spec.count).await?;
    read.sort_by_key(|(i, _)| *i);
    assert_eq!(
        read.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    for (i, data) in &read {
        assert!(data == pieces[*i as usize], "chunk {i} differs");
    }
    let assembled = protocol::chunk::assemble(spec, read).expect("every chunk is there");
    assert!(assembled == bytes, "the assembled body differs");
    Ok(())
}

pub async fn chunks_from_another_connection_are_refused<P: PendingStore + ChunkStore + Sync>(
    store: &P,
) -> Result<(), StoreError> {
    store.put_pending(&pending_request(REQ, CONN)).await?;
    let bytes = noise(2 * BODY_CHUNK_BYTES);
    let pieces: Vec<&[u8]> = bytes.chunks(BODY_CHUNK_BYTES).collect();
    let head = Head::of(&bytes);
    let spec = head.spec;

    assert_eq!(deliver(store, CONN, 0, pieces[0]).await?, progress(1, None));
    assert_eq!(
        store
            .put_chunk(REQ, OTHER, 0, b"forged", NOW + 2000)
            .await?,
        Written::ConditionFailed,
        "another connection cannot overwrite a chunk"
    );
    // A free key is written, but it never counts for a request posted to
    // another connection, and nobody else can complete or answer it.
    assert_eq!(
        store
            .put_chunk(REQ, OTHER, 1, b"forged", NOW + 2000)
            .await?,
        Written::Yes
    );
    assert_eq!(store.add_part(REQ, OTHER, Part::Chunk(1)).await?, None);
    assert_eq!(store.add_part(REQ, OTHER, head.part()).await?, None);
    assert_eq!(
        store.complete_chunked(REQ, OTHER, spec.count).await?,
        Written::ConditionFailed
    );
    // The owner's chunk 1 is refused too (the slot is taken): the request
    // times out instead of completing with forged bytes.
    assert_eq!(
        store.put_chunk(REQ, CONN, 1, pieces[1], NOW + 2000).await?,
        Written::ConditionFailed
    );
    assert_eq!(
        store.add_part(REQ, CONN, head.part()).await?,
        progress(2, Some(2))
    );
    assert_eq!(store.get_pending(REQ).await?, Some(PendingState::Pending));

    // Reading keeps only the chunks of the connection forwarding posted to.
    assert_eq!(
        store.get_chunks(REQ, CONN, spec.count).await?,
        [(0, pieces[0].to_vec())]
    );
    assert_eq!(
        store.get_chunks(REQ, OTHER, spec.count).await?,
        [(1, b"forged".to_vec())]
    );

    // No upsert: parts for an unknown or deleted request create nothing.
    assert_eq!(store.add_part("unknown", CONN, Part::Chunk(0)).await?, None);
    assert_eq!(store.get_pending("unknown").await?, None);
    store.delete_pending(REQ).await?;
    assert_eq!(store.add_part(REQ, CONN, Part::Chunk(0)).await?, None);
    assert_eq!(store.get_pending(REQ).await?, None);
    Ok(())
}

/// Completion checks the count the head announced, not only the number of
/// parts.
pub async fn completion_needs_the_announced_count<P: PendingStore + ChunkStore + Sync>(
    store: &P,
) -> Result<(), StoreError> {
    store.put_pending(&pending_request(REQ, CONN)).await?;
    let bytes = noise(2 * BODY_CHUNK_BYTES);
    let head = Head::of(&bytes);
    let spec = head.spec;
    assert_eq!(
        store.add_part(REQ, CONN, head.part()).await?,
        progress(1, Some(2))
    );
    assert_eq!(
        deliver(store, CONN, 0, &bytes[..BODY_CHUNK_BYTES]).await?,
        progress(2, Some(2))
    );
    assert_eq!(
        store.complete_chunked(REQ, CONN, 1).await?,
        Written::ConditionFailed,
        "two parts, but the head announced two chunks, not one"
    );
    assert_eq!(store.get_pending(REQ).await?, Some(PendingState::Pending));
    assert_eq!(
        deliver(store, CONN, 1, &bytes[BODY_CHUNK_BYTES..]).await?,
        progress(3, Some(2))
    );
    assert_eq!(
        store.complete_chunked(REQ, CONN, spec.count).await?,
        Written::Yes
    );
    assert_eq!(
        store.get_pending(REQ).await?,
        Some(PendingState::Completed(head.response))
    );
    Ok(())
}

/// A request whose parts are still arriving can be failed outright (an
/// impossible head, `$disconnect`): the failure replaces the head, and the
/// parts still to come change nothing.
pub async fn a_request_collecting_parts_can_still_be_failed<P: PendingStore + ChunkStore + Sync>(
    store: &P,
) -> Result<(), StoreError> {
    store.put_pending(&pending_request(REQ, CONN)).await?;
    let bytes = noise(BODY_CHUNK_BYTES + 1);
    let head = Head::of(&bytes);
    let spec = head.spec;
    assert_eq!(
        store.add_part(REQ, CONN, head.part()).await?,
        progress(1, Some(2))
    );
    assert_eq!(
        deliver(store, CONN, 0, &bytes[..BODY_CHUNK_BYTES]).await?,
        progress(2, Some(2))
    );
    let failed = response(REQ, 502);
    assert_eq!(
        store.complete_pending(REQ, CONN, &failed).await?,
        Written::Yes
    );
    assert_eq!(
        store.add_part(REQ, CONN, Part::Chunk(1)).await?,
        None,
        "completed: no more parts"
    );
    assert_eq!(
        store.complete_chunked(REQ, CONN, spec.count).await?,
        Written::ConditionFailed
    );
    assert_eq!(
        store.get_pending(REQ).await?,
        Some(PendingState::Completed(failed))
    );
    Ok(())
}

/// The store does not bound chunk indexes or sizes itself: the response
/// function does before any write (checked here against the store), and
/// fails an impossible head at once, owner-checked.
pub async fn chunks_and_heads_beyond_the_limits_are_refused<P: PendingStore + ChunkStore + Sync>(
    store: &P,
) -> Result<(), StoreError> {
    store.put_pending(&pending_request(REQ, CONN)).await?;

    let long_id = "r".repeat(MAX_REQUEST_ID_LEN + 1);
    let refused = [
        BodyChunk {
            request_id: REQ.into(),
            index: MAX_BODY_CHUNKS as u32,
            data: protocol::encode_body(b"x"),
        },
        BodyChunk {
            request_id: REQ.into(),
            index: 0,
            data: protocol::encode_body(&noise(BODY_CHUNK_BYTES + 3)),
        },
        BodyChunk {
            request_id: long_id.clone(),
            index: 0,
            data: protocol::encode_body(b"x"),
        },
    ];
    for chunk in refused {
        let (request_id, index) = (chunk.request_id.clone(), chunk.index);
        chunks::on_chunk(store, CONN, chunk).await?;
        assert!(
            store
                .get_chunks(&request_id, CONN, index + 1)
                .await?
                .is_empty(),
            "chunk {index} of {request_id} was written"
        );
    }
    // Nothing was counted: the head is the first part.
    let bytes = noise(BODY_CHUNK_BYTES + 1);
    let head = Head::of(&bytes);
    let spec = head.spec;
    assert_eq!(
        store.add_part(REQ, CONN, head.part()).await?,
        progress(1, Some(spec.count)),
        "a refused chunk was counted"
    );

    let impossible = ChunkedBody {
        count: MAX_BODY_CHUNKS as u32 + 1,
        length: MAX_BODY_BYTES as u64 + 1,
    };
    let head = HttpResponse {
        body: String::new(),
        body_chunks: Some(impossible),
        ..response(REQ, 200)
    };
    chunks::on_head(store, OTHER, head.clone(), impossible).await?;
    assert_eq!(
        store.get_pending(REQ).await?,
        Some(PendingState::Pending),
        "another connection's impossible head does not fail the request"
    );
    chunks::on_head(store, CONN, head, impossible).await?;
    let Some(PendingState::Completed(failed)) = store.get_pending(REQ).await? else {
        panic!("an impossible head from the owner fails the request at once");
    };
    assert_eq!(failed.status_code, 502);
    assert_eq!(failed.body_chunks, None);
    Ok(())
}

/// The response function reads the head item before it writes a chunk:
/// nothing is written for a request that is unknown, another connection's
/// or finished, or beyond the count the head declared; and the store itself
/// never counts a chunk beyond that count.
pub async fn chunks_are_checked_before_they_are_written<P: PendingStore + ChunkStore + Sync>(
    store: &P,
) -> Result<(), StoreError> {
    let bytes = noise(BODY_CHUNK_BYTES + 1);
    let pieces: Vec<&[u8]> = bytes.chunks(BODY_CHUNK_BYTES).collect();
    let head = Head::of(&bytes);
    let chunk = |request_id: &str, index: u32| BodyChunk {
        request_id: request_id.into(),
        index,
        data: protocol::encode_body(pieces[index as usize % 2]),
    };
    assert_eq!(store.receiving(REQ, CONN).await?, None, "unknown request");
    chunks::on_chunk(store, CONN, chunk(REQ, 0)).await?;
    assert!(
        store.get_chunks(REQ, CONN, 2).await?.is_empty(),
        "a chunk for an unknown request was written"
    );

    store.put_pending(&pending_request(REQ, CONN)).await?;
    assert_eq!(
        store.receiving(REQ, CONN).await?,
        Some(Receiving { count: None })
    );
    assert_eq!(store.receiving(REQ, OTHER).await?, None);
    chunks::on_chunk(store, OTHER, chunk(REQ, 1)).await?;
    assert!(
        store.get_chunks(REQ, OTHER, 2).await?.is_empty(),
        "another connection's chunk was written"
    );

    assert_eq!(
        store.add_part(REQ, CONN, head.part()).await?,
        progress(1, Some(2))
    );
    assert_eq!(
        store.receiving(REQ, CONN).await?,
        Some(Receiving { count: Some(2) })
    );
    chunks::on_chunk(store, CONN, chunk(REQ, 2)).await?;
    assert!(
        store.get_chunks(REQ, CONN, 3).await?.is_empty(),
        "a chunk beyond the head's count was written"
    );
    assert_eq!(
        store.add_part(REQ, CONN, Part::Chunk(2)).await?,
        None,
        "the store does not count a chunk beyond the head's count"
    );

    // The owner's chunks within the count go through and complete it.
    chunks::on_chunk(store, CONN, chunk(REQ, 0)).await?;
    chunks::on_chunk(store, CONN, chunk(REQ, 1)).await?;
    assert_eq!(
        store.get_pending(REQ).await?,
        Some(PendingState::Completed(head.response))
    );
    assert_eq!(
        store.receiving(REQ, CONN).await?,
        None,
        "a completed request takes no more chunks"
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
