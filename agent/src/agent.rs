//! The running agent: a supervisor task that connects, serves and reconnects,
//! and the handle that observes and stops it.

use std::sync::Arc;

use protocol::ConnectionEstablished;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::events::{AgentError, ConnectionState, Event};
use crate::forward::Forwarder;
use crate::inspect::Inspector;
use crate::session;
use crate::text::error_chain;

/// Starts agents.
pub struct Agent;

impl Agent {
    /// Spawns the agent on the current Tokio runtime. It connects, keeps the
    /// tunnel up and reconnects until [`AgentHandle::shutdown`], a fatal
    /// error, or the handle is dropped (which aborts it).
    pub fn start(config: Config) -> AgentHandle {
        Self::spawn(config, None)
    }

    /// [`Agent::start`], with every exchange captured into `inspector`
    /// (from the first request on); its replays go through this agent's
    /// forwarder, and its page follows this agent's connection state.
    pub fn start_with_inspector(config: Config, inspector: Inspector) -> AgentHandle {
        Self::spawn(config, Some(inspector))
    }

    fn spawn(config: Config, inspector: Option<Inspector>) -> AgentHandle {
        let (events_tx, events) = broadcast::channel(1024);
        let (state_tx, state) = watch::channel(ConnectionState::Connecting);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let ctx = session::Ctx {
            events: events_tx.clone(),
            state: state_tx,
            shutdown: shutdown_rx,
        };
        let task = tokio::spawn(run(config, inspector, ctx));
        AgentHandle {
            state,
            events,
            events_tx,
            shutdown,
            task: Some(task),
        }
    }
}

async fn run(
    config: Config,
    inspector: Option<Inspector>,
    ctx: session::Ctx,
) -> Result<(), AgentError> {
    let result = match Forwarder::new(&config) {
        Ok(mut forwarder) => {
            if let Some(inspector) = &inspector {
                forwarder = forwarder.with_recorder(inspector.clone());
            }
            let forwarder = Arc::new(forwarder);
            // Replays go through this forwarder (and its in-flight cap); the
            // page follows the connection state.
            if let Some(inspector) = &inspector {
                inspector.attach(&forwarder, &config.target, ctx.state.subscribe());
            }
            session::supervise(&config, forwarder, &ctx).await
        }
        Err(e) => Err(AgentError::ClientInit(error_chain(&e).into())),
    };
    let _ = ctx
        .state
        .send(ConnectionState::Stopped(result.clone().err()));
    let _ = ctx.events.send(Event::Stopped);
    result
}

/// Observes and controls a running agent. Dropping it aborts the agent.
pub struct AgentHandle {
    state: watch::Receiver<ConnectionState>,
    events: broadcast::Receiver<Event>,
    events_tx: broadcast::Sender<Event>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), AgentError>>>,
}

impl AgentHandle {
    /// The connection state, always current.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// A new event stream, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events_tx.subscribe()
    }

    /// The next event since the agent started (this receiver exists from the
    /// start, so nothing is missed unless over 1024 events go unread; those
    /// are skipped). `None` once the agent stopped and every event was read.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.events.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Waits until the tunnel is established (now or on a later reconnect);
    /// fails if the agent stops first.
    pub async fn established(&mut self) -> Result<ConnectionEstablished, AgentError> {
        let state = self
            .state
            .wait_for(|s| {
                matches!(
                    s,
                    ConnectionState::Connected(_) | ConnectionState::Stopped(_)
                )
            })
            .await
            .map_err(|_| AgentError::Stopped)?;
        match &*state {
            ConnectionState::Connected(e) => Ok(e.clone()),
            ConnectionState::Stopped(Some(err)) => Err(err.clone()),
            _ => Err(AgentError::Stopped),
        }
    }

    /// Asks the agent to stop: no new requests, in-flight ones finish within
    /// the grace period (or fail cleanly), close frame, done. Returns how the
    /// agent ended.
    pub async fn shutdown(mut self) -> Result<(), AgentError> {
        let _ = self.shutdown.send(true);
        self.wait().await
    }

    /// Asks the agent to stop without waiting (e.g. from a signal handler
    /// that keeps the handle elsewhere).
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until the agent stops: after a shutdown or a fatal error
    /// (a rejected token). Other failures are retried forever.
    pub async fn wait(&mut self) -> Result<(), AgentError> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        let result = match task.await {
            Ok(result) => result,
            Err(e) => Err(AgentError::Crashed(e.to_string().into())),
        };
        self.task = None;
        result
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
