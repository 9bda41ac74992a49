//! Configuration of each function, read once per cold start.
//!
//! Every function reads exactly the variables its [`crate::manifest`] entry
//! lists (plus [`crate::manifest::COMMON_OPTIONAL_ENV`], read by
//! [`LogConfig`]). Configuration is built from a lookup closure so tests never
//! touch the process environment; the binaries pass [`process_env`].

use std::time::Duration;

use protocol::auth::{Secret, WeakSecret};
use protocol::limits::{MAX_REQUEST_TIMEOUT, REQUEST_TIMEOUT};

use crate::poll::PollSchedule;

/// Why a function cannot start. The message names the variable and says what
/// is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{var} {problem}, got {value:?}")]
    Invalid {
        var: &'static str,
        problem: &'static str,
        value: String,
    },
}

/// Reads a variable from the process environment (an unset or non-UTF-8
/// variable reads as unset).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<String, ConfigError> {
    match lookup(var) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(ConfigError::Missing(var)),
    }
}

fn optional(lookup: &impl Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    lookup(var)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn invalid(var: &'static str, problem: &'static str, value: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        problem,
        value: value.to_string(),
    }
}

/// An S3 bucket name as S3 accepts it: 3 to 63 characters of `[a-z0-9.-]`,
/// starting and ending with a letter or digit (no `s3://`, no ARN).
fn bucket_name(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<String, ConfigError> {
    let name = required(lookup, var)?;
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge(name.bytes().next())
        && edge(name.bytes().last());
    if ok {
        Ok(name)
    } else {
        Err(invalid(
            var,
            "must be an S3 bucket name (3-63 characters of a-z, 0-9, '.' and '-'), not a URL or an ARN",
            &name,
        ))
    }
}

/// `DOMAIN_NAME`: a bare lowercase host name such as `tunnel.example.com`.
fn domain_name(lookup: &impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    const VAR: &str = "DOMAIN_NAME";
    let raw = required(lookup, VAR)?;
    let domain = raw.trim_end_matches('.').to_ascii_lowercase();
    let ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(domain)
    } else {
        Err(invalid(
            VAR,
            "must be a bare domain name such as tunnel.example.com (no scheme, port or path)",
            &raw,
        ))
    }
}

/// `WEBSOCKET_API_ENDPOINT`: `http(s)://host[:port]/stage`, trailing `/` removed.
fn websocket_api_endpoint(lookup: &impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    const VAR: &str = "WEBSOCKET_API_ENDPOINT";
    let raw = required(lookup, VAR)?;
    let trimmed = raw.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    let valid = rest.is_some_and(|rest| match rest.split_once('/') {
        Some((host, stage)) => !host.is_empty() && !stage.is_empty(),
        None => false,
    });
    if valid {
        Ok(trimmed.to_string())
    } else {
        Err(invalid(
            VAR,
            "must be an http(s) URL including the stage, e.g. https://{api-id}.execute-api.{region}.amazonaws.com/{stage}",
            &raw,
        ))
    }
}

/// The public URL of a tunnel, from `PUBLIC_URL_TEMPLATE` or
/// `https://{subdomain}.{DOMAIN_NAME}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrlTemplate(String);

impl PublicUrlTemplate {
    pub const PLACEHOLDER: &'static str = "{subdomain}";

    pub fn new(template: &str) -> Option<Self> {
        template
            .contains(Self::PLACEHOLDER)
            .then(|| Self(template.to_string()))
    }

    pub fn for_domain(domain: &str) -> Self {
        Self(format!("https://{}.{domain}", Self::PLACEHOLDER))
    }

    pub fn url(&self, subdomain: &str) -> String {
        self.0.replace(Self::PLACEHOLDER, subdomain)
    }
}

/// `ROUTING`: how forwarding finds a request's tunnel.
pub const ROUTING_VAR: &str = "ROUTING";

/// How a visitor's request names its tunnel (`ROUTING`). The two never mix:
/// a deployment serves tunnels one way only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// `host`: `https://<sub>.<DOMAIN_NAME>/…`, the Host alone (a wildcard
    /// custom domain). Every tunnel is its own browser origin.
    Host,
    /// `path`: `https://<host>/<sub>/…`, the first path segment alone (the
    /// bare `execute-api` URL). Every tunnel shares ONE browser origin: a
    /// tunnel's page can read another's responses and cookies, so this is
    /// for a single user or mutually trusting ones.
    Path,
}

