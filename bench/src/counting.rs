//! Call counters for the proxies the harness interposes between the
//! handlers and what they call ([`itest::StackBuilder::interpose_dynamodb`],
//! [`itest::StackBuilder::interpose_connections`],
//! [`itest::StackBuilder::interpose_s3`]): DynamoDB calls are counted by
//! `X-Amz-Target` and table, with read/write units; `@connections` calls by
//! method, with WebSocket message sizes; S3 requests by operation, bucket
//! and key prefix (`req/`, `res/`), whether the SDK or an agent through a
//! presigned URL made them.
//!
//! Read/write units: the backend's `ConsumedCapacity` when it reports one
//! (the handlers do not ask for it, and moto does not volunteer it), else an
//! estimate from item sizes with DynamoDB's rules: 1 WCU per started 1 KB
//! written, 1 RCU per started 4 KB read strongly consistent (half for an
//! eventually consistent read), at least one unit per call. Item sizes come
//! from the JSON on the wire (attribute names + values); an `UpdateItem` or
//! `DeleteItem` is charged for the item's size as last seen by the counter.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use itest::{Exchange, Observer};
use serde::Serialize;
use serde_json::Value;

use crate::cost::WEBSOCKET_METERING_BYTES;

/// Calls kept while recording (bounded: a recording covers one sequential phase).
const MAX_RECORDS: usize = 200_000;

/// What is behind the proxy, which decides how calls are labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// DynamoDB's JSON API: `X-Amz-Target` and `TableName`.
    DynamoDb,
    /// API Gateway's management API (`POST /{stage}/@connections/{id}`).
    Management,
    /// S3's REST API, path-style (`/{bucket}/{key}`), as the harness's
    /// clients and the URLs presigned through the proxy address it.
    S3,
}

/// Totals of one operation on one table (or one management call).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OpStats {
    pub calls: u64,
    pub errors: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Units estimated from item sizes (DynamoDB only).
    pub estimated_read_units: f64,
    pub estimated_write_units: f64,
    /// Units the backend reported in `ConsumedCapacity`, and on how many calls.
    pub reported_units: f64,
    pub reported_calls: u64,
    /// 32 KB increments of the request bodies (management posts only).
    pub metered_messages: u64,
    /// Time spent upstream, summed.
    pub upstream_ms: f64,
}

impl OpStats {
    fn minus(&self, before: &OpStats) -> OpStats {
        OpStats {
            calls: self.calls - before.calls,
            errors: self.errors - before.errors,
            request_bytes: self.request_bytes - before.request_bytes,
            response_bytes: self.response_bytes - before.response_bytes,
            estimated_read_units: self.estimated_read_units - before.estimated_read_units,
            estimated_write_units: self.estimated_write_units - before.estimated_write_units,
            reported_units: self.reported_units - before.reported_units,
            reported_calls: self.reported_calls - before.reported_calls,
            metered_messages: self.metered_messages - before.metered_messages,
            upstream_ms: self.upstream_ms - before.upstream_ms,
        }
    }
}

/// Which calls: the operation (`GetItem`, `POST @connections`,
/// `PutObject`) and, for DynamoDB, the table's prefix (one per stack) and
/// role (`connections`, `pending`); for S3, the bucket's prefix and the
/// key's first segment (`req`, `res`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpKey {
    pub operation: String,
    pub prefix: String,
    pub role: String,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub ops: BTreeMap<OpKey, OpStats>,
}

