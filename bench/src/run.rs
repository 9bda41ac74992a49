//! The benchmark phases: cold starts, added latency by body size, polling
//! strategies, DynamoDB operations and cost per request, throughput.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use axum::body::Bytes;
use handlers::manifest::{self, FUNCTIONS};
use itest::{HandlerBinaries, HandlerSource, Logs, Profile, StackConfig, Tunnel, binaries, paths};
use tokio::sync::Mutex;

use crate::{
    cost::{self, CostPerMillion, Usage},
    counting::{CallCounter, CallRecord, Counts, S3Class, s3_class},
    report::*,
    service::SizedService,
    stack::BenchStack,
    stats::Summary,
};

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    /// Response body sizes of the latency phase, bytes.
    pub sizes: Vec<usize>,
    /// Request body sizes of the latency phase (each answered with 1 KB), bytes.
    pub request_sizes: Vec<usize>,
    /// Measured request pairs (direct + tunnel) per size.
    pub samples: usize,
    pub visitors: Vec<usize>,
    pub agents: Vec<usize>,
    /// Length of one throughput cell.
    pub cell_duration: Duration,
    /// Upper bound of requests in one throughput cell.
    pub cell_max_requests: u64,
    /// Fresh stacks started for cold starts.
    pub cold_starts: usize,
    /// The fixed interval compared with the adaptive schedule.
    pub fixed_poll_interval: Duration,
    /// Processes per function.
    pub concurrency: usize,
    /// The functions' output: discarded or to stderr.
    pub logs: Logs,
}

/// Handler binaries and the profile they were built with.
#[derive(Debug, Clone)]
pub struct HandlerBuild {
    pub profile: Profile,
    /// Where every stack of the run takes them from.
    pub source: HandlerSource,
    pub binaries: HandlerBinaries,
}

impl HandlerBuild {
    /// The harness's build with `profile` (a no-op when fresh), or with
    /// `build == false` the binaries in `target/<profile>/` as they are.
    /// Blocking: cargo may take a while and prints its own progress.
    pub fn get(profile: Profile, build: bool) -> anyhow::Result<HandlerBuild> {
        let source = if build {
            HandlerSource::Build(profile)
        } else {
            HandlerSource::Dir(paths::target_dir().join(profile.name()))
        };
        let binaries = binaries::handlers(&source).with_context(|| {
            if build {
                String::from("building the handlers")
            } else {
                format!(
                    "--no-build uses the binaries as they are: build them with `cargo build {}-p tunnel-handlers --bins` or drop --no-build",
                    if profile == Profile::Release { "--release " } else { "" }
                )
            }
        })?;
        Ok(HandlerBuild {
            profile,
            source,
            binaries,
        })
    }
}

/// One timed GET.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub elapsed: Duration,
    pub status: Option<u16>,
    pub bytes: usize,
    /// The start of the body (or the transport error), one line.
    pub snippet: String,
}

impl Outcome {
    pub fn ok(&self, expected_bytes: usize) -> bool {
        self.status == Some(200) && self.bytes == expected_bytes
    }

    /// `status 502: …` for a report.
    pub fn describe(&self) -> String {
        match self.status {
            Some(status) => format!("status {status}: {}", self.snippet),
            None => format!("no response: {}", self.snippet),
        }
    }
}

pub async fn timed_get(client: &reqwest::Client, url: &str) -> Outcome {
    timed(client.get(url)).await
}

/// One timed `POST` of `body`.
pub async fn timed_post(client: &reqwest::Client, url: &str, body: &Bytes) -> Outcome {
    timed(client.post(url).body(body.clone())).await
}

async fn timed(request: reqwest::RequestBuilder) -> Outcome {
    let start = Instant::now();
    let result = async {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, body))
    }
    .await;
    let elapsed = start.elapsed();
    match result {
        Ok((status, body)) => Outcome {
            elapsed,
            status: Some(status),
            bytes: body.len(),
            snippet: if status == 200 {
                String::new()
            } else {
                one_line(&String::from_utf8_lossy(&body[..body.len().min(160)]))
            },
        },
        Err(e) => Outcome {
            elapsed,
            status: None,
            bytes: 0,
            snippet: one_line(&e.to_string()),
        },
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn visitor_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(40))
        .build()?)
}

