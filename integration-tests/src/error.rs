//! The harness's errors: each says what failed and what to install or set.

use std::{path::PathBuf, time::Duration};

/// A boxed source error (SDK errors are generic over the operation).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "ITEST_DYNAMODB={0:?} is not understood: use `localstack`, `moto` or an endpoint URL such as `http://127.0.0.1:4566`"
    )]
    UnknownBackend(String),

    #[error(
        "installing moto into {venv} failed while running `{step}`: {detail}\n\
         The moto backend needs Python 3 with the venv module (Debian/Ubuntu: `apt-get install python3-venv`) \
         and access to PyPI; or set ITEST_DYNAMODB to `localstack` (needs Docker) or to the URL of a running DynamoDB-compatible endpoint"
    )]
    MotoInstall {
        venv: PathBuf,
        step: String,
        detail: String,
    },

    #[error("moto_server did not start: {0}")]
    MotoStart(String),

    #[error(
        "LocalStack could not be started through Docker: {0}\n\
         Start a Docker engine (or set DOCKER_HOST), or set ITEST_DYNAMODB=moto (needs only Python 3)"
    )]
    LocalStack(#[source] BoxError),

    #[error(
        "the DynamoDB endpoint {endpoint} did not answer ListTables within {waited:?}: {last_error}"
    )]
    NotReady {
        endpoint: String,
        waited: Duration,
        last_error: String,
    },

    #[error("DynamoDB {operation} on table {table} failed: {source}")]
    Table {
        operation: &'static str,
        table: String,
        #[source]
        source: BoxError,
    },

    #[error("S3 {operation} on bucket {bucket} failed: {source}")]
    Bucket {
        operation: &'static str,
        bucket: String,
        #[source]
        source: BoxError,
    },

    #[error("the Lambda handler binaries could not be built or found: {0}")]
    Build(String),

    #[error("the emulator failed: {0}")]
    Emulator(#[source] BoxError),

    #[error("the proxy in front of {upstream} failed to start: {source}")]
    Interpose {
        upstream: String,
        #[source]
        source: BoxError,
    },

    #[error("the agent failed: {0}")]
    Agent(String),

    #[error("{0}")]
    Config(String),

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl HarnessError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }
}

/// Renders an error with its whole `source()` chain (SDK errors hide the
/// useful part in their sources).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
