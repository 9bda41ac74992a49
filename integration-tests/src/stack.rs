//! The whole tunnel on localhost: DynamoDB tables, the bodies bucket, the
//! four real handler binaries under the API Gateway emulator, wired with the
//! environment Terraform gives the functions (`docs/contracts.md`).
//!
//! [`StackBuilder`] is the one way to start it, for the end-to-end tests,
//! `local-stack` and the benchmark alike: [`StackConfig`] says what to run
//! (routing, timeouts, polling, authentication, which handler build,
//! processes and memory per function, logs); the builder adds what to run it
//! with (the process-wide backend or one the stack owns, and proxies
//! interposed in front of DynamoDB, S3 and `@connections`).

use std::{
    collections::{BTreeMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use emulator::{
    Emulator, FunctionConfig, HttpConfig, LogLine, LogSink, LogStream, OverConcurrency,
};
use handlers::config::Routing;
use handlers::manifest::{self, COMMON_OPTIONAL_ENV, FUNCTIONS, Function};

use crate::{
    backend::{self, DynamoDb},
    binaries::{self, HandlerSource},
    buckets::{self, Buckets},
    error::HarnessError,
    interpose::{Interposed, Observer},
    tables::Tables,
    tunnel::Tunnel,
};

/// Public domain for host routing (`<sub>.tunnel.localhost`: browsers and
/// curl resolve every `*.localhost` to the loopback address).
pub const DEFAULT_DOMAIN: &str = "tunnel.localhost";
/// Path routing on the emulator's HTTP API: `http://127.0.0.1:PORT/<sub>/…`.
/// `${HTTP_URL}` is filled in by the emulator, `{subdomain}` by connect.
pub const DEFAULT_PUBLIC_URL_TEMPLATE: &str = "${HTTP_URL}/{subdomain}";
/// WebSocket API stage.
pub const DEFAULT_STAGE: &str = "local";
/// `ITEST_LOG`: `capture` (default; printed when a test fails), `stderr`, `discard`.
pub const LOG_ENV: &str = "ITEST_LOG";
/// `ITEST_RUST_LOG`: the functions' `RUST_LOG` (default `info`).
pub const RUST_LOG_ENV: &str = "ITEST_RUST_LOG";

/// The functions' `@connections` endpoint (the emulator fills in its own
/// unless a proxy is interposed).
const WEBSOCKET_API_ENDPOINT: &str = "WEBSOCKET_API_ENDPOINT";

/// Lines of function output kept for a failing test.
const CAPTURED_LINES: usize = 4000;
/// Lines printed when a test fails.
const PRINTED_LINES: usize = 300;

/// Where the functions' output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logs {
    /// Kept in memory; printed when the stack is dropped during a panic.
    Capture,
    /// Straight to stderr, prefixed with the function name.
    Stderr,
    Discard,
}

impl Logs {
    /// From `ITEST_LOG`, else `default`.
    pub fn from_env_or(default: Logs) -> Logs {
        match std::env::var(LOG_ENV).as_deref() {
            Ok("stderr") => Logs::Stderr,
            Ok("discard") => Logs::Discard,
            Ok("capture") => Logs::Capture,
            _ => default,
        }
    }
}

/// What the stack runs. [`StackConfig::default`] is what `just dev` uses.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// `DOMAIN_NAME`: with host routing, Host `<sub>.<domain>` selects the
    /// tunnel `<sub>`.
    pub domain: String,
    /// `ROUTING` of forwarding: path (the default: tunnel URLs work with
    /// plain curl on 127.0.0.1, as on the bare execute-api URL) or host
    /// (`http://<sub>.<domain>:PORT`, as with a custom domain).
    pub routing: Routing,
    /// `PUBLIC_URL_TEMPLATE`, with the emulator's placeholders; `None`
    /// follows the routing (see [`StackConfig::public_url_template`]).
    pub public_url_template: Option<String>,
    pub stage: String,
    /// `REQUEST_TIMEOUT_MS` of forwarding; `None` = the handler's default (25 s).
    pub request_timeout: Option<Duration>,
    /// `POLL_INTERVAL_MS` of forwarding; `None` = its adaptive schedule.
    pub poll_interval: Option<Duration>,
    /// How long the emulator keeps a WebSocket connection (whole seconds),
    /// told to agents through the response function's
    /// `CONNECTION_MAX_AGE_SECONDS`; `None` = API Gateway's 2 hours.
    pub max_connection_age: Option<Duration>,
    /// WebSocket API + `@connections` listener (port 0 = ephemeral).
    pub websocket_listen: SocketAddr,
    /// HTTP API listener (port 0 = ephemeral).
    pub http_listen: SocketAddr,
    /// Processes of a function Terraform reserves nothing for (a reserved
    /// one gets its reservation and is throttled beyond it, as on AWS; see
    /// [`crate::concurrency`]).
    pub concurrency: usize,
    /// What an unreserved function does beyond `concurrency`: queue (the
    /// default: AWS's account pool would not throttle at this scale) or
    /// throttle.
    pub over_concurrency: OverConcurrency,
    /// Memory (MB) by function name, as `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`;
    /// a function not listed gets the emulator's default.
    pub memory_mb: BTreeMap<String, u32>,
    /// Which handler binaries: a debug build (default), a release build, or
    /// a directory of prebuilt ones.
    pub handlers: HandlerSource,
    pub logs: Logs,
    /// The functions' `RUST_LOG`.
    pub rust_log: String,
    /// The connect function's authentication: `Some(secret)` sets
    /// `AUTH_SECRET` (and [`Stack::agent_config`] mints a token with it for
    /// every agent), `None` sets `AUTH_MODE=disabled`.
    pub auth_secret: Option<protocol::auth::Secret>,
    /// `AUTH_SECRET_PARAMETER` instead of `AUTH_SECRET`, as Terraform sets
    /// it: connect reads the secret from this SSM parameter on the backend
    /// (moto and LocalStack serve SSM too; the test writes it).
    /// `auth_secret` still mints the agents' tokens.
    pub auth_secret_parameter: Option<String>,
    /// `AUTH_SECRET_REFRESH_SECONDS` (whole seconds); `None` = connect's
    /// default (60 s).
    pub auth_secret_refresh: Option<Duration>,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            domain: DEFAULT_DOMAIN.into(),
            routing: Routing::Path,
            public_url_template: None,
            stage: DEFAULT_STAGE.into(),
            request_timeout: None,
            poll_interval: None,
            max_connection_age: None,
            websocket_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            concurrency: crate::concurrency::UNRESERVED,
            over_concurrency: OverConcurrency::Queue,
            memory_mb: BTreeMap::new(),
            handlers: HandlerSource::default(),
            logs: Logs::from_env_or(Logs::Stderr),
            rust_log: std::env::var(RUST_LOG_ENV).unwrap_or_else(|_| "info".into()),
            // Off unless asked for (the benchmarks measure the data path);
            // the tests and the local stack turn it on with a fresh secret.
            auth_secret: None,
            auth_secret_parameter: None,
            auth_secret_refresh: None,
        }
    }
}

