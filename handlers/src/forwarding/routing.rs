//! Which tunnel a visitor's request is for, and what the local service sees.
//! `ROUTING` ([`Routing`]) says how, and only that way is tried:
//!
//! - host: `<sub>.<DOMAIN_NAME>` (a wildcard custom domain); any other Host,
//!   the bare domain included, is no tunnel. Each tunnel is its own origin.
//! - path: `/<sub>/rest…` on whatever host (the bare `execute-api` URL); the
//!   Host is ignored. Every tunnel shares one origin (single user only).

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;

use super::cookies::CookieScope;
use crate::config::Routing;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub subdomain: String,
    /// What the local service sees: path plus `?` and the raw query, if any.
    pub uri: String,
    /// How far the answer's cookies may reach (see [`CookieScope`]).
    pub cookies: CookieScope,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no tunnel name in the request")]
    NoSubdomain,
    #[error("{0:?} is not a valid tunnel name")]
    InvalidSubdomain(String),
    #[error("tunnels are served at <name>.{domain}")]
    NotATunnelHost { domain: String },
}

/// The target of a payload format 2.0 event: its `Host`, its path (`rawPath`,
/// which the HTTP API has already percent-decoded) and its raw query.
pub fn target(
    event: &ApiGatewayV2httpRequest,
    domain: &str,
    routing: Routing,
) -> Result<Target, RouteError> {
    let host = event
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let raw_path = event
        .raw_path
        .as_deref()
        .or(event.request_context.http.path.as_deref())
        .unwrap_or("/");
    let raw_query = event.raw_query_string.as_deref().unwrap_or("");
    route(host, raw_path, raw_query, domain, routing)
}

/// Host routing `<sub>.<domain>` (one DNS label, any case, port ignored) →
/// the whole path; or path routing `/<sub>/rest…` → `/rest…`.
pub fn route(
    host: Option<&str>,
    raw_path: &str,
    raw_query: &str,
    domain: &str,
    routing: Routing,
) -> Result<Target, RouteError> {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    match routing {
        Routing::Host => {
            let label = host
                .map(host_without_port)
                .and_then(|host| {
                    host.strip_suffix(domain)?
                        .strip_suffix('.')
                        .map(str::to_string)
                })
                .ok_or_else(|| RouteError::NotATunnelHost {
                    domain: domain.to_string(),
                })?;
            Ok(Target {
                subdomain: subdomain(&label)?,
                uri: local_uri(path, raw_query),
                cookies: CookieScope::Host,
            })
        }
        Routing::Path => {
            let rest = path.strip_prefix('/').unwrap_or(path);
            let (first, tail) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            if first.is_empty() {
                return Err(RouteError::NoSubdomain);
            }
            let uri = local_uri(tail, raw_query);
            let local_path = uri.split('?').next().unwrap_or_default();
            Ok(Target {
                subdomain: subdomain(first)?,
                // As the visitor spelled it: cookie paths are case-sensitive.
                cookies: CookieScope::path(&format!("/{first}"), local_path),
                uri,
            })
        }
    }
}
/// The tunnel name of a host label or first path segment, lowercased.
fn subdomain(label: &str) -> Result<String, RouteError> {
    let label = label.to_ascii_lowercase();
    if protocol::is_valid_subdomain(&label) {
        Ok(label)
    } else {
        Err(RouteError::InvalidSubdomain(label))
    }
}

/// The URI the local service sees, built here and nowhere else: the path
/// the tunnel name was taken from, then `?` and the raw query (byte-exact)
/// if there is one.
/// The HTTP API hands over a percent-DECODED path (aws-semantics.md): it is
/// re-encoded here so the agent gets a valid URI path. The raw query string
/// stays as the visitor sent it.
fn local_uri(path: &str, raw_query: &str) -> String {
    let path = crate::path::encode(path);
    if raw_query.is_empty() {
        path
    } else {
        format!("{path}?{raw_query}")
    }
}

