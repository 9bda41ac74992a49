//! `local-stack` (`just dev`): the whole tunnel on localhost. DynamoDB
//! (LocalStack or moto), the tables, and the four real Lambda handlers under
//! the API Gateway emulator; with `--expose PORT` also an agent.

use std::{
    io::Write as _,
    net::{SocketAddr, TcpStream},
    process::ExitCode,
    time::Duration,
};

use agent::{Agent, Event, console::Console};
use anyhow::Context as _;
use clap::Parser;
use handlers::config::Routing;
use itest::{BackendChoice, DynamoDb, Logs, Stack, StackConfig, stack::DEFAULT_DOMAIN};

const ABOUT: &str = "The whole serverless tunnel on localhost: DynamoDB, the API Gateway emulator and the four real Lambda handlers.";

const LONG_ABOUT: &str = "\
The whole serverless tunnel on localhost, no AWS account needed: a DynamoDB
(LocalStack in Docker when a Docker engine answers, else moto from PyPI,
installed on first use into target/venvs/moto), its two tables and the
bodies bucket (on the same endpoint's S3) created from the handlers' manifest, and the four real Lambda handlers (connect, disconnect,
forwarding, response) built and run under the bundled API Gateway emulator
with the environment Terraform gives them.

It prints the WebSocket endpoint agents connect to, the public base URL
visitors use, and the agent command to run. Tunnels are reachable by path
(http://127.0.0.1:HTTP_PORT/<subdomain>/..., the default, as on the bare
execute-api URL) or, with --routing host, by host
(http://<subdomain>.tunnel.localhost:HTTP_PORT/..., as with a custom domain:
every tunnel its own browser origin). Ctrl-C stops everything.";

const EXAMPLES: &str = "\
Examples:
  just dev                        # the stack; run an agent yourself
  just dev --expose 3000          # the stack and an agent for 127.0.0.1:3000
  just dev --routing host --expose 3000       # tunnels at http://<subdomain>.tunnel.localhost:7070
  just dev --http-port 0 --ws-port 0          # ephemeral ports
  just dev --dynamodb http://127.0.0.1:4566   # LocalStack from docker-compose";

#[derive(Debug, Parser)]
#[command(name = "local-stack", about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// Also start an agent (in-process) for this local service: a port
    /// (3000 = http://127.0.0.1:3000) or a URL
    #[arg(long, value_name = "PORT|URL")]
    expose: Option<String>,

    /// Port of the HTTP API (the public base URL); 0 = any free port
    #[arg(long, default_value_t = 7070, value_name = "PORT")]
    http_port: u16,

    /// Port of the WebSocket API (agents) and @connections; 0 = any free port
    #[arg(long, default_value_t = 7071, value_name = "PORT")]
    ws_port: u16,

    /// DynamoDB backend: auto (LocalStack if Docker answers, else moto),
    /// localstack, moto, or an endpoint URL
    #[arg(
        long,
        env = "ITEST_DYNAMODB",
        default_value = "auto",
        value_name = "BACKEND"
    )]
    dynamodb: String,

    /// How visitors name a tunnel (forwarding's ROUTING): path
    /// (http://127.0.0.1:PORT/<subdomain>/) or host
    /// (http://<subdomain>.<DOMAIN>:PORT/)
    #[arg(long, default_value = "path", value_name = "path|host", value_parser = parse_routing)]
    routing: Routing,

    /// Public domain for host routing (<subdomain>.<DOMAIN>)
    #[arg(long, default_value = DEFAULT_DOMAIN, value_name = "DOMAIN")]
    domain: String,

    /// How long forwarding waits for the agent (REQUEST_TIMEOUT_MS), e.g. 5000
    #[arg(long, value_name = "MS")]
    request_timeout_ms: Option<u64>,

    /// End WebSocket connections after this many seconds (API Gateway: 7200),
    /// e.g. 60 to watch the agent hand its tunnel over to a new connection
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=7200))]
    max_connection_age_secs: Option<u64>,

    /// The Lambda functions' log output: stderr or discard
    #[arg(long, default_value = "stderr", value_name = "stderr|discard")]
    function_logs: String,

    /// The request inspector of the `--expose` agent (as `tunnel`'s).
    #[command(flatten)]
    inspect: agent::inspect::InspectArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let choice = BackendChoice::parse(&cli.dynamodb)?;
    let logs = match cli.function_logs.as_str() {
        "stderr" => Logs::Stderr,
        "discard" => Logs::Discard,
        other => anyhow::bail!("--function-logs {other:?}: expected stderr or discard"),
    };
    let config = StackConfig {
        domain: cli.domain.clone(),
        routing: cli.routing,
        request_timeout: cli.request_timeout_ms.map(Duration::from_millis),
        max_connection_age: cli.max_connection_age_secs.map(Duration::from_secs),
        websocket_listen: SocketAddr::from(([127, 0, 0, 1], cli.ws_port)),
        http_listen: SocketAddr::from(([127, 0, 0, 1], cli.http_port)),
        logs,
        // A fresh secret per run: agents need a token, as in AWS; the banner
        // prints a command with one.
        auth_secret: Some(protocol::auth::Secret::generate()),
        ..StackConfig::default()
    };
    for (flag, port) in [("--http-port", cli.http_port), ("--ws-port", cli.ws_port)] {
        if port != 0 && TcpStream::connect(("127.0.0.1", port)).is_ok() {
            anyhow::bail!(
                "port {port} is already in use on 127.0.0.1: pass another {flag} (0 = any free port)"
            );
        }
    }

    eprintln!("Starting DynamoDB ({choice})…");
    let backend = DynamoDb::start(choice)
        .await
        .context("the DynamoDB backend did not start")?;
    eprintln!("Building the handlers and starting the emulator…");
    let stack = Stack::builder(config)
        .owning(backend)
        .start()
        .await
        .context("the local stack did not start")?;
    print_banner(&stack);

    let result = match &cli.expose {
        Some(target) => expose(&stack, target, &cli.inspect).await,
        None => wait_for_ctrl_c().await,
    };
    eprintln!("Stopping…");
    stack.shutdown().await;
    result
}

