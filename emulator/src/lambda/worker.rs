//! One function process: its Runtime API server, the process itself (in its
//! own process group), its log forwarding, and one invocation at a time.

use std::{
    collections::HashSet,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, BufReader},
    net::TcpListener,
    process::Command,
    sync::{mpsc, oneshot, watch},
};
use tracing::{Instrument as _, debug, info_span, warn};

use crate::{
    config::ClientDisconnect,
    lambda::{
        FunctionSpec, InvokeError, LogLine, LogSink, LogStream,
        runtime_api::{self, Pending, Reply, RuntimeState},
        stream::{ResponseStream, StreamOutcome},
    },
    limits::LAMBDA_INIT_TIMEOUT,
    serve::serve,
    tasks::{AbortOnDrop, Tasks},
};

/// Process group ids of live processes, so that they can be killed
/// synchronously (from `Drop`) even while an invocation task holds them.
pub(crate) type LiveGroups = Arc<Mutex<HashSet<i32>>>;

/// Kills a whole process group. Safe to call for a group that is gone.
pub(crate) fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
        // addresses the process group, which we created with process_group(0).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Kills the process group when dropped.
#[derive(Debug)]
struct GroupGuard {
    pgid: i32,
    live: LiveGroups,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.pgid);
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.pgid);
    }
}

/// How an invocation began.
#[derive(Debug)]
pub(crate) enum Started {
    /// The function answered in full: the invocation is over.
    Buffered(Bytes),
    /// The function is streaming: the invocation lasts until `outcome`,
    /// within `deadline`.
    Streamed {
        stream: ResponseStream,
        outcome: oneshot::Receiver<StreamOutcome>,
        deadline: Instant,
    },
}

#[derive(Debug)]
pub(crate) struct Worker {
    queue: mpsc::Sender<Pending>,
    state: Arc<RuntimeState>,
    /// `Some(description)` once the process has exited.
    exited: watch::Receiver<Option<String>>,
    // Field order is drop order: kill the group, then stop its tasks.
    _group: GroupGuard,
    _monitor: AbortOnDrop,
    _server: AbortOnDrop,
    server_tasks: Tasks,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.server_tasks.abort_all();
    }
}