/// Human size: `1 KB`, `64 KB`, `1 MB`.
pub fn size_label(bytes: usize) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{} MB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// `1KB`, `64kb`, `1MB`, `1000` → bytes (KB = 1024).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim().to_ascii_lowercase();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t.as_str(), ""),
    };
    let n: usize = number
        .parse()
        .map_err(|_| format!("not a size: {text:?}"))?;
    let unit = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("unknown unit in {text:?} (use B, KB or MB)")),
    };
    let bytes = n * unit;
    if bytes == 0 || bytes > crate::service::MAX_BODY {
        return Err(format!("{text:?} must be between 1 B and 8 MB"));
    }
    Ok(bytes)
}

/// One exchange of the latency phase: a `GET` answered with
/// `response_bytes`, or a `POST` of `request_bytes` answered with 1 KB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub request_bytes: usize,
    pub response_bytes: usize,
}

/// What the service answers a `POST /sink/{n}` with.
pub const SINK_ANSWER_BYTES: usize = 1024;

impl Case {
    pub fn response(bytes: usize) -> Case {
        Case {
            request_bytes: 0,
            response_bytes: bytes,
        }
    }

    pub fn request(bytes: usize) -> Case {
        Case {
            request_bytes: bytes,
            response_bytes: SINK_ANSWER_BYTES,
        }
    }

    /// `1 KB` for a response (as in earlier reports), `64 KB request` for a
    /// request body.
    pub fn label(&self) -> String {
        if self.request_bytes == 0 {
            size_label(self.response_bytes)
        } else {
            format!("{} request", size_label(self.request_bytes))
        }
    }

    /// The path on the service (`/bytes/{n}` or `/sink/{n}`).
    pub fn path(&self) -> String {
        if self.request_bytes == 0 {
            format!("/bytes/{}", self.response_bytes)
        } else {
            format!("/sink/{}", self.request_bytes)
        }
    }
}

/// Everything shared by the phases.
pub struct Bench {
    pub plan: Plan,
    pub build: HandlerBuild,
    /// Every stack's DynamoDB calls (by table prefix).
    pub dynamodb: Arc<CallCounter>,
    /// Every stack's S3 requests (by bucket prefix), the agents' through
    /// presigned URLs included.
    pub s3: Arc<CallCounter>,
    pub memory_mb: BTreeMap<String, u32>,
    pub client: reqwest::Client,
    pub service: SizedService,
}

impl Bench {
    /// What a benchmark stack runs: the handlers of this run at the
    /// Terraform memory sizes, authentication off (the benchmarks measure
    /// the data path), warnings only (logs cost time).
    pub fn stack_config(&self, poll_interval: Option<Duration>, concurrency: usize) -> StackConfig {
        StackConfig {
            poll_interval,
            concurrency,
            memory_mb: self.memory_mb.clone(),
            handlers: self.build.source.clone(),
            logs: self.plan.logs,
            rust_log: "warn".into(),
            auth_secret: None,
            ..StackConfig::default()
        }
    }

    /// A fresh stack on ephemeral ports; `poll_interval` is forwarding's
    /// `POLL_INTERVAL_MS` (`None` = adaptive).
    pub async fn stack(
        &self,
        poll_interval: Option<Duration>,
        concurrency: usize,
    ) -> anyhow::Result<BenchStack> {
        BenchStack::start(
            self.stack_config(poll_interval, concurrency),
            self.dynamodb.clone(),
            self.s3.clone(),
        )
        .await
    }

    /// Fresh stacks, one tunnel, one request, a graceful close: each
    /// function's spawn → first `/next`.
    pub async fn cold_starts(&self) -> anyhow::Result<Vec<ColdStartRow>> {
        let mut init: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for _ in 0..self.plan.cold_starts {
            let stack = self.stack(None, 1).await?;
            let tunnel = stack.expose(&self.service.port()).await?;
            let outcome =
                timed_get(&self.client, &format!("{}/bytes/1024", tunnel.public_url())).await;
            if !outcome.ok(1024) {
                eprintln!("bench: cold-start request failed: {}", outcome.describe());
            }
            tunnel.shutdown().await?;
            // $disconnect runs after the close: wait for it (bounded).
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let done = stack
                    .counters()
                    .functions
                    .get(manifest::DISCONNECT.name)
                    .is_some_and(|c| !c.init_durations_ms.is_empty());
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for (name, counters) in stack.counters().functions {
                init.entry(name)
                    .or_default()
                    .extend(counters.init_durations_ms);
            }
            stack.shutdown().await;
        }
        let lambda_dir = paths::target_dir().join("lambda");
        Ok(FUNCTIONS
            .iter()
            .map(|f| {
                let binary = self.build.binaries.built(f.name);
                let zip = lambda_dir.join(f.name).join("bootstrap.zip");
                ColdStartRow {
                    function: f.name.to_string(),
                    profile: self.build.profile.to_string(),
                    init_ms: Summary::of_ms(
                        init.get_mut(f.name).map_or(&mut [][..], |v| &mut v[..]),
                    ),
                    binary: binary.display().to_string(),
                    binary_bytes: std::fs::metadata(binary).ok().map(|m| m.len()),
                    zip: zip.display().to_string(),
                    zip_bytes: std::fs::metadata(&zip).ok().map(|m| m.len()),
                }
            })
            .collect())
    }

