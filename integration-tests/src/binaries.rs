//! The four handler binaries: built with `cargo build [--release] -p
//! tunnel-handlers --bins` once per process and profile (cargo reports where
//! it put them, so `CARGO_TARGET_DIR` just works), or taken from a directory
//! of prebuilt ones (`ITEST_HANDLERS_DIR` in place of the debug build, e.g.
//! by CI; the benchmark's `--no-build`).
//!
//! Built binaries are hard-linked into `<target>/itest/handlers/<pid>/<profile>/`,
//! so a `cargo build` elsewhere (another terminal, another test process)
//! never swaps them under a running stack: every cold start runs the same
//! build. The directory goes at exit; those of dead processes are pruned.

use std::{
    collections::BTreeMap,
    fmt,
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

/// Directory holding prebuilt `connect`, `disconnect`, `forwarding`,
/// `response`, used instead of the debug build.
pub const HANDLERS_DIR_ENV: &str = "ITEST_HANDLERS_DIR";

/// Cargo's build profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    #[default]
    Debug,
    Release,
}

impl Profile {
    /// `debug` or `release`: also the directory under the target directory.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a stack's handler binaries come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerSource {
    /// `cargo build` with this profile, once per process. For
    /// [`Profile::Debug`], `ITEST_HANDLERS_DIR` (when set) replaces the build.
    Build(Profile),
    /// Binaries already built, named after the functions, in this directory:
    /// no cargo run.
    Dir(PathBuf),
}

impl Default for HandlerSource {
    fn default() -> Self {
        HandlerSource::Build(Profile::Debug)
    }
}

/// Function name (the manifest's) → executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerBinaries {
    /// What the stack runs (the snapshot of a build).
    paths: BTreeMap<&'static str, PathBuf>,
    /// Where cargo put them (or the directory they were found in).
    built: BTreeMap<&'static str, PathBuf>,
}

impl HandlerBinaries {
    /// The executable a stack runs for `function`.
    pub fn path(&self, function: &str) -> &Path {
        self.paths
            .get(function)
            .unwrap_or_else(|| panic!("no binary for function {function:?}"))
    }

    /// Where cargo put `function`'s binary (the [`HandlerBinaries::path`] of
    /// a build is a hard link of it that lives only as long as the process).
    pub fn built(&self, function: &str) -> &Path {
        self.built
            .get(function)
            .unwrap_or_else(|| panic!("no binary for function {function:?}"))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        self.paths
            .iter()
            .map(|(name, path)| (*name, path.as_path()))
    }
}

/// The default handler binaries (`ITEST_HANDLERS_DIR`, else a debug build),
/// built on the first call of this process (blocking: use `spawn_blocking`
/// from async code, or [`handler_binaries_async`]).
pub fn handler_binaries() -> Result<HandlerBinaries, HarnessError> {
    handlers(&HandlerSource::default())
}

/// [`handler_binaries`] off the async runtime's worker threads.
pub async fn handler_binaries_async() -> Result<HandlerBinaries, HarnessError> {
    handlers_async(HandlerSource::default()).await
}

/// The binaries from `source`; a build runs once per process and profile,
/// later calls return its result (blocking).
pub fn handlers(source: &HandlerSource) -> Result<HandlerBinaries, HarnessError> {
    static BUILT: [OnceLock<Result<HandlerBinaries, String>>; 2] =
        [OnceLock::new(), OnceLock::new()];
    match source {
        HandlerSource::Dir(dir) => in_dir(dir, &dir.display().to_string()),
        HandlerSource::Build(profile) => BUILT[*profile as usize]
            .get_or_init(|| build_or_locate(*profile).map_err(|e| e.to_string()))
            .clone()
            .map_err(HarnessError::Build),
    }
}

/// [`handlers`] off the async runtime's worker threads.
pub async fn handlers_async(source: HandlerSource) -> Result<HandlerBinaries, HarnessError> {
    tokio::task::spawn_blocking(move || handlers(&source))
        .await
        .map_err(|e| HarnessError::Build(e.to_string()))?
}

