//! One WebSocket connection at a time, and the loop that reconnects.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt as _, StreamExt as _};
use http::HeaderValue;
use protocol::limits::MAX_MESSAGE_BYTES;
use protocol::{
    ConnectionEstablished, ErrorCode, HttpRequest, Message, ProtocolError, Ready,
    is_valid_request_id,
};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::Instrument as _;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::events::{AgentError, ConnectionState, Event};
use crate::exchange::{RequestLog, RequestOutcome};
use crate::forward::Forwarder;
use crate::frames::text_frames;
use crate::heartbeat::{Beat, Heartbeat};
use crate::text::{clip, error_chain, humanize};
use crate::wire::{self, MAX_ERROR_MESSAGE_CHARS, error_json};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Answers waiting for the socket: at most this many messages of at most
/// 128 KB (8 MB); a task with more waits for room.
const OUT_QUEUE_MESSAGES: usize = 64;

/// How long a server that does not say (no `max_age_secs`) keeps a
/// connection: API Gateway's maximum connection duration, 2 hours
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html>).
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(2 * 60 * 60);

/// How long a connection that handed its tunnel over keeps listening after
/// its successor is established, for requests forwarding had already chosen
/// it for (read the claim before the move, posting now): milliseconds in
/// practice.
const RETIRE_GRACE: Duration = Duration::from_secs(2);

/// When to open a successor: `margin` before the server's age limit, where
/// `margin` = min(5 min, a quarter of the age).
fn renew_after(max_age: Duration) -> Duration {
    max_age - (max_age / 4).min(Duration::from_secs(5 * 60))
}

/// A successor that could not be opened is tried again after 1 s, then 2 s,
/// 4 s… (at most 30 s apart), while the old connection has time left.
const SUCCESSOR_RETRY_FIRST: Duration = Duration::from_secs(1);
const SUCCESSOR_RETRY_MAX: Duration = Duration::from_secs(30);
/// What a successor attempt needs of the old connection's time: a handshake
/// and `connection_established` (milliseconds on AWS; more locally).
const SUCCESSOR_NEEDS: Duration = Duration::from_secs(1);

/// The delay after `delay` between successor attempts: doubled, capped.
fn next_successor_delay(delay: Duration) -> Duration {
    (delay * 2).min(SUCCESSOR_RETRY_MAX)
}

/// Whether a successor attempt after `delay` still starts `SUCCESSOR_NEEDS`
/// before the old connection's `limit`.
fn successor_retry_fits(now: Instant, delay: Duration, limit: Instant) -> bool {
    now + delay + SUCCESSOR_NEEDS <= limit
}

/// A connection closed by the server with "going away" (1001) after being
/// established for at least this long is resumed at once, without backoff.
/// Shorter ones back off as after any loss: a server that accepts and then
/// closes every connection at once must not get a tight reconnect loop.
const GOING_AWAY_RESUME_AFTER: Duration = Duration::from_secs(1);

/// What the supervisor shares with each connection.
pub(crate) struct Ctx {
    pub events: broadcast::Sender<Event>,
    pub state: watch::Sender<ConnectionState>,
    pub shutdown: watch::Receiver<bool>,
}

