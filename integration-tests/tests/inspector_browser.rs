//! The request inspector in a real browser: headless Chromium driven
//! through chromedriver (WebDriver), against a real agent on the local stack
//! (the emulator running the real handlers, DynamoDB, a real local service).
//!
//! A visitor's request shows up in the list within a second, its detail
//! shows the body, Replay makes the local service receive it again and the
//! replay shows up marked as such; Edit & replay and the filter work. The
//! screenshot goes to `target/inspector/inspector.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them); `CHROMIUM` and `CHROMEDRIVER` may point elsewhere. Without them the
//! test fails and says how to install them: it never skips silently.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use agent::inspect::{Inspector, Limits};
use anyhow::{Context as _, bail, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use itest::{LocalService, TestEnv, Tunnel};
use tokio::io::AsyncReadExt as _;

/// A safety net for waits, never a synchronisation device.
const PATIENCE: Duration = Duration::from_secs(30);

const INSTALL: &str = "the inspector's browser test needs headless Chromium and chromedriver: \
install them with `apt-get update && apt-get install -y chromium chromium-driver` (Debian/Ubuntu, \
as root; .ci/run does this), or set CHROMIUM and CHROMEDRIVER to their paths";

/// `name` from `env` or on PATH (or in /usr/bin, /usr/lib/chromium).
fn find(env: &str, names: &[&str]) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        ensure!(
            path.is_file(),
            "{env}={} does not exist; {INSTALL}",
            path.display()
        );
        return Ok(path);
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/lib/chromium"].map(PathBuf::from));
    for dir in dirs {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!("{} not found; {INSTALL}", names.join(" / "))
}

/// chromedriver on an ephemeral port; killed when dropped.
struct Chromedriver {
    _child: tokio::process::Child,
    url: String,
}

impl Chromedriver {
    async fn start(binary: &PathBuf) -> anyhow::Result<Chromedriver> {
        let mut child = tokio::process::Command::new(binary)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}; {INSTALL}", binary.display()))?;
        let mut stdout = child.stdout.take().context("chromedriver's stdout")?;
        // "ChromeDriver was started successfully on port 34405."
        let port = tokio::time::timeout(PATIENCE, async {
            let mut seen = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                let n = stdout.read(&mut buf).await?;
                if n == 0 {
                    bail!(
                        "chromedriver exited before it listened: {}",
                        String::from_utf8_lossy(&seen)
                    );
                }
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen);
                if let Some((_, rest)) = text.split_once("started successfully on port ")
                    && let Some((port, _)) = rest.split_once('.')
                {
                    return Ok(port.trim().parse::<u16>()?);
                }
            }
        })
        .await
        .context("chromedriver did not say which port it listens on")??;
        // Keep reading so chromedriver never blocks on a full pipe.
        tokio::spawn(async move {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut stdout, &mut sink).await;
        });
        Ok(Chromedriver {
            _child: child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }
}

/// A headless Chromium session with a fresh profile.
async fn browser(
    driver: &Chromedriver,
    chromium: &PathBuf,
    profile: &tempfile::TempDir,
) -> anyhow::Result<Client> {
    let args = [
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--window-size=1440,900".into(),
        "--force-device-scale-factor=1".into(),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "binary": chromium, "args": args }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .with_context(|| format!("opening a Chromium session through chromedriver; {INSTALL}"))
}

/// The text of the first element matching `css`, or `None`.
async fn text_of(client: &Client, css: &str) -> anyhow::Result<Option<String>> {
    let value = client
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![serde_json::json!(css)],
        )
        .await?;
    Ok(value.as_str().map(str::to_owned))
}

/// Waits (at most `limit`) until `check` holds for the page; returns how
/// long it took.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let start = Instant::now();
    loop {
        if check().await? {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("{what}: not within {limit:?}");
        }
        // WebDriver has no push: poll the page, briefly.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

async fn wait_for_text(client: &Client, css: &str, needle: &str) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        let text = text_of(client, css).await?;
        match text {
            Some(text) if text.contains(needle) => return Ok(text),
            _ if start.elapsed() > PATIENCE => {
                bail!("{css} did not contain {needle:?} within {PATIENCE:?}; last: {text:?}")
            }
            // WebDriver has no push: poll the page, briefly.
            _ => tokio::time::sleep(Duration::from_millis(15)).await,
        }
    }
}

