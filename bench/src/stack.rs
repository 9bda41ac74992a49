//! A benchmark stack: the harness's stack ([`itest::StackBuilder`]) with
//! counters on the proxies it interposes in front of DynamoDB and S3 (one
//! counter each shared by every stack of a run, told apart by table and
//! bucket prefix) and `@connections` (one per stack).

use std::sync::Arc;

use itest::{Stack, StackConfig, Tunnel};

use crate::counting::{CallCounter, Upstream};

/// A running benchmark stack. Dropping it stops the emulator.
pub struct BenchStack {
    stack: Stack,
    management: Arc<CallCounter>,
}

impl BenchStack {
    /// `config` on the process-wide backend, its DynamoDB calls counted by
    /// `dynamodb`, its S3 requests (the agents' presigned ones too) by `s3`.
    pub async fn start(
        config: StackConfig,
        dynamodb: Arc<CallCounter>,
        s3: Arc<CallCounter>,
    ) -> anyhow::Result<BenchStack> {
        let management = Arc::new(CallCounter::new(Upstream::Management));
        let stack = Stack::builder(config)
            .interpose_dynamodb(dynamodb)
            .interpose_s3(s3)
            .interpose_connections(management.clone())
            .start()
            .await?;
        Ok(BenchStack { stack, management })
    }

    /// The table and bucket prefix: the DynamoDB and S3 counters' counts of
    /// this stack.
    pub fn prefix(&self) -> &str {
        self.stack.tables().prefix()
    }

    pub fn counters(&self) -> emulator::Counters {
        self.stack.counters()
    }

    /// The counter in front of `@connections`.
    pub fn management(&self) -> &CallCounter {
        &self.management
    }

    /// An agent for `target` (a port), with its public URL.
    pub async fn expose(&self, target: &str) -> anyhow::Result<Tunnel> {
        Ok(self.stack.expose(target).await?)
    }

    /// Stops the emulator and deletes the tables.
    pub async fn shutdown(self) {
        self.stack.shutdown().await;
    }
}
