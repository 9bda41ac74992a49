//! The inspector's HTTP server: the page (static files embedded in the
//! binary) and the JSON API under `/api/`.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (`assets/`) |
//! | `GET /api/status` | the agent's connection, public URL, target, limits |
//! | `GET /api/requests` | summaries, newest first; `?q= &method= &status= &replay= &limit=` |
//! | `DELETE /api/requests` | forget every capture |
//! | `GET /api/requests/{id}` | one exchange: headers, bodies (base64), timing |
//! | `GET /api/requests/{id}/{request,response}/body` | a body's captured bytes (`?download=1`: as a file) |
//! | `GET /api/requests/{id}/curl` | the request as a curl command |
//! | `POST /api/requests/{id}/replay` | replay it, optionally edited; answers when the local service did |
//! | `GET /api/events` | live changes (server-sent events) |
//! | `GET /api/har` | every capture as a HAR 1.2 file |
//!
//! Guards (the page can replay requests, so other sites must not reach
//! it): only `Host` names that are IP addresses or `localhost` are
//! answered (DNS rebinding); `/api/` refuses requests a browser marks as
//! coming from another site (`Sec-Fetch-Site`); and anything but GET must
//! come from the inspector's own origin when it carries `Origin`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Inspector;
use super::api::{self, ApiError, App};

/// The inspector's usual port.
pub const DEFAULT_PORT: u16 = 4040;
/// Ports tried after [`DEFAULT_PORT`] when it is taken (another agent has
/// it), before any free port.
const DEFAULT_PORTS_TRIED: u16 = 20;

/// Where to listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// `127.0.0.1:4040`, else the next free port up to 4059, else any free
    /// port.
    Default,
    /// This address exactly (port 0: any free port).
    Exact(SocketAddr),
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "the inspector cannot listen on {addr} (pass another address with --inspect, port 0 for any free port, or --no-inspect)"
    )]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A listener for `bind`.
pub async fn bind(bind: &Bind) -> Result<TcpListener, BindError> {
    let listen = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| BindError::Listen { addr, source })
    };
    match *bind {
        Bind::Exact(addr) => listen(addr).await,
        Bind::Default => {
            let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
            for port in DEFAULT_PORT..DEFAULT_PORT + DEFAULT_PORTS_TRIED {
                match listen(SocketAddr::new(loopback, port)).await {
                    Ok(listener) => return Ok(listener),
                    Err(BindError::Listen { source, .. })
                        if source.kind() == std::io::ErrorKind::AddrInUse => {}
                    Err(e) => return Err(e),
                }
            }
            listen(SocketAddr::new(loopback, 0)).await
        }
    }
}

