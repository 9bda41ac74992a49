//! Shared test setup: fixture functions, the channel their events come back
//! on, and small assertions.

use std::{collections::BTreeSet, time::Duration};

use emulator::{Config, Emulator, FunctionConfig};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};

pub const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture-lambda");
/// Safety net for waits; tests wait for events, not for time.
pub const WAIT: Duration = Duration::from_secs(30);

/// Events the fixture reports (`{"pid":…,"event":…}` lines over TCP).
pub struct Reports {
    rx: mpsc::UnboundedReceiver<Value>,
    addr: String,
    task: JoinHandle<()>,
}

impl Drop for Reports {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Reports {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut text = String::new();
                    if stream.read_to_string(&mut text).await.is_ok()
                        && let Ok(value) = serde_json::from_str::<Value>(text.trim())
                    {
                        let _ = tx.send(value);
                    }
                });
            }
        });
        Self { rx, addr, task }
    }

    /// The next report whose event satisfies `pred`; others are skipped.
    pub async fn next_where(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                let report = self.rx.recv().await.expect("reports channel open");
                if pred(&report["event"]) {
                    return report;
                }
            }
        })
        .await
        .expect("the expected event arrived in time")
    }

    pub async fn next_event_type(&mut self, event_type: &str) -> Value {
        self.next_where(|e| e["requestContext"]["eventType"] == event_type)
            .await
    }

    /// A fixture function that reports its events here.
    pub fn function(&self, name: &str, env: &[(&str, &str)]) -> FunctionConfig {
        let mut function = FunctionConfig::new(name, FIXTURE);
        function
            .environment
            .insert("FIXTURE_REPORT_ADDR".into(), self.addr.clone());
        for (k, v) in env {
            function.environment.insert((*k).into(), (*v).into());
        }
        function
    }
}

/// Where a fixture's streamed pieces wait (`FIXTURE_GATE_ADDR`): the test
/// opens each gate when it wants the piece written.
pub struct Gates {
    rx: mpsc::UnboundedReceiver<Gate>,
    addr: String,
    task: JoinHandle<()>,
}

impl Drop for Gates {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A function waiting before one piece.
pub struct Gate {
    pub name: String,
    stream: TcpStream,
}

impl Gate {
    pub async fn open(mut self) {
        let _ = self.stream.write_all(b"go\n").await;
    }
}

impl Gates {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mut reader = BufReader::new(stream);
                let mut name = String::new();
                if reader.read_line(&mut name).await.is_ok() {
                    let name = name.trim().to_owned();
                    let _ = tx.send(Gate {
                        name,
                        stream: reader.into_inner(),
                    });
                }
            }
        });
        Self { rx, addr, task }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The next gate a function waits at: it is about to write that piece.
    pub async fn next(&mut self) -> Gate {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("the function reached a gate in time")
            .expect("gates channel open")
    }

    /// Opens the next gate, which must be `name`.
    pub async fn open(&mut self, name: &str) {
        let gate = self.next().await;
        assert_eq!(gate.name, name);
        gate.open().await;
    }
}

/// A config with one fixture function `f` behind the HTTP API and every
/// WebSocket route, allowed to use `@connections`.
pub fn config_with(reports: &Reports, env: &[(&str, &str)]) -> Config {
    let mut config = Config::new("local");
    let mut f = reports.function("f", env);
    f.manage_connections = true;
    config.functions.push(f);
    for route in ["$connect", "$disconnect", "$default"] {
        config.websocket.routes.insert(route.into(), "f".into());
    }
    config.http = Some(emulator::HttpConfig::new("f"));
    config
}

pub async fn start(config: Config) -> Emulator {
    Emulator::builder(config)
        .log_sink(emulator::LogSink::Discard)
        .start()
        .await
        .expect("emulator starts")
}

pub fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

pub fn aws_fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/aws/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture file"))
        .expect("fixture json")
}

pub fn is_api_gateway_id(id: &Value) -> bool {
    id.as_str().is_some_and(|s| {
        s.len() == 16
            && s.ends_with('=')
            && s[..15]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// Whether a process is gone (or a zombie waiting to be reaped).
pub fn process_is_dead(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Waits (bounded) for a process to die.
pub async fn wait_dead(pid: u64) {
    tokio::time::timeout(WAIT, async {
        while !process_is_dead(pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the process died in time");
}

/// The real management API client, signing with `credentials` in `region`.
pub fn sdk_client_with(
    endpoint: &str,
    region: &str,
    credentials: &emulator::AwsCredentials,
) -> aws_sdk_apigatewaymanagement::Client {
    use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            &credentials.access_key_id,
            &credentials.secret_access_key,
            credentials.session_token.clone(),
            None,
            "tests",
        ))
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(config)
}

/// The management API client as function `function` would build it.
pub fn sdk_client(emulator: &Emulator, function: &str) -> aws_sdk_apigatewaymanagement::Client {
    let credentials = emulator
        .function_credentials(function)
        .expect("a configured function");
    sdk_client_with(
        emulator.management_endpoint(),
        emulator.region(),
        &credentials,
    )
}

/// Waits (bounded) until `check` holds on the emulator's counters.
pub async fn wait_counters(emulator: &Emulator, check: impl Fn(&emulator::Counters) -> bool) {
    tokio::time::timeout(WAIT, async {
        while !check(&emulator.counters()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the counters reached the expected state in time");
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client")
}

/// The URL id of the live capture (hotsock/voker), so that `domainName`
/// and friends compare equal.
pub const CAPTURE_URL_ID: &str = "2cxn22odiwguak4feg4jtt7cwm0ziblr";

/// One fixture function `f` behind a Function URL with `invoke_mode`, in the
/// capture's region and with its URL id; its pieces wait at `gates`.
pub fn url_config(reports: &Reports, gates: &Gates, invoke_mode: emulator::InvokeMode) -> Config {
    let mut config = Config::new("local");
    config.region = Some("us-west-2".into());
    config
        .functions
        .push(reports.function("f", &[("FIXTURE_GATE_ADDR", gates.addr())]));
    let mut url = emulator::FunctionUrlConfig::new("f");
    url.invoke_mode = invoke_mode;
    url.url_id = Some(CAPTURE_URL_ID.into());
    config.function_urls.push(url);
    config
}

/// The fixture's report that its stream ended: (pieces written, a write failed).
pub async fn stream_report(reports: &mut Reports) -> (Value, u64, bool) {
    let report = reports.next_where(|e| e.get("stream").is_some()).await;
    let stream = &report["event"]["stream"];
    let written = stream["written"].as_u64().expect("written");
    let failed = stream["failed"].as_bool().expect("failed");
    (report["pid"].clone(), written, failed)
}
