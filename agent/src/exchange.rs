//! One request through the agent, as the rest of the agent sees it: the
//! [`Answer`] the visitor gets (a value; the session encodes it into a
//! message), the [`RequestLog`] line the console and the events carry, and
//! the [`Recorder`] hook through which the forwarder shows every exchange
//! to whoever records them (the request inspector). Plain data and two
//! narrow traits: the forwarder, the session, the console and the inspector
//! all use them, so this module depends on none of them.

use std::time::Duration;

use protocol::{ErrorCode, Headers, HttpRequest, HttpResponse};

use crate::text::clip;

/// What the visitor gets for one request, whatever carries it back: the
/// session sends it as one message (`http_response` or `error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The local service's response: its head (status, headers, timing;
    /// `body` empty) and where its body is.
    Response {
        head: HttpResponse,
        body: AnswerBody,
    },
    /// The request failed: the visitor gets `code`'s status and `message`,
    /// a short reason (no local address, no error chain).
    Failed {
        request_id: String,
        code: ErrorCode,
        message: String,
    },
}

/// Where an answer's body is.
#[derive(Clone, PartialEq, Eq)]
pub enum AnswerBody {
    /// The bytes, to send with the head.
    Inline(Vec<u8>),
    /// Already PUT to the request's upload URL: `length` bytes.
    Uploaded { length: u64 },
}

// By hand: a body never reaches a Debug print, only its length.
impl std::fmt::Debug for AnswerBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerBody::Inline(bytes) => write!(f, "Inline({} bytes)", bytes.len()),
            AnswerBody::Uploaded { length } => write!(f, "Uploaded({length} bytes)"),
        }
    }
}

/// What happened to one request, for the console (no bodies, no query values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLog {
    pub request_id: String,
    pub method: String,
    /// The path; a query string is shown as `?…`.
    pub path: String,
    pub outcome: RequestOutcome,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The local service answered with this status.
    Status(u16),
    /// The request failed; the visitor gets an error page with a short
    /// reason, `message` is the full story for the console.
    Failed { code: ErrorCode, message: String },
}

/// Longest method and path kept in a [`RequestLog`]: both come from the
/// server, and events are buffered.
pub(crate) const MAX_LOGGED_METHOD_CHARS: usize = 32;
const MAX_LOGGED_PATH_CHARS: usize = 512;

impl RequestLog {
    /// The log line of `req` (method and path clipped, query hidden), with a
    /// zero duration.
    pub(crate) fn for_request(req: &HttpRequest, outcome: RequestOutcome) -> RequestLog {
        RequestLog {
            request_id: req.request_id.clone(),
            method: clip(&req.method, MAX_LOGGED_METHOD_CHARS),
            path: clip(&display_path(&req.uri), MAX_LOGGED_PATH_CHARS),
            outcome,
            duration: Duration::ZERO,
        }
    }
}

/// The path for the console: query values can carry secrets, so a query
/// string shows as `?…`.
pub fn display_path(uri: &str) -> String {
    match uri.split_once('?') {
        Some((path, _)) => format!("{path}?…"),
        None => uri.to_owned(),
    }
}

/// Watches every exchange the forwarder makes with the local service. The
/// request inspector is one; the forwarder knows nothing else of it.
pub trait Recorder: Send + Sync {
    /// `request` (as the agent received it) is about to be forwarded;
    /// `stored` is its body when it came from the bodies bucket rather than
    /// inline.
    fn record(&self, request: &HttpRequest, stored: Option<&[u8]>) -> Box<dyn Recording>;

    /// The server refused a visitor's request by the tunnel's access policy
    /// (`rejected`, already clipped): it never reached the agent, so there
    /// is no exchange, only this notice.
    fn refused(&self, _rejected: &protocol::policy::Rejected) {}
}

/// One exchange being recorded. Dropped without [`Recording::finish`], the
/// request was cut short (its task aborted).
pub trait Recording: Send {
    /// The local service's response, as it gave it (minus hop-by-hop
    /// headers, which never cross the tunnel).
    fn response(&mut self, status: u16, headers: &Headers, body: &[u8]);
    /// The end: what the visitor got, and how long the local service took.
    fn finish(self: Box<Self>, outcome: &RequestOutcome, duration: Duration);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_path_hides_query_values() {
        assert_eq!(display_path("/hook?token=secret"), "/hook?…");
        assert_eq!(display_path("/a/b"), "/a/b");
    }
}
