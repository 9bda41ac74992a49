//! What the supervisor shares with each connection ([`Ctx`]), and what each
//! connection tells it back: how it ended ([`End`]).

use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::events::{AgentError, ConnectionState, Event};

/// What the supervisor shares with each connection.
pub(crate) struct Ctx {
    pub events: broadcast::Sender<Event>,
    pub state: watch::Sender<ConnectionState>,
    pub shutdown: watch::Receiver<bool>,
}

impl Ctx {
    pub(super) fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    pub(super) fn shutdown_requested(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Resolves once shutdown is requested (or the handle is gone).
    pub(super) async fn shutdown_signal(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// How one connection ended.
pub(super) enum End {
    /// Shutdown requested and done.
    Shutdown,
    /// Do not retry.
    Fatal(AgentError),
    /// Retry after a delay. `up_for` is how long it was established.
    Lost { reason: String, up_for: Duration },
    /// The server closed the connection with 1001 "going away": what API
    /// Gateway (and the emulator) send at the connection's age or idle
    /// limit. The agent resumes at once, without backoff (if it was up for
    /// `GOING_AWAY_RESUME_AFTER`).
    GoingAway { reason: String, up_for: Duration },
    /// Handed its tunnel over to a successor and closed (or died after
    /// that): the successor carries on.
    Retired,
    /// A successor that never took the tunnel over (it could not be opened,
    /// got another URL, or the old connection ended while it waited to try
    /// again), and why; `retry`: worth another attempt. The connection it
    /// was to succeed decides how the chain ends.
    NotTakenOver { reason: String, retry: bool },
}
