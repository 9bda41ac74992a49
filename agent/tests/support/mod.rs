//! Test doubles: an in-process tunnel server (tokio-tungstenite playing API
//! Gateway's role, with its frame and message limits) and a local HTTP
//! service (axum), both on ephemeral ports.

#![allow(dead_code)]

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use agent::{Agent, AgentHandle, BackoffConfig, Config, Event};
use axum::body::Body;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use protocol::limits::{MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};
use protocol::{ConnectionEstablished, HttpRequest, Message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Safety net for every wait; never used for synchronisation.
pub const SAFETY: Duration = Duration::from_secs(20);

pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(SAFETY, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

// ---------------------------------------------------------------- server

/// A TCP stream that records every byte the server reads, so tests can
/// inspect the frames the agent actually wrote.
pub struct Tap {
    inner: TcpStream,
    read: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        self.read
            .lock()
            .unwrap()
            .extend_from_slice(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One WebSocket frame as it was on the wire (client → server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireFrame {
    pub fin: bool,
    pub opcode: u8,
    pub masked: bool,
    pub payload_len: usize,
    /// Header plus payload.
    pub total_len: usize,
}

pub struct TunnelServer {
    listener: TcpListener,
    pub endpoint: String,
}

/// One accepted agent connection.
pub struct ServerConn {
    pub ws: WebSocketStream<Tap>,
    pub headers: http::HeaderMap,
    pub path: String,
    read: Arc<Mutex<Vec<u8>>>,
}

impl TunnelServer {
    pub async fn bind() -> TunnelServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        TunnelServer {
            listener,
            endpoint: format!("ws://{addr}/dev"),
        }
    }

    /// Accepts the next agent connection with API Gateway's limits.
    pub async fn accept(&self) -> ServerConn {
        self.accept_with_status(None)
            .await
            .expect("handshake accepted")
    }

    /// Accepts the next TCP connection and answers the handshake with
    /// `status` (`None`: upgrade). Returns the connection when upgraded.
    // The callback's error type is tungstenite's, not ours.
    #[allow(clippy::result_large_err)]
    pub async fn accept_with_status(&self, status: Option<u16>) -> Option<ServerConn> {
        let (tcp, _) = within("the agent to connect", self.listener.accept())
            .await
            .unwrap();
        let read = Arc::new(Mutex::new(Vec::new()));
        let tap = Tap {
            inner: tcp,
            read: Arc::clone(&read),
        };
        let seen = Arc::new(Mutex::new(None));
        let seen2 = Arc::clone(&seen);
        let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            *seen2.lock().unwrap() = Some((req.headers().clone(), req.uri().path().to_owned()));
            match status {
                None => Ok(resp),
                Some(code) => Err(http::Response::builder()
                    .status(code)
                    .body(Some("Forbidden".to_owned()))
                    .unwrap()),
            }
        };
        let config = WebSocketConfig::default()
            .max_frame_size(Some(MAX_FRAME_BYTES))
            .max_message_size(Some(MAX_MESSAGE_BYTES));
        let ws = tokio_tungstenite::accept_hdr_async_with_config(tap, callback, Some(config)).await;
        let (headers, path) = seen.lock().unwrap().take().expect("handshake seen");
        match ws {
            Ok(ws) => Some(ServerConn {
                ws,
                headers,
                path,
                read,
            }),
            Err(_) => None,
        }
    }

    /// Accepts a TCP connection and closes it without a word.
    pub async fn accept_and_drop(&self) {
        let (tcp, _) = within("the agent to connect", self.listener.accept())
            .await
            .unwrap();
        drop(tcp);
    }
}

impl ServerConn {
    /// The next protocol message from the agent (WebSocket pings skipped).
    /// Panics on anything that is not a text message.
    pub async fn recv(&mut self) -> Message {
        match self.recv_ws().await {
            WsMessage::Text(t) => Message::from_json(t.as_str()).expect("agent sent valid JSON"),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// The next WebSocket message (pings/pongs skipped).
    pub async fn recv_ws(&mut self) -> WsMessage {
        loop {
            let next = within("a message from the agent", self.ws.next()).await;
            match next {
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(m)) => return m,
                Some(Err(e)) => panic!("server read error: {e}"),
                None => panic!("agent closed the connection"),
            }
        }
    }

    pub async fn send(&mut self, message: &Message) {
        self.ws
            .send(WsMessage::text(message.to_json().unwrap()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, message: WsMessage) {
        self.ws.send(message).await.unwrap();
    }

    /// Expects `ready`, answers `connection_established`.
    pub async fn establish(&mut self, subdomain: &str) -> ConnectionEstablished {
        assert_eq!(self.recv().await, Message::Ready(protocol::Ready {}));
        // Through serde: fields newer protocol versions add default.
        let established: ConnectionEstablished = serde_json::from_value(serde_json::json!({
            "connection_id": format!("conn-{subdomain}="),
            "subdomain": subdomain,
            "public_url": format!("https://{subdomain}.tunnel.test"),
        }))
        .unwrap();
        self.send(&Message::ConnectionEstablished(established.clone()))
            .await;
        established
    }

    /// Sends a request and returns the agent's answer for it (panics if a
    /// message for another request comes first).
    pub async fn roundtrip(&mut self, request: HttpRequest) -> Message {
        let id = request.request_id.clone();
        self.send(&Message::HttpRequest(request)).await;
        let answer = self.recv_answer().await;
        assert_eq!(answer_id(&answer), id);
        answer
    }

    /// The next `http_response` or `error` (pings answered, pongs skipped).
    pub async fn recv_answer(&mut self) -> Message {
        loop {
            match self.recv().await {
                Message::Ping => self.send(&Message::Pong).await,
                m @ (Message::HttpResponse(_) | Message::Error(_)) => return m,
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// The frames the agent has written so far, parsed from the raw bytes.
    pub fn wire_frames(&self) -> Vec<WireFrame> {
        parse_frames(&self.read.lock().unwrap())
    }
}

pub fn answer_id(m: &Message) -> String {
    match m {
        Message::HttpResponse(r) => r.request_id.clone(),
        Message::Error(e) => e.request_id.clone().expect("error has a request id"),
        other => panic!("not an answer: {other:?}"),
    }
}

fn parse_frames(bytes: &[u8]) -> Vec<WireFrame> {
    let start = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("handshake")
        + 4;
    let mut frames = Vec::new();
    let mut i = start;
    while i + 2 <= bytes.len() {
        let (b0, b1) = (bytes[i], bytes[i + 1]);
        let mut header = 2;
        let mut len = (b1 & 0x7f) as usize;
        if len == 126 {
            len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
            header += 2;
        } else if len == 127 {
            len = u64::from_be_bytes(bytes[i + 2..i + 10].try_into().unwrap()) as usize;
            header += 8;
        }
        let masked = b1 & 0x80 != 0;
        if masked {
            header += 4;
        }
        if i + header + len > bytes.len() {
            break;
        }
        frames.push(WireFrame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            masked,
            payload_len: len,
            total_len: header + len,
        });
        i += header + len;
    }
    frames
}

pub fn request(id: &str, method: &str, uri: &str) -> HttpRequest {
    // Through serde: fields newer protocol versions add default.
    serde_json::from_value(serde_json::json!({
        "request_id": id,
        "method": method,
        "uri": uri,
    }))
    .unwrap()
}

pub fn with_headers(mut req: HttpRequest, pairs: &[(&str, &[&str])]) -> HttpRequest {
    for (k, vs) in pairs {
        req.headers
            .insert(k.to_string(), vs.iter().map(|v| v.to_string()).collect());
    }
    req
}

pub fn expect_response(m: Message) -> protocol::HttpResponse {
    match m {
        Message::HttpResponse(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

pub fn expect_error(m: Message) -> protocol::ErrorMessage {
    match m {
        Message::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- agent

pub fn config(endpoint: &str, target: &str) -> Config {
    let mut c = Config::new(endpoint, target)
        .unwrap()
        .with_token("test-token");
    c.backoff = BackoffConfig {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(20),
        jitter: 0.0,
        reset_after: Duration::from_secs(60),
    };
    c.request_timeout = Duration::from_secs(10);
    c
}

/// Waits for the first event matching `pred`, returning it.
pub async fn wait_event(handle: &mut AgentHandle, pred: impl Fn(&Event) -> bool) -> Event {
    within("an agent event", async {
        loop {
            let e = handle.next_event().await.expect("agent stopped");
            if pred(&e) {
                return e;
            }
        }
    })
    .await
}

/// A server, a local service and an agent connected between them.
pub struct Setup {
    pub server: TunnelServer,
    pub conn: ServerConn,
    pub local: LocalService,
    pub agent: AgentHandle,
}

pub async fn setup(tweak: impl FnOnce(&mut Config)) -> Setup {
    setup_with(tweak, Agent::start).await
}

/// [`setup`], the agent started by `start` (e.g. with an inspector).
pub async fn setup_with(
    tweak: impl FnOnce(&mut Config),
    start: impl FnOnce(Config) -> AgentHandle,
) -> Setup {
    let server = TunnelServer::bind().await;
    let local = LocalService::start().await;
    let mut c = config(&server.endpoint, &local.base);
    tweak(&mut c);
    let mut agent = start(c);
    let mut conn = server.accept().await;
    conn.establish("abc123").await;
    within("established", agent.established()).await.unwrap();
    Setup {
        server,
        conn,
        local,
        agent,
    }
}

// ---------------------------------------------------------------- local service

/// Gzip of "hello, tunnel\n" (gzip -n).
pub const GZIP_HELLO: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xd7,
    0x51, 0x28, 0x29, 0xcd, 0xcb, 0x4b, 0xcd, 0xe1, 0x02, 0x00, 0x6c, 0x5e, 0x4a, 0x0c, 0x0e, 0x00,
    0x00, 0x00,
];

pub struct LocalState {
    /// Every request that reached the service, whatever its path.
    pub hits: AtomicUsize,
    /// `/gate`: signalled when a request arrives; answers once a permit is
    /// available.
    pub entered: Notify,
    pub gate: Semaphore,
    /// `/barrier/N`: every request waits until N have arrived.
    pub barrier: Mutex<Option<Arc<tokio::sync::Barrier>>>,
}

pub struct LocalService {
    pub base: String,
    pub authority: String,
    pub state: Arc<LocalState>,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for LocalService {
    fn drop(&mut self) {
        self._task.abort();
    }
}

impl LocalService {
    pub async fn start() -> LocalService {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(LocalState {
            hits: AtomicUsize::new(0),
            entered: Notify::new(),
            gate: Semaphore::new(0),
            barrier: Mutex::new(None),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        LocalService {
            base: format!("http://{addr}"),
            authority: addr.to_string(),
            state,
            _task: task,
        }
    }
}

fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> http::Response<Body> {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).unwrap()
}

/// The routes, by path:
/// - `/inspect…`: JSON of what arrived (method, raw URI, headers, body).
/// - `/echo`: the request body back, byte for byte.
/// - `/redirect`: 302 to `/elsewhere`.
/// - `/gzip`: a gzip body with `content-encoding: gzip`.
/// - `/headers`: repeated `set-cookie`, hop-by-hop headers, chunked body.
/// - `/big/N`: N bytes.
/// - `/gate`: waits for a permit; `/barrier/N`: waits for N requests.
/// - `/never`: never answers.
async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<LocalState>>,
    req: axum::extract::Request,
) -> http::Response<Body> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    let raw_uri = req.uri().to_string();
    let method = req.method().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap();
    if path.starts_with("/inspect") {
        let json = serde_json::json!({
            "method": method,
            "uri": raw_uri,
            "headers": headers,
            "body": protocol::encode_body(&body),
        });
        return respond(
            200,
            &[("content-type", "application/json")],
            json.to_string(),
        );
    }
    match path.as_str() {
        "/echo" => respond(200, &[("content-type", "application/octet-stream")], body),
        "/redirect" => respond(302, &[("location", "/elsewhere")], "moved"),
        "/gzip" => respond(
            200,
            &[("content-encoding", "gzip"), ("content-type", "text/plain")],
            Bytes::from_static(GZIP_HELLO),
        ),
        "/headers" => {
            let chunks = futures_util::stream::iter(vec![
                Ok::<_, Infallible>(Bytes::from_static(b"chunk one,")),
                Ok(Bytes::from_static(b"chunk two")),
            ]);
            respond(
                200,
                &[
                    ("set-cookie", "a=1; Path=/"),
                    ("set-cookie", "b=2; HttpOnly"),
                    ("x-multi", "one"),
                    ("x-multi", "two"),
                    ("connection", "x-hop"),
                    ("x-hop", "1"),
                    ("keep-alive", "timeout=5"),
                    ("x-kept", "yes"),
                ],
                Body::from_stream(chunks),
            )
        }
        "/gate" => {
            state.entered.notify_one();
            state.gate.acquire().await.unwrap().forget();
            respond(200, &[], "released")
        }
        "/never" => {
            state.entered.notify_one();
            std::future::pending::<()>().await;
            unreachable!()
        }
        p if p.starts_with("/big/") => {
            let n: usize = p["/big/".len()..].parse().unwrap();
            let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            respond(200, &[], body)
        }
        p if p.starts_with("/barrier/") => {
            let n: usize = p["/barrier/".len()..].parse().unwrap();
            let barrier = Arc::clone(
                state
                    .barrier
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| Arc::new(tokio::sync::Barrier::new(n))),
            );
            barrier.wait().await;
            respond(200, &[], body)
        }
        _ => respond(404, &[], "not found"),
    }
}

/// What `/inspect` saw.
#[derive(Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn from_response(r: &protocol::HttpResponse) -> Seen {
        let bytes = protocol::decode_body(&r.body).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        Seen {
            method: v["method"].as_str().unwrap().to_owned(),
            uri: v["uri"].as_str().unwrap().to_owned(),
            headers: v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_owned(),
                        p[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
            body: protocol::decode_body(v["body"].as_str().unwrap()).unwrap(),
        }
    }

    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}
