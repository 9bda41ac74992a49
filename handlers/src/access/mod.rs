//! Who may reach a tunnel: the checks of the access policy its agent
//! declared (`protocol::policy`), run by forwarding right after the claim
//! lookup, before any write or post. A refused request costs no DynamoDB
//! call beyond that lookup (the policy is on the claim item) and never
//! reaches the agent; only a small [`Rejected`] notice does (best effort).
//!
//! Order: source address (403), URL token (403), basic-auth (401), webhook
//! signature (401). What a check consumed is stripped before the local
//! service sees the request ([`Admitted::apply`]): the `Authorization`
//! header of basic-auth, the URL token's query parameter and cookie.
//!
//! The URL token: a visit with `?tunnel_token=<token>` gets a session cookie
//! `tunnel_token_<subdomain>` (HttpOnly, Secure, SameSite=Lax) so the page's
//! later requests (assets, links without the token) pass too. A missing or
//! wrong token is a 403 with a page saying what is missing: the token keeps
//! the URL secret, and a random 12-character subdomain reveals nothing a
//! 404 would hide.

use std::net::IpAddr;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use protocol::policy::{self, AccessPolicy, Rejected, URL_TOKEN_PARAM};
use protocol::{HttpRequest, Message};
use subtle::ConstantTimeEq as _;
use tracing::debug;

use crate::logging::chain;
use crate::notifier::Notifier;
use crate::pages;

pub mod webhook;

/// Why a visitor was refused; the status and page are in [`Denied::status`]
/// and `forwarding::error` (its page).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("source address not in the allow list")]
    SourceNotAllowed,
    #[error("no valid URL token")]
    NoUrlToken,
    #[error("no valid basic-auth credentials")]
    Credentials,
    #[error("{}", .0.as_str())]
    Signature(webhook::SignatureError),
}

impl Denied {
    pub fn status(&self) -> u16 {
        match self {
            Denied::SourceNotAllowed | Denied::NoUrlToken => 403,
            Denied::Credentials | Denied::Signature(_) => 401,
        }
    }

    /// Headers the refusal carries: the basic-auth challenge.
    pub fn headers(&self) -> Option<(&'static str, &'static str)> {
        matches!(self, Denied::Credentials).then_some((
            "www-authenticate",
            r#"Basic realm="tunnel", charset="UTF-8""#,
        ))
    }
}

/// What a visitor's request shows the checks.
#[derive(Debug, Clone, Copy)]
pub struct Visitor<'a> {
    pub headers: &'a HeaderMap,
    /// Payload format 2.0's `cookies[]`.
    pub cookies: &'a [String],
    pub raw_query: &'a str,
    /// `requestContext.http.sourceIp`.
    pub source_ip: Option<&'a str>,
    pub body: &'a [u8],
    pub subdomain: &'a str,
    /// Epoch seconds.
    pub now: i64,
}

impl<'a> Visitor<'a> {
    pub fn of(event: &'a ApiGatewayV2httpRequest, subdomain: &'a str, body: &'a [u8]) -> Self {
        Self {
            headers: &event.headers,
            cookies: event.cookies.as_deref().unwrap_or_default(),
            raw_query: event.raw_query_string.as_deref().unwrap_or_default(),
            source_ip: event.request_context.http.source_ip.as_deref(),
            body,
            subdomain,
            now: crate::now_secs(),
        }
    }
}

/// A request the policy lets through, and what to strip from it.
#[derive(Default)]
pub struct Admitted {
    /// The `Authorization` header was basic-auth's.
    authorization: bool,
    /// The URL token's cookie name, if the policy has a token.
    token_cookie: Option<String>,
    /// The token came in the query: set it as a cookie.
    set_cookie: Option<String>,
}

