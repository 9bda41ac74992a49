//! The request inspector: every exchange through the agent, captured in
//! memory and shown on a local web page (`http://127.0.0.1:4040`), with
//! live updates, replay (as captured or edited), copy as curl, HAR export
//! and a JSON API under `/api/`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use agent::inspect::{Bind, Inspector, Limits, bind};
//! let inspector = Inspector::new(Limits::default());
//! let server = inspector.serve(bind(&Bind::Default).await?);
//! let config = agent::Config::new("wss://tunnel.example.com/prod", "3000")?;
//! // Every exchange is captured into it; replays go through this agent.
//! let handle = agent::Agent::start_with_inspector(config, inspector.clone());
//! println!("Inspect  {}", server.url());
//! # Ok(()) }
//! ```
//!
//! Requests the tunnel server refused at the edge (the access policy) are
//! listed too, from its `rejected` notice: method, path, status, reason and
//! source IP only, not replayable ([`Inspector::refused`]).
//!
//! Nothing captured leaves memory: no log line carries a body or a header
//! value, and nothing is written to disk unless `--inspect-save FILE` asks
//! for it.
//!
//! # Layout
//! - this module: [`Inspector`] (the shared store, the agent's
//!   [`Recorder`](crate::exchange::Recorder), replays through the agent's
//!   forwarder) and [`Capture`], one exchange being recorded.
//! - [`capture`]: the bounded ring of exchanges ([`Limits`], truncation),
//!   refused requests among them ([`Refusal`]).
//! - [`view`]: the JSON shapes of the API, filters.
//! - [`export`]: a capture as a curl command, every capture as a HAR file.
//! - [`replay`]: building a replayed request from a capture and edits.
//! - [`server`]: binding (4040, else the next free port), the loopback and
//!   cross-site guards, the routes and the embedded page (`assets/`).
//! - `api`: the JSON API's routes and handlers (list, detail, bodies, curl,
//!   replay, HAR, live events) and its errors.
//! - [`cli`]: the `--inspect*` options of `tunnel`.
//! - [`save`]: `--inspect-save FILE`, one JSON line per finished exchange.

mod api;
pub mod capture;
pub mod cli;
pub mod export;
pub mod replay;
pub mod save;
pub mod server;
pub mod view;

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use protocol::{Headers, HttpRequest};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::config::Target;
use crate::events::ConnectionState;
use crate::exchange::{Recorder, Recording, RequestOutcome};
use crate::forward::Forwarder;

pub use capture::{Body, Exchange, Limits, Refusal, Ring, State};
pub use cli::InspectArgs;
pub use replay::{Edits, ReplayError};
pub use server::{Bind, BindError, InspectServer, bind};
pub use view::{Detail, Filter, Status, Summary};

/// How many changes a slow page may fall behind before it is sent a fresh
/// snapshot instead.
const CHANGES_BUFFER: usize = 1024;

/// The capture store and what the page needs around it. Cheap to clone
/// (one shared store); give a clone to
/// [`Agent::start_with_inspector`](crate::Agent::start_with_inspector).
#[derive(Clone)]
pub struct Inspector {
    inner: Arc<Inner>,
}

struct Inner {
    ring: Mutex<Ring>,
    changes: broadcast::Sender<Change>,
    status: Mutex<Status>,
    /// Where replays go: the running agent's forwarder (weak: a stopped
    /// agent is not kept alive by its inspector).
    forwarder: Mutex<Weak<Forwarder>>,
    /// Mirrors the agent's connection state into `status`.
    follower: Mutex<Option<JoinHandle<()>>>,
    saver: Option<save::Saver>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.follower).take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: captures never reach a Debug print.
        let ring = self.ring();
        f.debug_struct("Inspector")
            .field("exchanges", &ring.len())
            .field("body_bytes", &ring.body_bytes())
            .field("limits", &ring.limits())
            .finish()
    }
}

