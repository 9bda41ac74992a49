//! `tunnel`: a public URL for a local HTTP service.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use agent::console::Console;
use agent::{Agent, AgentError, Config, Endpoint, Event, HostHeader, Target};
use anyhow::Context as _;
use clap::{ArgAction, CommandFactory as _, Parser, Subcommand, ValueEnum};

const ABOUT: &str =
    "Expose a local HTTP service at a public HTTPS URL through your self-hosted serverless tunnel.";

const LONG_ABOUT: &str = "\
Expose a local HTTP service at a public HTTPS URL through your self-hosted
serverless tunnel (API Gateway + Lambda in your own AWS account).

The agent connects to the tunnel's WebSocket endpoint, prints the public URL
and forwards every request to the local service, byte for byte: bodies are
never decompressed, redirects are never followed. It reconnects by itself
(and gets the same URL back). Ctrl-C stops it cleanly.

Every request and response is also shown live on a local page, the request
inspector (http://127.0.0.1:4040 unless that port is taken: the banner says
where), where you can read headers and bodies, replay a request (as it was or
edited) and copy it as curl. Captures stay in memory; --no-inspect turns it
off.

Every option can also be set through the environment variable shown.";

const EXAMPLES: &str = "\
Examples:
  # Forward to http://127.0.0.1:3000
  export TUNNEL_ENDPOINT=wss://abc123.execute-api.eu-west-1.amazonaws.com/prod
  export TUNNEL_TOKEN=...            # from your operator
  tunnel 3000

  # A service on another address; keep the public Host header
  tunnel http://192.168.1.20:8080 --host-header preserve

  # A dev server that checks Host, a slow endpoint, JSON logs
  tunnel 5173 --host-header localhost --timeout 25s --log-format json

  # The inspector on another port, keeping the last 2000 requests
  tunnel 3000 --inspect 4050 --inspect-requests 2000

  # Access control, checked at the edge before a request reaches you:
  # a password, an address range, a secret link, webhook signatures
  tunnel 3000 --basic-auth alice:long-random-passphrase
  tunnel 3000 --allow-cidr 203.0.113.0/24 --allow-cidr 2001:db8::/32
  tunnel 3000 --url-token          # prints https://…/?tunnel_token=…
  GITHUB_WEBHOOK_SECRET=… tunnel 3000 --verify-webhook github --webhook-secret-env GITHUB_WEBHOOK_SECRET
  tunnel 3000 --verify-webhook hmac --webhook-secret-env MY_SECRET --webhook-header X-Signature

  # Operators: mint a token (see `tunnel token issue --help`)
  tunnel token issue --secret-env TUNNEL_AUTH_SECRET --user alice --expires 30d

Exit codes: 0 stopped with Ctrl-C, 1 the server rejected the token or the
agent failed, 2 invalid command line.";

