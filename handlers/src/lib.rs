//! The tunnel's Lambda functions.

pub mod manifest;
