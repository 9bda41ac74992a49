//! Verifying AWS Signature Version 4 on incoming requests (the `@connections`
//! management API wants it: service `execute-api`, the API's region).
//!
//! The canonical request is rebuilt from what arrived, as AWS documents it
//! ("Create a canonical request for Signature Version 4", IAM user guide):
//! for every service but S3 the canonical URI is the path URI-encoded a
//! second time, so the `%3D` of a connection id signs as `%253D` and `@` as
//! `%40` (the Go SDK's debug log of a PostToConnection shows
//! `/production/%40connections/e_d2EewNLPECIGw%253D`).

use std::fmt::Write as _;

use hmac::{KeyInit as _, Mac as _};
use http::{HeaderMap, Method};
use sha2::{Digest as _, Sha256};
use time::{
    OffsetDateTime, PrimitiveDateTime, format_description::BorrowedFormatItem,
    macros::format_description,
};

type HmacSha256 = hmac::Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// AWS refuses a signature more than 15 minutes away from its clock.
const MAX_SKEW_SECS: i64 = 15 * 60;
const AMZ_DATE: &[BorrowedFormatItem<'_>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// Credentials a caller may sign with.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the token.
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    /// Fresh random credentials, shaped like AWS's (20-character key id,
    /// 40-character secret) but with a prefix no AWS key has.
    pub fn generate() -> Self {
        const KEY_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET_CHARS: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let pick = |chars: &[u8], n: usize| -> String {
            (0..n)
                .map(|_| char::from(chars[rand::random_range(0..chars.len())]))
                .collect()
        };
        Self {
            access_key_id: format!("LOCAL{}", pick(KEY_CHARS, 15)),
            secret_access_key: pick(SECRET_CHARS, 40),
            session_token: Some(pick(SECRET_CHARS, 64)),
        }
    }
}

/// Why a request's signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignatureError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'")]
    Malformed,
    #[error("Credential should be scoped to a valid region and to the service 'execute-api'")]
    WrongScope,
    #[error("Signature expired or X-Amz-Date missing")]
    Expired,
    #[error("The security token included in the request is invalid")]
    UnknownKey,
    #[error("The request signature we calculated does not match the signature you provided")]
    Mismatch,
}

