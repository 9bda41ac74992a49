//! The DynamoDB backend: LocalStack (testcontainers), moto, or any endpoint.
//!
//! `ITEST_DYNAMODB` picks it: `localstack`, `moto`, `auto` (the default:
//! LocalStack when a Docker engine answers, else moto) or an endpoint URL
//! (`http://127.0.0.1:4566`, e.g. LocalStack from docker-compose or CI's
//! service container).

use std::{
    fmt,
    io::{Read, Write},
    net::{TcpStream, ToSocketAddrs},
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

use crate::{
    error::{HarnessError, error_chain},
    moto::MotoServer,
};

/// The environment variable that picks the backend.
pub const BACKEND_ENV: &str = "ITEST_DYNAMODB";
/// Region given to every client and function.
pub const REGION: &str = "us-east-1";
/// Dummy credentials: local backends accept anything, the SDK needs something.
pub const ACCESS_KEY_ID: &str = "itest";
pub const SECRET_ACCESS_KEY: &str = "itest";

/// How long a backend may take to answer its first ListTables.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Which DynamoDB to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendChoice {
    /// LocalStack in Docker, through testcontainers.
    LocalStack,
    /// `moto_server`, installed on demand into `target/venvs/moto`.
    Moto,
    /// An already running DynamoDB-compatible endpoint.
    Endpoint(String),
}

impl BackendChoice {
    /// `localstack`, `moto`, `auto` (or empty) or an `http(s)://` URL.
    pub fn parse(value: &str) -> Result<BackendChoice, HarnessError> {
        let value = value.trim();
        match value.to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(BackendChoice::auto()),
            "localstack" => Ok(BackendChoice::LocalStack),
            "moto" => Ok(BackendChoice::Moto),
            lower if lower.starts_with("http://") || lower.starts_with("https://") => Ok(
                BackendChoice::Endpoint(value.trim_end_matches('/').to_string()),
            ),
            _ => Err(HarnessError::UnknownBackend(value.to_string())),
        }
    }

    /// From `ITEST_DYNAMODB`, or [`BackendChoice::auto`] when unset.
    pub fn from_env() -> Result<BackendChoice, HarnessError> {
        BackendChoice::parse(&std::env::var(BACKEND_ENV).unwrap_or_default())
    }

    /// LocalStack when a Docker engine answers, else moto.
    pub fn auto() -> BackendChoice {
        if docker_reachable() {
            BackendChoice::LocalStack
        } else {
            BackendChoice::Moto
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendChoice::LocalStack => f.write_str("LocalStack (Docker)"),
            BackendChoice::Moto => f.write_str("moto"),
            BackendChoice::Endpoint(url) => write!(f, "endpoint {url}"),
        }
    }
}

/// Whether a Docker engine answers `GET /_ping` at `DOCKER_HOST` or at the
/// usual socket paths.
pub fn docker_reachable() -> bool {
    const TIMEOUT: Duration = Duration::from_secs(2);
    fn ping(mut stream: impl Read + Write) -> bool {
        if stream
            .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = [0u8; 16];
        let mut read = 0;
        while read < 12 {
            match stream.read(&mut buf[read..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
        buf[..read].starts_with(b"HTTP/1.") && buf[9..read.max(9)].starts_with(b"200")
    }
    fn unix(path: &str) -> bool {
        UnixStream::connect(path)
            .and_then(|s| {
                s.set_read_timeout(Some(TIMEOUT))?;
                s.set_write_timeout(Some(TIMEOUT))?;
                Ok(s)
            })
            .is_ok_and(ping)
    }
    fn tcp(addr: &str) -> bool {
        let Some(addr) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
            return false;
        };
        TcpStream::connect_timeout(&addr, TIMEOUT)
            .and_then(|s| {
                s.set_read_timeout(Some(TIMEOUT))?;
                Ok(s)
            })
            .is_ok_and(ping)
    }
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => {
            if let Some(path) = host.strip_prefix("unix://") {
                unix(path)
            } else if let Some(addr) = host.strip_prefix("tcp://") {
                tcp(addr.trim_end_matches('/'))
            } else {
                // ssh:// and friends: let testcontainers try.
                true
            }
        }
        _ => {
            let home = std::env::var("HOME").unwrap_or_default();
            [
                "/var/run/docker.sock".to_string(),
                format!("{home}/.docker/run/docker.sock"),
                format!("{home}/.docker/desktop/docker.sock"),
            ]
            .iter()
            .any(|path| unix(path))
        }
    }
}

/// What keeps a backend alive.
enum Guard {
    External,
    Moto { _server: MotoServer },
    LocalStack { _container: LocalStackContainer },
}

/// A running DynamoDB backend. Dropping it stops what it started.
pub struct DynamoDb {
    endpoint: String,
    choice: BackendChoice,
    guard: Guard,
}

impl fmt::Debug for DynamoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDb")
            .field("endpoint", &self.endpoint)
            .field("backend", &self.choice)
            .finish()
    }
}

