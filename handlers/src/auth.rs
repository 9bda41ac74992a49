//! Agent authentication on `$connect`.
//!
//! The connect function reads its settings at cold start ([`AuthSettings`],
//! in [`crate::config`], from `AUTH_MODE`, `AUTH_SECRET`,
//! `AUTH_SECRET_PARAMETER`, `AUTH_SECRET_REFRESH_SECONDS`) into an
//! [`AuthSource`], asks it for the current [`Auth`] at every handshake and
//! checks the handshake with [`Auth::check`].
//!
//! A secret in SSM ([`SecretParameter`]) is read at cold start and again at
//! the first handshake after each refresh interval (60 s by default, see
//! [`crate::config::DEFAULT_SECRET_REFRESH`]): a secret set or rotated
//! after the function started takes effect within it, without a redeploy.
//! Every value passes [`crate::config::signing_secret`]: while the
//! parameter is missing, unreadable, too short or still a placeholder
//! Terraform writes, every agent is refused with 503 and the function logs
//! why at ERROR. There is no default secret. Tokens and the secret are never
//! logged.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use protocol::auth::{Claims, Secret, TokenError};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::config::{AuthSettings, SECRET_PARAMETER_VAR, SECRET_VAR, signing_secret};
use crate::logging::chain;

/// How the connect function authenticates one handshake.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Required(Secret),
    Disabled,
    /// No usable secret: refuse everyone (503); the log says why.
    Unconfigured,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Required(_) => "Required(***)",
            Auth::Disabled => "Disabled",
            Auth::Unconfigured => "Unconfigured",
        })
    }
}

/// Why a handshake is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// 401: missing, malformed, forged or expired token.
    #[error("token refused: {0}")]
    Token(#[from] TokenError),
    /// 503: authentication is required and there is no usable secret.
    #[error(
        "authentication is required but there is no usable secret (AUTH_SECRET_PARAMETER missing, unreadable or still the placeholder Terraform writes: see the last \"agent-token secret\" log line; or set AUTH_SECRET, or AUTH_MODE=disabled)"
    )]
    Unconfigured,
}

impl Auth {
    /// Checks the handshake's token at `now`: `Ok(None)` with authentication
    /// disabled, `Ok(Some(claims))` for a valid token.
    pub fn check(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        now: i64,
    ) -> Result<Option<Claims>, Refused> {
        match self {
            Auth::Disabled => Ok(None),
            Auth::Unconfigured => Err(Refused::Unconfigured),
            Auth::Required(secret) => {
                let token = presented_token(event).ok_or(TokenError::Missing)?;
                Ok(Some(protocol::auth::verify(secret, &token, now)?))
            }
        }
    }
}

/// Where the connect function's [`Auth`] comes from.
pub enum AuthSource<S> {
    /// `AUTH_MODE=disabled`, `AUTH_SECRET`, or nothing: settled at cold start.
    Fixed(Auth),
    /// `AUTH_SECRET_PARAMETER`: re-read on a refresh interval.
    Parameter(SecretParameter<S>),
}

impl<S: ParameterStore + Sync> AuthSource<S> {
    /// From the settings; `store` is built only for a parameter. Says once,
    /// in the log, how agents are checked (a parameter says so at its first
    /// read: call [`AuthSource::current`] at cold start).
    pub fn new(settings: &AuthSettings, store: impl FnOnce() -> S) -> AuthSource<S> {
        match settings {
            AuthSettings::Disabled => {
                warn!(
                    "authentication is OFF (AUTH_MODE=disabled): anyone who reaches the WebSocket URL can open a tunnel"
                );
                AuthSource::Fixed(Auth::Disabled)
            }
            AuthSettings::Missing => {
                error!(
                    "no authentication secret: set AUTH_SECRET_PARAMETER (an SSM SecureString) or AUTH_SECRET, or AUTH_MODE=disabled; every connection will be refused"
                );
                AuthSource::Fixed(Auth::Unconfigured)
            }
            AuthSettings::Secret(secret) => {
                info!(source = SECRET_VAR, "agent tokens required (HS256)");
                AuthSource::Fixed(Auth::Required(secret.clone()))
            }
            AuthSettings::Parameter { name, refresh } => {
                AuthSource::Parameter(SecretParameter::new(store(), name, *refresh))
            }
        }
    }

