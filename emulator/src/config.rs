//! Configuration: the TOML file of `docs/contracts.md` ("Emulator wiring") or
//! the same structs built in code. Every field but `functions` has a default.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::{error::EmulatorError, limits};

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
    /// Region given to functions when the emulator's own environment has none.
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
    /// Most processes (concurrent invocations) at once; more invocations wait.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
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
            memory_mb: default_memory(),
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

/// The bound addresses, as the placeholders of function environments see them.
#[derive(Debug, Clone)]
pub(crate) struct Placeholders {
    pub management_endpoint: String,
    pub websocket_url: String,
    pub http_url: String,
}

impl Placeholders {
    pub fn expand(&self, value: &str) -> String {
        value
            .replace("${MANAGEMENT_ENDPOINT}", &self.management_endpoint)
            .replace("${WEBSOCKET_URL}", &self.websocket_url)
            .replace("${HTTP_URL}", &self.http_url)
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
mod tests {
    use super::*;

    #[test]
    fn parses_the_contracts_example_with_defaults() {
        let config = Config::from_toml_str(
            r#"
stage = "local"
[listen]
websocket = "127.0.0.1:0"
http = "127.0.0.1:0"
[limits]
idle_timeout_secs = 600
max_connection_age_secs = 7200
[[functions]]
name = "connect"
binary = "target/debug/connect"
[functions.environment]
WEBSOCKET_API_ENDPOINT = "${MANAGEMENT_ENDPOINT}"
[websocket.routes]
"$connect" = "connect"
[http]
function = "connect"
"#,
        )
        .expect("parses");
        config.validate().expect("valid");
        assert_eq!(config.functions[0].timeout_secs, 30);
        assert_eq!(config.functions[0].concurrency, 10);
        assert_eq!(config.functions[0].memory_mb, 128);
        assert_eq!(config.http.as_ref().map(|h| h.timeout_secs), Some(30));
    }

    #[test]
    fn rejects_routes_to_unknown_functions() {
        let mut config = Config::new("local");
        config
            .websocket
            .routes
            .insert("$connect".into(), "nope".into());
        assert!(matches!(
            config.validate(),
            Err(EmulatorError::InvalidConfig(_))
        ));
    }

    #[test]
    fn expands_placeholders() {
        let p = Placeholders {
            management_endpoint: "http://127.0.0.1:1/local".into(),
            websocket_url: "ws://127.0.0.1:1/local".into(),
            http_url: "http://127.0.0.1:2".into(),
        };
        assert_eq!(
            p.expand("${MANAGEMENT_ENDPOINT}|${WEBSOCKET_URL}|${HTTP_URL}|$HOME"),
            "http://127.0.0.1:1/local|ws://127.0.0.1:1/local|http://127.0.0.1:2|$HOME"
        );
    }
}
