//! moto (`moto[server]` from PyPI) as the DynamoDB backend: installed on first
//! use into a virtual environment the project owns (`target/venvs/moto`),
//! started on an ephemeral port, stopped when dropped.
//!
//! The server runs under a tiny launcher that binds port 0, prints the port it
//! got and exits when its standard input closes, so a moto started by a test
//! process dies with that process even when nothing drops it (a `static`).

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use crate::{error::HarnessError, paths::target_dir};

/// The pip requirement installed into the venv.
pub const MOTO_REQUIREMENT: &str = "moto[server]";

/// How long the launcher may take to print its port (Python imports are slow
/// on a cold cache).
const START_TIMEOUT: Duration = Duration::from_secs(60);

const LAUNCHER: &str = r#"
import logging, signal, sys
# Ctrl-C in a terminal reaches the whole process group: the owner stops us.
signal.signal(signal.SIGINT, signal.SIG_IGN)
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"ITEST_MOTO_LISTENING {host}:{port}", flush=True)
# Serve until the parent closes our stdin (or dies): no orphans.
sys.stdin.read()
"#;

/// The virtual environment: `ITEST_MOTO_VENV` or `<target>/venvs/moto`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("ITEST_MOTO_VENV") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => target_dir().join("venvs").join("moto"),
    }
}

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Installs moto into [`venv_dir`] unless a previous run finished doing so.
/// Safe to call from several test processes at once: a lock file serializes
/// them and a marker written last says the install is complete. Blocking.
pub fn ensure_installed() -> Result<PathBuf, HarnessError> {
    let venv = venv_dir();
    let marker = venv.join(".itest-installed");
    if marker.exists() {
        return Ok(venv);
    }
    let parent = venv.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(HarnessError::io(format!("creating {}", parent.display())))?;
    let lock_path = parent.join(".moto-install.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(HarnessError::io(format!("opening {}", lock_path.display())))?;
    lock.lock()
        .map_err(HarnessError::io(format!("locking {}", lock_path.display())))?;
    let result = install_locked(&venv, &marker);
    // Dropping the file releases the lock; unlock explicitly for clarity.
    let _ = File::unlock(&lock);
    result.map(|()| venv)
}

fn install_locked(venv: &Path, marker: &Path) -> Result<(), HarnessError> {
    if marker.exists() {
        return Ok(()); // another process installed it while we waited
    }
    let python = std::env::var("ITEST_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "itest: installing {MOTO_REQUIREMENT} into {} (first use only)",
        venv.display()
    );
    if !venv_python(venv).exists() {
        run_step(
            venv,
            Command::new(&python).arg("-m").arg("venv").arg(venv),
            &format!("{python} -m venv {}", venv.display()),
        )?;
    }
    run_step(
        venv,
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(MOTO_REQUIREMENT),
        &format!("pip install \"{MOTO_REQUIREMENT}\""),
    )?;
    std::fs::write(marker, MOTO_REQUIREMENT)
        .map_err(HarnessError::io(format!("writing {}", marker.display())))
}

fn run_step(venv: &Path, command: &mut Command, step: &str) -> Result<(), HarnessError> {
    let failed = |detail: String| HarnessError::MotoInstall {
        venv: venv.to_path_buf(),
        step: step.to_string(),
        detail,
    };
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(failed(format!("{}: {}", output.status, stderr.trim())))
    }
}

/// A running `moto_server`. Dropping it stops the process.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    /// Held open: closing it tells the launcher to exit.
    stdin: Option<ChildStdin>,
    endpoint: String,
}

impl MotoServer {
    /// Installs moto if needed and starts a server on an ephemeral port.
    /// Blocking (call from `spawn_blocking` in async code).
    pub fn start() -> Result<MotoServer, HarnessError> {
        let venv = ensure_installed()?;
        let mut child = Command::new(venv_python(&venv))
            .arg("-c")
            .arg(LAUNCHER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                HarnessError::MotoStart(format!("spawning {}: {e}", venv_python(&venv).display()))
            })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");

        // Read the port line on a thread so a silent launcher cannot hang us.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("ITEST_MOTO_LISTENING ") {
                    let _ = tx.send(addr.trim().to_string());
                    break;
                }
            }
            // Keep draining so the launcher never blocks on a full pipe.
            for _ in lines {}
        });
        let mut server = MotoServer {
            child,
            stdin,
            endpoint: String::new(),
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                server.endpoint = format!("http://{addr}");
                Ok(server)
            }
            Err(_) => {
                let status = server.child.try_wait().ok().flatten();
                Err(HarnessError::MotoStart(match status {
                    Some(status) => format!(
                        "the launcher exited ({status}) before listening; its stderr is above. \
                         Delete {} to reinstall moto",
                        venv.display()
                    ),
                    None => format!("no port reported within {START_TIMEOUT:?}"),
                }))
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