/// The running server. Dropping it stops it (live pages are disconnected,
/// requests in progress finish).
#[derive(Debug)]
pub struct InspectServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl InspectServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:4040`: where to open the page (a wildcard address
    /// shows as loopback).
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// Whether only this machine can reach it.
    pub fn is_loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }

    /// Stops and waits until the server is done.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for InspectServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl Inspector {
    /// Serves the page and the API on `listener` until the returned handle
    /// is dropped.
    pub fn serve(&self, listener: TcpListener) -> InspectServer {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let app = router(App {
            inspector: self.clone(),
            shutdown: shutdown_rx.clone(),
        });
        let mut stop = shutdown_rx;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "the inspector stopped serving");
            }
        });
        InspectServer {
            addr,
            shutdown,
            task: Some(task),
        }
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset(FAVICON, "image/svg+xml") }),
        )
        .merge(api::routes())
        .fallback(|| async { ApiError::NoRoute })
        .layer(middleware::from_fn(guard))
        .with_state(app)
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON: &str = include_str!("assets/favicon.svg");

/// The page may load only its own files; captured bodies are never
/// rendered as HTML (images come in as `blob:` URLs).
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(text: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        text,
    )
        .into_response()
}

/// Refuses what another site could send through a visitor's browser.
async fn guard(request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Some(host) = headers.get(header::HOST)
        && !host_allowed(host.as_bytes())
    {
        return ApiError::Forbidden(
            "the inspector answers only to an IP address or localhost in the Host header (DNS rebinding protection)",
        )
        .into_response();
    }
    let api = request.uri().path().starts_with("/api/");
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if api && matches!(fetch_site, "cross-site" | "same-site") {
        return ApiError::Forbidden("the inspector's API does not answer other sites' pages")
            .into_response();
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD)
        && let Some(origin) = headers.get(header::ORIGIN)
        && !same_origin(origin.as_bytes(), headers.get(header::HOST))
    {
        return ApiError::Forbidden("cross-origin requests may not change the inspector")
            .into_response();
    }
    next.run(request).await
}

/// An IP literal, `localhost` or `*.localhost`, with or without a port.
fn host_allowed(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let name = name.to_ascii_lowercase();
    name.parse::<Ipv4Addr>().is_ok() || name == "localhost" || name.ends_with(".localhost")
}

/// `Origin: http://host:port` names the same host and port as `Host`.
fn same_origin(origin: &[u8], host: Option<&HeaderValue>) -> bool {
    let Some(host) = host else { return false };
    let origin = String::from_utf8_lossy(origin);
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    rest.eq_ignore_ascii_case(&String::from_utf8_lossy(host.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("127.0.0.1:4040", true)]
    #[case("127.0.0.1", true)]
    #[case("localhost:4040", true)]
    #[case("LOCALHOST", true)]
    #[case("app.localhost:4040", true)]
    #[case("192.168.1.20:4040", true)]
    #[case("[::1]:4040", true)]
    #[case("[::1]", true)]
    #[case("evil.example.com", false)]
    #[case("evil.example.com:4040", false)]
    #[case("localhost.evil.com", false)]
    #[case("[not-ip]:1", false)]
    #[case("", false)]
    fn hosts(#[case] host: &str, #[case] allowed: bool) {
        assert_eq!(host_allowed(host.as_bytes()), allowed, "{host}");
    }

    #[test]
    fn origins() {
        let host = HeaderValue::from_static("127.0.0.1:4040");
        assert!(same_origin(b"http://127.0.0.1:4040", Some(&host)));
        assert!(!same_origin(b"http://127.0.0.1:3000", Some(&host)));
        assert!(!same_origin(b"https://127.0.0.1:4040", Some(&host)));
        assert!(!same_origin(b"null", Some(&host)));
        assert!(!same_origin(b"http://127.0.0.1:4040", None));
    }

    #[tokio::test]
    async fn default_bind_moves_to_the_next_port_when_4040_is_taken() {
        // Whatever holds 4040 now (this test, another agent, another test
        // process), the default bind never fails on it.
        let held = TcpListener::bind(("127.0.0.1", DEFAULT_PORT)).await.ok();
        let listener = bind(&Bind::Default).await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), DEFAULT_PORT, "4040 is held");
        drop(held);
    }

    #[tokio::test]
    async fn an_exact_address_in_use_is_a_clear_error() {
        let held = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = held.local_addr().unwrap();
        let err = bind(&Bind::Exact(addr)).await.unwrap_err().to_string();
        assert!(err.contains(&addr.to_string()), "{err}");
        assert!(err.contains("--inspect"), "{err}");
    }

    #[test]
    fn urls_show_a_reachable_address() {
        let server = |addr: &str| InspectServer {
            addr: addr.parse().unwrap(),
            shutdown: watch::channel(false).0,
            task: None,
        };
        assert_eq!(server("127.0.0.1:4040").url(), "http://127.0.0.1:4040");
        assert_eq!(server("0.0.0.0:4041").url(), "http://127.0.0.1:4041");
        assert_eq!(server("[::]:4042").url(), "http://[::1]:4042");
        assert!(server("127.0.0.1:1").is_loopback());
        assert!(!server("0.0.0.0:1").is_loopback());
    }
}