    /// How to check a handshake now.
    pub async fn current(&self) -> Auth {
        self.current_at(Instant::now()).await
    }

    /// How to check a handshake at `now` (a parameter read longer ago than
    /// its refresh interval is read again).
    pub async fn current_at(&self, now: Instant) -> Auth {
        match self {
            AuthSource::Fixed(auth) => auth.clone(),
            AuthSource::Parameter(parameter) => parameter.auth_at(now).await,
        }
    }
}

/// Reads an SSM parameter's decrypted value: implemented by the SSM client,
/// faked in unit tests.
pub trait ParameterStore {
    /// `Ok(None)` when the parameter does not exist or has no value.
    fn read(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, SecretReadError>> + Send;
}

impl ParameterStore for aws_sdk_ssm::Client {
    fn read(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, SecretReadError>> + Send {
        fetch_ssm_secret(self, name)
    }
}

/// The secret's parameter could not be read (a missing parameter is not an
/// error: it reads as `None`).
#[derive(Debug, thiserror::Error)]
pub enum SecretReadError {
    #[error("GetParameter {name:?} failed")]
    Ssm {
        name: String,
        #[source]
        source: Box<aws_sdk_ssm::Error>,
    },
    #[error("GetParameter {name:?} did not answer within {timeout:?}")]
    TimedOut { name: String, timeout: Duration },
}

/// A handshake never waits longer than this for SSM (the SDK retries
/// inside it); the next handshake after the refresh interval tries again.
pub const SSM_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// GetParameter WithDecryption: the secret's value, `None` if the parameter
/// does not exist (`ParameterNotFound`) or has no value.
pub async fn fetch_ssm_secret(
    client: &aws_sdk_ssm::Client,
    name: &str,
) -> Result<Option<String>, SecretReadError> {
    let call = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send();
    match tokio::time::timeout(SSM_READ_TIMEOUT, call).await {
        Err(_) => Err(SecretReadError::TimedOut {
            name: name.to_string(),
            timeout: SSM_READ_TIMEOUT,
        }),
        Ok(Ok(out)) => Ok(out.parameter.and_then(|p| p.value)),
        Ok(Err(e))
            if e.as_service_error()
                .is_some_and(|e| e.is_parameter_not_found()) =>
        {
            Ok(None)
        }
        Ok(Err(e)) => Err(SecretReadError::Ssm {
            name: name.to_string(),
            source: Box::new(aws_sdk_ssm::Error::from(e)),
        }),
    }
}

/// The signing secret in an SSM parameter, read at most once per refresh
/// interval, whatever the outcome (a refusal is cached too: a flood of
/// anonymous handshakes costs one GetParameter per interval per instance).
pub struct SecretParameter<S> {
    store: S,
    name: String,
    refresh: Duration,
    last: Mutex<Option<Reading>>,
}

#[derive(Clone)]
struct Reading {
    at: Instant,
    auth: Auth,
}

impl<S> std::fmt::Debug for SecretParameter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretParameter")
            .field("name", &self.name)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl<S: ParameterStore + Sync> SecretParameter<S> {
    pub fn new(store: S, name: &str, refresh: Duration) -> SecretParameter<S> {
        SecretParameter {
            store,
            name: name.to_string(),
            refresh,
            last: Mutex::new(None),
        }
    }

    /// The [`Auth`] at `now`: the last reading if it is younger than the
    /// refresh interval, else a new one.
    pub async fn auth_at(&self, now: Instant) -> Auth {
        let last = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(reading) = &last
            && now.saturating_duration_since(reading.at) < self.refresh
        {
            return reading.auth.clone();
        }
        let auth = self.read(last.map(|reading| reading.auth)).await;
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(Reading {
            at: now,
            auth: auth.clone(),
        });
        auth
    }

    /// Reads the parameter and says what changed. An unreadable parameter
    /// keeps a secret read before (SSM throttling or an outage must not lock
    /// every agent out); anything else replaces it.
    async fn read(&self, previous: Option<Auth>) -> Auth {
        let parameter = self.name.as_str();
        let refresh_secs = self.refresh.as_secs();
        let unusable = |reason: &str| {
            error!(
                parameter,
                refresh_secs,
                reason,
                "no usable agent-token secret: every agent is refused with 503 until the parameter holds one (read again at the first handshake after refresh_secs)"
            );
            Auth::Unconfigured
        };
        match self.store.read(parameter).await {
            Ok(Some(value)) => match signing_secret(value) {
                Ok(secret) => {
                    match &previous {
                        Some(Auth::Required(old)) if *old == secret => {}
                        Some(Auth::Required(_)) => info!(
                            parameter,
                            "agent-token secret changed: tokens signed with the new one are accepted from now on"
                        ),
                        _ => info!(
                            source = SECRET_PARAMETER_VAR,
                            parameter, refresh_secs, "agent tokens required (HS256)"
                        ),
                    }
                    Auth::Required(secret)
                }
                Err(e) => unusable(&e.to_string()),
            },
            Ok(None) => unusable("the parameter does not exist or has no value"),
            Err(e) => match previous {
                Some(Auth::Required(secret)) => {
                    warn!(
                        parameter,
                        error = %chain(&e),
                        "could not re-read the agent-token secret; keeping the one read before"
                    );
                    Auth::Required(secret)
                }
                _ => unusable(&chain(&e)),
            },
        }
    }
}

/// The token from `Authorization: Bearer …` (any casing of the header name
/// and of the scheme), else from the `token` query parameter (for clients
/// that cannot set headers).
pub fn presented_token(event: &ApiGatewayWebsocketProxyRequest) -> Option<String> {
    // `HeaderMap` lowercases names whatever casing the client sent.
    let from_header = event
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let v = v.trim();
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty());
    let from_query = || {
        event
            .query_string_parameters
            .first("token")
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    from_header.or_else(from_query).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rstest::rstest;

    use super::*;
    use crate::testing::{capture_logs, ws_event};

    const NOW: i64 = 1_764_000_000;
    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";
    const OTHER: &str = "another-secret-of-32-bytes-or-more!!";
    const REFRESH: Duration = Duration::from_secs(60);

    fn secret() -> Secret {
        Secret::new(SECRET).unwrap()
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let shown = format!(
            "{:?} {:?}",
            AuthSettings::Secret(secret()),
            Auth::Required(secret())
        );
        assert!(!shown.contains(SECRET), "{shown}");
    }

    /// A parameter in memory: its value (or a read failure) and the reads.
    #[derive(Default)]
    struct Parameter {
        value: Mutex<Option<Result<String, ()>>>,
        reads: AtomicUsize,
    }

    impl Parameter {
        fn holding(value: &str) -> Parameter {
            let parameter = Parameter::default();
            parameter.set(Some(Ok(value.to_string())));
            parameter
        }

        fn set(&self, value: Option<Result<String, ()>>) {
            *self.value.lock().unwrap() = value;
        }

        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    impl ParameterStore for &Parameter {
        async fn read(&self, name: &str) -> Result<Option<String>, SecretReadError> {
            assert_eq!(name, "/tunnel/auth-secret");
            self.reads.fetch_add(1, Ordering::SeqCst);
            match self.value.lock().unwrap().clone() {
                None => Ok(None),
                Some(Ok(value)) => Ok(Some(value)),
                Some(Err(())) => Err(SecretReadError::TimedOut {
                    name: name.to_string(),
                    timeout: SSM_READ_TIMEOUT,
                }),
            }
        }
    }

    fn source(parameter: &Parameter) -> AuthSource<&Parameter> {
        let settings = AuthSettings::Parameter {
            name: "/tunnel/auth-secret".into(),
            refresh: REFRESH,
        };
        AuthSource::new(&settings, || parameter)
    }

    fn unused() -> &'static Parameter {
        panic!("no SSM client expected")
    }

    #[tokio::test]
    async fn fixed_settings_need_no_parameter() {
        let now = Instant::now();
        for (settings, expected) in [
            (AuthSettings::Disabled, Auth::Disabled),
            (AuthSettings::Missing, Auth::Unconfigured),
            (AuthSettings::Secret(secret()), Auth::Required(secret())),
        ] {
            let source = AuthSource::new(&settings, unused);
            assert_eq!(source.current_at(now).await, expected);
        }
    }

    #[tokio::test]
    async fn each_fixed_mode_says_at_init_how_agents_are_checked() {
        // Off is a warning an operator sees at every cold start.
        let (_, logs) =
            capture_logs(async { AuthSource::new(&AuthSettings::Disabled, unused) }).await;
        assert!(
            logs.contains("WARN") && logs.contains("authentication is OFF (AUTH_MODE=disabled)"),
            "{logs}"
        );
        let (_, logs) =
            capture_logs(async { AuthSource::new(&AuthSettings::Missing, unused) }).await;
        assert!(
            logs.contains("ERROR") && logs.contains("every connection will be refused"),
            "{logs}"
        );
        let (_, logs) =
            capture_logs(async { AuthSource::new(&AuthSettings::Secret(secret()), unused) }).await;
        assert!(logs.contains("agent tokens required"), "{logs}");
        assert!(!logs.contains(SECRET) && !logs.contains("OFF"), "{logs}");
    }

    /// What an unusable parameter gives, and says: 503 for everyone, an
    /// ERROR naming the parameter and the reason, never the value.
    #[rstest]
    #[case::missing(None, "does not exist or has no value")]
    #[case::placeholder(Some(Ok("UNSET: see terraform/README.md")), "placeholder")]
    #[case::legacy_placeholder(
        Some(Ok("placeholder: set me with aws ssm put-parameter --overwrite")),
        "placeholder"
    )]
    #[case::short(Some(Ok("0123456789")), "at least 32")]
    #[case::unreadable(Some(Err(())), "did not answer")]
    #[tokio::test]
    async fn an_unusable_parameter_refuses_everyone(
        #[case] value: Option<Result<&str, ()>>,
        #[case] reason: &str,
    ) {
        let parameter = Parameter::default();
        parameter.set(value.map(|v| v.map(str::to_string)));
        let source = source(&parameter);
        let (auth, logs) = capture_logs(source.current_at(Instant::now())).await;
        assert_eq!(auth, Auth::Unconfigured);
        assert!(
            logs.contains("ERROR")
                && logs.contains("no usable agent-token secret")
                && logs.contains("/tunnel/auth-secret")
                && logs.contains(reason),
            "{logs}"
        );
        if let Some(Ok(value)) = value {
            assert!(!logs.contains(value), "{logs}");
        }
        let event = ws_event("connect.json");
        assert_eq!(auth.check(&event, NOW), Err(Refused::Unconfigured));
    }