impl StackConfig {
    /// Ephemeral ports, captured logs.
    pub fn for_tests() -> Self {
        StackConfig {
            logs: Logs::from_env_or(Logs::Capture),
            auth_secret: Some(protocol::auth::Secret::generate()),
            ..StackConfig::default()
        }
    }

    /// A token for `user` (valid one day, optionally reserving `subdomain`),
    /// or `None` with authentication off.
    pub fn mint_token(&self, user: &str, subdomain: Option<&str>) -> Option<String> {
        let secret = self.auth_secret.as_ref()?;
        let now = agent::token::now_secs();
        let claims = protocol::auth::Claims::new(user, now, 86_400, subdomain);
        Some(protocol::auth::mint(secret, &claims))
    }

    /// `PUBLIC_URL_TEMPLATE`: the one given, else `${HTTP_URL}/{subdomain}`
    /// for path routing, `http://{subdomain}.<domain>:<port>` for host
    /// routing (the stack binds its HTTP port before it starts the
    /// functions, so the port is known).
    pub fn public_url_template(&self) -> String {
        match (&self.public_url_template, self.routing) {
            (Some(template), _) => template.clone(),
            (None, Routing::Path) => DEFAULT_PUBLIC_URL_TEMPLATE.into(),
            (None, Routing::Host) => format!(
                "http://{{subdomain}}.{}:{}",
                self.domain,
                self.http_listen.port()
            ),
        }
    }

