//! A chunked response as it arrives (see `protocol::chunk`): the head and
//! each `body_chunk` are stored as parts of the pending request, and whoever
//! stores the last missing part completes it, exactly once, whatever the
//! order or concurrency of the invocations. The storage scheme and its
//! conditions are in [`crate::store::chunks`].

use protocol::chunk::{BodyChunk, ChunkedBody};
use protocol::limits::{MAX_REQUEST_ID_LEN, MAX_REQUEST_TIMEOUT, TTL_SLACK};
use protocol::{ErrorCode, HttpResponse};
use tracing::{debug, info, warn};

use crate::pages::{CHUNKED_BODY_REFUSED, error_response};
use crate::store::{ChunkStore, Part, PendingStore, StoreError, Written, response_data};

/// The head of a chunked response (`http_response` with `body_chunks`).
pub async fn on_head<P: ChunkStore + PendingStore + Sync>(
    store: &P,
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
    let json = response_data(&response.request_id, &response)?;
    let part = Part::Head {
        json: &json,
        count: head.count,
    };
    add_and_maybe_complete(store, connection_id, &response.request_id, part).await
}

/// A `body_chunk` from the agent.
pub async fn on_chunk<P: ChunkStore + Sync>(
    store: &P,
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
    // The ceiling first (no store call for an impossible chunk)…
    let data = match chunk.decode(None) {
        Ok(data) => data,
        Err(e) => {
            warn!(error = %e, index = chunk.index, "body chunk dropped");
            return Ok(());
        }
    };
    // …then whether the request takes chunks from this connection at all,
    // and, once its head declared a count, this index: one read (1 unit)
    // before a write of up to 96 units (see `ChunkStore::receiving`). Not
    // watertight (the request may finish between the two calls; that chunk
    // item is left to TTL), but a made-up or another tunnel's request id
    // now costs a read, not a 97 KB write.
    match store.receiving(&chunk.request_id, connection_id).await? {
        Some(receiving) if receiving.admits(chunk.index) => {}
        Some(receiving) => {
            warn!(
                index = chunk.index,
                count = ?receiving.count,
                "body chunk dropped: beyond the count its head declared"
            );
            return Ok(());
        }
        None => {
            warn!(
                index = chunk.index,
                "body chunk dropped: the request is unknown, already completed or timed out, or was sent to another connection"
            );
            return Ok(());
        }
    }
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

async fn add_and_maybe_complete<P: ChunkStore + Sync>(
    store: &P,
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
async fn reject<P: PendingStore + Sync>(
    store: &P,
    connection_id: &str,
    request_id: &str,
) -> Result<(), StoreError> {
    let response = error_response(request_id, ErrorCode::PayloadTooLarge, CHUNKED_BODY_REFUSED);
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
    use crate::fake::Fake;
    use crate::manifest;
    use crate::pages::text_response;
    use crate::response::handle;
    use crate::testing::{response_config, ws_event};
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
        let mut head = text_response(REQ, 200, "");
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

    fn chunk(request_id: &str, index: u32, data: &[u8]) -> Message {
        Message::BodyChunk(BodyChunk {
            request_id: request_id.into(),
            index,
            data: encode_body(data),
        })
    }

    #[tokio::test]
    async fn a_forged_chunk_is_dropped_before_any_write() {
        let fake = Fake::default();
        fake.insert_pending(REQ, CONN);
        let bytes = body(2 * BODY_CHUNK_BYTES);
        let (head, chunks) = parts(&bytes);
        // Another connection that learnt the request id, and made-up ids:
        // a read each (the ownership check), never the 97 KB write.
        let forged = body(BODY_CHUNK_BYTES);
        for (request_id, index) in [
            (REQ, 0),
            (REQ, 1),
            ("00000000-0000-4000-8000-000000000000", 0),
        ] {
            send(&fake, OTHER, &chunk(request_id, index, &forged)).await;
        }
        send(&fake, OTHER, &head).await;
        assert_eq!(fake.count("PutItem"), 0, "a forged chunk was written");
        assert_eq!(fake.chunk_items(), 0);
        // So a forger cannot take a slot from the owner either: its
        // response completes, byte for byte.
        send(&fake, CONN, &head).await;
        for c in &chunks {
            send(&fake, CONN, c).await;
        }
        assert_eq!(stored_body(&fake, 2).await, bytes);
    }

    #[tokio::test]
    async fn a_chunk_beyond_the_heads_count_is_dropped_before_any_write() {
        let fake = Fake::default();
        fake.insert_pending(REQ, CONN);
        let bytes = body(BODY_CHUNK_BYTES + 1);
        let (head, chunks) = parts(&bytes);
        send(&fake, CONN, &head).await;
        send(&fake, CONN, &chunk(REQ, 2, b"beyond")).await;
        assert_eq!(fake.count("PutItem"), 0, "chunk 2 of 2 was written");
        for c in &chunks {
            send(&fake, CONN, c).await;
        }
        assert_eq!(stored_body(&fake, 2).await, bytes);
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
            handle(&response_config(), &fake, &fake, &fake, e).await;
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
        let mut head = text_response(REQ, 200, "");
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
}
