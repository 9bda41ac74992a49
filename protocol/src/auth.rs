//! Agent tokens and resume tokens.
//!
//! **Agent tokens** are JWTs signed with HMAC-SHA256 (`alg: HS256`) by a
//! secret shared between the operator (who mints them with
//! `tunnel token issue`) and the connect function (which verifies them).
//! Claims: `sub` (the user), `aud` ([`AUDIENCE`]), `iat`, `exp` (required),
//! optional `nbf` and `subdomain` (a reserved subdomain granted to the user).
//! Only `HS256` is accepted: `none` and every other algorithm are refused
//! before the signature is looked at, and the signature is compared in
//! constant time (`hmac`'s `verify_slice`).
//!
//! **Resume tokens** are opaque: `<subdomain>.<43 chars of base64url>` (256
//! random bits). The server keeps only their SHA-256 ([`resume_token_hash`]);
//! the subdomain prefix tells it which claim item to check.
//!
//! Neither kind of token, nor the secret, ever appears in a `Debug` output,
//! an error message or a log line.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit as _, Mac as _};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ids::is_valid_subdomain;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The `aud` every agent token carries: a token minted for something else
/// with the same secret is refused.
pub const AUDIENCE: &str = "serverless-tunnel";

/// A shorter HS256 secret is guessable offline from one token (RFC 7518
/// §3.2: the key must be at least as long as the hash output).
pub const MIN_SECRET_BYTES: usize = 32;

/// Clock skew tolerated on `nbf` and `iat` (the minting machine's clock may
/// run ahead of Lambda's). Not applied to `exp`: an expired token is expired.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// Longer tokens are refused unparsed (a header is at most a few KB anyway).
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The HS256 secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the secret is {len} bytes; it must be at least {MIN_SECRET_BYTES} (e.g. `openssl rand -base64 48`)"
)]
pub struct WeakSecret {
    pub len: usize,
}

impl Secret {
    /// The secret's bytes exactly as given (surrounding whitespace, such as a
    /// file's trailing newline, is trimmed first).
    pub fn new(bytes: impl AsRef<[u8]>) -> Result<Secret, WeakSecret> {
        let bytes = bytes.as_ref().trim_ascii();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(WeakSecret { len: bytes.len() });
        }
        Ok(Secret(bytes.to_vec()))
    }

    /// A fresh random secret (local stacks, tests).
    pub fn generate() -> Secret {
        let mut bytes = [0u8; 48];
        rand::rng().fill(&mut bytes);
        Secret(URL_SAFE_NO_PAD.encode(bytes).into_bytes())
    }

    /// The secret as text, to hand to a process that needs it (a local
    /// connect function's `AUTH_SECRET`). Never log it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length")
    }
}

/// What an agent token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user the token was issued to.
    pub sub: String,
    pub aud: String,
    /// Issued at, epoch seconds.
    pub iat: i64,
    /// Expiry, epoch seconds (required).
    pub exp: i64,
    /// Not before, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// A subdomain reserved for this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
}

impl Claims {
    /// Claims for `user`, valid from `now` for `valid_for_secs`.
    pub fn new(user: &str, now: i64, valid_for_secs: i64, subdomain: Option<&str>) -> Claims {
        Claims {
            sub: user.to_string(),
            aud: AUDIENCE.to_string(),
            iat: now,
            exp: now.saturating_add(valid_for_secs),
            nbf: None,
            subdomain: subdomain.map(str::to_string),
        }
    }
}