    /// The environment of one function: exactly the variables the manifest
    /// says it reads (what Terraform sets), plus the local AWS wiring
    /// (endpoints of the DynamoDB and, for a function with S3 actions, S3
    /// the functions call).
    pub fn function_environment(
        &self,
        function: &Function,
        resources: &Resources<'_>,
    ) -> BTreeMap<String, String> {
        let mut known: BTreeMap<&str, String> = resources
            .tables
            .environment()
            .chain(resources.buckets.environment())
            .map(|(env, name)| (env, name.to_string()))
            .collect();
        known.insert("DOMAIN_NAME", self.domain.clone());
        known.insert("ROUTING", self.routing.as_str().into());
        known.insert("PUBLIC_URL_TEMPLATE", self.public_url_template());
        known.insert(WEBSOCKET_API_ENDPOINT, "${MANAGEMENT_ENDPOINT}".into());
        if let Some(timeout) = self.request_timeout {
            known.insert("REQUEST_TIMEOUT_MS", timeout.as_millis().to_string());
        }
        if let Some(interval) = self.poll_interval {
            known.insert("POLL_INTERVAL_MS", interval.as_millis().to_string());
        }
        if let Some(age) = self.max_connection_age {
            known.insert("CONNECTION_MAX_AGE_SECONDS", age.as_secs().to_string());
        }
        match (&self.auth_secret_parameter, &self.auth_secret) {
            (Some(parameter), _) => {
                known.insert("AUTH_SECRET_PARAMETER", parameter.clone());
            }
            (None, Some(secret)) => {
                known.insert(
                    "AUTH_SECRET",
                    String::from_utf8_lossy(secret.expose()).into_owned(),
                );
            }
            (None, None) => {
                known.insert("AUTH_MODE", "disabled".into());
            }
        }
        if let Some(refresh) = self.auth_secret_refresh {
            known.insert("AUTH_SECRET_REFRESH_SECONDS", refresh.as_secs().to_string());
        }
        known.insert("LOG_FORMAT", "text".into());
        known.insert("RUST_LOG", self.rust_log.clone());

        let mut env: BTreeMap<String, String> = function
            .required_env
            .iter()
            .chain(function.optional_env)
            .chain(COMMON_OPTIONAL_ENV)
            .filter_map(|name| known.get(name).map(|v| (name.to_string(), v.clone())))
            .collect();
        env.insert(
            "AWS_ENDPOINT_URL_DYNAMODB".into(),
            resources.dynamodb_endpoint.to_string(),
        );
        if !function.s3.is_empty() {
            // Also where the URLs it presigns point: agents reach the same S3.
            env.insert(
                "AWS_ENDPOINT_URL_S3".into(),
                resources.s3_endpoint.to_string(),
            );
        }
        if function.reads_auth_secret && self.auth_secret_parameter.is_some() {
            // The backend serves SSM too.
            env.insert(
                "AWS_ENDPOINT_URL_SSM".into(),
                resources.dynamodb_endpoint.to_string(),
            );
        }
        env.insert("AWS_REGION".into(), backend::REGION.into());
        env.insert("AWS_DEFAULT_REGION".into(), backend::REGION.into());
        // No credentials: the emulator gives each function its own (its
        // "role"), which `@connections` checks; local DynamoDB takes any.
        env
    }
}

/// What the functions are wired to: the tables and buckets, and the
/// endpoints they call them at (a proxy's when one is interposed).
#[derive(Debug, Clone, Copy)]
pub struct Resources<'a> {
    pub tables: &'a Tables,
    pub buckets: &'a Buckets,
    pub dynamodb_endpoint: &'a str,
    pub s3_endpoint: &'a str,
}

/// A running local tunnel. Dropping it stops the emulator (and every
/// function process); a stack that owns its backend stops that too.
pub struct Stack {
    emulator: Option<Emulator>,
    tables: Tables,
    buckets: Buckets,
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    dynamodb_endpoint: String,
    config: StackConfig,
    captured: Option<Arc<Mutex<VecDeque<String>>>>,
    log_task: Option<tokio::task::JoinHandle<()>>,
    /// Proxies in front of DynamoDB and `@connections`; dropped after the
    /// emulator.
    _interposed: Vec<Interposed>,
    /// Declared last: dropped after the emulator.
    owned_backend: Option<DynamoDb>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("websocket_url", &self.websocket_url())
            .field("http_url", &self.http_url())
            .field("tables", &self.tables)
            .field("buckets", &self.buckets)
            .field("dynamodb", &self.dynamodb_endpoint)
            .finish()
    }
}

