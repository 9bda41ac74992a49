//! What the agent needs to run, validated once: the server endpoint, the local
//! target, the token and every timing knob (tests shrink them).

use std::fmt;
use std::time::Duration;

use protocol::limits::{ESTABLISH_TIMEOUT, HEARTBEAT_INTERVAL};
use reqwest::Url;

/// Everything the agent needs. Build it with [`Config::new`], then adjust the
/// public fields (tests shrink the timings).
#[derive(Debug, Clone)]
pub struct Config {
    /// The tunnel server's WebSocket URL (`wss://…/stage`).
    pub endpoint: Endpoint,
    /// Sent as `Authorization: Bearer <token>` in the handshake.
    pub token: Option<Token>,
    /// The local service requests are forwarded to.
    pub target: Target,
    /// What the local service sees as `Host`.
    pub host_header: HostHeader,
    /// How long the local service has to answer one request.
    pub request_timeout: Duration,
    /// How long one WebSocket handshake (TCP, TLS, upgrade) may take.
    pub connect_timeout: Duration,
    /// How long to wait for `connection_established` after `ready`.
    pub establish_timeout: Duration,
    /// How often to send an application `ping`.
    pub heartbeat_interval: Duration,
    /// With no message at all from the server for this long, the link is
    /// taken as dead and the agent reconnects.
    pub dead_after: Duration,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// On shutdown, how long in-flight requests may take to finish before
    /// they are failed with an `error` message.
    pub shutdown_grace: Duration,
    /// The request inspector every exchange is captured into (`None`: no
    /// capture). See [`crate::inspect`].
    pub inspector: Option<crate::inspect::Inspector>,
}

impl Config {
    /// A configuration with the default timings. `endpoint` must be a `ws://`
    /// or `wss://` URL; `target` a port (`3000`) or an `http(s)://` URL.
    pub fn new(endpoint: &str, target: &str) -> Result<Config, ConfigError> {
        Ok(Config {
            endpoint: endpoint.parse()?,
            token: None,
            target: target.parse()?,
            host_header: HostHeader::Rewrite,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: Duration::from_secs(15),
            establish_timeout: ESTABLISH_TIMEOUT,
            heartbeat_interval: HEARTBEAT_INTERVAL,
            dead_after: HEARTBEAT_INTERVAL * 2,
            backoff: BackoffConfig::default(),
            shutdown_grace: Duration::from_secs(5),
            inspector: None,
        })
    }

    /// Sets the token (builder style).
    pub fn with_token(mut self, token: impl Into<String>) -> Config {
        self.token = Some(Token::new(token));
        self
    }
}

/// Default local request timeout: under the forwarding function's 25 s wait.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Reconnect backoff: `initial` doubling up to `max`, each delay scaled by a
/// random factor in `1 ± jitter`; back to `initial` after a connection that
/// stayed up for `reset_after`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    /// Fraction of each delay that is randomised, `0.0..=1.0`.
    pub jitter: f64,
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            jitter: 0.2,
            reset_after: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "endpoint {input:?} is not a URL ({reason}); expected e.g. wss://abc123.execute-api.eu-west-1.amazonaws.com/prod"
    )]
    EndpointNotUrl { input: String, reason: String },
    #[error("endpoint {input:?} must start with wss:// (or ws:// for a local server)")]
    EndpointScheme { input: String },
    #[error(
        "local target {input:?} is neither a port nor a URL; expected e.g. 3000 or http://127.0.0.1:8080"
    )]
    TargetInvalid { input: String },
    #[error("local target {input:?}: port must be between 1 and 65535")]
    TargetPort { input: String },
    #[error("local target {input:?} must be an http:// or https:// URL")]
    TargetScheme { input: String },
    #[error("local target {input:?} must not have a query string or fragment")]
    TargetQuery { input: String },
    #[error(
        "duration {input:?} is not valid; expected e.g. 30s, 1500ms, 2m or a number of seconds"
    )]
    Duration { input: String },
}

/// The server's WebSocket URL, validated (`ws://` or `wss://`, with a host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(String);

impl Endpoint {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Endpoint {
    type Err = ConfigError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let input = input.trim();
        let url = Url::parse(input).map_err(|e| ConfigError::EndpointNotUrl {
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(ConfigError::EndpointScheme {
                input: input.to_owned(),
            });
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::EndpointNotUrl {
                input: input.to_owned(),
                reason: "no host".into(),
            });
        }
        // Kept as typed: the stage path and any `?token=` pass unchanged.
        Ok(Endpoint(input.to_owned()))
    }
}

/// The local service: `scheme://authority[/base-path]`, no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    base: String,
    authority: String,
}