    /// The latency phase's exchanges: the response sizes, then the request
    /// sizes.
    pub fn cases(&self) -> Vec<Case> {
        let responses = self.plan.sizes.iter().map(|&n| Case::response(n));
        let requests = self.plan.request_sizes.iter().map(|&n| Case::request(n));
        responses.chain(requests).collect()
    }

    /// Added latency by body size on `stack` through `tunnel` (responses of
    /// each size, then requests of each size), with operations and cost per
    /// request.
    pub async fn latency(
        &self,
        stack: &BenchStack,
        tunnel: &Tunnel,
    ) -> anyhow::Result<Vec<LatencyRow>> {
        let mut rows = Vec::new();
        for case in self.cases() {
            let direct_url = format!("{}{}", self.service.url(), case.path());
            let tunnel_url = format!("{}{}", tunnel.public_url(), case.path());
            let body = self.service.body(case.request_bytes);
            let expected = case.response_bytes;
            let send = async |url: &str| {
                if case.request_bytes == 0 {
                    timed_get(&self.client, url).await
                } else {
                    timed_post(&self.client, url, &body).await
                }
            };
            let probe = send(&tunnel_url).await;
            if !probe.ok(expected) {
                rows.push(LatencyRow {
                    size_bytes: case.response_bytes,
                    request_bytes: case.request_bytes,
                    size: case.label(),
                    supported: false,
                    not_supported: Some(format!("not supported ({})", probe.describe())),
                    direct: None,
                    tunnel: None,
                    added: None,
                    errors: 1,
                    per_request: None,
                    cost_per_million: None,
                });
                continue;
            }
            for _ in 0..5.min(self.plan.samples) {
                send(&direct_url).await;
                send(&tunnel_url).await;
            }

            let before = self.snapshot(stack);
            self.dynamodb.start_recording();
            let (mut direct, mut through) = (Vec::new(), Vec::new());
            let mut errors = 0;
            let mut attempts = 0u64;
            for i in 0..self.plan.samples {
                // Alternate which goes first so neither always gets a warm path.
                let pair = if i % 2 == 0 {
                    let d = send(&direct_url).await;
                    (d, send(&tunnel_url).await)
                } else {
                    let t = send(&tunnel_url).await;
                    (send(&direct_url).await, t)
                };
                attempts += 1;
                if pair.0.ok(expected) {
                    direct.push(pair.0.elapsed);
                }
                if pair.1.ok(expected) {
                    through.push(pair.1.elapsed);
                } else {
                    errors += 1;
                }
            }
            let records = self.dynamodb.stop_recording();
            let after = self.snapshot(stack);

            let direct = Summary::of(&direct);
            let tunnel_summary = Summary::of(&through);
            let added = match (&tunnel_summary, &direct) {
                (Some(t), Some(d)) => Some(t.minus(d)),
                _ => None,
            };
            let per_request = per_request(
                stack,
                case,
                attempts,
                &before,
                &after,
                &records,
                tunnel_summary.map(|s| s.mean_ms),
                &self.memory_mb,
            );
            let cost = per_request.as_ref().map(|p| CostPerMillion::of(&p.usage));
            rows.push(LatencyRow {
                size_bytes: case.response_bytes,
                request_bytes: case.request_bytes,
                size: case.label(),
                supported: true,
                not_supported: None,
                direct,
                tunnel: tunnel_summary,
                added,
                errors,
                per_request,
                cost_per_million: cost,
            });
        }
        Ok(rows)
    }

    /// The counters a per-request figure is the difference of.
    fn snapshot(&self, stack: &BenchStack) -> Snapshot {
        Snapshot {
            dynamodb: self.dynamodb.counts(),
            management: stack.management().counts(),
            s3: self.s3.counts(),
            functions: stack.counters(),
        }
    }

