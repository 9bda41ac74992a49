//! `emulator --config emulator.toml`: runs the emulator until Ctrl-C.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Local API Gateway (WebSocket + HTTP APIs, @connections) and Lambda emulator.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML configuration (see emulator/README.md).
    #[arg(long, short, env = "EMULATOR_CONFIG")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = emulator::Config::from_toml_file(&args.config)?;
    let emulator = emulator::Emulator::start(config)
        .await
        .context("cannot start the emulator")?;
    println!("WebSocket API: {}", emulator.websocket_url());
    println!("Management:    {}", emulator.management_endpoint());
    println!("HTTP API:      {}", emulator.http_url());
    for (function, url) in emulator.function_urls() {
        println!("Function URL:  {url} ({function})");
    }
    println!("Counters:      {}", emulator.counters_url());
    shutdown_signal().await?;
    eprintln!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

/// Ctrl-C or SIGTERM (what `docker stop`, systemd and CI runners send).
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C"),
        _ = terminate.recv() => Ok(()),
    }
}
