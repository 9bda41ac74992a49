//! The Lambda Runtime API as one function process sees it
//! (`http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/...`). One server per
//! process, so the listener itself tells which process is asking.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, warn};

use crate::{
    bodies::{self, Body, BodyError, json_response},
    counters::LiveCounters,
    ids,
    lambda::InvokeError,
    limits::LAMBDA_PAYLOAD_MAX,
    timestamps::now_epoch_ms,
};

const PREFIX: &str = "/2018-06-01/runtime/";

/// An invocation waiting for the process's `/next`.
#[derive(Debug)]
pub(crate) struct Pending {
    pub request_id: String,
    pub payload: Bytes,
    pub timeout: Duration,
    /// Told the invocation's deadline when `/next` hands the event out.
    pub started: oneshot::Sender<Instant>,
    pub reply: oneshot::Sender<Result<Bytes, InvokeError>>,
}

/// What `/init/error` and `/error` carry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
}

/// Shared between the process's Runtime API server and its worker.
#[derive(Debug)]
pub(crate) struct RuntimeState {
    pub function_arn: String,
    pub queue: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Result<Bytes, InvokeError>>>>,
    spawned_at: Instant,
    reached_next: AtomicBool,
    counters: Arc<LiveCounters>,
    /// Set by `/init/error`; the worker then kills the process.
    pub init_error: Mutex<Option<(String, String)>>,
    pub kill: Notify,
}

impl RuntimeState {
    pub fn new(
        function_arn: String,
        queue: mpsc::Receiver<Pending>,
        spawned_at: Instant,
        counters: Arc<LiveCounters>,
    ) -> Self {
        Self {
            function_arn,
            queue: tokio::sync::Mutex::new(queue),
            in_flight: Mutex::new(HashMap::new()),
            spawned_at,
            reached_next: AtomicBool::new(false),
            counters,
            init_error: Mutex::new(None),
            kill: Notify::new(),
        }
    }

    fn take_in_flight(
        &self,
        request_id: &str,
    ) -> Option<oneshot::Sender<Result<Bytes, InvokeError>>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(request_id)
    }
}

fn error_json(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    json_response(status, body.to_string())
}

fn accepted() -> Response<Body> {
    json_response(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

/// Routes one Runtime API request.
pub(crate) async fn handle(
    state: Arc<RuntimeState>,
    req: hyper::Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return error_json(
            StatusCode::NOT_FOUND,
            "NotFound",
            "unknown Runtime API path",
        );
    };
    let method = req.method().clone();
    match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::GET, ["invocation", "next"]) => next(&state).await,
        (Method::POST, ["invocation", id, "response"]) => {
            let id = (*id).to_owned();
            response(&state, &id, req.into_body()).await
        }
        (Method::POST, ["invocation", id, "error"]) => {
            let id = (*id).to_owned();
            let header_type = header_string(&req, "lambda-runtime-function-error-type");
            invocation_error(&state, &id, header_type, req.into_body()).await
        }
        (Method::POST, ["init", "error"]) => {
            let header_type = header_string(&req, "lambda-runtime-function-error-type");
            init_error(&state, header_type, req.into_body()).await
        }
        _ => error_json(
            StatusCode::NOT_FOUND,
            "NotFound",
            "unknown Runtime API path",
        ),
    }
}

