//! `elmlab run-index MANIFEST --index I`: trains one run of a sweep. A finished run is
//! skipped, an unfinished one resumed; SIGUSR1/SIGTERM write a checkpoint and stop
//! (exit 130) so a requeued job continues. Under Slurm the index comes from
//! `SLURM_ARRAY_TASK_ID`, and the job and task ids are recorded in the run's summary.

use crate::sweep::manifest::Manifest;
use anyhow::{Context, Result};
use elmlab_core::registry::Registry;
use elmlab_train::rundir::{write_atomic, RunLock, RunState};
use serde_json::{Map, Value};
use std::path::Path;

/// Slurm's description of the current job, from its environment.
pub fn slurm_ids() -> Option<Value> {
    let job = std::env::var("SLURM_JOB_ID").ok()?;
    let mut ids = Map::new();
    ids.insert("job_id".into(), Value::String(job));
    for (key, var) in [("array_job_id", "SLURM_ARRAY_JOB_ID"), ("array_task_id", "SLURM_ARRAY_TASK_ID"), ("restart_count", "SLURM_RESTART_COUNT"), ("node", "SLURMD_NODENAME")] {
        if let Ok(v) = std::env::var(var) {
            ids.insert(key.into(), Value::String(v));
        }
    }
    Some(Value::Object(ids))
}

pub fn run(registry: &Registry, manifest: &Path, index: Option<usize>) -> Result<i32> {
    let index = match index {
        Some(i) => i,
        None => {
            let v = std::env::var("SLURM_ARRAY_TASK_ID").context("give --index I (or run inside a Slurm array job, which sets SLURM_ARRAY_TASK_ID)")?;
            v.trim().parse().with_context(|| format!("SLURM_ARRAY_TASK_ID is `{v}`, not an index"))?
        }
    };
    let manifest = Manifest::read(manifest)?;
    let entry = manifest.entry(index)?.clone();
    let dir = manifest.run_dir(&entry);
    let lock_path = manifest.lock_path(&entry);
    let Some(_lock) = RunLock::try_acquire(&lock_path).with_context(|| format!("locking {}", lock_path.display()))? else {
        println!("run {index} ({}) is being trained by another process; skipped", entry.id);
        return Ok(0);
    };
    let failed_marker = manifest.failure_path(&entry);
    let code = match manifest.run_state(&entry) {
        RunState::Finished => {
            println!("run {index} ({}) finished earlier; skipped", entry.id);
            return Ok(0);
        }
        RunState::Unfinished => super::train::run(registry, super::train::TrainRequest { resume: Some(dir.clone()), ..Default::default() }),
        RunState::Missing => {
            if dir.exists() {
                // Started but stopped before its first checkpoint: nothing to keep.
                std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
            }
            let config = manifest.dir().join("configs").join(format!("{}.ron", entry.id));
            std::fs::create_dir_all(manifest.dir().join("configs"))?;
            write_atomic(&config, entry.config.as_bytes())?;
            super::train::run(registry, super::train::TrainRequest { config: Some(config), out: Some(dir.clone()), hparams: entry.axes.clone(), ..Default::default() })
        }
    };
    match code {
        Ok(0) if manifest.run_state(&entry) == RunState::Finished => {
            let _ = std::fs::remove_file(&failed_marker);
            if let Some(ids) = slurm_ids() {
                let path = dir.join("summary.json");
                let mut summary: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
                summary["slurm"] = ids;
                write_atomic(&path, serde_json::to_string_pretty(&summary)?.as_bytes())?;
            }
            Ok(0)
        }
        Ok(code) => Ok(code),
        Err(e) => {
            // Kept beside the run so `sweep collect` can say why it is missing.
            let _ = write_atomic(&failed_marker, format!("{e:#}\n").as_bytes());
            Err(e)
        }
    }
}