    /// The adaptive schedule beside a fixed interval, requests interleaved.
    pub async fn polling(
        &self,
        adaptive: (&BenchStack, &Tunnel),
        fixed: (&BenchStack, &Tunnel),
    ) -> anyhow::Result<Vec<PollingRow>> {
        let mut rows = Vec::new();
        let cases = [
            ("fast service, 1 KB", "/bytes/1024", 1024),
            ("service taking 50 ms, 1 KB", "/sleep/50", 1024),
        ];
        for (case, path, bytes) in cases {
            let direct_url = format!("{}{path}", self.service.url());
            let urls = [
                format!("{}{path}", adaptive.1.public_url()),
                format!("{}{path}", fixed.1.public_url()),
            ];
            for _ in 0..3 {
                for url in &urls {
                    timed_get(&self.client, url).await;
                }
            }
            let before = self.dynamodb.counts();
            let mut samples: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
            let mut direct = Vec::new();
            let mut errors = [0u64; 2];
            for i in 0..self.plan.samples {
                let d = timed_get(&self.client, &direct_url).await;
                if d.ok(bytes) {
                    direct.push(d.elapsed);
                }
                // Alternate the order between the two stacks.
                for k in [i % 2, 1 - i % 2] {
                    let o = timed_get(&self.client, &urls[k]).await;
                    if o.ok(bytes) {
                        samples[k].push(o.elapsed);
                    } else {
                        errors[k] += 1;
                    }
                }
            }
            let counts = self.dynamodb.counts().since(&before);
            let direct = Summary::of(&direct);
            for (k, (stack, strategy)) in [
                (adaptive.0, "adaptive (5 ms ×1.5, cap 100 ms)".to_string()),
                (
                    fixed.0,
                    format!(
                        "fixed {} ms (seed)",
                        self.plan.fixed_poll_interval.as_millis()
                    ),
                ),
            ]
            .into_iter()
            .enumerate()
            {
                let tunnel = Summary::of(&samples[k]);
                let mine = counts.for_prefix(stack.prefix());
                let n = self.plan.samples as f64;
                rows.push(PollingRow {
                    case: case.to_string(),
                    strategy,
                    tunnel,
                    added: match (&tunnel, &direct) {
                        (Some(t), Some(d)) => Some(t.minus(d)),
                        _ => None,
                    },
                    // The first GetItem on pending is the first poll; every
                    // GetItem on pending is a poll.
                    polls_per_request: mine.calls("GetItem", "pending") as f64 / n,
                    errors: errors[k],
                });
            }
        }
        Ok(rows)
    }

    /// Requests per second at each visitor count over each agent count.
    pub async fn throughput(&self, tunnels: &[Tunnel]) -> anyhow::Result<Vec<ThroughputCell>> {
        let mut cells = Vec::new();
        for &agents in &self.plan.agents {
            if agents > tunnels.len() {
                bail!("{agents} agents asked for, {} running", tunnels.len());
            }
            let urls: Arc<Vec<String>> = Arc::new(
                tunnels[..agents]
                    .iter()
                    .map(|t| format!("{}/bytes/1024", t.public_url()))
                    .collect(),
            );
            for &visitors in &self.plan.visitors {
                cells.push(self.cell(urls.clone(), agents, visitors).await);
            }
        }
        Ok(cells)
    }

