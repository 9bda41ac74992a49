//! What the end-to-end tests run against: the local stack (default) or a
//! deployed stage (`ITEST_TARGET=deployed`, for the pipeline's gate).
//!
//! Deployed mode reads `ITEST_WEBSOCKET_URL` (`wss://…/stage`),
//! `ITEST_PUBLIC_BASE_URL` (the HTTP API or custom domain) and `ITEST_TOKEN`
//! (optional), e.g. from `terraform output`. Tests that need local powers
//! (reading the tables, a short forwarding timeout) skip themselves there,
//! saying why.

use crate::{
    error::HarnessError,
    stack::{Stack, StackConfig},
    tunnel::{Tunnel, agent_config},
};

pub const TARGET_ENV: &str = "ITEST_TARGET";
pub const WEBSOCKET_URL_ENV: &str = "ITEST_WEBSOCKET_URL";
pub const PUBLIC_BASE_URL_ENV: &str = "ITEST_PUBLIC_BASE_URL";
pub const TOKEN_ENV: &str = "ITEST_TOKEN";

/// A deployed stage.
#[derive(Clone)]
pub struct Deployed {
    pub websocket_url: String,
    pub public_base_url: String,
    pub token: Option<String>,
}

impl std::fmt::Debug for Deployed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("Deployed")
            .field("websocket_url", &self.websocket_url)
            .field("public_base_url", &self.public_base_url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Deployed {
    /// From the `ITEST_*` variables when `ITEST_TARGET=deployed`; `None` for
    /// the local stack.
    pub fn from_env() -> Result<Option<Deployed>, HarnessError> {
        let target = std::env::var(TARGET_ENV).unwrap_or_default();
        match target.as_str() {
            "" | "local" => Ok(None),
            "deployed" => {
                let var = |name: &str| {
                    std::env::var(name)
                        .ok()
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| {
                            HarnessError::Config(format!(
                                "{TARGET_ENV}=deployed needs {name} (see `terraform output`)"
                            ))
                        })
                };
                Ok(Some(Deployed {
                    websocket_url: var(WEBSOCKET_URL_ENV)?,
                    public_base_url: var(PUBLIC_BASE_URL_ENV)?.trim_end_matches('/').to_string(),
                    token: std::env::var(TOKEN_ENV).ok().filter(|v| !v.is_empty()),
                }))
            }
            other => Err(HarnessError::Config(format!(
                "{TARGET_ENV}={other:?}: expected `local` or `deployed`"
            ))),
        }
    }
}

/// One test's tunnel server: a fresh local stack, or the deployed stage.
#[derive(Debug)]
pub enum TestEnv {
    Local(Box<Stack>),
    Deployed(Deployed),
}

impl TestEnv {
    /// The local stack with [`StackConfig::for_tests`], or the deployed stage.
    pub async fn start() -> Result<TestEnv, HarnessError> {
        Self::start_with(StackConfig::for_tests()).await
    }

    /// Like [`TestEnv::start`] with a local configuration (ignored when deployed).
    pub async fn start_with(config: StackConfig) -> Result<TestEnv, HarnessError> {
        match Deployed::from_env()? {
            Some(deployed) => Ok(TestEnv::Deployed(deployed)),
            None => Ok(TestEnv::Local(Box::new(Stack::start(config).await?))),
        }
    }

    /// The local stack, or `None` after printing why the calling test skips.
    pub fn local_or_skip(&self, needs: &str) -> Option<&Stack> {
        match self {
            TestEnv::Local(stack) => Some(stack),
            TestEnv::Deployed(_) => {
                eprintln!("skipped on {TARGET_ENV}=deployed: this test needs {needs}");
                None
            }
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self, TestEnv::Local(_))
    }

    pub fn websocket_url(&self) -> &str {
        match self {
            TestEnv::Local(stack) => stack.websocket_url(),
            TestEnv::Deployed(d) => &d.websocket_url,
        }
    }

    /// Where visitors send requests (no trailing slash).
    pub fn public_base_url(&self) -> &str {
        match self {
            TestEnv::Local(stack) => stack.http_url(),
            TestEnv::Deployed(d) => &d.public_base_url,
        }
    }

    /// The agents' token: minted with the local stack's secret, or
    /// `ITEST_TOKEN` for a deployed stack.
    pub fn token(&self) -> Option<String> {
        match self {
            TestEnv::Local(stack) => stack.config().mint_token("itest", None),
            TestEnv::Deployed(d) => d.token.clone(),
        }
    }

    /// An agent configuration for `target` (a port or URL) with test timings.
    pub fn agent_config(&self, target: &str) -> Result<agent::Config, HarnessError> {
        agent_config(self.websocket_url(), self.token().as_deref(), target)
    }

    /// Starts an agent for `target` and waits for its public URL (the future
    /// borrows nothing, so several can be joined).
    pub fn expose(
        &self,
        target: &str,
    ) -> impl Future<Output = Result<Tunnel, HarnessError>> + Send + use<> {
        let config = self.agent_config(target);
        async move { Tunnel::start(config?).await }
    }

    /// Shuts the local stack down (and deletes its tables).
    pub async fn shutdown(self) {
        if let TestEnv::Local(stack) = self {
            stack.shutdown().await;
        }
    }
}