impl Ctx {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn shutdown_requested(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Resolves once shutdown is requested (or the handle is gone).
    async fn shutdown_signal(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// How one connection ended.
enum End {
    /// Shutdown requested and done.
    Shutdown,
    /// Do not retry.
    Fatal(AgentError),
    /// Retry after a delay. `up_for` is how long it was established.
    Lost { reason: String, up_for: Duration },
    /// The server closed the connection with 1001 "going away": what API
    /// Gateway (and the emulator) send at the connection's age or idle
    /// limit. The agent resumes at once, without backoff (if it was up for
    /// [`GOING_AWAY_RESUME_AFTER`]).
    GoingAway { reason: String, up_for: Duration },
    /// Handed its tunnel over to a successor and closed (or died after
    /// that): the successor carries on.
    Retired,
    /// A successor that never took the tunnel over (it could not be opened,
    /// got another URL, or the old connection ended while it waited to try
    /// again), and why; `retry`: worth another attempt. The connection it
    /// was to succeed decides how the chain ends.
    NotTakenOver { reason: String, retry: bool },
}

/// Connects, serves and reconnects with backoff until shutdown or a fatal
/// error.
pub(crate) async fn supervise(
    config: &Config,
    forwarder: Arc<Forwarder>,
    ctx: &Ctx,
) -> Result<(), AgentError> {
    let mut backoff = Backoff::new(config.backoff);
    // The last `connection_established`'s resume token: presented on every
    // reconnect so the server gives the same subdomain (URL) back.
    let mut resume: Option<String> = None;
    // Whether a connection of this run was ever established: a 403 after
    // that is most likely our own old connection still holding the name.
    let mut connected_once = false;
    // When the current run of 403s on reconnect began.
    let mut forbidden_since: Option<Instant> = None;
    loop {
        if ctx.shutdown_requested() {
            return Ok(());
        }
        ctx.emit(Event::Connecting {
            attempt: backoff.attempt(),
        });
        let (end, announced) = chain(config, &forwarder, ctx, resume.as_deref()).await;
        if let ConnectionState::Connected(established) = &*ctx.state.borrow() {
            connected_once = true;
            forbidden_since = None;
            if established.resume_token.is_some() {
                resume.clone_from(&established.resume_token);
            }
        }
        let end = match end {
            End::Fatal(AgentError::Unauthorized { status: 403 }) if connected_once => {
                let since = *forbidden_since.get_or_insert_with(Instant::now);
                if since.elapsed() < config.forbidden_retry_for {
                    End::Lost {
                        reason: forbidden_reason(config.forbidden_retry_for),
                        up_for: Duration::ZERO,
                    }
                } else {
                    end
                }
            }
            end => end,
        };
        let (reason, up_for, at_once) = match end {
            End::Shutdown => return Ok(()),
            End::Fatal(err) => {
                tracing::info!(error = %err, "giving up");
                return Err(err);
            }
            End::Lost { reason, up_for } => (reason, up_for, false),
            End::GoingAway { reason, up_for } => {
                (reason, up_for, up_for >= GOING_AWAY_RESUME_AFTER)
            }
            End::Retired | End::NotTakenOver { .. } => (
                "the connection was handed over".to_owned(),
                Duration::ZERO,
                false,
            ),
        };
        backoff.connection_ended(up_for);
        let attempt = backoff.attempt();
        let delay = if at_once {
            Duration::ZERO
        } else {
            backoff.next_delay()
        };
        tracing::info!(%reason, delay = %humanize(delay), "connection lost; reconnecting");
        if !announced {
            ctx.emit(Event::Disconnected {
                reason: reason.clone(),
            });
        }
        ctx.emit(Event::Reconnecting { delay, attempt });
        let _ = ctx
            .state
            .send(ConnectionState::Reconnecting { delay, reason });
        if !delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = ctx.shutdown_signal() => return Ok(()),
            }
        }
        let _ = ctx.state.send(ConnectionState::Connecting);
    }
}

/// One connection and the successors it hands the tunnel over to before its
/// age limit (make-before-break): each asks for its successor on `renew`,
/// keeps serving until the successor is established, finishes what it has,
/// then retires. A successor that cannot be opened is tried again while the
/// old connection has time left. Ends when the last of them ends unplanned
/// (the end of a retired connection, or of a successor that never took
/// over, is not the chain's); `true` with it when the loss was already
/// announced (`Disconnected`), because a successor was still on its way.
async fn chain(
    config: &Config,
    forwarder: &Arc<Forwarder>,
    ctx: &Ctx,
    resume: Option<&str>,
) -> (End, bool) {
    let (renew_tx, mut renew_rx) = mpsc::unbounded_channel::<Instant>();
    let mut live: FuturesUnordered<std::pin::Pin<Box<dyn Future<Output = End> + Send + '_>>> =
        FuturesUnordered::new();
    live.push(Box::pin(connection(
        config,
        forwarder,
        ctx,
        resume.map(str::to_owned),
        renew_tx.clone(),
        None,
    )));
    let mut last: Option<(End, bool)> = None;
    // Tells the successor on its way that the connection it was to succeed
    // has ended.
    let mut predecessor_gone: Option<watch::Sender<bool>> = None;
    loop {
        tokio::select! {
            Some(limit) = renew_rx.recv() => {
                let (token, url) = match &*ctx.state.borrow() {
                    ConnectionState::Connected(e) => (e.resume_token.clone(), e.public_url.clone()),
                    _ => (None, String::new()),
                };
                let Some(token) = token else {
                    tracing::info!("no resume token to hand the tunnel over with; it reconnects when the connection ends");
                    continue;
                };
                tracing::info!("opening a successor connection before the age limit");
                let (gone_tx, gone) = watch::channel(false);
                predecessor_gone = Some(gone_tx);
                live.push(Box::pin(successor(
                    config,
                    forwarder,
                    ctx,
                    token,
                    renew_tx.clone(),
                    Successor { url, gone },
                    limit,
                )));
            }
            ended = live.next() => match ended {
                Some(End::Retired | End::NotTakenOver { .. }) => {}
                Some(end) => {
                    // The connection holding the tunnel ended unplanned;
                    // others (a successor on its way, a retiring one) are
                    // still live.
                    let announced = match &end {
                        End::Lost { reason, .. } | End::GoingAway { reason, .. } if !live.is_empty() => {
                            tracing::info!(%reason, "connection lost while another of the chain is live");
                            ctx.emit(Event::Disconnected { reason: reason.clone() });
                            true
                        }
                        _ => false,
                    };
                    if let Some(gone) = predecessor_gone.take() {
                        let _ = gone.send(true);
                    }
                    last = Some((end, announced));
                }
                None => {
                    return last.unwrap_or((
                        End::Lost {
                            reason: "the connection ended".into(),
                            up_for: Duration::ZERO,
                        },
                        false,
                    ));
                }
            },
        }
    }
}

/// What a successor connection knows of the one it is to succeed.
struct Successor {
    /// The tunnel's URL: the successor must get the same.
    url: String,
    /// Set once the old connection ended before the successor took over.
    gone: watch::Receiver<bool>,
}

/// A successor connection, tried again after [`SUCCESSOR_RETRY_FIRST`],
/// doubling, while the old connection (ending at `limit`) has time left and
/// is still up. Once it took the tunnel over, its end is the chain's.
async fn successor(
    config: &Config,
    forwarder: &Arc<Forwarder>,
    ctx: &Ctx,
    token: String,
    renew: mpsc::UnboundedSender<Instant>,
    mut successor: Successor,
    limit: Instant,
) -> End {
    let mut delay = SUCCESSOR_RETRY_FIRST;
    loop {
        let end = connection(
            config,
            forwarder,
            ctx,
            Some(token.clone()),
            renew.clone(),
            Some(Successor {
                url: successor.url.clone(),
                gone: successor.gone.clone(),
            }),
        )
        .await;
        // Anything else: it took the tunnel over (and its end is the
        // chain's), or the agent is stopping. A refused token (`retry`
        // false) is not tried again: the old connection serves on and the
        // reconnect after it says why.
        let End::NotTakenOver { reason, retry } = end else {
            return end;
        };
        if *successor.gone.borrow() {
            // The old connection is gone: the chain reconnects as after it.
            return End::NotTakenOver { reason, retry };
        }
        let retry_in =
            (retry && successor_retry_fits(Instant::now(), delay, limit)).then_some(delay);
        tracing::info!(%reason, ?retry_in, "the successor connection could not take the tunnel over");
        ctx.emit(Event::RenewFailed { reason, retry_in });
        let Some(delay_now) = retry_in else {
            return End::NotTakenOver {
                reason: "no time left before the age limit".into(),
                retry: false,
            };
        };
        tokio::select! {
            () = tokio::time::sleep(delay_now) => {}
            _ = successor.gone.wait_for(|gone| *gone) => {
                return End::NotTakenOver { reason: "the old connection ended".into(), retry: false };
            }
            () = ctx.shutdown_signal() => return End::Shutdown,
        }
        delay = next_successor_delay(delay);
    }
}

/// What the console says while a reconnect is refused with 403. Always the
/// same words, so the console prints it once, not at every attempt.
fn forbidden_reason(retry_for: Duration) -> String {
    format!(
        "the server refused the reconnect (HTTP 403): the tunnel's subdomain is still held, \
         most likely by this agent's previous connection, which the server has not yet seen \
         close; retrying for up to {} before giving up",
        humanize(retry_for)
    )
}

/// The TLS client configuration for `wss://` endpoints, built once.
///
/// The crypto provider is named explicitly rather than left to rustls: when
/// a build enables both `ring` and `aws-lc-rs` (feature unification does),
/// rustls cannot pick a process default and panics on first use.
fn tls_connector() -> Result<tokio_tungstenite::Connector, AgentError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, Arc<str>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    });
    match config {
        Ok(config) => Ok(tokio_tungstenite::Connector::Rustls(Arc::clone(config))),
        Err(e) => Err(AgentError::ClientInit(Arc::clone(e))),
    }
}