impl DynamoDb {
    /// Starts (or connects to) the backend and waits until it answers ListTables.
    pub async fn start(choice: BackendChoice) -> Result<DynamoDb, HarnessError> {
        let (endpoint, guard) = match &choice {
            BackendChoice::Endpoint(url) => (url.clone(), Guard::External),
            BackendChoice::Moto => {
                let server = tokio::task::spawn_blocking(MotoServer::start)
                    .await
                    .map_err(|e| HarnessError::MotoStart(e.to_string()))??;
                (
                    server.endpoint().to_string(),
                    Guard::Moto { _server: server },
                )
            }
            BackendChoice::LocalStack => {
                let container = tokio::task::spawn_blocking(LocalStackContainer::start)
                    .await
                    .map_err(|e| HarnessError::LocalStack(e.into()))??;
                (
                    container.endpoint.clone(),
                    Guard::LocalStack {
                        _container: container,
                    },
                )
            }
        };
        let db = DynamoDb {
            endpoint,
            choice,
            guard,
        };
        db.wait_ready(READY_TIMEOUT).await?;
        Ok(db)
    }

    /// One backend per process, chosen by `ITEST_DYNAMODB`, started on first
    /// use and stopped when the process exits. Tests share it; each creates
    /// its own uniquely named tables.
    pub async fn shared() -> Result<&'static DynamoDb, HarnessError> {
        static SHARED: tokio::sync::OnceCell<DynamoDb> = tokio::sync::OnceCell::const_new();
        SHARED
            .get_or_try_init(|| async {
                let mut db = DynamoDb::start(BackendChoice::from_env()?).await?;
                // Statics are never dropped: hand the process to an exit hook.
                let guard = std::mem::replace(&mut db.guard, Guard::External);
                stop_at_exit(guard);
                Ok(db)
            })
            .await
    }

    /// The endpoint URL to give clients (`AWS_ENDPOINT_URL_DYNAMODB`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn choice(&self) -> &BackendChoice {
        &self.choice
    }

    /// A client for this backend. Create one per runtime (per test): SDK
    /// clients keep connections on the runtime that opened them.
    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        client_for(&self.endpoint)
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), HarnessError> {
        let client = self.client();
        let started = Instant::now();
        loop {
            let attempt =
                tokio::time::timeout(Duration::from_secs(5), client.list_tables().limit(1).send())
                    .await;
            let last_error = match attempt {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => error_chain(&e),
                Err(_) => "no answer within 5 s".to_string(),
            };
            if started.elapsed() >= timeout {
                return Err(HarnessError::NotReady {
                    endpoint: self.endpoint.clone(),
                    waited: timeout,
                    last_error,
                });
            }
            // Poll interval while the backend boots (not synchronisation).
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The dummy credentials every harness client signs with.
pub(crate) fn credentials() -> Credentials {
    Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "itest")
}

/// A DynamoDB client with the harness's region and dummy credentials.
pub fn client_for(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// An SSM client on the same backend (moto and LocalStack serve SSM from the
/// same endpoint as DynamoDB), for the agent-token secret's parameter.
pub fn ssm_client_for(endpoint: &str) -> aws_sdk_ssm::Client {
    let config = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new(REGION))
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "itest",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_ssm::Client::from_conf(config)
}

fn stop_at_exit(guard: Guard) {
    if matches!(guard, Guard::External) {
        return;
    }
    crate::at_exit::at_exit(move || drop(guard));
}

/// LocalStack in Docker, owned by a thread with its own runtime so it can be
/// removed from a `Drop` or an exit hook whatever runtime is (or is not) left.
struct LocalStackContainer {
    endpoint: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LocalStackContainer {
    /// Blocking.
    fn start() -> Result<LocalStackContainer, HarnessError> {
        use testcontainers_modules::{
            localstack::LocalStack,
            testcontainers::{ImageExt, runners::AsyncRunner},
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, HarnessError>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("itest-localstack".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(HarnessError::LocalStack(e.into())));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let request = LocalStack::default()
                        .with_env_var("SERVICES", "dynamodb,s3")
                        .with_startup_timeout(Duration::from_secs(180));
                    let container = match request.start().await {
                        Ok(container) => container,
                        Err(e) => {
                            let _ = ready_tx.send(Err(HarnessError::LocalStack(e.into())));
                            return;
                        }
                    };
                    let endpoint = async {
                        let host = container.get_host().await?;
                        let port = container.get_host_port_ipv4(4566).await?;
                        Ok::<_, testcontainers_modules::testcontainers::TestcontainersError>(
                            format!("http://{host}:{port}"),
                        )
                    }
                    .await
                    .map_err(|e| HarnessError::LocalStack(e.into()));
                    let ok = endpoint.is_ok();
                    let _ = ready_tx.send(endpoint);
                    if ok {
                        // Until dropped (the sender goes away) or told to stop.
                        let _ = stop_rx.await;
                    }
                    let _ = container.rm().await;
                });
            })
            .map_err(|e| HarnessError::LocalStack(e.into()))?;
        let endpoint = ready_rx
            .recv()
            .map_err(|e| HarnessError::LocalStack(e.into()))??;
        Ok(LocalStackContainer {
            endpoint,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for LocalStackContainer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backend_choices() {
        assert_eq!(BackendChoice::parse("moto").unwrap(), BackendChoice::Moto);
        assert_eq!(
            BackendChoice::parse("LocalStack").unwrap(),
            BackendChoice::LocalStack
        );
        assert_eq!(
            BackendChoice::parse("http://localhost:4566/").unwrap(),
            BackendChoice::Endpoint("http://localhost:4566".into())
        );
        let error = BackendChoice::parse("dynamo").unwrap_err().to_string();
        assert!(error.contains("ITEST_DYNAMODB=\"dynamo\""), "{error}");
        assert!(error.contains("`moto`"), "{error}");
    }
}
