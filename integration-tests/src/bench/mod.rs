//! Benchmarks of the local stack (`just bench`, binary `bench`): added
//! latency by response size, the polling strategies side by side, DynamoDB
//! operations, Lambda invocations and cost per request, throughput by
//! visitors and agents, cold starts and binary sizes.
//!
//! # Layout
//!
//! - [`run`]: the phases and the handler build.
//! - [`stack`]: [`stack::BenchStack`], the local stack with release binaries,
//!   counting proxies and an optional fixed poll interval.
//! - [`proxy`]: the counting reverse proxy (DynamoDB by `X-Amz-Target`,
//!   `@connections` posts) and the read/write unit estimate.
//! - [`service`]: the local service answering `n` bytes.
//! - [`cost`]: AWS list prices and the cost model.
//! - [`stats`]: the p50/p90/p99 summaries.
//! - [`report`]: the JSON document and its Markdown tables.

pub mod cost;
pub mod proxy;
pub mod report;
pub mod run;
pub mod service;
pub mod stack;
pub mod stats;