impl Stack {
    /// A stack running `config`, on the process-wide backend unless told
    /// otherwise.
    pub fn builder(config: StackConfig) -> StackBuilder {
        StackBuilder {
            config,
            owned_backend: None,
            dynamodb_observer: None,
            s3_observer: None,
            connections_observer: None,
            function_overrides: Vec::new(),
        }
    }

    /// On the process-wide backend ([`DynamoDb::shared`]), with fresh tables.
    pub async fn start(config: StackConfig) -> Result<Stack, HarnessError> {
        Stack::builder(config).start().await
    }

    /// The running emulator (its settings can be changed while it runs,
    /// e.g. [`Emulator::set_disconnect_delivery`]).
    pub fn emulator(&self) -> &Emulator {
        self.emulator
            .as_ref()
            .expect("the emulator runs until shutdown")
    }

    /// `ws://127.0.0.1:PORT/{stage}`: where agents connect.
    pub fn websocket_url(&self) -> &str {
        self.emulator().websocket_url()
    }

    /// `http://127.0.0.1:PORT`: the HTTP API visitors use.
    pub fn http_url(&self) -> &str {
        self.emulator().http_url()
    }

    /// `http://127.0.0.1:PORT/{stage}`: the `@connections` endpoint.
    pub fn management_endpoint(&self) -> &str {
        self.emulator().management_endpoint()
    }

    pub fn websocket_addr(&self) -> SocketAddr {
        self.emulator().websocket_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.emulator().http_addr()
    }

    /// `DOMAIN_NAME`.
    pub fn domain(&self) -> &str {
        &self.config.domain
    }

    /// `ROUTING`.
    pub fn routing(&self) -> Routing {
        self.config.routing
    }

    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// The `Host` header that routes to `subdomain` (host routing).
    pub fn host_for(&self, subdomain: &str) -> String {
        format!("{subdomain}.{}", self.config.domain)
    }

    /// Path-routing URL of a tunnel: `http://127.0.0.1:PORT/<sub>` (path
    /// routing).
    pub fn path_url(&self, subdomain: &str) -> String {
        format!("{}/{subdomain}", self.http_url())
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// A DynamoDB client on the stack's backend (for poking the tables).
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamodb
    }

    pub fn buckets(&self) -> &Buckets {
        &self.buckets
    }

    /// An S3 client on the stack's backend (for looking into the buckets).
    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    pub fn dynamodb_endpoint(&self) -> &str {
        &self.dynamodb_endpoint
    }

    /// Per-function invocation counters.
    pub fn counters(&self) -> emulator::Counters {
        self.emulator().counters()
    }

