//! The handlers' DynamoDB stores (`handlers::store::dynamo`) against the harness's
//! real DynamoDB API (moto or LocalStack, see `ITEST_DYNAMODB`): expressions,
//! reserved words, conditions, the index, and the chunk items of chunked
//! responses. The in-crate tests of `tunnel-handlers` use fakes; these check
//! that the expressions the fakes stand for do the same on DynamoDB.
//!
//! Every test creates the manifest's tables under its own prefix, so the
//! tests share one backend, run in parallel and in any order.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use handlers::response::chunks;
use handlers::store::dynamo::{DynamoConnectionStore, DynamoPendingStore};
use handlers::store::{
    ChunkStore, Claim, Connection, ConnectionStore, Part, PendingRequest, PendingState,
    PendingStore, Progress, Written, chunk_key,
};
use itest::{DynamoDb, Tables};
use protocol::chunk::{BodyChunk, ChunkedBody};
use protocol::limits::{BODY_CHUNK_BYTES, MAX_BODY_BYTES, MAX_BODY_CHUNKS, MAX_REQUEST_ID_LEN};
use protocol::{Headers, HttpResponse};

const NOW: i64 = 1_764_000_000;
const CONN: &str = "L0SM9cOFvHcCIhw=";
const OTHER: &str = "Other0000000AA=";
const REQ: &str = "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a";

/// Fresh tables on the shared backend, and stores on them.
struct Fixture {
    client: Client,
    tables: Tables,
}

impl Fixture {
    async fn new() -> anyhow::Result<Fixture> {
        let client = DynamoDb::shared().await?.client();
        let tables = Tables::create(&client, &Tables::unique_prefix()).await?;
        Ok(Fixture { client, tables })
    }

    fn connections(&self) -> DynamoConnectionStore {
        DynamoConnectionStore::new(
            self.client.clone(),
            self.tables.name(handlers::manifest::CONNECTIONS.role),
        )
    }

    fn pending(&self) -> DynamoPendingStore {
        DynamoPendingStore::new(
            self.client.clone(),
            self.tables.name(handlers::manifest::PENDING_REQUESTS.role),
        )
    }

    /// The raw item of the pending requests table under `key`, read
    /// consistently (to see what a store call wrote, or did not).
    async fn pending_item(
        &self,
        key: &str,
    ) -> anyhow::Result<Option<HashMap<String, AttributeValue>>> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.pending())
            .key("requestId", AttributeValue::S(key.into()))
            .consistent_read(true)
            .send()
            .await?;
        Ok(out.item)
    }

    /// Best effort, for long-lived endpoints; a failing test leaves its tables.
    async fn delete(self) {
        self.tables.delete(&self.client).await;
    }
}

fn claim(owner: &str, ttl: i64) -> Claim {
    Claim {
        subdomain: "abc".into(),
        owner_connection_id: owner.into(),
        created_at: NOW,
        ttl,
        resume_token_hash: Some(format!("hash-{owner}")),
        owner_user: None,
        released_at: None,
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
    }
}

#[tokio::test]
async fn claims_and_resume_follow_their_conditions() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let conns = fx.connections();

    // Claims: conditional put, expiry takeover, owner-only release.
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

    // Resume: only with the stored hash, within the window; the hash rotates.
    let mut resumed = claim("D=", NOW + 7500);
    resumed.resume_token_hash = Some("hash-D=".into());
    assert_eq!(
        conns
            .resume_claim(&resumed, "hash-wrong", NOW + 300)
            .await?,
        Written::ConditionFailed
    );
    assert_eq!(
        conns.resume_claim(&resumed, "hash-B=", NOW + 801).await?,
        Written::ConditionFailed,
        "the window is over"
    );
    assert_eq!(
        conns.resume_claim(&resumed, "hash-B=", NOW + 300).await?,
        Written::Yes
    );
    assert_eq!(conns.get_claim("abc").await?, Some(resumed));
    assert_eq!(
        conns
            .resume_claim(&claim("E=", NOW + 7500), "hash-B=", NOW + 300)
            .await?,
        Written::ConditionFailed,
        "a resume token works once"
    );
    fx.delete().await;
    Ok(())
}

#[tokio::test]
async fn reserved_subdomains_go_back_only_to_their_user() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let conns = fx.connections();
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
    fx.delete().await;
    Ok(())
}

#[tokio::test]
async fn connections_round_trip_and_delete_idempotently() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let conns = fx.connections();
    let connection = Connection {
        connection_id: CONN.into(),
        public_subdomain: "abc".into(),
        public_url: "https://abc.tunnel.example.com".into(),
        created_at: NOW,
        ttl: NOW + 7500,
        agent_version: Some("0.3.1".into()),
        agent_platform: None,
        source_ip: Some("203.0.113.7".into()),
        resume_token: Some("abc.token".into()),
    };
    conns.put_connection(&connection).await?;
    assert_eq!(
        conns.get_connection(&connection.connection_id).await?,
        Some(connection.clone())
    );
    conns.delete_connection(&connection.connection_id).await?;
    conns.delete_connection(&connection.connection_id).await?;
    assert_eq!(conns.get_connection(&connection.connection_id).await?, None);
    fx.delete().await;
    Ok(())
}

#[tokio::test]
async fn pending_requests_complete_once_and_are_indexed_by_connection() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let pending = fx.pending();
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
    fx.delete().await;
    Ok(())
}