/// What changed, for the live page.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// An exchange began or ended.
    Upsert(Summary),
    /// Exchanges dropped to stay within the limits.
    Evicted(Vec<u64>),
    Cleared,
    Status(Status),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inspector {
    pub fn new(limits: Limits) -> Inspector {
        Self::build(limits, None)
    }

    /// Also appends every finished exchange to `saver`'s file.
    pub fn with_saver(limits: Limits, saver: save::Saver) -> Inspector {
        Self::build(limits, Some(saver))
    }

    fn build(limits: Limits, saver: Option<save::Saver>) -> Inspector {
        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        Inspector {
            inner: Arc::new(Inner {
                ring: Mutex::new(Ring::new(limits)),
                changes,
                status: Mutex::new(Status::new(limits)),
                forwarder: Mutex::new(Weak::new()),
                follower: Mutex::new(None),
                saver,
            }),
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        lock(&self.inner.ring)
    }

    pub fn limits(&self) -> Limits {
        self.ring().limits()
    }

    /// Starts capturing `req` as the agent received it, with `stored`, its
    /// body fetched from the bodies bucket, when it did not come inline.
    /// `replay_of` marks a replay. The returned [`Capture`] records the
    /// response and the end.
    pub fn begin(
        &self,
        req: &HttpRequest,
        stored: Option<&[u8]>,
        replay_of: Option<u64>,
    ) -> Capture {
        let started = tokio::time::Instant::now();
        let mut ring = self.ring();
        let limit = ring.limits().per_body();
        let body = match stored {
            Some(bytes) => Body::capture(bytes, limit),
            None => Body::capture_base64(&req.body, limit),
        };
        let (id, dropped) = ring.insert(
            req.request_id.clone(),
            replay_of,
            req.timestamp,
            capture::CapturedRequest {
                method: req.method.clone(),
                uri: req.uri.clone(),
                headers: req.headers.clone(),
                body,
            },
            SystemTime::now(),
        );
        self.publish(&ring, id, dropped);
        Capture {
            inspector: self.clone(),
            id,
            started,
            finished: false,
        }
    }

    /// Lists a request the server refused at the edge (method, path, the
    /// server's reason, the visitor's IP and status; there is no header or
    /// body to keep). Not replayable, and not saved with `--inspect-save`:
    /// the local service never saw it.
    pub fn refused(&self, rejected: &protocol::policy::Rejected) {
        let mut ring = self.ring();
        let (id, dropped) = ring.insert_refused(
            rejected.method.clone(),
            rejected.path.clone(),
            capture::Refusal {
                reason: rejected.reason.clone(),
                source_ip: rejected.source_ip.clone(),
                status: rejected.status,
            },
            SystemTime::now(),
        );
        self.publish(&ring, id, dropped);
    }

    /// Sends the exchange's new summary (and what was dropped) to the page.
    fn publish(&self, ring: &Ring, id: u64, dropped: Vec<u64>) {
        if !dropped.is_empty() {
            let _ = self.inner.changes.send(Change::Evicted(dropped));
        }
        if let Some(exchange) = ring.get(id) {
            let _ = self
                .inner
                .changes
                .send(Change::Upsert(Summary::of(exchange)));
        }
    }

    /// The kept exchanges matching `filter`, newest first.
    pub fn summaries(&self, filter: &Filter) -> Vec<Summary> {
        let ring = self.ring();
        ring.newest_first()
            .filter(|e| filter.matches(e))
            .take(filter.limit.unwrap_or(usize::MAX))
            .map(Summary::of)
            .collect()
    }

    /// One exchange in full (bodies as captured), if still kept.
    pub fn exchange(&self, id: u64) -> Option<Exchange> {
        self.ring().get(id).cloned()
    }

    /// Every kept exchange, oldest first.
    pub fn exchanges(&self) -> Vec<Exchange> {
        let ring = self.ring();
        let mut all: Vec<Exchange> = ring.newest_first().cloned().collect();
        all.reverse();
        all
    }

    /// Forgets every capture.
    pub fn clear(&self) {
        let mut ring = self.ring();
        ring.clear();
        let _ = self.inner.changes.send(Change::Cleared);
    }

    /// The agent's state, target and limits, as the page shows them.
    pub fn status(&self) -> Status {
        let ring = self.ring();
        let mut status = lock(&self.inner.status).clone();
        status.captured = ring.len();
        status.body_bytes = ring.body_bytes();
        status
    }

    /// The current list and status plus every change after them (taken
    /// under one lock, so nothing falls between).
    pub(crate) fn subscribe(&self) -> (broadcast::Receiver<Change>, Vec<Summary>, Status) {
        let ring = self.ring();
        let rx = self.inner.changes.subscribe();
        let list = ring.newest_first().map(Summary::of).collect();
        let mut status = lock(&self.inner.status).clone();
        status.captured = ring.len();
        status.body_bytes = ring.body_bytes();
        (rx, list, status)
    }

    /// Called by the agent when it starts: replays go through `forwarder`
    /// (the one real requests use, within the same in-flight cap), and the
    /// page follows `state`.
    pub(crate) fn attach(
        &self,
        forwarder: &Arc<Forwarder>,
        target: &Target,
        mut state: watch::Receiver<ConnectionState>,
    ) {
        *lock(&self.inner.forwarder) = Arc::downgrade(forwarder);
        self.update_status(|s| s.target = Some(target.base().to_owned()));
        let weak = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            loop {
                let current = state.borrow_and_update().clone();
                let Some(inner) = weak.upgrade() else { return };
                Inspector { inner }.update_status(|s| s.set_connection(&current));
                if state.changed().await.is_err() {
                    // The agent is gone; its last state was already shown.
                    return;
                }
            }
        });
        if let Some(old) = lock(&self.inner.follower).replace(task) {
            old.abort();
        }
    }

    fn update_status(&self, change: impl FnOnce(&mut Status)) {
        let status = {
            let mut status = lock(&self.inner.status);
            change(&mut status);
            status.clone()
        };
        let _ = self.inner.changes.send(Change::Status(status));
    }

    /// Re-sends exchange `id` to the local service through the agent's
    /// forwarder, as captured or with `edits`; the replay is captured as a
    /// new exchange marked `replay_of: id`. Returns its summary once the
    /// local service answered (or the request failed). Refused with
    /// [`ReplayError::Busy`] when `--max-in-flight` requests are already
    /// with the local service: a replay counts like a visitor's request.
    pub async fn replay(&self, id: u64, edits: Edits) -> Result<Summary, ReplayError> {
        let original = self.exchange(id).ok_or(ReplayError::NotFound(id))?;
        let request = replay::build(&original, edits)?;
        let forwarder = lock(&self.inner.forwarder)
            .upgrade()
            .ok_or(ReplayError::AgentStopped)?;
        let slot = forwarder.try_slot().ok_or(ReplayError::Busy {
            max_in_flight: forwarder.max_in_flight(),
        })?;
        let capture = Box::new(self.begin(&request, None, Some(id)));
        let new_id = capture.id();
        let started_at = SystemTime::now();
        // A task of its own: a page that goes away mid-replay does not
        // cancel it.
        let replay = tokio::spawn(async move {
            let (_, log) = forwarder
                .forward_recorded(request, None, Some(capture))
                .await;
            drop(slot);
            log
        });
        let log = replay.await.map_err(|_| ReplayError::Crashed)?;
        Ok(self
            .ring()
            .get(new_id)
            .map(Summary::of)
            .unwrap_or_else(|| Summary::gone(new_id, id, &log, started_at)))
    }
}