// By hand: the cookie to set holds the URL token.
impl std::fmt::Debug for Admitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("authorization", &self.authorization)
            .field("token_cookie", &self.token_cookie)
            .field("set_cookie", &self.set_cookie.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Runs the policy's checks.
pub fn admit(policy: &AccessPolicy, v: &Visitor<'_>) -> Result<Admitted, Denied> {
    let mut admitted = Admitted::default();
    if !policy.allow_cidrs.is_empty() {
        let ip: Option<IpAddr> = v.source_ip.and_then(|ip| ip.parse().ok());
        if !ip.is_some_and(|ip| policy.allow_cidrs.iter().any(|c| c.contains(ip))) {
            return Err(Denied::SourceNotAllowed);
        }
    }
    if let Some(expected) = &policy.url_token_hash {
        let cookie_name = format!("{URL_TOKEN_PARAM}_{}", v.subdomain);
        let from_query = query_values(v.raw_query, URL_TOKEN_PARAM).find(|t| token_ok(t, expected));
        if let Some(token) = from_query {
            admitted.set_cookie = Some(format!(
                "{cookie_name}={token}; Path=/; Secure; HttpOnly; SameSite=Lax"
            ));
        } else if !cookie_values(v.headers, v.cookies, &cookie_name).any(|t| token_ok(t, expected))
        {
            return Err(Denied::NoUrlToken);
        }
        admitted.token_cookie = Some(cookie_name);
    }
    if !policy.basic_auth.is_empty() {
        let (user, password) = basic_credentials(v.headers).ok_or(Denied::Credentials)?;
        // Every credential is tried: how many there are is no secret, but
        // which one matched need not show in the timing.
        let matched = policy.basic_auth.iter().fold(false, |any, c| {
            let hash = policy::credential_hash(&c.salt, &user, &password);
            any | bool::from(hash.as_bytes().ct_eq(c.hash.as_bytes()))
        });
        if !matched {
            return Err(Denied::Credentials);
        }
        admitted.authorization = true;
    }
    if let Some(w) = &policy.webhook {
        webhook::verify(w, v.headers, v.body, v.now).map_err(Denied::Signature)?;
    }
    Ok(admitted)
}

fn token_ok(token: &str, expected_hash: &str) -> bool {
    policy::url_token_hash(token)
        .as_bytes()
        .ct_eq(expected_hash.as_bytes())
        .into()
}

/// The values of `name` in a raw query string (as sent: the token is
/// base64url, never percent-encoded).
fn query_values<'q>(raw_query: &'q str, name: &'q str) -> impl Iterator<Item = &'q str> {
    raw_query
        .split('&')
        .filter_map(move |pair| pair.split_once('=').filter(|(k, _)| *k == name))
        .map(|(_, v)| v)
}

/// The values of cookie `name`, from `cookies[]` or a `Cookie` header.
fn cookie_values<'c>(
    headers: &'c HeaderMap,
    cookies: &'c [String],
    name: &'c str,
) -> impl Iterator<Item = &'c str> {
    let from_header = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    cookies
        .iter()
        .map(String::as_str)
        .chain(from_header)
        .flat_map(|c| c.split(';'))
        .filter_map(move |pair| pair.trim().split_once('=').filter(|(k, _)| *k == name))
        .map(|(_, v)| v)
}

/// `Authorization: Basic base64(user:password)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

impl Admitted {
    /// Strips what the checks consumed from the request the agent gets.
    pub fn apply(&self, request: &mut HttpRequest) {
        if self.authorization {
            request.headers.remove("authorization");
        }
        let Some(cookie_name) = &self.token_cookie else {
            return;
        };
        if let Some((path, query)) = request.uri.split_once('?') {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| p.split_once('=').map_or(*p, |(k, _)| k) != URL_TOKEN_PARAM)
                .collect();
            request.uri = if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            };
        }
        if let Some(values) = request.headers.get_mut("cookie") {
            for value in values.iter_mut() {
                *value = value
                    .split(';')
                    .map(str::trim)
                    .filter(|p| p.split_once('=').map_or(*p, |(k, _)| k) != cookie_name)
                    .collect::<Vec<_>>()
                    .join("; ");
            }
            values.retain(|v| !v.is_empty());
            if values.is_empty() {
                request.headers.remove("cookie");
            }
        }
    }

    /// The URL token's cookie for the visitor's answer, if any.
    pub fn into_set_cookie(self) -> Option<String> {
        self.set_cookie
    }
}

/// Forwarding's step: no policy admits everything; a refusal is told to
/// the agent ([`notify`]) before the visitor gets it.
pub async fn check<N: Notifier + Sync>(
    notifier: &N,
    connection_id: &str,
    policy: Option<&AccessPolicy>,
    visitor: &Visitor<'_>,
    event: &ApiGatewayV2httpRequest,
) -> Result<Admitted, Denied> {
    let Some(policy) = policy else {
        return Ok(Admitted::default());
    };
    let denied = match admit(policy, visitor) {
        Ok(admitted) => return Ok(admitted),
        Err(denied) => denied,
    };
    notify(notifier, connection_id, event, &denied).await;
    Err(denied)
}

/// Tells the agent that a request was refused: method, path (no query: it
/// may hold a token), reason, source IP. Best effort: a failed notice never
/// changes the visitor's answer.
pub async fn notify<N: Notifier + Sync>(
    notifier: &N,
    connection_id: &str,
    event: &ApiGatewayV2httpRequest,
    denied: &Denied,
) {
    let path = event
        .raw_path
        .as_deref()
        .or(event.request_context.http.path.as_deref())
        .unwrap_or("/");
    let notice = Message::Rejected(Rejected {
        method: event.request_context.http.method.to_string(),
        path: pages::printable(path, 256),
        reason: denied.to_string(),
        source_ip: event.request_context.http.source_ip.clone(),
        status: denied.status(),
    });
    let Ok(json) = notice.to_json() else {
        return;
    };
    if let Err(e) = notifier.post(connection_id, &json).await {
        debug!(error = %chain(&e), "could not tell the agent about the refused request");
    }
}

#[cfg(test)]
mod tests;