// `tunnel <target>` runs the agent; `tunnel token …` is for operators. A
// subcommand name is never a valid target (a port or a URL), so the two
// forms cannot be confused.
#[derive(Debug, Parser)]
#[command(
    name = "tunnel",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    subcommand_value_name = "COMMAND"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Local service: a port (3000 = http://127.0.0.1:3000) or a URL
    /// (http://localhost:8080, https://127.0.0.1:8443)
    // Optional only for clap: required unless a subcommand is given.
    #[arg(env = "TUNNEL_TARGET", value_name = "PORT|URL", value_parser = parse_target, required = true)]
    target: Option<Target>,

    /// Tunnel server WebSocket URL, e.g. wss://abc123.execute-api.eu-west-1.amazonaws.com/prod
    /// (a `?token=` in it is masked in every message)
    // A String, validated in `main`: clap would quote a rejected value whole,
    // `?token=` included.
    #[arg(
        long,
        env = "TUNNEL_ENDPOINT",
        hide_env_values = true,
        value_name = "WSS_URL",
        required = true
    )]
    endpoint: Option<String>,

    /// Auth token, sent as `Authorization: Bearer <token>` when connecting
    /// (never printed)
    #[arg(
        long,
        env = "TUNNEL_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,

    /// Host header the local service sees: `rewrite` (the local host:port),
    /// `preserve` (the public host), or any other value to send as is
    #[arg(
        long,
        env = "TUNNEL_HOST_HEADER",
        default_value = "rewrite",
        value_name = "MODE|HOST"
    )]
    host_header: String,

    /// How long the local service may take to answer one request, e.g. 30s,
    /// 1500ms (visitors get 504 after it; the tunnel itself gives up at 25 s)
    #[arg(long, env = "TUNNEL_TIMEOUT", default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,

    /// Most requests forwarded to the local service at once, the
    /// inspector's replays included; visitors get 503 above it (bounds the
    /// agent's memory)
    #[arg(long, env = "TUNNEL_MAX_IN_FLIGHT", default_value_t = agent::config::DEFAULT_MAX_IN_FLIGHT, value_parser = parse_max_in_flight, value_name = "N")]
    max_in_flight: usize,

    /// `text`: readable console lines on stdout, diagnostics on stderr;
    /// `json`: one JSON log record per event on stdout
    #[arg(long, env = "TUNNEL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// More diagnostics (-v info, -vv debug, -vvv trace); or set TUNNEL_LOG
    /// to a tracing filter such as `agent=debug`
    #[arg(short, long, action = ArgAction::Count, env = "TUNNEL_VERBOSE")]
    verbose: u8,

    /// Only problems: no banner or access lines
    #[arg(short, long, env = "TUNNEL_QUIET", conflicts_with = "verbose")]
    quiet: bool,

    #[command(flatten)]
    inspect: agent::inspect::InspectArgs,

    #[command(flatten)]
    access: agent::access::AccessArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(about = token_cmd::ABOUT, after_help = token_cmd::EXAMPLES)]
    Token(token_cmd::TokenArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_target(s: &str) -> Result<Target, String> {
    s.parse().map_err(|e: agent::ConfigError| e.to_string())
}

/// The endpoint, or a command-line error quoting it with its secrets masked.
fn validate_endpoint(raw: &str) -> Result<Endpoint, clap::Error> {
    raw.parse::<Endpoint>().map_err(|e| {
        Cli::command().error(
            clap::error::ErrorKind::ValueValidation,
            format!("invalid --endpoint: {e}"),
        )
    })
}

fn parse_max_in_flight(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err("expected a number of requests from 1 to 10000".into()),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    agent::config::parse_duration(s).map_err(|e| e.to_string())
}

mod token_cmd;

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(Command::Token(args)) = cli.command.take() {
        return match token_cmd::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let (Some(target), Some(endpoint)) = (cli.target.take(), cli.endpoint.take()) else {
        // Clap requires both when there is no subcommand.
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "the target and --endpoint are required",
            )
            .exit()
    };
    let endpoint = validate_endpoint(&endpoint).unwrap_or_else(|e| e.exit());
    // The local offset can only be read safely before any thread starts.
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    init_logging(&cli);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, target, endpoint, offset)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = log_filter(cli, std::env::var("TUNNEL_LOG").ok().as_deref());
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(secret_safe_levels());
    let fmt = tracing_subscriber::fmt::layer();
    let _ = match cli.log_format {
        LogFormat::Text => subscriber
            .with(
                fmt.with_writer(std::io::stderr)
                    .with_target(false)
                    // No colour codes in a file or a pipe.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .try_init(),
        LogFormat::Json => subscriber
            .with(fmt.json().with_writer(std::io::stdout))
            .try_init(),
    };
}

/// What to log: `TUNNEL_LOG` if it is a valid filter, else our crates at the
/// level `-q`/`-v` chose and dependencies only when they warn.
fn log_filter(cli: &Cli, tunnel_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    if let Some(filter) = tunnel_log.and_then(|f| EnvFilter::try_new(f).ok()) {
        return filter;
    }
    let level = match (cli.quiet, cli.verbose, cli.log_format) {
        (true, _, _) => "error",
        (false, 0, LogFormat::Text) => "warn",
        (false, 0, LogFormat::Json) => "info",
        (false, 1, _) => "info",
        (false, 2, _) => "debug",
        _ => "trace",
    };
    EnvFilter::new(format!("warn,agent={level},tunnel={level}"))
}

