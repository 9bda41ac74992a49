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

/// Length of a generated subdomain: 12 characters of `[a-z0-9]` is 62 bits,
/// far beyond guessing, and still short enough to type.
pub const SUBDOMAIN_LEN: usize = 12;

/// A subdomain is one DNS label: at most 63 characters.
pub const MAX_SUBDOMAIN_LEN: usize = 63;

// Checked at compile time: a bad edit above fails the build.
const _: () = {
    assert!(REQUEST_TIMEOUT.as_secs() <= MAX_REQUEST_TIMEOUT.as_secs());
    assert!(MAX_REQUEST_TIMEOUT.as_secs() < 30);
    assert!(HEARTBEAT_INTERVAL.as_secs() < IDLE_TIMEOUT.as_secs());
    assert!(MAX_FRAME_BYTES < MAX_MESSAGE_BYTES);
};