impl Counts {
    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Counts) -> Counts {
        let ops = self
            .ops
            .iter()
            .map(|(key, now)| {
                let delta = before.ops.get(key).map_or(now.clone(), |b| now.minus(b));
                (key.clone(), delta)
            })
            .filter(|(_, d)| d.calls > 0)
            .collect();
        Counts { ops }
    }

    /// Only the calls on tables with this prefix (one stack's).
    pub fn for_prefix(&self, prefix: &str) -> Counts {
        Counts {
            ops: self
                .ops
                .iter()
                .filter(|(k, _)| k.prefix == prefix)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Totals by operation (tables merged).
    pub fn by_operation(&self) -> BTreeMap<String, OpStats> {
        let mut out: BTreeMap<String, OpStats> = BTreeMap::new();
        for (key, stats) in &self.ops {
            let total = out.entry(key.operation.clone()).or_default();
            total.calls += stats.calls;
            total.errors += stats.errors;
            total.request_bytes += stats.request_bytes;
            total.response_bytes += stats.response_bytes;
            total.estimated_read_units += stats.estimated_read_units;
            total.estimated_write_units += stats.estimated_write_units;
            total.reported_units += stats.reported_units;
            total.reported_calls += stats.reported_calls;
            total.metered_messages += stats.metered_messages;
            total.upstream_ms += stats.upstream_ms;
        }
        out
    }

    pub fn calls(&self, operation: &str, role: &str) -> u64 {
        self.ops
            .iter()
            .filter(|(k, _)| k.operation == operation && k.role == role)
            .map(|(_, v)| v.calls)
            .sum()
    }
}

/// One call, kept while recording (for per-invocation spans).
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub operation: String,
    /// Table prefix (which stack).
    pub prefix: String,
    pub role: String,
    /// The key is a subdomain claim (`sub#…`): forwarding's lookup, not the
    /// response function's connection read.
    pub claim_key: bool,
    /// A write on pending keyed `<request id>#<connection id>` (the one
    /// answer item of the data path): only the response function writes those.
    pub composite_key: bool,
    pub start: Instant,
    pub end: Instant,
}

/// Counts the calls through one or more interposed proxies (one counter
/// may watch the DynamoDB proxies of several stacks: the table prefix tells
/// them apart).
pub struct CallCounter {
    kind: Upstream,
    counts: Mutex<Counts>,
    /// Last seen item size by table + key, for UpdateItem/DeleteItem units.
    sizes: Mutex<HashMap<String, usize>>,
    recording: AtomicBool,
    records: Mutex<Vec<CallRecord>>,
}

impl CallCounter {
    pub fn new(kind: Upstream) -> CallCounter {
        CallCounter {
            kind,
            counts: Mutex::default(),
            sizes: Mutex::default(),
            recording: AtomicBool::new(false),
            records: Mutex::default(),
        }
    }

    pub fn counts(&self) -> Counts {
        lock(&self.counts).clone()
    }

    /// Starts keeping every call (clears what was kept).
    pub fn start_recording(&self) {
        lock(&self.records).clear();
        self.recording.store(true, Ordering::SeqCst);
    }

