//! The WebSocket handshake: `$connect`, its verdict, and the 101.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::Value;
use tokio_tungstenite::tungstenite;
use tracing::{Instrument as _, debug, info_span, warn};

use super::{ConnectionInfo, WebSocketApi, events, header_str};
use crate::{
    bodies::{Body, empty_response, json_response},
    header_case::HeaderCase,
    ids,
    lambda::InvokeError,
    timestamps::now_epoch_ms,
};

impl WebSocketApi {
    pub(super) async fn handshake(
        self: Arc<Self>,
        peer: SocketAddr,
        mut req: hyper::Request<Incoming>,
    ) -> Response<Body> {
        let headers = req.headers();
        let has_token = |name: HeaderName, token: &str| {
            headers.get_all(name).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            })
        };
        let is_upgrade = req.method() == Method::GET
            && has_token(header::UPGRADE, "websocket")
            && has_token(header::CONNECTION, "upgrade")
            && headers
                .get(header::SEC_WEBSOCKET_VERSION)
                .is_some_and(|v| v == "13");
        let Some(key) = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .filter(|_| is_upgrade)
        else {
            return json_response(StatusCode::BAD_REQUEST, r#"{"message":"Bad Request"}"#);
        };

        let info = ConnectionInfo {
            connection_id: ids::new_api_gateway_id(),
            connected_at_ms: now_epoch_ms(),
            source_ip: peer.ip().to_string(),
            domain_name: header_str(headers, header::HOST)
                .unwrap_or_default()
                .to_owned(),
        };
        let user_agent = header_str(headers, header::USER_AGENT).map(str::to_owned);
        let span = info_span!("connection", id = %info.connection_id);

        let mut event = self.event_base(&info, "$connect", "CONNECT");
        let (single, multi) = self.connect_headers(headers, req.extensions(), peer);
        event.headers = Some(single);
        event.multi_value_headers = Some(multi);
        if let Some(query) = req.uri().query() {
            let (single, multi) = events::query_maps(query);
            event.query_string_parameters = Some(single);
            event.multi_value_query_string_parameters = Some(multi);
        }

        let mut extra_headers = HeaderMap::new();
        if let Some(function) = self.settings.routes.get("$connect") {
            let outcome = self.invoke(function, &event).instrument(span.clone()).await;
            match outcome.map(|payload| parse_connect_result(&payload)) {
                Ok((status, headers)) if status.is_success() => extra_headers = headers,
                Ok((status, _)) => {
                    debug!(parent: &span, %status, "$connect rejected the connection");
                    return empty_response(status);
                }
                // Lambda refused the invocation: API Gateway answers 500 ("If
                // the Lambda API rejects the invocation request, API Gateway
                // returns a 500 error code", Lambda developer guide,
                // "Handling Lambda errors with an API Gateway API").
                Err(error @ InvokeError::Throttled(_)) => {
                    warn!(parent: &span, %error, "$connect throttled");
                    return json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        r#"{"message": "Internal server error"}"#,
                    );
                }
                // The function ran and failed: 502, as for any integration error.
                Err(error) => {
                    warn!(parent: &span, %error, "$connect failed");
                    return json_response(
                        StatusCode::BAD_GATEWAY,
                        r#"{"message": "Internal server error"}"#,
                    );
                }
            }
        }

        // Registered only once the 101 is out: a post during `$connect` is a 410.
        let on_upgrade = hyper::upgrade::on(&mut req);
        let api = self.clone();
        self.tasks.spawn(
            async move {
                match on_upgrade.await {
                    Ok(upgraded) => api.run_connection(upgraded, info, user_agent).await,
                    Err(error) => debug!(%error, "upgrade failed"),
                }
            }
            .instrument(span),
        );

        let mut response = empty_response(StatusCode::SWITCHING_PROTOCOLS);
        let out = response.headers_mut();
        out.extend(extra_headers);
        out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(accept) =
            HeaderValue::from_str(&tungstenite::handshake::derive_accept_key(key.as_bytes()))
        {
            out.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }

    /// The handshake headers as `$connect` sees them, with what API Gateway adds.
    fn connect_headers(
        &self,
        headers: &HeaderMap,
        extensions: &http::Extensions,
        peer: SocketAddr,
    ) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
        let case = extensions.get::<HeaderCase>();
        let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            if name == header::CONNECTION || name == header::UPGRADE {
                // API Gateway terminates the upgrade itself.
                continue;
            }
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let name = match case.and_then(|c| c.get(name.as_str())) {
                Some(original) => original.to_owned(),
                None => events::client_header_case(name.as_str()),
            };
            multi.entry(name).or_default().push(value);
        }
        // API Gateway appends the source IP to whatever the client sent.
        let sent: Vec<String> = multi
            .keys()
            .filter(|k| k.eq_ignore_ascii_case("x-forwarded-for"))
            .cloned()
            .collect();
        let mut chain: Vec<String> = sent
            .iter()
            .filter_map(|k| multi.remove(k))
            .flatten()
            .collect();
        chain.push(peer.ip().to_string());
        let forwarded_for = chain.join(", ");
        multi.insert("X-Forwarded-For".into(), vec![forwarded_for]);
        multi.insert(
            "X-Forwarded-Port".into(),
            vec![self.settings.port.to_string()],
        );
        multi.insert("X-Forwarded-Proto".into(), vec!["http".into()]);
        multi.insert("X-Amzn-Trace-Id".into(), vec![ids::new_trace_id()]);
        let single = multi
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.last()?.clone())))
            .collect();
        (single, multi)
    }
}

/// `$connect`'s status (a result without one counts as 200) and the headers
/// it asks for on the 101 (e.g. `Sec-WebSocket-Protocol`).
fn parse_connect_result(payload: &[u8]) -> (StatusCode, HeaderMap) {
    let value: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let status = match value.get("statusCode") {
        None => Some(StatusCode::OK),
        Some(code) => code
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok()),
    }
    .unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    if let Some(map) = value.get("headers").and_then(Value::as_object) {
        for (name, value) in map {
            let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name.as_str()),
                value.as_str().map(HeaderValue::from_str),
            ) else {
                continue;
            };
            if name != header::CONNECTION
                && name != header::UPGRADE
                && name != header::SEC_WEBSOCKET_ACCEPT
            {
                headers.insert(name, value);
            }
        }
    }
    (status, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_results() {
        assert_eq!(
            parse_connect_result(br#"{"statusCode":200}"#).0,
            StatusCode::OK
        );
        assert_eq!(
            parse_connect_result(br#"{"statusCode":403}"#).0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(parse_connect_result(b"null").0, StatusCode::OK);
        assert_eq!(
            parse_connect_result(br#"{"statusCode":"x"}"#).0,
            StatusCode::BAD_GATEWAY
        );
        let (_, headers) = parse_connect_result(
            br#"{"statusCode":200,"headers":{"Sec-WebSocket-Protocol":"chat"}}"#,
        );
        assert_eq!(headers["sec-websocket-protocol"], "chat");
    }
}