fn header_string(req: &hyper::Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Long poll: blocks until there is an event (never 204, which a release
/// build of the Rust runtime panics on).
async fn next(state: &RuntimeState) -> Response<Body> {
    if !state.reached_next.swap(true, Ordering::Relaxed) {
        state.counters.init_duration(state.spawned_at.elapsed());
    }
    loop {
        let pending = state.queue.lock().await.recv().await;
        let Some(pending) = pending else {
            // The worker is gone and the process is about to be killed.
            return error_json(
                StatusCode::GONE,
                "ShuttingDown",
                "the emulator is stopping this process",
            );
        };
        let deadline = Instant::now() + pending.timeout;
        let deadline_ms = now_epoch_ms()
            .saturating_add(i64::try_from(pending.timeout.as_millis()).unwrap_or(i64::MAX));
        if pending.started.send(deadline).is_err() {
            // The caller gave up before the process asked: wait for the next one.
            continue;
        }
        state
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pending.request_id.clone(), pending.reply);
        debug!(request_id = %pending.request_id, "invocation handed out");
        let mut response = json_response(StatusCode::OK, pending.payload);
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set("lambda-runtime-aws-request-id", &pending.request_id);
        set("lambda-runtime-deadline-ms", &deadline_ms.to_string());
        set("lambda-runtime-invoked-function-arn", &state.function_arn);
        set(
            "lambda-runtime-trace-id",
            &format!(
                "{};Parent={:016x};Sampled=0",
                ids::new_trace_id(),
                rand::random::<u64>()
            ),
        );
        return response;
    }
}

async fn response(state: &RuntimeState, request_id: &str, body: Incoming) -> Response<Body> {
    match bodies::read_body(body, LAMBDA_PAYLOAD_MAX).await {
        Ok(payload) => match state.take_in_flight(request_id) {
            Some(reply) => {
                let _ = reply.send(Ok(payload));
                accepted()
            }
            None => unknown_request(request_id),
        },
        Err(BodyError::TooLarge) => {
            if let Some(reply) = state.take_in_flight(request_id) {
                let _ = reply.send(Err(InvokeError::ResponseTooLarge));
            }
            error_json(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("Exceeded maximum allowed payload size ({LAMBDA_PAYLOAD_MAX} bytes)."),
            )
        }
        Err(BodyError::Io) => error_json(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "cannot read the body",
        ),
    }
}

async fn invocation_error(
    state: &RuntimeState,
    request_id: &str,
    header_type: Option<String>,
    body: Incoming,
) -> Response<Body> {
    let parsed = read_error_body(body).await;
    match state.take_in_flight(request_id) {
        Some(reply) => {
            let _ = reply.send(Err(InvokeError::Function {
                error_type: parsed
                    .error_type
                    .or(header_type)
                    .unwrap_or_else(|| "Unhandled".into()),
                message: parsed.error_message.unwrap_or_default(),
            }));
            accepted()
        }
        None => unknown_request(request_id),
    }
}

async fn init_error(
    state: &RuntimeState,
    header_type: Option<String>,
    body: Incoming,
) -> Response<Body> {
    let parsed = read_error_body(body).await;
    let error_type = parsed
        .error_type
        .or(header_type)
        .unwrap_or_else(|| "Unknown".into());
    warn!(%error_type, "function reported an init error");
    *state.init_error.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((error_type, parsed.error_message.unwrap_or_default()));
    // As in AWS the process does not survive an init error.
    state.kill.notify_one();
    accepted()
}

async fn read_error_body(body: Incoming) -> ErrorBody {
    match bodies::read_body(body, LAMBDA_PAYLOAD_MAX).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => ErrorBody::default(),
    }
}

