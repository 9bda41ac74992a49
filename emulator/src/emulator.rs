//! [`Emulator`]: starts the listeners and function pools from a [`Config`] and
//! owns them; dropping it (or [`Emulator::shutdown`]) stops every task and
//! kills every function process.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tracing::info;

use crate::{
    bodies::json_response,
    config::{Config, DisconnectDelivery, InvokeMode, Placeholders},
    counters::Counters,
    error::EmulatorError,
    function_url::FunctionUrl,
    http_api::{self, HttpSettings},
    ids,
    lambda::{AwsEnvironment, FunctionSpec, Functions},
    limits::WS_INTEGRATION_TIMEOUT,
    serve::serve,
    sigv4::AwsCredentials,
    tasks::{AbortOnDrop, Tasks},
    websocket::{WebSocketApi, WebSocketSettings},
};

pub use crate::lambda::{LogLine, LogSink, LogStream};

/// Options beyond the config: where function output goes, pre-bound listeners.
#[derive(Debug)]
pub struct EmulatorBuilder {
    config: Config,
    log_sink: LogSink,
    websocket_listener: Option<std::net::TcpListener>,
    http_listener: Option<std::net::TcpListener>,
    function_url_listeners: BTreeMap<String, std::net::TcpListener>,
}

impl EmulatorBuilder {
    /// Where function stdout/stderr lines go (default: the emulator's stderr).
    pub fn log_sink(mut self, sink: LogSink) -> Self {
        self.log_sink = sink;
        self
    }

    /// Serve the WebSocket API on this socket instead of `listen.websocket`.
    pub fn websocket_listener(mut self, listener: std::net::TcpListener) -> Self {
        self.websocket_listener = Some(listener);
        self
    }

    /// Serve the HTTP API on this socket instead of `listen.http`.
    pub fn http_listener(mut self, listener: std::net::TcpListener) -> Self {
        self.http_listener = Some(listener);
        self
    }

    /// Serve the Function URL of `function` on this socket instead of its `listen`.
    pub fn function_url_listener(
        mut self,
        function: impl Into<String>,
        listener: std::net::TcpListener,
    ) -> Self {
        self.function_url_listeners
            .insert(function.into(), listener);
        self
    }

