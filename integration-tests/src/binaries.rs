//! The four handler binaries, built once per process with
//! `cargo build -p tunnel-handlers --bins` (cargo reports where it put them,
//! so `CARGO_TARGET_DIR` and profiles just work), or taken from
//! `ITEST_HANDLERS_DIR` when set (prebuilt, e.g. by CI).
//!
//! Built binaries are hard-linked into `<target>/itest/handlers/<pid>/`, so a
//! `cargo build` elsewhere (another terminal, another test process) never
//! swaps them under a running stack: every cold start runs the same build.
//! The directory goes at exit; those of dead processes are pruned.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use handlers::manifest::FUNCTIONS;

use crate::{
    error::HarnessError,
    paths::{target_dir, workspace_root},
};

/// Directory holding prebuilt `connect`, `disconnect`, `forwarding`, `response`.
pub const HANDLERS_DIR_ENV: &str = "ITEST_HANDLERS_DIR";

/// Function name (the manifest's) → executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerBinaries {
    paths: BTreeMap<&'static str, PathBuf>,
}

impl HandlerBinaries {
    pub fn path(&self, function: &str) -> &Path {
        self.paths
            .get(function)
            .unwrap_or_else(|| panic!("no binary for function {function:?}"))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        self.paths
            .iter()
            .map(|(name, path)| (*name, path.as_path()))
    }
}

/// The handler binaries, built on the first call of this process (blocking:
/// use `spawn_blocking` from async code, or [`handler_binaries_async`]).
pub fn handler_binaries() -> Result<HandlerBinaries, HarnessError> {
    static BUILT: OnceLock<Result<HandlerBinaries, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| locate_or_build().map_err(|e| e.to_string()))
        .clone()
        .map_err(HarnessError::Build)
}

/// [`handler_binaries`] off the async runtime's worker threads.
pub async fn handler_binaries_async() -> Result<HandlerBinaries, HarnessError> {
    tokio::task::spawn_blocking(handler_binaries)
        .await
        .map_err(|e| HarnessError::Build(e.to_string()))?
}

fn locate_or_build() -> Result<HandlerBinaries, HarnessError> {
    if let Some(dir) = std::env::var_os(HANDLERS_DIR_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        let mut paths = BTreeMap::new();
        for function in FUNCTIONS {
            let path = dir.join(function.name);
            if !path.is_file() {
                return Err(HarnessError::Build(format!(
                    "{HANDLERS_DIR_ENV}={} has no {} binary",
                    dir.display(),
                    function.name
                )));
            }
            paths.insert(function.name, path);
        }
        return Ok(HandlerBinaries { paths });
    }
    build()
}

fn build() -> Result<HandlerBinaries, HarnessError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    // Cargo gives a test process its package's variables (CARGO_PKG_NAME,
    // CARGO_MANIFEST_DIR…). Build scripts such as ring's rerun when those
    // change, so passing them on would rebuild half the dependency tree here
    // and again on the next `cargo test`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || name.starts_with("CARGO_BIN_")
            || matches!(
                name.as_ref(),
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
            )
        {
            command.env_remove(name.as_ref());
        }
    }
    let mut child = command
        .args([
            "build",
            "-p",
            "tunnel-handlers",
            "--bins",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| HarnessError::Build(format!("running {}: {e}", cargo.to_string_lossy())))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut paths = BTreeMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| HarnessError::Build(e.to_string()))?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(name), Some(executable)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) else {
            continue;
        };
        if let Some(function) = FUNCTIONS.iter().find(|f| f.name == name) {
            paths.insert(function.name, PathBuf::from(executable));
        }
    }
    let status = child
        .wait()
        .map_err(|e| HarnessError::Build(e.to_string()))?;
    if !status.success() {
        return Err(HarnessError::Build(format!(
            "cargo exited with {status}; its errors are above"
        )));
    }
    if let Some(missing) = FUNCTIONS.iter().find(|f| !paths.contains_key(f.name)) {
        return Err(HarnessError::Build(format!(
            "cargo built no `{}` binary (handlers/src/bin/{}.rs)",
            missing.name, missing.name
        )));
    }
    snapshot(paths)
}

/// Hard-links (or copies) the binaries into a directory of this process.
fn snapshot(paths: BTreeMap<&'static str, PathBuf>) -> Result<HandlerBinaries, HarnessError> {
    let root = target_dir().join("itest").join("handlers");
    prune_dead(&root);
    let dir = root.join(std::process::id().to_string());
    std::fs::create_dir_all(&dir)
        .map_err(HarnessError::io(format!("creating {}", dir.display())))?;
    let mut snapshot = BTreeMap::new();
    for (name, source) in paths {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::fs::hard_link(&source, &link)
            .or_else(|_| std::fs::copy(&source, &link).map(drop))
            .map_err(HarnessError::io(format!(
                "linking {} to {}",
                source.display(),
                link.display()
            )))?;
        snapshot.insert(name, link);
    }
    crate::at_exit::at_exit(move || {
        let _ = std::fs::remove_dir_all(&dir);
    });
    Ok(HandlerBinaries { paths: snapshot })
}

/// Removes the snapshot directories of processes that no longer run.
fn prune_dead(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
