//! What a report shows of each run: found from a sweep's manifest, a `compare` folder or
//! a single run directory, with its status, error and the command that continues it.

use crate::sweep::manifest::Manifest;
use anyhow::{bail, Result};
use elmlab_train::rundir::{RunDir, RunState};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub struct RunInfo {
    pub name: String,
    pub dir: PathBuf,
    /// finished, unfinished, missing or failed.
    pub status: String,
    pub error: Option<String>,
    /// The command that starts or continues it (None when finished).
    pub resubmit: Option<String>,
    /// A sweep's swept values.
    pub axes: Map<String, Value>,
    pub summary: Option<Value>,
    pub metrics: Vec<Value>,
    pub config: Option<String>,
}

pub enum Kind {
    Sweep { manifest: PathBuf },
    Compare,
    Single,
}

pub struct Study {
    pub title: String,
    pub kind: Kind,
    pub runs: Vec<RunInfo>,
}

fn read_run(name: String, dir: &Path, axes: Map<String, Value>) -> RunInfo {
    let run = RunDir { path: dir.to_path_buf() };
    let status = run.state().as_str().to_string();
    let summary = std::fs::read_to_string(run.summary_path()).ok().and_then(|t| serde_json::from_str(&t).ok());
    let metrics = run.read_metrics().unwrap_or_default();
    let config = std::fs::read_to_string(run.config_path()).ok();
    let resubmit = (status == "unfinished").then(|| format!("elmlab train --resume {}", dir.display()));
    RunInfo { name, dir: dir.to_path_buf(), status, error: None, resubmit, axes, summary, metrics, config }
}

/// The runs under `dir`: a sweep (manifest.jsonl), a compare (runs/*/) or one run.
pub fn find(dir: &Path) -> Result<Study> {
    let title = dir.file_name().and_then(|n| n.to_str()).unwrap_or("report").to_string();
    let manifest_path = dir.join("manifest.jsonl");
    if manifest_path.is_file() {
        let manifest = Manifest::read(&manifest_path)?;
        let runs = manifest
            .entries
            .iter()
            .map(|e| {
                let mut info = read_run(e.id.clone(), &manifest.run_dir(e), e.axes.clone());
                let status = manifest.status(e);
                info.status = status.as_str().to_string();
                info.error = status.failure;
                if status.state != RunState::Finished {
                    info.resubmit = Some(format!("elmlab run-index {} --index {}", manifest_path.display(), e.index));
                }
                info
            })
            .collect();
        return Ok(Study { title, kind: Kind::Sweep { manifest: manifest_path }, runs });
    }
    if dir.join("config.ron").is_file() {
        let runs = vec![read_run(title.clone(), dir, Map::new())];
        return Ok(Study { title, kind: Kind::Single, runs });
    }
    let runs_dir = dir.join("runs");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&runs_dir).map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()).unwrap_or_default();
    names.sort();
    if names.is_empty() {
        bail!("{} holds no run: give a run directory (config.ron), a sweep (manifest.jsonl) or a compare folder (runs/)", dir.display());
    }
    let mut runs: Vec<RunInfo> = names.iter().map(|p| read_run(p.file_name().and_then(|n| n.to_str()).unwrap_or("run").to_string(), p, Map::new())).collect();
    // a compare run that never started: its config is planned in configs/
    for run in &mut runs {
        if run.status == "missing" {
            let planned = dir.join("configs").join(format!("{}.ron", run.name));
            run.resubmit = Some(format!("elmlab train {} --out {}", planned.display(), run.dir.display()));
        }
    }
    Ok(Study { title, kind: Kind::Compare, runs })
}
