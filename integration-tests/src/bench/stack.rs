//! A local stack for benchmarks: the same wiring as [`crate::Stack`] (tables,
//! the four handlers under the emulator, the environment Terraform sets), but
//! with binaries of our choosing (release), the DynamoDB endpoint of our
//! choosing (the counting proxy), `@connections` behind a counting proxy, the
//! Terraform memory sizes and an optional fixed `POLL_INTERVAL_MS`.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::Context as _;
use emulator::{Emulator, FunctionConfig, LogSink};
use handlers::manifest::{self, FUNCTIONS};

use crate::{
    StackConfig, Tables, Tunnel, backend,
    bench::proxy::{CountingProxy, Upstream},
};

/// Function name → executable.
pub type Binaries = BTreeMap<String, PathBuf>;

/// How to run one benchmark stack.
#[derive(Debug, Clone)]
pub struct BenchStackConfig {
    /// `POLL_INTERVAL_MS` of forwarding; `None` = adaptive.
    pub poll_interval: Option<Duration>,
    /// Processes per function: enough that visitors never queue for one
    /// (AWS would scale out the same way).
    pub concurrency: usize,
    /// Memory (MB) by function name, for `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
    pub memory_mb: BTreeMap<String, u32>,
    /// Function output.
    pub log_sink: LogSink,
}

/// A running benchmark stack. Dropping it stops the emulator.
pub struct BenchStack {
    emulator: Option<Emulator>,
    tables: Tables,
    client: aws_sdk_dynamodb::Client,
    management: CountingProxy,
}

impl BenchStack {
    /// Tables through `dynamodb_endpoint`, the handlers in `binaries`.
    pub async fn start(
        binaries: &Binaries,
        dynamodb_endpoint: &str,
        config: &BenchStackConfig,
    ) -> anyhow::Result<BenchStack> {
        let client = backend::client_for(dynamodb_endpoint);
        let tables = Tables::create(&client, &Tables::unique_prefix())
            .await
            .context("creating the tables")?;

        // Bind the WebSocket API first so that `@connections` can be proxied.
        let websocket = std::net::TcpListener::bind("127.0.0.1:0")?;
        websocket.set_nonblocking(true)?;
        let websocket_addr = websocket.local_addr()?;
        let management =
            CountingProxy::start(Upstream::Management, &format!("http://{websocket_addr}")).await?;

        let defaults = StackConfig::default();
        let mut emulator_config = emulator::Config::new(defaults.stage.clone());
        emulator_config.region = Some(backend::REGION.into());
        for function in FUNCTIONS {
            let binary = binaries
                .get(function.name)
                .with_context(|| format!("no {} binary", function.name))?;
            let mut function_config = FunctionConfig::new(function.name, binary);
            let mut env = defaults.function_environment(function, &tables, dynamodb_endpoint);
            if env.contains_key("WEBSOCKET_API_ENDPOINT") {
                env.insert(
                    "WEBSOCKET_API_ENDPOINT".into(),
                    format!("{}/{}", management.url(), defaults.stage),
                );
            }
            if function.name == manifest::FORWARDING.name
                && let Some(interval) = config.poll_interval
            {
                env.insert("POLL_INTERVAL_MS".into(), interval.as_millis().to_string());
            }
            // The benchmarks measure the data path: no agent tokens.
            if function.optional_env.contains(&"AUTH_MODE") && !env.contains_key("AUTH_SECRET") {
                env.insert("AUTH_MODE".into(), "disabled".into());
            }
            // Logs cost time; the benchmark keeps warnings only.
            env.insert("RUST_LOG".into(), "warn".into());
            function_config.environment = env;
            function_config.concurrency = config.concurrency;
            // Its IAM role, as Terraform writes it from the manifest.
            function_config.manage_connections = function.posts_to_connections;
            if let Some(memory) = config.memory_mb.get(function.name) {
                function_config.memory_mb = *memory;
            }
            emulator_config.functions.push(function_config);
        }
        crate::stack::wire_routes(&mut emulator_config);

        let emulator = Emulator::builder(emulator_config)
            .log_sink(config.log_sink.clone())
            .websocket_listener(websocket)
            .start()
            .await
            .context("starting the emulator")?;
        Ok(BenchStack {
            emulator: Some(emulator),
            tables,
            client,
            management,
        })
    }

    fn emulator(&self) -> &Emulator {
        self.emulator
            .as_ref()
            .expect("the emulator runs until shutdown")
    }

    /// The table prefix: the proxy's counts of this stack.
    pub fn prefix(&self) -> &str {
        self.tables.prefix()
    }

    pub fn counters(&self) -> emulator::Counters {
        self.emulator().counters()
    }

    /// The counting proxy in front of `@connections`.
    pub fn management(&self) -> &CountingProxy {
        &self.management
    }

    /// An agent for `target` (a port), with its public URL.
    pub async fn expose(&self, target: &str) -> anyhow::Result<Tunnel> {
        let config = crate::tunnel::agent_config(self.emulator().websocket_url(), None, target)?;
        Ok(Tunnel::start(config).await?)
    }

    /// Stops the emulator and deletes the tables.
    pub async fn shutdown(mut self) {
        if let Some(emulator) = self.emulator.take() {
            emulator.shutdown().await;
        }
        self.tables.delete(&self.client).await;
    }
}

impl Drop for BenchStack {
    fn drop(&mut self) {
        drop(self.emulator.take());
    }
}