fn unknown_request(request_id: &str) -> Response<Body> {
    debug!(%request_id, "result for an unknown or finished invocation");
    error_json(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "Invalid request ID",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        serve::serve,
        tasks::{AbortOnDrop, Tasks},
    };

    const BASE: &str = "/2018-06-01/runtime";

    struct Fixture {
        base: String,
        queue: mpsc::Sender<Pending>,
        state: Arc<RuntimeState>,
        _server: AbortOnDrop,
        client: reqwest::Client,
    }

    async fn fixture() -> Fixture {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (queue, rx) = mpsc::channel(1);
        let state = Arc::new(RuntimeState::new(
            "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            rx,
            Instant::now(),
            Arc::default(),
        ));
        let served = state.clone();
        let server = serve(listener, Tasks::default(), "test", false, move |_, req| {
            handle(served.clone(), req)
        });
        Fixture {
            base: format!("http://{addr}{BASE}"),
            queue,
            state,
            _server: server,
            client: reqwest::Client::new(),
        }
    }

    type Reply = oneshot::Receiver<Result<Bytes, InvokeError>>;

    async fn enqueue(
        f: &Fixture,
        request_id: &str,
        timeout: Duration,
    ) -> (oneshot::Receiver<Instant>, Reply) {
        let (started, started_rx) = oneshot::channel();
        let (reply, reply_rx) = oneshot::channel();
        let pending = Pending {
            request_id: request_id.into(),
            payload: Bytes::from_static(b"{\"a\":1}"),
            timeout,
            started,
            reply,
        };
        f.queue.send(pending).await.unwrap();
        (started_rx, reply_rx)
    }

    #[tokio::test]
    async fn next_blocks_until_an_event_and_sends_absolute_deadlines() {
        let f = fixture().await;
        let next = tokio::spawn(f.client.get(format!("{}/invocation/next", f.base)).send());
        // Nothing queued: `/next` must still be waiting (never a 204).
        tokio::task::yield_now().await;
        assert!(!next.is_finished());
        let before = now_epoch_ms();
        let (started, _reply) = enqueue(&f, "req-1", Duration::from_secs(3)).await;
        let response = next.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("lambda-runtime-aws-request-id"), "req-1");
        assert_eq!(
            header("lambda-runtime-invoked-function-arn"),
            "arn:aws:lambda:us-east-1:123456789012:function:f"
        );
        assert!(header("lambda-runtime-trace-id").starts_with("Root=1-"));
        let deadline: i64 = header("lambda-runtime-deadline-ms").parse().unwrap();
        assert!(
            deadline >= before + 3_000 && deadline <= now_epoch_ms() + 3_000,
            "absolute epoch ms"
        );
        assert!(started.await.is_ok());
        assert_eq!(response.text().await.unwrap(), "{\"a\":1}");
        assert_eq!(f.state.counters.snapshot().init_durations_ms.len(), 1);
    }

    #[tokio::test]
    async fn results_errors_and_limits() {
        let f = fixture().await;
        let next = |f: &Fixture| f.client.get(format!("{}/invocation/next", f.base)).send();

        let (_started, reply) = enqueue(&f, "ok", Duration::from_secs(3)).await;
        next(&f).await.unwrap();
        let response = f
            .client
            .post(format!("{}/invocation/ok/response", f.base))
            .body("done")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        assert_eq!(reply.await.unwrap().unwrap(), Bytes::from_static(b"done"));
        // A second result for the same invocation is refused.
        let response = f
            .client
            .post(format!("{}/invocation/ok/response", f.base))
            .body("again")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);

        let (_started, reply) = enqueue(&f, "err", Duration::from_secs(3)).await;
        next(&f).await.unwrap();
        let response = f
            .client
            .post(format!("{}/invocation/err/error", f.base))
            .header("Lambda-Runtime-Function-Error-Type", "Runtime.Unhandled")
            .body(r#"{"errorType":"MyError","errorMessage":"boom"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        match reply.await.unwrap() {
            Err(InvokeError::Function {
                error_type,
                message,
            }) => assert_eq!((error_type.as_str(), message.as_str()), ("MyError", "boom")),
            other => panic!("{other:?}"),
        }

        let (_started, reply) = enqueue(&f, "big", Duration::from_secs(3)).await;
        next(&f).await.unwrap();
        let response = f
            .client
            .post(format!("{}/invocation/big/response", f.base))
            .body(vec![b'a'; LAMBDA_PAYLOAD_MAX + 1])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 413);
        assert!(matches!(
            reply.await.unwrap(),
            Err(InvokeError::ResponseTooLarge)
        ));

        let response = f
            .client
            .post(format!("{}/init/error", f.base))
            .body(r#"{"errorType":"InitFailed","errorMessage":"no config"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        assert_eq!(
            f.state.init_error.lock().unwrap().clone(),
            Some(("InitFailed".to_owned(), "no config".to_owned()))
        );
        // The worker is told to kill the process.
        tokio::time::timeout(Duration::from_secs(5), f.state.kill.notified())
            .await
            .unwrap();
    }
}