impl Worker {
    /// Spawns the process and its Runtime API server.
    pub async fn spawn(
        spec: &FunctionSpec,
        live: &LiveGroups,
        log_tasks: &Tasks,
    ) -> Result<Self, InvokeError> {
        let spawn_error = |source| InvokeError::Spawn {
            binary: spec.binary.display().to_string(),
            source,
        };
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(spawn_error)?;
        let runtime_api = listener.local_addr().map_err(spawn_error)?;
        let (queue, queue_rx) = mpsc::channel(1);
        let spawned_at = Instant::now();
        let server_tasks = Tasks::default();
        let state = Arc::new(RuntimeState::new(
            spec.arn.clone(),
            queue_rx,
            spawned_at,
            spec.counters.clone(),
            server_tasks.clone(),
        ));
        let server = {
            let state = state.clone();
            serve(
                listener,
                server_tasks.clone(),
                "runtime-api",
                false,
                move |_peer, req| runtime_api::handle(state.clone(), req),
            )
        };

        let mut command = Command::new(&spec.binary);
        command
            .env_clear()
            .envs(&spec.environment)
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
            .env("AWS_LAMBDA_LOG_STREAM_NAME", log_stream_name())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own group: a terminal's Ctrl-C reaches the emulator only, and
            // killing the group also kills anything the function started.
            .process_group(0);
        // SAFETY: the closure runs in the child between fork and exec and only
        // calls prctl(2), which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                // If the emulator itself is killed (SIGKILL skips every
                // destructor) its functions die with it instead of lingering.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(spawn_error)?;
        spec.counters.cold_start();
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(0);
        live.lock().unwrap_or_else(|p| p.into_inner()).insert(pgid);
        let group = GroupGuard {
            pgid,
            live: live.clone(),
        };
        debug!(function = %spec.name, pid = pgid, %runtime_api, "process spawned");

        if let Some(stdout) = child.stdout.take() {
            log_tasks.spawn(forward_lines(
                stdout,
                spec.name.clone(),
                LogStream::Stdout,
                spec.log_sink.clone(),
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            log_tasks.spawn(forward_lines(
                stderr,
                spec.name.clone(),
                LogStream::Stderr,
                spec.log_sink.clone(),
            ));
        }

        let (exited_tx, exited) = watch::channel(None);
        let monitor = {
            let state = state.clone();
            let name = spec.name.clone();
            AbortOnDrop(tokio::spawn(
                async move {
                    let description = tokio::select! {
                        status = child.wait() => match status {
                            Ok(status) => status.to_string(),
                            Err(error) => format!("wait failed: {error}"),
                        },
                        () = state.kill.notified() => {
                            kill_group(pgid);
                            let _ = child.wait().await;
                            "killed after an init error".to_owned()
                        }
                    };
                    debug!(function = %name, %description, "process exited");
                    let _ = exited_tx.send(Some(description));
                }
                .instrument(info_span!("process", pid = pgid)),
            ))
        };

        Ok(Self {
            queue,
            state,
            exited,
            _group: group,
            _monitor: monitor,
            _server: server,
            server_tasks,
        })
    }

    pub fn is_alive(&self) -> bool {
        self.exited.borrow().is_none()
    }

    /// Why the process is unusable, once it has exited.
    fn exit_error(&self) -> InvokeError {
        if let Some((error_type, message)) = self
            .state
            .init_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return InvokeError::Init {
                error_type,
                message,
            };
        }
        InvokeError::Crashed(
            self.exited
                .borrow()
                .clone()
                .unwrap_or_else(|| "exited".into()),
        )
    }

    /// Runs one invocation up to the function's answer (all of it, or the
    /// start of a stream: see [`Worker::finish_stream`]); the caller drops the
    /// worker after any error other than a function error (that is how a
    /// timed-out process gets killed).
    pub async fn invoke(
        &self,
        payload: Bytes,
        request_id: String,
        client_disconnect: ClientDisconnect,
        timeout: Duration,
    ) -> Result<Started, InvokeError> {
        let (started, started_rx) = oneshot::channel();
        let (reply, reply_rx) = oneshot::channel();
        let pending = Pending {
            request_id,
            payload,
            timeout,
            client_disconnect,
            started,
            reply,
        };
        if self.queue.send(pending).await.is_err() {
            return Err(self.exit_error());
        }
        let mut exited = self.exited.clone();
        let mut exited_again = self.exited.clone();

        // A warm process is already waiting in `/next`; a cold one is in its
        // init phase, which has its own limit as in Lambda.
        let deadline = tokio::select! {
            biased;
            started = started_rx => match started {
                Ok(deadline) => deadline,
                Err(_) => return Err(self.exit_error()),
            },
            () = async { let _ = exited.wait_for(Option::is_some).await; } => return Err(self.exit_error()),
            () = tokio::time::sleep(LAMBDA_INIT_TIMEOUT) => return Err(InvokeError::InitTimeout(LAMBDA_INIT_TIMEOUT)),
        };
        let reply = tokio::select! {
            biased;
            result = reply_rx => result.unwrap_or_else(|_| Err(self.exit_error())),
            () = async { let _ = exited_again.wait_for(Option::is_some).await; } => Err(self.exit_error()),
            () = tokio::time::sleep_until(deadline.into()) => Err(timed_out(timeout)),
        };
        Ok(match reply? {
            Reply::Buffered(payload) => Started::Buffered(payload),
            Reply::Streamed { stream, outcome } => Started::Streamed {
                stream,
                outcome,
                deadline,
            },
        })
    }

    /// Waits for the end of a streamed response; the function's timeout
    /// still applies (the caller then drops the worker, which cuts the stream).
    pub async fn finish_stream(
        &self,
        outcome: oneshot::Receiver<StreamOutcome>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), InvokeError> {
        let mut exited = self.exited.clone();
        tokio::select! {
            biased;
            outcome = outcome => match outcome {
                Ok(StreamOutcome::Complete | StreamOutcome::ClosedForClient) => Ok(()),
                Ok(StreamOutcome::Failed { error_type, message }) => {
                    Err(InvokeError::Function { error_type, message })
                }
                Ok(StreamOutcome::TooLarge) => Err(InvokeError::StreamTooLarge),
                Ok(StreamOutcome::Interrupted) => Err(InvokeError::StreamInterrupted),
                Err(_) => Err(self.exit_error()),
            },
            () = async { let _ = exited.wait_for(Option::is_some).await; } => Err(self.exit_error()),
            () = tokio::time::sleep_until(deadline.into()) => Err(timed_out(timeout)),
        }
    }
}

fn timed_out(timeout: Duration) -> InvokeError {
    warn!("invocation timed out after {timeout:?}; killing the process");
    InvokeError::Timeout(timeout)
}

fn log_stream_name() -> String {
    let date = time::OffsetDateTime::now_utc().date();
    let random: [u8; 16] = rand::random();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}/{:02}/{:02}/[$LATEST]{hex}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Forwards a process's output line by line until it closes.
async fn forward_lines(
    reader: impl AsyncRead + Unpin,
    function: Arc<str>,
    stream: LogStream,
    sink: LogSink,
) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_owned();
                sink.write(LogLine {
                    function: function.clone(),
                    stream,
                    line,
                });
            }
        }
    }
}
