//! Per-function counters for benchmarks: invocations, throttles, errors, cold starts and
//! init durations. Served as JSON at `GET /_emulator/counters` on the WebSocket
//! listener (see the README).

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::Serialize;

/// A snapshot of every function's counters, keyed by function name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    pub functions: BTreeMap<String, FunctionCounters>,
}

/// A snapshot of one function's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FunctionCounters {
    /// Invocations that ran (successful or not); throttled ones are not
    /// invocations, as in CloudWatch.
    pub invocations: u64,
    /// Invocations refused because the function was at its concurrency.
    pub throttles: u64,
    /// Invocations that failed: function error, timeout, crash, init error, size limits.
    pub errors: u64,
    /// Processes spawned.
    pub cold_starts: u64,
    /// Spawn → first `/next` of each process that got there, in milliseconds.
    pub init_durations_ms: Vec<f64>,
}

/// The live counters of one function.
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    invocations: AtomicU64,
    throttles: AtomicU64,
    errors: AtomicU64,
    cold_starts: AtomicU64,
    init_durations: Mutex<Vec<Duration>>,
}

impl LiveCounters {
    pub fn invocation(&self) {
        self.invocations.fetch_add(1, Ordering::Relaxed);
    }
    pub fn throttle(&self) {
        self.throttles.fetch_add(1, Ordering::Relaxed);
    }
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn cold_start(&self) {
        self.cold_starts.fetch_add(1, Ordering::Relaxed);
    }
    pub fn init_duration(&self, duration: Duration) {
        self.init_durations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(duration);
    }

    pub fn snapshot(&self) -> FunctionCounters {
        FunctionCounters {
            invocations: self.invocations.load(Ordering::Relaxed),
            throttles: self.throttles.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            cold_starts: self.cold_starts.load(Ordering::Relaxed),
            init_durations_ms: self
                .init_durations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect(),
        }
    }
}
