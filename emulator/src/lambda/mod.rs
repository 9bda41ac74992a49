//! Lambda: a pool of processes per function, scaled out on demand up to the
//! function's concurrency, one invocation per process at a time, warm
//! processes reused (`pool`). Invocation and result meet through `mpsc` +
//! `oneshot` (see `runtime_api`); a streamed response is relayed as the
//! function writes it (`stream`).

mod pool;
pub(crate) mod runtime_api;
pub(crate) mod stream;
mod worker;

use std::{collections::BTreeMap, fmt, path::PathBuf, sync::Arc, time::Duration};

use tokio::sync::mpsc;

use crate::{
    config::{DisconnectDelivery, FunctionConfig, OverConcurrency, Placeholders},
    counters::LiveCounters,
    limits::{LAMBDA_PAYLOAD_MAX, LAMBDA_STREAM_MAX},
    sigv4::AwsCredentials,
};
pub(crate) use pool::Functions;

/// Why an invocation failed. API Gateway maps each one to its own status.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function returned an error ({error_type}): {message}")]
    Function { error_type: String, message: String },
    #[error("the function timed out after {0:?}")]
    Timeout(Duration),
    #[error("the function's init phase failed ({error_type}): {message}")]
    Init { error_type: String, message: String },
    #[error("the function's init phase did not reach /next within {0:?}")]
    InitTimeout(Duration),
    #[error("the function process exited during the invocation ({0})")]
    Crashed(String),
    #[error("cannot start the function binary {binary}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the request payload is larger than {LAMBDA_PAYLOAD_MAX} bytes")]
    RequestTooLarge,
    #[error("the response payload is larger than {LAMBDA_PAYLOAD_MAX} bytes")]
    ResponseTooLarge,
    #[error("the streamed response is larger than {LAMBDA_STREAM_MAX} bytes")]
    StreamTooLarge,
    #[error("the function's streamed response broke off")]
    StreamInterrupted,
    #[error("no function named {0:?}")]
    UnknownFunction(String),
    /// Over the function's concurrency (Lambda's 429 `TooManyRequestsException`).
    #[error("the function is throttled: {0} invocations already run")]
    Throttled(usize),
    #[error("the emulator is shutting down")]
    ShuttingDown,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line of a function's output.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub function: Arc<str>,
    pub stream: LogStream,
    pub line: String,
}

/// Where function output goes.
#[derive(Clone, Default)]
pub enum LogSink {
    /// The emulator's stderr, each line prefixed with `[function]`.
    #[default]
    Stderr,
    /// A channel, for tests.
    Channel(mpsc::UnboundedSender<LogLine>),
    /// Nowhere.
    Discard,
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stderr => "Stderr",
            Self::Channel(_) => "Channel",
            Self::Discard => "Discard",
        })
    }
}

impl LogSink {
    pub(crate) fn write(&self, line: LogLine) {
        match self {
            Self::Stderr => eprintln!("[{}] {}", line.function, line.line),
            Self::Channel(tx) => {
                let _ = tx.send(line);
            }
            Self::Discard => {}
        }
    }
}

/// Everything a process of one function is started with.
#[derive(Debug)]
pub(crate) struct FunctionSpec {
    pub name: Arc<str>,
    pub arn: String,
    pub binary: PathBuf,
    /// The full environment (Lambda's variables and the function's own).
    pub environment: BTreeMap<String, String>,
    pub timeout: Duration,
    pub counters: Arc<LiveCounters>,
    pub log_sink: LogSink,
    /// What its processes sign with (its "role"): generated for it, or the
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` of its `environment`.
    pub credentials: AwsCredentials,
    pub manage_connections: bool,
    pub over_concurrency: OverConcurrency,
    pub disconnect_delivery: DisconnectDelivery,
}

/// AWS settings shared by every function.
#[derive(Debug, Clone)]
pub(crate) struct AwsEnvironment {
    pub region: String,
    pub account_id: String,
}

impl AwsEnvironment {
    /// The configured region, else the parent's, else `us-east-1`.
    pub fn new(config_region: Option<&str>, account_id: &str) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            region: config_region
                .map(str::to_owned)
                .or_else(|| var("AWS_REGION"))
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            account_id: account_id.to_owned(),
        }
    }
}

impl FunctionSpec {
    pub fn new(
        config: &FunctionConfig,
        aws: &AwsEnvironment,
        placeholders: &Placeholders,
        log_sink: LogSink,
    ) -> Self {
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            env.insert(k.to_owned(), v);
        };
        // What Lambda's provided.al2023 runtime gives every process.
        set(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        );
        set("LANG", "en_US.UTF-8".into());
        set("TZ", ":UTC".into());
        set("AWS_LAMBDA_FUNCTION_NAME", config.name.clone());
        set(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            config.memory_mb.to_string(),
        );
        set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into());
        set(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", config.name),
        );
        set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into());
        set("AWS_REGION", aws.region.clone());
        set("AWS_DEFAULT_REGION", aws.region.clone());
        // Each function its own credentials, as each Lambda gets its role's.
        let own = |name: &str| config.environment.get(name).map(|v| placeholders.expand(v));
        let credentials = match (own("AWS_ACCESS_KEY_ID"), own("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => AwsCredentials {
                access_key_id,
                secret_access_key,
                session_token: own("AWS_SESSION_TOKEN"),
            },
            _ => AwsCredentials::generate(),
        };
        set("AWS_ACCESS_KEY_ID", credentials.access_key_id.clone());
        set(
            "AWS_SECRET_ACCESS_KEY",
            credentials.secret_access_key.clone(),
        );
        if let Some(token) = &credentials.session_token {
            set("AWS_SESSION_TOKEN", token.clone());
        }
        set("_HANDLER", "bootstrap".into());
        if let Some(dir) = config.binary.parent().filter(|d| !d.as_os_str().is_empty()) {
            set("LAMBDA_TASK_ROOT", dir.display().to_string());
        }
        for (key, value) in &config.environment {
            set(key, placeholders.expand(value));
        }
        Self {
            name: Arc::from(config.name.as_str()),
            arn: format!(
                "arn:aws:lambda:{}:{}:function:{}",
                aws.region, aws.account_id, config.name
            ),
            binary: config.binary.clone(),
            environment: env,
            timeout: Duration::from_secs(config.timeout_secs),
            counters: Arc::new(LiveCounters::default()),
            log_sink,
            credentials,
            manage_connections: config.manage_connections,
            over_concurrency: config.over_concurrency,
            disconnect_delivery: config.disconnect_delivery,
        }
    }
}
