//! An agent (the real `agent` library, in-process) and the tunnel it holds.

use std::time::Duration;

use agent::{Agent, AgentHandle, BackoffConfig, ConnectionEstablished};

use crate::error::HarnessError;

/// How long an agent may take to get its public URL (cold starts included).
pub const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// An agent configuration with timings suited to tests: quick reconnects,
/// a short shutdown grace, a local timeout longer than the tests' forwarding
/// timeout (so the server's 504 is what a slow service produces).
pub fn agent_config(
    websocket_url: &str,
    token: Option<&str>,
    target: &str,
) -> Result<agent::Config, HarnessError> {
    let mut config = agent::Config::new(websocket_url, target)
        .map_err(|e| HarnessError::Config(e.to_string()))?;
    if let Some(token) = token {
        config = config.with_token(token);
    }
    config.request_timeout = Duration::from_secs(20);
    config.backoff = BackoffConfig {
        initial: Duration::from_millis(50),
        max: Duration::from_secs(1),
        jitter: 0.2,
        reset_after: Duration::from_secs(5),
    };
    config.shutdown_grace = Duration::from_secs(1);
    Ok(config)
}

/// A running agent with its established tunnel. Dropping it aborts the agent
/// (its WebSocket goes away without a close frame).
pub struct Tunnel {
    pub handle: AgentHandle,
    pub established: ConnectionEstablished,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("established", &self.established)
            .finish()
    }
}

impl Tunnel {
    /// Starts the agent and waits (at most [`ESTABLISH_TIMEOUT`]) for its URL.
    pub async fn start(config: agent::Config) -> Result<Tunnel, HarnessError> {
        Self::established(Agent::start(config)).await
    }

    /// [`Tunnel::start`], with every exchange captured into `inspector`.
    pub async fn start_with_inspector(
        config: agent::Config,
        inspector: agent::inspect::Inspector,
    ) -> Result<Tunnel, HarnessError> {
        Self::established(Agent::start_with_inspector(config, inspector)).await
    }

    async fn established(mut handle: AgentHandle) -> Result<Tunnel, HarnessError> {
        let established = tokio::time::timeout(ESTABLISH_TIMEOUT, handle.established())
            .await
            .map_err(|_| {
                HarnessError::Agent(format!(
                    "no connection_established within {ESTABLISH_TIMEOUT:?}"
                ))
            })?
            .map_err(|e| HarnessError::Agent(e.to_string()))?;
        Ok(Tunnel {
            handle,
            established,
        })
    }

    /// The URL the server gave the tunnel.
    pub fn public_url(&self) -> &str {
        &self.established.public_url
    }

    pub fn subdomain(&self) -> &str {
        &self.established.subdomain
    }

    pub fn connection_id(&self) -> &str {
        &self.established.connection_id
    }

    /// Graceful stop: close frame, in-flight requests finish or fail.
    pub async fn shutdown(self) -> Result<(), HarnessError> {
        self.handle
            .shutdown()
            .await
            .map_err(|e| HarnessError::Agent(e.to_string()))
    }
}