    /// Stops keeping calls and returns them in completion order.
    pub fn stop_recording(&self) -> Vec<CallRecord> {
        self.recording.store(false, Ordering::SeqCst);
        std::mem::take(&mut *lock(&self.records))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Observer for CallCounter {
    fn observe(&self, exchange: &Exchange<'_>) {
        let Exchange {
            method,
            uri,
            request_headers,
            request_body: body,
            status,
            response_body,
            start,
            end,
        } = *exchange;
        let mut stats_delta = OpStats {
            calls: 1,
            errors: u64::from(!status.is_success()),
            request_bytes: body.len() as u64,
            response_bytes: response_body.len() as u64,
            upstream_ms: (end - start).as_secs_f64() * 1000.0,
            ..OpStats::default()
        };
        let mut composite_key = false;
        let (key, claim_key) = match self.kind {
            Upstream::Management => {
                stats_delta.metered_messages =
                    body.len().div_ceil(WEBSOCKET_METERING_BYTES).max(1) as u64;
                let operation = if uri.path().contains("/@connections/") {
                    format!("{method} @connections")
                } else {
                    format!("{method} {}", uri.path())
                };
                let key = OpKey {
                    operation,
                    prefix: String::new(),
                    role: String::new(),
                };
                (key, false)
            }
            Upstream::DynamoDb => {
                let operation = request_headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
                    .unwrap_or_else(|| "(no X-Amz-Target)".into());
                let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let response: Value = serde_json::from_slice(response_body).unwrap_or(Value::Null);
                let table = table_of(&request);
                let (prefix, role) = table.rsplit_once('-').unwrap_or(("", table));
                if let Some(units) = response["ConsumedCapacity"]["CapacityUnits"].as_f64() {
                    stats_delta.reported_units = units;
                    stats_delta.reported_calls = 1;
                }
                if status.is_success() || is_conditional_failure(response_body) {
                    let units = estimate_units(
                        &operation,
                        table,
                        role,
                        &request,
                        &response,
                        &mut lock(&self.sizes),
                    );
                    stats_delta.estimated_read_units = units.read;
                    stats_delta.estimated_write_units = units.write;
                }
                let claim_key = key_value(&request["Key"]).is_some_and(|k| k.starts_with("sub#"));
                composite_key = operation == "PutItem"
                    && handlers::manifest::TABLES
                        .iter()
                        .find(|t| t.role == role)
                        .and_then(|t| request["Item"][t.hash_key]["S"].as_str())
                        .is_some_and(|k| k.contains('#'));
                let key = OpKey {
                    operation,
                    prefix: prefix.to_string(),
                    role: role.to_string(),
                };
                (key, claim_key)
            }
            Upstream::S3 => {
                let host = request_headers
                    .get("host")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let (operation, bucket, role) = s3_call(method.as_str(), uri, host);
                let prefix = bucket.rsplit_once('-').map_or("", |(p, _)| p);
                let key = OpKey {
                    operation,
                    prefix: prefix.to_string(),
                    role,
                };
                (key, false)
            }
        };
        if self.recording.load(Ordering::Relaxed) {
            let mut records = lock(&self.records);
            if records.len() < MAX_RECORDS {
                records.push(CallRecord {
                    operation: key.operation.clone(),
                    prefix: key.prefix.clone(),
                    role: key.role.clone(),
                    claim_key,
                    composite_key,
                    start,
                    end,
                });
            }
        }
        let mut counts = lock(&self.counts);
        let total = counts.ops.entry(key).or_default();
        total.calls += stats_delta.calls;
        total.errors += stats_delta.errors;
        total.request_bytes += stats_delta.request_bytes;
        total.response_bytes += stats_delta.response_bytes;
        total.estimated_read_units += stats_delta.estimated_read_units;
        total.estimated_write_units += stats_delta.estimated_write_units;
        total.reported_units += stats_delta.reported_units;
        total.reported_calls += stats_delta.reported_calls;
        total.metered_messages += stats_delta.metered_messages;
        total.upstream_ms += stats_delta.upstream_ms;
    }
}

/// An S3 request's operation, bucket and key prefix (the key's first
/// segment: `req`, `res`), path-style (`/{bucket}/{key}`) or, when the Host
/// names a bucket (`{bucket}.s3…`), virtual-hosted.
pub fn s3_call(method: &str, uri: &axum::http::Uri, host: &str) -> (String, String, String) {
    let path = uri.path().trim_start_matches('/');
    let query = uri.query().unwrap_or("");
    let virtual_bucket = host
        .split_once('.')
        .filter(|(first, rest)| rest.starts_with("s3") && !first.is_empty())
        .map(|(first, _)| first);
    let (bucket, key) = match virtual_bucket {
        Some(bucket) => (bucket, path),
        None => path.split_once('/').unwrap_or((path, "")),
    };
    let has_key = !key.is_empty();
    let operation = match (method, has_key) {
        ("PUT", true) if query.contains("partNumber=") => "UploadPart",
        ("PUT", true) => "PutObject",
        ("GET", true) => "GetObject",
        ("HEAD", true) => "HeadObject",
        ("DELETE", true) => "DeleteObject",
        ("POST", false) if query.contains("delete") => "DeleteObjects",
        ("GET", false) => "ListObjects",
        (m, true) => return (format!("{m} object"), bucket.into(), first_segment(key)),
        (m, false) => return (format!("{m} bucket"), bucket.into(), String::new()),
    };
    (operation.into(), bucket.into(), first_segment(key))
}

fn first_segment(key: &str) -> String {
    key.split_once('/')
        .map_or("", |(first, _)| first)
        .to_string()
}

/// What S3 bills a request as: PUT-class (PUT, COPY, POST, LIST), free
/// (DELETE) or GET-class (everything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Class {
    Put,
    Get,
    Free,
}

pub fn s3_class(operation: &str) -> S3Class {
    match operation {
        "PutObject" | "UploadPart" | "ListObjects" | "POST bucket" | "POST object" => S3Class::Put,
        "DeleteObject" | "DeleteObjects" => S3Class::Free,
        _ => S3Class::Get,
    }
}

/// A failed condition still consumes write units.
fn is_conditional_failure(body: &[u8]) -> bool {
    body.windows(b"ConditionalCheckFailed".len())
        .any(|w| w == b"ConditionalCheckFailed")
}

/// The string value of a single-attribute key (`{"id": {"S": "x"}}`).
fn key_value(key: &Value) -> Option<&str> {
    key.as_object()?.values().next()?["S"].as_str()
}

/// Estimated units of one call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Units {
    pub read: f64,
    pub write: f64,
}

fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.div_ceil(4096).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

/// DynamoDB's rules applied to the sizes on the wire; `sizes` remembers the
/// last size of each item (by table and key) for updates and deletes.
/// The table a DynamoDB request is about: `TableName`, or for the batch
/// operations (which have none) the first table of `RequestItems` (the
/// handlers' batches each touch one table).
fn table_of(request: &Value) -> &str {
    request["TableName"].as_str().unwrap_or_else(|| {
        request["RequestItems"]
            .as_object()
            .and_then(|tables| tables.keys().next())
            .map_or("", String::as_str)
    })
}

pub fn estimate_units(
    operation: &str,
    table: &str,
    role: &str,
    request: &Value,
    response: &Value,
    sizes: &mut HashMap<String, usize>,
) -> Units {
    let hash_key = handlers::manifest::TABLES
        .iter()
        .find(|t| t.role == role)
        .map(|t| t.hash_key);
    let item_key = |key: Option<&str>| format!("{table}\u{0}{}", key.unwrap_or(""));
    match operation {
        "GetItem" => {
            let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
            let size = item_size(&response["Item"]);
            if response.get("Item").is_some() {
                sizes.insert(item_key(key_value(&request["Key"])), size);
            }
            Units {
                read: read_units(size, consistent),
                write: 0.0,
            }
        }
        "Query" | "Scan" => {
            let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
            let size = response["Items"]
                .as_array()
                .map_or(0, |items| items.iter().map(item_size).sum());
            Units {
                read: read_units(size, consistent),
                write: 0.0,
            }
        }
        "BatchGetItem" => {
            // Each item is charged on its own, by its table's consistency.
            let read = response["Responses"].as_object().map_or(0.0, |tables| {
                tables
                    .iter()
                    .map(|(name, items)| {
                        let consistent = request["RequestItems"][name]["ConsistentRead"]
                            .as_bool()
                            .unwrap_or(false);
                        items.as_array().map_or(0.0, |items| {
                            items
                                .iter()
                                .map(|item| read_units(item_size(item), consistent))
                                .sum()
                        })
                    })
                    .sum()
            });
            Units { read, write: 0.0 }
        }
        "PutItem" => {
            let item = &request["Item"];
            let size = item_size(item);
            let key = hash_key.and_then(|k| item[k]["S"].as_str());
            let old = sizes.insert(item_key(key), size).unwrap_or(0);
            Units {
                read: 0.0,
                write: write_units(size.max(old)),
            }
        }
        "UpdateItem" => {
            let key = item_key(key_value(&request["Key"]));
            let old = sizes.get(&key).copied().unwrap_or(0);
            // New values, each with an attribute name of about this length.
            const NAME: usize = 12;
            let added: usize = request["ExpressionAttributeValues"]
                .as_object()
                .map_or(0, |values| {
                    values.values().map(|v| NAME + attr_value_size(v)).sum()
                });
            let new = old.max(item_size(&request["Key"])) + added;
            sizes.insert(key, new);
            Units {
                read: 0.0,
                write: write_units(new.max(old)),
            }
        }
        "DeleteItem" => {
            let old = sizes
                .remove(&item_key(key_value(&request["Key"])))
                .unwrap_or(0);
            Units {
                read: 0.0,
                write: write_units(old),
            }
        }
        _ => Units::default(),
    }
}