    /// The functions' output captured so far (with [`Logs::Capture`]).
    pub fn captured_logs(&self) -> Vec<String> {
        self.captured
            .as_ref()
            .map(|c| {
                c.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An agent configuration for this stack, forwarding to `target` (a port
    /// or a URL), with timings suited to tests.
    pub fn agent_config(&self, target: &str) -> Result<agent::Config, HarnessError> {
        let token = self.config.mint_token("itest", None);
        crate::tunnel::agent_config(self.websocket_url(), token.as_deref(), target)
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

    /// Stops the emulator and its functions; deletes the tables on a shared
    /// backend; stops an owned backend.
    pub async fn shutdown(mut self) {
        if let Some(emulator) = self.emulator.take() {
            emulator.shutdown().await;
        }
        if self.owned_backend.is_none() {
            self.tables.delete(&self.dynamodb).await;
            self.buckets.delete(&self.s3).await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The emulator first: its processes use the backend.
        drop(self.emulator.take());
        if let Some(task) = self.log_task.take() {
            task.abort();
        }
        if std::thread::panicking() {
            let lines = self.captured_logs();
            if !lines.is_empty() {
                let skip = lines.len().saturating_sub(PRINTED_LINES);
                eprintln!(
                    "---- itest: last {} lines of function output ({}) ----",
                    lines.len() - skip,
                    self.tables.prefix()
                );
                for line in &lines[skip..] {
                    eprintln!("{line}");
                }
                eprintln!("---- end of function output ----");
            }
        }
    }
}

/// Starts a [`Stack`]: see [`Stack::builder`].
pub struct StackBuilder {
    config: StackConfig,
    owned_backend: Option<DynamoDb>,
    dynamodb_observer: Option<Arc<dyn Observer>>,
    s3_observer: Option<Arc<dyn Observer>>,
    connections_observer: Option<Arc<dyn Observer>>,
    function_overrides: Vec<(&'static str, FunctionOverride)>,
}

/// A change to one function's emulator configuration, applied after the
/// harness set it up as Terraform would (see [`StackBuilder::configure_function`]).
pub type FunctionOverride = Box<dyn Fn(&mut FunctionConfig) + Send + Sync>;

impl StackBuilder {
    /// Changes one function's configuration from what Terraform would give
    /// it, for a test of what a misconfigured or overloaded deployment does
    /// (e.g. `manage_connections = false`: its IAM role lacks the grant;
    /// `concurrency = 0`: reserved concurrency 0, every invocation throttled).
    pub fn configure_function(
        mut self,
        name: &'static str,
        change: impl Fn(&mut FunctionConfig) + Send + Sync + 'static,
    ) -> Self {
        self.function_overrides.push((name, Box::new(change)));
        self
    }

    /// Runs on `backend` and stops it with the stack (`local-stack`).
    pub fn owning(mut self, backend: DynamoDb) -> Self {
        self.owned_backend = Some(backend);
        self
    }

    /// Puts a proxy between the functions and DynamoDB that shows every
    /// call to `observer` (the tables are created and deleted around it).
    pub fn interpose_dynamodb(mut self, observer: Arc<dyn Observer>) -> Self {
        self.dynamodb_observer = Some(observer);
        self
    }

    /// Puts a proxy between the functions and S3 that shows every call to
    /// `observer`. The URLs forwarding presigns point at the proxy too, so
    /// the agents' transfers are shown as well.
    pub fn interpose_s3(mut self, observer: Arc<dyn Observer>) -> Self {
        self.s3_observer = Some(observer);
        self
    }

    /// Puts a proxy between the functions and the emulator's
    /// `@connections` endpoint that shows every call to `observer`.
    pub fn interpose_connections(mut self, observer: Arc<dyn Observer>) -> Self {
        self.connections_observer = Some(observer);
        self
    }

    /// Creates the tables, gets the handler binaries and starts the emulator
    /// running them with the environment Terraform sets.
    pub async fn start(self) -> Result<Stack, HarnessError> {
        let StackBuilder {
            mut config,
            owned_backend,
            dynamodb_observer,
            s3_observer,
            connections_observer,
            function_overrides,
        } = self;
        // Host routing's public URLs carry the HTTP port: bind it first.
        let mut http_listener = None;
        if config.routing == Routing::Host
            && config.public_url_template.is_none()
            && config.http_listen.port() == 0
        {
            let listener = std::net::TcpListener::bind(config.http_listen)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(HarnessError::io(format!(
                    "binding the HTTP API on {}",
                    config.http_listen
                )))?;
            config.http_listen = listener
                .local_addr()
                .map_err(HarnessError::io("the HTTP API's address"))?;
            http_listener = Some(listener);
        }
        let dynamodb_endpoint = match &owned_backend {
            Some(backend) => backend.endpoint().to_string(),
            None => DynamoDb::shared().await?.endpoint().to_string(),
        };
        // moto and LocalStack serve S3 on the DynamoDB endpoint.
        let s3_endpoint = dynamodb_endpoint.clone();
        let dynamodb = backend::client_for(&dynamodb_endpoint);
        let s3 = buckets::client_for(&s3_endpoint);
        let prefix = Tables::unique_prefix();
        let (tables, buckets, binaries) = tokio::try_join!(
            Tables::create(&dynamodb, &prefix),
            Buckets::create(&s3, &prefix),
            binaries::handlers_async(config.handlers.clone()),
        )?;

        let mut interposed = Vec::new();
        // Where the functions call `endpoint`: through a proxy when observed.
        let mut through = async |endpoint: &str, observer: Option<Arc<dyn Observer>>| {
            let Some(observer) = observer else {
                return Ok::<_, HarnessError>(endpoint.to_string());
            };
            let proxy = Interposed::start(endpoint, observer).await?;
            let url = proxy.url();
            interposed.push(proxy);
            Ok(url)
        };
        let functions_dynamodb = through(&dynamodb_endpoint, dynamodb_observer).await?;
        let functions_s3 = through(&s3_endpoint, s3_observer).await?;
        // The WebSocket listener is bound first when `@connections` gets a
        // proxy: the proxy must know where to forward before the functions
        // learn its address.
        let mut websocket_listener = None;
        let mut functions_management = None;
        if let Some(observer) = connections_observer {
            let listener = std::net::TcpListener::bind(config.websocket_listen)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(HarnessError::io(format!(
                    "binding the WebSocket API on {}",
                    config.websocket_listen
                )))?;
            let upstream = listener
                .local_addr()
                .map_err(HarnessError::io("the WebSocket API's address"))?;
            let proxy = Interposed::start(&format!("http://{upstream}"), observer).await?;
            functions_management = Some(format!("{}/{}", proxy.url(), config.stage));
            interposed.push(proxy);
            websocket_listener = Some(listener);
        }

        let mut emulator_config = emulator::Config::new(config.stage.clone());
        emulator_config.listen.websocket = config.websocket_listen;
        emulator_config.listen.http = config.http_listen;
        emulator_config.region = Some(backend::REGION.into());
        if let Some(age) = config.max_connection_age {
            emulator_config.limits.max_connection_age_secs = age.as_secs();
        }
        let reserved = crate::concurrency::terraform_reserved(&crate::paths::workspace_root())
            .map_err(|e| HarnessError::Emulator(e.into()))?;
        for function in FUNCTIONS {
            let mut function_config =
                FunctionConfig::new(function.name, binaries.path(function.name));
            let resources = Resources {
                tables: &tables,
                buckets: &buckets,
                dynamodb_endpoint: &functions_dynamodb,
                s3_endpoint: &functions_s3,
            };
            let mut environment = config.function_environment(function, &resources);
            if let Some(endpoint) = &functions_management
                && let Some(value) = environment.get_mut(WEBSOCKET_API_ENDPOINT)
            {
                value.clone_from(endpoint);
            }
            function_config.environment = environment;
            (
                function_config.concurrency,
                function_config.over_concurrency,
            ) = match reserved.get(function.name) {
                Some(&reserved) => (reserved, OverConcurrency::Throttle),
                None => (config.concurrency, config.over_concurrency),
            };
            // Its IAM role, as Terraform writes it from the manifest.
            function_config.manage_connections = !function.manage_connections.is_empty();
            if let Some(memory) = config.memory_mb.get(function.name) {
                function_config.memory_mb = *memory;
            }
            for (_, change) in function_overrides
                .iter()
                .filter(|(n, _)| *n == function.name)
            {
                change(&mut function_config);
            }
            emulator_config.functions.push(function_config);
        }
        wire_routes(&mut emulator_config);

        let (sink, captured, log_task) = match config.logs {
            Logs::Stderr => (LogSink::Stderr, None, None),
            Logs::Discard => (LogSink::Discard, None, None),
            Logs::Capture => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<LogLine>();
                let captured = Arc::new(Mutex::new(VecDeque::with_capacity(CAPTURED_LINES)));
                let sink = captured.clone();
                let task = tokio::spawn(async move {
                    while let Some(line) = rx.recv().await {
                        let stream = match line.stream {
                            LogStream::Stdout => "",
                            LogStream::Stderr => " (stderr)",
                        };
                        let mut lines = sink.lock().unwrap_or_else(|p| p.into_inner());
                        if lines.len() == CAPTURED_LINES {
                            lines.pop_front();
                        }
                        lines.push_back(format!("[{}{stream}] {}", line.function, line.line));
                    }
                });
                (LogSink::Channel(tx), Some(captured), Some(task))
            }
        };

        let mut emulator = Emulator::builder(emulator_config).log_sink(sink);
        if let Some(listener) = websocket_listener {
            emulator = emulator.websocket_listener(listener);
        }
        if let Some(listener) = http_listener {
            emulator = emulator.http_listener(listener);
        }
        let emulator = emulator
            .start()
            .await
            .map_err(|e| HarnessError::Emulator(e.into()))?;
        Ok(Stack {
            emulator: Some(emulator),
            tables,
            buckets,
            dynamodb,
            s3,
            dynamodb_endpoint,
            config,
            captured,
            log_task,
            _interposed: interposed,
            owned_backend,
        })
    }
}

/// The routes Terraform wires (`handlers::manifest` `Function::routes`): the
/// WebSocket API's `$connect`, `$disconnect` and `$default`, and the HTTP
/// API's catch-all.
fn wire_routes(emulator_config: &mut emulator::Config) {
    let routes = &mut emulator_config.websocket.routes;
    routes.insert("$connect".into(), manifest::CONNECT.name.into());
    routes.insert("$disconnect".into(), manifest::DISCONNECT.name.into());
    routes.insert("$default".into(), manifest::RESPONSE.name.into());
    emulator_config.http = Some(HttpConfig::new(manifest::FORWARDING.name));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Tables {
        Tables::named("p")
    }

    fn buckets() -> Buckets {
        Buckets::named("p")
    }

    /// The wiring of the unit tests: tables and buckets under `p`, DynamoDB
    /// at `http://db`, S3 at `http://s3`.
    fn env_of(config: &StackConfig, function: &Function) -> BTreeMap<String, String> {
        let (tables, buckets) = (tables(), buckets());
        config.function_environment(
            function,
            &Resources {
                tables: &tables,
                buckets: &buckets,
                dynamodb_endpoint: "http://db",
                s3_endpoint: "http://s3",
            },
        )
    }

    /// Each function gets exactly the variables its manifest entry lists
    /// (what Terraform sets), plus the local AWS wiring.
    #[test]
    fn function_environment_follows_the_manifest() {
        let config = StackConfig {
            request_timeout: Some(Duration::from_millis(2000)),
            rust_log: "debug".into(),
            ..StackConfig::default()
        };
        let env = env_of(&config, &manifest::FORWARDING);
        let keys: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "AWS_DEFAULT_REGION",
                "AWS_ENDPOINT_URL_DYNAMODB",
                "AWS_ENDPOINT_URL_S3",
                "AWS_REGION",
                "BODIES_BUCKET_NAME",
                "CONNECTIONS_TABLE_NAME",
                "DOMAIN_NAME",
                "LOG_FORMAT",
                "PENDING_REQUESTS_TABLE_NAME",
                "REQUEST_TIMEOUT_MS",
                "ROUTING",
                "RUST_LOG",
                "WEBSOCKET_API_ENDPOINT",
            ]
        );
        assert_eq!(env["ROUTING"], "path");
        assert_eq!(env["REQUEST_TIMEOUT_MS"], "2000");
        assert_eq!(env["WEBSOCKET_API_ENDPOINT"], "${MANAGEMENT_ENDPOINT}");
        assert_eq!(env["CONNECTIONS_TABLE_NAME"], "p-connections");
        assert_eq!(env["PENDING_REQUESTS_TABLE_NAME"], "p-pending");
        assert_eq!(env["DOMAIN_NAME"], "tunnel.localhost");
        assert_eq!(env["AWS_ENDPOINT_URL_DYNAMODB"], "http://db");
        assert_eq!(env["AWS_ENDPOINT_URL_S3"], "http://s3");
        assert_eq!(env["BODIES_BUCKET_NAME"], "p-bodies");

        let response = env_of(&config, &manifest::RESPONSE);
        assert!(!response.contains_key("AWS_ENDPOINT_URL_S3"));
        assert!(!response.contains_key("BODIES_BUCKET_NAME"));

        let connect = env_of(&config, &manifest::CONNECT);
        assert_eq!(connect["PUBLIC_URL_TEMPLATE"], "${HTTP_URL}/{subdomain}");
        assert!(!connect.contains_key("PENDING_REQUESTS_TABLE_NAME"));
        assert!(!connect.contains_key("WEBSOCKET_API_ENDPOINT"));
        // Authentication: off by default, a secret for tests.
        assert_eq!(connect["AUTH_MODE"], "disabled");
        let with_auth = StackConfig::for_tests();
        let connect = env_of(&with_auth, &manifest::CONNECT);
        assert!(connect["AUTH_SECRET"].len() >= protocol::auth::MIN_SECRET_BYTES);
        assert!(!connect.contains_key("AUTH_MODE"));
        let forwarding = env_of(&with_auth, &manifest::FORWARDING);
        assert!(!forwarding.contains_key("AUTH_SECRET"));
        let token = with_auth.mint_token("u", Some("app")).unwrap();
        let claims = protocol::auth::verify(
            with_auth.auth_secret.as_ref().unwrap(),
            &token,
            agent::token::now_secs(),
        )
        .unwrap();
        assert_eq!(claims.subdomain.as_deref(), Some("app"));
        assert_eq!(StackConfig::default().mint_token("u", None), None);
    }

    /// `POLL_INTERVAL_MS` reaches forwarding, the only function that reads
    /// it; unset, forwarding keeps its adaptive schedule.
    #[test]
    fn the_poll_interval_reaches_forwarding_only() {
        let config = StackConfig {
            poll_interval: Some(Duration::from_millis(100)),
            ..StackConfig::default()
        };
        for function in FUNCTIONS {
            let env = env_of(&config, function);
            let expected = (function.name == manifest::FORWARDING.name).then_some("100");
            assert_eq!(
                env.get("POLL_INTERVAL_MS").map(String::as_str),
                expected,
                "{}",
                function.name
            );
        }
        let adaptive = env_of(&StackConfig::default(), &manifest::FORWARDING);
        assert!(!adaptive.contains_key("POLL_INTERVAL_MS"));
    }

    /// The emulator's age limit is what the response function tells agents
    /// (`max_age_secs`), so they hand over before the emulator ends them.
    #[test]
    fn the_connection_age_reaches_the_response_function_only() {
        let config = StackConfig {
            max_connection_age: Some(Duration::from_secs(20)),
            ..StackConfig::default()
        };
        for function in FUNCTIONS {
            let env = env_of(&config, function);
            let expected = (function.name == manifest::RESPONSE.name).then_some("20");
            assert_eq!(
                env.get("CONNECTION_MAX_AGE_SECONDS").map(String::as_str),
                expected,
                "{}",
                function.name
            );
        }
        let default = env_of(&StackConfig::default(), &manifest::RESPONSE);
        assert!(!default.contains_key("CONNECTION_MAX_AGE_SECONDS"));
    }

    /// Host routing's public URL is `<sub>.<domain>` on the HTTP port; path
    /// routing's the emulator's URL and the subdomain; a template given wins.
    #[test]
    fn the_public_url_follows_the_routing() {
        let host = StackConfig {
            routing: Routing::Host,
            http_listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            ..StackConfig::default()
        };
        let env = env_of(&host, &manifest::CONNECT);
        assert_eq!(
            env["PUBLIC_URL_TEMPLATE"],
            "http://{subdomain}.tunnel.localhost:7070"
        );
        let forwarding = env_of(&host, &manifest::FORWARDING);
        assert_eq!(forwarding["ROUTING"], "host");
        let given = StackConfig {
            public_url_template: Some("https://{subdomain}.example.com".into()),
            ..host
        };
        assert_eq!(
            given.public_url_template(),
            "https://{subdomain}.example.com"
        );
    }

    /// A secret in SSM: connect gets the parameter's name (never the secret)
    /// and the backend as its SSM endpoint; no other function does.
    #[test]
    fn a_secret_parameter_reaches_connect_only() {
        let config = StackConfig {
            auth_secret_parameter: Some("/itest/secret".into()),
            auth_secret_refresh: Some(Duration::from_secs(1)),
            ..StackConfig::for_tests()
        };
        let connect = env_of(&config, &manifest::CONNECT);
        assert_eq!(connect["AUTH_SECRET_PARAMETER"], "/itest/secret");
        assert_eq!(connect["AUTH_SECRET_REFRESH_SECONDS"], "1");
        assert_eq!(connect["AWS_ENDPOINT_URL_SSM"], "http://db");
        assert!(!connect.contains_key("AUTH_SECRET") && !connect.contains_key("AUTH_MODE"));
        let response = env_of(&config, &manifest::RESPONSE);
        assert!(!response.contains_key("AWS_ENDPOINT_URL_SSM"));
    }
}
