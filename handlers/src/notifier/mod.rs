//! The WebSocket connections as the handlers see them (API Gateway's
//! `@connections`): [`Notifier`] posts a text message to one connection.
//! [`api_gateway`] implements it with `aws-sdk-apigatewaymanagement`; the
//! fake (`crate::fake`) records the posts.

use std::future::Future;

pub mod api_gateway;

/// Why a PostToConnection failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// 410: the connection is closed (or still inside `$connect`).
    #[error("the connection is gone")]
    Gone,
    /// 413: the message exceeds the 128 KB limit.
    #[error("the message is too large for the connection")]
    PayloadTooLarge,
    #[error("PostToConnection failed")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Sends text messages to WebSocket connections.
pub trait Notifier {
    /// PostToConnection: `data` is one complete text message.
    fn post(
        &self,
        connection_id: &str,
        data: &str,
    ) -> impl Future<Output = Result<(), PostError>> + Send;
}