    #[tokio::test]
    async fn a_real_secret_is_read_once_per_refresh_interval() {
        let parameter = Parameter::holding(&format!("{SECRET}\n"));
        let source = source(&parameter);
        let start = Instant::now();
        let (auth, logs) = capture_logs(source.current_at(start)).await;
        assert_eq!(auth, Auth::Required(secret()));
        assert!(logs.contains("agent tokens required"), "{logs}");
        assert!(!logs.contains(SECRET), "{logs}");
        // A burst of handshakes within the interval: no further read.
        for ms in [0, 1, 30_000, 59_999] {
            let at = start + Duration::from_millis(ms);
            assert_eq!(source.current_at(at).await, Auth::Required(secret()));
        }
        assert_eq!(parameter.reads(), 1);
        source.current_at(start + REFRESH).await;
        assert_eq!(parameter.reads(), 2);
    }

    /// The secret set after the cold start takes effect at the first
    /// handshake one refresh interval after the refusal was read, and a
    /// rotation likewise; a refusal is cached as long as a secret.
    #[tokio::test]
    async fn a_secret_set_or_rotated_while_warm_takes_effect_within_the_interval() {
        let parameter = Parameter::holding("UNSET: see terraform/README.md");
        let source = source(&parameter);
        let start = Instant::now();
        assert_eq!(source.current_at(start).await, Auth::Unconfigured);

        parameter.set(Some(Ok(SECRET.into())));
        let almost = start + REFRESH - Duration::from_millis(1);
        assert_eq!(source.current_at(almost).await, Auth::Unconfigured);
        assert_eq!(parameter.reads(), 1, "a refusal is cached too");
        let set_at = start + REFRESH;
        assert_eq!(source.current_at(set_at).await, Auth::Required(secret()));

        parameter.set(Some(Ok(OTHER.into())));
        assert_eq!(
            source.current_at(set_at + REFRESH / 2).await,
            Auth::Required(secret())
        );
        let (auth, logs) = capture_logs(source.current_at(set_at + REFRESH)).await;
        assert_eq!(auth, Auth::Required(Secret::new(OTHER).unwrap()));
        assert!(logs.contains("agent-token secret changed"), "{logs}");
        assert!(!logs.contains(OTHER) && !logs.contains(SECRET), "{logs}");
    }

