//! Requests whose body arrives in `body_chunk` messages (see
//! `protocol::chunk`): collected here until complete, with bounded memory and
//! a timeout.
//!
//! Memory: each request holds at most its announced length, itself at most
//! `MAX_BODY_BYTES` (chunks before the head count against that ceiling), and
//! at most [`MAX_PARTIAL_REQUESTS`] are collected at once, so partial bodies
//! never take more than about 8 × 4.4 MB.

use std::collections::HashMap;
use std::time::Duration;

use protocol::chunk::{BodyChunk, Reassembly};
use protocol::{ErrorCode, HttpRequest};
use tokio::time::Instant;

/// How many chunked requests may be collected at once.
pub const MAX_PARTIAL_REQUESTS: usize = 8;

/// A partial request with no new piece for this long is dropped (and the
/// server told): forwarding posts a body's chunks back to back, so a gap this
/// long means one was lost, and the visitor still gets an answer before
/// forwarding's own 25 s timeout.
pub const ASSEMBLY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A request that cannot be assembled: answer it with this error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub request_id: String,
    pub code: ErrorCode,
    pub message: String,
}

struct Partial {
    head: Option<HttpRequest>,
    body: Reassembly,
    deadline: Instant,
}

/// The chunked requests being collected on one connection.
#[derive(Default)]
pub struct Assembler {
    partial: HashMap<String, Partial>,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// Requests being collected.
    pub fn len(&self) -> usize {
        self.partial.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partial.is_empty()
    }

    fn entry(&mut self, request_id: &str, now: Instant) -> Result<&mut Partial, Failed> {
        if !self.partial.contains_key(request_id) && self.partial.len() >= MAX_PARTIAL_REQUESTS {
            return Err(Failed {
                request_id: request_id.to_string(),
                code: ErrorCode::Overloaded,
                message: format!(
                    "the tunnel agent is already receiving {MAX_PARTIAL_REQUESTS} large request bodies; try again in a moment"
                ),
            });
        }
        let partial = self
            .partial
            .entry(request_id.to_string())
            .or_insert_with(|| Partial {
                head: None,
                body: Reassembly::new(),
                deadline: now,
            });
        partial.deadline = now + ASSEMBLY_IDLE_TIMEOUT;
        Ok(partial)
    }

    /// An `http_request` with `body_chunks`. Returns the request once complete.
    pub fn head(
        &mut self,
        request: HttpRequest,
        now: Instant,
    ) -> Result<Option<HttpRequest>, Failed> {
        let Some(spec) = request.body_chunks else {
            return Ok(Some(request));
        };
        let id = request.request_id.clone();
        let partial = self.entry(&id, now)?;
        if let Err(e) = partial.body.set_head(spec) {
            self.partial.remove(&id);
            return Err(invalid(&id, &e));
        }
        partial.head = Some(request);
        self.finish(&id)
    }

    /// A `body_chunk`. Returns the request once complete.
    pub fn chunk(
        &mut self,
        chunk: &BodyChunk,
        now: Instant,
    ) -> Result<Option<HttpRequest>, Failed> {
        let partial = self.entry(&chunk.request_id, now)?;
        if let Err(e) = partial.body.insert(chunk) {
            self.partial.remove(&chunk.request_id);
            return Err(invalid(&chunk.request_id, &e));
        }
        self.finish(&chunk.request_id)
    }

    fn finish(&mut self, id: &str) -> Result<Option<HttpRequest>, Failed> {
        if !self.partial.get(id).is_some_and(|p| p.body.is_complete()) {
            return Ok(None);
        }
        let Some(partial) = self.partial.remove(id) else {
            return Ok(None);
        };
        let Some(mut request) = partial.head else {
            return Ok(None);
        };
        let body = partial.body.into_body().map_err(|e| invalid(id, &e))?;
        request.body = protocol::encode_body(&body);
        request.body_chunks = None;
        Ok(Some(request))
    }

