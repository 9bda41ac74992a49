//! What the agent needs to run, validated once: the server endpoint, the local
//! target, the token and every timing knob (tests shrink them).

use std::fmt;
use std::time::Duration;

use protocol::limits::{ESTABLISH_TIMEOUT, HEARTBEAT_INTERVAL, RESUME_WINDOW};
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
    /// Most requests forwarded to the local service at once, visitors' and
    /// the inspector's replays together; one more visitor is answered with
    /// `overloaded` (503), one more replay is refused to its caller (503).
    /// Each request holds at most about 11 MB (a 4.4 MB body plus its
    /// messages), so this bounds the agent's memory.
    pub max_in_flight: usize,
    /// A reconnect refused with 403 (the subdomain is still held, most likely
    /// by this agent's own previous connection, not yet seen as gone by the
    /// server) is retried with backoff for this long before the agent gives
    /// up. A 403 on the first connection is not retried.
    pub forbidden_retry_for: Duration,
    /// The access policy declared in the handshake (`crate::access`); the
    /// server checks it before a request reaches the agent.
    pub policy: Option<protocol::policy::AccessPolicy>,
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
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            forbidden_retry_for: RESUME_WINDOW,
            policy: None,
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

/// Default cap on requests in flight: far above what one developer's browser
/// or a webhook sender opens at once, and at most about 350 MB even if every
/// request carried the largest body.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;

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
/// It may carry a token (`?token=`): `Display` and `Debug` mask it (see
/// [`redact_url`]); only [`Endpoint::as_str`] gives it whole.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint(String);

impl Endpoint {
    /// The URL as given, secrets included: for opening the connection only,
    /// never for a message or a log.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({:?})", redact_url(&self.0))
    }
}

impl std::str::FromStr for Endpoint {
    type Err = ConfigError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let input = input.trim();
        // Errors quote the input with its secrets masked: it may carry `?token=`.
        let url = Url::parse(input).map_err(|e| ConfigError::EndpointNotUrl {
            input: redact_url(input),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(ConfigError::EndpointScheme {
                input: redact_url(input),
            });
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::EndpointNotUrl {
                input: redact_url(input),
                reason: "no host".into(),
            });
        }
        // Kept as typed: the stage path and any `?token=` pass unchanged.
        Ok(Endpoint(input.to_owned()))
    }
}

/// `url` with every secret it may carry masked: the password of
/// `user:password@`, every query value (`?token=***`) and the fragment. Works
/// on text that does not parse as a URL too, so error messages can quote it.
pub fn redact_url(url: &str) -> String {
    const MASK: &str = "***";
    let (rest, fragment) = match url.split_once('#') {
        Some((rest, _)) => (rest, Some(MASK)),
        None => (url, None),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let mut out = String::with_capacity(url.len());
    // `scheme://user:password@host/path`: mask the password.
    let authority_start = before_query.find("://").map_or(0, |i| i + 3);
    let authority_end = before_query[authority_start..]
        .find('/')
        .map_or(before_query.len(), |i| authority_start + i);
    match before_query[authority_start..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            out.push_str(&before_query[..authority_start]);
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                }
                None => out.push_str(MASK),
            }
            out.push('@');
            out.push_str(host);
            out.push_str(&before_query[authority_end..]);
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        out.push('?');
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}={MASK}"),
                None if pair.is_empty() => String::new(),
                None => MASK.to_owned(),
            })
            .collect();
        out.push_str(&masked.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// The local service: `scheme://authority[/base-path]`, no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    base: String,
    authority: String,
    /// `/api` for `http://localhost:8080/api`; empty without a base path.
    path: String,
}

/// Why a request's `uri` cannot be sent to the local target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("the request target must start with '/'")]
    NotOriginForm,
    #[error("the request target is not a valid URL path")]
    Invalid,
    #[error("the request path leaves the local target's base path")]
    EscapesBasePath,
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

    /// The local URL for a request's raw `uri` (`/path?query`): the base and
    /// the uri concatenated, so nothing is re-encoded here, then parsed (which
    /// resolves `.` and `..` segments, see `forward::local`).
    ///
    /// With a base path, a request must stay under it: a path with a `..`
    /// segment in any spelling (`..`, `%2e%2e`, `.%2E`, separated by `/`,
    /// `\`, `%2f` or `%5c`) is refused before parsing, and the parsed path
    /// is checked to start with the base path. Without one, `..` cannot climb
    /// above `/` and is left to the URL parser.
    pub fn url_for(&self, uri: &str) -> Result<Url, UriError> {
        if !uri.starts_with('/') {
            return Err(UriError::NotOriginForm);
        }
        if !self.path.is_empty() && has_dot_dot_segment(uri) {
            return Err(UriError::EscapesBasePath);
        }
        let url = Url::parse(&format!("{}{uri}", self.base)).map_err(|_| UriError::Invalid)?;
        if !self.path.is_empty() {
            let inside = url
                .path()
                .strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            if !inside {
                return Err(UriError::EscapesBasePath);
            }
        }
        Ok(url)
    }
}

