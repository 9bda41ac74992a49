//! What the four binaries share: logging and configuration at cold start, and
//! the SDK configuration.

use crate::config::{ConfigError, LogConfig, process_env};
use crate::manifest::Function;

/// A function cannot start; the message names the function and the variable.
/// `Debug` prints the message too: it is what `main` shows when it exits.
#[derive(thiserror::Error)]
#[error("{function} cannot start: {source}")]
pub struct InitError {
    pub function: &'static str,
    #[source]
    pub source: ConfigError,
}

impl std::fmt::Debug for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Installs logging, then builds the function's configuration from the
/// process environment. On error the message is logged (so it reaches
/// CloudWatch) and returned, and `main` exits with it.
pub fn init<C>(
    function: &Function,
    build: impl FnOnce(&dyn Fn(&str) -> Option<String>) -> Result<C, ConfigError>,
) -> Result<C, InitError> {
    let fail = |source| InitError {
        function: function.name,
        source,
    };
    let log = match LogConfig::from_lookup(process_env) {
        Ok(log) => log,
        Err(e) => {
            // No logger yet: fall back to the defaults so the error is seen.
            crate::logging::init(&LogConfig {
                format: crate::config::LogFormat::Json,
                filter: "info".into(),
            });
            let err = fail(e);
            tracing::error!(error = %err, "init failed");
            return Err(err);
        }
    };
    crate::logging::init(&log);
    build(&process_env).map_err(|e| {
        let err = fail(e);
        tracing::error!(error = %err, "init failed");
        err
    })
}

/// The SDK configuration (region, credentials, endpoints). The DynamoDB
/// endpoint can be redirected with the standard `AWS_ENDPOINT_URL_DYNAMODB`
/// (or `AWS_ENDPOINT_URL`), which `aws-config` reads here.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
