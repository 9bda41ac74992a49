//! `--inspect-save FILE`: every finished exchange appended to FILE as one
//! JSON line (the API's detail shape, bodies in base64). The only way the
//! inspector writes anything to disk, and only when asked.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use super::capture::Exchange;
use super::view::Detail;

/// Lines waiting for the writer; beyond this they are dropped (and the
/// user told once) rather than held in memory.
const QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[error("cannot open {path} to save captured requests (--inspect-save)")]
pub struct SaveError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Appends lines from a background thread, so a slow disk never slows a
/// request. Dropping the saver waits until every queued line is written.
#[derive(Debug)]
pub struct Saver {
    lines: Option<mpsc::SyncSender<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
    warned: AtomicBool,
}

impl Drop for Saver {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has written the rest.
        self.lines.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Saver {
    /// Opens (creating, readable by the owner only) `path` for appending.
    pub fn open(path: &Path) -> Result<Saver, SaveError> {
        let file = open_private(path).map_err(|source| SaveError {
            path: path.to_owned(),
            source,
        })?;
        let (lines, rx) = mpsc::sync_channel::<String>(QUEUE);
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("inspect-save".into())
            .spawn(move || write_lines(file, rx, &shown))
            .map_err(|source| SaveError {
                path: path.to_owned(),
                source,
            })?;
        Ok(Saver {
            lines: Some(lines),
            thread: Some(thread),
            warned: AtomicBool::new(false),
        })
    }

    pub(crate) fn save(&self, exchange: &Exchange) {
        let Ok(line) = serde_json::to_string(&Detail::of(exchange)) else {
            return;
        };
        let queued = self
            .lines
            .as_ref()
            .is_some_and(|l| l.try_send(line).is_ok());
        if !queued && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "--inspect-save cannot keep up (or failed): some requests are not saved"
            );
        }
    }
}

fn write_lines(mut file: File, rx: mpsc::Receiver<String>, path: &str) {
    for line in rx {
        let written = file
            .write_all(line.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.flush());
        if let Err(e) = written {
            tracing::warn!(path, error = %e, "--inspect-save stopped: cannot write");
            return;
        }
    }
}

fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}