fn build_or_locate(profile: Profile) -> Result<HandlerBinaries, HarnessError> {
    if profile == Profile::Debug
        && let Some(dir) = std::env::var_os(HANDLERS_DIR_ENV).filter(|d| !d.is_empty())
    {
        let dir = PathBuf::from(dir);
        return in_dir(&dir, &format!("{HANDLERS_DIR_ENV}={}", dir.display()));
    }
    build(profile)
}

/// The binaries in `dir`, each checked to exist; `named` says where `dir`
/// came from in the error.
fn in_dir(dir: &Path, named: &str) -> Result<HandlerBinaries, HarnessError> {
    let mut paths = BTreeMap::new();
    for function in FUNCTIONS {
        let path = dir.join(function.name);
        if !path.is_file() {
            return Err(HarnessError::Build(format!(
                "{named} has no {} binary",
                function.name
            )));
        }
        paths.insert(function.name, path);
    }
    Ok(HandlerBinaries {
        built: paths.clone(),
        paths,
    })
}

fn build(profile: Profile) -> Result<HandlerBinaries, HarnessError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args = vec!["build", "-p", "tunnel-handlers", "--bins"];
    if profile == Profile::Release {
        args.push("--release");
    }
    let shown = format!("cargo {}", args.join(" "));
    args.push("--message-format=json-render-diagnostics");
    let mut command = Command::new(&cargo);
    as_from_a_shell(&mut command);
    let mut child = command
        .args(&args)
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
            "`{shown}` exited with {status}; its errors are above"
        )));
    }
    if let Some(missing) = FUNCTIONS.iter().find(|f| !paths.contains_key(f.name)) {
        return Err(HarnessError::Build(format!(
            "`{shown}` built no `{}` binary (handlers/src/bin/{}.rs)",
            missing.name, missing.name
        )));
    }
    snapshot(profile, paths)
}

/// Under `cargo run` or `cargo test` (how the harness's binaries and tests
/// start) cargo adds its own variables and library paths; a nested build
/// that sees them reruns some dependencies' build scripts and rebuilds what
/// the outer build just built. Hand it the environment a shell would have.
fn as_from_a_shell(command: &mut Command) {
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
    if let Some(paths) = std::env::var_os("LD_LIBRARY_PATH") {
        let target = target_dir();
        let kept: Vec<PathBuf> = std::env::split_paths(&paths)
            .filter(|p| !p.starts_with(&target) && !p.to_string_lossy().contains("/toolchains/"))
            .collect();
        match std::env::join_paths(kept) {
            Ok(joined) if !joined.is_empty() => command.env("LD_LIBRARY_PATH", joined),
            _ => command.env_remove("LD_LIBRARY_PATH"),
        };
    }
}

/// Hard-links (or copies) the binaries into a directory of this process.
fn snapshot(
    profile: Profile,
    built: BTreeMap<&'static str, PathBuf>,
) -> Result<HandlerBinaries, HarnessError> {
    let root = target_dir().join("itest").join("handlers");
    prune_dead(&root);
    let mine = root.join(std::process::id().to_string());
    let dir = mine.join(profile.name());
    std::fs::create_dir_all(&dir)
        .map_err(HarnessError::io(format!("creating {}", dir.display())))?;
    let mut paths = BTreeMap::new();
    for (name, source) in &built {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::fs::hard_link(source, &link)
            .or_else(|_| std::fs::copy(source, &link).map(drop))
            .map_err(HarnessError::io(format!(
                "linking {} to {}",
                source.display(),
                link.display()
            )))?;
        paths.insert(*name, link);
    }
    crate::at_exit::at_exit(move || {
        let _ = std::fs::remove_dir_all(&mine);
    });
    Ok(HandlerBinaries { paths, built })
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
