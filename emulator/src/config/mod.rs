//! Configuration: the TOML file of `docs/contracts.md` ("Emulator wiring") or
//! the same structs built in code. Every field but `functions` has a default.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::{error::EmulatorError, limits};

mod function_url;
mod placeholders;

pub use function_url::{ClientDisconnect, FunctionUrlConfig, InvokeMode};
pub(crate) use placeholders::Placeholders;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Stage of the WebSocket API: `ws://HOST:PORT/{stage}`.
    #[serde(default = "default_stage")]
    pub stage: String,
    #[serde(default)]
    pub listen: ListenConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub functions: Vec<FunctionConfig>,
    #[serde(default)]
    pub websocket: WebSocketConfig,
    /// The HTTP API; without it no HTTP listener is opened.
    #[serde(default)]
    pub http: Option<HttpConfig>,
    /// Lambda Function URLs, each on its own listener.
    #[serde(default)]
    pub function_urls: Vec<FunctionUrlConfig>,
    /// The APIs' region (SigV4 scope of `@connections`) and the functions'
    /// `AWS_REGION`; without it the emulator's own `AWS_REGION` /
    /// `AWS_DEFAULT_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Account id in ARNs and `requestContext.accountId`.
    #[serde(default = "default_account_id")]
    pub account_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// WebSocket API and `@connections`; port 0 = ephemeral.
    #[serde(default = "default_listen")]
    pub websocket: SocketAddr,
    /// HTTP API; port 0 = ephemeral.
    #[serde(default = "default_listen")]
    pub http: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// WebSocket idle timeout (AWS: 10 min).
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    /// WebSocket maximum connection age (AWS: 2 h).
    #[serde(default = "default_max_age")]
    pub max_connection_age_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    pub name: String,
    /// Path of the custom-runtime binary (`bootstrap`), relative to the working directory.
    pub binary: PathBuf,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Most processes (concurrent invocations) at once; see `over_concurrency`.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// What an invocation over `concurrency` gets: throttled (AWS), or queued.
    #[serde(default)]
    pub over_concurrency: OverConcurrency,
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Whether the function's role allows `execute-api:ManageConnections`
    /// (`@connections`); without it its calls are refused with 403.
    #[serde(default)]
    pub manage_connections: bool,
    /// What happens to the `$disconnect` events this function is invoked for
    /// (AWS delivers them on a best-effort basis). Changeable at run time with
    /// [`crate::Emulator::set_disconnect_delivery`].
    #[serde(default)]
    pub disconnect_delivery: DisconnectDelivery,
}

/// What an invocation beyond a function's concurrency gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverConcurrency {
    /// Refused at once, as Lambda does (429 `TooManyRequestsException`; API
    /// Gateway turns it into its own error, nothing is retried).
    #[default]
    Throttle,
    /// Waits for a free process (not AWS's behaviour).
    Queue,
}

/// What happens to a `$disconnect` event. AWS documents `$disconnect` as
/// best effort: it may come late or never.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DisconnectDeliveryRepr")]
pub enum DisconnectDelivery {
    /// Invoked right after the connection ends.
    #[default]
    Deliver,
    /// Never invoked.
    Drop,
    /// Invoked this long after the connection ends.
    Delay(Duration),
}

/// TOML: `"deliver"`, `"drop"` or `{ delay_ms = 2500 }`.
#[derive(Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum DisconnectDeliveryRepr {
    Word(String),
    Delay { delay_ms: u64 },
}

impl TryFrom<DisconnectDeliveryRepr> for DisconnectDelivery {
    type Error = String;

