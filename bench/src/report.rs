//! What a run produces: the JSON document and its text/Markdown tables.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::{
    cost::{self, CostPerMillion, Usage},
    handover::HandoverReport,
    stats::{Added, Summary},
};

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: Option<f64>,
    pub kernel: Option<String>,
    pub rustc: Option<String>,
    /// `/proc/loadavg` (1, 5, 15 min) when the run ended: other work on the
    /// machine skews the figures.
    pub load_average: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    /// Response body bytes.
    pub size_bytes: usize,
    /// Request body bytes (0 for a `GET`).
    pub request_bytes: usize,
    /// `1 KB` (a response of that size) or `64 KB request`.
    pub size: String,
    pub supported: bool,
    /// `not supported (status 502: …)` when the tunnel cannot carry it.
    pub not_supported: Option<String>,
    pub direct: Option<Summary>,
    pub tunnel: Option<Summary>,
    /// Tunnel minus direct, percentile by percentile.
    pub added: Option<Added>,
    pub errors: u64,
    pub per_request: Option<PerRequest>,
    pub cost_per_million: Option<CostPerMillion>,
}

/// Averages per visitor request over a sequential phase.
#[derive(Debug, Clone, Serialize)]
pub struct PerRequest {
    pub requests: u64,
    /// DynamoDB calls by API operation (`GetItem`, …), measured.
    pub dynamodb_calls: BTreeMap<String, f64>,
    /// S3 requests by operation and key prefix (`PutObject req/`), measured
    /// (counting proxy on the S3 endpoint, presigned transfers included).
    pub s3_calls: BTreeMap<String, f64>,
    pub units_source: String,
    /// Lambda invocations by function, measured (emulator counters).
    pub lambda_invocations: BTreeMap<String, f64>,
    /// How many response-function invocations the duration is averaged over.
    pub response_span_samples: usize,
    pub usage: Usage,
}

