//! The `local-stack` binary (`just dev`) as a user runs it: it comes up,
//! prints the endpoints and the agent command, serves a tunnel with
//! `--expose` (by path, or by host with `--routing host`), and stops cleanly
//! on Ctrl-C.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use itest::{LocalService, binaries::handler_binaries_async};

const PATIENCE: Duration = Duration::from_secs(120);

/// The child, killed if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of stdout, read on a thread.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads lines until one satisfies `find`, returning what it extracts.
fn wait_for<T>(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    find: impl Fn(&str) -> Option<T>,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = find(&line);
                seen.push(line);
                if let Some(found) = found {
                    return found;
                }
            }
            Err(e) => panic!(
                "local-stack printed no expected line ({e}); output so far:\n{}",
                seen.join("\n")
            ),
        }
    }
}

#[tokio::test]
async fn local_stack_exposes_a_service_and_stops_on_ctrl_c() -> anyhow::Result<()> {
    let binaries = handler_binaries_async().await?;
    let handlers_dir = binaries
        .path("connect")
        .parent()
        .expect("binaries live in a directory")
        .to_path_buf();
    let service = LocalService::start("dev").await?;

    let mut child = Command::new(env!("CARGO_BIN_EXE_local-stack"))
        .args([
            "--http-port",
            "0",
            "--ws-port",
            "0",
            "--function-logs",
            "discard",
        ])
        .args(["--expose", &service.port()])
        .env("ITEST_HANDLERS_DIR", &handlers_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let rx = lines(&mut child);
    let mut child = Running(child);
    let mut seen = Vec::new();

    let websocket = wait_for(&rx, &mut seen, |l| {
        l.trim()
            .strip_prefix("WebSocket endpoint")
            .map(|s| s.trim().to_string())
    });
    assert!(
        websocket.starts_with("ws://127.0.0.1:") && websocket.ends_with("/local"),
        "{websocket}"
    );
    let base = wait_for(&rx, &mut seen, |l| {
        l.trim()
            .strip_prefix("Public base URL")
            .map(|s| s.trim().to_string())
    });
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let command = wait_for(&rx, &mut seen, |l| {
        l.trim()
            .starts_with("cargo run -p tunnel-agent")
            .then(|| l.trim().to_string())
    });
    // The command carries a token minted with this run's secret.
    let token = command
        .strip_prefix(&format!(
            "cargo run -p tunnel-agent -- 3000 --endpoint {websocket} --token "
        ))
        .unwrap_or_else(|| panic!("{command}"));
    assert_eq!(token.split('.').count(), 3, "{command}");

    // The agent's public URL, from the "Try it" examples.
    let public_url = wait_for(&rx, &mut seen, |l| {
        let url = l.trim().strip_prefix("curl ")?;
        (url.starts_with(&base) && !url.contains('<') && !url.contains("Host:"))
            .then(|| url.trim_end_matches('/').to_string())
    });
    let subdomain = public_url
        .rsplit('/')
        .next()
        .expect("a subdomain")
        .to_string();
    assert!(protocol::is_valid_subdomain(&subdomain), "{public_url}");

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let response = client
        .get(format!("{public_url}/via-path?x=1"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-service"], "dev");
    // Path routing only: a Host naming the tunnel is not another way in.
    let response = client
        .get(format!("{base}/via-host"))
        .header("host", format!("{subdomain}.tunnel.localhost"))
        .send()
        .await?;
    assert_eq!(response.status(), 404);

    // Ctrl-C: a clean stop, and nothing listens any more.
    // SAFETY: kill(2) on the pid of a child we own and have not reaped.
    assert_eq!(
        unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait()? {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "local-stack did not stop after Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "local-stack exited with {status}");
    let address = base.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "{address} still listens"
    );
    Ok(())
}

/// `--routing host`: the agent's URL is `http://<sub>.tunnel.localhost:PORT`
/// and it works as printed (resolved to the loopback address, as browsers
/// and curl do for `*.localhost`); the path is no way in.
#[tokio::test]
async fn local_stack_routes_by_host_with_routing_host() -> anyhow::Result<()> {
    let binaries = handler_binaries_async().await?;
    let handlers_dir = binaries
        .path("connect")
        .parent()
        .expect("dir")
        .to_path_buf();
    let service = LocalService::start("dev-host").await?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-stack"))
        .args(["--routing", "host", "--http-port", "0", "--ws-port", "0"])
        .args(["--function-logs", "discard", "--no-inspect"])
        .args(["--expose", &service.port()])
        .env("ITEST_HANDLERS_DIR", &handlers_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let rx = lines(&mut child);
    let _child = Running(child);
    let mut seen = Vec::new();
    let base = wait_for(&rx, &mut seen, |l| {
        l.trim()
            .strip_prefix("Public base URL")
            .map(|s| s.trim().to_string())
    });
    let public_url = wait_for(&rx, &mut seen, |l| {
        let url = l.trim().strip_prefix("curl ")?;
        (url.contains(".tunnel.localhost:") && !url.contains('<'))
            .then(|| url.trim_end_matches('/').to_string())
    });
    let host = public_url
        .strip_prefix("http://")
        .and_then(|rest| rest.split(':').next())
        .expect("http://<sub>.tunnel.localhost:PORT")
        .to_string();
    let subdomain = host.strip_suffix(".tunnel.localhost").expect("a subdomain");
    assert!(protocol::is_valid_subdomain(subdomain), "{public_url}");
    let address: std::net::SocketAddr = base.trim_start_matches("http://").parse()?;
    assert!(
        public_url.ends_with(&format!(":{}", address.port())),
        "{public_url} vs {base}"
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .resolve(&host, address)
        .build()?;
    let response = client.get(format!("{public_url}/via-host")).send().await?;
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await?;
    assert_eq!(echo["uri"], "/via-host");
    let response = client
        .get(format!("{base}/{subdomain}/via-path"))
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    Ok(())
}

#[tokio::test]
async fn local_stack_says_when_nothing_listens_on_the_exposed_port() -> anyhow::Result<()> {
    let binaries = handler_binaries_async().await?;
    let handlers_dir = binaries
        .path("connect")
        .parent()
        .expect("dir")
        .to_path_buf();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();

    let mut child = Command::new(env!("CARGO_BIN_EXE_local-stack"))
        .args([
            "--http-port",
            "0",
            "--ws-port",
            "0",
            "--function-logs",
            "discard",
        ])
        .args(["--expose", &port.to_string()])
        .env("ITEST_HANDLERS_DIR", &handlers_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let rx = lines(&mut child);
    let _child = Running(child);
    let mut seen = Vec::new();
    let warning = wait_for(&rx, &mut seen, |l| {
        l.contains("nothing is listening").then(|| l.to_string())
    });
    assert_eq!(
        warning.trim(),
        format!(
            "nothing is listening on 127.0.0.1:{port} yet — start your app; requests will get 502 until then"
        )
    );
    Ok(())
}