impl Routing {
    pub fn as_str(self) -> &'static str {
        match self {
            Routing::Host => "host",
            Routing::Path => "path",
        }
    }
}

impl std::str::FromStr for Routing {
    type Err = ConfigError;

    fn from_str(raw: &str) -> Result<Self, ConfigError> {
        match raw.trim() {
            "host" => Ok(Routing::Host),
            "path" => Ok(Routing::Path),
            other => Err(invalid(ROUTING_VAR, "must be host or path", other)),
        }
    }
}

/// `AUTH_MODE`: `required` (default) or `disabled`.
pub const MODE_VAR: &str = "AUTH_MODE";
/// `AUTH_SECRET`: the HS256 secret itself (local runs; at least 32 bytes).
pub const SECRET_VAR: &str = "AUTH_SECRET";
/// `AUTH_SECRET_PARAMETER`: the name of an SSM SecureString holding it.
pub const SECRET_PARAMETER_VAR: &str = "AUTH_SECRET_PARAMETER";
/// `AUTH_SECRET_REFRESH_SECONDS`: how long a read of the parameter is used
/// before the next handshake reads it again (`0`: every handshake reads it,
/// one GetParameter each: for tests and very quiet deployments).
pub const SECRET_REFRESH_VAR: &str = "AUTH_SECRET_REFRESH_SECONDS";

/// How long connect uses what it read from the secret's parameter: a secret
/// set or rotated in SSM takes effect within this, without a redeploy.
///
/// Why 60 s: GetParameter shares Parameter Store's default throughput of 40
/// transactions per second per account and region with every other caller
/// (AWS Systems Manager quotas, "Parameter Store max throughput"); one read
/// per warm connect instance per minute stays far below it even with
/// hundreds of instances, while an operator who has just set the secret
/// waits at most a minute. Every outcome is kept that long, a refusal too:
/// a flood of anonymous handshakes can never turn into a flood of SSM calls.
pub const DEFAULT_SECRET_REFRESH: Duration = Duration::from_secs(60);
/// The longest `AUTH_SECRET_REFRESH_SECONDS` accepted (an hour).
pub const MAX_SECRET_REFRESH: Duration = Duration::from_secs(3600);

/// Every value Terraform writes into the secret's parameter starts with one
/// of these (any case, after surrounding whitespace): `UNSET:` today,
/// `placeholder:` in deployments made before it (their parameter keeps that
/// value until set: Terraform ignores later changes to it). `:` is in no
/// base64 or hex alphabet, so no generated secret starts with them.
pub const PLACEHOLDER_MARKERS: &[&str] = &["unset:", "placeholder:"];

/// Why a value cannot sign agent tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnusableSecret {
    #[error(
        "it is still the placeholder Terraform writes, not a secret (set one with `aws ssm put-parameter --overwrite --type SecureString --value \"$(openssl rand -base64 48)\"`)"
    )]
    Placeholder,
    #[error(transparent)]
    Weak(#[from] WeakSecret),
}

/// The one check every would-be signing secret passes, whatever its source
/// (`AUTH_SECRET`, the SSM parameter): not a placeholder Terraform writes
/// ([`PLACEHOLDER_MARKERS`]) and at least 32 bytes (`Secret::new`).
/// `terraform/checks` feeds it the value the HCL writes.
pub fn signing_secret(value: impl AsRef<[u8]>) -> Result<Secret, UnusableSecret> {
    let trimmed = value.as_ref().trim_ascii();
    let placeholder = PLACEHOLDER_MARKERS.iter().any(|marker| {
        trimmed.len() >= marker.len()
            && trimmed[..marker.len()].eq_ignore_ascii_case(marker.as_bytes())
    });
    if placeholder {
        return Err(UnusableSecret::Placeholder);
    }
    Ok(Secret::new(trimmed)?)
}

/// What the environment says (nothing fetched yet).
#[derive(Clone, PartialEq, Eq)]
pub enum AuthSettings {
    /// `AUTH_MODE=disabled`: every agent is accepted.
    Disabled,
    /// `AUTH_SECRET`.
    Secret(Secret),
    /// `AUTH_SECRET_PARAMETER`: read with GetParameter WithDecryption, again
    /// at the first handshake `refresh` after the last read.
    Parameter { name: String, refresh: Duration },
    /// Required but no secret configured: every connection is refused.
    Missing,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthSettings::Disabled => f.write_str("Disabled"),
            AuthSettings::Secret(_) => f.write_str("Secret(***)"),
            AuthSettings::Parameter { name, refresh } => {
                write!(f, "Parameter({name:?}, refresh {refresh:?})")
            }
            AuthSettings::Missing => f.write_str("Missing"),
        }
    }
}

