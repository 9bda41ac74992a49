//! `POST /runtime/invocation/{id}/response` with
//! `Lambda-Runtime-Function-Response-Mode: streaming`: the body is relayed
//! piece by piece as the function writes it (never buffered to the end), an
//! error arrives as the HTTP trailers `Lambda-Runtime-Function-Error-Type` /
//! `Lambda-Runtime-Function-Error-Body` (AWS Lambda developer guide, "Custom
//! runtimes", response streaming), and the function gets its 202 once its
//! body ends.

use base64::Engine as _;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::{Reply, RuntimeState, accepted, error_json, unknown_request};
use crate::{
    bodies::Body,
    config::ClientDisconnect,
    lambda::stream::{ResponseStream, StreamOutcome, StreamPiece},
    limits::LAMBDA_STREAM_MAX,
};

/// Pieces waiting for a slow reader before the function's writes wait too.
pub(super) const PIECES_IN_FLIGHT: usize = 16;

pub(super) async fn response(
    state: &RuntimeState,
    request_id: &str,
    content_type: Option<String>,
    body: Incoming,
) -> Response<Body> {
    let Some(in_flight) = state.take_in_flight(request_id) else {
        return unknown_request(request_id);
    };
    let (pieces, pieces_rx) = mpsc::channel(PIECES_IN_FLIGHT);
    let (outcome_tx, outcome) = oneshot::channel();
    let stream = ResponseStream {
        content_type,
        pieces: pieces_rx,
    };
    if in_flight
        .reply
        .send(Ok(Reply::Streamed { stream, outcome }))
        .is_err()
    {
        // The invocation ended (timed out) as the stream began: the process
        // is being killed.
        return error_json(StatusCode::GONE, "InvocationGone", "the invocation is over");
    }
    match relay(body, pieces, in_flight.client_disconnect).await {
        Relayed::Ended(outcome, answer) => {
            debug!(%request_id, ?outcome, "streamed response ended");
            let _ = outcome_tx.send(outcome);
            answer
        }
        Relayed::ReaderLeft(body) => {
            debug!(%request_id, "reader left: closing the stream");
            close_for_reader(state, body, outcome_tx)
        }
    }
}

/// How relaying ended.
enum Relayed {
    Ended(StreamOutcome, Response<Body>),
    /// The reader left and `close_stream` asks for the connection to close.
    ReaderLeft(Incoming),
}

/// `client_disconnect = "close_stream"`: answers 410 at once, then closes
/// the connection, so that the function's further writes fail. Closed only
/// once the runtime has taken the 410 (its next `/next`), reading and
/// discarding until then: a close while the runtime still writes would
/// reset the connection under the answer, and a runtime that loses its
/// answer (`lambda_runtime` does) ends its process.
fn close_for_reader(
    state: &RuntimeState,
    mut body: Incoming,
    outcome: oneshot::Sender<StreamOutcome>,
) -> Response<Body> {
    let mut next_calls = state.next_calls.subscribe();
    state.tasks.spawn(async move {
        tokio::select! {
            _ = next_calls.changed() => {}
            () = async { while let Some(Ok(_)) = body.frame().await {} } => {}
        }
        drop(body);
        let _ = outcome.send(StreamOutcome::ClosedForClient);
    });
    error_json(
        StatusCode::GONE,
        "ClientDisconnected",
        "the client of this streamed response disconnected (client_disconnect = \"close_stream\")",
    )
}

/// Relays `body` into `pieces` until it ends; what it ended with, and the
/// answer for the function.
async fn relay(
    mut body: Incoming,
    pieces: mpsc::Sender<StreamPiece>,
    on_reader_gone: ClientDisconnect,
) -> Relayed {
    // `None` once the reader left: the rest is read and discarded.
    let mut reader = Some(pieces);
    let mut total = 0usize;
    loop {
        let frame = match (&reader, on_reader_gone) {
            (Some(pieces), ClientDisconnect::CloseStream) => tokio::select! {
                frame = body.frame() => frame,
                () = pieces.closed() => return Relayed::ReaderLeft(body),
            },
            _ => body.frame().await,
        };
        let frame = match frame {
            None => {
                if let Some(pieces) = &reader {
                    let _ = pieces.send(StreamPiece::End).await;
                }
                return Relayed::Ended(StreamOutcome::Complete, accepted());
            }
            Some(Ok(frame)) => frame,
            Some(Err(error)) => {
                debug!(%error, "the function's response connection broke");
                let answer = error_json(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "cannot read the body",
                );
                return Relayed::Ended(StreamOutcome::Interrupted, answer);
            }
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => match frame.into_trailers().ok().and_then(|t| error_trailers(&t)) {
                Some(failed) => return Relayed::Ended(failed, accepted()),
                None => continue,
            },
        };
        let room = LAMBDA_STREAM_MAX - total;
        if data.len() > room {
            // What fits goes out, then the stream is cut; the body is left
            // unread, so the function's connection closes and its writes fail.
            if let Some(pieces) = &reader
                && room > 0
            {
                let _ = pieces.send(StreamPiece::Data(data.slice(..room))).await;
            }
            let answer = error_json(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!(
                    "Exceeded maximum allowed streamed payload size ({LAMBDA_STREAM_MAX} bytes)."
                ),
            );
            return Relayed::Ended(StreamOutcome::TooLarge, answer);
        }
        total += data.len();
        if data.is_empty() {
            continue;
        }
        if let Some(pieces) = &reader
            && pieces.send(StreamPiece::Data(data)).await.is_err()
        {
            match on_reader_gone {
                ClientDisconnect::Continue => reader = None,
                ClientDisconnect::CloseStream => return Relayed::ReaderLeft(body),
            }
        }
    }
}

/// The error of `Lambda-Runtime-Function-Error-Type` /
/// `Lambda-Runtime-Function-Error-Body` (base64 of the error JSON), if any.
fn error_trailers(trailers: &HeaderMap) -> Option<StreamOutcome> {
    let text = |name: &str| {
        trailers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
    };
    let error_type = text("lambda-runtime-function-error-type")?;
    let body = text("lambda-runtime-function-error-body").unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or(body);
    let message = serde_json::from_str::<serde_json::Value>(&decoded)
        .ok()
        .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned))
        .unwrap_or(decoded);
    Some(StreamOutcome::Failed {
        error_type,
        message,
    })
}
