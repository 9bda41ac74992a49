//! [`EmulatorBuilder`]: binds the listeners, starts the function pools and
//! the APIs, and hands them to an [`Emulator`].

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tracing::info;

use super::{Emulator, FunctionUrlInfo, url_host};
use crate::{
    bodies::json_response,
    config::{Config, Placeholders},
    error::EmulatorError,
    function_url::FunctionUrl,
    http_api::{self, HttpSettings},
    lambda::{AwsEnvironment, FunctionSpec, Functions, LogSink},
    limits::WS_INTEGRATION_TIMEOUT,
    serve::serve,
    tasks::Tasks,
    websocket::{WebSocketApi, WebSocketSettings},
};

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
    pub(super) fn new(config: Config) -> Self {
        Self {
            config,
            log_sink: LogSink::default(),
            websocket_listener: None,
            http_listener: None,
            function_url_listeners: BTreeMap::new(),
        }
    }

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
            let served = FunctionUrl::serve(url, listener, addr.port(), &aws.region, &functions);
            servers.push(served.server);
            tasks.extend(served.tasks);
            function_urls.insert(
                url.function.clone(),
                FunctionUrlInfo {
                    url: format!("http://{}", url_host(addr)),
                    addr,
                    url_id: served.url_id,
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