impl AuthSettings {
    /// Reads the four variables (always all four: the manifest test checks
    /// what each function looks up).
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let mode = get(MODE_VAR);
        let secret = get(SECRET_VAR);
        let parameter = get(SECRET_PARAMETER_VAR).map(|p| p.trim().to_string());
        let refresh = match get(SECRET_REFRESH_VAR) {
            None => DEFAULT_SECRET_REFRESH,
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(secs) if secs <= MAX_SECRET_REFRESH.as_secs() => Duration::from_secs(secs),
                _ => {
                    return Err(invalid(
                        SECRET_REFRESH_VAR,
                        "must be a whole number of seconds in 0..=3600",
                        raw.trim(),
                    ));
                }
            },
        };
        let disabled = match mode.as_deref().map(str::trim) {
            None | Some("required") => false,
            Some("disabled") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: MODE_VAR,
                    problem: "must be required or disabled",
                    value: other.to_string(),
                });
            }
        };
        if disabled {
            return Ok(AuthSettings::Disabled);
        }
        match (secret, parameter) {
            (Some(_), Some(_)) => Err(ConfigError::Invalid {
                var: SECRET_VAR,
                problem: "and AUTH_SECRET_PARAMETER are both set; set only one",
                value: "<hidden>".into(),
            }),
            (Some(secret), None) => signing_secret(secret.as_bytes())
                .map(AuthSettings::Secret)
                .map_err(|e| match e {
                    UnusableSecret::Weak(WeakSecret { len }) => ConfigError::Invalid {
                        var: SECRET_VAR,
                        problem: "must be at least 32 bytes (e.g. `openssl rand -base64 48`)",
                        // Its length only: the value is a secret.
                        value: format!("<hidden, {len} bytes>"),
                    },
                    UnusableSecret::Placeholder => ConfigError::Invalid {
                        var: SECRET_VAR,
                        problem: "is a placeholder Terraform writes, not a secret",
                        value: "<hidden>".into(),
                    },
                }),
            (None, Some(name)) => Ok(AuthSettings::Parameter { name, refresh }),
            (None, None) => Ok(AuthSettings::Missing),
        }
    }
}

/// The `$connect` function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectConfig {
    pub connections_table: String,
    pub domain_name: String,
    pub public_url: PublicUrlTemplate,
    /// `AUTH_MODE`, `AUTH_SECRET`, `AUTH_SECRET_PARAMETER`,
    /// `AUTH_SECRET_REFRESH_SECONDS`.
    pub auth: AuthSettings,
}

impl ConnectConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let connections_table = required(&lookup, "CONNECTIONS_TABLE_NAME")?;
        let domain_name = domain_name(&lookup)?;
        let public_url = match optional(&lookup, "PUBLIC_URL_TEMPLATE") {
            Some(t) => PublicUrlTemplate::new(&t)
                .ok_or_else(|| invalid("PUBLIC_URL_TEMPLATE", "must contain {subdomain}", &t))?,
            None => PublicUrlTemplate::for_domain(&domain_name),
        };
        let auth = AuthSettings::from_lookup(&lookup)?;
        Ok(Self {
            connections_table,
            domain_name,
            public_url,
            auth,
        })
    }
}

/// The `$disconnect` function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectConfig {
    pub connections_table: String,
}

impl DisconnectConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            connections_table: required(&lookup, "CONNECTIONS_TABLE_NAME")?,
        })
    }
}

/// The HTTP API's forwarding function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardingConfig {
    pub connections_table: String,
    pub pending_table: String,
    pub domain_name: String,
    /// `ROUTING`: Host or path, never both.
    pub routing: Routing,
    pub websocket_api_endpoint: String,
    pub request_timeout: Duration,
    /// `POLL_INTERVAL_MS`: a fixed delay between polls for the answer;
    /// `None` (unset) = the adaptive [`PollSchedule`]. For comparisons such as
    /// the benchmarks' (the seed polled every 100 ms).
    pub poll_interval: Option<Duration>,
    /// `BODIES_BUCKET_NAME`: where bodies too large for a WebSocket message
    /// go (`docs/contracts.md`, "The data path").
    pub bodies_bucket: String,
}

