//! The Lambda Runtime API as one function process sees it
//! (`http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/...`). One server per
//! process, so the listener itself tells which process is asking. A
//! streamed response is relayed as it arrives ([`streaming`]).

mod streaming;

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
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{debug, warn};

use crate::{
    bodies::{self, Body, BodyError, json_response},
    config::ClientDisconnect,
    counters::LiveCounters,
    ids,
    lambda::{
        InvokeError,
        stream::{ResponseStream, StreamOutcome},
    },
    limits::LAMBDA_PAYLOAD_MAX,
    tasks::Tasks,
    timestamps::now_epoch_ms,
};

const PREFIX: &str = "/2018-06-01/runtime/";

/// An invocation waiting for the process's `/next`.
#[derive(Debug)]
pub(crate) struct Pending {
    pub request_id: String,
    pub payload: Bytes,
    pub timeout: Duration,
    /// What a streamed response does when its reader leaves.
    pub client_disconnect: ClientDisconnect,
    /// Told the invocation's deadline when `/next` hands the event out.
    pub started: oneshot::Sender<Instant>,
    pub reply: oneshot::Sender<Result<Reply, InvokeError>>,
}

/// The function's answer to one invocation.
#[derive(Debug)]
pub(crate) enum Reply {
    Buffered(Bytes),
    /// Handed over when the streamed POST begins; `outcome` tells how it ended.
    Streamed {
        stream: ResponseStream,
        outcome: oneshot::Receiver<StreamOutcome>,
    },
}

/// An invocation the process has taken with `/next` and not answered yet.
#[derive(Debug)]
struct InFlight {
    reply: oneshot::Sender<Result<Reply, InvokeError>>,
    client_disconnect: ClientDisconnect,
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
    in_flight: Mutex<HashMap<String, InFlight>>,
    spawned_at: Instant,
    reached_next: AtomicBool,
    counters: Arc<LiveCounters>,
    /// Set by `/init/error`; the worker then kills the process.
    pub init_error: Mutex<Option<(String, String)>>,
    pub kill: Notify,
    /// Counts `/next` calls: a runtime calling it again has taken the
    /// answer to its previous response.
    next_calls: watch::Sender<u64>,
    /// Work that outlives a request (a closed stream's wait), aborted with
    /// the process's server.
    tasks: Tasks,
}

impl RuntimeState {
    pub fn new(
        function_arn: String,
        queue: mpsc::Receiver<Pending>,
        spawned_at: Instant,
        counters: Arc<LiveCounters>,
        tasks: Tasks,
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
            next_calls: watch::Sender::new(0),
            tasks,
        }
    }

    fn take_in_flight(&self, request_id: &str) -> Option<InFlight> {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(request_id)
    }
}

pub(super) fn error_json(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    json_response(status, body.to_string())
}

pub(super) fn accepted() -> Response<Body> {
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
            let streamed = header_string(&req, "lambda-runtime-function-response-mode")
                .is_some_and(|mode| mode.eq_ignore_ascii_case("streaming"));
            if streamed {
                let content_type = header_string(&req, "content-type");
                streaming::response(&state, &id, content_type, req.into_body()).await
            } else {
                response(&state, &id, req.into_body()).await
            }
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
    state.next_calls.send_modify(|n| *n = n.wrapping_add(1));
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
            .insert(
                pending.request_id.clone(),
                InFlight {
                    reply: pending.reply,
                    client_disconnect: pending.client_disconnect,
                },
            );
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
            Some(in_flight) => {
                let _ = in_flight.reply.send(Ok(Reply::Buffered(payload)));
                accepted()
            }
            None => unknown_request(request_id),
        },
        Err(BodyError::TooLarge) => {
            if let Some(in_flight) = state.take_in_flight(request_id) {
                let _ = in_flight.reply.send(Err(InvokeError::ResponseTooLarge));
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
        Some(in_flight) => {
            let _ = in_flight.reply.send(Err(InvokeError::Function {
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

pub(super) fn unknown_request(request_id: &str) -> Response<Body> {
    debug!(%request_id, "result for an unknown or finished invocation");
    error_json(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "Invalid request ID",
    )
}

#[cfg(test)]
mod tests;
