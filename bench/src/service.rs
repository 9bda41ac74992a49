//! The benchmarks' local service: `GET /bytes/{n}` answers `n` bytes (from a
//! buffer built once, so the service costs next to nothing), `/sleep/{ms}`
//! answers 1 KB after `ms` milliseconds, `POST /sink/{n}` reads the request
//! body and answers 1 KB when it had exactly `n` bytes (400 otherwise, so a
//! body cut short in the tunnel counts as an error). It records nothing, unlike
//! [`itest::LocalService`], so long runs do not grow memory.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, Path},
    http::{HeaderValue, Response, StatusCode, header},
    routing::{get, post},
};

/// The largest body the service hands out.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// A running service on `127.0.0.1:0`. Dropping it stops it.
pub struct SizedService {
    addr: SocketAddr,
    data: Bytes,
    task: tokio::task::JoinHandle<()>,
}

impl SizedService {
    pub async fn start() -> anyhow::Result<SizedService> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // Printable bytes: the same whatever the content type handling.
        let data: Bytes = (0..MAX_BODY).map(|i| b'a' + (i % 26) as u8).collect();
        let kept = data.clone();
        let data = Arc::new(data);
        let sized = data.clone();
        let sink = data.clone();
        let app = Router::new()
            .route(
                "/bytes/{n}",
                get(move |Path(n): Path<usize>| {
                    let data = sized.clone();
                    async move { body(&data, n) }
                }),
            )
            .route(
                "/sink/{n}",
                post(move |Path(n): Path<usize>, received: Bytes| {
                    let data = sink.clone();
                    async move {
                        if received.len() == n {
                            body(&data, 1024)
                        } else {
                            let mut response = Response::new(Body::from(format!(
                                "expected {n} bytes, got {}",
                                received.len()
                            )));
                            *response.status_mut() = StatusCode::BAD_REQUEST;
                            response
                        }
                    }
                }),
            )
            .route(
                "/sleep/{ms}",
                get(move |Path(ms): Path<u64>| {
                    let data = data.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(ms.min(10_000))).await;
                        body(&data, 1024)
                    }
                }),
            )
            .layer(DefaultBodyLimit::max(MAX_BODY));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SizedService {
            addr,
            data: kept,
            task,
        })
    }

    /// `n` bytes of the service's data (a request body), at most [`MAX_BODY`].
    pub fn body(&self, n: usize) -> Bytes {
        self.data.slice(..n.min(MAX_BODY))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The agent's target.
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for SizedService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn body(data: &Bytes, n: usize) -> Response<Body> {
    if n > data.len() {
        let mut response = Response::new(Body::from("too large"));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    }
    let mut response = Response::new(Body::from(data.slice(..n)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}
