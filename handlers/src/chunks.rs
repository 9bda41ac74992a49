//! Bodies beyond one WebSocket message (see `protocol::chunk`): storing a
//! chunked response as it arrives, and the store interface for it.
//!
//! # Storage (pending requests table)
//!
//! - Each response chunk is its own item, `requestId = "<id>#<index>"`, with
//!   `chunkOwner` (the connection that sent it), `chunkData` (B, the decoded
//!   bytes: a quarter smaller than base64, so fewer write units) and `ttl`. At
//!   most `BODY_CHUNK_BYTES` (97,536) bytes of data: far below the 400 KB item
//!   limit. The owner is not stored as `connectionId` so chunk items stay out
//!   of the `connectionId-index` (a GSI write per chunk would cost extra and
//!   `$disconnect` would walk them as if they were requests).
//! - The head item (forwarding's pending item) collects progress:
//!   `receivedParts` (NS) gets the chunk's index, or [`HEAD_PART`] for the
//!   head, with `ADD` under `connectionId = :conn AND #status = :pending`; the
//!   head also sets `responseData` (the head's JSON) and `chunkCount`. `ADD`
//!   to a set is idempotent, so a duplicate changes nothing.
//! - Whoever's `ADD` returns a complete set (head present, `chunkCount + 1`
//!   parts) flips `status` to `completed` under
//!   `#status = :pending AND size(receivedParts) = :parts`: exactly one
//!   writer wins, whatever the order or concurrency of the invocations.
//! - Forwarding, seeing `completed` with `body_chunks` in the head, reads the
//!   chunk items with one strongly consistent `BatchGetItem` (48 keys at most)
//!   and keeps only those of the connection it posted to.
//!
//! # Reclaiming
//!
//! Chunk items are left to TTL, never deleted: a DeleteItem is billed by the
//! size of the deleted item (about 96 write units for a full chunk), while TTL
//! deletion is free and the storage of even a full chunk for the two days TTL
//! may take costs about a millionth of a dollar. The small head item is still
//! deleted by forwarding (one write unit), which also makes late parts fail
//! their condition.

use std::future::Future;

use protocol::chunk::{BodyChunk, ChunkedBody};
use protocol::limits::{MAX_REQUEST_ID_LEN, MAX_REQUEST_TIMEOUT, TTL_SLACK};
use protocol::{ErrorCode, HttpResponse};
use tracing::{debug, info, warn};

use crate::store::{PendingStore, StoreError, Written};

/// The member of `receivedParts` that stands for the head (chunks are 0..n).
pub const HEAD_PART: i64 = -1;

/// The key of chunk `index` of `request_id`: `#` never occurs in a UUID.
pub fn chunk_key(request_id: &str, index: u32) -> String {
    format!("{request_id}#{index}")
}

/// What the head item looks like after a part was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Members of `receivedParts` (head and chunks).
    pub parts: usize,
    /// `chunkCount`, once the head has arrived.
    pub count: Option<u32>,
}

impl Progress {
    /// The head and all its chunks are in.
    pub fn is_complete(&self) -> bool {
        self.count.is_some_and(|n| self.parts == n as usize + 1)
    }
}

/// One part of a chunked response.
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// The head: its JSON (`HttpResponse` with `body_chunks`) and chunk count.
    Head {
        json: &'a str,
        count: u32,
    },
    Chunk(u32),
}