/// Bytes that differ from chunk to chunk, so a swapped or repeated chunk
/// shows (a short period would make every full chunk identical).
fn noise(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The head of a chunked response carrying `body`, and its JSON.
fn chunked_head(body: &[u8]) -> anyhow::Result<(HttpResponse, ChunkedBody, String)> {
    let spec = ChunkedBody::for_length(body.len())?;
    let mut headers = Headers::new();
    headers.insert(
        "content-type".into(),
        vec!["application/octet-stream".into()],
    );
    let head = HttpResponse {
        request_id: REQ.into(),
        status_code: 200,
        headers,
        body: String::new(),
        processing_time_ms: 3,
        body_chunks: Some(spec),
    };
    let json = serde_json::to_string(&head)?;
    Ok((head, spec, json))
}

/// What the response function does with a `body_chunk` from `conn`: write
/// the chunk item, then add its index to the head item.
async fn deliver(
    store: &DynamoPendingStore,
    conn: &str,
    index: u32,
    data: &[u8],
) -> anyhow::Result<Option<Progress>> {
    assert_eq!(
        store.put_chunk(REQ, conn, index, data, NOW + 2000).await?,
        Written::Yes,
        "chunk {index}"
    );
    Ok(store.add_part(REQ, conn, Part::Chunk(index)).await?)
}

fn progress(parts: usize, count: Option<u32>) -> Option<Progress> {
    Some(Progress { parts, count })
}

#[tokio::test]
async fn chunks_out_of_order_and_duplicated_complete_exactly_once() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let store = fx.pending();
    store.put_pending(&pending_request(REQ, CONN)).await?;
    let bytes = noise(3 * BODY_CHUNK_BYTES + 5);
    let pieces: Vec<&[u8]> = bytes.chunks(BODY_CHUNK_BYTES).collect();
    let (head, spec, json) = chunked_head(&bytes)?;
    assert_eq!(spec.count, 4);
    let head_part = Part::Head {
        json: &json,
        count: spec.count,
    };

    // 3, 1, head, 1 again, 0: ADD to a number set ignores the duplicate.
    assert_eq!(
        deliver(&store, CONN, 3, pieces[3]).await?,
        progress(1, None)
    );
    assert_eq!(
        deliver(&store, CONN, 1, pieces[1]).await?,
        progress(2, None)
    );
    assert_eq!(
        store.add_part(REQ, CONN, head_part).await?,
        progress(3, Some(4))
    );
    assert_eq!(
        deliver(&store, CONN, 1, pieces[1]).await?,
        progress(3, Some(4)),
        "a duplicate chunk adds nothing"
    );
    assert_eq!(
        deliver(&store, CONN, 0, pieces[0]).await?,
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
    let first = deliver(&store, CONN, 2, pieces[2]).await?;
    let second = deliver(&store, CONN, 2, pieces[2]).await?;
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
    assert_eq!(store.add_part(REQ, CONN, head_part).await?, None);
    assert_eq!(
        store.put_chunk(REQ, CONN, 2, pieces[2], NOW + 2000).await?,
        Written::Yes,
        "the owner may rewrite its own chunk item (same bytes)"
    );

    // What forwarding reads: the head as sent, the chunks byte for byte.
    assert_eq!(
        store.get_pending(REQ).await?,
        Some(PendingState::Completed(head))
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
    let assembled = protocol::chunk::assemble(spec, read)?;
    assert!(assembled == bytes, "the assembled body differs");
    fx.delete().await;
    Ok(())
}

#[tokio::test]
async fn chunks_from_another_connection_are_refused() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let store = fx.pending();
    store.put_pending(&pending_request(REQ, CONN)).await?;
    let bytes = noise(2 * BODY_CHUNK_BYTES);
    let pieces: Vec<&[u8]> = bytes.chunks(BODY_CHUNK_BYTES).collect();
    let (_, spec, json) = chunked_head(&bytes)?;
    let head_part = Part::Head {
        json: &json,
        count: spec.count,
    };

    assert_eq!(
        deliver(&store, CONN, 0, pieces[0]).await?,
        progress(1, None)
    );
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
    assert_eq!(store.add_part(REQ, OTHER, head_part).await?, None);
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
        store.add_part(REQ, CONN, head_part).await?,
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
    fx.delete().await;
    Ok(())
}

/// The store does not bound chunk indexes or sizes itself: the response
/// function does before any write (checked here against the real store),
/// and fails an impossible head at once, owner-checked.
#[tokio::test]
async fn chunks_and_heads_beyond_the_limits_are_refused() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let store = fx.pending();
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
        let key = chunk_key(&chunk.request_id, chunk.index);
        chunks::on_chunk(&store, CONN, chunk).await?;
        assert_eq!(fx.pending_item(&key).await?, None, "{key} was written");
    }
    let head_item = fx.pending_item(REQ).await?.expect("the request exists");
    assert!(
        !head_item.contains_key("receivedParts"),
        "a refused chunk was counted: {head_item:?}"
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
    chunks::on_head(&store, OTHER, head.clone(), impossible).await?;
    assert_eq!(
        store.get_pending(REQ).await?,
        Some(PendingState::Pending),
        "another connection's impossible head does not fail the request"
    );
    chunks::on_head(&store, CONN, head, impossible).await?;
    let Some(PendingState::Completed(failed)) = store.get_pending(REQ).await? else {
        panic!("an impossible head from the owner fails the request at once");
    };
    assert_eq!(failed.status_code, 502);
    assert_eq!(failed.body_chunks, None);
    fx.delete().await;
    Ok(())
}