/// Whether the path part of `uri`, percent-decoded once, has a `..` segment
/// between `/` or `\` separators (what a URL parser or a local server may
/// resolve to the parent directory).
fn has_dot_dot_segment(uri: &str) -> bool {
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    decoded.split(['/', '\\']).any(|segment| segment == "..")
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
        // `localhost:3000` is a URL with scheme `localhost` to the url crate:
        // treat anything without `://` as host:port over http. A bare word
        // (`tunnel abc`) is more likely a typo than host `abc` on port 80.
        // A bare port goes through the URL too, so `80` and
        // `http://127.0.0.1:80` are the same target (the default port
        // dropped).
        let with_scheme = if !input.is_empty() && input.bytes().all(|b| b.is_ascii_digit()) {
            match input.parse::<u16>() {
                Ok(port) if port > 0 => format!("http://127.0.0.1:{port}"),
                _ => {
                    return Err(ConfigError::TargetPort {
                        input: input.to_owned(),
                    });
                }
            }
        } else if input.contains("://") {
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
            path: path.to_owned(),
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
    #[case("80", "http://127.0.0.1", "127.0.0.1")]
    #[case("http://127.0.0.1:80", "http://127.0.0.1", "127.0.0.1")]
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
            t.url_for("/a%2Fb?x=+&x=%20").unwrap().as_str(),
            "http://127.0.0.1:3000/a%2Fb?x=+&x=%20"
        );
        let api: Target = "http://127.0.0.1:3000/api".parse().unwrap();
        assert_eq!(
            api.url_for("/v1/x?q=..").unwrap().as_str(),
            "http://127.0.0.1:3000/api/v1/x?q=.."
        );
        assert_eq!(
            api.url_for("/").unwrap().as_str(),
            "http://127.0.0.1:3000/api/"
        );
        assert_eq!(t.url_for("http://evil/"), Err(UriError::NotOriginForm));
    }

    /// Every spelling of "the parent directory" is refused under a base
    /// path; the same paths without a base path stay what the URL parser
    /// makes of them (they cannot climb above `/`).
    #[rstest]
    #[case("/..")]
    #[case("/../secret")]
    #[case("/%2e%2e/secret")]
    #[case("/%2E%2E/secret")]
    #[case("/.%2e/secret")]
    #[case("/%2e./secret")]
    #[case("/%2E./secret")]
    #[case("/..\\secret")]
    #[case("/x\\..\\..\\secret")]
    #[case("/..%2fsecret")]
    #[case("/..%2Fsecret")]
    #[case("/..%5csecret")]
    #[case("/%2e%2e%2f%2e%2e%2fsecret")]
    #[case("/a/../../secret")]
    #[case("/a/%2e%2e/%2e%2e/secret?x=1")]
    #[case("/%2e%2e")]
    fn refuses_to_leave_the_base_path(#[case] uri: &str) {
        let api: Target = "http://127.0.0.1:3000/app".parse().unwrap();
        assert_eq!(api.url_for(uri), Err(UriError::EscapesBasePath), "{uri}");
        let root: Target = "3000".parse().unwrap();
        assert!(root.url_for(uri).is_ok(), "{uri}");
    }

    #[rstest]
    #[case("/a/./b", "/app/a/b")]
    #[case("/..secret/x", "/app/..secret/x")]
    #[case("/x?path=../../etc", "/app/x")]
    #[case("/.../x", "/app/.../x")]
    fn keeps_harmless_dots_under_the_base_path(#[case] uri: &str, #[case] path: &str) {
        let api: Target = "http://127.0.0.1:3000/app".parse().unwrap();
        assert_eq!(api.url_for(uri).unwrap().path(), path);
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

    #[rstest]
    #[case(
        "wss://h.example.com/prod?token=abc",
        "wss://h.example.com/prod?token=***"
    )]
    #[case("wss://h/p?a=1&token=abc&b", "wss://h/p?a=***&token=***&***")]
    #[case("wss://user:pw@h/p", "wss://user:***@h/p")]
    #[case("wss://tok@h/p#frag", "wss://***@h/p#***")]
    #[case("wss://h/p", "wss://h/p")]
    #[case("not a url?token=abc", "not a url?token=***")]
    #[case("https://h/?token=abc&", "https://h/?token=***&")]
    fn redacts_secrets_in_urls(#[case] input: &str, #[case] shown: &str) {
        assert_eq!(redact_url(input), shown);
    }

    #[test]
    fn an_endpoint_token_is_never_printed() {
        let endpoint: Endpoint = "wss://h.example.com/prod?token=s3cret".parse().unwrap();
        assert_eq!(endpoint.as_str(), "wss://h.example.com/prod?token=s3cret");
        let c = Config::new(endpoint.as_str(), "3000").unwrap();
        for shown in [
            endpoint.to_string(),
            format!("{endpoint:?}"),
            format!("{c:?}"),
            "https://h/p?token=s3cret"
                .parse::<Endpoint>()
                .unwrap_err()
                .to_string(),
            "wss://?token=s3cret"
                .parse::<Endpoint>()
                .unwrap_err()
                .to_string(),
        ] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        assert_eq!(endpoint.to_string(), "wss://h.example.com/prod?token=***");
    }

    #[test]
    fn token_is_never_printed() {
        let c = Config::new("ws://h/x", "3000")
            .unwrap()
            .with_token("s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