fn print_banner(stack: &Stack) {
    let http = stack.http_url();
    let ws = stack.websocket_url();
    let tables = stack.tables();
    // Minted with this run's secret (local only; it dies with the stack).
    let token = stack.config().mint_token("local", None).unwrap_or_default();
    let try_it = match stack.routing() {
        Routing::Path => format!(
            "It prints its public URL, {http}/<subdomain>. Then:
  curl {http}/<subdomain>/                      # path routing: every tunnel on one origin"
        ),
        Routing::Host => format!(
            "It prints its public URL, {url}. Then:
  curl {url}/        # host routing: every tunnel its own origin
  curl -H 'Host: {host}' {http}/   # where *.localhost does not resolve",
            url = stack
                .config()
                .public_url_template()
                .replace("{subdomain}", "<subdomain>"),
            host = stack.host_for("<subdomain>"),
        ),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\n\
serverless-tunnel local stack is up
  WebSocket endpoint  {ws}
  Public base URL     {http}
  DynamoDB            {} (tables {}, {})
  S3                  same endpoint (bucket {})

Expose a local service (here port 3000) with the agent:
  cargo run -p tunnel-agent -- 3000 --endpoint {ws} --token {token}

{try_it}

Ctrl-C stops everything.",
        stack.dynamodb_endpoint(),
        tables.connections(),
        tables.pending(),
        stack.buckets().bodies(),
    );
}

/// `--routing`: `path` or `host`.
fn parse_routing(value: &str) -> Result<Routing, String> {
    value
        .parse()
        .map_err(|_| format!("{value:?}: expected path or host"))
}

/// Runs an agent for `target` until Ctrl-C, printing its console lines.
async fn expose(
    stack: &Stack,
    target: &str,
    inspect: &agent::inspect::InspectArgs,
) -> anyhow::Result<()> {
    let mut config = agent::Config::new(stack.websocket_url(), target)
        .with_context(|| format!("--expose {target}"))?;
    if let Some(token) = stack.config().mint_token("local", None) {
        config = config.with_token(token);
    }
    if let Some(addr) = local_address(target)
        && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err()
    {
        println!(
            "\nnothing is listening on {addr} yet — start your app; requests will get 502 until then"
        );
    }
    let mut console = Console::new(config.target.base(), time::UtcOffset::UTC);
    let inspector = inspect
        .start()
        .await
        .context("the request inspector did not start")?;
    if let Some(running) = &inspector {
        console = console.with_inspect_url(running.server.url());
    }
    let mut handle = match &inspector {
        Some(running) => Agent::start_with_inspector(config, running.inspector.clone()),
        None => Agent::start(config),
    };
    let mut printed_examples = false;
    let mut ctrl_c = std::pin::pin!(wait_for_ctrl_c());
    loop {
        tokio::select! {
            event = handle.next_event() => {
                let Some(event) = event else { break };
                if let Some(line) = console.render(&event) {
                    println!("{line}");
                }
                if let Event::Connected(established) = &event
                    && !printed_examples
                {
                    printed_examples = true;
                    let mut examples = format!("\nTry it:\n  curl {}/\n", established.public_url);
                    if stack.routing() == Routing::Host {
                        examples.push_str(&format!(
                            "  curl -H 'Host: {}' {}/\n",
                            stack.host_for(&established.subdomain),
                            stack.http_url(),
                        ));
                    }
                    println!("{examples}");
                }
                if event == Event::Stopped {
                    break;
                }
            }
            result = &mut ctrl_c => {
                result?;
                handle.request_shutdown();
                break;
            }
        }
    }
    handle.wait().await.context("the agent stopped")
}

/// The socket address behind a port or an `http://127.0.0.1:…` URL.
fn local_address(target: &str) -> Option<SocketAddr> {
    if let Ok(port) = target.parse::<u16>() {
        return Some(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    let authority = rest.split('/').next()?;
    let authority = authority.replace("localhost", "127.0.0.1");
    authority.parse().ok()
}

async fn wait_for_ctrl_c() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C"),
        _ = terminate.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn finds_the_local_address_of_a_target() {
        assert_eq!(
            local_address("3000"),
            Some(SocketAddr::from(([127, 0, 0, 1], 3000)))
        );
        assert_eq!(
            local_address("http://localhost:8080/app"),
            Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
        assert_eq!(local_address("https://example.com"), None);
    }
}
