//! The AWS limits and timeouts the emulator enforces, next to each other.

use std::time::Duration;

/// Lambda synchronous invocation payload, each way (6 MB).
pub const LAMBDA_PAYLOAD_MAX: usize = 6 * 1024 * 1024;
/// A streamed response (invoke mode `RESPONSE_STREAM`): 200 MB; beyond it
/// the stream is cut.
pub const LAMBDA_STREAM_MAX: usize = 200 * 1024 * 1024;
/// Lambda's on-demand init phase limit (spawn → first `/next`).
pub const LAMBDA_INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// API Gateway WebSocket frame size (32 KB) → close 1009.
pub const WS_FRAME_MAX: usize = 32 * 1024;
/// API Gateway WebSocket message size (128 KB) → close 1009.
pub const WS_MESSAGE_MAX: usize = 128 * 1024;
/// `@connections` POST body limit (131072 bytes) → 413.
pub const MANAGEMENT_POST_MAX: usize = 128 * 1024;
/// WebSocket integration timeout.
pub const WS_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);
/// Default idle timeout of a WebSocket connection.
pub const WS_IDLE_TIMEOUT_DEFAULT_SECS: u64 = 600;
/// Default maximum age of a WebSocket connection.
pub const WS_MAX_AGE_DEFAULT_SECS: u64 = 7200;

/// HTTP API request payload limit (10 MB) → 413.
pub const HTTP_BODY_MAX: usize = 10 * 1024 * 1024;
/// HTTP API integration timeout → 503.
pub const HTTP_INTEGRATION_TIMEOUT_DEFAULT_SECS: u64 = 30;

/// Lambda defaults for a function that does not say.
pub const FUNCTION_TIMEOUT_DEFAULT_SECS: u64 = 30;
pub const FUNCTION_CONCURRENCY_DEFAULT: usize = 10;
pub const FUNCTION_MEMORY_DEFAULT_MB: u32 = 128;
