//! The processes of each function: scaled out up to the function's
//! concurrency, throttled (or queued) beyond it, warm ones reused.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{Instrument as _, info_span};

use super::{
    FunctionSpec, InvokeError,
    stream::{CollectError, Invocation, Output},
    worker::{self, LiveGroups, Started, Worker},
};
use crate::{
    config::{DisconnectDelivery, OverConcurrency},
    counters::Counters,
    ids,
    limits::LAMBDA_PAYLOAD_MAX,
    sigv4::AwsCredentials,
    tasks::Tasks,
};

/// The processes of one function.
#[derive(Debug)]
pub(crate) struct FunctionPool {
    spec: FunctionSpec,
    concurrency: usize,
    permits: Arc<Semaphore>,
    disconnect_delivery: Mutex<DisconnectDelivery>,
    idle: Mutex<Vec<Worker>>,
    live: LiveGroups,
    log_tasks: Tasks,
    /// Streamed invocations, watched until their stream ends.
    stream_tasks: Tasks,
    closed: AtomicBool,
    /// Reserved concurrency set to 0 at run time: every invocation throttled.
    reserved_zero: AtomicBool,
}

impl FunctionPool {
    fn new(spec: FunctionSpec, concurrency: usize) -> Self {
        Self {
            disconnect_delivery: Mutex::new(spec.disconnect_delivery),
            spec,
            concurrency,
            permits: Arc::new(Semaphore::new(concurrency)),
            idle: Mutex::new(Vec::new()),
            live: LiveGroups::default(),
            log_tasks: Tasks::default(),
            stream_tasks: Tasks::default(),
            closed: AtomicBool::new(false),
            reserved_zero: AtomicBool::new(false),
        }
    }

    /// A place among the function's running invocations, or a throttle.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, InvokeError> {
        // Over the concurrency Lambda refuses the invocation (429
        // `TooManyRequestsException`, "Lambda function scaling", Lambda
        // developer guide); a throttle is not an invocation (CloudWatch counts
        // it under Throttles), so it is counted apart.
        if self.reserved_zero.load(Ordering::Relaxed) {
            self.spec.counters.throttle();
            return Err(InvokeError::Throttled(0));
        }
        match self.spec.over_concurrency {
            OverConcurrency::Throttle => match self.permits.clone().try_acquire_owned() {
                Ok(permit) => Ok(permit),
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    self.spec.counters.throttle();
                    Err(InvokeError::Throttled(self.concurrency))
                }
                Err(tokio::sync::TryAcquireError::Closed) => Err(InvokeError::ShuttingDown),
            },
            OverConcurrency::Queue => self
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| InvokeError::ShuttingDown),
        }
    }

    async fn invoke(self: &Arc<Self>, invocation: Invocation) -> Result<Output, InvokeError> {
        let permit = self.permit().await?;
        self.spec.counters.invocation();
        let span =
            info_span!("invoke", function = %self.spec.name, request_id = %invocation.request_id);
        let result = self.run(invocation, permit).instrument(span).await;
        if result.is_err() {
            self.spec.counters.error();
        }
        result
    }

    /// One invocation; a stream is watched by a task that holds `permit`
    /// (and the process) until it ends.
    async fn run(
        self: &Arc<Self>,
        invocation: Invocation,
        permit: OwnedSemaphorePermit,
    ) -> Result<Output, InvokeError> {
        if invocation.payload.len() > LAMBDA_PAYLOAD_MAX {
            return Err(InvokeError::RequestTooLarge);
        }
        let worker = loop {
            let popped = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match popped {
                Some(worker) if worker.is_alive() => break worker,
                // Died while idle: dropping it cleans up; the next one is cold.
                Some(_dead) => continue,
                None => break Worker::spawn(&self.spec, &self.live, &self.log_tasks).await?,
            }
        };
        let timeout = self.spec.timeout;
        let started = worker
            .invoke(
                invocation.payload,
                invocation.request_id,
                invocation.streaming.unwrap_or_default(),
                timeout,
            )
            .await;
        let (stream, outcome, deadline) = match started {
            Ok(Started::Buffered(payload)) => {
                self.recycle(worker, true);
                return Ok(Output::Buffered(payload));
            }
            Err(error) => {
                self.recycle(worker, is_reusable_after(&error));
                return Err(error);
            }
            Ok(Started::Streamed {
                stream,
                outcome,
                deadline,
            }) => (stream, outcome, deadline),
        };
        if invocation.streaming.is_none() {
            // Asked for the whole result: the stream, read whole, is it.
            let (collected, finished) = tokio::join!(
                stream.collect(LAMBDA_PAYLOAD_MAX),
                worker.finish_stream(outcome, deadline, timeout)
            );
            let result = finished.and_then(|()| match collected {
                Ok(payload) => Ok(Output::Buffered(payload)),
                Err(CollectError::TooLarge) => Err(InvokeError::ResponseTooLarge),
                Err(CollectError::Cut) => Err(InvokeError::StreamInterrupted),
            });
            self.recycle(worker, result.as_ref().err().is_none_or(is_reusable_after));
            return result;
        }
        let pool = self.clone();
        self.stream_tasks.spawn(
            async move {
                let result = worker.finish_stream(outcome, deadline, timeout).await;
                if let Err(error) = &result {
                    tracing::warn!(%error, "streamed invocation failed");
                    pool.spec.counters.error();
                }
                pool.recycle(worker, result.as_ref().err().is_none_or(is_reusable_after));
                drop(permit);
            }
            .instrument(tracing::Span::current()),
        );
        Ok(Output::Streamed(stream))
    }

    /// Back to the idle processes, or dropped (which kills the process).
    fn recycle(&self, worker: Worker, reusable: bool) {
        if reusable && worker.is_alive() && !self.closed.load(Ordering::Relaxed) {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(worker);
        }
    }

    /// Kills every process now, idle or busy; synchronous so that `Drop` can use it.
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.permits.close();
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let live: Vec<i32> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        for pgid in live {
            worker::kill_group(pgid);
        }
        self.log_tasks.abort_all();
        self.stream_tasks.abort_all();
    }
}

