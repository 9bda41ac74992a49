//! `tracing` setup: JSON lines by default (CloudWatch), `LOG_FORMAT=text` for
//! humans, filter from `RUST_LOG` (default `info`).
//!
//! What the handlers log: ids (connection, request, API Gateway request),
//! subdomains, methods, statuses, message types, sizes and error chains.
//! Never a body, a token, a cookie or an Authorization header.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(config: &LogConfig) {
    // Validated by LogConfig::from_lookup; fall back rather than panic.
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = match config.format {
        LogFormat::Json => json(filter, std::io::stdout).try_init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_writer(std::io::stdout)
            .with_ansi(false)
            .finish()
            .try_init(),
    };
}

/// The JSON lines CloudWatch gets: event fields at the top level (what a
/// metric filter's `$.field` selects), the innermost span in `span`, all
/// spans in `spans`.
fn json<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer)
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .flatten_event(true)
        .finish()
}

/// Runs `f` with this thread's events written as the deployed functions
/// write them (JSON), and returns the lines.
#[cfg(test)]
pub(crate) fn capture_json<R>(f: impl FnOnce() -> R) -> (Vec<String>, R) {
    let buf = crate::testing::LogBuffer::default();
    let writer = buf.clone();
    let subscriber = json(EnvFilter::new("info"), move || writer.clone());
    let out = tracing::subscriber::with_default(subscriber, f);
    (buf.text().lines().map(str::to_owned).collect(), out)
}

/// Formats an error with its whole `source()` chain, for log fields.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
