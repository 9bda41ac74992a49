//! The store interfaces on DynamoDB, with the item layout and conditional
//! writes of `docs/contracts.md`: [`DynamoConnectionStore`] (connections
//! table) and [`DynamoPendingStore`] (pending requests table: one item per
//! answer). The contract suite (`crate::contract`) runs on them
//! against a real DynamoDB API in `integration-tests/tests/dynamo_store.rs`.
//!
//! `status` and `ttl` are DynamoDB reserved words: expressions always name
//! attributes through `#placeholders`.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use super::{StoreError, Written};

mod connections;
mod pending;

type Item = HashMap<String, AttributeValue>;
type SdkResult<T, E> = Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>;

/// The connections table (connection items and subdomain claims).
#[derive(Debug, Clone)]
pub struct DynamoConnectionStore {
    client: Client,
    table: String,
}

impl DynamoConnectionStore {
    /// `table` is the value of `CONNECTIONS_TABLE_NAME`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

/// The pending requests table (the agents' answers).
#[derive(Debug, Clone)]
pub struct DynamoPendingStore {
    client: Client,
    table: String,
}

impl DynamoPendingStore {
    /// `table` is the value of `PENDING_REQUESTS_TABLE_NAME`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The SDK's error, boxed with the operation's name (`DynamoDB GetItem`).
fn sdk_error<E>(
    operation: &'static str,
    err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> StoreError
where
    aws_sdk_dynamodb::Error: From<SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
{
    StoreError::backend(operation, aws_sdk_dynamodb::Error::from(err))
}

/// The output of a conditional write, `None` if its condition failed, else
/// the error.
fn conditional<T, E>(
    operation: &'static str,
    result: SdkResult<T, E>,
) -> Result<Option<T>, StoreError>
where
    E: ProvideErrorMetadata,
    aws_sdk_dynamodb::Error: From<SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e)
            if e.as_service_error()
                .and_then(ProvideErrorMetadata::code)
                .is_some_and(|code| code == "ConditionalCheckFailedException") =>
        {
            Ok(None)
        }
        Err(e) => Err(sdk_error(operation, e)),
    }
}

/// [`conditional`] for writes whose output is not needed.
fn written<T, E>(operation: &'static str, result: SdkResult<T, E>) -> Result<Written, StoreError>
where
    E: ProvideErrorMetadata,
    aws_sdk_dynamodb::Error: From<SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
{
    Ok(match conditional(operation, result)? {
        Some(_) => Written::Yes,
        None => Written::ConditionFailed,
    })
}

fn get_s(item: &Item, key: &str, name: &str) -> Result<String, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| StoreError::Malformed {
            key: key.to_string(),
            problem: format!("{name} is missing or not a string"),
        })
}

fn get_opt_s(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &Item, key: &str, name: &str) -> Result<i64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Malformed {
            key: key.to_string(),
            problem: format!("{name} is missing or not an integer"),
        })
}

fn get_opt_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}
