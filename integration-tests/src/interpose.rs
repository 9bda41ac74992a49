//! A reverse proxy on `127.0.0.1:0` that a stack puts between its functions
//! and a service they call, DynamoDB or `@connections`, when asked to
//! ([`crate::StackBuilder::interpose_dynamodb`],
//! [`crate::StackBuilder::interpose_connections`]). It forwards every request
//! unchanged and shows each exchange to an [`Observer`]; what to make of it
//! (calls, capacity units, message sizes) is the observer's business: the
//! benchmark's counters are one.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::error::{BoxError, HarnessError};
use axum::{
    Router,
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderMap, Method, Response, StatusCode, Uri},
};

/// The largest body forwarded (Lambda payloads and DynamoDB items are smaller).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request through the proxy and its answer.
#[derive(Debug)]
pub struct Exchange<'a> {
    pub method: &'a Method,
    /// Path and query as the function sent them.
    pub uri: &'a Uri,
    pub request_headers: &'a HeaderMap,
    pub request_body: &'a [u8],
    /// The upstream's status (502 when it could not be reached).
    pub status: StatusCode,
    pub response_body: &'a [u8],
    /// When the request went upstream and when its answer had been read.
    pub start: Instant,
    pub end: Instant,
}

/// Sees every exchange through an [`Interposed`] proxy, after the answer has
/// been read and before the function gets it.
pub trait Observer: Send + Sync + 'static {
    fn observe(&self, exchange: &Exchange<'_>);
}

struct State {
    upstream: String,
    client: reqwest::Client,
    observer: Arc<dyn Observer>,
}

/// A running proxy. Dropping it stops it.
#[derive(Debug)]
pub struct Interposed {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Interposed {
    /// Proxies `127.0.0.1:0` to `upstream` (`http://host:port`).
    pub async fn start(
        upstream: &str,
        observer: Arc<dyn Observer>,
    ) -> Result<Interposed, HarnessError> {
        let failed = |source: BoxError| HarnessError::Interpose {
            upstream: upstream.to_string(),
            source,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| failed(e.into()))?;
        let addr = listener.local_addr().map_err(|e| failed(e.into()))?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| failed(e.into()))?;
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            observer,
        });
        let app = Router::new().fallback(move |request: Request| {
            let state = state.clone();
            async move { forward(&state, request).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Interposed { addr, task })
    }

    /// `http://127.0.0.1:PORT`: what the functions call instead of the upstream.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Interposed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(state: &State, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            Bytes::from_static(b"body too large for the proxy"),
        );
    };
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        // reqwest sets these for the upstream connection. `host` is kept:
        // SigV4 signs it, and `@connections` refuses a request whose Host
        // differs from the one signed.
        if !matches!(name.as_str(), "content-length" | "connection") {
            headers.append(name.clone(), value.clone());
        }
    }
    let start = Instant::now();
    let result = state
        .client
        .request(parts.method.clone(), format!("{}{path}", state.upstream))
        .headers(headers)
        .body(body.clone())
        .send()
        .await;
    let (status, response_headers, response_body) = match result {
        Ok(response) => {
            let status = response.status();
            let headers = response.headers().clone();
            match response.bytes().await {
                Ok(bytes) => (status, headers, bytes),
                Err(e) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), error_body(&e)),
            }
        }
        Err(e) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), error_body(&e)),
    };
    let end = Instant::now();
    state.observer.observe(&Exchange {
        method: &parts.method,
        uri: &parts.uri,
        request_headers: &parts.headers,
        request_body: &body,
        status,
        response_body: &response_body,
        start,
        end,
    });

    let mut response = plain(status, response_body);
    for (name, value) in &response_headers {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

fn error_body(e: &reqwest::Error) -> Bytes {
    Bytes::from(format!("proxy: upstream failed: {e}"))
}

fn plain(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::routing::post;

    use super::*;

    /// One exchange as owned values: method, URI, request body, status,
    /// response body.
    type Owned = (String, String, Vec<u8>, u16, Vec<u8>);

    /// Keeps what it saw.
    #[derive(Default)]
    struct Seen(Mutex<Vec<Owned>>);

    impl Observer for Seen {
        fn observe(&self, e: &Exchange<'_>) {
            assert!(e.start <= e.end);
            self.0.lock().unwrap().push((
                e.method.to_string(),
                e.uri.to_string(),
                e.request_body.to_vec(),
                e.status.as_u16(),
                e.response_body.to_vec(),
            ));
        }
    }

    /// The function gets exactly the upstream's answer, and the observer
    /// sees the exchange as it happened.
    #[tokio::test]
    async fn forwards_unchanged_and_shows_every_exchange() -> anyhow::Result<()> {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let upstream_url = format!("http://{}", upstream.local_addr()?);
        let app = Router::new().route(
            "/stage/@connections/{id}",
            post(|body: Bytes| async move {
                let mut answer = b"got ".to_vec();
                answer.extend_from_slice(&body);
                Response::builder()
                    .status(StatusCode::ACCEPTED)
                    .header("x-upstream", "yes")
                    .body(Body::from(answer))
                    .unwrap()
            }),
        );
        let server = tokio::spawn(async move { axum::serve(upstream, app).await });
        let seen = Arc::new(Seen::default());
        let proxy = Interposed::start(&upstream_url, seen.clone()).await?;

        let response = reqwest::Client::new()
            .post(format!("{}/stage/@connections/abc%3D?x=1", proxy.url()))
            .body(vec![0u8, 255, 10])
            .send()
            .await?;
        assert_eq!(response.status(), 202);
        assert_eq!(response.headers()["x-upstream"], "yes");
        assert_eq!(response.bytes().await?.as_ref(), b"got \x00\xff\n");
        assert_eq!(
            seen.0.lock().unwrap().as_slice(),
            [(
                "POST".to_string(),
                "/stage/@connections/abc%3D?x=1".to_string(),
                vec![0u8, 255, 10],
                202,
                b"got \x00\xff\n".to_vec(),
            )]
        );

        // An upstream that is gone: 502 to the function, and observed.
        server.abort();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let gone = Interposed::start(&format!("http://{closed}"), seen.clone()).await?;
        let response = reqwest::get(format!("{}/", gone.url())).await?;
        assert_eq!(response.status(), 502);
        assert_eq!(seen.0.lock().unwrap().last().map(|s| s.3), Some(502));
        Ok(())
    }
}