impl ForwardingConfig {
    /// The longest fixed poll interval `POLL_INTERVAL_MS` accepts.
    pub const MAX_POLL_INTERVAL: Duration = Duration::from_millis(1000);

    /// The delays between polls: fixed when `POLL_INTERVAL_MS` is set, else adaptive.
    pub fn poll_schedule(&self) -> PollSchedule {
        match self.poll_interval {
            Some(interval) => PollSchedule::new(interval, 1.0, interval),
            None => PollSchedule::default(),
        }
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        const TIMEOUT_VAR: &str = "REQUEST_TIMEOUT_MS";
        const POLL_VAR: &str = "POLL_INTERVAL_MS";
        let connections_table = required(&lookup, "CONNECTIONS_TABLE_NAME")?;
        let pending_table = required(&lookup, "PENDING_REQUESTS_TABLE_NAME")?;
        let domain_name = domain_name(&lookup)?;
        let routing = required(&lookup, ROUTING_VAR)?.parse()?;
        let websocket_api_endpoint = websocket_api_endpoint(&lookup)?;
        let bodies_bucket = bucket_name(&lookup, crate::manifest::BODIES.env)?;
        let request_timeout = match optional(&lookup, TIMEOUT_VAR) {
            None => REQUEST_TIMEOUT,
            Some(raw) => {
                let max = MAX_REQUEST_TIMEOUT.as_millis() as u64;
                match raw.parse::<u64>() {
                    Ok(ms) if (1..=max).contains(&ms) => Duration::from_millis(ms),
                    _ => {
                        return Err(invalid(
                            TIMEOUT_VAR,
                            "must be a whole number of milliseconds in 1..=28000",
                            &raw,
                        ));
                    }
                }
            }
        };
        let poll_interval = match optional(&lookup, POLL_VAR) {
            None => None,
            Some(raw) => {
                let max = Self::MAX_POLL_INTERVAL.as_millis() as u64;
                match raw.parse::<u64>() {
                    Ok(ms) if (1..=max).contains(&ms) => Some(Duration::from_millis(ms)),
                    _ => {
                        return Err(invalid(
                            POLL_VAR,
                            "must be a whole number of milliseconds in 1..=1000",
                            &raw,
                        ));
                    }
                }
            }
        };
        Ok(Self {
            connections_table,
            pending_table,
            domain_name,
            routing,
            websocket_api_endpoint,
            request_timeout,
            poll_interval,
            bodies_bucket,
        })
    }
}

/// The WebSocket `$default` route's function (agent messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseConfig {
    pub connections_table: String,
    pub pending_table: String,
    pub websocket_api_endpoint: String,
    /// `CONNECTION_MAX_AGE_SECONDS`: how long API Gateway keeps a WebSocket
    /// connection (2 h), told to the agent in `connection_established` so it
    /// hands over to a successor before then. Only the local stack and the
    /// tests, whose emulator ends connections sooner, set it.
    pub connection_max_age: Duration,
}

impl ResponseConfig {
    /// API Gateway's maximum WebSocket connection duration
    /// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html>).
    pub const DEFAULT_CONNECTION_MAX_AGE: Duration = Duration::from_secs(7200);

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        const MAX_AGE_VAR: &str = "CONNECTION_MAX_AGE_SECONDS";
        let connection_max_age = match optional(&lookup, MAX_AGE_VAR) {
            None => Self::DEFAULT_CONNECTION_MAX_AGE,
            Some(raw) => match raw.parse::<u64>() {
                Ok(secs) if (1..=Self::DEFAULT_CONNECTION_MAX_AGE.as_secs()).contains(&secs) => {
                    Duration::from_secs(secs)
                }
                _ => {
                    return Err(invalid(
                        MAX_AGE_VAR,
                        "must be a whole number of seconds in 1..=7200",
                        &raw,
                    ));
                }
            },
        };
        Ok(Self {
            connections_table: required(&lookup, "CONNECTIONS_TABLE_NAME")?,
            pending_table: required(&lookup, "PENDING_REQUESTS_TABLE_NAME")?,
            websocket_api_endpoint: websocket_api_endpoint(&lookup)?,
            connection_max_age,
        })
    }
}

/// Log output format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Logging, common to every function: `LOG_FORMAT` and `RUST_LOG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// An `EnvFilter` directive, `info` by default.
    pub filter: String,
}

