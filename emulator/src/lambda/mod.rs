//! Lambda: a pool of processes per function, scaled out on demand up to the
//! function's concurrency, one invocation per process at a time, warm
//! processes reused. Invocation and result meet through `mpsc` + `oneshot`
//! (see [`runtime_api`]).

pub(crate) mod runtime_api;
mod worker;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};
use tracing::{Instrument as _, info_span};

use crate::{
    config::{DisconnectDelivery, FunctionConfig, OverConcurrency, Placeholders},
    counters::{Counters, LiveCounters},
    limits::LAMBDA_PAYLOAD_MAX,
    sigv4::AwsCredentials,
    tasks::Tasks,
};
use worker::{LiveGroups, Worker};

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

/// The processes of one function.
#[derive(Debug)]
pub(crate) struct FunctionPool {
    spec: FunctionSpec,
    concurrency: usize,
    permits: Semaphore,
    disconnect_delivery: Mutex<DisconnectDelivery>,
    idle: Mutex<Vec<Worker>>,
    live: LiveGroups,
    log_tasks: Tasks,
    closed: AtomicBool,
    /// Reserved concurrency set to 0 at run time: every invocation throttled.
    reserved_zero: AtomicBool,
}

impl FunctionPool {
    fn new(spec: FunctionSpec, concurrency: usize) -> Self {
        Self {
            disconnect_delivery: Mutex::new(spec.disconnect_delivery),
            spec,
            concurrency,
            permits: Semaphore::new(concurrency),
            idle: Mutex::new(Vec::new()),
            live: LiveGroups::default(),
            log_tasks: Tasks::default(),
            closed: AtomicBool::new(false),
            reserved_zero: AtomicBool::new(false),
        }
    }

    pub async fn invoke(&self, payload: Bytes) -> Result<Bytes, InvokeError> {
        // Over the concurrency Lambda refuses the invocation (429
        // `TooManyRequestsException`, "Lambda function scaling", Lambda
        // developer guide); a throttle is not an invocation (CloudWatch counts
        // it under Throttles), so it is counted apart.
        if self.reserved_zero.load(Ordering::Relaxed) {
            self.spec.counters.throttle();
            return Err(InvokeError::Throttled(0));
        }
        let permit = match self.spec.over_concurrency {
            OverConcurrency::Throttle => match self.permits.try_acquire() {
                Ok(permit) => permit,
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    self.spec.counters.throttle();
                    return Err(InvokeError::Throttled(self.concurrency));
                }
                Err(tokio::sync::TryAcquireError::Closed) => {
                    return Err(InvokeError::ShuttingDown);
                }
            },
            OverConcurrency::Queue => self
                .permits
                .acquire()
                .await
                .map_err(|_| InvokeError::ShuttingDown)?,
        };
        self.spec.counters.invocation();
        let result = self
            .invoke_inner(payload)
            .instrument(info_span!("invoke", function = %self.spec.name))
            .await;
        drop(permit);
        if result.is_err() {
            self.spec.counters.error();
        }
        result
    }

    async fn invoke_inner(&self, payload: Bytes) -> Result<Bytes, InvokeError> {
        if payload.len() > LAMBDA_PAYLOAD_MAX {
            return Err(InvokeError::RequestTooLarge);
        }
        let worker = loop {
            let popped = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match popped {
                Some(worker) if worker.is_alive() => break worker,
                // Died while idle: dropping it cleans up; the next one is cold.
                Some(_dead) => continue,
                None => break Worker::spawn(&self.spec, &self.live, &self.log_tasks).await?,
            }
        };
        let result = worker.invoke(payload, self.spec.timeout).await;
        let reusable = matches!(
            result,
            Ok(_) | Err(InvokeError::Function { .. } | InvokeError::ResponseTooLarge)
        ) && worker.is_alive();
        if reusable && !self.closed.load(Ordering::Relaxed) {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(worker);
        }
        // Otherwise the worker is dropped here, which kills its process.
        result
    }

    /// Kills every process now, idle or busy; synchronous so that `Drop` can use it.
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.permits.close();
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let live: Vec<i32> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        for pgid in live {
            worker::kill_group(pgid);
        }
        self.log_tasks.abort_all();
    }
}

/// All functions, by name.
#[derive(Debug, Clone)]
pub(crate) struct Functions(Arc<HashMap<String, FunctionPool>>);

impl Functions {
    pub fn new(specs: Vec<(FunctionSpec, usize)>) -> Self {
        Self(Arc::new(
            specs
                .into_iter()
                .map(|(spec, concurrency)| {
                    (spec.name.to_string(), FunctionPool::new(spec, concurrency))
                })
                .collect(),
        ))
    }

    pub async fn invoke(&self, function: &str, payload: Bytes) -> Result<Bytes, InvokeError> {
        match self.0.get(function) {
            Some(pool) => pool.invoke(payload).await,
            None => Err(InvokeError::UnknownFunction(function.to_owned())),
        }
    }

    /// What happens to `$disconnect` events for `function` (`None`: no such function).
    pub fn disconnect_delivery(&self, function: &str) -> Option<DisconnectDelivery> {
        let pool = self.0.get(function)?;
        Some(
            *pool
                .disconnect_delivery
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Changes it; `false` when there is no such function.
    pub fn set_disconnect_delivery(&self, function: &str, delivery: DisconnectDelivery) -> bool {
        let Some(pool) = self.0.get(function) else {
            return false;
        };
        *pool
            .disconnect_delivery
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = delivery;
        true
    }

    /// Throttles every invocation of `function` from now on (`true`), as
    /// reserved concurrency 0 does on AWS, or lifts that (`false`); `false`
    /// when there is no such function.
    pub fn set_reserved_zero(&self, function: &str, on: bool) -> bool {
        let Some(pool) = self.0.get(function) else {
            return false;
        };
        pool.reserved_zero.store(on, Ordering::Relaxed);
        true
    }

    /// The functions whose credentials have this access key id (normally one).
    pub fn by_access_key(&self, access_key_id: &str) -> Vec<&FunctionSpec> {
        self.0
            .values()
            .map(|pool| &pool.spec)
            .filter(|spec| spec.credentials.access_key_id == access_key_id)
            .collect()
    }

    /// The credentials `function`'s processes sign with.
    pub fn credentials(&self, function: &str) -> Option<AwsCredentials> {
        self.0
            .get(function)
            .map(|pool| pool.spec.credentials.clone())
    }

    pub fn counters(&self) -> Counters {
        Counters {
            functions: self
                .0
                .iter()
                .map(|(name, pool)| (name.clone(), pool.spec.counters.snapshot()))
                .collect(),
        }
    }

    pub fn close(&self) {
        for pool in self.0.values() {
            pool.close();
        }
    }
}
