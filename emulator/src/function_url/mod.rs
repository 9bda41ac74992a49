//! Lambda Function URLs (auth type `NONE`): `http://HOST:PORT/any/path` → a
//! payload format 2.0 event for one function, as Lambda builds it for
//! `https://<url-id>.lambda-url.<region>.on.aws`, and the function's result
//! back, whole (`BUFFERED`) or as it is written (`RESPONSE_STREAM`, see
//! `stream`). Unlike the HTTP API, `rawPath` stays as the client sent it.

mod body;
mod stream;

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use tokio::sync::oneshot;
use tracing::{Instrument as _, Span, debug, info_span, warn};

use crate::{
    bodies::{self, BodyError},
    config::{ClientDisconnect, FunctionUrlConfig, InvokeMode},
    ids,
    lambda::{
        Functions, InvokeError,
        stream::{Invocation, Output},
    },
    limits::LAMBDA_PAYLOAD_MAX,
    payload_v2::{Entry, RequestParts, map_response},
    serve::serve,
    tasks::{AbortOnDrop, Tasks},
};
pub(crate) use body::UrlBody;

/// Headers Lambda adds to every Function URL request (the HTTPS connection's;
/// values of a live capture, hotsock/voker `vokerhttp/testdata/functionurl-request.json`).
const TLS_HEADERS: &[(&str, &str)] = &[
    ("x-amzn-tls-cipher-suite", "TLS_AES_128_GCM_SHA256"),
    ("x-amzn-tls-version", "TLSv1.3"),
];

/// One Function URL.
#[derive(Debug)]
pub(crate) struct FunctionUrl {
    pub function: String,
    pub url_id: String,
    /// `<url-id>.lambda-url.<region>.on.aws`.
    pub domain_name: String,
    pub port: u16,
    /// `None`: invoke mode `BUFFERED`; `Some`: `RESPONSE_STREAM`.
    pub streaming: Option<ClientDisconnect>,
    pub functions: Functions,
    /// Invocations, which outlive the requests that started them.
    pub invocations: Tasks,
}

/// An error Lambda answers itself: `x-amzn-ErrorType` and `{"Message": …}`,
/// the shape of its Function URL 403 (`AccessDeniedException`).
fn lambda_error(
    status: StatusCode,
    error_type: Option<&'static str>,
    message: &str,
) -> Response<UrlBody> {
    let body = serde_json::json!({ "Message": message }).to_string();
    let mut response = Response::new(UrlBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(error_type) = error_type {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    }
    response
}

/// The function failed, timed out or answered something unusable: 502, as
/// users of real Function URLs report for an invalid response (on the Lambda
/// developer guide's tracker) and for a timed-out function (on
/// awslabs/route53-dynamic-dns-with-lambda's). The body is not verified.
fn bad_gateway() -> Response<UrlBody> {
    lambda_error(StatusCode::BAD_GATEWAY, None, "Internal Server Error")
}

/// Over the function's concurrency. Lambda throttles with 429
/// `TooManyRequestsException` "Rate Exceeded." (its Invoke API); that a
/// Function URL passes exactly this on is not verified.
fn throttled() -> Response<UrlBody> {
    lambda_error(
        StatusCode::TOO_MANY_REQUESTS,
        Some("TooManyRequestsException"),
        "Rate Exceeded.",
    )
}

/// Over the 6 MB request payload: 413 as Lambda's Invoke API answers
/// (`RequestTooLargeException`); the body behind a Function URL is not verified.
fn too_large() -> Response<UrlBody> {
    lambda_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("RequestTooLargeException"),
        &format!(
            "Request must be smaller than {LAMBDA_PAYLOAD_MAX} bytes for the InvokeFunction operation"
        ),
    )
}

/// A Function URL being served.
pub(crate) struct Served {
    pub server: AbortOnDrop,
    /// Its connections and its invocations.
    pub tasks: [Tasks; 2],
    pub url_id: String,
}

