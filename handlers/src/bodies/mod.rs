//! The bodies bucket as forwarding sees it (`docs/contracts.md`, "The data
//! path"): a request body too large for a WebSocket message is stored
//! there for the agent to fetch, and the agent PUTs an answer body larger
//! than `INLINE_ANSWER_BODY_BYTES` there for forwarding to read back. The
//! agent never holds credentials: it gets presigned URLs, one method on one
//! key each, valid for `SIGNED_URL_TTL`.
//!
//! - [`Bodies`]: the interface, free of any SDK; [`s3`] implements it on
//!   S3 (`aws-sdk-s3`); the fake (`crate::fake`) in memory.
//! - [`Objects`]: the two keys of one request, `req/<id>` and `res/<id>`,
//!   with a random 128-bit id unrelated to the (logged) request id.
//!
//! Bodies and URLs are never logged: a URL is a credential while it lives
//! (`protocol::SignedUrl` prints only its origin).

use std::future::Future;

use protocol::SignedUrl;

use crate::store::BackendError;

pub mod s3;

/// The keys of one request's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objects {
    /// The request body, when it does not fit the message.
    pub request: String,
    /// The answer body, when the agent uploads it.
    pub answer: String,
}

impl Objects {
    /// Fresh keys (`protocol::generate_object_id`).
    pub fn generate() -> Objects {
        let id = protocol::generate_object_id();
        Objects {
            request: format!("req/{id}"),
            answer: format!("res/{id}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodiesError {
    /// The call failed (network, permissions, a missing bucket, or an error
    /// the fake was told to inject).
    #[error("{operation} failed")]
    Backend {
        /// What was called, e.g. `S3 GetObject`.
        operation: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("no object under the key")]
    Missing,
    #[error("the object holds {actual} bytes, {announced} were announced")]
    WrongLength { announced: u64, actual: u64 },
}

impl BodiesError {
    pub fn backend(operation: &'static str, source: impl Into<BackendError>) -> Self {
        BodiesError::Backend {
            operation,
            source: source.into(),
        }
    }
}

/// The bodies bucket.
pub trait Bodies {
    /// A GET of `key` signed for `SIGNED_URL_TTL`: computed locally, no call.
    fn presign_get(&self, key: &str)
    -> impl Future<Output = Result<SignedUrl, BodiesError>> + Send;

    /// A PUT of `key` signed for `SIGNED_URL_TTL`: computed locally, no call.
    fn presign_put(&self, key: &str)
    -> impl Future<Output = Result<SignedUrl, BodiesError>> + Send;

    /// PutObject.
    fn put(&self, key: &str, body: Vec<u8>)
    -> impl Future<Output = Result<(), BodiesError>> + Send;

    /// GetObject: exactly `length` bytes, never reading more (an object of
    /// another size is [`BodiesError::WrongLength`], none is
    /// [`BodiesError::Missing`]).
    fn get(
        &self,
        key: &str,
        length: u64,
    ) -> impl Future<Output = Result<Vec<u8>, BodiesError>> + Send;

    /// DeleteObject (no error if there is none: S3 answers 204 either way).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), BodiesError>> + Send;
}
