//! A run directory: everything one run leaves behind, written so that a crash or an
//! interrupt at any moment loses nothing already written (write, then rename).
//!
//! ```text
//! config.ron             the resolved config (load it to repeat the run)
//! metrics.jsonl          one JSON object per logged or evaluated step
//! summary.json           final and best metrics, sizes, wall time, versions
//! train.log              the log
//! run.lock               held by the process training in it
//! tb/                    TensorBoard event files: the metrics as scalars, the HParams session
//! checkpoints/latest     name of the newest complete checkpoint
//! checkpoints/step-N/    weights.safetensors, optimizer.safetensors, trainer.json,
//!                        carried_state.safetensors (tasks that carry state), manifest.json
//!                        (the files' SHA-256, written last); the newest `keep_checkpoints`
//! checkpoints/set-aside/ checkpoints newer than the one a resume went back to
//! best/                  weights of the best validated model
//! ```

use crate::error::{RunDirError, RunError};
pub use elmlab_core::fs::write_atomic;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// See [`RunDir::state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Finished,
    Unfinished,
    Missing,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Finished => "finished",
            RunState::Unfinished => "unfinished",
            RunState::Missing => "missing",
        }
    }
}

/// A lock file held by this process: an OS file lock (`flock`), released when the
/// process ends however it ends (see [`RunDir::lock`]).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Takes the lock on `path` (created if needed); `Ok(None)` when another process holds it.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<RunLock>> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(RunLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates a new run directory; refuses one that already holds a run.
    pub fn create(path: &Path) -> Result<Self, RunError> {
        let dir = RunDir { path: path.to_path_buf() };
        if dir.latest_checkpoint()?.is_some() || dir.config_path().exists() {
            return Err(RunDirError::Occupied { path: path.to_path_buf() }.into());
        }
        std::fs::create_dir_all(path).map_err(|e| RunError::io(format!("creating {}", path.display()), e))?;
        Ok(dir)
    }

    /// Opens an existing run directory (it must hold a config).
    pub fn open(path: &Path) -> Result<Self, RunError> {
        let dir = RunDir { path: path.to_path_buf() };
        if !dir.config_path().is_file() {
            return Err(RunDirError::NotARun { path: path.to_path_buf() }.into());
        }
        Ok(dir)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.ron")
    }
    pub fn tb_dir(&self) -> PathBuf {
        self.path.join("tb")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
    }
    pub fn summary_path(&self) -> PathBuf {
        self.path.join("summary.json")
    }
    pub fn log_path(&self) -> PathBuf {
        self.path.join("train.log")
    }
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.path.join("checkpoints")
    }
    pub fn best_dir(&self) -> PathBuf {
        self.path.join("best")
    }

    /// Where the run stands: finished (a summary), unfinished (a checkpoint to resume
    /// from), or missing (never started, or stopped before its first checkpoint).
    pub fn state(&self) -> RunState {
        if self.summary_path().is_file() {
            RunState::Finished
        } else if self.checkpoints_dir().join("latest").is_file() {
            RunState::Unfinished
        } else {
            RunState::Missing
        }
    }

    /// The newest complete checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Result<Option<PathBuf>, RunError> {
        let pointer = self.checkpoints_dir().join("latest");
        match std::fs::read_to_string(&pointer) {
            Ok(name) => {
                let dir = self.checkpoints_dir().join(name.trim());
                if dir.is_dir() {
                    Ok(Some(dir))
                } else {
                    Err(RunDirError::DanglingLatest { pointer, target: dir }.into())
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RunError::io(format!("reading {}", pointer.display()), e)),
        }
    }

    /// The checkpoints (`checkpoints/step-N/`), newest first.
    pub fn checkpoints(&self) -> Vec<(u64, PathBuf)> {
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(self.checkpoints_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let step = name.strip_prefix("step-")?.parse().ok()?;
                e.path().is_dir().then(|| (step, e.path()))
            })
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0));
        found
    }

    /// Holds the directory for this process until the lock is dropped: a second process
    /// asking for it is refused at once (an OS file lock, released however the holder ends).
    pub fn lock(&self) -> Result<RunLock, RunError> {
        let path = self.path.join("run.lock");
        match RunLock::try_acquire(&path) {
            Ok(Some(lock)) => Ok(lock),
            Ok(None) => Err(RunDirError::Locked { path: self.path.clone(), lock: path }.into()),
            Err(e) => Err(RunError::io(format!("locking {}", path.display()), e)),
        }
    }

    /// Appends one JSON line to metrics.jsonl (flushed, so a crash keeps it).
    pub fn append_metrics(&self, line: &Value) -> Result<(), RunError> {
        let path = self.metrics_path();
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| RunError::io(format!("opening {}", path.display()), e))?;
        writeln!(f, "{line}").and_then(|_| f.flush()).map_err(|e| RunError::io(format!("writing {}", path.display()), e))
    }

    /// Keeps only the metric lines up to `step` (lines written after the checkpoint a
    /// resumed run starts from are written again, identically). A torn last line goes too.
    pub fn truncate_metrics_after(&self, step: u64) -> Result<(), RunError> {
        let path = self.metrics_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(RunError::io(format!("reading {}", path.display()), e)),
        };
        let kept: String = text
            .lines()
            .filter(|l| serde_json::from_str::<Value>(l).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| s <= step))
            .map(|l| format!("{l}\n"))
            .collect();
        Ok(write_atomic(&path, kept.as_bytes())?)
    }

    pub fn read_metrics(&self) -> Result<Vec<Value>, RunError> {
        let path = self.metrics_path();
        let text = std::fs::read_to_string(&path).map_err(|e| RunError::io(format!("reading {}", path.display()), e))?;
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }
}
