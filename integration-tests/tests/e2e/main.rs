//! End-to-end: visitors (reqwest) → the emulator's HTTP API → the real
//! forwarding binary → DynamoDB (moto/LocalStack) → @connections → a real
//! agent (the `agent` library) → a real local service (axum), and back.
//!
//! Every test starts its own stack (own tables, own emulator and function
//! processes) on the process-wide DynamoDB backend, so tests run in parallel
//! and in any order. `ITEST_TARGET=deployed` runs them against a deployed
//! stage instead; tests that need local powers skip themselves there.

mod support;

mod access;
mod agents;
mod auth;
mod failures;
mod forwarding;
mod handover;
mod large_bodies;
mod overload;
mod paths;
mod soak;