fn screenshot_dir() -> anyhow::Result<PathBuf> {
    let dir = itest::paths::target_dir().join("inspector");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn count(client: &Client, css: &str) -> anyhow::Result<usize> {
    Ok(client.find_all(Locator::Css(css)).await?.len())
}

#[tokio::test]
async fn inspector_in_a_real_browser() -> anyhow::Result<()> {
    // The browser first: without it, say so before building anything.
    let chromium = find(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    )?;
    let chromedriver = find("CHROMEDRIVER", &["chromedriver"])?;

    let env = TestEnv::start().await?;
    let service = LocalService::start("shop").await?;
    let inspector = Inspector::new(Limits::default());
    let server = inspector.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    let config = env.agent_config(&service.port())?;
    let tunnel = Tunnel::start_with_inspector(config, inspector.clone()).await?;

    let driver = Chromedriver::start(&chromedriver).await?;
    let profile = tempfile::tempdir()?;
    let client = browser(&driver, &chromium, &profile).await?;
    // Whatever happens, the browser session is closed (Chromium exits).
    let result = std::panic::AssertUnwindSafe(scenario(&client, &server.url(), &tunnel, &service))
        .catch_unwind()
        .await;
    if !matches!(result, Ok(Ok(()))) {
        // What the page looked like when it went wrong.
        if let Ok(png) = client.screenshot().await {
            let file = screenshot_dir()?.join("failure.png");
            std::fs::write(&file, png)?;
            eprintln!("screenshot of the failure: {}", file.display());
        }
    }
    let _ = client.close().await;
    drop(driver);
    env.shutdown().await;
    match result {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

async fn scenario(
    client: &Client,
    inspector_url: &str,
    tunnel: &Tunnel,
    service: &LocalService,
) -> anyhow::Result<()> {
    let public = tunnel.public_url().to_owned();
    let visitor = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()?;

    client.goto(inspector_url).await?;
    wait_for_text(client, "#conn-text", "online").await?;
    wait_for_text(client, "#public-url", &public).await?;

    // A few ordinary requests first (they also warm the functions up).
    for (method, path, body) in [
        ("GET", "/", None),
        ("GET", "/status/404", None),
        ("GET", "/binary", None),
        ("POST", "/login", Some("user=ada&remember=on")),
    ] {
        let mut request = visitor.request(method.parse()?, format!("{public}{path}"));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        request.send().await?;
        service
            .next_request(PATIENCE)
            .await
            .context("the service saw it")?;
    }

    // The webhook: it must be in the list within a second of its answer.
    let webhook = serde_json::json!({
        "id": "evt_1Q8",
        "type": "payment_intent.succeeded",
        "data": {"object": {"amount": 4200, "currency": "eur", "customer": "cus_9s"}},
        "livemode": false,
    })
    .to_string();
    let path = "/webhooks/stripe?attempt=1";
    let response = visitor
        .post(format!("{public}{path}"))
        .header("content-type", "application/json")
        .header("stripe-signature", "t=1700000000,v1=5257a869")
        .body(webhook.clone())
        .send()
        .await?;
    ensure!(
        response.status() == 200,
        "the visitor got {}",
        response.status()
    );
    let answered = Instant::now();
    let row = format!(r#".row[data-path="{path}"]:not(.is-replay)"#);
    wait_until(
        "the webhook in the list",
        Duration::from_secs(1),
        || async { Ok(count(client, &row).await? == 1) },
    )
    .await?;
    let shown_after = answered.elapsed();
    ensure!(
        shown_after <= Duration::from_secs(1),
        "the request appeared after {shown_after:?}"
    );
    let first = service
        .next_request(PATIENCE)
        .await
        .context("the webhook reached the service")?;
    assert_eq!(first.body, webhook.as_bytes());
    // Newest first.
    let top = text_of(client, "#list .row:first-child .path").await?;
    assert_eq!(top.as_deref(), Some(path), "{top:?}");

    // Its detail shows the body, pretty-printed.
    client.find(Locator::Css(&row)).await?.click().await?;
    let body = wait_for_text(
        client,
        "#request-body .body-view",
        "payment_intent.succeeded",
    )
    .await?;
    assert!(
        body.contains("\"amount\": 4200"),
        "pretty-printed JSON: {body}"
    );
    let status = wait_for_text(client, "#detail-status", "200").await?;
    assert!(status.contains("200 OK"), "{status}");
    // The form body shows as fields.
    let form_row = r#".row[data-path="/login"]"#;
    client.find(Locator::Css(form_row)).await?.click().await?;
    let fields = wait_for_text(client, "#request-body .form-table", "remember").await?;
    assert!(fields.contains("userada"), "{fields}");
    // Back to the webhook, on its response.
    client.find(Locator::Css(&row)).await?.click().await?;
    wait_for_text(client, "#request-body .body-view", "payment_intent").await?;

    // Replay: the local service gets the request again, the replay is listed.
    client.find(Locator::Id("replay")).await?.click().await?;
    let again = service
        .next_request(PATIENCE)
        .await
        .context("the replay reached the service")?;
    assert_eq!((again.method.as_str(), again.uri.as_str()), ("POST", path));
    assert_eq!(again.body, webhook.as_bytes());
    assert_eq!(
        again.header_values("stripe-signature"),
        [b"t=1700000000,v1=5257a869"]
    );
    let replay_row = format!(r#".row.is-replay[data-path="{path}"]"#);
    wait_until("the replay in the list", PATIENCE, || async {
        Ok(count(client, &replay_row).await? == 1)
    })
    .await?;
    wait_for_text(client, &format!("{replay_row} .status"), "200").await?;
    wait_for_text(client, "#replay-of", "replay of").await?;

    // Edit & replay: another path and body.
    client
        .find(Locator::Id("edit-replay"))
        .await?
        .click()
        .await?;
    let uri = client.find(Locator::Id("edit-uri")).await?;
    uri.clear().await?;
    uri.send_keys("/webhooks/stripe?attempt=2").await?;
    let body_field = client.find(Locator::Id("edit-body")).await?;
    body_field.clear().await?;
    body_field
        .send_keys(r#"{"id":"evt_2","type":"charge.refunded"}"#)
        .await?;
    std::fs::write(
        screenshot_dir()?.join("edit.png"),
        client.screenshot().await?,
    )?;
    client.find(Locator::Id("edit-send")).await?.click().await?;
    let edited = service
        .next_request(PATIENCE)
        .await
        .context("the edited replay reached the service")?;
    assert_eq!(edited.uri, "/webhooks/stripe?attempt=2");
    assert_eq!(
        edited.body,
        br#"{"id":"evt_2","type":"charge.refunded"}"#.as_slice()
    );
    wait_until("the edited replay in the list", PATIENCE, || async {
        Ok(count(
            client,
            r#".row.is-replay[data-path="/webhooks/stripe?attempt=2"]"#,
        )
        .await?
            == 1)
    })
    .await?;

    // Filters: text, then status.
    client
        .find(Locator::Id("q"))
        .await?
        .send_keys("stripe")
        .await?;
    wait_until("the text filter", PATIENCE, || async {
        Ok(count(client, "#list .row").await? == 3)
    })
    .await?;
    client.find(Locator::Id("q")).await?.clear().await?;
    client
        .find(Locator::Css(r#".chip[data-status="4xx"]"#))
        .await?
        .click()
        .await?;
    wait_until("the status filter", PATIENCE, || async {
        Ok(count(client, "#list .row").await? == 1
            && text_of(client, "#list .row .path").await?.as_deref() == Some("/status/404"))
    })
    .await?;
    client
        .find(Locator::Css(r#".chip[data-status=""]"#))
        .await?
        .click()
        .await?;
    wait_until("all rows back", PATIENCE, || async {
        Ok(count(client, "#list .row").await? == 7)
    })
    .await?;

    // The picture people look at: the original webhook, its request body.
    client.find(Locator::Css(&row)).await?.click().await?;
    wait_for_text(client, "#request-body .body-view", "payment_intent").await?;
    wait_until("the toast to go", PATIENCE, || async {
        let shown = client
            .execute(
                "return getComputedStyle(document.getElementById('toast')).opacity;",
                vec![],
            )
            .await?;
        Ok(shown.as_str() == Some("0"))
    })
    .await?;
    let png = client.screenshot().await?;
    let file = screenshot_dir()?.join("inspector.png");
    std::fs::write(&file, &png)?;
    eprintln!("screenshot: {}", file.display());
    ensure!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    Ok(())
}
