//! What the WebSocket routes' functions take (the connection id of an event)
//! and return.
//!
//! `aws_lambda_events` 1.2 has no WebSocket response type; API Gateway reads
//! `statusCode` (on `$connect`, a non-2xx status rejects the handshake; on
//! `$default` and `$disconnect` the value is ignored without a route
//! response).

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use serde::Serialize;

/// The event's `requestContext.connectionId`, if it has a non-empty one.
pub fn connection_id(event: &ApiGatewayWebsocketProxyRequest) -> Option<&str> {
    event
        .request_context
        .connection_id
        .as_deref()
        .filter(|id| !id.is_empty())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebsocketResponse {
    pub status_code: u16,
}

impl WebsocketResponse {
    pub const OK: Self = Self { status_code: 200 };
    pub const BAD_REQUEST: Self = Self { status_code: 400 };
    /// `$connect`: missing, invalid or expired token.
    pub const UNAUTHORIZED: Self = Self { status_code: 401 };
    /// `$connect`: valid token, but the subdomain it asks for is held.
    pub const FORBIDDEN: Self = Self { status_code: 403 };
    /// `$connect`: the agent speaks an older protocol
    /// (`protocol::PROTOCOL_VERSION`): it has to be updated.
    pub const UPGRADE_REQUIRED: Self = Self { status_code: 426 };
    /// `$connect`: the deployment has no auth secret configured.
    pub const SERVICE_UNAVAILABLE: Self = Self { status_code: 503 };
    pub const INTERNAL_ERROR: Self = Self { status_code: 500 };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_status_code_only() {
        assert_eq!(
            serde_json::to_value(WebsocketResponse::OK).unwrap(),
            serde_json::json!({"statusCode": 200})
        );
    }
}