    /// The earliest timeout, if anything is being collected.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.partial.values().map(|p| p.deadline).min()
    }

    /// Drops what timed out by `now`; each must be answered with an error.
    pub fn expire(&mut self, now: Instant) -> Vec<Failed> {
        let expired: Vec<String> = self
            .partial
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        expired
            .into_iter()
            .map(|id| {
                self.partial.remove(&id);
                Failed {
                    request_id: id,
                    code: ErrorCode::Timeout,
                    message: format!(
                        "the request body did not arrive completely within {} s",
                        ASSEMBLY_IDLE_TIMEOUT.as_secs()
                    ),
                }
            })
            .collect()
    }
}

fn invalid(request_id: &str, e: &protocol::chunk::ChunkError) -> Failed {
    Failed {
        request_id: request_id.to_string(),
        code: ErrorCode::InvalidRequest,
        message: format!("the request body could not be reassembled: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use protocol::chunk::{ChunkedBody, split};
    use protocol::limits::{BODY_CHUNK_BYTES, MAX_BODY_BYTES};

    use super::*;

    fn head(id: &str, len: usize) -> HttpRequest {
        let mut r: HttpRequest = serde_json::from_value(serde_json::json!({
            "request_id": id, "method": "POST", "uri": "/"
        }))
        .unwrap();
        r.body_chunks = Some(ChunkedBody::for_length(len).unwrap());
        r
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 17 % 256) as u8).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn assembles_out_of_order_with_duplicates_and_chunks_before_the_head() {
        let mut a = Assembler::new();
        let now = Instant::now();
        let bytes = body(3 * BODY_CHUNK_BYTES + 1);
        let chunks = split("r", &bytes);
        assert_eq!(a.chunk(&chunks[3], now), Ok(None));
        assert_eq!(a.chunk(&chunks[1], now), Ok(None));
        assert_eq!(a.head(head("r", bytes.len()), now), Ok(None));
        assert_eq!(a.chunk(&chunks[1], now), Ok(None));
        assert_eq!(a.chunk(&chunks[0], now), Ok(None));
        let done = a.chunk(&chunks[2], now).unwrap().expect("complete");
        assert_eq!(protocol::decode_body(&done.body).unwrap(), bytes);
        assert_eq!(done.body_chunks, None);
        assert!(a.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_chunk_times_out_and_is_dropped() {
        let mut a = Assembler::new();
        let start = Instant::now();
        let bytes = body(2 * BODY_CHUNK_BYTES);
        let chunks = split("r", &bytes);
        a.head(head("r", bytes.len()), start).unwrap();
        a.chunk(&chunks[1], start).unwrap();
        assert_eq!(a.next_deadline(), Some(start + ASSEMBLY_IDLE_TIMEOUT));
        assert!(a.expire(start + ASSEMBLY_IDLE_TIMEOUT / 2).is_empty());
        let failed = a.expire(start + ASSEMBLY_IDLE_TIMEOUT);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].request_id, "r");
        assert_eq!(failed[0].code, ErrorCode::Timeout);
        assert!(a.is_empty() && a.next_deadline().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn caps_concurrent_partial_requests() {
        let mut a = Assembler::new();
        let now = Instant::now();
        for i in 0..MAX_PARTIAL_REQUESTS {
            a.head(head(&format!("r{i}"), 2 * BODY_CHUNK_BYTES), now)
                .unwrap();
        }
        let err = a.head(head("one-too-many", 10), now).unwrap_err();
        assert_eq!(err.request_id, "one-too-many");
        assert_eq!(err.code, ErrorCode::Overloaded);
        assert_eq!(a.len(), MAX_PARTIAL_REQUESTS);
    }

    #[tokio::test(start_paused = true)]
    async fn rejects_over_the_ceiling_and_inconsistent_chunks() {
        let mut a = Assembler::new();
        let now = Instant::now();
        let mut over = head("big", 10);
        over.body_chunks = Some(ChunkedBody {
            count: 48,
            length: MAX_BODY_BYTES as u64 + 1,
        });
        assert_eq!(
            a.head(over, now).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        // More bytes than the head announced.
        a.head(head("r", 5), now).unwrap();
        let chunk = BodyChunk {
            request_id: "r".into(),
            index: 0,
            data: protocol::encode_body(&[1; 6]),
        };
        assert_eq!(
            a.chunk(&chunk, now).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert!(a.is_empty());
    }
}