/// One exchange being captured. Dropped without [`Recording::finish`] (the
/// request task was aborted), it is recorded as cancelled.
pub struct Capture {
    inspector: Inspector,
    id: u64,
    started: tokio::time::Instant,
    finished: bool,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").field("id", &self.id).finish()
    }
}

/// Visitors' requests, as the agent's forwarder sees them.
impl Recorder for Inspector {
    fn record(&self, request: &HttpRequest, stored: Option<&[u8]>) -> Box<dyn Recording> {
        Box::new(self.begin(request, stored, None))
    }

    fn refused(&self, rejected: &protocol::policy::Rejected) {
        Inspector::refused(self, rejected);
    }
}

impl Capture {
    /// The exchange's id in the inspector.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn end(&mut self, failure: Option<capture::Failure>, duration: Duration) {
        self.finished = true;
        let inspector = &self.inspector;
        let mut ring = inspector.ring();
        if ring.finish(self.id, failure, duration) {
            inspector.publish(&ring, self.id, Vec::new());
            if let (Some(saver), Some(exchange)) = (&inspector.inner.saver, ring.get(self.id)) {
                saver.save(exchange);
            }
        }
    }
}

impl Recording for Capture {
    fn response(&mut self, status: u16, headers: &Headers, body: &[u8]) {
        let inspector = &self.inspector;
        let mut ring = inspector.ring();
        let body = Body::capture(body, ring.limits().per_body());
        let response = capture::CapturedResponse {
            status,
            headers: headers.clone(),
            body,
        };
        if let Some(dropped) = ring.set_response(self.id, response)
            && !dropped.is_empty()
        {
            let _ = inspector.inner.changes.send(Change::Evicted(dropped));
        }
    }

    fn finish(mut self: Box<Self>, outcome: &RequestOutcome, duration: Duration) {
        let failure = match outcome {
            RequestOutcome::Status(_) => None,
            RequestOutcome::Failed { code, message } => Some(capture::Failure {
                code: *code,
                message: message.clone(),
            }),
        };
        self.end(failure, duration);
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if !self.finished {
            let failure = capture::Failure {
                code: protocol::ErrorCode::LocalServiceUnavailable,
                message: "cancelled: the agent stopped or lost its connection before the local service answered".into(),
            };
            let elapsed = self.started.elapsed();
            self.end(Some(failure), elapsed);
        }
    }
}
