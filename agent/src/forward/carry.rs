//! How an answer's body travels: a body over [`INLINE_ANSWER_BODY_BYTES`] is
//! PUT to the request's `response_upload` when the server gave one
//! (`body_uploaded`); otherwise it goes inline, and an answer too large for
//! one message without an upload URL is a 502 with a short reason
//! ([`crate::bodies`], `docs/contracts.md` "The data path").

use protocol::limits::INLINE_ANSWER_BODY_BYTES;
use protocol::{ErrorCode, HttpResponse, ProtocolError, SignedUrl};

use super::failure::Failure;
use crate::bodies::Storage;
use crate::exchange::{Answer, AnswerBody};
use crate::wire;

/// The answer that carries `head` with `body`: its body uploaded to
/// `upload` through `storage` when it is over [`INLINE_ANSWER_BODY_BYTES`],
/// else inline; checked to fit one message either way.
pub(super) async fn carry(
    storage: &Storage,
    head: HttpResponse,
    body: Vec<u8>,
    upload: Option<&SignedUrl>,
) -> Result<Answer, Failure> {
    let len = body.len();
    let body = match upload {
        Some(url) if len > INLINE_ANSWER_BODY_BYTES => {
            storage
                .upload(url, body)
                .await
                .map_err(|e| Failure::transfer(&e))?;
            AnswerBody::Uploaded { length: len as u64 }
        }
        _ => AnswerBody::Inline(body),
    };
    match wire::fits(&head, &body) {
        Ok(()) => Ok(Answer::Response { head, body }),
        // A server always offers an upload URL (connect refuses agents that
        // cannot use one); without it, nothing else can carry a body too
        // large for the message, so the visitor gets a clear 502.
        Err(ProtocolError::TooLarge { .. }) if upload.is_none() && len > 0 => Err(no_upload(len)),
        Err(e) => Err(Failure::new(
            ErrorCode::PayloadTooLarge,
            format!("the local service's response cannot be carried through the tunnel ({e})"),
        )),
    }
}

/// An answer of `len` bytes that fits no message, with no upload URL.
fn no_upload(len: usize) -> Failure {
    Failure::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "the local service's response ({len} bytes) is too large for one message, \
             and the server offered no upload for it"
        ),
    )
}
