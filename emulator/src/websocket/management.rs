//! `@connections`: POST (send), GET (describe), DELETE (close). Every call
//! must be SigV4-signed for `execute-api` in the API's region with the
//! credentials of a function whose role grants `execute-api:ManageConnections`
//! (403 `ForbiddenException` otherwise); errors carry `x-amzn-ErrorType`,
//! which the AWS SDK reads first.

use std::sync::atomic::Ordering;

use http::{HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use super::{Outbound, WebSocketApi};
use crate::{
    bodies::{self, Body, BodyError, empty_response, json_response},
    limits::MANAGEMENT_POST_MAX,
    sigv4::{self, SignedRequest},
    timestamps::iso8601,
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

/// The caller's signature and permission; `Some` is the 403 to answer.
/// AWS checks both before anything else (an unknown connection id of an
/// unauthorized caller is a 403, not a 410).
fn refusal(
    api: &WebSocketApi,
    parts: &http::request::Parts,
    body: &[u8],
    raw_id: &str,
) -> Option<Response<Body>> {
    let request = SignedRequest {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body,
    };
    let now = time::OffsetDateTime::now_utc();
    let verified = sigv4::verify(&request, "execute-api", &api.settings.region, now, |key| {
        api.functions
            .by_access_key(key)
            .first()
            .map(|spec| spec.credentials.clone())
    });
    let access_key = match verified {
        Ok(access_key) => access_key,
        Err(error) => {
            debug!(%error, "@connections signature refused");
            return Some(aws_error(
                StatusCode::FORBIDDEN,
                "ForbiddenException",
                &error.to_string(),
            ));
        }
    };
    // Functions that share credentials share a role: one grant covers them.
    let callers = api.functions.by_access_key(&access_key);
    if callers.iter().any(|spec| spec.manage_connections) {
        return None;
    }
    let caller = callers.first().map_or("unknown", |spec| &*spec.name);
    let message = format!(
        "User: arn:aws:sts::assumed-role/{caller}/{caller} is not authorized to perform: \
         execute-api:ManageConnections on resource: arn:aws:execute-api:{}:*:{}/{}/{}/@connections/{raw_id}",
        api.settings.region, api.settings.api_id, api.settings.stage, parts.method
    );
    debug!(
        function = caller,
        "@connections without execute-api:ManageConnections"
    );
    Some(aws_error(
        StatusCode::FORBIDDEN,
        "ForbiddenException",
        &message,
    ))
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
    let (parts, body) = req.into_parts();
    // The whole body first: its hash is part of the signature.
    let body = match bodies::read_body(body, MANAGEMENT_POST_MAX).await {
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
    if let Some(refusal) = refusal(api, &parts, &body, raw_id) {
        return refusal;
    }
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
    debug!(connection_id = %id, method = %parts.method, "@connections");
    match parts.method {
        Method::POST => {
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
                    connected_at: iso8601(connection.connected_at_ms),
                    identity: IdentityOutput {
                        source_ip: connection.source_ip.clone(),
                        user_agent: connection.user_agent.clone(),
                    },
                    last_active_at: iso8601(connection.last_active_ms.load(Ordering::Relaxed)),
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
