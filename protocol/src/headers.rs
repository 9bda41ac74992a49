//! Which headers cross the tunnel: one rule for both directions and both
//! sides (forwarding drops them from the visitor's request and the agent's
//! response; the agent drops them from what it sends the local service and
//! what the local service answers).

/// Headers that describe one hop and are never forwarded (RFC 9110 §7.6.1),
/// lowercase. `proxy-authenticate` and `proxy-authorization` are credentials
/// for a proxy (RFC 9110 §11.7), `proxy-connection` and `keep-alive` the
/// pre-standard spellings of connection options; `trailers` is RFC 2616's
/// misspelling of `trailer`, still sent by some clients.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// The hop-by-hop headers of one message: the fixed [`HOP_BY_HOP`] list plus
/// every header its `Connection` header names (RFC 9110 §7.6.1: "a proxy …
/// MUST remove … each connection option … named in the Connection header").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HopByHop {
    named: Vec<String>,
}

impl HopByHop {
    /// From the values of the message's `Connection` header(s), e.g.
    /// `["close, X-Debug"]`.
    pub fn from_connection<'a>(values: impl IntoIterator<Item = &'a str>) -> HopByHop {
        let named = values
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        HopByHop { named }
    }

    /// Whether `name` (any case) is dropped rather than forwarded.
    pub fn contains(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        HOP_BY_HOP.contains(&lower.as_str()) || self.named.contains(&lower)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("connection", true)]
    #[case("Keep-Alive", true)]
    #[case("transfer-encoding", true)]
    #[case("upgrade", true)]
    #[case("te", true)]
    #[case("trailer", true)]
    #[case("trailers", true)]
    #[case("proxy-authorization", true)]
    #[case("Proxy-Authenticate", true)]
    #[case("Proxy-Connection", true)]
    #[case("content-type", false)]
    #[case("content-length", false)]
    #[case("cookie", false)]
    #[case("authorization", false)]
    #[case("x-debug", false)]
    fn the_fixed_list(#[case] name: &str, #[case] dropped: bool) {
        assert_eq!(HopByHop::default().contains(name), dropped);
    }

    #[test]
    fn headers_named_in_connection_are_dropped_in_any_case() {
        let hop = HopByHop::from_connection(["close, X-Debug", " x-trace ,", ""]);
        assert!(hop.contains("x-debug"));
        assert!(hop.contains("X-Trace"));
        assert!(hop.contains("close"));
        assert!(hop.contains("connection"));
        assert!(!hop.contains("x-other"));
        assert!(!hop.contains(""));
    }
}