impl FunctionUrl {
    /// Serves `config` on `listener` (bound to `port`) until `server` is dropped.
    pub fn serve(
        config: &FunctionUrlConfig,
        listener: tokio::net::TcpListener,
        port: u16,
        region: &str,
        functions: &Functions,
    ) -> Served {
        let url_id = config
            .url_id
            .clone()
            .unwrap_or_else(ids::new_function_url_id);
        let url = Arc::new(Self {
            function: config.function.clone(),
            domain_name: format!("{url_id}.lambda-url.{region}.on.aws"),
            url_id: url_id.clone(),
            port,
            streaming: (config.invoke_mode == InvokeMode::ResponseStream)
                .then_some(config.client_disconnect),
            functions: functions.clone(),
            invocations: Tasks::default(),
        });
        let connections = Tasks::default();
        let tasks = [connections.clone(), url.invocations.clone()];
        let server = serve(
            listener,
            connections,
            "function_url",
            false,
            move |peer, req| url.clone().handle(peer, req),
        );
        Served {
            server,
            tasks,
            url_id,
        }
    }

    /// Serves one request.
    pub async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        req: hyper::Request<Incoming>,
    ) -> Response<UrlBody> {
        // Lambda's request id: in the event, in the process's
        // `Lambda-Runtime-Aws-Request-Id`, and in `x-amzn-RequestId`.
        let request_id = ids::new_lambda_request_id();
        let span = info_span!("function_url", function = %self.function, %request_id);
        let mut response = self
            .answer(peer, req, request_id.clone())
            .instrument(span)
            .await;
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-amzn-requestid", value);
        }
        response
    }

    async fn answer(
        &self,
        peer: SocketAddr,
        req: hyper::Request<Incoming>,
        request_id: String,
    ) -> Response<UrlBody> {
        let (parts, body) = req.into_parts();
        let body = match bodies::read_body(body, LAMBDA_PAYLOAD_MAX).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => return too_large(),
            Err(BodyError::Io) => {
                return lambda_error(StatusCode::BAD_REQUEST, None, "Bad Request");
            }
        };
        let raw_path = parts.uri.path();
        // `requestContext.http.path` is decoded (`%20` → space in the capture).
        let path = percent_decode_str(raw_path).decode_utf8_lossy();
        let entry = Entry {
            account_id: "anonymous",
            api_id: &self.url_id,
            domain_name: Some(&self.domain_name),
            request_id: &request_id,
            port: self.port,
            // The `cookie` header stays beside `cookies` (the capture; also the
            // reason `lambda_http` stopped doubling cookies for Function URLs).
            keep_cookie_header: true,
            added_headers: TLS_HEADERS,
        };
        let event = entry.build_event(&RequestParts {
            method: parts.method.as_str(),
            raw_path,
            path: &path,
            query: parts.uri.query(),
            version: parts.version,
            headers: &parts.headers,
            body: &body,
            peer,
        });
        let payload = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
        debug!(method = %parts.method, "invoking");

        // The invocation runs in its own task: a client that leaves does not
        // stop the function (for a stream AWS says so: "the streamed response
        // is not interrupted or stopped").
        let (result_tx, result) = oneshot::channel();
        let functions = self.functions.clone();
        let function = self.function.clone();
        let invocation = Invocation {
            payload,
            request_id,
            streaming: self.streaming,
        };
        self.invocations.spawn(
            async move {
                let _ = result_tx.send(functions.invoke_with(&function, invocation).await);
            }
            .instrument(Span::current()),
        );
        match result.await {
            Ok(Ok(Output::Buffered(payload))) => match map_response(&payload) {
                Some(response) => response.map(UrlBody::full),
                None => {
                    warn!("invalid function response");
                    bad_gateway()
                }
            },
            Ok(Ok(Output::Streamed(stream))) => {
                stream::respond(stream).await.unwrap_or_else(|| {
                    warn!("invalid streamed response");
                    bad_gateway()
                })
            }
            Ok(Err(InvokeError::Throttled(_))) => throttled(),
            Ok(Err(InvokeError::RequestTooLarge)) => too_large(),
            Ok(Err(error)) => {
                warn!(%error, "invocation failed");
                bad_gateway()
            }
            // The emulator is shutting down.
            Err(_) => bad_gateway(),
        }
    }
}