/// A ceiling on top of the filter, whatever `TUNNEL_LOG` says: tungstenite's
/// trace level prints the handshake request (with the token) and every frame
/// (with bodies). A separate layer, because a directive in the filter itself
/// would also *enable* tungstenite's debug lines at the default verbosity.
fn secret_safe_levels() -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("tungstenite", LevelFilter::DEBUG)
        .with_target("tokio_tungstenite", LevelFilter::DEBUG)
}

async fn run(
    cli: Cli,
    target: Target,
    endpoint: Endpoint,
    offset: time::UtcOffset,
) -> anyhow::Result<()> {
    if cli.timeout > protocol::limits::MAX_REQUEST_TIMEOUT {
        tracing::warn!(
            "--timeout {:?} is longer than the tunnel waits ({:?}): visitors will get 504 first",
            cli.timeout,
            protocol::limits::REQUEST_TIMEOUT
        );
    }
    let mut config =
        Config::new(endpoint.as_str(), target.base()).context("invalid configuration")?;
    config.target = target.clone();
    config.token = cli.token.filter(|t| !t.is_empty()).map(agent::Token::new);
    config.host_header = cli
        .host_header
        .parse::<HostHeader>()
        .unwrap_or(HostHeader::Rewrite);
    config.request_timeout = cli.timeout;
    config.max_in_flight = cli.max_in_flight;
    let access = cli
        .access
        .access(|var| std::env::var(var).ok())
        .map_err(|e| anyhow::anyhow!("invalid access options: {e}"))?;
    config.policy = access.policy;

    // The request inspector (agent::inspect), before the agent so the first
    // request is captured.
    let inspector = cli
        .inspect
        .start()
        .await
        .context("the request inspector did not start")?;
    let mut console = Console::new(target.base(), offset);
    if let Some(token) = access.url_token {
        console = console.with_url_token(token);
    }
    if let Some(running) = &inspector {
        console = console.with_inspect_url(running.server.url());
        tracing::info!(url = %running.server.url(), "request inspector listening");
    }
    let print = cli.log_format == LogFormat::Text && !cli.quiet;
    let mut handle = match &inspector {
        Some(running) => Agent::start_with_inspector(config, running.inspector.clone()),
        None => Agent::start(config),
    };
    let mut interrupts = 0u32;
    let mut signals = stop_signals();
    loop {
        tokio::select! {
            event = handle.next_event() => {
                let Some(event) = event else { break };
                if cli.log_format == LogFormat::Json {
                    log_event(&event);
                } else if let Some(line) = console.render(&event) {
                    let problem = matches!(event, Event::Disconnected { .. } | Event::ServerError { .. } | Event::RenewFailed { .. });
                    if print || problem {
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "{line}");
                    }
                }
                if event == Event::Stopped {
                    break;
                }
            }
            Some(()) = signals.recv() => {
                interrupts += 1;
                if interrupts > 1 {
                    eprintln!("Stopped without waiting for requests in flight.");
                    std::process::exit(130);
                }
                handle.request_shutdown();
            }
        }
    }
    match handle.wait().await {
        Ok(()) => Ok(()),
        Err(
            e
            @ (AgentError::Unauthorized { .. } | AgentError::Outdated | AgentError::PolicyRefused),
        ) => Err(anyhow::Error::new(e)),
        Err(e) => Err(anyhow::Error::new(e).context("the tunnel agent stopped")),
    }
}