/// Opens the WebSocket with the handshake headers.
async fn connect(config: &Config, resume: Option<&str>) -> Result<Ws, End> {
    let lost = |reason: String| End::Lost {
        reason,
        up_for: Duration::ZERO,
    };
    let mut request = config
        .endpoint
        .as_str()
        .into_client_request()
        .map_err(|e| lost(format!("invalid endpoint: {e}")))?;
    let headers = request.headers_mut();
    if let Some(token) = &config.token {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| lost("the token contains characters not allowed in a header".into()))?;
        value.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, value);
    }
    if let Some(resume) = resume.and_then(|r| HeaderValue::from_str(r).ok()) {
        let mut value = resume;
        value.set_sensitive(true);
        headers.insert(protocol::HEADER_RESUME_TOKEN, value);
    }
    headers.insert(
        protocol::HEADER_AGENT_VERSION,
        HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    // The server refuses an older protocol with 426 (`docs/contracts.md`).
    headers.insert(
        protocol::HEADER_PROTOCOL,
        HeaderValue::from(protocol::PROTOCOL_VERSION),
    );
    if let Ok(platform) = HeaderValue::from_str(&platform()) {
        headers.insert(protocol::HEADER_AGENT_PLATFORM, platform);
    }
    if let Some(policy) = &config.policy {
        // base64url: always a valid header value. Sensitive: it may hold a
        // webhook secret.
        let mut value = HeaderValue::from_str(&policy.to_header())
            .map_err(|_| lost("the access policy cannot be sent as a header".into()))?;
        value.set_sensitive(true);
        headers.insert(protocol::policy::HEADER_POLICY, value);
    }
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(4 * MAX_MESSAGE_BYTES))
        .max_frame_size(Some(4 * MAX_MESSAGE_BYTES));
    let tls = tls_connector().map_err(End::Fatal)?;
    let handshake =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(ws_config), true, Some(tls));
    match tokio::time::timeout(config.connect_timeout, handshake).await {
        Err(_) => Err(lost(format!(
            "no answer from {} within {}",
            config.endpoint,
            humanize(config.connect_timeout)
        ))),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            if status == 401 || status == 403 {
                Err(End::Fatal(AgentError::Unauthorized { status }))
            } else if status == 426 {
                // Retrying cannot help: only a newer agent can.
                Err(End::Fatal(AgentError::Outdated))
            } else if status == 400 && config.policy.is_some() {
                Err(End::Fatal(AgentError::PolicyRefused))
            } else {
                Err(lost(format!(
                    "the server answered the handshake with HTTP {status}{}",
                    match status {
                        404 => " (is the stage in the endpoint URL right?)",
                        503 =>
                            " (the server may have no authentication secret configured; ask the operator)",
                        _ => "",
                    }
                )))
            }
        }
        Ok(Err(e)) => Err(lost(format!(
            "could not connect to {}: {}",
            config.endpoint,
            error_chain(&e)
        ))),
    }
}

