//! `tracing` setup: JSON lines by default (CloudWatch), `LOG_FORMAT=text` for
//! humans, filter from `RUST_LOG` (default `info`).
//!
//! What the handlers log: ids (connection, request, API Gateway request),
//! subdomains, methods, statuses, message types, sizes and error chains.
//! Never a body, a token, a cookie or an Authorization header.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(config: &LogConfig) {
    // Validated by LogConfig::from_lookup; fall back rather than panic.
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stdout);
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(true)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
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
