//! The fake's [`ChunkStore`]: the same conditions as the DynamoDB
//! expressions, with a yield between calls so concurrent handlers interleave.

use std::collections::{BTreeSet, HashMap};

use protocol::HttpResponse;

use super::{Fail, Fake, on};
use crate::store::{ChunkStore, HEAD_PART, Part, Progress, StoreError, Written, chunk_key};

#[derive(Debug, Default)]
pub struct FakeChunks {
    /// `<id>#<index>` → (owner, bytes).
    items: HashMap<String, (String, Vec<u8>)>,
    /// Request id → received parts and chunk count of its head item.
    heads: HashMap<String, (BTreeSet<i64>, Option<u32>)>,
    /// The body the fake agent's chunked answers carry (any request id).
    answer_body: Option<Vec<u8>>,
    /// Request id → the stored head (`responseData`).
    head_responses: HashMap<String, HttpResponse>,
    /// Successful `complete_chunked` calls.
    completions: usize,
}

impl Fake {
    /// Chunk items read by `get_chunks` for any request: `body` split.
    pub fn chunked_answer_body(&self, body: Vec<u8>) {
        self.with(|s| s.chunks.answer_body = Some(body));
    }

    /// Number of chunk items stored.
    pub fn chunk_items(&self) -> usize {
        self.with(|s| s.chunks.items.len())
    }

    /// Owner and bytes of one chunk item.
    pub fn chunk_item(&self, request_id: &str, index: u32) -> Option<(String, Vec<u8>)> {
        self.with(|s| s.chunks.items.get(&chunk_key(request_id, index)).cloned())
    }

    pub fn chunk_completions(&self) -> usize {
        self.with(|s| s.chunks.completions)
    }
}

impl ChunkStore for Fake {
    async fn put_chunk(
        &self,
        request_id: &str,
        connection_id: &str,
        index: u32,
        data: &[u8],
        _ttl: i64,
    ) -> Result<Written, StoreError> {
        tokio::task::yield_now().await;
        self.record(on("pending", "PutItem"), Fail::Complete)?;
        Ok(self.with(|s| {
            let key = chunk_key(request_id, index);
            match s.chunks.items.get(&key) {
                Some((owner, _)) if owner != connection_id => Written::ConditionFailed,
                _ => {
                    s.chunks
                        .items
                        .insert(key, (connection_id.to_string(), data.to_vec()));
                    Written::Yes
                }
            }
        }))
    }

    async fn add_part(
        &self,
        request_id: &str,
        connection_id: &str,
        part: Part<'_>,
    ) -> Result<Option<Progress>, StoreError> {
        tokio::task::yield_now().await;
        self.record(on("pending", "UpdateItem"), Fail::Complete)?;
        Ok(self.with(|s| {
            let item = s.pending.get(request_id)?;
            if item.completed.is_some() || item.request.connection_id != connection_id {
                return None;
            }
            if let Part::Head { json, .. } = part {
                let response: HttpResponse = serde_json::from_str(json).ok()?;
                s.chunks
                    .head_responses
                    .insert(request_id.to_string(), response);
            }
            let head = s.chunks.heads.entry(request_id.to_string()).or_default();
            match part {
                Part::Head { count, .. } => {
                    head.0.insert(HEAD_PART);
                    head.1 = Some(count);
                }
                Part::Chunk(i) => {
                    head.0.insert(i64::from(i));
                }
            }
            let head = s.chunks.heads.get(request_id)?;
            Some(Progress {
                parts: head.0.len(),
                count: head.1,
            })
        }))
    }

    async fn complete_chunked(
        &self,
        request_id: &str,
        connection_id: &str,
        count: u32,
    ) -> Result<Written, StoreError> {
        tokio::task::yield_now().await;
        self.record(on("pending", "UpdateItem"), Fail::Complete)?;
        Ok(self.with(|s| {
            let ok =
                s.pending.get(request_id).is_some_and(|p| {
                    p.completed.is_none() && p.request.connection_id == connection_id
                }) && s.chunks.heads.get(request_id).is_some_and(|(parts, c)| {
                    *c == Some(count) && parts.len() == count as usize + 1
                });
            let head = s.chunks.head_responses.get(request_id).cloned();
            match (ok, head, s.pending.get_mut(request_id)) {
                (true, Some(head), Some(item)) => {
                    item.completed = Some(head);
                    s.chunks.completions += 1;
                    Written::Yes
                }
                _ => Written::ConditionFailed,
            }
        }))
    }

    async fn get_chunks(
        &self,
        request_id: &str,
        connection_id: &str,
        count: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        self.record(on("pending", "BatchGetItem"), Fail::GetPending)?;
        Ok(self.with(|s| {
            if let Some(body) = &s.chunks.answer_body {
                return body
                    .chunks(protocol::limits::BODY_CHUNK_BYTES)
                    .enumerate()
                    .map(|(i, c)| (i as u32, c.to_vec()))
                    .collect();
            }
            (0..count)
                .filter_map(|i| {
                    let (owner, data) = s.chunks.items.get(&chunk_key(request_id, i))?;
                    (owner == connection_id).then(|| (i, data.clone()))
                })
                .collect()
        }))
    }
}
