//! The handover phase: one agent under a steady visitor load on a stack
//! whose emulator ends every WebSocket connection after a few seconds (API
//! Gateway's 2 hours, shortened), so the agent hands its tunnel over to a
//! successor connection again and again (make-before-break). It counts the
//! requests that failed (expected: none), the handovers the agent reported
//! and the requests it says it dropped, and the latency under it.
//!
//! The load is the harness's ([`itest::Load`], the one the end-to-end
//! handover tests send): every answer checked against its own request,
//! some requests slow so that they straddle a handover.

use std::{collections::BTreeMap, fmt::Write as _, sync::Arc, time::Duration};

use itest::{Load, LocalService, StackConfig};
use serde::Serialize;

use crate::{counting::CallCounter, stack::BenchStack, stats::Summary};

/// What the phase runs: the age limit and the load.
#[derive(Debug, Clone, Copy)]
pub struct HandoverPlan {
    /// The emulator's maximum connection age (whole seconds), also told to
    /// the agent (`max_age_secs`).
    pub max_age: Duration,
    pub load: Load,
}

impl HandoverPlan {
    /// 20 s connections under 70 s of load (four handovers), or with
    /// `quick` 10 s under 25 s (three); 20 requests/s, every tenth taking
    /// 2 s at the service.
    pub fn new(quick: bool) -> HandoverPlan {
        let (max_age, duration) = if quick { (10, 25) } else { (20, 70) };
        HandoverPlan {
            max_age: Duration::from_secs(max_age),
            load: Load {
                every: Duration::from_millis(50),
                duration: Duration::from_secs(duration),
                slow_every: 10,
                slow: Duration::from_secs(2),
            },
        }
    }
}

/// The phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct HandoverReport {
    pub max_connection_age_secs: u64,
    pub load_seconds: f64,
    pub requests_per_second: f64,
    pub slow_every: u32,
    pub slow_ms: u64,
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    /// `status 502`, `no response`, `another request's answer`.
    pub failed_by_kind: BTreeMap<String, u64>,
    /// The first few failures, one line each (no bodies beyond 200 chars of
    /// the error page).
    pub failure_examples: Vec<String>,
    /// `Renewed` events of the agent.
    pub handovers: usize,
    /// Requests the agent reports dropped across them.
    pub dropped: usize,
    /// Visitor-side latency of the fast requests.
    pub latency: Option<Summary>,
    /// The same, of the slow ones (the service's 2 s included).
    pub slow_latency: Option<Summary>,
}

impl HandoverPlan {
    /// Runs the phase on a stack of its own, `config` with the age limit
    /// (run it once the other phases' stacks are stopped: the load is what
    /// two cores and moto carry), its DynamoDB and S3 calls counted by
    /// `dynamodb` and `s3`.
    pub async fn run(
        self,
        config: StackConfig,
        dynamodb: Arc<CallCounter>,
        s3: Arc<CallCounter>,
        client: &reqwest::Client,
    ) -> anyhow::Result<HandoverReport> {
        let plan = self;
        let stack = BenchStack::start(
            StackConfig {
                max_connection_age: Some(plan.max_age),
                ..config
            },
            dynamodb,
            s3,
        )
        .await?;
        let service = LocalService::start("handover").await?;
        let tunnel = stack.expose(&service.port()).await?;
        let mut events = tunnel.handle.subscribe();
        let outcome = plan
            .load
            .run(client, tunnel.public_url(), &mut events, |_| Ok(()))
            .await;
        let _ = tunnel.shutdown().await;
        stack.shutdown().await;
        let outcome = outcome?;
        let failed = outcome.failures.len() as u64;
        Ok(HandoverReport {
            max_connection_age_secs: plan.max_age.as_secs(),
            load_seconds: plan.load.duration.as_secs_f64(),
            requests_per_second: 1.0 / plan.load.every.as_secs_f64(),
            slow_every: plan.load.slow_every,
            slow_ms: plan.load.slow.as_millis() as u64,
            requests: u64::from(outcome.sent),
            ok: u64::from(outcome.sent) - failed,
            failed,
            failed_by_kind: outcome.failures_by_kind(),
            failure_examples: outcome
                .failures
                .iter()
                .take(5)
                .map(|f| format!("request {}: {}: {}", f.id, f.kind, f.detail))
                .collect(),
            handovers: outcome.renewals.len(),
            dropped: outcome.renewals.iter().sum(),
            latency: Summary::of(&outcome.fast),
            slow_latency: Summary::of(&outcome.slow),
        })
    }
}

impl HandoverReport {
    /// The phase's Markdown table.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n### Handovers (connections ended after {} s, make-before-break)\n",
            self.max_connection_age_secs
        );
        let _ = writeln!(
            out,
            "| load | requests | failed | handovers | dropped (agent) | p50 / p99 ms | slow p50 / p99 ms |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        let failed = if self.failed_by_kind.is_empty() {
            self.failed.to_string()
        } else {
            let kinds: Vec<String> = self
                .failed_by_kind
                .iter()
                .map(|(k, v)| format!("{v}× {k}"))
                .collect();
            format!("{} ({})", self.failed, kinds.join(", "))
        };
        let pair = |s: &Option<Summary>| {
            s.map_or("—".into(), |s| {
                format!("{:.0} / {:.0}", s.p50_ms, s.p99_ms)
            })
        };
        let _ = writeln!(
            out,
            "| {:.0} requests/s for {:.0} s, every {}th taking {} ms | {} | {failed} | {} | {} | {} | {} |",
            self.requests_per_second,
            self.load_seconds,
            self.slow_every,
            self.slow_ms,
            self.requests,
            self.handovers,
            self.dropped,
            pair(&self.latency),
            pair(&self.slow_latency),
        );
        for example in &self.failure_examples {
            let _ = writeln!(out, "\n- {example}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_plans_see_enough_handovers() {
        // The agent opens a successor a quarter of the age before the limit
        // (these ages are under 20 minutes): handovers every 3/4 of it.
        for (quick, at_least) in [(false, 3), (true, 2)] {
            let plan = HandoverPlan::new(quick);
            let every = plan.max_age.mul_f64(0.75);
            let handovers = (plan.load.duration.as_secs_f64() / every.as_secs_f64()) as u32;
            assert!(handovers > at_least, "{plan:?}: {handovers}");
            assert!(plan.load.every <= Duration::from_millis(50));
        }
    }

    #[test]
    fn the_table_names_failures_by_kind() {
        let mut report = HandoverReport {
            max_connection_age_secs: 20,
            load_seconds: 70.0,
            requests_per_second: 20.0,
            slow_every: 10,
            slow_ms: 2000,
            requests: 1400,
            ok: 1398,
            failed: 2,
            failed_by_kind: BTreeMap::from([("status 502".to_owned(), 2)]),
            failure_examples: vec!["request 7: status 502: reconnecting".into()],
            handovers: 4,
            dropped: 0,
            latency: Summary::of_ms(&mut [20.0, 30.0]),
            slow_latency: None,
        };
        let table = report.markdown();
        assert!(table.contains("| 20 requests/s for 70 s, every 10th taking 2000 ms | 1400 | 2 (2× status 502) | 4 | 0 | 20 / 30 | — |"), "{table}");
        assert!(table.contains("- request 7: status 502: reconnecting"));
        report.failed_by_kind.clear();
        report.failed = 0;
        assert!(report.markdown().contains("| 1400 | 0 | 4 |"));
    }
}
