//! The WebSocket connections as the handlers see them (API Gateway's
//! `@connections`): [`Notifier`] posts a text message to one connection and
//! asks whether one is still open. [`api_gateway`] implements it with
//! `aws-sdk-apigatewaymanagement`; the fake (`crate::fake`) records the calls.
//!
//! A 403 from `@connections` means the function's role does not cover the
//! call (`execute-api:ManageConnections` on
//! `{api}/{stage}/{METHOD}/@connections/*`): a deployment error no retry
//! fixes. [`log_forbidden`] reports it with the field `alarm` =
//! [`FORBIDDEN_ALARM`], which the CloudWatch metric filter in
//! `terraform/modules/alarms` counts.

use std::future::Future;

pub mod api_gateway;

/// The log field that marks a line as an alarm (a top-level field of the
/// JSON line: [`log_forbidden`]'s test holds it to this name).
pub const ALARM_FIELD: &str = "alarm";

/// The value of the [`ALARM_FIELD`] of a 403 from `@connections`; the log
/// metric filter of `terraform/modules/function` matches
/// `{ $.alarm = "<this>" }` (terraform/checks `log_alarms` holds it to both
/// constants).
pub const FORBIDDEN_ALARM: &str = "manage_connections_forbidden";

/// Why a PostToConnection failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// 410: the connection is closed (or still inside `$connect`).
    #[error("the connection is gone")]
    Gone,
    /// 413: the message exceeds the 128 KB limit.
    #[error("the message is too large for the connection")]
    PayloadTooLarge,
    /// 403: the function's role does not allow the call (already logged as
    /// an alarm by the notifier).
    #[error(
        "@connections refused the call (403): the function's role lacks execute-api:ManageConnections"
    )]
    Forbidden(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("PostToConnection failed")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What GetConnection says about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// 200: API Gateway holds it open.
    Connected,
    /// 410: closed, unknown, or still inside `$connect`.
    Gone,
}

/// Why a GetConnection failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// 403, as for [`PostError::Forbidden`] (already logged as an alarm).
    #[error(
        "@connections refused the call (403): the function's role lacks execute-api:ManageConnections"
    )]
    Forbidden(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("GetConnection failed")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Sends text messages to WebSocket connections and asks about them.
pub trait Notifier {
    /// PostToConnection: `data` is one complete text message.
    fn post(
        &self,
        connection_id: &str,
        data: &str,
    ) -> impl Future<Output = Result<(), PostError>> + Send;

    /// GetConnection: whether API Gateway still holds the connection open.
    fn presence(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Presence, ProbeError>> + Send;
}

/// Logs a 403 from `@connections` as the alarm it is: one ERROR event with
/// `alarm` = [`FORBIDDEN_ALARM`], the operation and the connection.
pub fn log_forbidden(operation: &'static str, connection_id: &str, error: &str) {
    tracing::error!(
        alarm = FORBIDDEN_ALARM,
        operation,
        connection_id,
        error,
        "@connections refused the call (403): this function's role must allow \
         execute-api:ManageConnections on {{api}}/{{stage}}/{{METHOD}}/@connections/* \
         (handlers::manifest, terraform/modules/tunnel)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alarm is a top-level field of the JSON line, where the metric
    /// filter `{ $.alarm = "manage_connections_forbidden" }` looks.
    #[test]
    fn the_forbidden_alarm_is_a_top_level_json_field() {
        let (lines, ()) = crate::logging::capture_json(|| {
            log_forbidden("PostToConnection", "L0SM9cOFvHcCIhw=", "ForbiddenException");
        });
        let [line] = lines.as_slice() else {
            panic!("{lines:?}")
        };
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(json[ALARM_FIELD], FORBIDDEN_ALARM, "{line}");
        assert_eq!(json["level"], "ERROR");
        assert_eq!(json["operation"], "PostToConnection");
        assert_eq!(json["connection_id"], "L0SM9cOFvHcCIhw=");
    }
}
