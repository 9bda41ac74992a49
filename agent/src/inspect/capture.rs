//! The capture ring: the last exchanges that went through the agent, in
//! memory only, bounded by a number of exchanges and a number of body bytes.
//!
//! Every body is cut after [`Limits::per_body`] bytes (the original size is
//! kept, so the truncation shows). When a new exchange or a response body
//! would take the ring over either bound, the oldest exchanges are dropped
//! first; the exchange being recorded is never the one dropped, and since
//! its two bodies together fit within the byte bound, both bounds hold after
//! every operation.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use protocol::{ErrorCode, Headers};

/// How much the ring keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Exchanges kept (at least 1).
    pub max_requests: usize,
    /// Captured body bytes kept, request and response bodies together.
    pub max_body_bytes: usize,
    /// Each body is cut after this many bytes (see [`Limits::per_body`]).
    pub body_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_requests: 500,
            max_body_bytes: 64 * 1024 * 1024,
            body_limit: 1024 * 1024,
        }
    }
}

impl Limits {
    /// What one body may take: `body_limit`, but never more than half the
    /// byte bound, so one exchange (two bodies) always fits.
    pub fn per_body(&self) -> usize {
        self.body_limit.min(self.max_body_bytes / 2)
    }

    fn max_requests(&self) -> usize {
        self.max_requests.max(1)
    }
}

/// A body as captured: its first bytes and its real size.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Body {
    /// At most [`Limits::per_body`] bytes.
    pub bytes: Bytes,
    /// The size of the whole body.
    pub size: usize,
}

impl Body {
    /// The first `limit` bytes of `full`.
    pub fn capture(full: &[u8], limit: usize) -> Body {
        Body {
            bytes: Bytes::copy_from_slice(&full[..full.len().min(limit)]),
            size: full.len(),
        }
    }

    /// The first `limit` bytes of a base64 body, decoding only that much:
    /// a 4 MB upload costs at most `limit` bytes here.
    pub fn capture_base64(encoded: &str, limit: usize) -> Body {
        let encoded = encoded.trim_end();
        let padding = encoded.bytes().rev().take_while(|&b| b == b'=').count();
        let size = (encoded.len() / 4 * 3).saturating_sub(padding);
        // Whole 4-character groups only: a prefix of them decodes on its own.
        let take = protocol::body::encoded_len(limit).min(encoded.len());
        match protocol::decode_body(&encoded[..take]) {
            Ok(mut bytes) => {
                bytes.truncate(limit);
                Body {
                    bytes: bytes.into(),
                    size,
                }
            }
            // Not valid base64: the forwarder refuses the request and says
            // so; the capture keeps no body.
            Err(_) => Body::default(),
        }
    }

    /// Whether only part of the body was kept.
    pub fn truncated(&self) -> bool {
        self.bytes.len() < self.size
    }
}

/// The request as the agent received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedRequest {
    pub method: String,
    /// Path and raw query.
    pub uri: String,
    pub headers: Headers,
    pub body: Body,
}

/// The response as the local service gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Body,
}

/// Why the visitor got an error page instead of (or despite) the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

/// A request the tunnel server refused by the tunnel's access policy: it
/// never reached the agent, so nothing of it is kept but what the server's
/// `rejected` notice says (no headers, no body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Which check refused it, in a few words.
    pub reason: String,
    /// The visitor's IP, as API Gateway reported it.
    pub source_ip: Option<String>,
    /// The status the visitor got.
    pub status: u16,
}

/// Where an exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The local service has not answered yet.
    InFlight,
    /// The visitor got the local service's response.
    Answered,
    /// The visitor got an error (see [`Exchange::failure`]).
    Failed,
    /// Refused at the edge by the access policy (see [`Exchange::refused`]);
    /// the local service never saw it.
    Refused,
}

