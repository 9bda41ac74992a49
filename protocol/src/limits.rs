//! Limits and timeouts, each with the reason it has its value.

use std::time::Duration;

/// API Gateway closes a WebSocket connection (1009) on a message above 128 KB,
/// and PostToConnection rejects a larger payload with 413.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// API Gateway closes a WebSocket connection (1009) on a frame above 32 KB, so
/// senders fragment larger messages into frames of at most this size.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// The HTTP API gives up on an integration after 30 s (503); answering 504
/// ourselves a few seconds earlier gives the visitor a meaningful error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(25);

/// Upper bound for a configured request timeout: it must stay under the HTTP
/// API's 30 s integration timeout with room for the last poll and the answer.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(28);

/// API Gateway closes every WebSocket connection after 2 hours; connection
/// items live that long (plus slack) before TTL reclaims a leftover.
pub const CONNECTION_TTL: Duration = Duration::from_secs(2 * 60 * 60);

/// API Gateway closes a WebSocket connection idle for 10 minutes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The agent pings at half the idle timeout: a missed ping still leaves time
/// for the next, and each ping costs one Lambda invocation, so not more often.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Added to every TTL so DynamoDB never reclaims an item that is still in use
/// (TTL deletion is lazy, but expiry comparisons in conditions are not).
pub const TTL_SLACK: Duration = Duration::from_secs(5 * 60);

/// How long the agent waits for `connection_established` after `ready`: one
/// cold start of the response function plus a retry fits well inside it.
pub const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(15);

/// Synchronous Lambda invocations carry at most 6 MB each way.
pub const LAMBDA_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Everything in a 6 MB Lambda payload that is not the base64 body: the
/// event or response JSON, `requestContext`, headers and cookies. One whole
/// WebSocket message (128 KB) is enough: a response head (status and headers)
/// must fit in one message to reach the server at all, and a request's line
/// plus headers are capped by the HTTP API at 10,240 bytes (JSON escaping and
/// the event's repeats — `rawPath`, `cookies`, `requestContext.http` — stay
/// far below 128 KB).
pub const LAMBDA_ENVELOPE_ALLOWANCE: usize = MAX_MESSAGE_BYTES;

/// The largest body carried either way: what a 6 MB Lambda payload holds
/// after base64 (4 bytes per 3) and the envelope allowance.
/// (6,291,456 − 131,072) / 4 × 3 = 1,540,096 × 3 = 4,620,288 bytes (≈ 4.4 MiB).
/// Requests above it get a 413 from forwarding; responses above it get the
/// agent's `payload_too_large` error (a 502 for the visitor).
pub const MAX_BODY_BYTES: usize = (LAMBDA_PAYLOAD_BYTES - LAMBDA_ENVELOPE_ALLOWANCE) / 4 * 3;

/// Longest request id a peer may send (and have echoed back). Ids are UUIDs
/// (36 characters); the slack keeps the bound honest for any id a peer
/// echoes, and an answer carrying it still fits one message.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// How long a presigned URL for the bodies bucket stays valid: enough for
/// the agent to start its download right away, or its upload after the
/// local service answered within the request timeout (25 s at most 28 s),
/// and short enough that a leaked URL is soon worthless.
pub const SIGNED_URL_TTL: Duration = Duration::from_secs(60);

/// The largest answer body sent inline in `http_response`; larger ones go
/// through the bodies bucket. The break-even of one DynamoDB write of the
/// answer item ($0.625 per million per KB, plus reads at $0.125 per 4 KB)
/// against an S3 PUT + GET ($5.40 per million whatever the size): an 8 KiB
/// body costs $7.00 inline, $7.15 through S3; 9 KiB $7.63 inline (see
/// `docs/contracts.md`, "The data path").
pub const INLINE_ANSWER_BODY_BYTES: usize = 8 * 1024;

/// Length of a generated subdomain: 12 characters of `[a-z0-9]` is 62 bits,
/// far beyond guessing, and still short enough to type.
pub const SUBDOMAIN_LEN: usize = 12;

/// A subdomain is one DNS label: at most 63 characters.
pub const MAX_SUBDOMAIN_LEN: usize = 63;

/// How long a subdomain stays reserved for its agent after the connection
/// ends (or its `$disconnect` releases it): the agent reconnects with its
/// resume token within this window and keeps its URL. It must exceed the
/// agent's longest reconnect backoff (30 s, plus jitter) many times over, so a few
/// failed attempts (a cold start, a flaky network) do not lose the URL, and
/// stay short enough that an abandoned name does not stay blocked for long.
pub const RESUME_WINDOW: Duration = Duration::from_secs(10 * 60);

// Checked at compile time: a bad edit above fails the build.
const _: () = {
    assert!(REQUEST_TIMEOUT.as_secs() <= MAX_REQUEST_TIMEOUT.as_secs());
    assert!(MAX_REQUEST_TIMEOUT.as_secs() < 30);
    assert!(HEARTBEAT_INTERVAL.as_secs() < IDLE_TIMEOUT.as_secs());
    assert!(MAX_FRAME_BYTES < MAX_MESSAGE_BYTES);
    assert!(MAX_BODY_BYTES == 4_620_288);
    assert!(
        crate::body::encoded_len(MAX_BODY_BYTES) + LAMBDA_ENVELOPE_ALLOWANCE
            <= LAMBDA_PAYLOAD_BYTES
    );
    assert!(SIGNED_URL_TTL.as_secs() <= 60);
    assert!(SIGNED_URL_TTL.as_secs() > MAX_REQUEST_TIMEOUT.as_secs());
    assert!(crate::body::encoded_len(INLINE_ANSWER_BODY_BYTES) < MAX_MESSAGE_BYTES / 2);
};
