//! The header-name casing a client used: hyper lowercases names, while a
//! WebSocket `$connect` event keeps the client's spelling.

use std::{collections::HashMap, sync::Arc};

/// The header-name casing a client used in the first request of its
/// connection. Known when the whole request head arrived in the first
/// segment, as a WebSocket handshake nearly always does.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderCase(Arc<HashMap<String, String>>);

impl HeaderCase {
    /// The client's spelling of a (lowercase) header name.
    pub fn get(&self, lower: &str) -> Option<&str> {
        self.0.get(lower).map(String::as_str)
    }

    fn from_head(head: &[u8]) -> Option<Self> {
        let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
        let text = std::str::from_utf8(&head[..end]).ok()?;
        let names = text
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, _)| (name.to_ascii_lowercase(), name.to_owned()))
            .collect();
        Some(Self(Arc::new(names)))
    }

    /// Reads the casing from the connection's first segment without consuming it.
    pub(crate) async fn peek(stream: &tokio::net::TcpStream) -> Option<Self> {
        let mut buf = vec![0; 16 * 1024];
        let n = stream.peek(&mut buf).await.ok()?;
        Self::from_head(&buf[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_case_from_a_request_head() {
        let case = HeaderCase::from_head(
            b"GET /local HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: k\r\nx-api-key: a\r\n\r\n",
        )
        .unwrap();
        assert_eq!(case.get("host"), Some("Host"));
        assert_eq!(case.get("sec-websocket-key"), Some("Sec-WebSocket-Key"));
        assert_eq!(case.get("x-api-key"), Some("x-api-key"));
        assert!(HeaderCase::from_head(b"GET / HTTP/1.1\r\nHost: partial").is_none());
    }
}