/// Why a token was refused. The messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token was presented")]
    Missing,
    #[error("the token is not a well-formed JWT ({0})")]
    Malformed(&'static str),
    #[error("the token's algorithm is not HS256")]
    UnsupportedAlgorithm,
    #[error("the token's signature does not match (wrong secret or altered token)")]
    BadSignature,
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is for another audience")]
    WrongAudience,
    #[error("the token grants an invalid subdomain")]
    InvalidSubdomain,
    #[error("the token has no user (sub)")]
    MissingSubject,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// Signs `claims` into a compact JWT.
pub fn mint(secret: &Secret, claims: &Claims) -> String {
    let header = Header {
        alg: "HS256".into(),
        typ: Some("JWT".into()),
    };
    // Serializing these plain structs cannot fail.
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut mac = secret.mac();
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Verifies `token` at time `now` (epoch seconds): algorithm, signature,
/// audience, expiry, `nbf`/`iat`, and the granted subdomain's syntax.
pub fn verify(secret: &Secret, token: &str, now: i64) -> Result<Claims, TokenError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three dot-separated parts"));
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(header_b64)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(TokenError::Malformed("unreadable header"))?;
    // Decided by us, not by the token: `none`, HS384, RS256 (key confusion)… all refused.
    if header.alg != "HS256" {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| TokenError::Malformed("unreadable signature"))?;
    let mut mac = secret.mac();
    mac.update(header_b64.as_bytes());
    mac.update(b".");
    mac.update(payload_b64.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;

    // Only a signed payload is parsed.
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(TokenError::Malformed("unreadable or incomplete claims"))?;
    if claims.aud != AUDIENCE {
        return Err(TokenError::WrongAudience);
    }
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + CLOCK_SKEW_SECS)
        || claims.iat > now + CLOCK_SKEW_SECS
    {
        return Err(TokenError::NotYetValid);
    }
    if claims.sub.trim().is_empty() {
        return Err(TokenError::MissingSubject);
    }
    if let Some(sub) = &claims.subdomain
        && !is_valid_subdomain(sub)
    {
        return Err(TokenError::InvalidSubdomain);
    }
    Ok(claims)
}

/// A fresh resume token for `subdomain`: `<subdomain>.<256 random bits>`.
pub fn generate_resume_token(subdomain: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    format!("{subdomain}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The subdomain a resume token is for, if it looks like one.
pub fn resume_token_subdomain(token: &str) -> Option<&str> {
    let (subdomain, random) = token.split_once('.')?;
    (is_valid_subdomain(subdomain) && random.len() == 43).then_some(subdomain)
}

/// What the server stores instead of the resume token: base64url SHA-256.
/// The token has 256 random bits, so a plain hash cannot be reversed or guessed.
pub fn resume_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const NOW: i64 = 1_764_000_000;

    fn secret() -> Secret {
        Secret::new("0123456789abcdef0123456789abcdef-test").unwrap()
    }

    fn claims() -> Claims {
        Claims::new("alice", NOW - 10, 3600, Some("alice-app"))
    }

    /// A token with an arbitrary header and payload, signed with `secret`.
    fn forge(secret: &Secret, header: &str, payload: &serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let mut mac = secret.mac();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn round_trips() {
        let token = mint(&secret(), &claims());
        assert_eq!(verify(&secret(), &token, NOW), Ok(claims()));
        // Standard JWT shape: the header says HS256.
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&header).unwrap(),
            serde_json::json!({"alg": "HS256", "typ": "JWT"})
        );
    }

    #[test]
    fn a_token_made_by_another_implementation_verifies() {
        // Made with Python's standard library (hmac + hashlib + base64) over
        // {"alg":"HS256","typ":"JWT"}.{"sub":"bob","aud":"serverless-tunnel",
        // "iat":1764000000,"exp":4102444800} and the test secret.
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
            eyJzdWIiOiJib2IiLCJhdWQiOiJzZXJ2ZXJsZXNzLXR1bm5lbCIsImlhdCI6MTc2NDAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.\
            CCG-QfYC_cXQlgRT1yIee25-OBj_yYRTwfqOepccBLg";
        let claims = verify(&secret(), token, NOW).unwrap();
        assert_eq!((claims.sub.as_str(), claims.subdomain), ("bob", None));
        assert_eq!(claims.exp, 4102444800);
    }

    #[test]
    fn expired() {
        let token = mint(&secret(), &Claims::new("alice", NOW - 100, 50, None));
        assert_eq!(verify(&secret(), &token, NOW), Err(TokenError::Expired));
        // Exactly at `exp` it is expired already.
        let token = mint(&secret(), &Claims::new("alice", NOW - 100, 100, None));
        assert_eq!(verify(&secret(), &token, NOW), Err(TokenError::Expired));
    }

    #[test]
    fn wrong_secret() {
        let other = Secret::new("another-secret-of-at-least-32-bytes!!").unwrap();
        let token = mint(&other, &claims());
        assert_eq!(
            verify(&secret(), &token, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn altered_payload() {
        let token = mint(&secret(), &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut evil = claims();
        evil.subdomain = Some("bank".into());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).unwrap());
        let altered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&secret(), &altered, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn wrong_audience() {
        let mut c = claims();
        c.aud = "something-else".into();
        let token = mint(&secret(), &c);
        assert_eq!(
            verify(&secret(), &token, NOW),
            Err(TokenError::WrongAudience)
        );
    }

    #[rstest]
    #[case::none(r#"{"alg":"none","typ":"JWT"}"#)]
    #[case::none_caps(r#"{"alg":"None"}"#)]
    #[case::hs512(r#"{"alg":"HS512"}"#)]
    #[case::rs256(r#"{"alg":"RS256"}"#)]
    fn only_hs256(#[case] header: &str) {
        let payload = serde_json::to_value(claims()).unwrap();
        // Even correctly MACed, the algorithm decides.
        let token = forge(&secret(), header, &payload);
        assert_eq!(
            verify(&secret(), &token, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
        // The classic `alg: none` token with an empty signature.
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        assert_eq!(
            verify(&secret(), &unsigned, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[rstest]
    #[case::empty("", TokenError::Missing)]
    #[case::blank("   ", TokenError::Missing)]
    #[case::one_part("abc", TokenError::Malformed("not three dot-separated parts"))]
    #[case::four_parts("a.b.c.d", TokenError::Malformed("not three dot-separated parts"))]
    #[case::bad_header("!!.e30.AA", TokenError::Malformed("unreadable header"))]
    #[case::not_json_header("YWJj.e30.AA", TokenError::Malformed("unreadable header"))]
    fn malformed(#[case] token: &str, #[case] expected: TokenError) {
        assert_eq!(verify(&secret(), token, NOW), Err(expected));
    }

    #[test]
    fn signed_but_incomplete_claims_are_malformed() {
        // No `exp`: refused even with a valid signature.
        let token = forge(
            &secret(),
            r#"{"alg":"HS256"}"#,
            &serde_json::json!({"sub":"alice","aud":AUDIENCE,"iat":NOW}),
        );
        assert_eq!(
            verify(&secret(), &token, NOW),
            Err(TokenError::Malformed("unreadable or incomplete claims"))
        );
    }

    #[test]
    fn not_yet_valid() {
        let mut c = claims();
        c.nbf = Some(NOW + CLOCK_SKEW_SECS + 1);
        let token = mint(&secret(), &c);
        assert_eq!(verify(&secret(), &token, NOW), Err(TokenError::NotYetValid));
        c.nbf = Some(NOW + 5); // within the skew
        assert!(verify(&secret(), &mint(&secret(), &c), NOW).is_ok());
        let future = Claims::new("alice", NOW + 3600, 3600, None);
        assert_eq!(
            verify(&secret(), &mint(&secret(), &future), NOW),
            Err(TokenError::NotYetValid)
        );
    }

    #[rstest]
    #[case::uppercase("Alice")]
    #[case::dot("a.b")]
    #[case::dash("-a")]
    #[case::empty("")]
    fn invalid_reserved_subdomain(#[case] sub: &str) {
        let mut c = claims();
        c.subdomain = Some(sub.into());
        assert_eq!(
            verify(&secret(), &mint(&secret(), &c), NOW),
            Err(TokenError::InvalidSubdomain)
        );
    }

    #[test]
    fn reserved_subdomain_is_carried() {
        let claims = verify(&secret(), &mint(&secret(), &claims()), NOW).unwrap();
        assert_eq!(claims.subdomain.as_deref(), Some("alice-app"));
    }

    #[test]
    fn empty_subject_is_refused() {
        let c = Claims::new(" ", NOW, 60, None);
        assert_eq!(
            verify(&secret(), &mint(&secret(), &c), NOW),
            Err(TokenError::MissingSubject)
        );
    }

    #[test]
    fn secrets_must_be_long_and_never_show() {
        assert_eq!(Secret::new("short\n"), Err(WeakSecret { len: 5 }));
        let s = Secret::new("x".repeat(32) + "\n").unwrap();
        assert_eq!(s.expose().len(), 32);
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let g = Secret::generate();
        assert!(g.expose().len() >= MIN_SECRET_BYTES);
        assert_ne!(g, Secret::generate());
    }

    #[test]
    fn resume_tokens() {
        let token = generate_resume_token("abc123def456");
        assert_eq!(resume_token_subdomain(&token), Some("abc123def456"));
        assert_ne!(token, generate_resume_token("abc123def456"));
        let hash = resume_token_hash(&token);
        assert_eq!(hash.len(), 43);
        assert_ne!(
            hash,
            resume_token_hash(&generate_resume_token("abc123def456"))
        );
        assert!(!hash.contains(&token[13..]));
        for bad in [
            "",
            "abc",
            "ABC.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "abc.short",
        ] {
            assert_eq!(resume_token_subdomain(bad), None, "{bad}");
        }
    }
}
