//! AWS list prices (us-east-1) and the cost of one request from measured
//! counts.
//!
//! Prices as of 2026-11 (the DynamoDB on-demand prices are those after the
//! November 2024 cut). Sources: <https://aws.amazon.com/api-gateway/pricing/>
//! (HTTP API $1.00 per million for the first 300 million, metered in 512 KB
//! increments; WebSocket $1.00 per million messages for the first billion,
//! metered in 32 KB increments, and $0.25 per million connection minutes),
//! <https://aws.amazon.com/lambda/pricing/> (requests, Arm duration, first
//! tier), <https://aws.amazon.com/dynamodb/pricing/on-demand/> (standard table
//! class), <https://aws.amazon.com/s3/pricing/> (S3 Standard requests: PUT,
//! COPY, POST, LIST $0.005 per 1,000; GET, SELECT and the others $0.0004 per
//! 1,000; DELETE free; the bodies live seconds, so storage is negligible).
//! Free tiers are ignored.

use std::{collections::BTreeMap, path::Path};

use serde::Serialize;

/// HTTP API: dollars per request (first 300 million a month).
pub const HTTP_API_PER_REQUEST: f64 = 1.00 / 1e6;
/// HTTP API requests are metered in 512 KB increments.
pub const HTTP_API_METERING_BYTES: usize = 512 * 1024;
/// WebSocket API: dollars per message (sent or received), first billion.
pub const WEBSOCKET_PER_MESSAGE: f64 = 1.00 / 1e6;
/// WebSocket API messages are metered in 32 KB increments.
pub const WEBSOCKET_METERING_BYTES: usize = 32 * 1024;
/// WebSocket API: dollars per connection minute.
pub const WEBSOCKET_PER_CONNECTION_MINUTE: f64 = 0.25 / 1e6;
/// Lambda: dollars per invocation.
pub const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
/// Lambda arm64: dollars per GB-second (first 7.5 billion GB-s a month).
pub const LAMBDA_ARM_PER_GB_SECOND: f64 = 0.000_013_333_4;
/// Lambda bills duration in 1 ms increments.
pub const LAMBDA_BILLING_MS: f64 = 1.0;
/// DynamoDB on-demand: dollars per write request unit (since Nov 2024).
pub const DYNAMODB_PER_WRITE_UNIT: f64 = 0.625 / 1e6;
/// DynamoDB on-demand: dollars per read request unit (since Nov 2024).
pub const DYNAMODB_PER_READ_UNIT: f64 = 0.125 / 1e6;
/// S3 Standard: dollars per PUT (also COPY, POST, LIST).
pub const S3_PER_PUT: f64 = 0.005 / 1000.0;
/// S3 Standard: dollars per GET (also HEAD, SELECT and every other request
/// but DELETE, which is free).
pub const S3_PER_GET: f64 = 0.0004 / 1000.0;
/// When the prices above were last checked.
pub const PRICES_AS_OF: &str =
    "2026-11 (AWS list prices, us-east-1; DynamoDB after the Nov 2024 cut)";

/// Terraform defaults used when `variables.tf` cannot be read.
pub const FALLBACK_MEMORY_MB: u32 = 128;
pub const FALLBACK_FORWARDING_MEMORY_MB: u32 = 256;

/// Memory of each function from `terraform/modules/tunnel/variables.tf`
/// (`memory_size` for connect, disconnect and response, `forwarding_memory_size`
/// for forwarding), and where the numbers came from.
pub fn memory_sizes(workspace: &Path) -> (BTreeMap<String, u32>, String) {
    let path = workspace.join("terraform/modules/tunnel/variables.tf");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let common = variable_default(&text, "memory_size");
    let forwarding = variable_default(&text, "forwarding_memory_size");
    let source = match (common, forwarding) {
        (Some(_), Some(_)) => format!("defaults in {}", "terraform/modules/tunnel/variables.tf"),
        _ => format!(
            "built-in fallback ({FALLBACK_MEMORY_MB}/{FALLBACK_FORWARDING_MEMORY_MB} MB): could not read the defaults from {}",
            path.display()
        ),
    };
    let common = common.unwrap_or(FALLBACK_MEMORY_MB);
    let forwarding = forwarding.unwrap_or(FALLBACK_FORWARDING_MEMORY_MB);
    let sizes = handlers::manifest::FUNCTIONS
        .iter()
        .map(|f| {
            let mb = if f.name == handlers::manifest::FORWARDING.name {
                forwarding
            } else {
                common
            };
            (f.name.to_string(), mb)
        })
        .collect();
    (sizes, source)
}

