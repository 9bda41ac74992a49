//! Minting agent tokens (`tunnel token issue`): the operator side of
//! authentication. The token is a JWT (HS256) that the connect function
//! verifies with the same secret; see [`protocol::auth`].

use std::path::PathBuf;
use std::time::Duration;

use protocol::auth::{Claims, Secret, WeakSecret};

/// Where the signing secret comes from. Never from the command line itself:
/// it would end up in the shell history and the process list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The name of an environment variable holding it.
    Env(String),
    /// A file holding it (a trailing newline is ignored).
    File(PathBuf),
}

/// Why a token could not be issued. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("the environment variable {0} is not set (or not UTF-8)")]
    EnvMissing(String),
    #[error("cannot read the secret file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the signing secret is too weak")]
    Weak(#[source] WeakSecret),
    #[error("--user must not be empty")]
    EmptyUser,
    #[error(
        "--subdomain {0:?} is not a valid subdomain (lowercase letters, digits and '-', at most 63)"
    )]
    InvalidSubdomain(String),
    #[error("--expires must be longer than zero")]
    NoValidity,
}

/// Reads the secret.
pub fn load_secret(source: &SecretSource) -> Result<Secret, IssueError> {
    let bytes = match source {
        SecretSource::Env(var) => std::env::var(var)
            .map_err(|_| IssueError::EnvMissing(var.clone()))?
            .into_bytes(),
        SecretSource::File(path) => std::fs::read(path).map_err(|source| IssueError::File {
            path: path.clone(),
            source,
        })?,
    };
    Secret::new(bytes).map_err(IssueError::Weak)
}

/// A signed token for `user`, valid from `now` (epoch seconds) for
/// `expires`, optionally reserving `subdomain`.
pub fn issue(
    secret: &Secret,
    user: &str,
    expires: Duration,
    subdomain: Option<&str>,
    now: i64,
) -> Result<String, IssueError> {
    let user = user.trim();
    if user.is_empty() {
        return Err(IssueError::EmptyUser);
    }
    if let Some(s) = subdomain
        && !protocol::is_valid_subdomain(s)
    {
        return Err(IssueError::InvalidSubdomain(s.to_string()));
    }
    if expires.is_zero() {
        return Err(IssueError::NoValidity);
    }
    let secs = i64::try_from(expires.as_secs()).unwrap_or(i64::MAX);
    let claims = Claims::new(user, now, secs.max(1), subdomain);
    Ok(protocol::auth::mint(secret, &claims))
}

/// `30d`, `12h`, `90m`, `2w`: days and weeks on top of the agent's usual
/// durations (tokens live much longer than timeouts).
pub fn parse_validity(input: &str) -> Result<Duration, String> {
    let trimmed = input.trim();
    let (number, unit_secs) = if let Some(n) = trimmed.strip_suffix('d') {
        (n, 86_400)
    } else if let Some(n) = trimmed.strip_suffix('w') {
        (n, 7 * 86_400)
    } else {
        return crate::config::parse_duration(trimmed).map_err(|e| e.to_string());
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_secs))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{input:?} is not a duration such as 30d, 2w, 12h or 90m"))
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    #[rstest]
    #[case("30d", 30 * 86_400)]
    #[case("2w", 14 * 86_400)]
    #[case("12h", 12 * 3600)]
    #[case("90m", 90 * 60)]
    fn validity(#[case] input: &str, #[case] secs: u64) {
        assert_eq!(parse_validity(input), Ok(Duration::from_secs(secs)));
    }

    #[rstest]
    #[case("")]
    #[case("d")]
    #[case("-1d")]
    #[case("soon")]
    fn bad_validity(#[case] input: &str) {
        assert!(parse_validity(input).is_err(), "{input}");
    }

    #[test]
    fn issues_a_token_the_server_accepts() {
        let secret = Secret::new(SECRET).unwrap();
        let now = 1_764_000_000;
        let token = issue(
            &secret,
            "alice",
            Duration::from_secs(30 * 86_400),
            Some("alice-app"),
            now,
        )
        .unwrap();
        let claims = protocol::auth::verify(&secret, &token, now + 10).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.exp, now + 30 * 86_400);
        assert_eq!(claims.subdomain.as_deref(), Some("alice-app"));
        assert_eq!(
            protocol::auth::verify(&secret, &token, now + 30 * 86_400),
            Err(protocol::auth::TokenError::Expired)
        );
    }

    #[test]
    fn refuses_bad_input() {
        let secret = Secret::new(SECRET).unwrap();
        let day = Duration::from_secs(86_400);
        assert!(matches!(
            issue(&secret, " ", day, None, 0),
            Err(IssueError::EmptyUser)
        ));
        assert!(matches!(
            issue(&secret, "a", day, Some("Bad.Name"), 0),
            Err(IssueError::InvalidSubdomain(_))
        ));
        assert!(matches!(
            issue(&secret, "a", Duration::ZERO, None, 0),
            Err(IssueError::NoValidity)
        ));
    }

    #[test]
    fn reads_the_secret_from_a_file_and_refuses_weak_ones() {
        let dir = std::env::temp_dir().join(format!("tunnel-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, format!("{SECRET}\n")).unwrap();
        assert_eq!(
            load_secret(&SecretSource::File(good)).unwrap(),
            Secret::new(SECRET).unwrap()
        );
        let weak = dir.join("weak");
        std::fs::write(&weak, "short").unwrap();
        let err = load_secret(&SecretSource::File(weak)).unwrap_err();
        assert!(matches!(err, IssueError::Weak(_)), "{err}");
        let missing = load_secret(&SecretSource::Env("TUNNEL_TEST_NO_SUCH_VAR".into()));
        assert!(matches!(missing, Err(IssueError::EnvMissing(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