/// The parts of a request that SigV4 covers.
pub(crate) struct SignedRequest<'a> {
    pub method: &'a Method,
    /// The path as it arrived (still percent-encoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, SignatureError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .ok_or(SignatureError::Missing)?
        .trim_start();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(SignatureError::Malformed);
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(SignatureError::Malformed);
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// Verifies `request`'s signature for `service` in `region` at `now`;
/// `secret_of` finds the credentials of an access key id. Returns the access
/// key id that signed.
pub(crate) fn verify<'r>(
    request: &SignedRequest<'r>,
    service: &str,
    region: &str,
    now: OffsetDateTime,
    secret_of: impl Fn(&str) -> Option<AwsCredentials>,
) -> Result<String, SignatureError> {
    let header = request
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or(SignatureError::Missing)?
        .to_str()
        .map_err(|_| SignatureError::Malformed)?;
    let auth = parse_authorization(header)?;
    if auth.service != service || auth.region != region {
        return Err(SignatureError::WrongScope);
    }
    let amz_date = request
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(SignatureError::Expired)?;
    let signed_at = PrimitiveDateTime::parse(amz_date, AMZ_DATE)
        .map_err(|_| SignatureError::Expired)?
        .assume_utc();
    if (now - signed_at).whole_seconds().abs() > MAX_SKEW_SECS
        || !amz_date.starts_with(auth.date)
        || auth.date.len() != 8
    {
        return Err(SignatureError::Expired);
    }
    // The signed headers must include `host`, as AWS requires.
    if !auth.signed_headers.contains(&"host") {
        return Err(SignatureError::Malformed);
    }
    let credentials = secret_of(auth.access_key_id).ok_or(SignatureError::UnknownKey)?;
    if let Some(token) = &credentials.session_token {
        let sent = request
            .headers
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok());
        if sent != Some(token.as_str()) {
            return Err(SignatureError::UnknownKey);
        }
    }

    let canonical = canonical_request(request, &auth.signed_headers);
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        auth.date.as_bytes(),
    );
    for part in [auth.region, auth.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let expected = hex(&hmac(&key, string_to_sign.as_bytes()));
    if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(credentials.access_key_id)
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn canonical_request(request: &SignedRequest<'_>, signed_headers: &[&str]) -> String {
    let mut out = String::new();
    out.push_str(request.method.as_str());
    out.push('\n');
    // Every service but S3: the (already encoded) path is encoded again.
    out.push_str(&uri_encode(request.path, false));
    out.push('\n');
    out.push_str(&canonical_query(request.query.unwrap_or("")));
    out.push('\n');
    for name in signed_headers {
        let values: Vec<String> = request
            .headers
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let _ = writeln!(out, "{name}:{}", values.join(","));
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    let payload_hash = request
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| hex(&Sha256::digest(request.body)), str::to_owned);
    out.push_str(&payload_hash);
    out
}

/// Query parameters decoded, re-encoded strictly and sorted.
fn canonical_query(raw: &str) -> String {
    let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode_bytes(&decode(k), true),
                uri_encode_bytes(&decode(v), true),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn uri_encode(s: &str, encode_slash: bool) -> String {
    uri_encode_bytes(s.as_bytes(), encode_slash)
}

/// SigV4's URI encoding: everything but `A-Za-z0-9-._~` (and `/` in paths).
fn uri_encode_bytes(bytes: &[u8], encode_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (b == b'/' && !encode_slash)
        {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's own worked example (IAM user guide, "Signature Version 4 test
    /// suite", `get-vanilla`): the known signature must verify, and any
    /// change to what it covers must not.
    #[test]
    fn verifies_aws_published_example() {
        let credentials = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                .parse()
                .unwrap(),
        );
        let now = PrimitiveDateTime::parse("20150830T123600Z", AMZ_DATE)
            .unwrap()
            .assume_utc();
        let lookup = |id: &str| (id == "AKIDEXAMPLE").then(|| credentials.clone());
        let request = |method: &'static Method, path: &'static str, headers: &HeaderMap| {
            let request = SignedRequest {
                method,
                path,
                query: None,
                headers,
                body: b"",
            };
            verify(&request, "service", "us-east-1", now, lookup)
        };
        assert_eq!(
            request(&Method::GET, "/", &headers),
            Ok("AKIDEXAMPLE".into())
        );
        assert_eq!(
            request(&Method::POST, "/", &headers),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            request(&Method::GET, "/x", &headers),
            Err(SignatureError::Mismatch)
        );
        let later = now + time::Duration::minutes(16);
        let signed = SignedRequest {
            method: &Method::GET,
            path: "/",
            query: None,
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            verify(&signed, "service", "us-east-1", later, lookup),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(&signed, "execute-api", "us-east-1", now, lookup),
            Err(SignatureError::WrongScope)
        );
        assert_eq!(
            verify(&signed, "service", "eu-west-1", now, lookup),
            Err(SignatureError::WrongScope)
        );
        assert_eq!(
            verify(&signed, "service", "us-east-1", now, |_| None),
            Err(SignatureError::UnknownKey)
        );
        let mut unsigned = headers.clone();
        unsigned.remove("authorization");
        assert_eq!(
            request(&Method::GET, "/", &unsigned),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn paths_and_queries_are_canonical_as_aws_wants() {
        assert_eq!(
            uri_encode("/production/@connections/e_d2EewNLPECIGw%3D", false),
            "/production/%40connections/e_d2EewNLPECIGw%253D"
        );
        assert_eq!(
            canonical_query("b=2&a=x%20y&a=1&flag"),
            "a=1&a=x%20y&b=2&flag="
        );
    }

    #[test]
    fn generated_credentials_are_distinct_and_shaped_like_aws() {
        let (a, b) = (AwsCredentials::generate(), AwsCredentials::generate());
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_eq!(a.access_key_id.len(), 20);
        assert_eq!(a.secret_access_key.len(), 40);
        assert!(!format!("{a:?}").contains(&a.secret_access_key));
    }
}