/// The numeric `default` of `variable "name" { … }` in HCL text.
pub fn variable_default(hcl: &str, name: &str) -> Option<u32> {
    let start = hcl.find(&format!("variable \"{name}\""))?;
    let block = &hcl[start..];
    let block = &block[..block.find("\n}").unwrap_or(block.len())];
    block.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "default")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// What one visitor request uses, per request (averages over a phase).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    /// Response body bytes (for metering increments).
    pub body_bytes: usize,
    /// Request body bytes (for metering increments).
    pub request_bytes: usize,
    pub forwarding_invocations: f64,
    pub response_invocations: f64,
    /// Billed duration of one invocation, ms (rounded up to 1 ms).
    pub forwarding_ms: f64,
    pub response_ms: f64,
    pub forwarding_memory_mb: u32,
    pub response_memory_mb: u32,
    /// PostToConnection calls and their 32 KB increments.
    pub messages_out: f64,
    pub metered_messages_out: f64,
    /// Agent → API Gateway messages (one per response λ invocation) and
    /// their 32 KB increments (estimated from the body size).
    pub messages_in: f64,
    pub metered_messages_in: f64,
    pub read_units: f64,
    pub write_units: f64,
    /// S3 requests on the bodies bucket (forwarding's and the agent's through
    /// presigned URLs): PUT-class, GET-class and DELETE (free).
    pub s3_puts: f64,
    pub s3_gets: f64,
    pub s3_deletes: f64,
}

/// Dollars per million requests, by service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CostPerMillion {
    pub http_api: f64,
    pub websocket_messages: f64,
    pub lambda_requests: f64,
    pub lambda_duration: f64,
    pub dynamodb_reads: f64,
    pub dynamodb_writes: f64,
    pub s3_requests: f64,
    pub total: f64,
}

impl CostPerMillion {
    pub fn of(usage: &Usage) -> CostPerMillion {
        let million = 1e6;
        // Metered by the larger of the request and the answer (512 KB
        // increments); a body-less request is one.
        let http_increments = usage
            .body_bytes
            .max(usage.request_bytes)
            .div_ceil(HTTP_API_METERING_BYTES)
            .max(1) as f64;
        let gb_seconds = |ms: f64, mb: u32| {
            let billed = (ms / LAMBDA_BILLING_MS).ceil() * LAMBDA_BILLING_MS;
            billed / 1000.0 * f64::from(mb) / 1024.0
        };
        let http_api = million * HTTP_API_PER_REQUEST * http_increments;
        let websocket_messages = million
            * WEBSOCKET_PER_MESSAGE
            * (usage.metered_messages_out + usage.metered_messages_in);
        let lambda_requests = million
            * LAMBDA_PER_REQUEST
            * (usage.forwarding_invocations + usage.response_invocations);
        let lambda_duration = million
            * LAMBDA_ARM_PER_GB_SECOND
            * (usage.forwarding_invocations
                * gb_seconds(usage.forwarding_ms, usage.forwarding_memory_mb)
                + usage.response_invocations
                    * gb_seconds(usage.response_ms, usage.response_memory_mb));
        let dynamodb_reads = million * DYNAMODB_PER_READ_UNIT * usage.read_units;
        let dynamodb_writes = million * DYNAMODB_PER_WRITE_UNIT * usage.write_units;
        let s3_requests = million * (S3_PER_PUT * usage.s3_puts + S3_PER_GET * usage.s3_gets);
        CostPerMillion {
            http_api,
            websocket_messages,
            lambda_requests,
            lambda_duration,
            dynamodb_reads,
            dynamodb_writes,
            s3_requests,
            total: http_api
                + websocket_messages
                + lambda_requests
                + lambda_duration
                + dynamodb_reads
                + dynamodb_writes
                + s3_requests,
        }
    }
}

/// JSON around a response's body (status, headers, ids), estimated.
const RESPONSE_ENVELOPE_BYTES: usize = 512;

/// The agent's answer for a body of `n` bytes sent whole: base64 plus JSON
/// around it.
fn estimated_response_message_bytes(body_bytes: usize) -> usize {
    body_bytes.div_ceil(3) * 4 + RESPONSE_ENVELOPE_BYTES
}

