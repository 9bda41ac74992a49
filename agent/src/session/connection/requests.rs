//! The requests one connection forwards: a task each, owned here (dropping
//! [`Requests`] aborts them), and the answers they queue for the socket.

use std::collections::HashMap;
use std::sync::Arc;

use protocol::HttpRequest;
use tokio::sync::{broadcast, mpsc};
use tokio::task::{self, JoinError, JoinSet};
use tracing::Instrument as _;

use crate::events::Event;
use crate::forward::{Forwarder, Slot};
use crate::wire;

/// Answers waiting for the socket: at most this many messages of at most
/// 128 KB (8 MB); a task with more waits for room.
const OUT_QUEUE_MESSAGES: usize = 64;

/// How a request task ended, as [`JoinSet::join_next_with_id`] says it.
pub(super) type Joined = Result<(task::Id, ()), JoinError>;

pub(super) struct Requests {
    tasks: JoinSet<()>,
    /// The request each task forwards, to answer it when the task cannot.
    ids: HashMap<task::Id, String>,
    /// Where tasks queue their answers, encoded, for the socket.
    answers: mpsc::Sender<String>,
}

impl Requests {
    /// No request yet, and the receiving end of the answers' queue.
    pub(super) fn new() -> (Requests, mpsc::Receiver<String>) {
        let (answers, queued) = mpsc::channel(OUT_QUEUE_MESSAGES);
        let requests = Requests {
            tasks: JoinSet::new(),
            ids: HashMap::new(),
            answers,
        };
        (requests, queued)
    }

    /// How many tasks have not been reaped yet.
    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Forwards `request` in a task of its own, which queues the answer's
    /// message, then gives `slot` back and reports the request on `events`.
    pub(super) fn spawn(
        &mut self,
        forwarder: &Arc<Forwarder>,
        slot: Slot,
        request: HttpRequest,
        events: &broadcast::Sender<Event>,
    ) {
        let forwarder = Arc::clone(forwarder);
        let out = self.answers.clone();
        let events = events.clone();
        let request_id = request.request_id.clone();
        let span = tracing::info_span!("request", id = %request_id);
        let handle = self.tasks.spawn(
            async move {
                let (answer, log) = forwarder.forward(request).await;
                tracing::debug!(outcome = ?log.outcome, duration = ?log.duration, "request done");
                match wire::answer_json(answer) {
                    // Queued as soon as the channel has room.
                    Ok(json) => {
                        let _ = out.send(json).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot answer the request with an error")
                    }
                }
                drop(slot);
                let _ = events.send(Event::Request(log));
            }
            .instrument(span),
        );
        self.ids.insert(handle.id(), request_id);
    }

    /// The next task to end; `None` while there is none.
    pub(super) async fn join_next(&mut self) -> Option<Joined> {
        self.tasks.join_next_with_id().await
    }

    /// Forgets a task that ended; the id of its request when it panicked,
    /// which leaves the request unanswered.
    pub(super) fn ended(&mut self, joined: Joined) -> Option<String> {
        let id = match &joined {
            Ok((id, ())) => *id,
            Err(e) => e.id(),
        };
        let request_id = self.ids.remove(&id);
        match joined {
            Err(e) if e.is_panic() => {
                tracing::error!(?request_id, "request task panicked");
                request_id
            }
            _ => None,
        }
    }

    /// Aborts every task and waits for them; the ids of the requests left
    /// unanswered (those that finished first have queued their answer).
    pub(super) async fn abort(&mut self) -> Vec<String> {
        self.tasks.abort_all();
        while let Some(joined) = self.tasks.join_next_with_id().await {
            if let Ok((id, ())) = joined {
                self.ids.remove(&id);
            }
        }
        self.ids.drain().map(|(_, id)| id).collect()
    }

    /// Aborts every task without waiting.
    pub(super) fn abort_all(&mut self) {
        self.tasks.abort_all();
    }
}