/// The pending requests table, for chunked bodies.
pub trait ChunkStore {
    /// PutItem chunk `index` unless another connection already wrote that key.
    fn put_chunk(
        &self,
        request_id: &str,
        connection_id: &str,
        index: u32,
        data: &[u8],
        ttl: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// UpdateItem the head item: ADD the part to `receivedParts` (and, for the
    /// head, SET `responseData` and `chunkCount`) if the request exists, is
    /// pending and was posted to `connection_id`. Returns the new progress.
    fn add_part(
        &self,
        request_id: &str,
        connection_id: &str,
        part: Part<'_>,
    ) -> impl Future<Output = Result<Option<Progress>, StoreError>> + Send;

    /// UpdateItem `status` to `completed` if still pending, owned by
    /// `connection_id` and holding exactly `count + 1` parts.
    fn complete_chunked(
        &self,
        request_id: &str,
        connection_id: &str,
        count: u32,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// BatchGetItem (consistent) chunks `0..count` written by `connection_id`:
    /// `(index, bytes)` in any order; missing ones are simply absent.
    fn get_chunks(
        &self,
        request_id: &str,
        connection_id: &str,
        count: u32,
    ) -> impl Future<Output = Result<Vec<(u32, Vec<u8>)>, StoreError>> + Send;
}

impl<C: Sync, P: ChunkStore + Sync> ChunkStore for crate::store::Stores<C, P> {
    fn put_chunk(
        &self,
        request_id: &str,
        connection_id: &str,
        index: u32,
        data: &[u8],
        ttl: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send {
        self.pending
            .put_chunk(request_id, connection_id, index, data, ttl)
    }
    fn add_part(
        &self,
        request_id: &str,
        connection_id: &str,
        part: Part<'_>,
    ) -> impl Future<Output = Result<Option<Progress>, StoreError>> + Send {
        self.pending.add_part(request_id, connection_id, part)
    }
    fn complete_chunked(
        &self,
        request_id: &str,
        connection_id: &str,
        count: u32,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send {
        self.pending
            .complete_chunked(request_id, connection_id, count)
    }
    fn get_chunks(
        &self,
        request_id: &str,
        connection_id: &str,
        count: u32,
    ) -> impl Future<Output = Result<Vec<(u32, Vec<u8>)>, StoreError>> + Send {
        self.pending.get_chunks(request_id, connection_id, count)
    }
}

/// The head of a chunked response (`http_response` with `body_chunks`).
pub async fn on_head<S: ChunkStore + PendingStore + Sync>(
    store: &S,
    connection_id: &str,
    response: HttpResponse,
    head: ChunkedBody,
) -> Result<(), StoreError> {
    if let Err(e) = head.validate() {
        warn!(error = %e, count = head.count, length = head.length, "chunked response head rejected");
        return reject(store, connection_id, &response.request_id).await;
    }
    if !response.body.is_empty() {
        warn!("chunked response head with a body rejected");
        return reject(store, connection_id, &response.request_id).await;
    }
    let json = serde_json::to_string(&response).map_err(|source| StoreError::ResponseJson {
        key: response.request_id.clone(),
        source,
    })?;
    let part = Part::Head {
        json: &json,
        count: head.count,
    };
    add_and_maybe_complete(store, connection_id, &response.request_id, part).await
}

/// A `body_chunk` from the agent.
pub async fn on_chunk<S: ChunkStore + Sync>(
    store: &S,
    connection_id: &str,
    chunk: BodyChunk,
) -> Result<(), StoreError> {
    if chunk.request_id.is_empty() || chunk.request_id.len() > MAX_REQUEST_ID_LEN {
        warn!(
            len = chunk.request_id.len(),
            "body chunk with an impossible request id dropped"
        );
        return Ok(());
    }
    // Before the head is known only the ceiling applies; the head then
    // bounds the count (completion needs exactly count + 1 parts, and
    // forwarding reads only 0..count).
    let data = match chunk.decode(None) {
        Ok(data) => data,
        Err(e) => {
            warn!(error = %e, index = chunk.index, "body chunk dropped");
            return Ok(());
        }
    };
    let ttl = crate::now_secs() + (MAX_REQUEST_TIMEOUT + TTL_SLACK).as_secs() as i64;
    match store
        .put_chunk(&chunk.request_id, connection_id, chunk.index, &data, ttl)
        .await?
    {
        Written::Yes => {}
        Written::ConditionFailed => {
            warn!(
                index = chunk.index,
                "body chunk dropped: another connection wrote this chunk (forged or misrouted)"
            );
            return Ok(());
        }
    }
    add_and_maybe_complete(
        store,
        connection_id,
        &chunk.request_id,
        Part::Chunk(chunk.index),
    )
    .await
}

async fn add_and_maybe_complete<S: ChunkStore + Sync>(
    store: &S,
    connection_id: &str,
    request_id: &str,
    part: Part<'_>,
) -> Result<(), StoreError> {
    let what = match part {
        Part::Head { .. } => "head".to_string(),
        Part::Chunk(i) => format!("chunk {i}"),
    };
    let Some(progress) = store.add_part(request_id, connection_id, part).await? else {
        warn!(
            part = %what,
            "dropped: the request is unknown, already completed or timed out, or was sent to another connection"
        );
        return Ok(());
    };
    debug!(part = %what, parts = progress.parts, count = ?progress.count, "response part stored");
    if let (true, Some(count)) = (progress.is_complete(), progress.count) {
        match store
            .complete_chunked(request_id, connection_id, count)
            .await?
        {
            Written::Yes => info!(chunks = count, "chunked response completed"),
            // Another invocation saw the same complete set and won.
            Written::ConditionFailed => debug!("completion already done by another part"),
        }
    }
    Ok(())
}

/// Completes the request with a 502 (owner-checked) so the visitor does not
/// wait for a body that will never be assembled.
async fn reject<S: PendingStore + Sync>(
    store: &S,
    connection_id: &str,
    request_id: &str,
) -> Result<(), StoreError> {
    let response = crate::response::error_response(
        request_id,
        ErrorCode::PayloadTooLarge,
        "the agent announced a body the tunnel cannot carry",
    );
    store
        .complete_pending(request_id, connection_id, &response)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
    use std::sync::Arc;

    use protocol::limits::{BODY_CHUNK_BYTES, MAX_BODY_BYTES, MAX_BODY_CHUNKS};
    use protocol::{Message, encode_body};

    use super::*;
    use crate::manifest;
    use crate::response::handle;
    use crate::testing::{Fake, response_config, ws_event};
    use crate::websocket::WebsocketResponse;

    const CONN: &str = "L0SM9cOFvHcCIhw=";
    const OTHER: &str = "Other0000000AA=";
    const REQ: &str = "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a";

    fn event(connection_id: &str, message: &Message) -> ApiGatewayWebsocketProxyRequest {
        let mut event = ws_event("response-ready.json");
        event.request_context.connection_id = Some(connection_id.into());
        event.body = Some(message.to_json().unwrap());
        event
    }

    async fn send(fake: &Fake, connection_id: &str, message: &Message) {
        let r = handle(
            &response_config(),
            fake,
            fake,
            event(connection_id, message),
        )
        .await;
        assert_eq!(r, WebsocketResponse::OK);
        fake.assert_within(&manifest::RESPONSE);
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 % 256) as u8).collect()
    }

    /// The head and chunk messages of a response with `body`.
    fn parts(body: &[u8]) -> (Message, Vec<Message>) {
        let mut head = crate::response::text_response(REQ, 200, "");
        head.body = String::new();
        head.body_chunks = Some(ChunkedBody::for_length(body.len()).unwrap());
        let chunks = protocol::chunk::split(REQ, body)
            .into_iter()
            .map(Message::BodyChunk)
            .collect();
        (Message::HttpResponse(head), chunks)
    }

    /// What forwarding would read back once completed.
    async fn stored_body(fake: &Fake, count: u32) -> Vec<u8> {
        let chunks = fake.get_chunks(REQ, CONN, count).await.unwrap();
        let done = fake.pending(REQ).unwrap().completed.expect("completed");
        protocol::chunk::assemble(done.body_chunks.unwrap(), chunks).unwrap()
    }

    #[tokio::test]
    async fn chunks_in_any_order_with_duplicates_complete_exactly_once() {
        let fake = Fake::default();
        fake.insert_pending(REQ, CONN);
        let bytes = body(3 * BODY_CHUNK_BYTES + 5);
        let (head, chunks) = parts(&bytes);
        // 3, 1, head, 1 again, 0 — not complete yet.
        for m in [&chunks[3], &chunks[1], &head, &chunks[1], &chunks[0]] {
            send(&fake, CONN, m).await;
        }
        assert!(fake.pending(REQ).unwrap().completed.is_none());
        send(&fake, CONN, &chunks[2]).await;
        assert_eq!(fake.chunk_completions(), 1);
        // Duplicates after completion change nothing.
        send(&fake, CONN, &chunks[2]).await;
        send(&fake, CONN, &head).await;
        assert_eq!(fake.chunk_completions(), 1);
        assert_eq!(fake.chunk_items(), 4);
        assert_eq!(stored_body(&fake, 4).await, bytes);
    }

    #[tokio::test]
    async fn concurrent_parts_complete_exactly_once() {
        for rotation in 0..6 {
            let fake = Arc::new(Fake::default());
            fake.insert_pending(REQ, CONN);
            let bytes = body(4 * BODY_CHUNK_BYTES);
            let (head, chunks) = parts(&bytes);
            let mut all: Vec<Message> = chunks.iter().cloned().chain([head]).collect();
            all.extend(chunks.iter().rev().cloned()); // every chunk twice
            all.rotate_left(rotation);
            // One task per invocation; the fake yields inside every call,
            // so their store calls interleave.
            let mut tasks = tokio::task::JoinSet::new();
            for m in all {
                let fake = Arc::clone(&fake);
                tasks.spawn(async move { send(&fake, CONN, &m).await });
            }
            while let Some(joined) = tasks.join_next().await {
                joined.unwrap();
            }
            assert_eq!(fake.chunk_completions(), 1, "rotation {rotation}");
            assert_eq!(stored_body(&fake, 4).await, bytes);
        }
    }

    #[tokio::test]
    async fn a_forged_chunk_from_another_connection_is_dropped() {
        let fake = Fake::default();
        fake.insert_pending(REQ, CONN);
        let bytes = body(2 * BODY_CHUNK_BYTES);
        let (head, chunks) = parts(&bytes);
        send(&fake, CONN, &chunks[0]).await;
        // Same index, other bytes, other connection: cannot overwrite.
        let forged = Message::BodyChunk(BodyChunk {
            request_id: REQ.into(),
            index: 0,
            data: encode_body(b"forged"),
        });
        send(&fake, OTHER, &forged).await;
        assert_eq!(fake.chunk_item(REQ, 0).unwrap().0, CONN);
        // A new index from the other connection: its item is written (the
        // key is free) but it never counts towards completion.
        let forged1 = Message::BodyChunk(BodyChunk {
            request_id: REQ.into(),
            index: 1,
            data: encode_body(b"forged"),
        });
        send(&fake, OTHER, &forged1).await;
        send(&fake, OTHER, &head).await;
        assert!(fake.pending(REQ).unwrap().completed.is_none());
        // The owner's own chunk 1 is refused too (the slot is taken): the
        // request cannot complete with forged bytes, it times out instead.
        send(&fake, CONN, &head).await;
        send(&fake, CONN, &chunks[1]).await;
        assert!(fake.pending(REQ).unwrap().completed.is_none());
    }

    #[tokio::test]
    async fn chunks_beyond_the_ceiling_are_dropped_before_any_write() {
        let fake = Fake::default();
        fake.insert_pending(REQ, CONN);
        for chunk in [
            BodyChunk {
                request_id: REQ.into(),
                index: MAX_BODY_CHUNKS as u32,
                data: encode_body(b"x"),
            },
            BodyChunk {
                request_id: REQ.into(),
                index: 0,
                data: encode_body(&body(BODY_CHUNK_BYTES + 3)),
            },
            BodyChunk {
                request_id: "r".repeat(MAX_REQUEST_ID_LEN + 1),
                index: 0,
                data: encode_body(b"x"),
            },
        ] {
            let text = serde_json::to_string(&serde_json::json!({
                "type": "body_chunk",
                "request_id": chunk.request_id,
                "index": chunk.index,
                "data": chunk.data,
            }))
            .unwrap();
            let mut e = ws_event("response-ready.json");
            e.body = Some(text);
            handle(&response_config(), &fake, &fake, e).await;
        }
        assert!(fake.actions().is_empty(), "{:?}", fake.actions());
    }

    #[rstest::rstest]
    #[case::over_the_ceiling(MAX_BODY_CHUNKS as u32 + 1, MAX_BODY_BYTES as u64 + 1)]
    #[case::count_does_not_match_length(5, 10)]
    #[tokio::test]
    async fn an_impossible_head_fails_the_request_at_once(#[case] count: u32, #[case] length: u64) {
        let fake = Fake::default();
        fake.insert_pending(REQ, CONN);
        let mut head = crate::response::text_response(REQ, 200, "");
        head.body = String::new();
        head.body_chunks = Some(ChunkedBody { count, length });
        send(&fake, CONN, &Message::HttpResponse(head)).await;
        let done = fake
            .pending(REQ)
            .unwrap()
            .completed
            .expect("failed at once");
        assert_eq!(done.status_code, 502);
        assert_eq!(fake.count("PutItem"), 0);
    }

    #[test]
    fn progress_is_complete_only_with_the_head_and_every_chunk() {
        assert!(
            !Progress {
                parts: 3,
                count: None
            }
            .is_complete()
        );
        assert!(
            !Progress {
                parts: 3,
                count: Some(3)
            }
            .is_complete()
        );
        assert!(
            Progress {
                parts: 4,
                count: Some(3)
            }
            .is_complete()
        );
        assert_eq!(chunk_key(REQ, 7), format!("{REQ}#7"));
    }
}
