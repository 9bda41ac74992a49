//! Bodies larger than one WebSocket message travel as a head plus
//! `body_chunk` messages.
//!
//! The head (`http_request` or `http_response`) carries an empty `body` and a
//! [`ChunkedBody`] in `body_chunks`: how many chunks follow and the total
//! length. Chunk `index` runs from 0 to `count - 1`; each carries at most
//! [`BODY_CHUNK_BYTES`] raw bytes (base64 in `data`), so every message fits
//! in [`crate::limits::MAX_MESSAGE_BYTES`]. Chunks may arrive before their
//! head, out of order, or twice: [`Reassembly`] takes them in any order and
//! ignores duplicates.
//!
//! A body that fits in one message is still sent whole, without
//! `body_chunks`, so small exchanges keep the old wire shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::limits::{BODY_CHUNK_BYTES, MAX_BODY_BYTES, MAX_BODY_CHUNKS, MAX_MESSAGE_BYTES};
use crate::{Message, ProtocolError};

/// On a head: the body follows in `count` `body_chunk` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkedBody {
    /// How many `body_chunk` messages follow (indexes `0..count`).
    pub count: u32,
    /// Total body length in bytes, decoded.
    pub length: u64,
}

/// One piece of a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyChunk {
    pub request_id: String,
    pub index: u32,
    /// Base64 of this chunk's bytes.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("a body of {length} bytes exceeds the {MAX_BODY_BYTES}-byte ceiling")]
    BodyTooLarge { length: u64 },
    #[error("{count} chunks cannot carry a body of {length} bytes")]
    BadCount { count: u32, length: u64 },
    #[error("chunk index {index} is out of range (0..{limit})")]
    IndexOutOfRange { index: u32, limit: u32 },
    #[error("chunk {index} has {len} bytes, more than the {BODY_CHUNK_BYTES}-byte chunk size")]
    ChunkTooLarge { index: u32, len: usize },
    #[error("chunk {index} is not valid base64")]
    Base64 { index: u32 },
    #[error("the chunks hold {got} bytes, the head announced {expected}")]
    LengthMismatch { got: u64, expected: u64 },
    #[error("chunk {index} is missing")]
    Missing { index: u32 },
}

impl ChunkedBody {
    /// The head of a body of `length` bytes split into [`BODY_CHUNK_BYTES`].
    pub fn for_length(length: usize) -> Result<ChunkedBody, ChunkError> {
        if length > MAX_BODY_BYTES {
            return Err(ChunkError::BodyTooLarge {
                length: length as u64,
            });
        }
        Ok(ChunkedBody {
            count: length.div_ceil(BODY_CHUNK_BYTES) as u32,
            length: length as u64,
        })
    }

    /// Checks a received head: under the ceiling, and exactly as many chunks
    /// as splitting the length into [`BODY_CHUNK_BYTES`] gives, so a peer
    /// cannot make the receiver wait for (or store) more.
    pub fn validate(&self) -> Result<(), ChunkError> {
        if self.length > MAX_BODY_BYTES as u64 {
            return Err(ChunkError::BodyTooLarge {
                length: self.length,
            });
        }
        let expected = (self.length as usize).div_ceil(BODY_CHUNK_BYTES) as u32;
        if self.count != expected || self.count == 0 {
            return Err(ChunkError::BadCount {
                count: self.count,
                length: self.length,
            });
        }
        Ok(())
    }
}

impl BodyChunk {
    /// Decodes and checks the chunk against the ceiling (any head) and, if
    /// known, against its head.
    pub fn decode(&self, head: Option<&ChunkedBody>) -> Result<Vec<u8>, ChunkError> {
        let limit = head.map_or(MAX_BODY_CHUNKS as u32, |h| h.count);
        if self.index >= limit {
            return Err(ChunkError::IndexOutOfRange {
                index: self.index,
                limit,
            });
        }
        // Checked before decoding so an oversize chunk costs no allocation.
        if crate::body::encoded_len(BODY_CHUNK_BYTES) < self.data.len() {
            return Err(ChunkError::ChunkTooLarge {
                index: self.index,
                len: self.data.len() / 4 * 3,
            });
        }
        crate::decode_body(&self.data).map_err(|_| ChunkError::Base64 { index: self.index })
    }
}

/// `http_request` and `http_response`: the messages that carry a body.
pub trait CarriesBody {
    /// Puts the body in: base64 inline (`chunks` none), or empty with the
    /// head of the chunks that follow.
    fn set_body(&mut self, base64: String, chunks: Option<ChunkedBody>);
    fn request_id(&self) -> &str;
    /// The message's JSON (tagged as [`crate::Message`] tags it), refused
    /// above [`MAX_MESSAGE_BYTES`].
    fn to_json(&self) -> Result<String, ProtocolError>;
}

