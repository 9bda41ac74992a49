//! `@connections`: POST (send), GET (describe), DELETE (close). No SigV4
//! check; errors carry `x-amzn-ErrorType`, which the AWS SDK reads first.

use std::sync::atomic::Ordering;

use http::{HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use super::{Outbound, WebSocketApi};
use crate::{
    limits::MANAGEMENT_POST_MAX,
    util::{self, Body, BodyError, empty_response, json_response},
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GetConnectionOutput {
    connected_at: String,
    identity: IdentityOutput,
    last_active_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IdentityOutput {
    source_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
}

fn aws_error(status: StatusCode, error_type: &'static str, message: &str) -> Response<Body> {
    let mut response = json_response(
        status,
        serde_json::json!({ "message": message }).to_string(),
    );
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    response
}

fn gone() -> Response<Body> {
    aws_error(StatusCode::GONE, "GoneException", "")
}

/// Connection ids are URL-safe base64; anything else is malformed.
fn well_formed(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=' | '+' | '/'))
}

pub(super) async fn handle(
    api: &WebSocketApi,
    raw_id: &str,
    req: hyper::Request<Incoming>,
) -> Response<Body> {
    // The SDK percent-encodes the id (`%3D` for `=`).
    let id = match percent_decode_str(raw_id).decode_utf8() {
        Ok(id) if well_formed(&id) => id.into_owned(),
        _ => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "BadRequestException",
                "Invalid connectionId",
            );
        }
    };
    debug!(connection_id = %id, method = %req.method(), "@connections");
    match *req.method() {
        Method::POST => {
            let body = match util::read_body(req.into_body(), MANAGEMENT_POST_MAX).await {
                Ok(body) => body,
                Err(BodyError::TooLarge) => {
                    return aws_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PayloadTooLargeException",
                        "Request entity too large",
                    );
                }
                Err(BodyError::Io) => {
                    return aws_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequestException",
                        "Cannot read the body",
                    );
                }
            };
            let Some(connection) = api.connection(&id) else {
                return gone();
            };
            // Text when it is text (the tunnel's case); other bytes as a binary frame.
            let message = match String::from_utf8(body.to_vec()) {
                Ok(text) => Message::text(text),
                Err(_) => Message::binary(body),
            };
            match connection.outbound.send(Outbound::Send(message)) {
                Ok(()) => empty_response(StatusCode::OK),
                Err(_) => gone(),
            }
        }
        Method::GET => match api.connection(&id) {
            Some(connection) => {
                let output = GetConnectionOutput {
                    connected_at: util::iso8601(connection.connected_at_ms),
                    identity: IdentityOutput {
                        source_ip: connection.source_ip.clone(),
                        user_agent: connection.user_agent.clone(),
                    },
                    last_active_at: util::iso8601(
                        connection.last_active_ms.load(Ordering::Relaxed),
                    ),
                };
                json_response(
                    StatusCode::OK,
                    serde_json::to_vec(&output).unwrap_or_default(),
                )
            }
            None => gone(),
        },
        Method::DELETE => match api.remove_connection(&id) {
            Some(connection) => {
                let _ = connection.outbound.send(Outbound::Close);
                empty_response(StatusCode::NO_CONTENT)
            }
            None => gone(),
        },
        _ => aws_error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(well_formed("L0SM9cOFvHcCIhw="));
        assert!(!well_formed(""));
        assert!(!well_formed("a b"));
        assert!(!well_formed("a%b"));
        assert!(!well_formed(&"a".repeat(129)));
    }
}
