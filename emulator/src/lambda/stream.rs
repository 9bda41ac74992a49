//! Streamed responses (`Lambda-Runtime-Function-Response-Mode: streaming`):
//! what the Runtime API hands over while the function is still writing, and
//! how an invocation ends.

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::config::ClientDisconnect;

/// One invocation as its caller asks for it.
#[derive(Debug)]
pub(crate) struct Invocation {
    pub payload: Bytes,
    /// `Lambda-Runtime-Aws-Request-Id` (a Function URL's event carries it too).
    pub request_id: String,
    /// `None`: the whole result at once (a streamed response is read whole,
    /// at most 6 MB). `Some`: a streamed response is handed over as it is
    /// written (invoke mode `RESPONSE_STREAM`), and this says what happens
    /// when its reader leaves.
    pub streaming: Option<ClientDisconnect>,
}

/// What an invocation produced.
#[derive(Debug)]
pub(crate) enum Output {
    /// The function's whole response.
    Buffered(Bytes),
    /// The function is streaming its response; the invocation ends with it.
    Streamed(ResponseStream),
}

/// A piece of a streamed response, in order. The channel closing before
/// [`StreamPiece::End`] means the stream was cut: an error trailer, the
/// function's timeout or crash, or the size limit.
#[derive(Debug)]
pub(crate) enum StreamPiece {
    Data(Bytes),
    End,
}

/// A response the function is streaming.
#[derive(Debug)]
pub(crate) struct ResponseStream {
    /// The `Content-Type` of the function's POST:
    /// `application/vnd.awslambda.http-integration-response` when a JSON
    /// prelude and 8 NUL bytes lead the body.
    pub content_type: Option<String>,
    pub pieces: mpsc::Receiver<StreamPiece>,
}

/// How a streamed response ended, as the Runtime API saw it.
#[derive(Debug)]
pub(crate) enum StreamOutcome {
    Complete,
    /// The error trailers `Lambda-Runtime-Function-Error-Type` / `-Body`.
    Failed {
        error_type: String,
        message: String,
    },
    /// More than `LAMBDA_STREAM_MAX`: cut there.
    TooLarge,
    /// Its reader left and `client_disconnect = "close_stream"` closed the
    /// function's response connection.
    ClosedForClient,
    /// The function's connection broke before the end of the body.
    Interrupted,
}

/// Why a stream could not be read whole.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CollectError {
    Cut,
    TooLarge,
}

impl ResponseStream {
    /// Reads the whole stream, refusing more than `max` bytes (and then
    /// dropping it: the function streams on into the void).
    pub async fn collect(mut self, max: usize) -> Result<Bytes, CollectError> {
        let mut all = BytesMut::new();
        while let Some(piece) = self.pieces.recv().await {
            match piece {
                StreamPiece::Data(data) if all.len() + data.len() > max => {
                    return Err(CollectError::TooLarge);
                }
                StreamPiece::Data(data) => all.extend_from_slice(&data),
                StreamPiece::End => return Ok(all.freeze()),
            }
        }
        Err(CollectError::Cut)
    }
}