/// The sizes of the messages the agent sends for a body of `n` bytes, as it
/// sends them: a head alone when the body went to S3 (`uploaded`: the S3
/// counter saw its PUT), else the whole answer in one message (an answer too
/// large for one message without an upload is a 502: there is no chunking).
pub fn estimated_response_messages(body_bytes: usize, uploaded: bool) -> Vec<usize> {
    if uploaded {
        vec![RESPONSE_ENVELOPE_BYTES]
    } else {
        vec![estimated_response_message_bytes(body_bytes)]
    }
}

/// WebSocket messages as API Gateway meters them (32 KB increments).
pub fn metered_messages(sizes: &[usize]) -> usize {
    sizes
        .iter()
        .map(|s| s.div_ceil(WEBSOCKET_METERING_BYTES).max(1))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_terraform_defaults() {
        let hcl = "variable \"memory_size\" {\n  type = number\n  default     = 128\n}\n\nvariable \"forwarding_memory_size\" {\n  description = \"x = y\"\n  default = 256\n}\n";
        assert_eq!(variable_default(hcl, "memory_size"), Some(128));
        assert_eq!(variable_default(hcl, "forwarding_memory_size"), Some(256));
        assert_eq!(variable_default(hcl, "timeout"), None);
        let (sizes, source) = memory_sizes(&itest::paths::workspace_root());
        assert!(source.starts_with("defaults in"), "{source}");
        assert_eq!(sizes.len(), 4);
    }

    #[test]
    fn answers_are_metered_as_one_message_or_a_head() {
        // 1 KB inline: one message, one 32 KB unit.
        let inline = estimated_response_messages(1024, false);
        assert_eq!(inline.len(), 1);
        assert_eq!(metered_messages(&inline), 1);
        // 64 KB inline (an old-style answer): base64 + envelope, 3 units.
        assert_eq!(
            metered_messages(&estimated_response_messages(64 << 10, false)),
            3
        );
        // Uploaded to S3: only the head crosses the WebSocket.
        assert_eq!(
            metered_messages(&estimated_response_messages(1 << 20, true)),
            1
        );
    }

    #[test]
    fn cost_of_a_small_request() {
        let usage = Usage {
            body_bytes: 1024,
            request_bytes: 0,
            forwarding_invocations: 1.0,
            response_invocations: 1.0,
            forwarding_ms: 19.2,
            response_ms: 7.5,
            forwarding_memory_mb: 256,
            response_memory_mb: 128,
            messages_out: 1.0,
            metered_messages_out: 1.0,
            messages_in: 1.0,
            metered_messages_in: 1.0,
            read_units: 3.0,
            write_units: 3.0,
            s3_puts: 0.0,
            s3_gets: 0.0,
            s3_deletes: 0.0,
        };
        let cost = CostPerMillion::of(&usage);
        assert!((cost.http_api - 1.0).abs() < 1e-9);
        assert!((cost.websocket_messages - 2.0).abs() < 1e-9);
        assert!((cost.lambda_requests - 0.4).abs() < 1e-9);
        // 20 ms × 0.25 GB + 8 ms × 0.125 GB = 0.006 GB-s per request.
        assert!((cost.lambda_duration - 0.006 * 13.3334).abs() < 1e-6);
        assert!((cost.dynamodb_writes - 1.875).abs() < 1e-9);
        assert!((cost.dynamodb_reads - 0.375).abs() < 1e-9);
        assert_eq!(cost.s3_requests, 0.0);
        assert!((cost.total - (1.0 + 2.0 + 0.4 + 0.006 * 13.3334 + 1.875 + 0.375)).abs() < 1e-6);

        // A 1 MB request body through S3: a PUT and a GET ($5.40 per
        // million), the DELETE free; the HTTP API meters 2 × 512 KB.
        let large = Usage {
            request_bytes: 1 << 20,
            s3_puts: 1.0,
            s3_gets: 1.0,
            s3_deletes: 1.0,
            ..usage
        };
        let cost = CostPerMillion::of(&large);
        assert!(
            (cost.s3_requests - 5.4).abs() < 1e-9,
            "{}",
            cost.s3_requests
        );
        assert!((cost.http_api - 2.0).abs() < 1e-9);
    }
}