/// One request and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Increasing from 1 in the order exchanges began.
    pub id: u64,
    /// The protocol's request id (`replay-…` for replays).
    pub request_id: String,
    /// The exchange this one replays.
    pub replay_of: Option<u64>,
    /// When the agent received the request.
    pub started_at: SystemTime,
    /// When the tunnel server received it (epoch milliseconds, 0 if unknown).
    pub server_timestamp_ms: u64,
    pub request: CapturedRequest,
    pub response: Option<CapturedResponse>,
    pub failure: Option<Failure>,
    /// Set when the server refused the request at the edge: then
    /// `request` holds only its method and path, and there is no response.
    pub refused: Option<Refusal>,
    /// How long the local service took; `None` while in flight.
    pub duration: Option<Duration>,
}

impl Exchange {
    pub fn state(&self) -> State {
        if self.refused.is_some() {
            return State::Refused;
        }
        match (&self.duration, &self.failure) {
            (None, _) => State::InFlight,
            (Some(_), None) => State::Answered,
            (Some(_), Some(_)) => State::Failed,
        }
    }

    /// The status the visitor got (an error's status when it failed).
    pub fn status(&self) -> Option<u16> {
        if let Some(refused) = &self.refused {
            return Some(refused.status);
        }
        match (&self.failure, &self.response) {
            (Some(f), _) => Some(f.code.http_status()),
            (None, Some(r)) => Some(r.status),
            (None, None) => None,
        }
    }

    fn body_bytes(&self) -> usize {
        self.request.body.bytes.len() + self.response.as_ref().map_or(0, |r| r.body.bytes.len())
    }
}

/// The last exchanges, oldest first, within [`Limits`].
#[derive(Debug)]
pub struct Ring {
    entries: VecDeque<Exchange>,
    body_bytes: usize,
    next_id: u64,
    limits: Limits,
}

impl Ring {
    pub fn new(limits: Limits) -> Ring {
        Ring {
            entries: VecDeque::new(),
            body_bytes: 0,
            next_id: 1,
            limits,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Captured body bytes held now.
    pub fn body_bytes(&self) -> usize {
        self.body_bytes
    }

    /// Records a new exchange, in flight. The request body must already be
    /// cut to [`Limits::per_body`] (it is cut here otherwise). Returns its id
    /// and the ids dropped to make room.
    pub fn insert(
        &mut self,
        request_id: String,
        replay_of: Option<u64>,
        server_timestamp_ms: u64,
        mut request: CapturedRequest,
        started_at: SystemTime,
    ) -> (u64, Vec<u64>) {
        cut(&mut request.body, self.limits.per_body());
        let id = self.next_id;
        self.next_id += 1;
        self.body_bytes += request.body.bytes.len();
        self.entries.push_back(Exchange {
            id,
            request_id,
            replay_of,
            started_at,
            server_timestamp_ms,
            request,
            response: None,
            failure: None,
            refused: None,
            duration: None,
        });
        (id, self.evict(id))
    }

    /// Records a request refused at the edge: `method` and `path` only (no
    /// headers, no body), finished at once. Returns its id and the ids
    /// dropped to make room.
    pub fn insert_refused(
        &mut self,
        method: String,
        path: String,
        refusal: Refusal,
        received_at: SystemTime,
    ) -> (u64, Vec<u64>) {
        let request = CapturedRequest {
            method,
            uri: path,
            headers: Headers::new(),
            body: Body::default(),
        };
        let (id, dropped) = self.insert(String::new(), None, 0, request, received_at);
        if let Some(index) = self.index(id) {
            let entry = &mut self.entries[index];
            entry.refused = Some(refusal);
            entry.duration = Some(Duration::ZERO);
        }
        (id, dropped)
    }

    /// Records the local service's response. Returns the ids dropped to make
    /// room, or `None` when the exchange is no longer kept.
    pub fn set_response(&mut self, id: u64, mut response: CapturedResponse) -> Option<Vec<u64>> {
        cut(&mut response.body, self.limits.per_body());
        let index = self.index(id)?;
        let entry = &mut self.entries[index];
        let old = entry.response.as_ref().map_or(0, |r| r.body.bytes.len());
        let new = response.body.bytes.len();
        entry.response = Some(response);
        self.body_bytes = self.body_bytes - old + new;
        Some(self.evict(id))
    }

    /// Ends an exchange: `failure` says why the visitor got an error.
    /// Returns false when the exchange is no longer kept.
    pub fn finish(&mut self, id: u64, failure: Option<Failure>, duration: Duration) -> bool {
        let Some(index) = self.index(id) else {
            return false;
        };
        let entry = &mut self.entries[index];
        entry.failure = failure;
        entry.duration = Some(duration);
        true
    }

    pub fn get(&self, id: u64) -> Option<&Exchange> {
        self.index(id).map(|i| &self.entries[i])
    }

    /// Newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Exchange> {
        self.entries.iter().rev()
    }

    /// Drops everything (ids keep increasing).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.body_bytes = 0;
    }

