//! [`Emulator`]: starts the listeners and function pools from a [`Config`] and
//! owns them; dropping it (or [`Emulator::shutdown`]) stops every task and
//! kills every function process.

mod builder;

use std::{collections::BTreeMap, net::SocketAddr};

use crate::{
    config::{Config, DisconnectDelivery, Placeholders},
    counters::Counters,
    error::EmulatorError,
    lambda::Functions,
    sigv4::AwsCredentials,
    tasks::{AbortOnDrop, Tasks},
};

pub use crate::lambda::{LogLine, LogSink, LogStream};
pub use builder::EmulatorBuilder;

/// `host:port` to put in a URL: a wildcard bind is reached on loopback.
pub(crate) fn url_host(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let loopback = if addr.is_ipv4() {
            "127.0.0.1".parse()
        } else {
            "::1".parse()
        };
        SocketAddr::new(loopback.unwrap_or(addr.ip()), addr.port())
    } else {
        addr
    }
}

/// A bound Function URL.
#[derive(Debug)]
struct FunctionUrlInfo {
    url: String,
    addr: SocketAddr,
    url_id: String,
}

/// A running emulator. Dropping it stops everything, also when a test panics.
#[derive(Debug)]
pub struct Emulator {
    region: String,
    placeholders: Placeholders,
    websocket_addr: SocketAddr,
    http_addr: SocketAddr,
    function_urls: BTreeMap<String, FunctionUrlInfo>,
    functions: Functions,
    servers: Vec<AbortOnDrop>,
    tasks: Vec<Tasks>,
}

impl Emulator {
    /// Binds the listeners of `config` and starts serving.
    pub async fn start(config: Config) -> Result<Self, EmulatorError> {
        Self::builder(config).start().await
    }

    pub fn builder(config: Config) -> EmulatorBuilder {
        EmulatorBuilder::new(config)
    }

    /// `ws://HOST:PORT/{stage}`.
    pub fn websocket_url(&self) -> &str {
        &self.placeholders.websocket_url
    }

    /// `http://HOST:PORT/{stage}`: the `endpoint_url` of the management API client.
    pub fn management_endpoint(&self) -> &str {
        &self.placeholders.management_endpoint
    }

    /// `http://HOST:PORT` of the HTTP API (`$default` stage).
    pub fn http_url(&self) -> &str {
        &self.placeholders.http_url
    }

    /// `http://HOST:PORT/_emulator/counters`.
    pub fn counters_url(&self) -> String {
        format!(
            "http://{}/_emulator/counters",
            url_host(self.websocket_addr)
        )
    }

    /// `http://HOST:PORT` of `function`'s Function URL (what
    /// `${FUNCTION_URL:function}` expands to).
    pub fn function_url(&self, function: &str) -> Option<&str> {
        self.function_urls.get(function).map(|u| u.url.as_str())
    }

    /// Every Function URL: (function, `http://HOST:PORT`).
    pub fn function_urls(&self) -> impl Iterator<Item = (&str, &str)> {
        self.function_urls
            .iter()
            .map(|(function, u)| (function.as_str(), u.url.as_str()))
    }

    pub fn function_url_addr(&self, function: &str) -> Option<SocketAddr> {
        self.function_urls.get(function).map(|u| u.addr)
    }

    /// The URL id of `function`'s Function URL (`requestContext.apiId`).
    pub fn function_url_id(&self, function: &str) -> Option<&str> {
        self.function_urls.get(function).map(|u| u.url_id.as_str())
    }

    pub fn websocket_addr(&self) -> SocketAddr {
        self.websocket_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The APIs' region: what `@connections` signatures must be scoped to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The credentials `function`'s processes get (its "role"), for a test
    /// or harness that calls `@connections` as that function would.
    pub fn function_credentials(&self, function: &str) -> Option<AwsCredentials> {
        self.functions.credentials(function)
    }

    /// Changes what happens to the `$disconnect` events `function` is invoked
    /// for, from the next connection that ends on.
    pub fn set_disconnect_delivery(
        &self,
        function: &str,
        delivery: DisconnectDelivery,
    ) -> Result<(), EmulatorError> {
        if self.functions.set_disconnect_delivery(function, delivery) {
            Ok(())
        } else {
            Err(EmulatorError::InvalidConfig(format!(
                "no function named {function:?}"
            )))
        }
    }

    /// Sets `function`'s reserved concurrency to 0 (`true`: every invocation
    /// from now on is throttled, as `PutFunctionConcurrency` with 0 does on
    /// AWS) or back to its configured concurrency (`false`), for tests of
    /// what a throttled deployment shows its visitors and agents.
    pub fn set_reserved_zero(&self, function: &str, on: bool) -> Result<(), EmulatorError> {
        if self.functions.set_reserved_zero(function, on) {
            Ok(())
        } else {
            Err(EmulatorError::InvalidConfig(format!(
                "no function named {function:?}"
            )))
        }
    }

    /// A snapshot of every function's counters.
    pub fn counters(&self) -> Counters {
        self.functions.counters()
    }

    /// Stops listening, ends connections and kills every function process.
    pub async fn shutdown(mut self) {
        self.stop();
        // Let the aborted tasks run their destructors.
        tokio::task::yield_now().await;
    }

    fn stop(&mut self) {
        self.servers.clear();
        for tasks in &self.tasks {
            tasks.abort_all();
        }
        self.functions.close();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}
