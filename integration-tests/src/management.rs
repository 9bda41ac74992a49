//! `@connections` clients for tests and tools: the emulator wants SigV4 with
//! the credentials it gave a function whose role grants
//! `execute-api:ManageConnections`, exactly as AWS does.

use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Credentials, Region};

use crate::{HarnessError, Stack};

/// The management API client `function` would build on `stack` (its
/// credentials, the stack's region and management endpoint).
pub fn client_as(
    stack: &Stack,
    function: &str,
) -> Result<aws_sdk_apigatewaymanagement::Client, HarnessError> {
    let emulator = stack.emulator();
    let credentials = emulator.function_credentials(function).ok_or_else(|| {
        HarnessError::Emulator(format!("the stack has no function {function:?}").into())
    })?;
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(emulator.management_endpoint())
        .region(Region::new(emulator.region().to_owned()))
        .credentials_provider(Credentials::new(
            credentials.access_key_id,
            credentials.secret_access_key,
            credentials.session_token,
            None,
            "itest",
        ))
        .build();
    Ok(aws_sdk_apigatewaymanagement::Client::from_conf(config))
}