/// `Host` without the port and the root dot, lowercased.
fn host_without_port(host: &str) -> String {
    let host = host.trim();
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn not_a_tunnel_host() -> RouteError {
        RouteError::NotATunnelHost {
            domain: "tunnel.example.com".into(),
        }
    }

    #[rstest]
    #[case::host(Some("abc123.tunnel.example.com"), "/x/y", "a=1", Ok(("abc123", "/x/y?a=1")))]
    #[case::any_case_and_port(Some("ABC123.Tunnel.Example.com:443"), "/", "", Ok(("abc123", "/")))]
    #[case::root_dot(Some("abc123.tunnel.example.com."), "/", "", Ok(("abc123", "/")))]
    #[case::keeps_full_path(Some("my-app.tunnel.example.com"), "/my-app/x", "", Ok(("my-app", "/my-app/x")))]
    #[case::two_labels(Some("a.b.tunnel.example.com"), "/", "", Err(RouteError::InvalidSubdomain("a.b".into())))]
    #[case::bad_label(Some("a_b.tunnel.example.com"), "/", "", Err(RouteError::InvalidSubdomain("a_b".into())))]
    #[case::leading_dash(Some("-ab.tunnel.example.com"), "/", "", Err(RouteError::InvalidSubdomain("-ab".into())))]
    #[case::no_path_routing_on_the_bare_domain(
        Some("tunnel.example.com"),
        "/abc123/x",
        "",
        Err(not_a_tunnel_host())
    )]
    #[case::no_path_routing_on_execute_api(
        Some("id.execute-api.eu-west-1.amazonaws.com"),
        "/abc123/x",
        "",
        Err(not_a_tunnel_host())
    )]
    #[case::other_suffix(
        Some("abc123.eviltunnel.example.com"),
        "/abc123/x",
        "",
        Err(not_a_tunnel_host())
    )]
    #[case::missing_host(None, "/abc123/x", "", Err(not_a_tunnel_host()))]
    fn host_routing(
        #[case] host: Option<&str>,
        #[case] path: &str,
        #[case] query: &str,
        #[case] expected: Result<(&str, &str), RouteError>,
    ) {
        let got = route(host, path, query, "tunnel.example.com", Routing::Host);
        let expected = expected.map(|(s, u)| Target {
            subdomain: s.into(),
            uri: u.into(),
            cookies: CookieScope::Host,
        });
        assert_eq!(got, expected);
    }

    #[rstest]
    #[case::execute_api(Some("id.execute-api.eu-west-1.amazonaws.com"), "/abc123/api/items", "x=1&x=2", Ok(("abc123", "/api/items?x=1&x=2", "/abc123", "/api")))]
    #[case::only_sub(Some("id.execute-api.eu-west-1.amazonaws.com"), "/abc123", "q", Ok(("abc123", "/?q", "/abc123", "/")))]
    #[case::trailing_slash(None, "/abc123/", "", Ok(("abc123", "/", "/abc123", "/")))]
    #[case::upper(None, "/ABC123/Keep/Case", "", Ok(("abc123", "/Keep/Case", "/ABC123", "/Keep")))]
    #[case::host_is_ignored(Some("abc123.tunnel.example.com"), "/other1/x", "", Ok(("other1", "/x", "/other1", "/")))]
    #[case::no_host_routing(
        Some("abc123.tunnel.example.com"),
        "/",
        "",
        Err(RouteError::NoSubdomain)
    )]
    #[case::empty_path(None, "", "", Err(RouteError::NoSubdomain))]
    #[case::double_slash(None, "//x", "", Err(RouteError::NoSubdomain))]
    #[case::bad_label(None, "/a%20b/x", "", Err(RouteError::InvalidSubdomain("a%20b".into())))]
    fn path_routing(
        #[case] host: Option<&str>,
        #[case] path: &str,
        #[case] query: &str,
        #[case] expected: Result<(&str, &str, &str, &str), RouteError>,
    ) {
        let got = route(host, path, query, "tunnel.example.com", Routing::Path);
        let expected = expected.map(|(s, u, prefix, default_path)| Target {
            subdomain: s.into(),
            uri: u.into(),
            cookies: CookieScope::Path {
                prefix: prefix.into(),
                default_path: default_path.into(),
            },
        });
        assert_eq!(got, expected);
    }
}
