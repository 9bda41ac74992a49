//! What the tests share: a visitor client and small waits.

use std::time::Duration;

/// A safety net for waits, never a synchronisation device.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A visitor: no redirects followed, no decompression, one pool per test.
pub fn visitor() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .expect("reqwest client")
}
