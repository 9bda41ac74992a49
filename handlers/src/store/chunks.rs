//! Chunked response bodies in the pending requests table (see
//! `protocol::chunk`; the response function's side is
//! [`crate::response::chunks`], forwarding's is `crate::forwarding`).
//!
//! # Storage
//!
//! - Each response chunk is its own item, `requestId = "<id>#<index>"`, with
//!   `chunkOwner` (the connection that sent it), `chunkData` (B, the decoded
//!   bytes: a quarter smaller than base64, so fewer write units) and `ttl`. At
//!   most `BODY_CHUNK_BYTES` (97,536) bytes of data: far below the 400 KB item
//!   limit. The owner is not stored as `connectionId` so chunk items stay out
//!   of the `connectionId-index` (a GSI write per chunk would cost extra and
//!   `$disconnect` would walk them as if they were requests).
//! - Before a chunk item is written, the head item is read (strongly
//!   consistent, [`ChunkStore::receiving`]): a chunk for a request that is
//!   unknown, finished or another connection's, or beyond the count its head
//!   declared, is dropped before the big write. See [`ChunkStore::receiving`]
//!   for what each costs.
//! - The head item (forwarding's pending item) collects progress:
//!   `receivedParts` (NS) gets the chunk's index, or [`HEAD_PART`] for the
//!   head, with `ADD` under `connectionId = :conn AND #status = :pending`; the
//!   head also sets `responseData` (the head's JSON) and `chunkCount`; a
//!   chunk is added only below `chunkCount` once that is known. `ADD` to a
//!   set is idempotent, so a duplicate changes nothing.
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

use super::outcome::{StoreError, Written};

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

/// A request that may take chunks from a connection (pending, posted to
/// it), as its head item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receiving {
    /// `chunkCount`, once the head has arrived: chunks `0..count` only.
    pub count: Option<u32>,
}

impl Receiving {
    /// Whether chunk `index` can belong to the response.
    pub fn admits(&self, index: u32) -> bool {
        self.count.is_none_or(|count| index < count)
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
    /// GetItem (strongly consistent: the item was written just before the
    /// request was posted) the head item: `Some` if the request exists, is
    /// pending and was posted to `connection_id`.
    ///
    /// What it saves, in DynamoDB's units ("DynamoDB read and write
    /// operations", Amazon DynamoDB Developer Guide: a strongly consistent
    /// read costs one read unit per 4 KB of the item, a write one write unit
    /// per 1 KB, and a write whose condition fails still consumes the units
    /// of the larger of the old and new item): the head item is a few hundred
    /// bytes plus the head's JSON, so this read costs 1 read unit (more only
    /// if the agent sent kilobytes of headers), while the chunk write it
    /// guards costs up to 96 write units (97,536 bytes), forged or not, and a
    /// write unit costs five times a read unit on demand.
    fn receiving(
        &self,
        request_id: &str,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<Receiving>, StoreError>> + Send;

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
    /// pending and was posted to `connection_id`, and, for a chunk, its index
    /// is below `chunkCount` once that is set. Returns the new progress,
    /// `None` when the condition failed.
    fn add_part(
        &self,
        request_id: &str,
        connection_id: &str,
        part: Part<'_>,
    ) -> impl Future<Output = Result<Option<Progress>, StoreError>> + Send;

    /// UpdateItem `status` to `completed` (the response is the stored head)
    /// if still pending, owned by `connection_id` and holding exactly
    /// `count + 1` parts with `chunkCount = count`.
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

#[cfg(test)]
mod tests {
    use super::*;

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
        const REQ: &str = "6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a";
        assert_eq!(chunk_key(REQ, 7), format!("{REQ}#7"));
    }
}