/// The one rule for sending a body, used by forwarding (requests) and the
/// agent (responses): the whole message if it fits in one WebSocket message,
/// else the message without body, with `body_chunks`, followed by its
/// `body_chunk`s in order. Every message is built and checked against the
/// limit before any is sent, so nothing goes out half.
pub fn to_messages<T: CarriesBody>(
    mut payload: T,
    body: &[u8],
) -> Result<Vec<String>, ProtocolError> {
    if crate::body::encoded_len(body.len()) < MAX_MESSAGE_BYTES {
        payload.set_body(crate::encode_body(body), None);
        match payload.to_json() {
            Ok(json) => return Ok(vec![json]),
            // The headers took the room: the body goes in chunks instead.
            Err(ProtocolError::TooLarge { .. }) if !body.is_empty() => {}
            Err(e) => return Err(e),
        }
    }
    let head = ChunkedBody::for_length(body.len())
        .map_err(|_| ProtocolError::TooLarge { size: body.len() })?;
    payload.set_body(String::new(), Some(head));
    let mut messages = Vec::with_capacity(head.count as usize + 1);
    messages.push(payload.to_json()?);
    for chunk in split(payload.request_id(), body) {
        messages.push(Message::BodyChunk(chunk).to_json()?);
    }
    Ok(messages)
}

/// Splits `body` into the chunk messages' payloads, in order.
pub fn split(request_id: &str, body: &[u8]) -> Vec<BodyChunk> {
    body.chunks(BODY_CHUNK_BYTES)
        .enumerate()
        .map(|(i, bytes)| BodyChunk {
            request_id: request_id.to_string(),
            index: i as u32,
            data: crate::encode_body(bytes),
        })
        .collect()
}

/// Collects one body's chunks in any order; duplicates are ignored. Holds at
/// most [`MAX_BODY_BYTES`] (or the head's length, once known).
#[derive(Debug, Clone, Default)]
pub struct Reassembly {
    head: Option<ChunkedBody>,
    chunks: BTreeMap<u32, Vec<u8>>,
    bytes: u64,
}

/// What [`Reassembly::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    Duplicate,
}

impl Reassembly {
    pub fn new() -> Reassembly {
        Reassembly::default()
    }

    /// Records the head; chunks already held are re-checked against it.
    pub fn set_head(&mut self, head: ChunkedBody) -> Result<(), ChunkError> {
        head.validate()?;
        if let Some((&index, _)) = self.chunks.range(head.count..).next() {
            return Err(ChunkError::IndexOutOfRange {
                index,
                limit: head.count,
            });
        }
        if self.bytes > head.length {
            return Err(ChunkError::LengthMismatch {
                got: self.bytes,
                expected: head.length,
            });
        }
        self.head = Some(head);
        Ok(())
    }

    pub fn head(&self) -> Option<&ChunkedBody> {
        self.head.as_ref()
    }

    /// Adds a chunk (decoded and checked). A second copy of an index is
    /// ignored: the first one wins.
    pub fn insert(&mut self, chunk: &BodyChunk) -> Result<Inserted, ChunkError> {
        if self.chunks.contains_key(&chunk.index) {
            return Ok(Inserted::Duplicate);
        }
        let bytes = chunk.decode(self.head.as_ref())?;
        let limit = self.head.map_or(MAX_BODY_BYTES as u64, |h| h.length);
        let total = self.bytes + bytes.len() as u64;
        if total > limit {
            return Err(ChunkError::LengthMismatch {
                got: total,
                expected: limit,
            });
        }
        self.bytes = total;
        self.chunks.insert(chunk.index, bytes);
        Ok(Inserted::New)
    }

    /// Bytes held so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the head and every chunk have arrived.
    pub fn is_complete(&self) -> bool {
        self.head
            .is_some_and(|h| self.chunks.len() == h.count as usize)
    }

    /// The body, once complete and of the announced length.
    pub fn into_body(self) -> Result<Vec<u8>, ChunkError> {
        let Some(head) = self.head else {
            return Err(ChunkError::Missing { index: 0 });
        };
        assemble(head, self.chunks)
    }
}

