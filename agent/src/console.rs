//! The lines the CLI prints, ngrok style: the forwarding banner, one access
//! line per request, problems in plain words. No bodies, no query values, no
//! token.

use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::events::Event;
use crate::exchange::RequestOutcome;
use crate::text::humanize;

/// Turns events into console lines; remembers the public URL so a reconnect
/// that keeps it says so briefly.
#[derive(Debug)]
pub struct Console {
    target: String,
    offset: UtcOffset,
    public_url: Option<String>,
    /// The last disconnect reason, so a retry loop failing the same way
    /// prints it once.
    last_reason: Option<String>,
    /// The request inspector's page, shown in the banner.
    inspect_url: Option<String>,
    /// `--url-token`: the banner's URL carries it.
    url_token: Option<String>,
}

impl Console {
    /// `offset` is the local time zone, read once at startup (it cannot be
    /// read safely once threads run).
    pub fn new(target: impl Into<String>, offset: UtcOffset) -> Console {
        Console {
            target: target.into(),
            offset,
            public_url: None,
            last_reason: None,
            inspect_url: None,
            url_token: None,
        }
    }

    /// Shows the public URL with the URL token (`--url-token`).
    pub fn with_url_token(mut self, token: impl Into<String>) -> Console {
        self.url_token = Some(token.into());
        self
    }

    /// Shows the inspector's URL under the forwarding line.
    pub fn with_inspect_url(mut self, url: impl Into<String>) -> Console {
        self.inspect_url = Some(url.into());
        self
    }

    /// The line(s) to print for `event`, if any.
    pub fn render(&mut self, event: &Event) -> Option<String> {
        self.render_at(event, OffsetDateTime::now_utc())
    }

