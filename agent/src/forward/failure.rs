//! A request that gets an `error` instead of a response, with its two
//! texts: a short reason for the visitor (no local address, no error chain)
//! and the details for the agent's console ([`RequestOutcome::Failed`]).
//! Neither carries the request's URL: its query may hold a secret.

use protocol::ErrorCode;

use crate::bodies::TransferError;
use crate::exchange::{Answer, RequestOutcome};

#[derive(Debug)]
pub(super) struct Failure {
    code: ErrorCode,
    /// For the visitor: short, no address, no error chain.
    visitor: String,
    /// For the console.
    detail: String,
}

impl Failure {
    /// A failure whose reason is fit for both the visitor and the console.
    pub(super) fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        let message = message.into();
        Failure {
            code,
            visitor: message.clone(),
            detail: message,
        }
    }

    pub(super) fn detailed(code: ErrorCode, visitor: impl Into<String>, detail: String) -> Failure {
        Failure {
            code,
            visitor: visitor.into(),
            detail,
        }
    }

    /// A body that could not go through the bucket: the visitor gets 502,
    /// the console the host and S3's error code (never the URL).
    pub(super) fn transfer(e: &TransferError) -> Failure {
        Failure::detailed(ErrorCode::InternalError, e.visitor_message(), e.to_string())
    }

    /// What the visitor gets for request `request_id`, and what the console
    /// says of it.
    pub(super) fn answer(self, request_id: &str) -> (Answer, RequestOutcome) {
        let answer = Answer::Failed {
            request_id: request_id.to_owned(),
            code: self.code,
            message: self.visitor,
        };
        let outcome = RequestOutcome::Failed {
            code: self.code,
            message: self.detail,
        };
        (answer, outcome)
    }
}