impl Target {
    /// `http://127.0.0.1:3000` (plus a base path if one was given).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `127.0.0.1:3000`: what `Host` is rewritten to.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The local URL for a request's raw `uri` (`/path?query`), by
    /// concatenation so nothing is re-encoded here.
    pub fn url_for(&self, uri: &str) -> String {
        format!("{}{}", self.base, uri)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl std::str::FromStr for Target {
    type Err = ConfigError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let input = input.trim();
        if !input.is_empty() && input.bytes().all(|b| b.is_ascii_digit()) {
            return match input.parse::<u16>() {
                Ok(port) if port > 0 => Ok(Target {
                    base: format!("http://127.0.0.1:{port}"),
                    authority: format!("127.0.0.1:{port}"),
                }),
                _ => Err(ConfigError::TargetPort {
                    input: input.to_owned(),
                }),
            };
        }
        // `localhost:3000` is a URL with scheme `localhost` to the url crate:
        // treat anything without `://` as host:port over http. A bare word
        // (`tunnel abc`) is more likely a typo than host `abc` on port 80.
        let with_scheme = if input.contains("://") {
            input.to_owned()
        } else if input.rsplit_once(':').is_some_and(|(h, p)| {
            !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
        }) {
            format!("http://{input}")
        } else {
            return Err(ConfigError::TargetInvalid {
                input: input.to_owned(),
            });
        };
        let url = Url::parse(&with_scheme).map_err(|_| ConfigError::TargetInvalid {
            input: input.to_owned(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::TargetScheme {
                input: input.to_owned(),
            });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::TargetQuery {
                input: input.to_owned(),
            });
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(ConfigError::TargetInvalid {
                input: input.to_owned(),
            });
        };
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let path = url.path().trim_end_matches('/');
        Ok(Target {
            base: format!("{}://{authority}{path}", url.scheme()),
            authority,
        })
    }
}

/// What the local service sees as `Host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostHeader {
    /// The local target's `host:port` (default: what most dev servers expect).
    Rewrite,
    /// The public host the visitor used.
    Preserve,
    /// This exact value.
    Custom(String),
}

impl std::str::FromStr for HostHeader {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "rewrite" => HostHeader::Rewrite,
            "preserve" => HostHeader::Preserve,
            other => HostHeader::Custom(other.to_owned()),
        })
    }
}

/// The auth token. Never printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    /// The secret itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Parses `30s`, `1500ms`, `2m`, `1m30s`, `1h` or a bare number of seconds.
pub fn parse_duration(input: &str) -> Result<Duration, ConfigError> {
    let err = || ConfigError::Duration {
        input: input.to_owned(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| err());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| err())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit.trim() {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += Duration::try_from_secs_f64(value * scale).map_err(|_| err())?;
        rest = tail;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("3000", "http://127.0.0.1:3000", "127.0.0.1:3000")]
    #[case("http://127.0.0.1:8080", "http://127.0.0.1:8080", "127.0.0.1:8080")]
    #[case("http://127.0.0.1:8080/", "http://127.0.0.1:8080", "127.0.0.1:8080")]
    #[case("localhost:5173", "http://localhost:5173", "localhost:5173")]
    #[case("https://dev.local", "https://dev.local", "dev.local")]
    #[case("http://[::1]:3000", "http://[::1]:3000", "[::1]:3000")]
    #[case(
        "http://localhost:3000/api/",
        "http://localhost:3000/api",
        "localhost:3000"
    )]
    fn parses_targets(#[case] input: &str, #[case] base: &str, #[case] authority: &str) {
        let t: Target = input.parse().unwrap();
        assert_eq!(t.base(), base);
        assert_eq!(t.authority(), authority);
    }

    #[rstest]
    #[case("0")]
    #[case("70000")]
    #[case("")]
    #[case("ftp://host")]
    #[case("http://host:3000/?x=1")]
    #[case("not a url")]
    #[case("abc")]
    #[case("localhost")]
    fn rejects_bad_targets(#[case] input: &str) {
        let err = input.parse::<Target>().unwrap_err();
        assert!(!err.to_string().is_empty());
    }

    #[test]
    fn concatenates_the_raw_uri() {
        let t: Target = "3000".parse().unwrap();
        assert_eq!(
            t.url_for("/a%2Fb?x=+&x=%20"),
            "http://127.0.0.1:3000/a%2Fb?x=+&x=%20"
        );
    }

    #[rstest]
    #[case("wss://abc.execute-api.eu-west-1.amazonaws.com/prod")]
    #[case("ws://127.0.0.1:9000/dev")]
    fn accepts_websocket_endpoints(#[case] input: &str) {
        assert_eq!(input.parse::<Endpoint>().unwrap().as_str(), input);
    }

    #[rstest]
    #[case("https://example.com", "must start with wss://")]
    #[case("example.com", "not a URL")]
    #[case("", "not a URL")]
    fn rejects_bad_endpoints(#[case] input: &str, #[case] says: &str) {
        let err = input.parse::<Endpoint>().unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
    }

    #[rstest]
    #[case("30s", 30_000)]
    #[case("1500ms", 1500)]
    #[case("2m", 120_000)]
    #[case("1m30s", 90_000)]
    #[case("20", 20_000)]
    #[case("0.5", 500)]
    #[case("1h", 3_600_000)]
    fn parses_durations(#[case] input: &str, #[case] millis: u64) {
        assert_eq!(
            parse_duration(input).unwrap(),
            Duration::from_millis(millis)
        );
    }

    #[rstest]
    #[case("")]
    #[case("s")]
    #[case("10 parsecs")]
    #[case("-1")]
    fn rejects_bad_durations(#[case] input: &str) {
        assert!(parse_duration(input).is_err());
    }

    #[test]
    fn host_header_modes() {
        assert_eq!("rewrite".parse(), Ok(HostHeader::Rewrite));
        assert_eq!("preserve".parse(), Ok(HostHeader::Preserve));
        assert_eq!(
            "api.example.com".parse(),
            Ok(HostHeader::Custom("api.example.com".into()))
        );
    }

    #[test]
    fn token_is_never_printed() {
        let c = Config::new("ws://h/x", "3000")
            .unwrap()
            .with_token("s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