/// Concatenates chunks `0..head.count` (given in any order) into the body,
/// checking that none is missing and that the length is the announced one.
pub fn assemble(
    head: ChunkedBody,
    chunks: impl IntoIterator<Item = (u32, Vec<u8>)>,
) -> Result<Vec<u8>, ChunkError> {
    let mut by_index: BTreeMap<u32, Vec<u8>> = chunks.into_iter().collect();
    let mut body = Vec::with_capacity(head.length.min(MAX_BODY_BYTES as u64) as usize);
    for index in 0..head.count {
        let part = by_index
            .remove(&index)
            .ok_or(ChunkError::Missing { index })?;
        body.extend_from_slice(&part);
        if body.len() as u64 > head.length {
            break;
        }
    }
    if body.len() as u64 != head.length {
        return Err(ChunkError::LengthMismatch {
            got: body.len() as u64,
            expected: head.length,
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::encode_body;

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[rstest]
    #[case(1, 1)]
    #[case(BODY_CHUNK_BYTES - 1, 1)]
    #[case(BODY_CHUNK_BYTES, 1)]
    #[case(BODY_CHUNK_BYTES + 1, 2)]
    #[case(1_000_000, 11)]
    #[case(MAX_BODY_BYTES, MAX_BODY_CHUNKS)]
    fn splits_and_reassembles_in_any_order(#[case] len: usize, #[case] count: usize) {
        let bytes = body(len);
        let head = ChunkedBody::for_length(len).unwrap();
        assert_eq!(head.count as usize, count);
        let mut chunks = split("r", &bytes);
        assert_eq!(chunks.len(), count);
        // Reversed, each twice, head last.
        chunks.reverse();
        let mut r = Reassembly::new();
        for c in &chunks {
            assert_eq!(r.insert(c).unwrap(), Inserted::New);
            assert_eq!(r.insert(c).unwrap(), Inserted::Duplicate);
        }
        assert!(!r.is_complete());
        r.set_head(head).unwrap();
        assert!(r.is_complete());
        assert_eq!(r.into_body().unwrap(), bytes);
    }

    #[test]
    fn every_chunk_message_fits_with_the_longest_request_id() {
        let id = "\u{1}".repeat(crate::limits::MAX_REQUEST_ID_LEN);
        let chunk = BodyChunk {
            request_id: id,
            index: u32::MAX,
            data: encode_body(&body(BODY_CHUNK_BYTES)),
        };
        let json = Message::BodyChunk(chunk).to_json().unwrap();
        assert!(json.len() <= MAX_MESSAGE_BYTES, "{}", json.len());
        assert!(json.len() > MAX_MESSAGE_BYTES - 200, "chunks waste room");
    }

    #[test]
    fn a_missing_chunk_leaves_it_incomplete() {
        let bytes = body(3 * BODY_CHUNK_BYTES);
        let mut r = Reassembly::new();
        r.set_head(ChunkedBody::for_length(bytes.len()).unwrap())
            .unwrap();
        let chunks = split("r", &bytes);
        r.insert(&chunks[0]).unwrap();
        r.insert(&chunks[2]).unwrap();
        assert!(!r.is_complete());
        assert_eq!(r.into_body(), Err(ChunkError::Missing { index: 1 }));
    }

    #[rstest]
    #[case::over_the_ceiling(ChunkedBody { count: MAX_BODY_CHUNKS as u32 + 1, length: MAX_BODY_BYTES as u64 + 1 })]
    #[case::count_too_high(ChunkedBody { count: 3, length: 10 })]
    #[case::count_too_low(ChunkedBody { count: 1, length: BODY_CHUNK_BYTES as u64 + 1 })]
    #[case::empty(ChunkedBody { count: 0, length: 0 })]
    #[case::huge(ChunkedBody { count: u32::MAX, length: u64::MAX })]
    fn rejects_impossible_heads(#[case] head: ChunkedBody) {
        assert!(head.validate().is_err());
        assert!(Reassembly::new().set_head(head).is_err());
    }

    #[test]
    fn over_the_ceiling_cannot_be_split() {
        assert_eq!(
            ChunkedBody::for_length(MAX_BODY_BYTES + 1),
            Err(ChunkError::BodyTooLarge {
                length: MAX_BODY_BYTES as u64 + 1
            })
        );
    }

    #[test]
    fn rejects_out_of_range_oversize_and_overflowing_chunks() {
        let mut r = Reassembly::new();
        let chunk = |index, len| BodyChunk {
            request_id: "r".into(),
            index,
            data: encode_body(&body(len)),
        };
        // Beyond the ceiling before the head is known.
        assert!(matches!(
            r.insert(&chunk(MAX_BODY_CHUNKS as u32, 1)),
            Err(ChunkError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            r.insert(&chunk(0, BODY_CHUNK_BYTES + 3)),
            Err(ChunkError::ChunkTooLarge { .. })
        ));
        assert!(matches!(
            r.insert(&BodyChunk {
                request_id: "r".into(),
                index: 0,
                data: "%%%".into()
            }),
            Err(ChunkError::Base64 { index: 0 })
        ));
        // Beyond the head's count, and more bytes than announced.
        r.set_head(ChunkedBody::for_length(10).unwrap()).unwrap();
        assert!(matches!(
            r.insert(&chunk(1, 1)),
            Err(ChunkError::IndexOutOfRange { index: 1, limit: 1 })
        ));
        assert!(matches!(
            r.insert(&chunk(0, 11)),
            Err(ChunkError::LengthMismatch { .. })
        ));
        // A chunk held before the head that the head rules out.
        let mut early = Reassembly::new();
        early.insert(&chunk(5, 1)).unwrap();
        assert!(
            early
                .set_head(ChunkedBody::for_length(10).unwrap())
                .is_err()
        );
    }

    fn request(headers: crate::Headers) -> crate::HttpRequest {
        crate::HttpRequest {
            request_id: "r".into(),
            method: "POST".into(),
            uri: "/".into(),
            headers,
            body: String::new(),
            timestamp: 1,
            body_chunks: None,
            body_download: None,
            response_upload: None,
        }
    }

    /// Sends `body` through [`to_messages`] and reads it back as a receiver
    /// would; returns the number of messages.
    fn round_trip(headers: crate::Headers, bytes: &[u8]) -> usize {
        let messages = to_messages(request(headers), bytes).unwrap();
        let mut parsed = messages.iter().map(|m| {
            assert!(m.len() <= MAX_MESSAGE_BYTES, "{}", m.len());
            Message::from_json(m).unwrap()
        });
        let Some(Message::HttpRequest(head)) = parsed.next() else {
            panic!("the first message is not the request");
        };
        match head.body_chunks {
            None => {
                assert_eq!(messages.len(), 1);
                assert_eq!(crate::decode_body(&head.body).unwrap(), bytes);
            }
            Some(chunks) => {
                assert!(head.body.is_empty());
                let mut r = Reassembly::new();
                r.set_head(chunks).unwrap();
                for m in parsed {
                    let Message::BodyChunk(c) = m else {
                        panic!("not a chunk: {m:?}")
                    };
                    r.insert(&c).unwrap();
                }
                assert_eq!(r.into_body().unwrap(), bytes);
            }
        }
        messages.len()
    }

    #[rstest]
    #[case::empty(0, 0, 1)]
    #[case::small(1000, 0, 1)]
    #[case::largest_inline(MAX_MESSAGE_BYTES / 4 * 3 - 300, 0, 1)]
    #[case::just_over(MAX_MESSAGE_BYTES / 4 * 3, 0, 3)]
    #[case::headers_take_the_room(60_000, 80_000, 2)]
    #[case::one_megabyte(1_000_000, 0, 12)]
    #[case::the_ceiling(MAX_BODY_BYTES, 0, MAX_BODY_CHUNKS + 1)]
    fn to_messages_inlines_what_fits_and_chunks_the_rest(
        #[case] len: usize,
        #[case] header_bytes: usize,
        #[case] expected_messages: usize,
    ) {
        let mut headers = crate::Headers::new();
        if header_bytes > 0 {
            headers.insert("x-big".into(), vec!["h".repeat(header_bytes)]);
        }
        assert_eq!(round_trip(headers, &body(len)), expected_messages);
    }

    #[test]
    fn to_messages_refuses_what_no_message_can_carry() {
        assert!(matches!(
            to_messages(request(Default::default()), &body(MAX_BODY_BYTES + 1)),
            Err(ProtocolError::TooLarge { size }) if size == MAX_BODY_BYTES + 1
        ));
        let mut headers = crate::Headers::new();
        headers.insert("x-big".into(), vec!["h".repeat(MAX_MESSAGE_BYTES)]);
        assert!(matches!(
            to_messages(request(headers.clone()), b""),
            Err(ProtocolError::TooLarge { .. })
        ));
        assert!(matches!(
            to_messages(request(headers), b"body"),
            Err(ProtocolError::TooLarge { .. })
        ));
    }

    #[test]
    fn short_chunks_do_not_pass_for_the_announced_length() {
        let head = ChunkedBody::for_length(BODY_CHUNK_BYTES + 10).unwrap();
        let got = assemble(head, [(0, vec![1; 5]), (1, vec![2; 10])]);
        assert!(matches!(got, Err(ChunkError::LengthMismatch { .. })));
    }
}