/// Whether a process that failed this way can take the next invocation
/// (a timed-out one cannot: dropping it is how it gets killed).
fn is_reusable_after(error: &InvokeError) -> bool {
    matches!(
        error,
        InvokeError::Function { .. } | InvokeError::ResponseTooLarge | InvokeError::StreamTooLarge
    )
}

/// All functions, by name.
#[derive(Debug, Clone)]
pub(crate) struct Functions(Arc<HashMap<String, Arc<FunctionPool>>>);

impl Functions {
    pub fn new(specs: Vec<(FunctionSpec, usize)>) -> Self {
        Self(Arc::new(
            specs
                .into_iter()
                .map(|(spec, concurrency)| {
                    let name = spec.name.to_string();
                    (name, Arc::new(FunctionPool::new(spec, concurrency)))
                })
                .collect(),
        ))
    }

    /// A buffered invocation with a fresh request id: the function's whole result.
    pub async fn invoke(&self, function: &str, payload: Bytes) -> Result<Bytes, InvokeError> {
        let invocation = Invocation {
            payload,
            request_id: ids::new_lambda_request_id(),
            streaming: None,
        };
        match self.invoke_with(function, invocation).await? {
            Output::Buffered(payload) => Ok(payload),
            // Not produced for a buffered invocation; read whole all the same.
            Output::Streamed(stream) => stream
                .collect(LAMBDA_PAYLOAD_MAX)
                .await
                .map_err(|_| InvokeError::ResponseTooLarge),
        }
    }

    pub async fn invoke_with(
        &self,
        function: &str,
        invocation: Invocation,
    ) -> Result<Output, InvokeError> {
        match self.0.get(function) {
            Some(pool) => pool.invoke(invocation).await,
            None => Err(InvokeError::UnknownFunction(function.to_owned())),
        }
    }

    /// What happens to `$disconnect` events for `function` (`None`: no such function).
    pub fn disconnect_delivery(&self, function: &str) -> Option<DisconnectDelivery> {
        let pool = self.0.get(function)?;
        Some(
            *pool
                .disconnect_delivery
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Changes it; `false` when there is no such function.
    pub fn set_disconnect_delivery(&self, function: &str, delivery: DisconnectDelivery) -> bool {
        let Some(pool) = self.0.get(function) else {
            return false;
        };
        *pool
            .disconnect_delivery
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = delivery;
        true
    }

    /// Throttles every invocation of `function` from now on (`true`), as
    /// reserved concurrency 0 does on AWS, or lifts that (`false`); `false`
    /// when there is no such function.
    pub fn set_reserved_zero(&self, function: &str, on: bool) -> bool {
        let Some(pool) = self.0.get(function) else {
            return false;
        };
        pool.reserved_zero.store(on, Ordering::Relaxed);
        true
    }

    /// The functions whose credentials have this access key id (normally one).
    pub fn by_access_key(&self, access_key_id: &str) -> Vec<&FunctionSpec> {
        self.0
            .values()
            .map(|pool| &pool.spec)
            .filter(|spec| spec.credentials.access_key_id == access_key_id)
            .collect()
    }

    /// The credentials `function`'s processes sign with.
    pub fn credentials(&self, function: &str) -> Option<AwsCredentials> {
        self.0
            .get(function)
            .map(|pool| pool.spec.credentials.clone())
    }

    pub fn counters(&self) -> Counters {
        Counters {
            functions: self
                .0
                .iter()
                .map(|(name, pool)| (name.clone(), pool.spec.counters.snapshot()))
                .collect(),
        }
    }

    pub fn close(&self) {
        for pool in self.0.values() {
            pool.close();
        }
    }
}