#[derive(Debug, Clone, Serialize)]
pub struct PollingRow {
    pub case: String,
    pub strategy: String,
    pub tunnel: Option<Summary>,
    pub added: Option<Added>,
    /// `GetItem`s on the pending table per request.
    pub polls_per_request: f64,
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputCell {
    pub agents: usize,
    pub visitors: usize,
    pub seconds: f64,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub requests_per_second: f64,
    pub latency: Option<Summary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColdStartRow {
    pub function: String,
    pub profile: String,
    /// Spawn → first `/next` (emulator counters), over every process started.
    pub init_ms: Option<Summary>,
    pub binary: String,
    pub binary_bytes: Option<u64>,
    pub zip: String,
    pub zip_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prices {
    pub as_of: &'static str,
    pub http_api_per_million: f64,
    pub websocket_message_per_million: f64,
    pub websocket_connection_minute_per_million: f64,
    pub lambda_request_per_million: f64,
    pub lambda_arm_gb_second: f64,
    pub dynamodb_write_unit_per_million: f64,
    pub dynamodb_read_unit_per_million: f64,
    pub s3_put_per_million: f64,
    pub s3_get_per_million: f64,
}

impl Prices {
    pub fn current() -> Prices {
        Prices {
            as_of: cost::PRICES_AS_OF,
            http_api_per_million: cost::HTTP_API_PER_REQUEST * 1e6,
            websocket_message_per_million: cost::WEBSOCKET_PER_MESSAGE * 1e6,
            websocket_connection_minute_per_million: cost::WEBSOCKET_PER_CONNECTION_MINUTE * 1e6,
            lambda_request_per_million: cost::LAMBDA_PER_REQUEST * 1e6,
            lambda_arm_gb_second: cost::LAMBDA_ARM_PER_GB_SECOND,
            dynamodb_write_unit_per_million: cost::DYNAMODB_PER_WRITE_UNIT * 1e6,
            dynamodb_read_unit_per_million: cost::DYNAMODB_PER_READ_UNIT * 1e6,
            s3_put_per_million: cost::S3_PER_PUT * 1e6,
            s3_get_per_million: cost::S3_PER_GET * 1e6,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated_at: String,
    pub command: String,
    pub quick: bool,
    pub machine: Machine,
    pub dynamodb_backend: String,
    pub handlers_profile: String,
    pub memory_mb: BTreeMap<String, u32>,
    pub memory_source: String,
    pub latency: Vec<LatencyRow>,
    pub polling: Vec<PollingRow>,
    pub throughput: Vec<ThroughputCell>,
    pub cold_starts: Vec<ColdStartRow>,
    /// Failed requests across forced handovers (expected 0).
    pub handover: HandoverReport,
    pub prices: Prices,
    /// Which figures are measured and which estimated.
    pub method: Vec<String>,
}

/// What is measured and what is estimated (printed and kept in the JSON).
pub fn method_notes() -> Vec<String> {
    vec![
        "Latency: wall clock at the visitor (reqwest, keep-alive) on loopback; direct and tunnel requests alternate in one run; added = tunnel percentile minus direct percentile.".into(),
        "DynamoDB calls per request and Lambda invocations per function: measured (counting proxy on the DynamoDB endpoint; emulator counters), averaged over the sequential latency phase.".into(),
        "PostToConnection messages: measured (counting proxy on @connections) with their 32 KB increments; agent → API Gateway messages = response-function invocations (measured), their 32 KB increments estimated from the body size as the agent sends it (one message of base64 + 512 B, or a 512 B head when the body was uploaded to S3).".into(),
        "S3 requests per request: measured (counting proxy on the S3 endpoint; the URLs forwarding presigns point at it, so the agents' transfers are counted too), priced as S3 Standard: PUT-class $0.005 per 1,000, GET-class $0.0004 per 1,000, DELETE free, storage negligible (objects live seconds).".into(),
        "Read/write units: estimated from item sizes on the wire (1 WCU per started 1 KB written, 1 RCU per started 4 KB read strongly consistent, an UpdateItem or DeleteItem charged for the item as last seen); the handlers do not ask for ConsumedCapacity and moto's unasked-for 0.5 on UpdateItem is a constant, so it is reported in the JSON but not used.".into(),
        "Lambda duration: forwarding = mean visitor-side tunnel latency (an upper bound: the function waits for the whole round trip); response = mean time of its DynamoDB calls seen by the proxy (for an http_response: the conditional UpdateItem; a lower bound: excludes event parsing and the runtime API round trip); each rounded up to 1 ms. The emulator has no per-invocation durations.".into(),
        "Request bodies: POST of n bytes to the service, which answers 1 KB only when all n arrived; the HTTP API is metered by the larger of request and answer (512 KB increments).".into(),
        "Cost: AWS list prices (see prices), free tiers ignored; WebSocket connection minutes are per connected agent ($0.000015 per agent-hour), not per request, so they are not in the per-request total.".into(),
        "Handovers: one agent on a stack whose emulator ends connections after max_connection_age_secs (told to the agent), under the harness's load (itest::Load, as the end-to-end handover tests); a request fails unless it gets 200 with its own answer; handovers and dropped are the agent's Renewed events.".into(),
        "Local DynamoDB is moto (one Python process, ~ms per call): it bounds throughput and inflates latency compared with DynamoDB in AWS.".into(),
    ]
}

fn ms(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn bytes(v: Option<u64>) -> String {
    match v {
        Some(b) if b >= 1024 * 1024 => format!("{:.1} MiB", b as f64 / 1048576.0),
        Some(b) => format!("{:.0} KiB", b as f64 / 1024.0),
        None => "not built — run just lambda".into(),
    }
}

impl Report {
    /// Markdown tables (also what the terminal shows).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "Machine: {} CPUs ({}), {} GiB RAM, kernel {}, {}, load average {} at the end. Handlers: {} build. DynamoDB: {}. {}{}.\n",
            m.cpus,
            m.cpu_model,
            m.memory_gib.map_or("?".into(), |g| g.to_string()),
            m.kernel.as_deref().unwrap_or("?"),
            m.rustc.as_deref().unwrap_or("rustc ?"),
            m.load_average.as_deref().unwrap_or("?"),
            self.handlers_profile,
            self.dynamodb_backend,
            self.generated_at,
            if self.quick { " (--quick)" } else { "" },
        );

        let _ = writeln!(out, "### Added latency (tunnel minus direct, ms)\n");
        let _ = writeln!(
            out,
            "| body | samples | direct p50 | tunnel p50 / p90 / p99 | added p50 | added p90 | added p99 | errors |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for row in &self.latency {
            match (&row.not_supported, &row.direct, &row.tunnel, &row.added) {
                (Some(reason), ..) => {
                    let _ = writeln!(out, "| {} | | | {reason} | | | | |", row.size);
                }
                (None, Some(d), Some(t), Some(a)) => {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} / {} / {} | {} | {} | {} | {} |",
                        row.size,
                        t.samples,
                        ms(d.p50_ms),
                        ms(t.p50_ms),
                        ms(t.p90_ms),
                        ms(t.p99_ms),
                        ms(a.p50_ms),
                        ms(a.p90_ms),
                        ms(a.p99_ms),
                        row.errors
                    );
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "| {} | | | every request failed | | | | {} |",
                        row.size, row.errors
                    );
                }
            }
        }

        let _ = writeln!(
            out,
            "\n### Polling strategy (same run, requests interleaved)\n"
        );
        let _ = writeln!(
            out,
            "| case | strategy | tunnel p50 / p90 / p99 ms | added p50 ms | polls per request | errors |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for row in &self.polling {
            let tunnel = row.tunnel.map_or("—".into(), |t| {
                format!("{} / {} / {}", ms(t.p50_ms), ms(t.p90_ms), ms(t.p99_ms))
            });
            let added = row.added.map_or("—".into(), |a| ms(a.p50_ms));
            let _ = writeln!(
                out,
                "| {} | {} | {tunnel} | {added} | {:.2} | {} |",
                row.case, row.strategy, row.polls_per_request, row.errors
            );
        }

        let _ = writeln!(out, "\n### Throughput (1 KB responses)\n");
        let _ = writeln!(
            out,
            "| agents | visitors | requests/s | ok | errors | p50 ms | p99 ms |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for c in &self.throughput {
            let kinds: Vec<String> = c
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{v}× {k}"))
                .collect();
            let errors = if kinds.is_empty() {
                c.errors.to_string()
            } else {
                format!("{} ({})", c.errors, kinds.join(", "))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {} | {errors} | {} | {} |",
                c.agents,
                c.visitors,
                c.requests_per_second,
                c.ok,
                c.latency.map_or("—".into(), |l| ms(l.p50_ms)),
                c.latency.map_or("—".into(), |l| ms(l.p99_ms)),
            );
        }

        out.push_str(&self.handover.markdown());

        let _ = writeln!(
            out,
            "\n### Per request: DynamoDB, Lambda, messages (measured) and cost (estimated)\n"
        );
        let _ = writeln!(
            out,
            "| body | DynamoDB calls | RCU / WCU (estimated) | S3 requests | Lambda invocations | forwarding / response ms | WebSocket messages out / in (32 KB units) | $ per million requests |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for row in &self.latency {
            let (Some(p), Some(c)) = (&row.per_request, &row.cost_per_million) else {
                continue;
            };
            let calls: Vec<String> = p
                .dynamodb_calls
                .iter()
                .map(|(op, n)| format!("{op} {n:.2}"))
                .collect();
            let invocations: Vec<String> = p
                .lambda_invocations
                .iter()
                .filter(|(_, n)| **n > 0.0)
                .map(|(f, n)| format!("{f} {n:.2}"))
                .collect();
            let s3: Vec<String> = p
                .s3_calls
                .iter()
                .map(|(op, n)| format!("{op} {n:.2}"))
                .collect();
            let s3 = if s3.is_empty() {
                "none".to_string()
            } else {
                s3.join(", ")
            };
            let u = &p.usage;
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} / {:.2} | {s3} | {} | {} / {} | {:.2} / {:.2} | **{:.2}** (HTTP API {:.2}, WebSocket {:.2}, Lambda {:.2} + {:.2} duration, DynamoDB {:.2} read + {:.2} write, S3 {:.2}) |",
                row.size,
                calls.join(", "),
                u.read_units,
                u.write_units,
                invocations.join(", "),
                ms(u.forwarding_ms),
                ms(u.response_ms),
                u.metered_messages_out,
                u.metered_messages_in,
                c.total,
                c.http_api,
                c.websocket_messages,
                c.lambda_requests,
                c.lambda_duration,
                c.dynamodb_reads,
                c.dynamodb_writes,
                c.s3_requests,
            );
        }
        let _ = writeln!(
            out,
            "\nMemory: {} ({}). An idle connected agent costs ${:.6} per hour in WebSocket connection minutes (plus a heartbeat message every few minutes).",
            self.memory_mb
                .iter()
                .map(|(f, mb)| format!("{f} {mb} MB"))
                .collect::<Vec<_>>()
                .join(", "),
            self.memory_source,
            cost::WEBSOCKET_PER_CONNECTION_MINUTE * 60.0,
        );

        let _ = writeln!(out, "\n### Cold start (spawn → first `/next`) and sizes\n");
        let _ = writeln!(
            out,
            "| function | profile | starts | init p50 ms | init max ms | binary | zip |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for c in &self.cold_starts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                c.function,
                c.profile,
                c.init_ms.map_or(0, |s| s.samples),
                c.init_ms.map_or("—".into(), |s| ms(s.p50_ms)),
                c.init_ms.map_or("—".into(), |s| ms(s.max_ms)),
                bytes(c.binary_bytes),
                bytes(c.zip_bytes),
            );
        }
        out
    }
}