/// DynamoDB's item size: attribute name lengths plus value sizes.
pub fn item_size(item: &Value) -> usize {
    item.as_object().map_or(0, |attributes| {
        attributes
            .iter()
            .map(|(name, value)| name.len() + attr_value_size(value))
            .sum()
    })
}

/// Size of one typed value (`{"S": "…"}`), by DynamoDB's sizing rules
/// (numbers about one byte per two digits plus one).
pub fn attr_value_size(value: &Value) -> usize {
    let Some((kind, v)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let string_len = |v: &Value| v.as_str().map_or(0, str::len);
    let number_len = |v: &Value| {
        v.as_str()
            .map_or(0, |n| n.trim_start_matches('-').len().div_ceil(2) + 1)
    };
    let binary_len = |v: &Value| v.as_str().map_or(0, |b| b.len() / 4 * 3);
    let sum =
        |v: &Value, f: &dyn Fn(&Value) -> usize| v.as_array().map_or(0, |a| a.iter().map(f).sum());
    match kind.as_str() {
        "S" => string_len(v),
        "N" => number_len(v),
        "B" => binary_len(v),
        "BOOL" | "NULL" => 1,
        "SS" => sum(v, &string_len),
        "NS" => sum(v, &number_len),
        "BS" => sum(v, &binary_len),
        "M" => {
            3 + v.as_object().map_or(0, |m| {
                m.iter()
                    .map(|(name, value)| name.len() + attr_value_size(value) + 1)
                    .sum()
            })
        }
        "L" => 3 + sum(v, &|value| attr_value_size(value) + 1),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn s3_requests_are_named_and_classed_as_billed() {
        let call = |method: &str, uri: &str, host: &str| {
            s3_call(method, &uri.parse::<axum::http::Uri>().unwrap(), host)
        };
        // (method, path and query, Host) → (operation, bucket, key prefix).
        let cases = [
            // Path-style, as the harness's clients and presigned URLs address it.
            (
                ("PUT", "/p1-bodies/req/abc", "127.0.0.1:9"),
                ("PutObject", "p1-bodies", "req"),
            ),
            (
                ("GET", "/p1-bodies/res/abc?X-Amz-Signature=x", "127.0.0.1:9"),
                ("GetObject", "p1-bodies", "res"),
            ),
            (
                ("DELETE", "/p1-bodies/res/abc", "h"),
                ("DeleteObject", "p1-bodies", "res"),
            ),
            (
                ("GET", "/p1-bodies?list-type=2", "h"),
                ("ListObjects", "p1-bodies", ""),
            ),
            (
                ("PUT", "/p1-bodies/res/abc?partNumber=2&uploadId=u", "h"),
                ("UploadPart", "p1-bodies", "res"),
            ),
            // Virtual-hosted: the bucket is in the Host.
            (
                ("HEAD", "/req/abc", "p1-bodies.s3.us-east-1.amazonaws.com"),
                ("HeadObject", "p1-bodies", "req"),
            ),
        ];
        for ((method, uri, host), (op, bucket, role)) in cases {
            assert_eq!(
                call(method, uri, host),
                (op.to_string(), bucket.to_string(), role.to_string()),
                "{method} {uri} on {host}"
            );
        }
        assert_eq!(s3_class("PutObject"), S3Class::Put);
        assert_eq!(s3_class("ListObjects"), S3Class::Put);
        assert_eq!(s3_class("GetObject"), S3Class::Get);
        assert_eq!(s3_class("HeadObject"), S3Class::Get);
        assert_eq!(s3_class("DeleteObject"), S3Class::Free);
    }

    #[test]
    fn a_put_keyed_request_and_more_is_recorded_as_the_response_functions() {
        let counter = CallCounter::new(Upstream::DynamoDb);
        let headers = {
            let mut h = axum::http::HeaderMap::new();
            h.insert("x-amz-target", "DynamoDB_20120810.PutItem".parse().unwrap());
            h
        };
        let put = |id: &str| {
            json!({"TableName": "p1-pending", "Item": {"body": {"S": "x"}, "requestId": {"S": id}}})
                .to_string()
        };
        let observe = |body: &str| {
            let now = Instant::now();
            counter.observe(&Exchange {
                method: &axum::http::Method::POST,
                uri: &"/".parse().unwrap(),
                request_headers: &headers,
                request_body: body.as_bytes(),
                status: axum::http::StatusCode::OK,
                response_body: b"{}",
                start: now,
                end: now,
            });
        };
        counter.start_recording();
        observe(&put("r1"));
        observe(&put("r1#conn"));
        let records = counter.stop_recording();
        assert_eq!(
            records.iter().map(|r| r.composite_key).collect::<Vec<_>>(),
            [false, true]
        );
        assert_eq!(counter.counts().calls("PutItem", "pending"), 2);
    }

    #[test]
    fn item_sizes_follow_dynamodb_rules() {
        let item = json!({
            "requestId": {"S": "0123456789"},
            "ttl": {"N": "1700000000"},
            "ok": {"BOOL": true},
            "m": {"M": {"a": {"S": "xy"}}},
        });
        // 9+10, 3+6, 2+1, 1+(3+1+2+1)
        assert_eq!(item_size(&item), 19 + 9 + 3 + 8);
    }

    #[test]
    fn units_round_up_and_follow_the_item() {
        let mut sizes = HashMap::new();
        let big = "x".repeat(1500);
        let put = json!({"TableName": "p-pending", "Item": {"requestId": {"S": "r1"}, "data": {"S": big}}});
        let units = estimate_units(
            "PutItem",
            "p-pending",
            "pending",
            &put,
            &Value::Null,
            &mut sizes,
        );
        assert_eq!(units.write, 2.0);

        let get = json!({"Key": {"requestId": {"S": "r1"}}, "ConsistentRead": true});
        let got = json!({"Item": {"requestId": {"S": "r1"}, "data": {"S": "x"}}});
        let units = estimate_units("GetItem", "p-pending", "pending", &get, &got, &mut sizes);
        assert_eq!(units.read, 1.0);
        let eventually = json!({"Key": {"requestId": {"S": "r1"}}});
        let units = estimate_units(
            "GetItem",
            "p-pending",
            "pending",
            &eventually,
            &json!({}),
            &mut sizes,
        );
        assert_eq!(units.read, 0.5, "a missing item still costs half a unit");

        let update = json!({"Key": {"requestId": {"S": "r1"}},
            "ExpressionAttributeValues": {":d": {"S": "y".repeat(3000)}}});
        let units = estimate_units(
            "UpdateItem",
            "p-pending",
            "pending",
            &update,
            &json!({}),
            &mut sizes,
        );
        assert_eq!(units.write, 3.0);
        let delete = json!({"Key": {"requestId": {"S": "r1"}}});
        let units = estimate_units(
            "DeleteItem",
            "p-pending",
            "pending",
            &delete,
            &json!({}),
            &mut sizes,
        );
        assert_eq!(units.write, 3.0);
        assert!(sizes.is_empty());

        let batch = json!({"RequestItems": {"p-pending": {"ConsistentRead": true}}});
        // Batches name their table inside RequestItems: still one stack's.
        assert_eq!(table_of(&batch), "p-pending");
        assert_eq!(
            table_of(&json!({"TableName": "p-connections"})),
            "p-connections"
        );
        assert_eq!(table_of(&json!({})), "");
        let got = json!({"Responses": {"p-pending": [
            {"requestId": {"S": "c1"}, "data": {"S": "z".repeat(5000)}},
            {"requestId": {"S": "c2"}},
        ]}});
        let units = estimate_units("BatchGetItem", "", "", &batch, &got, &mut sizes);
        assert_eq!(units.read, 3.0);
    }
}