impl LogConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let format = match optional(&lookup, "LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => return Err(invalid("LOG_FORMAT", "must be json or text", other)),
        };
        let filter = optional(&lookup, "RUST_LOG").unwrap_or_else(|| "info".to_string());
        if tracing_subscriber::EnvFilter::try_new(&filter).is_err() {
            return Err(invalid("RUST_LOG", "is not a valid log filter", &filter));
        }
        Ok(Self { format, filter })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap};

    use rstest::rstest;

    use super::*;
    use crate::manifest::{self, Function};

    fn full_env() -> HashMap<&'static str, String> {
        HashMap::from([
            ("CONNECTIONS_TABLE_NAME", "connections".to_string()),
            ("PENDING_REQUESTS_TABLE_NAME", "pending".to_string()),
            ("DOMAIN_NAME", "tunnel.example.com".to_string()),
            ("ROUTING", "host".to_string()),
            (
                "WEBSOCKET_API_ENDPOINT",
                "https://abc.execute-api.eu-west-1.amazonaws.com/prod".to_string(),
            ),
            ("BODIES_BUCKET_NAME", "tunnel-dev-bodies-2026".to_string()),
        ])
    }

    /// Builds the config of `function` from `env`; returns the error, if any,
    /// and the variables it looked up.
    fn build(
        function: &Function,
        env: &HashMap<&'static str, String>,
    ) -> (Result<(), ConfigError>, BTreeSet<String>) {
        let asked = RefCell::new(BTreeSet::new());
        let lookup = |name: &str| {
            asked.borrow_mut().insert(name.to_string());
            env.get(name).cloned()
        };
        let result = match function.name {
            "connect" => ConnectConfig::from_lookup(lookup).map(drop),
            "disconnect" => DisconnectConfig::from_lookup(lookup).map(drop),
            "forwarding" => ForwardingConfig::from_lookup(lookup).map(drop),
            "response" => ResponseConfig::from_lookup(lookup).map(drop),
            other => panic!("unknown function {other}"),
        };
        (result, asked.into_inner())
    }

    #[rstest]
    fn reads_exactly_the_manifest_variables(
        #[values(
            manifest::CONNECT,
            manifest::DISCONNECT,
            manifest::FORWARDING,
            manifest::RESPONSE
        )]
        function: Function,
    ) {
        let (result, asked) = build(&function, &full_env());
        result.unwrap();
        let expected: BTreeSet<String> = function
            .required_env
            .iter()
            .chain(function.optional_env)
            .map(|s| s.to_string())
            .collect();
        assert_eq!(asked, expected, "{}", function.name);

        let asked = RefCell::new(BTreeSet::new());
        LogConfig::from_lookup(|name| {
            asked.borrow_mut().insert(name.to_string());
            None
        })
        .unwrap();
        let common: BTreeSet<String> = manifest::COMMON_OPTIONAL_ENV
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(asked.into_inner(), common);
    }

    #[rstest]
    fn fails_naming_each_missing_required_variable(
        #[values(
            manifest::CONNECT,
            manifest::DISCONNECT,
            manifest::FORWARDING,
            manifest::RESPONSE
        )]
        function: Function,
        #[values(true, false)] blank: bool,
    ) {
        for var in function.required_env {
            let mut env = full_env();
            if blank {
                env.insert(var, "  ".to_string());
            } else {
                env.remove(var);
            }
            let (result, _) = build(&function, &env);
            let err = result.unwrap_err();
            assert_eq!(err, ConfigError::Missing(var));
            assert_eq!(err.to_string(), format!("{var} is not set"));
        }
    }

    #[rstest]
    #[case(
        "WEBSOCKET_API_ENDPOINT",
        "wss://abc.execute-api.eu-west-1.amazonaws.com/prod"
    )]
    #[case(
        "WEBSOCKET_API_ENDPOINT",
        "https://abc.execute-api.eu-west-1.amazonaws.com"
    )]
    #[case(
        "WEBSOCKET_API_ENDPOINT",
        "https://abc.execute-api.eu-west-1.amazonaws.com/"
    )]
    #[case(
        "WEBSOCKET_API_ENDPOINT",
        "abc.execute-api.eu-west-1.amazonaws.com/prod"
    )]
    #[case("DOMAIN_NAME", "https://tunnel.example.com")]
    #[case("DOMAIN_NAME", "tunnel.example.com/x")]
    #[case("DOMAIN_NAME", "tunnel..example.com")]
    #[case("REQUEST_TIMEOUT_MS", "0")]
    #[case("REQUEST_TIMEOUT_MS", "28001")]
    #[case("REQUEST_TIMEOUT_MS", "-5")]
    #[case("REQUEST_TIMEOUT_MS", "25s")]
    #[case("POLL_INTERVAL_MS", "0")]
    #[case("POLL_INTERVAL_MS", "1001")]
    #[case("POLL_INTERVAL_MS", "-1")]
    #[case("POLL_INTERVAL_MS", "100ms")]
    #[case("BODIES_BUCKET_NAME", "s3://tunnel-bodies")]
    #[case("BODIES_BUCKET_NAME", "arn:aws:s3:::tunnel-bodies")]
    #[case("BODIES_BUCKET_NAME", "Tunnel-Bodies")]
    #[case("BODIES_BUCKET_NAME", "ab")]
    #[case("BODIES_BUCKET_NAME", "-tunnel-bodies")]
    #[case("ROUTING", "both")]
    #[case("ROUTING", "Host")]
    #[case("ROUTING", "subdomain")]
    fn forwarding_rejects_invalid_values(#[case] var: &'static str, #[case] value: &str) {
        let mut env = full_env();
        env.insert(var, value.to_string());
        let err = ForwardingConfig::from_lookup(|n| env.get(n).cloned()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { var: v, .. } if *v == var),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.starts_with(var), "{text}");
        assert!(text.contains(value.trim()), "{text}");
    }

    #[rstest]
    #[case(None, Some(7200))]
    #[case(Some("20"), Some(20))]
    #[case(Some(" 7200 "), Some(7200))]
    #[case(Some("0"), None)]
    #[case(Some("7201"), None)]
    #[case(Some("2h"), None)]
    fn connection_max_age(#[case] value: Option<&str>, #[case] expected: Option<u64>) {
        let mut env = full_env();
        if let Some(v) = value {
            env.insert("CONNECTION_MAX_AGE_SECONDS", v.to_string());
        }
        let got = ResponseConfig::from_lookup(|n| env.get(n).cloned());
        match expected {
            Some(secs) => assert_eq!(got.unwrap().connection_max_age.as_secs(), secs),
            None => assert!(
                matches!(
                    got,
                    Err(ConfigError::Invalid {
                        var: "CONNECTION_MAX_AGE_SECONDS",
                        ..
                    })
                ),
                "{value:?}"
            ),
        }
    }

    #[test]
    fn websocket_endpoint_message_is_helpful() {
        let mut env = full_env();
        env.insert("WEBSOCKET_API_ENDPOINT", "wss://x.example.com/prod".into());
        let err = ResponseConfig::from_lookup(|n| env.get(n).cloned()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "WEBSOCKET_API_ENDPOINT must be an http(s) URL including the stage, e.g. \
             https://{api-id}.execute-api.{region}.amazonaws.com/{stage}, got \"wss://x.example.com/prod\""
        );
    }

    #[rstest]
    #[case("host", Routing::Host)]
    #[case(" path ", Routing::Path)]
    fn routing(#[case] value: &str, #[case] expected: Routing) {
        let mut env = full_env();
        env.insert("ROUTING", value.to_string());
        let cfg = ForwardingConfig::from_lookup(|n| env.get(n).cloned()).unwrap();
        assert_eq!(cfg.routing, expected);
        assert_eq!(cfg.routing.as_str(), value.trim());
    }

    #[rstest]
    #[case(None, Duration::from_millis(25_000))]
    #[case(Some("1"), Duration::from_millis(1))]
    #[case(Some("28000"), Duration::from_millis(28_000))]
    #[case(Some(" 1500 "), Duration::from_millis(1500))]
    fn request_timeout(#[case] value: Option<&str>, #[case] expected: Duration) {
        let mut env = full_env();
        if let Some(v) = value {
            env.insert("REQUEST_TIMEOUT_MS", v.to_string());
        }
        let cfg = ForwardingConfig::from_lookup(|n| env.get(n).cloned()).unwrap();
        assert_eq!(cfg.request_timeout, expected);
    }

    #[rstest]
    #[case(None, None)]
    #[case(Some("1"), Some(Duration::from_millis(1)))]
    #[case(Some(" 100 "), Some(Duration::from_millis(100)))]
    #[case(Some("1000"), Some(Duration::from_millis(1000)))]
    fn poll_interval(#[case] value: Option<&str>, #[case] expected: Option<Duration>) {
        let mut env = full_env();
        if let Some(v) = value {
            env.insert("POLL_INTERVAL_MS", v.to_string());
        }
        let cfg = ForwardingConfig::from_lookup(|n| env.get(n).cloned()).unwrap();
        assert_eq!(cfg.poll_interval, expected);
        let delays: Vec<Duration> = cfg.poll_schedule().take(12).collect();
        match expected {
            Some(interval) => assert_eq!(delays, vec![interval; 12]),
            None => assert_eq!(delays, PollSchedule::default().take(12).collect::<Vec<_>>()),
        }
    }

    #[test]
    fn endpoint_keeps_stage_and_drops_trailing_slash() {
        let mut env = full_env();
        env.insert(
            "WEBSOCKET_API_ENDPOINT",
            "http://127.0.0.1:4510/local/".into(),
        );
        let cfg = ResponseConfig::from_lookup(|n| env.get(n).cloned()).unwrap();
        assert_eq!(cfg.websocket_api_endpoint, "http://127.0.0.1:4510/local");
    }

    #[rstest]
    #[case(None, "https://abc123.tunnel.example.com")]
    #[case(
        Some("https://x.execute-api.eu-west-1.amazonaws.com/{subdomain}"),
        "https://x.execute-api.eu-west-1.amazonaws.com/abc123"
    )]
    #[case(
        Some("http://localhost:8080/{subdomain}/"),
        "http://localhost:8080/abc123/"
    )]
    fn public_url(#[case] template: Option<&str>, #[case] expected: &str) {
        let mut env = full_env();
        env.insert("DOMAIN_NAME", "Tunnel.Example.com.".into());
        if let Some(t) = template {
            env.insert("PUBLIC_URL_TEMPLATE", t.to_string());
        }
        let cfg = ConnectConfig::from_lookup(|n| env.get(n).cloned()).unwrap();
        assert_eq!(cfg.domain_name, "tunnel.example.com");
        assert_eq!(cfg.public_url.url("abc123"), expected);
    }

    #[test]
    fn public_url_template_needs_placeholder() {
        let mut env = full_env();
        env.insert("PUBLIC_URL_TEMPLATE", "https://example.com/".into());
        let err = ConnectConfig::from_lookup(|n| env.get(n).cloned()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("PUBLIC_URL_TEMPLATE must contain {subdomain}"),
            "{err}"
        );
    }

    #[rstest]
    #[case(&[], Ok((LogFormat::Json, "info")))]
    #[case(&[("LOG_FORMAT", "text")], Ok((LogFormat::Text, "info")))]
    #[case(&[("LOG_FORMAT", "json"), ("RUST_LOG", "handlers=debug,warn")], Ok((LogFormat::Json, "handlers=debug,warn")))]
    #[case(&[("LOG_FORMAT", "yaml")], Err("LOG_FORMAT"))]
    #[case(&[("RUST_LOG", "info,[")], Err("RUST_LOG"))]
    fn log_config(
        #[case] vars: &[(&str, &str)],
        #[case] expected: Result<(LogFormat, &str), &'static str>,
    ) {
        let env: HashMap<&str, &str> = vars.iter().copied().collect();
        let result = LogConfig::from_lookup(|n| env.get(n).map(|v| v.to_string()));
        match (result, expected) {
            (Ok(cfg), Ok((format, filter))) => {
                assert_eq!(cfg.format, format);
                assert_eq!(cfg.filter, filter);
            }
            (Err(ConfigError::Invalid { var, .. }), Err(expected_var)) => {
                assert_eq!(var, expected_var)
            }
            (other, expected) => panic!("{other:?} vs {expected:?}"),
        }
    }

    // --- agent authentication settings ---

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn secret() -> Secret {
        Secret::new(SECRET).unwrap()
    }

    fn parameter(name: &str, refresh_secs: u64) -> AuthSettings {
        AuthSettings::Parameter {
            name: name.into(),
            refresh: Duration::from_secs(refresh_secs),
        }
    }

    fn settings(vars: &[(&str, &str)]) -> Result<AuthSettings, ConfigError> {
        let env: HashMap<&str, &str> = vars.iter().copied().collect();
        AuthSettings::from_lookup(&|n| env.get(n).map(|v| v.to_string()))
    }

    #[rstest]
    #[case(&[], Ok(AuthSettings::Missing))]
    #[case(&[("AUTH_MODE", "required")], Ok(AuthSettings::Missing))]
    #[case(&[("AUTH_MODE", "disabled")], Ok(AuthSettings::Disabled))]
    #[case(&[("AUTH_MODE", "disabled"), ("AUTH_SECRET", "short")], Ok(AuthSettings::Disabled))]
    #[case(&[("AUTH_SECRET", SECRET)], Ok(AuthSettings::Secret(secret())))]
    #[case(&[("AUTH_SECRET_PARAMETER", " /tunnel/secret ")], Ok(parameter("/tunnel/secret", 60)))]
    #[case(&[("AUTH_SECRET_PARAMETER", "/p"), ("AUTH_SECRET_REFRESH_SECONDS", " 1 ")], Ok(parameter("/p", 1)))]
    #[case(&[("AUTH_SECRET_PARAMETER", "/p"), ("AUTH_SECRET_REFRESH_SECONDS", "3600")], Ok(parameter("/p", 3600)))]
    #[case(&[("AUTH_SECRET_PARAMETER", "/p"), ("AUTH_SECRET_REFRESH_SECONDS", "0")], Ok(parameter("/p", 0)))]
    #[case(&[("AUTH_SECRET_PARAMETER", "/p"), ("AUTH_SECRET_REFRESH_SECONDS", "-1")], Err("AUTH_SECRET_REFRESH_SECONDS"))]
    #[case(&[("AUTH_SECRET_PARAMETER", "/p"), ("AUTH_SECRET_REFRESH_SECONDS", "3601")], Err("AUTH_SECRET_REFRESH_SECONDS"))]
    #[case(&[("AUTH_SECRET_PARAMETER", "/p"), ("AUTH_SECRET_REFRESH_SECONDS", "60s")], Err("AUTH_SECRET_REFRESH_SECONDS"))]
    #[case(&[("AUTH_MODE", "off")], Err("AUTH_MODE"))]
    #[case(&[("AUTH_SECRET", "short")], Err("AUTH_SECRET"))]
    #[case(&[("AUTH_SECRET", "UNSET: but long enough to pass the length check")], Err("AUTH_SECRET"))]
    #[case(&[("AUTH_SECRET", SECRET), ("AUTH_SECRET_PARAMETER", "/p")], Err("AUTH_SECRET"))]
    fn reads_settings(#[case] vars: &[(&str, &str)], #[case] expected: Result<AuthSettings, &str>) {
        match (settings(vars), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(ConfigError::Invalid { var, value, .. }), Err(want)) => {
                assert_eq!(var, want);
                assert!(
                    !value.contains("short") && !value.contains(SECRET) && !value.contains("UNSET"),
                    "{value}"
                );
            }
            (got, want) => panic!("{got:?} vs {want:?}"),
        }
    }

    /// No placeholder Terraform writes, in any spelling, can become a
    /// signing secret; anything else of 32 bytes or more can.
    #[rstest]
    #[case::current("UNSET: see terraform/README.md", Err(UnusableSecret::Placeholder))]
    #[case::legacy(
        "placeholder: set me with aws ssm put-parameter --overwrite",
        Err(UnusableSecret::Placeholder)
    )]
    #[case::any_case_and_whitespace(
        "  \tUnSeT: a long enough value, 32 bytes and more\n",
        Err(UnusableSecret::Placeholder)
    )]
    #[case::legacy_upper(
        "PLACEHOLDER: 0123456789abcdef0123456789abcdef",
        Err(UnusableSecret::Placeholder)
    )]
    #[case::short("0123456789", Err(UnusableSecret::Weak(WeakSecret { len: 10 })))]
    #[case::marker_alone("unset:", Err(UnusableSecret::Placeholder))]
    #[case::real(SECRET, Ok(()))]
    #[case::marker_inside("0123456789abcdef0123456789abcdef unset:", Ok(()))]
    #[case::no_colon("unset0123456789abcdef0123456789abcdef", Ok(()))]
    fn signing_secrets(#[case] value: &str, #[case] expected: Result<(), UnusableSecret>) {
        assert_eq!(signing_secret(value).map(drop), expected);
    }

    proptest::proptest! {
        /// Whatever follows a marker, in whatever case, the value is refused.
        #[test]
        fn a_marked_value_never_signs(
            marker in proptest::sample::select(PLACEHOLDER_MARKERS),
            upper in proptest::collection::vec(proptest::bool::ANY, 12),
            lead in "[ \t\n]{0,3}",
            rest in ".{0,80}",
        ) {
            let marker: String = marker
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                .collect();
            let value = format!("{lead}{marker}{rest}");
            proptest::prop_assert_eq!(signing_secret(&value).map(drop), Err(UnusableSecret::Placeholder));
        }
    }
}
