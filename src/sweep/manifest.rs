//! The manifest: one resolved run config per line (JSON Lines), with a stable index
//! and a content hash as run id. Everything that runs a sweep — `sweep run`,
//! `run-index` under Slurm, `sweep collect` — reads only this file; run directories
//! live beside it in `runs/<id>`.

use anyhow::{bail, Context, Result};
use elmlab_train::rundir::{RunDir, RunState};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.jsonl";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub index: usize,
    /// Hash of the resolved config: equal configs share a run.
    pub id: String,
    /// The swept keys and their (resolved) values for this run.
    pub axes: Map<String, Value>,
    pub seed: u64,
    pub budget: Option<usize>,
    pub units: usize,
    pub params: usize,
    pub k_e: usize,
    pub k_c: usize,
    /// The resolved config, as RON.
    pub config: String,
}

/// The run id of a resolved config: the first 16 hex digits of its SHA-256.
pub fn run_id(config_ron: &str) -> String {
    let digest = Sha256::digest(config_ron.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// See [`Manifest::status`].
pub struct Status {
    pub state: RunState,
    pub failure: Option<String>,
}

impl Status {
    /// `finished`, `failed`, `unfinished` or `missing`.
    pub fn as_str(&self) -> &'static str {
        if self.failure.is_some() { "failed" } else { self.state.as_str() }
    }
}

pub struct Manifest {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Reads a manifest file, or `manifest.jsonl` inside a sweep directory.
    pub fn read(path: &Path) -> Result<Self> {
        let path = if path.is_dir() { path.join(MANIFEST) } else { path.to_path_buf() };
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading manifest {} (write one with `elmlab sweep plan SWEEP_FILE`)", path.display()))?;
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let e: Entry = serde_json::from_str(line).with_context(|| format!("{} line {}: not a manifest entry", path.display(), n + 1))?;
            if e.index != entries.len() {
                bail!("{} line {}: index {} out of order (expected {})", path.display(), n + 1, e.index, entries.len());
            }
            entries.push(e);
        }
        Ok(Manifest { path, entries })
    }

    pub fn write(path: &Path, entries: &[Entry]) -> Result<()> {
        let mut text = String::new();
        for e in entries {
            text += &serde_json::to_string(e)?;
            text.push('\n');
        }
        elmlab_train::rundir::write_atomic(path, text.as_bytes())?;
        Ok(())
    }

    /// The sweep directory: where the manifest lives.
    pub fn dir(&self) -> PathBuf {
        self.path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
    }

    pub fn run_dir(&self, entry: &Entry) -> PathBuf {
        self.dir().join("runs").join(&entry.id)
    }

    /// Where the entry's run stands.
    pub fn run_state(&self, entry: &Entry) -> RunState {
        RunDir { path: self.run_dir(entry) }.state()
    }

    /// Where the entry's run stands, with the error of its last attempt if that failed
    /// (and it has not finished since).
    pub fn status(&self, entry: &Entry) -> Status {
        let state = self.run_state(entry);
        let failure = (state != RunState::Finished).then(|| std::fs::read_to_string(self.failure_path(entry)).ok().map(|s| s.trim().to_string())).flatten();
        Status { state, failure }
    }

    /// Beside the run directory: the lock held while a process trains it.
    pub fn lock_path(&self, entry: &Entry) -> PathBuf {
        self.dir().join("runs").join(format!("{}.lock", entry.id))
    }

    /// Beside the run directory: the error of its last failed attempt.
    pub fn failure_path(&self, entry: &Entry) -> PathBuf {
        self.dir().join("runs").join(format!("{}.failed", entry.id))
    }

    pub fn entry(&self, index: usize) -> Result<&Entry> {
        self.entries.get(index).with_context(|| format!("index {index} is outside the manifest {} (0..{})", self.path.display(), self.entries.len()))
    }
}

/// `0-3,7,9-10`: indices in Slurm's `--array` form.
pub fn index_ranges(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(",")
}

/// Parses `0-3,7` back into indices.
pub fn parse_index_ranges(text: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("`{part}` is not an index or a range like 3-7");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().with_context(bad)?, b.parse().with_context(bad)?);
                if a > b {
                    bail!("{}", bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().with_context(bad)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ranges_round_trip() {
        let idx = vec![0, 1, 2, 3, 7, 9, 10];
        assert_eq!(index_ranges(&idx), "0-3,7,9-10");
        assert_eq!(parse_index_ranges("0-3,7,9-10").unwrap(), idx);
        assert!(parse_index_ranges("3-1").is_err());
        assert!(parse_index_ranges("x").is_err());
    }

    #[test]
    fn run_ids_depend_only_on_the_config_text() {
        assert_eq!(run_id("(a: 1)"), run_id("(a: 1)"));
        assert_ne!(run_id("(a: 1)"), run_id("(a: 2)"));
        assert_eq!(run_id("").len(), 16);
    }
}
