//! What a store call answers besides its value: whether a conditional write
//! happened ([`Written`]), or why the call failed ([`StoreError`], which
//! names no SDK: the backend's own error is boxed as its source).

/// The outcome of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The condition failed: the subdomain is taken, or the connection has
    /// already answered the request.
    ConditionFailed,
}

/// The backend's own error, whatever the backend.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// A store call failed (not a failed condition: that is [`Written`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The call itself failed (network, throttling, permissions, a missing
    /// table, or an error the fake was told to inject).
    #[error("{operation} failed")]
    Backend {
        /// What was called, e.g. `DynamoDB GetItem`.
        operation: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("item {key:?} is malformed: {problem}")]
    Malformed { key: String, problem: String },
    #[error("stored response of {key:?} is not valid JSON")]
    ResponseJson {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    pub fn backend(operation: &'static str, source: impl Into<BackendError>) -> Self {
        StoreError::Backend {
            operation,
            source: source.into(),
        }
    }
}