    fn try_from(repr: DisconnectDeliveryRepr) -> Result<Self, Self::Error> {
        match repr {
            DisconnectDeliveryRepr::Word(word) => match word.as_str() {
                "deliver" => Ok(Self::Deliver),
                "drop" => Ok(Self::Drop),
                other => Err(format!(
                    "disconnect_delivery {other:?}: expected \"deliver\", \"drop\" or {{ delay_ms = N }}"
                )),
            },
            DisconnectDeliveryRepr::Delay { delay_ms } => {
                Ok(Self::Delay(Duration::from_millis(delay_ms)))
            }
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Route key (`$connect`, `$disconnect`, `$default`, or an `action` value) → function name.
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
    /// `requestContext.apiId`.
    #[serde(default)]
    pub api_id: Option<String>,
    /// Integration timeout (AWS: 29 s).
    #[serde(default)]
    pub integration_timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The function behind the `$default` route.
    pub function: String,
    /// Integration timeout → 503 (AWS: 30 s).
    #[serde(default = "default_http_timeout")]
    pub timeout_secs: u64,
    /// `requestContext.apiId`.
    #[serde(default)]
    pub api_id: Option<String>,
}

impl Config {
    pub fn from_toml_str(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn from_toml_file(path: &Path) -> Result<Self, EmulatorError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|source| EmulatorError::ParseConfig {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// A config with ephemeral listeners and no functions, for code to fill in.
    pub fn new(stage: impl Into<String>) -> Self {
        Self {
            stage: stage.into(),
            listen: ListenConfig::default(),
            limits: LimitsConfig::default(),
            functions: Vec::new(),
            websocket: WebSocketConfig::default(),
            http: None,
            function_urls: Vec::new(),
            region: None,
            account_id: default_account_id(),
        }
    }

    /// Checks what serde cannot: names that refer to functions, sane values.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        let invalid = |msg: String| Err(EmulatorError::InvalidConfig(msg));
        if self.stage.is_empty() || self.stage.contains('/') || self.stage == "_emulator" {
            return invalid(format!(
                "stage {:?} must be a non-empty path segment other than _emulator",
                self.stage
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for f in &self.functions {
            if !names.insert(f.name.as_str()) {
                return invalid(format!("function {:?} is defined twice", f.name));
            }
            if f.concurrency == 0 || f.timeout_secs == 0 || f.memory_mb == 0 {
                return invalid(format!(
                    "function {:?}: concurrency, timeout_secs and memory_mb must be at least 1",
                    f.name
                ));
            }
        }
        for (route, function) in &self.websocket.routes {
            if !names.contains(function.as_str()) {
                return invalid(format!(
                    "websocket route {route:?} names an unknown function {function:?}"
                ));
            }
        }
        if let Some(http) = &self.http
            && !names.contains(http.function.as_str())
        {
            return invalid(format!(
                "http.function names an unknown function {:?}",
                http.function
            ));
        }
        let mut with_url = std::collections::BTreeSet::new();
        for url in &self.function_urls {
            if !names.contains(url.function.as_str()) {
                return invalid(format!(
                    "function_urls names an unknown function {:?}",
                    url.function
                ));
            }
            // AWS has one URL per function (per alias, which the emulator lacks).
            if !with_url.insert(url.function.as_str()) {
                return invalid(format!(
                    "function {:?} has two function_urls entries",
                    url.function
                ));
            }
            if let Some(problem) = url.url_id_problem() {
                return invalid(problem);
            }
        }
        for f in &self.functions {
            for value in f.environment.values() {
                for name in placeholders::function_url_names(value) {
                    if !with_url.contains(name) {
                        return invalid(format!(
                            "function {:?}: ${{FUNCTION_URL:{name}}} names a function without a function_urls entry",
                            f.name
                        ));
                    }
                }
            }
        }
        if self.limits.idle_timeout_secs == 0 || self.limits.max_connection_age_secs == 0 {
            return invalid("limits must be at least 1 second".into());
        }
        Ok(())
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            websocket: default_listen(),
            http: default_listen(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: default_idle(),
            max_connection_age_secs: default_max_age(),
        }
    }
}

impl FunctionConfig {
    /// A function with the default timeout, concurrency and memory.
    pub fn new(name: impl Into<String>, binary: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            binary: binary.into(),
            environment: BTreeMap::new(),
            timeout_secs: default_timeout(),
            concurrency: default_concurrency(),
            over_concurrency: OverConcurrency::default(),
            memory_mb: default_memory(),
            manage_connections: false,
            disconnect_delivery: DisconnectDelivery::default(),
        }
    }
}

impl HttpConfig {
    pub fn new(function: impl Into<String>) -> Self {
        Self {
            function: function.into(),
            timeout_secs: default_http_timeout(),
            api_id: None,
        }
    }
}

fn default_stage() -> String {
    "local".into()
}
fn default_account_id() -> String {
    "123456789012".into()
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
fn default_idle() -> u64 {
    limits::WS_IDLE_TIMEOUT_DEFAULT_SECS
}
fn default_max_age() -> u64 {
    limits::WS_MAX_AGE_DEFAULT_SECS
}
fn default_timeout() -> u64 {
    limits::FUNCTION_TIMEOUT_DEFAULT_SECS
}
fn default_concurrency() -> usize {
    limits::FUNCTION_CONCURRENCY_DEFAULT
}
fn default_memory() -> u32 {
    limits::FUNCTION_MEMORY_DEFAULT_MB
}
fn default_http_timeout() -> u64 {
    limits::HTTP_INTEGRATION_TIMEOUT_DEFAULT_SECS
}

#[cfg(test)]
mod tests;