    pub async fn start(mut self) -> Result<Emulator, EmulatorError> {
        let config = self.config;
        config.validate()?;
        if let Some(function) = self
            .function_url_listeners
            .keys()
            .find(|f| !config.function_urls.iter().any(|u| &u.function == *f))
        {
            return Err(EmulatorError::InvalidConfig(format!(
                "a listener was given for the Function URL of {function:?}, which has no function_urls entry"
            )));
        }
        let websocket = listen(self.websocket_listener, config.listen.websocket).await?;
        let http = listen(self.http_listener, config.listen.http).await?;
        let websocket_addr = websocket.local_addr().map_err(EmulatorError::Listener)?;
        let http_addr = http.local_addr().map_err(EmulatorError::Listener)?;
        let mut url_listeners = Vec::new();
        for url in &config.function_urls {
            let given = self.function_url_listeners.remove(&url.function);
            let listener = listen(given, url.listen).await?;
            let addr = listener.local_addr().map_err(EmulatorError::Listener)?;
            url_listeners.push((url, listener, addr));
        }
        let placeholders = Placeholders {
            management_endpoint: format!("http://{}/{}", url_host(websocket_addr), config.stage),
            websocket_url: format!("ws://{}/{}", url_host(websocket_addr), config.stage),
            http_url: format!("http://{}", url_host(http_addr)),
            function_urls: url_listeners
                .iter()
                .map(|(url, _, addr)| (url.function.clone(), format!("http://{}", url_host(*addr))))
                .collect(),
        };

        let aws = AwsEnvironment::new(config.region.as_deref(), &config.account_id);
        let functions = Functions::new(
            config
                .functions
                .iter()
                .map(|f| {
                    (
                        FunctionSpec::new(f, &aws, &placeholders, self.log_sink.clone()),
                        f.concurrency,
                    )
                })
                .collect(),
        );

        let websocket_api = WebSocketApi::new(
            WebSocketSettings {
                stage: config.stage.clone(),
                api_id: config
                    .websocket
                    .api_id
                    .clone()
                    .unwrap_or_else(|| "localwsapi".into()),
                routes: config.websocket.routes.clone(),
                idle_timeout: Duration::from_secs(config.limits.idle_timeout_secs),
                max_age: Duration::from_secs(config.limits.max_connection_age_secs),
                integration_timeout: config
                    .websocket
                    .integration_timeout_secs
                    .map_or(WS_INTEGRATION_TIMEOUT, Duration::from_secs),
                port: websocket_addr.port(),
                region: aws.region.clone(),
            },
            functions.clone(),
        );
        let websocket_connections = Tasks::default();
        let websocket_server = {
            let api = websocket_api.clone();
            serve(
                websocket,
                websocket_connections.clone(),
                "websocket",
                true,
                move |peer, req| api.clone().handle(peer, req),
            )
        };

        let http_settings = config.http.as_ref().map(|h| {
            Arc::new(HttpSettings {
                function: h.function.clone(),
                timeout: Duration::from_secs(h.timeout_secs),
                api_id: h.api_id.clone().unwrap_or_else(|| "localhttp1".into()),
                account_id: config.account_id.clone(),
                port: http_addr.port(),
            })
        });
        let http_connections = Tasks::default();
        let http_server = {
            let functions = functions.clone();
            serve(
                http,
                http_connections.clone(),
                "http",
                false,
                move |peer, req| {
                    let functions = functions.clone();
                    let settings = http_settings.clone();
                    async move {
                        match settings {
                            Some(settings) => {
                                http_api::handle(&settings, &functions, peer, req).await
                            }
                            None => json_response(
                                http::StatusCode::NOT_FOUND,
                                r#"{"message":"Not Found"}"#,
                            ),
                        }
                    }
                },
            )
        };

        let mut servers = vec![websocket_server, http_server];
        let mut tasks = vec![
            websocket_connections,
            http_connections,
            websocket_api.tasks(),
        ];
        let mut function_urls = BTreeMap::new();
        for (url, listener, addr) in url_listeners {
            let url_id = url.url_id.clone().unwrap_or_else(ids::new_function_url_id);
            let served = Arc::new(FunctionUrl {
                function: url.function.clone(),
                domain_name: format!("{url_id}.lambda-url.{}.on.aws", aws.region),
                url_id: url_id.clone(),
                port: addr.port(),
                streaming: (url.invoke_mode == InvokeMode::ResponseStream)
                    .then_some(url.client_disconnect),
                functions: functions.clone(),
                invocations: Tasks::default(),
            });
            let connections = Tasks::default();
            tasks.push(connections.clone());
            tasks.push(served.invocations.clone());
            servers.push(serve(
                listener,
                connections,
                "function_url",
                false,
                move |peer, req| served.clone().handle(peer, req),
            ));
            function_urls.insert(
                url.function.clone(),
                FunctionUrlInfo {
                    url: format!("http://{}", url_host(addr)),
                    addr,
                    url_id,
                },
            );
        }
        let emulator = Emulator {
            region: aws.region,
            placeholders,
            websocket_addr,
            http_addr,
            function_urls,
            functions,
            servers,
            tasks,
        };
        info!(websocket = %emulator.websocket_url(), http = %emulator.http_url(), "emulator started");
        Ok(emulator)
    }
}

async fn listen(
    given: Option<std::net::TcpListener>,
    addr: SocketAddr,
) -> Result<TcpListener, EmulatorError> {
    match given {
        Some(listener) => {
            listener
                .set_nonblocking(true)
                .map_err(EmulatorError::Listener)?;
            TcpListener::from_std(listener).map_err(EmulatorError::Listener)
        }
        None => TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source }),
    }
}

/// `host:port` to put in a URL: a wildcard bind is reached on loopback.
fn url_host(addr: SocketAddr) -> SocketAddr {
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
        EmulatorBuilder {
            config,
            log_sink: LogSink::default(),
            websocket_listener: None,
            http_listener: None,
            function_url_listeners: BTreeMap::new(),
        }
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