    /// A zero interval reads the parameter at every handshake: a rotation
    /// takes effect at the very next one, no clock needed.
    #[tokio::test]
    async fn a_zero_interval_reads_at_every_handshake() {
        let parameter = Parameter::holding(SECRET);
        let settings = AuthSettings::Parameter {
            name: "/tunnel/auth-secret".into(),
            refresh: Duration::ZERO,
        };
        let source = AuthSource::new(&settings, || &parameter);
        let now = Instant::now();
        assert_eq!(source.current_at(now).await, Auth::Required(secret()));
        parameter.set(Some(Ok(OTHER.into())));
        assert_eq!(
            source.current_at(now).await,
            Auth::Required(Secret::new(OTHER).unwrap())
        );
        assert_eq!(parameter.reads(), 2);
    }

    /// SSM failing after a good read keeps the secret (an outage must not
    /// lock agents out); a placeholder written over it does not.
    #[tokio::test]
    async fn an_unreadable_parameter_keeps_the_last_secret_but_a_placeholder_does_not() {
        let parameter = Parameter::holding(SECRET);
        let source = source(&parameter);
        let start = Instant::now();
        assert_eq!(source.current_at(start).await, Auth::Required(secret()));
        parameter.set(Some(Err(())));
        let (auth, logs) = capture_logs(source.current_at(start + REFRESH)).await;
        assert_eq!(auth, Auth::Required(secret()));
        assert!(
            logs.contains("WARN") && logs.contains("keeping the one read before"),
            "{logs}"
        );
        parameter.set(Some(Ok(
            "placeholder: set me with aws ssm put-parameter".into()
        )));
        assert_eq!(
            source.current_at(start + 2 * REFRESH).await,
            Auth::Unconfigured
        );
        parameter.set(None);
        assert_eq!(
            source.current_at(start + 3 * REFRESH).await,
            Auth::Unconfigured
        );
    }

