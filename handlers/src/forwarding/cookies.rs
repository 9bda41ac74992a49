//! What a tunnel's `Set-Cookie` may do in the visitor's browser: no more
//! than reach its own tunnel.
//!
//! - Every `Domain` attribute is removed, in any spelling (any case,
//!   whitespace around the name, any value: leading dot, quoted, empty;
//!   repeated): a cookie from a tunnel is host-only. With host routing a
//!   `Domain=<DOMAIN_NAME>` would otherwise land on every other tunnel
//!   (`<sub>.<DOMAIN_NAME>`), and with path routing the host is shared by
//!   all tunnels anyway. Removing rather than comparing values is simpler to
//!   get right, and loses nothing: a `Domain` equal to the tunnel's own host
//!   only adds its subdomains, which are never tunnels.
//! - With path routing every `Path` is moved under the tunnel's prefix, as a
//!   reverse proxy that mounts an app under a prefix does: the app's `/x` is
//!   the visitor's `/<sub>/x`, and a cookie without a `Path` gets the
//!   prefixed default path (RFC 6265 §5.1.4) of the app's request. Without
//!   it, every cookie the usual `Path=/` sets would be sent to every other
//!   tunnel's agent on the shared host. It is hygiene, not isolation: a
//!   page of one tunnel still reads another's cookies through a same-origin
//!   frame, which is why path routing is for a single user. A `__Host-`
//!   cookie, which promises the whole origin (`Path=/`), is refused by
//!   browsers once moved, and rightly: on a shared host that promise cannot
//!   be kept.
//! - A value with a control character (other than tab) is dropped whole:
//!   browsers ignore such a `Set-Cookie` (RFC 6265bis §5.6), and the tunnel
//!   must not guess how they would have split it.
//!
//! Attributes are split on every `;` (RFC 6265 §5.2): no quoting hides
//! one. Everything else passes byte for byte.

/// How far the cookies of one request's answer may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieScope {
    /// Host routing: the tunnel's host only.
    Host,
    /// Path routing: the shared host, under `prefix` (`/<sub>` as the
    /// visitor spelled it).
    Path {
        prefix: String,
        /// The default path of the app's request (RFC 6265 §5.1.4).
        default_path: String,
    },
}

impl CookieScope {
    /// Path routing under `prefix` (`/<sub>`) for a request whose path, as
    /// the local service sees it, is `local_path`.
    pub fn path(prefix: &str, local_path: &str) -> CookieScope {
        CookieScope::Path {
            prefix: prefix.to_string(),
            default_path: default_path(local_path).to_string(),
        }
    }

    /// The `Set-Cookie` value the visitor's browser gets, or `None` to drop it.
    pub fn apply(&self, set_cookie: &str) -> Option<String> {
        if set_cookie
            .chars()
            .any(|c| c.is_ascii_control() && c != '\t')
        {
            return None;
        }
        let mut parts = set_cookie.split(';');
        let mut out = parts.next().unwrap_or_default().to_string();
        // The last valid `Path` wins in a browser (RFC 6265 §5.3 step 7).
        let mut app_path: Option<&str> = None;
        for attribute in parts {
            let (name, value) = attribute.split_once('=').unwrap_or((attribute, ""));
            // Trimming more than a browser would (any whitespace) can only
            // make more attributes count as `Domain`/`Path`: the safe side.
            let name = name.trim();
            if name.eq_ignore_ascii_case("domain") {
                continue;
            }
            if let CookieScope::Path { .. } = self
                && name.eq_ignore_ascii_case("path")
            {
                let value = value.trim_matches([' ', '\t']);
                app_path = Some(value).filter(|v| v.starts_with('/'));
                continue;
            }
            out.push(';');
            out.push_str(attribute);
        }
        if let CookieScope::Path {
            prefix,
            default_path,
        } = self
        {
            let app_path = app_path.unwrap_or(default_path);
            out.push_str("; Path=");
            out.push_str(prefix);
            if app_path != "/" {
                out.push_str(app_path);
            }
        }
        Some(out)
    }
}

