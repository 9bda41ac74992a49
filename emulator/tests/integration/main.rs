//! End-to-end tests of the emulator with the `fixture-lambda` binary, a real
//! WebSocket client, reqwest and the AWS SDK's management API client.
//! One test binary (several modules) to link the SDK once.

mod common;
mod disconnects;
mod events;
mod function_urls;
mod http_api;
mod lambda;
mod management;
mod paths;
mod streaming;
mod throttling;
mod websocket;