/// Longest fields a `connection_established` may have: generous for any
/// real server (a URL, a 12-character subdomain, an API Gateway connection
/// id, a resume token), and a bound on what the agent keeps and reports.
const MAX_ESTABLISHED_FIELD_BYTES: usize = 2048;

fn plausible(e: &ConnectionEstablished) -> bool {
    [
        Some(&e.connection_id),
        Some(&e.subdomain),
        Some(&e.public_url),
        e.resume_token.as_ref(),
    ]
    .into_iter()
    .flatten()
    .all(|field| field.len() <= MAX_ESTABLISHED_FIELD_BYTES)
}

/// Waits for the drain timer; forever without one (the `select!` arm is
/// disabled then anyway).
async fn sleep_until_some_sleep(sleep: Option<&mut std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match sleep {
        Some(sleep) => sleep.await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Resolves once shutdown is requested (or the handle is gone).
async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// `linux-x86_64`, `macos-aarch64`…
fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

async fn send_json(sink: &mut Ws, json: String) -> Result<(), tungstenite::Error> {
    for frame in text_frames(json) {
        sink.feed(frame).await?;
    }
    sink.flush().await
}

/// One connection, from handshake to its end. A `successor` takes over the
/// tunnel of the connection that asked for it on `renew` (with its age
/// limit); if it never does, it ends `NotTakenOver`, for [`successor`] to
/// judge.
async fn connection(
    config: &Config,
    forwarder: &Arc<Forwarder>,
    ctx: &Ctx,
    resume: Option<String>,
    renew: mpsc::UnboundedSender<Instant>,
    successor: Option<Successor>,
) -> End {
    let successor_attempt = successor.is_some();
    let ws = tokio::select! {
        ws = connect(config, resume.as_deref()) => ws,
        () = ctx.shutdown_signal() => return End::Shutdown,
    };
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(end) if successor_attempt => return not_taken_over(end),
        Err(end) => return end,
    };
    let mut conn = Connection {
        config,
        ctx,
        forwarder,
        tasks: JoinSet::new(),
        in_flight: HashMap::new(),
        connected_at: Instant::now(),
        established_at: None,
        established: None,
        successor,
        renew,
        retired: false,
        out: mpsc::channel(OUT_QUEUE_MESSAGES),
    };
    let end = conn.serve(&mut ws).await;
    // Nothing outlives the connection: responses could not be delivered on
    // another one anyway.
    let dropped = conn.tasks.len() + conn.out.1.len();
    conn.tasks.abort_all();
    if successor_attempt && conn.established.is_none() {
        return not_taken_over(end);
    }
    // Superseded while ending (its successor confirmed before this one's
    // end was seen): a handover all the same.
    if !conn.retired && !matches!(end, End::Shutdown) && conn.superseded(&ctx.state.borrow()) {
        conn.retired = true;
    }
    if !conn.retired {
        return end;
    }
    let dropped = match end {
        End::Retired | End::NotTakenOver { .. } => 0,
        // Asked to stop while finishing: the shutdown reports it.
        End::Shutdown => return End::Retired,
        End::Fatal(_) | End::Lost { .. } | End::GoingAway { .. } => dropped,
    };
    tracing::info!(
        dropped,
        "handed the tunnel over to the successor connection"
    );
    ctx.emit(Event::Renewed { dropped });
    End::Retired
}

/// The end of a successor attempt that never took the tunnel over: worth
/// another try unless the server refused the token.
fn not_taken_over(end: End) -> End {
    match end {
        End::Lost { reason, .. } | End::GoingAway { reason, .. } => End::NotTakenOver {
            reason,
            retry: true,
        },
        End::Fatal(err) => End::NotTakenOver {
            reason: err.to_string(),
            retry: false,
        },
        other => other,
    }
}

struct Connection<'a> {
    config: &'a Config,
    ctx: &'a Ctx,
    forwarder: &'a Arc<Forwarder>,
    tasks: JoinSet<()>,
    in_flight: HashMap<tokio::task::Id, String>,
    /// When the handshake completed: the server's age limit counts from here.
    connected_at: Instant,
    established_at: Option<Instant>,
    /// This connection's `connection_established`.
    established: Option<ConnectionEstablished>,
    /// Opened to take over from a connection nearing its age limit.
    successor: Option<Successor>,
    /// Asks the chain for a successor, with this connection's age limit.
    renew: mpsc::UnboundedSender<Instant>,
    /// A successor holds the tunnel now: finish what is here, then close.
    retired: bool,
    out: (mpsc::Sender<String>, mpsc::Receiver<String>),
}

