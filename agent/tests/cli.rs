//! The `tunnel` binary as a user runs it: what it prints on stdout and
//! stderr, read whole, against the in-process tunnel server.

mod support;

use std::process::Stdio;

use protocol::ErrorCode;
use support::*;
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};

/// In the endpoint's query: must never be printed.
const ENDPOINT_SECRET: &str = "S3CRET-endpoint-token";
/// In a visitor's query: must never be printed either.
const QUERY_SECRET: &str = "S3CRET-visitor-query";

fn tunnel() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tunnel"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TUNNEL_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Waits for the process to exit; its status, stdout and stderr.
async fn output(mut child: Child) -> (i32, String, String) {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // Read both pipes while it runs so a full pipe never blocks it.
    let out = tokio::spawn(async move {
        let mut s = String::new();
        stdout.read_to_string(&mut s).await.unwrap();
        s
    });
    let err = tokio::spawn(async move {
        let mut s = String::new();
        stderr.read_to_string(&mut s).await.unwrap();
        s
    });
    let status = within("the agent to exit", child.wait()).await.unwrap();
    (
        status.code().unwrap_or(-1),
        out.await.unwrap(),
        err.await.unwrap(),
    )
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One run through every path that reports something: a failed TCP
/// connection, a tunnel, a failed request with a secret in its query, a lost
/// connection, a refused token. Returns (exit code, stdout, stderr).
async fn session(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let server = TunnelServer::bind().await;
    let endpoint = format!("{}?token={ENDPOINT_SECRET}", server.endpoint);
    let target = closed_port().to_string();
    let child = tunnel()
        .arg(&target)
        .args(["--endpoint", &endpoint])
        .args(args)
        .envs(envs.iter().copied())
        .spawn()
        .unwrap();
    server.accept_and_drop().await;
    let mut conn = server.accept().await;
    assert_eq!(
        conn.path, "/dev",
        "the query is sent, in the request line, not the path"
    );
    conn.establish("abc123").await;
    let uri = format!("/hook?token={QUERY_SECRET}");
    let answer = expect_error(conn.roundtrip(request("r1", "GET", &uri)).await);
    assert_eq!(answer.code, ErrorCode::LocalServiceUnavailable);
    drop(conn);
    assert!(server.accept_with_status(Some(401)).await.is_none());
    output(child).await
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [ENDPOINT_SECRET, QUERY_SECRET] {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

#[tokio::test]
async fn default_verbosity_prints_problems_and_no_dependency_debug_lines() {
    let (code, stdout, stderr) = session(&[], &[]).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Forwarding  https://abc123.tunnel.test"),
        "{stdout}"
    );
    // The TCP failure names the endpoint, masked.
    assert!(stdout.contains("/dev?token=***"), "{stdout}");
    assert!(stderr.contains("the server rejected the token"), "{stderr}");
    for level in ["DEBUG", "TRACE", " INFO "] {
        assert!(
            !stderr.contains(level),
            "{level} line at the default verbosity:\n{stderr}"
        );
    }
    assert_no_secret("stdout", &stdout);
    assert_no_secret("stderr", &stderr);
}

#[tokio::test]
async fn no_secret_is_printed_at_any_verbosity() {
    for (args, envs) in [
        (&["-vvv"][..], &[][..]),
        (&[][..], &[("TUNNEL_LOG", "trace")][..]),
        (&["--log-format", "json", "-vvv"][..], &[][..]),
    ] {
        let (code, stdout, stderr) = session(args, envs).await;
        assert_eq!(code, 1, "{args:?} {envs:?}\n{stdout}\n{stderr}");
        let all = format!("{stdout}\n{stderr}");
        assert!(all.contains("token=***"), "{args:?} {envs:?}:\n{all}");
        assert_no_secret(&format!("{args:?} {envs:?}"), &all);
    }
}

#[tokio::test]
async fn a_bad_endpoint_is_refused_without_printing_its_token() {
    let bad = format!("https://tunnel.example.com/prod?token={ENDPOINT_SECRET}");
    for via_env in [false, true] {
        let mut command = tunnel();
        command.arg("3000");
        if via_env {
            command.env("TUNNEL_ENDPOINT", &bad);
        } else {
            command.args(["--endpoint", &bad]);
        }
        let (code, stdout, stderr) = output(command.spawn().unwrap()).await;
        assert_eq!(code, 2, "{stdout}\n{stderr}");
        assert!(stderr.contains("must start with wss://"), "{stderr}");
        assert!(stderr.contains("token=***"), "{stderr}");
        assert_no_secret("the error", &format!("{stdout}{stderr}"));
    }
    // `--help` does not show the environment's value either.
    let mut command = tunnel();
    command.arg("--help").env(
        "TUNNEL_ENDPOINT",
        format!("wss://x.example.com/p?token={ENDPOINT_SECRET}"),
    );
    let (code, stdout, stderr) = output(command.spawn().unwrap()).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("--max-in-flight"), "{stdout}");
    assert_no_secret("--help", &format!("{stdout}{stderr}"));
}

#[tokio::test]
async fn max_in_flight_is_read_from_the_flag_and_the_environment() {
    for (args, envs) in [
        (&["--max-in-flight", "0"][..], &[][..]),
        (&[][..], &[("TUNNEL_MAX_IN_FLIGHT", "lots")][..]),
    ] {
        let mut command = tunnel();
        command
            .args(["3000", "--endpoint", "ws://127.0.0.1:1/dev"])
            .args(args)
            .envs(envs.iter().copied());
        let (code, _, stderr) = output(command.spawn().unwrap()).await;
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("from 1 to 10000"), "{stderr}");
    }
}