    pub fn render_at(&mut self, event: &Event, now: OffsetDateTime) -> Option<String> {
        let time = now
            .to_offset(self.offset)
            .format(format_description!("[hour]:[minute]:[second]"))
            .unwrap_or_default();
        match event {
            Event::Connecting { attempt: 0 } => Some("Connecting to the tunnel server…".into()),
            Event::Connecting { .. } => None,
            Event::Connected(e) => {
                let line = if self.public_url.as_deref() == Some(e.public_url.as_str()) {
                    format!("{time}  Reconnected: {} is live again", e.public_url)
                } else {
                    let inspect = self
                        .inspect_url
                        .as_ref()
                        .map(|url| format!("Inspect     {url}\n"))
                        .unwrap_or_default();
                    let url = match &self.url_token {
                        Some(token) => crate::access::url_with_token(&e.public_url, token),
                        None => e.public_url.clone(),
                    };
                    format!(
                        "\nForwarding  {url} -> {}\n{inspect}\nPress Ctrl-C to stop.\n",
                        self.target
                    )
                };
                self.public_url = Some(e.public_url.clone());
                self.last_reason = None;
                Some(line)
            }
            Event::Disconnected { reason } => {
                if self.last_reason.as_deref() == Some(reason.as_str()) {
                    return None;
                }
                self.last_reason = Some(reason.clone());
                Some(format!("{time}  Connection lost ({reason})"))
            }
            Event::Reconnecting { delay, .. } if delay.is_zero() => {
                Some(format!("{time}  Reconnecting now…"))
            }
            Event::Reconnecting { delay, .. } => {
                Some(format!("{time}  Reconnecting in {}…", humanize(*delay)))
            }
            Event::Request(log) => {
                let result = match &log.outcome {
                    RequestOutcome::Status(status) => format!(
                        "{status} {}",
                        http::StatusCode::from_u16(*status)
                            .ok()
                            .and_then(|s| s.canonical_reason())
                            .unwrap_or("")
                    ),
                    RequestOutcome::Failed { code, message } => {
                        format!("{} {message}", code.http_status())
                    }
                };
                Some(format!(
                    "{time}  {:<7} {:<40} {:<28} {:>6}",
                    log.method,
                    log.path,
                    result.trim_end(),
                    humanize_short(log.duration)
                ))
            }
            Event::Rejected(r) => Some(format!(
                "{time}  {:<7} {:<40} {:<28} refused at the edge: {}{}",
                r.method,
                r.path,
                format!(
                    "{} {}",
                    r.status,
                    http::StatusCode::from_u16(r.status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("")
                )
                .trim_end(),
                r.reason,
                r.source_ip
                    .as_ref()
                    .map(|ip| format!(" (from {ip})"))
                    .unwrap_or_default()
            )),
            Event::ServerError { message, .. } => {
                Some(format!("{time}  The tunnel server reported: {message}"))
            }
            Event::Renewed { dropped: 0 } => Some(format!(
                "{time}  Renewed the connection; no request was dropped"
            )),
            Event::Renewed { dropped } => Some(format!(
                "{time}  Renewed the connection; {dropped} request(s) in flight on the old one were dropped"
            )),
            Event::RenewFailed {
                reason,
                retry_in: Some(delay),
            } => Some(format!(
                "{time}  Could not renew the connection ({reason}); trying again in {}",
                humanize(*delay)
            )),
            Event::RenewFailed {
                reason,
                retry_in: None,
            } => Some(format!(
                "{time}  Could not renew the connection ({reason}); the current one serves until the server ends it, then the agent reconnects"
            )),
            Event::ShuttingDown { in_flight: 0 } => Some("Shutting down…".into()),
            Event::ShuttingDown { in_flight } => Some(format!(
                "Shutting down: waiting for {in_flight} request(s) in flight… (Ctrl-C again to quit now)"
            )),
            Event::Stopped => None,
        }
    }
}

fn humanize_short(d: std::time::Duration) -> String {
    if d.as_millis() < 10_000 {
        format!("{} ms", d.as_millis())
    } else {
        humanize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::RequestLog;
    use protocol::{ConnectionEstablished, ErrorCode};
    use std::time::Duration;

    fn at() -> OffsetDateTime {
        time::macros::datetime!(2026-11-25 21:30:01 UTC)
    }

    fn established(url: &str) -> Event {
        // Through serde: fields newer protocol versions add default.
        let established: ConnectionEstablished = serde_json::from_value(serde_json::json!({
            "connection_id": "c",
            "subdomain": "abc",
            "public_url": url,
        }))
        .unwrap();
        Event::Connected(established)
    }

    #[test]
    fn banner_then_reconnect_line() {
        let mut c = Console::new("http://127.0.0.1:3000", UtcOffset::UTC);
        let first = c
            .render_at(&established("https://abc.example.com"), at())
            .unwrap();
        assert!(first.contains("Forwarding  https://abc.example.com -> http://127.0.0.1:3000"));
        let again = c
            .render_at(&established("https://abc.example.com"), at())
            .unwrap();
        assert!(again.contains("Reconnected"), "{again}");
        let moved = c
            .render_at(&established("https://xyz.example.com"), at())
            .unwrap();
        assert!(moved.contains("Forwarding  https://xyz.example.com"));
        assert!(!first.contains("Inspect"), "{first}");
    }

    #[test]
    fn banner_shows_the_inspector() {
        let mut c = Console::new("http://127.0.0.1:3000", UtcOffset::UTC)
            .with_inspect_url("http://127.0.0.1:4041");
        let banner = c
            .render_at(&established("https://abc.example.com"), at())
            .unwrap();
        assert!(
            banner.contains(
                "Forwarding  https://abc.example.com -> http://127.0.0.1:3000\nInspect     http://127.0.0.1:4041\n"
            ),
            "{banner}"
        );
    }

    #[test]
    fn access_lines() {
        let mut c = Console::new("http://127.0.0.1:3000", UtcOffset::UTC);
        let ok = Event::Request(RequestLog {
            request_id: "r".into(),
            method: "GET".into(),
            path: "/hooks?…".into(),
            outcome: RequestOutcome::Status(200),
            duration: Duration::from_millis(12),
        });
        let line = c.render_at(&ok, at()).unwrap();
        assert!(line.starts_with("21:30:01  GET     /hooks?…"), "{line}");
        assert!(line.contains("200 OK") && line.ends_with("12 ms"), "{line}");

        let failed = Event::Request(RequestLog {
            request_id: "r".into(),
            method: "POST".into(),
            path: "/".into(),
            outcome: RequestOutcome::Failed {
                code: ErrorCode::LocalServiceUnavailable,
                message: "local service at 127.0.0.1:3000 refused the connection — is it running?"
                    .into(),
            },
            duration: Duration::from_millis(1),
        });
        let line = c.render_at(&failed, at()).unwrap();
        assert!(
            line.contains("502 local service at 127.0.0.1:3000 refused"),
            "{line}"
        );
    }

    #[test]
    fn reconnect_lines() {
        let mut c = Console::new("t", UtcOffset::UTC);
        let lost = Event::Disconnected {
            reason: "code 1001".into(),
        };
        assert_eq!(
            c.render_at(&lost, at()).unwrap(),
            "21:30:01  Connection lost (code 1001)"
        );
        assert_eq!(
            c.render_at(&lost, at()),
            None,
            "the same failure again is not repeated"
        );
        let again = Event::Reconnecting {
            delay: Duration::from_millis(2100),
            attempt: 2,
        };
        assert_eq!(
            c.render_at(&again, at()).unwrap(),
            "21:30:01  Reconnecting in 2.1 s…"
        );
    }

    #[test]
    fn renewal_lines() {
        let mut c = Console::new("t", UtcOffset::UTC);
        assert_eq!(
            c.render_at(&Event::Renewed { dropped: 0 }, at()).unwrap(),
            "21:30:01  Renewed the connection; no request was dropped"
        );
        assert_eq!(
            c.render_at(&Event::Renewed { dropped: 2 }, at()).unwrap(),
            "21:30:01  Renewed the connection; 2 request(s) in flight on the old one were dropped"
        );
        let failed = |retry_in| Event::RenewFailed {
            reason: "the server answered the handshake with HTTP 500".into(),
            retry_in,
        };
        assert_eq!(
            c.render_at(&failed(Some(Duration::from_secs(2))), at())
                .unwrap(),
            "21:30:01  Could not renew the connection (the server answered the handshake with HTTP 500); trying again in 2 s"
        );
        assert!(c.render_at(&failed(None), at()).unwrap().ends_with(
            "the current one serves until the server ends it, then the agent reconnects"
        ));
        let now = Event::Reconnecting {
            delay: Duration::ZERO,
            attempt: 0,
        };
        assert_eq!(
            c.render_at(&now, at()).unwrap(),
            "21:30:01  Reconnecting now…"
        );
    }

    #[test]
    fn the_banner_carries_the_url_token_and_refusals_are_one_line() {
        let mut c = Console::new("http://127.0.0.1:3000", UtcOffset::UTC).with_url_token("T0k");
        let banner = c
            .render_at(&established("https://abc.example.com"), at())
            .unwrap();
        assert!(
            banner.contains(
                "Forwarding  https://abc.example.com/?tunnel_token=T0k -> http://127.0.0.1:3000"
            ),
            "{banner}"
        );
        let line = c
            .render_at(
                &Event::Rejected(protocol::policy::Rejected {
                    method: "GET".into(),
                    path: "/admin".into(),
                    reason: "no valid basic-auth credentials".into(),
                    source_ip: Some("198.51.100.7".into()),
                    status: 401,
                }),
                at(),
            )
            .unwrap();
        assert!(line.starts_with("21:30:01  GET     /admin"), "{line}");
        assert!(
            line.ends_with(
                "401 Unauthorized             refused at the edge: no valid basic-auth credentials (from 198.51.100.7)"
            ),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