    async fn cell(&self, urls: Arc<Vec<String>>, agents: usize, visitors: usize) -> ThroughputCell {
        let issued = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let failures: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let max = self.plan.cell_max_requests;
        let start = Instant::now();
        let deadline = start + self.plan.cell_duration;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..visitors {
            let (client, urls, issued, latencies, failures) = (
                self.client.clone(),
                urls.clone(),
                issued.clone(),
                latencies.clone(),
                failures.clone(),
            );
            tasks.spawn(async move {
                // Bounded by time and by the request budget.
                while Instant::now() < deadline {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= max {
                        break;
                    }
                    let url = &urls[n as usize % urls.len()];
                    let o = timed_get(&client, url).await;
                    if o.ok(1024) {
                        latencies.lock().await.push(o.elapsed);
                    } else {
                        let key = match o.status {
                            Some(s) => format!("status {s}"),
                            None => "no response".into(),
                        };
                        *failures.lock().await.entry(key).or_default() += 1;
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let elapsed = start.elapsed();
        let latencies = latencies.lock().await.clone();
        let failures = failures.lock().await.clone();
        let errors: u64 = failures.values().sum();
        ThroughputCell {
            agents,
            visitors,
            seconds: elapsed.as_secs_f64(),
            ok: latencies.len() as u64,
            errors,
            errors_by_kind: failures,
            requests_per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
            latency: Summary::of(&latencies),
        }
    }
}

/// The counters around a sequential phase.
pub struct Snapshot {
    pub dynamodb: Counts,
    pub management: Counts,
    pub s3: Counts,
    pub functions: emulator::Counters,
}

/// Per visitor request, from the counters around a sequential phase.
#[allow(clippy::too_many_arguments)]
fn per_request(
    stack: &BenchStack,
    case: Case,
    requests: u64,
    before: &Snapshot,
    after: &Snapshot,
    records: &[CallRecord],
    forwarding_ms: Option<f64>,
    memory_mb: &BTreeMap<String, u32>,
) -> Option<PerRequest> {
    if requests == 0 {
        return None;
    }
    let n = requests as f64;
    let dynamodb = after
        .dynamodb
        .since(&before.dynamodb)
        .for_prefix(stack.prefix());
    let management = after.management.since(&before.management);
    let s3 = after.s3.since(&before.s3).for_prefix(stack.prefix());
    let invocations = |name: &str| {
        let get = |c: &emulator::Counters| c.functions.get(name).map_or(0, |f| f.invocations);
        get(&after.functions).saturating_sub(get(&before.functions)) as f64 / n
    };
    let by_op = dynamodb.by_operation();
    let operations: BTreeMap<String, f64> = by_op
        .iter()
        .map(|(op, s)| (op.clone(), s.calls as f64 / n))
        .collect();
    let read_units: f64 = by_op.values().map(|s| s.estimated_read_units).sum::<f64>() / n;
    let write_units: f64 = by_op.values().map(|s| s.estimated_write_units).sum::<f64>() / n;
    let reported: u64 = by_op.values().map(|s| s.reported_calls).sum();
    let reported_units: f64 = by_op.values().map(|s| s.reported_units).sum();
    let posts = management.by_operation();
    let post = posts.get("POST @connections");
    let messages_out = post.map_or(0.0, |p| p.calls as f64 / n);
    let metered_out = post.map_or(0.0, |p| p.metered_messages as f64 / n);
    let s3_calls: BTreeMap<String, f64> = s3
        .ops
        .iter()
        .map(|(key, stats)| (s3_label(key), stats.calls as f64 / n))
        .fold(BTreeMap::new(), |mut out, (label, calls)| {
            *out.entry(label).or_default() += calls;
            out
        });
    let s3_by_class = |class: S3Class| {
        s3.ops
            .iter()
            .filter(|(key, _)| s3_class(&key.operation) == class)
            .map(|(_, stats)| stats.calls)
            .sum::<u64>() as f64
            / n
    };
    // The answer went through the bucket when the agent PUT it there.
    let uploaded = s3.calls("PutObject", "res") as f64 / n >= 0.5;
    let response_invocations = invocations(manifest::RESPONSE.name);
    // The agent's messages for one response (measured invocations carry
    // them; their sizes are estimated from the protocol).
    let messages = cost::estimated_response_messages(case.response_bytes, uploaded);
    let metered_in_per_message = cost::metered_messages(&messages) as f64 / messages.len() as f64;
    let response_spans = response_spans(records, stack.prefix());
    let response_ms = Summary::of(&response_spans).map(|s| s.mean_ms);
    let usage = Usage {
        body_bytes: case.response_bytes,
        request_bytes: case.request_bytes,
        forwarding_invocations: invocations(manifest::FORWARDING.name),
        response_invocations,
        forwarding_ms: forwarding_ms.unwrap_or(0.0),
        response_ms: response_ms.unwrap_or(0.0),
        forwarding_memory_mb: memory_mb
            .get(manifest::FORWARDING.name)
            .copied()
            .unwrap_or(0),
        response_memory_mb: memory_mb.get(manifest::RESPONSE.name).copied().unwrap_or(0),
        messages_out,
        metered_messages_out: metered_out,
        messages_in: response_invocations,
        metered_messages_in: response_invocations * metered_in_per_message,
        read_units,
        write_units,
        s3_puts: s3_by_class(S3Class::Put),
        s3_gets: s3_by_class(S3Class::Get),
        s3_deletes: s3_by_class(S3Class::Free),
    };
    Some(PerRequest {
        requests,
        dynamodb_calls: operations,
        s3_calls,
        units_source: if reported > 0 {
            // moto answers UpdateItem with a constant 0.5 whatever the size
            // and nothing for the rest: not a figure to bill by.
            format!(
                "estimated from item sizes; the backend volunteered ConsumedCapacity on {:.2} calls per request ({:.2} units), not size-based, so not used",
                reported as f64 / n,
                reported_units / n
            )
        } else {
            "estimated from item sizes (the backend reports no ConsumedCapacity)".into()
        },
        lambda_invocations: FUNCTIONS
            .iter()
            .map(|f| (f.name.to_string(), invocations(f.name)))
            .collect(),
        response_span_samples: response_spans.len(),
        usage,
    })
}

/// `PutObject res/` for an S3 count.
fn s3_label(key: &crate::counting::OpKey) -> String {
    if key.role.is_empty() {
        key.operation.clone()
    } else {
        format!("{} {}/", key.operation, key.role)
    }
}

/// The response function's DynamoDB time per invocation, from calls
/// recorded in a sequential phase: its write on pending (the conditional
/// `UpdateItem` of an answer before issue 16, or the `PutItem` keyed
/// `<request id>#…`: the data path's one answer item), from the start of a connection read
/// (`GetItem` on connections, not a `sub#` claim) when one comes right
/// before it.
pub fn response_spans(records: &[CallRecord], prefix: &str) -> Vec<Duration> {
    let mut records: Vec<&CallRecord> = records.iter().filter(|r| r.prefix == prefix).collect();
    records.sort_by_key(|r| r.start);
    let mut spans = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let answer = match (r.operation.as_str(), r.role.as_str()) {
            ("UpdateItem", "pending") => true,
            ("PutItem", "pending") => r.composite_key,
            _ => false,
        };
        if !answer {
            continue;
        }
        let start = match i.checked_sub(1).map(|p| records[p]) {
            Some(p) if p.operation == "GetItem" && p.role == "connections" && !p.claim_key => {
                p.start
            }
            _ => r.start,
        };
        spans.push(r.end - start);
    }
    spans
}

/// Machine the figures came from.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model,
        memory_gib,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_string()),
        rustc,
        load_average: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
    }
}

/// `target/bench/latest.json` (and `.md`).
pub fn default_output() -> PathBuf {
    paths::target_dir().join("bench").join("latest.json")
}

pub fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("1KB"), Ok(1024));
        assert_eq!(parse_size("64kb"), Ok(65536));
        assert_eq!(parse_size("1MB"), Ok(1 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("9MB").is_err());
        assert!(parse_size("1GB").is_err());
        assert_eq!(size_label(102_400), "100 KB");
        assert_eq!(size_label(1 << 20), "1 MB");
        assert_eq!(size_label(1000), "1000 B");
    }

    #[test]
    fn response_spans_pair_the_connection_read_with_the_update() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let call = |op: &str, role: &str, claim: bool, s: u64, e: u64| CallRecord {
            operation: op.into(),
            prefix: "p".into(),
            role: role.into(),
            claim_key: claim,
            composite_key: false,
            start: at(s),
            end: at(e),
        };
        let records = vec![
            call("GetItem", "connections", true, 0, 2),
            call("PutItem", "pending", false, 2, 4),
            call("GetItem", "pending", false, 5, 6),
            call("GetItem", "connections", false, 7, 9),
            call("UpdateItem", "pending", false, 9, 12),
            call("GetItem", "pending", false, 13, 14),
        ];
        assert_eq!(
            response_spans(&records, "p"),
            vec![Duration::from_millis(5)]
        );
        assert!(response_spans(&records, "other").is_empty());
        // Without a connection read, the update alone.
        let alone = vec![
            call("GetItem", "pending", false, 0, 1),
            call("UpdateItem", "pending", false, 2, 5),
        ];
        assert_eq!(response_spans(&alone, "p"), vec![Duration::from_millis(3)]);
        // A PutItem on pending counts only when keyed `<request id>#…` (the
        // response function's): forwarding's pending item is not an answer.
        let mut answer = call("PutItem", "pending", false, 4, 6);
        answer.composite_key = true;
        let puts = vec![
            call("GetItem", "connections", true, 0, 1),
            call("PutItem", "pending", false, 1, 2),
            call("GetItem", "connections", false, 3, 4),
            answer,
        ];
        assert_eq!(response_spans(&puts, "p"), vec![Duration::from_millis(3)]);
    }
}
