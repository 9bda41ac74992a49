//! Agent authentication on `$connect`.
//!
//! The connect function reads its settings at cold start
//! ([`AuthSettings`], in [`crate::config`], from `AUTH_MODE`, `AUTH_SECRET`,
//! `AUTH_SECRET_PARAMETER`), resolves them
//! once into an [`Auth`] (fetching the secret from SSM if named), and checks
//! every handshake with [`Auth::check`]. There is no default secret: without
//! one every connection is refused until the operator sets one or turns
//! authentication off explicitly. Tokens and the secret are never logged.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use protocol::auth::{Claims, Secret, TokenError, WeakSecret};
use tracing::{error, info, warn};

use crate::config::{AuthSettings, SECRET_PARAMETER_VAR, SECRET_VAR};

/// How the connect function authenticates, resolved once per cold start.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Required(Secret),
    Disabled,
    /// No secret: refuse everyone (503), saying why in the logs.
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

/// The secret could not be loaded: the function does not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthInitError {
    #[error("could not read the SSM parameter {name:?} named by AUTH_SECRET_PARAMETER")]
    Ssm {
        name: String,
        #[source]
        source: Box<aws_sdk_ssm::Error>,
    },
    #[error("the SSM parameter {name:?} has no value")]
    Empty { name: String },
    #[error("the SSM parameter {name:?} holds a weak secret")]
    Weak {
        name: String,
        #[source]
        source: WeakSecret,
    },
}

/// Why a handshake is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// 401: missing, malformed, forged or expired token.
    #[error("token refused: {0}")]
    Token(#[from] TokenError),
    /// 503: the deployment has no secret and authentication is not disabled.
    #[error(
        "authentication is required but no secret is configured (set AUTH_SECRET_PARAMETER or AUTH_SECRET, or AUTH_MODE=disabled)"
    )]
    Unconfigured,
}

impl Auth {
    /// Resolves the settings, fetching an SSM parameter through `fetch`
    /// (`None` when it has no value), and logs the outcome once.
    pub async fn resolve<F, Fut>(settings: &AuthSettings, fetch: F) -> Result<Auth, AuthInitError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<Option<String>, AuthInitError>>,
    {
        let auth = match settings {
            AuthSettings::Disabled => {
                warn!(
                    "authentication is OFF (AUTH_MODE=disabled): anyone who reaches the WebSocket URL can open a tunnel"
                );
                Auth::Disabled
            }
            AuthSettings::Missing => {
                error!(
                    "no authentication secret: set AUTH_SECRET_PARAMETER (an SSM SecureString) or AUTH_SECRET, or AUTH_MODE=disabled; every connection will be refused"
                );
                Auth::Unconfigured
            }
            AuthSettings::Secret(secret) => {
                info!(source = SECRET_VAR, "agent tokens required (HS256)");
                Auth::Required(secret.clone())
            }
            AuthSettings::Parameter(name) => {
                let value = fetch(name.clone())
                    .await?
                    .ok_or_else(|| AuthInitError::Empty { name: name.clone() })?;
                let secret = Secret::new(value).map_err(|source| AuthInitError::Weak {
                    name: name.clone(),
                    source,
                })?;
                info!(source = SECRET_PARAMETER_VAR, parameter = %name, "agent tokens required (HS256)");
                Auth::Required(secret)
            }
        };
        Ok(auth)
    }

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

/// GetParameter WithDecryption: the secret's value (`None` if it has none).
pub async fn fetch_ssm_secret(
    client: &aws_sdk_ssm::Client,
    name: String,
) -> Result<Option<String>, AuthInitError> {
    let out = client
        .get_parameter()
        .name(&name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| AuthInitError::Ssm {
            name: name.clone(),
            source: Box::new(aws_sdk_ssm::Error::from(e)),
        })?;
    Ok(out.parameter.and_then(|p| p.value))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rstest::rstest;

    use super::*;
    use crate::testing::ws_event;

    const NOW: i64 = 1_764_000_000;
    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

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

    async fn no_fetch(_: String) -> Result<Option<String>, AuthInitError> {
        panic!("no SSM call expected")
    }

    #[tokio::test]
    async fn resolves_without_ssm_unless_named() {
        assert_eq!(
            Auth::resolve(&AuthSettings::Disabled, no_fetch)
                .await
                .unwrap(),
            Auth::Disabled
        );
        assert_eq!(
            Auth::resolve(&AuthSettings::Missing, no_fetch)
                .await
                .unwrap(),
            Auth::Unconfigured
        );
        let fetched = Auth::resolve(&AuthSettings::Parameter("/p".into()), |name| async move {
            assert_eq!(name, "/p");
            Ok(Some(format!("{SECRET}\n")))
        })
        .await
        .unwrap();
        assert_eq!(fetched, Auth::Required(secret()));
        let weak = Auth::resolve(&AuthSettings::Parameter("/p".into()), |_| async {
            Ok(Some("short".to_string()))
        })
        .await
        .unwrap_err();
        assert!(matches!(weak, AuthInitError::Weak { .. }), "{weak}");
        let empty = Auth::resolve(&AuthSettings::Parameter("/p".into()), |_| async {
            Ok(None)
        })
        .await
        .unwrap_err();
        assert!(matches!(empty, AuthInitError::Empty { .. }), "{empty}");
    }

    #[tokio::test]
    async fn each_mode_says_at_init_how_agents_are_checked() {
        use crate::testing::capture_logs;
        // Off is a warning an operator sees at every cold start.
        let (_, logs) = capture_logs(Auth::resolve(&AuthSettings::Disabled, no_fetch)).await;
        assert!(
            logs.contains("WARN") && logs.contains("authentication is OFF (AUTH_MODE=disabled)"),
            "{logs}"
        );
        let (_, logs) = capture_logs(Auth::resolve(&AuthSettings::Missing, no_fetch)).await;
        assert!(
            logs.contains("ERROR") && logs.contains("every connection will be refused"),
            "{logs}"
        );
        let (_, logs) =
            capture_logs(Auth::resolve(&AuthSettings::Secret(secret()), no_fetch)).await;
        assert!(logs.contains("agent tokens required"), "{logs}");
        assert!(!logs.contains(SECRET) && !logs.contains("OFF"), "{logs}");
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
