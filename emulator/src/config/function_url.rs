//! `[[function_urls]]`: a Lambda Function URL in front of one function.

use std::net::SocketAddr;

use serde::Deserialize;

/// One Function URL (auth type `NONE`), served on its own listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionUrlConfig {
    /// The function it invokes (one URL per function, as on AWS).
    pub function: String,
    /// `BUFFERED` (AWS's default) or `RESPONSE_STREAM`.
    #[serde(default)]
    pub invoke_mode: InvokeMode,
    /// Where it listens; port 0 = ephemeral.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The URL id (`requestContext.apiId`, the first label of
    /// `<url-id>.lambda-url.<region>.on.aws`): lowercase letters and digits.
    /// Without it one is generated, 32 characters long as AWS's are.
    #[serde(default)]
    pub url_id: Option<String>,
    /// What a streamed response does when its client leaves: `continue`
    /// (AWS) or `close_stream` (not AWS; see the README).
    #[serde(default)]
    pub client_disconnect: ClientDisconnect,
}

/// A Function URL's invoke mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvokeMode {
    /// The function's whole response at once (at most 6 MB).
    #[default]
    Buffered,
    /// The function's response as it writes it (at most 200 MB).
    ResponseStream,
}

/// What happens to a streamed response when the client disconnects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientDisconnect {
    /// AWS's behaviour: the function streams on until it ends (and is billed
    /// for it); what it writes is discarded.
    #[default]
    Continue,
    /// Not AWS's behaviour: the Runtime API closes the function's response
    /// connection, so its writes fail; the function is not killed. For
    /// testing how a function reacts to a platform that reports a departed
    /// client.
    CloseStream,
}

impl FunctionUrlConfig {
    /// A buffered URL for `function` on an ephemeral port.
    pub fn new(function: impl Into<String>) -> Self {
        Self {
            function: function.into(),
            invoke_mode: InvokeMode::default(),
            listen: default_listen(),
            url_id: None,
            client_disconnect: ClientDisconnect::default(),
        }
    }

    /// Why `url_id` cannot be a DNS label of lowercase letters and digits.
    pub(crate) fn url_id_problem(&self) -> Option<String> {
        let id = self.url_id.as_deref()?;
        let valid = !id.is_empty()
            && id.len() <= 63
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        (!valid).then(|| {
            format!(
                "function_urls: url_id {id:?} of {:?} must be 1 to 63 lowercase letters and digits",
                self.function
            )
        })
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