impl Connection<'_> {
    fn lost(&self, reason: impl Into<String>) -> End {
        End::Lost {
            reason: reason.into(),
            up_for: self.up_for(),
        }
    }

    /// How long this connection has been established.
    fn up_for(&self) -> Duration {
        self.established_at.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// How long the server keeps this connection (`max_age_secs`).
    fn max_age(&self) -> Duration {
        self.established
            .as_ref()
            .and_then(|e| e.max_age_secs)
            .map_or(DEFAULT_MAX_AGE, Duration::from_secs)
    }

    async fn serve(&mut self, ws: &mut Ws) -> End {
        if let Err(end) = self.send_message(ws, &Message::Ready(Ready {})).await {
            return end;
        }
        let now = Instant::now();
        let mut heartbeat = Heartbeat::new(self.config.dead_after, now);
        let mut ticks = tokio::time::interval_at(
            now + self.config.heartbeat_interval,
            self.config.heartbeat_interval,
        );
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let establish_deadline = tokio::time::sleep(self.config.establish_timeout);
        tokio::pin!(establish_deadline);
        let mut shutdown = self.ctx.shutdown.clone();
        let mut draining: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        // Set once established: when to ask for a successor.
        let mut renew_at: Option<Instant> = None;
        // Once retired: until when requests already on their way may arrive.
        let mut retire_grace: Option<Instant> = None;
        let mut state = self.ctx.state.subscribe();

        loop {
            if self.retired && retire_grace.is_none() && draining.is_none() && self.tasks.is_empty()
            {
                while let Ok(json) = self.out.1.try_recv() {
                    if let Err(e) = send_json(ws, json).await {
                        return self
                            .lost(format!("could not send a response: {}", error_chain(&e)));
                    }
                }
                self.close(ws, "handed over to a new connection").await;
                return End::Retired;
            }
            if renew_at.is_none() && !self.retired && self.established.is_some() {
                renew_at = Some(self.connected_at + renew_after(self.max_age()));
            }
            if draining.is_some() && self.tasks.is_empty() {
                // Every task has finished; their responses may still be queued.
                while let Ok(json) = self.out.1.try_recv() {
                    if let Err(e) = send_json(ws, json).await {
                        return self
                            .lost(format!("could not send a response: {}", error_chain(&e)));
                    }
                }
                return self.close(ws, "agent shutting down").await;
            }
            tokio::select! {
                () = stop_requested(&mut shutdown), if draining.is_none() => {
                    let in_flight = self.tasks.len();
                    tracing::info!(in_flight, "shutting down");
                    self.ctx.emit(Event::ShuttingDown { in_flight });
                    draining = Some(Box::pin(tokio::time::sleep(self.config.shutdown_grace)));
                }
                () = sleep_until_some_sleep(draining.as_mut()), if draining.is_some() => {
                    self.fail_in_flight(ws).await;
                    return self.close(ws, "agent shutting down").await;
                }
                () = sleep_until_some(renew_at), if renew_at.is_some() && !self.retired && draining.is_none() => {
                    // Once: the chain tries the successor again while this
                    // connection has time; if it never takes over, this one
                    // serves until the server ends it, then the agent
                    // reconnects.
                    renew_at = Some(Instant::now() + DEFAULT_MAX_AGE);
                    let _ = self.renew.send(self.connected_at + self.max_age());
                }
                () = sleep_until_some(retire_grace), if retire_grace.is_some() => {
                    retire_grace = None;
                }
                Ok(()) = state.changed(), if !self.retired && self.established.is_some() => {
                    if self.superseded(&state.borrow_and_update()) {
                        tracing::info!(in_flight = self.tasks.len(), "the successor connection holds the tunnel; finishing what is here");
                        self.retired = true;
                        retire_grace = Some(Instant::now() + RETIRE_GRACE);
                    }
                }
                frame = ws.next() => {
                    heartbeat.heard(Instant::now());
                    match frame {
                        None => return self.lost("the server closed the connection"),
                        Some(Err(e)) => return self.lost(format!("connection error: {}", error_chain(&e))),
                        Some(Ok(WsMessage::Text(text))) => {
                            if let Err(end) = self.on_text(ws, text.as_str(), draining.is_some()).await {
                                return end;
                            }
                        }
                        Some(Ok(WsMessage::Close(frame))) => {
                            let going_away = frame.as_ref().is_some_and(|f| f.code == CloseCode::Away);
                            let why = frame.map_or_else(
                                || "no reason given".to_owned(),
                                |f| format!("code {}{}", u16::from(f.code), if f.reason.is_empty() { String::new() } else { format!(", {}", f.reason) }),
                            );
                            let reason = format!("the server closed the connection ({why})");
                            if going_away {
                                // API Gateway at its age or idle limit: resume now.
                                return End::GoingAway {
                                    reason,
                                    up_for: self.up_for(),
                                };
                            }
                            return self.lost(reason);
                        }
                        Some(Ok(WsMessage::Binary(b))) => {
                            tracing::warn!(bytes = b.len(), "ignoring a binary message from the server");
                        }
                        Some(Ok(_)) => {} // WebSocket ping/pong: answered by tungstenite
                    }
                }
                Some(json) = self.out.1.recv() => {
                    if let Err(e) = send_json(ws, json).await {
                        return self.lost(format!("could not send a response: {}", error_chain(&e)));
                    }
                }
                Some(joined) = self.tasks.join_next_with_id() => {
                    let id = match &joined { Ok((id, ())) => *id, Err(e) => e.id() };
                    let request_id = self.in_flight.remove(&id);
                    if let Err(e) = joined && e.is_panic() {
                        tracing::error!(?request_id, "request task panicked");
                        if let Some(rid) = request_id
                            && let Err(end) = self.send_error(ws, &rid, ErrorCode::InternalError, "the tunnel agent failed while handling this request").await
                        {
                            return end;
                        }
                    }
                }
                _ = ticks.tick() => match heartbeat.tick(Instant::now()) {
                    Beat::Dead { silent_for } => {
                        return self.lost(format!("no message from the server for {}; the link looks dead", humanize(silent_for)));
                    }
                    Beat::Ping => {
                        if let Err(end) = self.send_message(ws, &Message::Ping).await {
                            return end;
                        }
                    }
                },
                () = &mut establish_deadline, if self.established_at.is_none() && draining.is_none() => {
                    return self.lost(format!("the server did not confirm the tunnel within {}", humanize(self.config.establish_timeout)));
                }
            }
        }
    }

    /// Handles one text message from the server.
    async fn on_text(&mut self, ws: &mut Ws, text: &str, draining: bool) -> Result<(), End> {
        let message = match Message::from_json(text) {
            Ok(m) => m,
            Err(ProtocolError::Malformed(e)) => {
                // Never the text itself: it may carry a body.
                tracing::warn!(bytes = text.len(), kind = ?e.classify(), line = e.line(), column = e.column(), "ignoring a malformed message from the server");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a message from the server");
                return Ok(());
            }
        };
        // An id the agent could not echo back in an answer: nothing can be
        // done for the request, and it must not reach the code below.
        let request_id = match &message {
            Message::HttpRequest(r) => Some(&r.request_id),
            _ => None,
        };
        if let Some(id) = request_id
            && !is_valid_request_id(id)
        {
            tracing::warn!(
                kind = message.kind(),
                id_bytes = id.len(),
                "ignoring a message from the server with an invalid request id"
            );
            return Ok(());
        }
        match message {
            Message::ConnectionEstablished(established) => self.on_established(established)?,
            Message::HttpRequest(request) if draining => {
                self.send_error(
                    ws,
                    &request.request_id,
                    ErrorCode::LocalServiceUnavailable,
                    "the tunnel agent is shutting down",
                )
                .await?;
            }
            Message::HttpRequest(request) => self.spawn_request(ws, request).await?,
            Message::Ping => self.send_message(ws, &Message::Pong).await?,
            Message::Pong => {}
            Message::Rejected(rejected) => {
                // The server's words, clipped: events are buffered, and the
                // inspector keeps them.
                let rejected = protocol::policy::Rejected {
                    method: clip(&rejected.method, 16),
                    path: clip(&rejected.path, 256),
                    reason: clip(&rejected.reason, 128),
                    source_ip: rejected.source_ip.as_deref().map(|ip| clip(ip, 64)),
                    status: rejected.status,
                };
                self.forwarder.refused(&rejected);
                self.ctx.emit(Event::Rejected(rejected));
            }
            Message::Error(err) => {
                // Clipped: events are buffered, and the text is the server's.
                let message = clip(&err.message, MAX_ERROR_MESSAGE_CHARS);
                let request_id = err.request_id.as_deref().map(|id| clip(id, 64));
                tracing::info!(code = ?err.code, ?request_id, %message, "error from the server");
                if err.request_id.is_none() {
                    self.ctx.emit(Event::ServerError {
                        code: err.code,
                        message,
                    });
                }
            }
            // ready, http_response, unknown types, and whatever
            // later protocol versions add that this agent does not handle yet.
            #[allow(unreachable_patterns)]
            other => {
                tracing::warn!(
                    kind = other.kind(),
                    "ignoring an unexpected message from the server"
                );
            }
        }
        Ok(())
    }

    fn on_established(&mut self, established: ConnectionEstablished) -> Result<(), End> {
        if !plausible(&established) {
            tracing::warn!("ignoring a connection_established with implausibly long fields");
            return Ok(());
        }
        if let Some(successor) = &self.successor
            && self.established.is_none()
            && successor.url != established.public_url
        {
            // The resume token was not accepted: the tunnel stays on the
            // old connection rather than move to another URL.
            return Err(self.lost("the successor connection did not get the tunnel's URL"));
        }
        tracing::info!(
            public_url = %established.public_url,
            subdomain = %established.subdomain,
            connection_id = %established.connection_id,
            successor = self.successor.is_some(),
            "tunnel established"
        );
        if self.established_at.is_none() {
            self.established_at = Some(Instant::now());
        }
        let first = self.established.is_none();
        self.established = Some(established.clone());
        // Tells the connection this one succeeds to retire.
        let _ = self
            .ctx
            .state
            .send(ConnectionState::Connected(established.clone()));
        // A successor taking over is announced by its predecessor
        // (`Renewed`) once it has finished; unless the predecessor ended
        // first, when this is a reconnect.
        let handover = self
            .successor
            .as_ref()
            .is_some_and(|s| first && !*s.gone.borrow());
        if !handover {
            self.ctx.emit(Event::Connected(established));
        }
        Ok(())
    }

    /// Answers one request with an `error` message.
    async fn send_error(
        &self,
        ws: &mut Ws,
        request_id: &str,
        code: ErrorCode,
        message: &str,
    ) -> Result<(), End> {
        match error_json(Some(request_id), code, message) {
            Ok(json) => send_json(ws, json)
                .await
                .map_err(|e| self.lost(format!("could not send an error: {}", error_chain(&e)))),
            // Only an id longer than any valid one: logged, not fatal.
            Err(e) => {
                tracing::error!(error = %e, "cannot answer a request with an error");
                Ok(())
            }
        }
    }

    /// Sends one of the agent's own small messages (`ready`, `ping`, `pong`).
    async fn send_message(&self, ws: &mut Ws, message: &Message) -> Result<(), End> {
        let kind = message.kind();
        let json = message
            .to_json()
            .map_err(|e| self.lost(format!("could not build a {kind} message: {e}")))?;
        send_json(ws, json)
            .await
            .map_err(|e| self.lost(format!("could not send a {kind}: {}", error_chain(&e))))
    }

    /// Forwards a complete request, or refuses it with `overloaded` when
    /// `max_in_flight` requests (replays included) are already with the
    /// local service. The task gives its slot back once its answer is
    /// queued, so a finished task not yet reaped does not count.
    async fn spawn_request(&mut self, ws: &mut Ws, request: HttpRequest) -> Result<(), End> {
        let Some(slot) = self.forwarder.try_slot() else {
            let in_flight = self.config.max_in_flight;
            tracing::warn!(in_flight, request_id = %request.request_id, "too many requests in flight; refusing one");
            let visitor = format!(
                "the tunnel agent is already handling {in_flight} requests; try again in a moment"
            );
            self.ctx.emit(Event::Request(RequestLog::for_request(
                &request,
                RequestOutcome::Failed {
                    code: ErrorCode::Overloaded,
                    message: format!(
                        "refused: {in_flight} requests already in flight (the limit, --max-in-flight)"
                    ),
                },
            )));
            return self
                .send_error(ws, &request.request_id, ErrorCode::Overloaded, &visitor)
                .await;
        };
        let forwarder = Arc::clone(self.forwarder);
        let out = self.out.0.clone();
        let events = self.ctx.events.clone();
        let request_id = request.request_id.clone();
        let span = tracing::info_span!("request", id = %request_id);
        let handle = self.tasks.spawn(
            async move {
                let (answer, log) = forwarder.forward(request).await;
                tracing::debug!(outcome = ?log.outcome, duration = ?log.duration, "request done");
                match wire::answer_json(answer) {
                    // Queued as soon as the channel has room.
                    Ok(json) => {
                        let _ = out.send(json).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot answer the request with an error")
                    }
                }
                drop(slot);
                let _ = events.send(Event::Request(log));
            }
            .instrument(span),
        );
        self.in_flight.insert(handle.id(), request_id);
        Ok(())
    }

    /// Grace period over: abort what is left and tell the server.
    async fn fail_in_flight(&mut self, ws: &mut Ws) {
        self.tasks.abort_all();
        // Tasks that finished before the abort have queued their response.
        while let Some(joined) = self.tasks.join_next_with_id().await {
            if let Ok((id, ())) = joined {
                self.in_flight.remove(&id);
            }
        }
        // Responses that made it into the queue still go out.
        while let Ok(json) = self.out.1.try_recv() {
            if send_json(ws, json).await.is_err() {
                return;
            }
        }
        let unanswered: Vec<String> = self.in_flight.drain().map(|(_, id)| id).collect();
        for request_id in unanswered {
            let sent = self
                .send_error(
                    ws,
                    &request_id,
                    ErrorCode::LocalServiceUnavailable,
                    "the tunnel agent shut down before the local service answered",
                )
                .await;
            if sent.is_err() {
                return;
            }
        }
    }

    /// Whether `state` is another connection of this agent established on
    /// this connection's URL: its successor, which holds the tunnel now.
    fn superseded(&self, state: &ConnectionState) -> bool {
        match (state, &self.established) {
            (ConnectionState::Connected(now), Some(mine)) => {
                now.connection_id != mine.connection_id && now.public_url == mine.public_url
            }
            _ => false,
        }
    }

    /// Sends a close frame and waits briefly for the server's answer.
    async fn close(&mut self, ws: &mut Ws, reason: &'static str) -> End {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: reason.into(),
        };
        if ws.close(Some(frame)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                // Until the server's close reply (or the end of the stream).
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_close() {
                        break;
                    }
                }
            })
            .await;
        }
        End::Shutdown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_successor_is_opened_a_margin_before_the_age_limit() {
        let secs = |s| Duration::from_secs(s);
        // API Gateway's 2 hours: 5 minutes before.
        assert_eq!(renew_after(secs(7200)), secs(6900));
        // Short limits (the tests' emulator): a quarter before.
        assert_eq!(renew_after(secs(20)), secs(15));
        assert_eq!(renew_after(secs(1)), Duration::from_millis(750));
    }

    #[test]
    fn a_failed_successor_is_tried_again_only_while_the_old_connection_has_time() {
        let now = Instant::now();
        let secs = |s| Duration::from_secs(s);
        // 2 hours: 5 minutes of margin hold 1, 2, 4, … 30 s retries.
        assert!(successor_retry_fits(now, secs(30), now + secs(60)));
        // The tests' 12 s: renewing at 9 s, a 1 s retry fits, 2 s more not.
        assert!(successor_retry_fits(now, secs(1), now + secs(3)));
        assert!(!successor_retry_fits(now + secs(1), secs(2), now + secs(3)));
        // Past the limit: never.
        assert!(!successor_retry_fits(now + secs(5), secs(1), now + secs(3)));
        let delays: Vec<u64> = std::iter::successors(Some(SUCCESSOR_RETRY_FIRST), |&d| {
            Some(next_successor_delay(d))
        })
        .take(7)
        .map(|d| d.as_secs())
        .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    }
}