    fn index(&self, id: u64) -> Option<usize> {
        // Ids increase along the deque.
        self.entries.binary_search_by_key(&id, |e| e.id).ok()
    }

    /// Drops the oldest exchanges other than `keep` until both bounds hold.
    fn evict(&mut self, keep: u64) -> Vec<u64> {
        let mut dropped = Vec::new();
        while self.entries.len() > self.limits.max_requests()
            || self.body_bytes > self.limits.max_body_bytes
        {
            let index = match self.entries.front() {
                Some(front) if front.id != keep => 0,
                Some(_) if self.entries.len() > 1 => 1,
                // Only `keep` is left; it fits by construction.
                _ => break,
            };
            let Some(gone) = self.entries.remove(index) else {
                break;
            };
            self.body_bytes -= gone.body_bytes();
            dropped.push(gone.id);
        }
        dropped
    }
}

fn cut(body: &mut Body, limit: usize) {
    if body.bytes.len() > limit {
        body.bytes.truncate(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &[u8]) -> CapturedRequest {
        CapturedRequest {
            method: "POST".into(),
            uri: "/x".into(),
            headers: Headers::new(),
            body: Body::capture(body, usize::MAX),
        }
    }

    fn response(body: &[u8]) -> CapturedResponse {
        CapturedResponse {
            status: 200,
            headers: Headers::new(),
            body: Body::capture(body, usize::MAX),
        }
    }

    fn ring(max_requests: usize, max_body_bytes: usize, body_limit: usize) -> Ring {
        Ring::new(Limits {
            max_requests,
            max_body_bytes,
            body_limit,
        })
    }

    fn insert(ring: &mut Ring, body: &[u8]) -> (u64, Vec<u64>) {
        ring.insert("r".into(), None, 0, request(body), SystemTime::UNIX_EPOCH)
    }

    fn ids(ring: &Ring) -> Vec<u64> {
        ring.newest_first().map(|e| e.id).collect()
    }

    #[test]
    fn keeps_the_last_n_newest_first() {
        let mut ring = ring(3, 1000, 100);
        for _ in 0..5 {
            insert(&mut ring, b"");
        }
        assert_eq!(ids(&ring), [5, 4, 3]);
        let (id, dropped) = insert(&mut ring, b"");
        assert_eq!((id, dropped), (6, vec![3]));
        assert!(ring.get(3).is_none());
        assert_eq!(ring.get(6).unwrap().id, 6);
    }

    #[test]
    fn drops_the_oldest_when_bodies_exceed_the_byte_bound() {
        let mut ring = ring(100, 100, 40);
        insert(&mut ring, &[1; 40]);
        insert(&mut ring, &[2; 40]);
        assert_eq!(ring.body_bytes(), 80);
        // 40 more would make 120 > 100: the oldest goes.
        let (id, dropped) = insert(&mut ring, &[3; 40]);
        assert_eq!((id, dropped), (3, vec![1]));
        assert_eq!(ring.body_bytes(), 80);
        // A response body counts too, and evicts older exchanges, not its own.
        let dropped = ring.set_response(3, response(&[4; 40])).unwrap();
        assert_eq!(dropped, [2]);
        assert_eq!(ids(&ring), [3]);
        assert_eq!(ring.body_bytes(), 80);
    }

    #[test]
    fn a_late_response_evicts_around_its_own_exchange() {
        let mut ring = ring(100, 100, 50);
        insert(&mut ring, b""); // 1: a slow request, still in flight
        insert(&mut ring, &[0; 50]); // 2
        insert(&mut ring, &[0; 30]); // 3
        let dropped = ring.set_response(1, response(&[9; 50])).unwrap();
        // 130 bytes: 2 is the oldest other than 1.
        assert_eq!(dropped, [2]);
        assert_eq!(ids(&ring), [3, 1]);
        assert_eq!(ring.body_bytes(), 80);
    }

    #[test]
    fn truncates_each_body_and_keeps_its_size() {
        let mut ring = ring(10, 1000, 8);
        let (id, _) = insert(&mut ring, b"0123456789abcdef");
        ring.set_response(id, response(b"short")).unwrap();
        let e = ring.get(id).unwrap();
        assert_eq!(&e.request.body.bytes[..], b"01234567");
        assert_eq!(e.request.body.size, 16);
        assert!(e.request.body.truncated());
        let r = e.response.as_ref().unwrap();
        assert_eq!(&r.body.bytes[..], b"short");
        assert!(!r.body.truncated());
    }

    #[test]
    fn one_body_never_takes_more_than_half_the_byte_bound() {
        let limits = Limits {
            max_requests: 10,
            max_body_bytes: 100,
            body_limit: 1000,
        };
        assert_eq!(limits.per_body(), 50);
        let mut ring = Ring::new(limits);
        let (id, _) = insert(&mut ring, &[0; 500]);
        ring.set_response(id, response(&[0; 500])).unwrap();
        assert_eq!(ring.body_bytes(), 100);
        assert_eq!(ids(&ring), [id]);
    }

    #[test]
    fn states_and_statuses() {
        let mut ring = ring(10, 1000, 100);
        let (a, _) = insert(&mut ring, b"");
        assert_eq!(ring.get(a).unwrap().state(), State::InFlight);
        assert_eq!(ring.get(a).unwrap().status(), None);
        ring.set_response(a, response(b"ok")).unwrap();
        assert!(ring.finish(a, None, Duration::from_millis(3)));
        assert_eq!(ring.get(a).unwrap().state(), State::Answered);
        assert_eq!(ring.get(a).unwrap().status(), Some(200));

        let (b, _) = insert(&mut ring, b"");
        let failure = Failure {
            code: ErrorCode::Timeout,
            message: "slow".into(),
        };
        assert!(ring.finish(b, Some(failure), Duration::from_secs(20)));
        assert_eq!(ring.get(b).unwrap().state(), State::Failed);
        assert_eq!(ring.get(b).unwrap().status(), Some(504));
    }

    #[test]
    fn a_dropped_exchange_ignores_its_late_response() {
        let mut ring = ring(1, 1000, 100);
        let (a, _) = insert(&mut ring, b"a");
        insert(&mut ring, b"b");
        assert_eq!(ring.set_response(a, response(b"late")), None);
        assert!(!ring.finish(a, None, Duration::ZERO));
        assert_eq!(ring.body_bytes(), 1);
    }

    #[test]
    fn a_refused_request_is_finished_at_once_with_nothing_captured() {
        let mut ring = ring(2, 1000, 100);
        insert(&mut ring, b"abc");
        let refusal = Refusal {
            reason: "no valid basic-auth credentials".into(),
            source_ip: Some("203.0.113.7".into()),
            status: 401,
        };
        let (id, dropped) = ring.insert_refused(
            "GET".into(),
            "/admin".into(),
            refusal.clone(),
            SystemTime::UNIX_EPOCH,
        );
        assert!(dropped.is_empty());
        let e = ring.get(id).unwrap();
        assert_eq!(e.state(), State::Refused);
        assert_eq!(e.status(), Some(401));
        assert_eq!(e.refused.as_ref(), Some(&refusal));
        assert!(e.request.headers.is_empty() && e.request.body.size == 0);
        assert!(e.response.is_none() && e.failure.is_none());
        // It counts against the request bound like any other exchange.
        let (_, dropped) = insert(&mut ring, b"");
        assert_eq!(dropped, [1]);
        assert_eq!(ring.body_bytes(), 0);
    }

    #[test]
    fn clear_empties_but_ids_keep_increasing() {
        let mut ring = ring(10, 1000, 100);
        insert(&mut ring, b"abc");
        ring.clear();
        assert!(ring.is_empty());
        assert_eq!(ring.body_bytes(), 0);
        assert_eq!(insert(&mut ring, b"").0, 2);
    }

    #[test]
    fn base64_capture_decodes_only_a_prefix() {
        let body: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let encoded = protocol::encode_body(&body);
        for limit in [0, 1, 2, 3, 4, 100, 999, 1000, 5000] {
            let captured = Body::capture_base64(&encoded, limit);
            assert_eq!(captured.size, 1000, "limit {limit}");
            assert_eq!(
                &captured.bytes[..],
                &body[..limit.min(1000)],
                "limit {limit}"
            );
        }
        for n in 0..6 {
            let encoded = protocol::encode_body(&body[..n]);
            assert_eq!(Body::capture_base64(&encoded, 100).size, n);
        }
        assert_eq!(Body::capture_base64("not base64!", 100), Body::default());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Insert(usize),
            Respond(usize, usize),
            Finish(usize),
            Clear,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0usize..300).prop_map(Op::Insert),
                3 => (0usize..40, 0usize..300).prop_map(|(back, n)| Op::Respond(back, n)),
                2 => (0usize..40).prop_map(Op::Finish),
                1 => Just(Op::Clear),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

            /// Whatever happens, both bounds hold, the byte count is exact,
            /// every body is cut to the per-body limit, and the order is
            /// newest first.
            #[test]
            fn bounds_and_order_always_hold(
                max_requests in 1usize..20,
                max_body_bytes in 0usize..1000,
                body_limit in 0usize..400,
                ops in proptest::collection::vec(op(), 1..120),
            ) {
                let limits = Limits { max_requests, max_body_bytes, body_limit };
                let mut ring = Ring::new(limits);
                let mut last_id = 0;
                for op in ops {
                    match op {
                        Op::Insert(n) => {
                            let (id, _) = insert(&mut ring, &vec![7; n]);
                            prop_assert!(id > last_id);
                            last_id = id;
                            prop_assert!(ring.get(id).is_some(), "the new exchange is kept");
                        }
                        Op::Respond(back, n) => {
                            let id = last_id.saturating_sub(back as u64);
                            let kept = ring.get(id).is_some();
                            let result = ring.set_response(id, response(&vec![8; n]));
                            prop_assert_eq!(result.is_some(), kept);
                            if kept {
                                prop_assert!(ring.get(id).is_some(), "its own exchange is kept");
                            }
                        }
                        Op::Finish(back) => {
                            ring.finish(last_id.saturating_sub(back as u64), None, Duration::ZERO);
                        }
                        Op::Clear => ring.clear(),
                    }
                    prop_assert!(ring.len() <= max_requests);
                    prop_assert!(ring.body_bytes() <= max_body_bytes);
                    let counted: usize = ring.newest_first().map(Exchange::body_bytes).sum();
                    prop_assert_eq!(counted, ring.body_bytes());
                    let ids: Vec<u64> = ring.newest_first().map(|e| e.id).collect();
                    prop_assert!(ids.windows(2).all(|w| w[0] > w[1]));
                    for e in ring.newest_first() {
                        prop_assert!(e.request.body.bytes.len() <= limits.per_body());
                        if let Some(r) = &e.response {
                            prop_assert!(r.body.bytes.len() <= limits.per_body());
                        }
                    }
                }
            }
        }
    }
}