    fn token(claims: &Claims) -> String {
        protocol::auth::mint(&secret(), claims)
    }

    fn event_with(
        header: Option<(&str, String)>,
        query: Option<String>,
    ) -> ApiGatewayWebsocketProxyRequest {
        let mut event = ws_event("connect.json");
        event.headers.remove(http::header::AUTHORIZATION);
        if let Some((name, value)) = header {
            event.headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        if let Some(q) = query {
            event.query_string_parameters = HashMap::from([("token".to_string(), q)]).into();
        }
        event
    }

    #[rstest]
    #[case::bearer("Authorization", "Bearer {}")]
    #[case::casing("AUTHORIZATION", "bearer {}")]
    #[case::spaces("authorization", "  BEARER   {}  ")]
    fn token_from_the_header(#[case] name: &str, #[case] format: &str) {
        let claims = Claims::new("alice", NOW, 60, None);
        let event = event_with(Some((name, format.replace("{}", &token(&claims)))), None);
        assert_eq!(
            Auth::Required(secret()).check(&event, NOW),
            Ok(Some(claims))
        );
    }

    #[test]
    fn token_from_the_query() {
        let claims = Claims::new("alice", NOW, 60, None);
        let event = event_with(None, Some(token(&claims)));
        assert_eq!(
            Auth::Required(secret()).check(&event, NOW),
            Ok(Some(claims))
        );
    }

    #[rstest]
    #[case::none(None, None, TokenError::Missing)]
    #[case::basic(Some(("authorization", "Basic abc".to_string())), None, TokenError::Missing)]
    #[case::empty_bearer(Some(("authorization", "Bearer ".to_string())), None, TokenError::Missing)]
    #[case::garbage(Some(("authorization", "Bearer x.y".to_string())), None, TokenError::Malformed("not three dot-separated parts"))]
    fn refusals(
        #[case] header: Option<(&str, String)>,
        #[case] query: Option<String>,
        #[case] expected: TokenError,
    ) {
        let event = event_with(header, query);
        assert_eq!(
            Auth::Required(secret()).check(&event, NOW),
            Err(Refused::Token(expected))
        );
    }

    #[test]
    fn disabled_accepts_and_unconfigured_refuses_anything() {
        let event = event_with(None, None);
        assert_eq!(Auth::Disabled.check(&event, NOW), Ok(None));
        assert_eq!(
            Auth::Unconfigured.check(&event, NOW),
            Err(Refused::Unconfigured)
        );
    }
}
