//! The body of a Function URL response: whole, or relayed as the function
//! writes it, ending abnormally when the function's stream is cut.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::mpsc;

use crate::lambda::stream::StreamPiece;

/// The function's stream was cut (error trailer, timeout, crash, size
/// limit): hyper then drops the connection instead of ending the chunked
/// body, so the client sees an incomplete response.
#[derive(Debug, thiserror::Error)]
#[error("the function's response stream was cut")]
pub(crate) struct StreamCut;

#[derive(Debug)]
pub(crate) enum UrlBody {
    Full(Option<Bytes>),
    Streamed {
        /// What followed the prelude in the piece that completed it.
        first: Option<Bytes>,
        pieces: mpsc::Receiver<StreamPiece>,
        ended: bool,
    },
}

impl UrlBody {
    pub fn full(bytes: Bytes) -> Self {
        Self::Full(Some(bytes).filter(|b| !b.is_empty()))
    }

    pub fn streamed(first: Bytes, pieces: mpsc::Receiver<StreamPiece>) -> Self {
        Self::Streamed {
            first: Some(first).filter(|b| !b.is_empty()),
            pieces,
            ended: false,
        }
    }
}

impl hyper::body::Body for UrlBody {
    type Data = Bytes;
    type Error = StreamCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Streamed {
                first,
                pieces,
                ended,
            } => {
                if let Some(bytes) = first.take() {
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                if *ended {
                    return Poll::Ready(None);
                }
                match ready!(pieces.poll_recv(cx)) {
                    Some(StreamPiece::Data(bytes)) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                    Some(StreamPiece::End) => {
                        *ended = true;
                        Poll::Ready(None)
                    }
                    None => Poll::Ready(Some(Err(StreamCut))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Streamed { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Streamed { .. } => SizeHint::default(),
        }
    }
}