/// Ctrl-C (and SIGTERM on Unix), each one delivered; listened to from the
/// start so none is missed between two events.
fn stop_signals() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let ctrl_c = tx.clone();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if ctrl_c.send(()).is_err() {
                break;
            }
        }
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        while term.recv().await.is_some() {
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// JSON mode: every event as one structured record.
fn log_event(event: &Event) {
    match event {
        Event::Connecting { attempt } => tracing::info!(attempt, "connecting"),
        Event::Connected(e) => tracing::info!(
            public_url = %e.public_url,
            subdomain = %e.subdomain,
            connection_id = %e.connection_id,
            "forwarding"
        ),
        Event::Disconnected { reason } => tracing::warn!(%reason, "connection lost"),
        Event::Reconnecting { delay, attempt } => {
            tracing::info!(delay_ms = delay.as_millis() as u64, attempt, "reconnecting")
        }
        Event::Request(log) => match &log.outcome {
            agent::RequestOutcome::Status(status) => tracing::info!(
                request_id = %log.request_id,
                method = %log.method,
                path = %log.path,
                status,
                duration_ms = log.duration.as_millis() as u64,
                "request"
            ),
            agent::RequestOutcome::Failed { code, message } => tracing::warn!(
                request_id = %log.request_id,
                method = %log.method,
                path = %log.path,
                code = ?code,
                status = code.http_status(),
                duration_ms = log.duration.as_millis() as u64,
                %message,
                "request failed"
            ),
        },
        Event::Rejected(r) => tracing::info!(
            method = %r.method,
            path = %r.path,
            status = r.status,
            reason = %r.reason,
            source_ip = r.source_ip.as_deref().unwrap_or(""),
            "request refused at the edge"
        ),
        Event::ServerError { code, message } => {
            tracing::warn!(code = ?code, %message, "server error")
        }
        Event::Renewed { dropped } => tracing::info!(dropped, "renewed the connection"),
        Event::RenewFailed { reason, retry_in } => tracing::warn!(
            %reason,
            retry_in_ms = retry_in.map(|d| d.as_millis() as u64),
            "could not renew the connection"
        ),
        Event::ShuttingDown { in_flight } => tracing::info!(in_flight, "shutting down"),
        Event::Stopped => tracing::info!("stopped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_a_port_and_flags() {
        let cli = Cli::try_parse_from([
            "tunnel",
            "3000",
            "--endpoint",
            "wss://x.example.com/prod",
            "--timeout",
            "30s",
            "--host-header",
            "preserve",
            "-vv",
        ])
        .unwrap();
        assert_eq!(cli.target.unwrap().base(), "http://127.0.0.1:3000");
        assert_eq!(cli.timeout, Duration::from_secs(30));
        assert_eq!(cli.verbose, 2);
        assert_eq!(cli.host_header, "preserve");
    }

    #[test]
    fn token_is_a_subcommand_and_needs_no_target_or_endpoint() {
        let cli = Cli::try_parse_from([
            "tunnel",
            "token",
            "issue",
            "--secret-env",
            "S",
            "--user",
            "alice",
            "--expires",
            "30d",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Token(_))));
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("token"), "{help}");
        // Without a subcommand the target and endpoint are still required.
        let err = Cli::try_parse_from(["tunnel", "--endpoint", "wss://x/p"]).unwrap_err();
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::MissingRequiredArgument,
            "{err}"
        );
    }

    #[test]
    fn inspector_flags() {
        use agent::inspect::{Bind, Limits};
        let cli = Cli::try_parse_from([
            "tunnel",
            "3000",
            "--endpoint",
            "wss://x.example.com/prod",
            "--inspect",
            "4050",
            "--inspect-requests",
            "20",
            "--inspect-memory",
            "8MB",
            "--inspect-body-limit",
            "64KiB",
            "--inspect-save",
            "captures.jsonl",
        ])
        .unwrap();
        assert_eq!(
            cli.inspect.bind(),
            Bind::Exact("127.0.0.1:4050".parse().unwrap())
        );
        assert_eq!(
            cli.inspect.limits(),
            Limits {
                max_requests: 20,
                max_body_bytes: 8_000_000,
                body_limit: 65_536,
            }
        );
        let err = Cli::try_parse_from([
            "tunnel",
            "3000",
            "--endpoint",
            "wss://x/p",
            "--no-inspect",
            "--inspect-save",
            "f",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let err = Cli::try_parse_from([
            "tunnel",
            "3000",
            "--endpoint",
            "wss://x/p",
            "--inspect-memory",
            "lots",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("not a size"), "{err}");
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--inspect <ADDR>",
            "--no-inspect",
            "--inspect-requests",
            "--inspect-memory",
            "--inspect-body-limit",
            "--inspect-save",
            "TUNNEL_INSPECT",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
    }

    #[test]
    fn explains_a_bad_endpoint_and_target() {
        let err = validate_endpoint("https://x/?token=S3CRET").unwrap_err();
        assert!(err.to_string().contains("wss://"), "{err}");
        assert!(!err.to_string().contains("S3CRET"), "{err}");
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let err =
            Cli::try_parse_from(["tunnel", "abc def", "--endpoint", "wss://x/p"]).unwrap_err();
        assert!(
            err.to_string().contains("neither a port nor a URL"),
            "{err}"
        );
    }
}
