//! Benchmarks of the tunnel on the local stack (`just bench`, binary
//! `bench`): added latency by response size, the polling strategies side by
//! side, DynamoDB operations, S3 requests, Lambda invocations and cost per
//! request (responses and request bodies by size), throughput by visitors
//! and agents, cold starts and binary and zip sizes, failed requests across
//! forced handovers.
//!
//! The stacks are the harness's ([`itest::StackBuilder`]): the same tables,
//! handler build, environment and routes as the end-to-end tests, with
//! counters on the proxies the harness interposes in front of DynamoDB, S3
//! and `@connections`. What and how it measures: `bench/BENCHMARKS.md`.
//!
//! # Layout
//!
//! - [`run`]: the phases, the handler build of a run, the report's machine
//!   description.
//! - [`handover`]: the handover phase (connections ended after seconds,
//!   the harness's [`itest::Load`] through one agent).
//! - [`stack`]: [`stack::BenchStack`], a harness stack with its counters.
//! - [`counting`]: the counters (DynamoDB calls by `X-Amz-Target` and table,
//!   `@connections` posts, S3 requests by operation and key prefix) and the
//!   read/write unit estimate.
//! - [`service`]: the local service answering `n` bytes and taking request
//!   bodies.
//! - [`cost`]: AWS list prices and the cost model.
//! - [`stats`]: the p50/p90/p99 summaries.
//! - [`report`]: the JSON document and its Markdown tables.

pub mod cost;
pub mod counting;
pub mod handover;
pub mod report;
pub mod run;
pub mod service;
pub mod stack;
pub mod stats;