/// RFC 6265 §5.1.4: the request path up to (not including) its last `/`,
/// or `/`.
fn default_path(path: &str) -> &str {
    let path = path.split('?').next().unwrap_or_default();
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(last) => &path[..last],
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rstest::rstest;

    use super::*;

    fn path_scope(local_path: &str) -> CookieScope {
        CookieScope::path("/Abc123", local_path)
    }

    #[rstest]
    #[case::plain("a=1", Some("a=1"))]
    #[case::other_attributes_untouched(
        "a=1; Path=/x; HttpOnly; Secure; SameSite=Lax; Max-Age=60",
        Some("a=1; Path=/x; HttpOnly; Secure; SameSite=Lax; Max-Age=60")
    )]
    #[case::domain("a=1; Domain=tunnel.example.com; Path=/", Some("a=1; Path=/"))]
    #[case::leading_dot("a=1; Domain=.tunnel.example.com", Some("a=1"))]
    #[case::lower_case("a=1; domain=tunnel.example.com", Some("a=1"))]
    #[case::upper_case("a=1;DOMAIN=EXAMPLE.COM", Some("a=1"))]
    #[case::mixed_case("a=1; dOmAiN=example.com; HttpOnly", Some("a=1; HttpOnly"))]
    #[case::quoted("a=1; Domain=\"tunnel.example.com\"", Some("a=1"))]
    #[case::spaces_around("a=1;   Domain   =  .example.com  ; Secure", Some("a=1; Secure"))]
    #[case::tab_before("a=1;\tDomain=example.com", Some("a=1"))]
    #[case::empty_value("a=1; Domain=", Some("a=1"))]
    #[case::no_value("a=1; Domain", Some("a=1"))]
    #[case::repeated(
        "a=1; Domain=own.example.com; Domain=example.com; domain=.com",
        Some("a=1")
    )]
    #[case::own_host("a=1; Domain=abc123.tunnel.example.com", Some("a=1"))]
    #[case::quoted_semicolon("a=\"x;Domain=example.com\"; Path=/", Some("a=\"x; Path=/"))]
    #[case::cookie_named_domain("Domain=example.com; Path=/", Some("Domain=example.com; Path=/"))]
    #[case::nul("a=1\0; Domain=example.com", None)]
    #[case::newline("a=1\n; Domain=example.com", None)]
    #[case::del("a=1\u{7f}", None)]
    fn host_routing_removes_every_domain(#[case] input: &str, #[case] expected: Option<&str>) {
        assert_eq!(CookieScope::Host.apply(input).as_deref(), expected);
    }

    #[rstest]
    #[case::root("a=1; Path=/", "/x/y", "a=1; Path=/Abc123")]
    #[case::sub_path("a=1; Path=/admin; HttpOnly", "/", "a=1; HttpOnly; Path=/Abc123/admin")]
    #[case::lower_case("a=1; path=/admin", "/", "a=1; Path=/Abc123/admin")]
    #[case::spaces("a=1;  PATH =  /admin  ", "/", "a=1; Path=/Abc123/admin")]
    #[case::default_of_a_deep_request("a=1", "/app/login", "a=1; Path=/Abc123/app")]
    #[case::default_of_a_top_request("a=1", "/login", "a=1; Path=/Abc123")]
    #[case::default_ignores_the_query("a=1", "/app/x?next=/a/b", "a=1; Path=/Abc123/app")]
    #[case::relative_is_the_default("a=1; Path=admin", "/app/x", "a=1; Path=/Abc123/app")]
    #[case::quoted_is_the_default("a=1; Path=\"/admin\"", "/", "a=1; Path=/Abc123")]
    #[case::empty_is_the_default("a=1; Path=", "/a/b", "a=1; Path=/Abc123/a")]
    #[case::last_valid_path_wins("a=1; Path=/one; Path=/two", "/", "a=1; Path=/Abc123/two")]
    #[case::domain_too(
        "a=1; Domain=.execute-api.eu-west-1.amazonaws.com; Path=/",
        "/",
        "a=1; Path=/Abc123"
    )]
    #[case::host_prefix(
        "__Host-id=1; Path=/; Secure",
        "/",
        "__Host-id=1; Secure; Path=/Abc123"
    )]
    fn path_routing_moves_every_path_under_the_prefix(
        #[case] input: &str,
        #[case] local_path: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(
            path_scope(local_path).apply(input).as_deref(),
            Some(expected)
        );
    }

    /// What a browser makes of a `Set-Cookie` value (RFC 6265 §5.2), only as
    /// far as scope goes: its `Domain` (`None` = host-only) and `Path`.
    fn browser(set_cookie: &str, request_path: &str) -> (Option<String>, String) {
        let mut domain = None;
        let mut path = None;
        for attribute in set_cookie.split(';').skip(1) {
            let (name, value) = attribute.split_once('=').unwrap_or((attribute, ""));
            let (name, value) = (
                name.trim_matches([' ', '\t']),
                value.trim_matches([' ', '\t']),
            );
            if name.eq_ignore_ascii_case("domain") {
                if !value.is_empty() {
                    domain = Some(value.trim_start_matches('.').to_ascii_lowercase());
                }
            } else if name.eq_ignore_ascii_case("path") {
                path = Some(if value.starts_with('/') {
                    value.to_string()
                } else {
                    default_path(request_path).to_string()
                });
            }
        }
        (
            domain,
            path.unwrap_or_else(|| default_path(request_path).to_string()),
        )
    }

    /// Attribute names a browser may read as `Domain` or `Path`, and others.
    fn attribute_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("Domain"),
            Just("domain"),
            Just("DOMAIN"),
            Just("dOmAin"),
            Just(" Domain "),
            Just("\tdomain"),
            Just("Path"),
            Just("PATH"),
            Just(" path\t"),
            Just("HttpOnly"),
            Just("Secure"),
            Just("SameSite"),
            Just("Max-Age"),
            Just("Expires"),
        ]
        .prop_map(str::to_string)
    }

    fn attribute_value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(".tunnel.example.com".to_string()),
            Just("\"tunnel.example.com\"".to_string()),
            Just("/".to_string()),
            Just("/admin/x".to_string()),
            Just(" /a ".to_string()),
            "[ -~]{0,20}",
        ]
    }

    fn set_cookie() -> impl Strategy<Value = String> {
        (
            "[!-~&&[^;]]{0,12}",
            prop::collection::vec(
                (attribute_name(), prop::option::of(attribute_value())),
                0..6,
            ),
        )
            .prop_map(|(pair, attributes)| {
                let mut out = pair;
                for (name, value) in attributes {
                    out.push(';');
                    out.push_str(&name);
                    if let Some(value) = value {
                        out.push('=');
                        out.push_str(&value);
                    }
                }
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whatever the agent sends, the browser ends up with a host-only
        /// cookie; with path routing, one whose path is inside the tunnel's
        /// prefix. The name-value pair is untouched; nothing panics.
        #[test]
        fn no_cookie_reaches_beyond_its_tunnel(
            value in prop_oneof![set_cookie(), ".{0,60}"],
            local_path in "(/[a-z]{0,4}){1,3}",
        ) {
            for scope in [CookieScope::Host, path_scope(&local_path)] {
                let Some(out) = scope.apply(&value) else {
                    prop_assert!(value.chars().any(|c| c.is_ascii_control() && c != '\t'));
                    continue;
                };
                prop_assert_eq!(out.split(';').next(), value.split(';').next());
                let public_path = format!("/Abc123{local_path}");
                let (domain, path) = browser(&out, &public_path);
                prop_assert_eq!(domain, None, "{:?} became {:?}", value, out);
                if let CookieScope::Path { .. } = scope {
                    prop_assert!(
                        path == "/Abc123" || path.starts_with("/Abc123/"),
                        "{:?} became {:?}: path {:?}", value, out, path
                    );
                }
            }
        }
    }
}
