//! Which checkpoint a resumed run continues from: the newest one whose files check out
//! against their checksums (the damaged ones reported and skipped), or the one asked for.

use crate::checkpoint::{OPTIMIZER, TRAINER, WEIGHTS};
use crate::error::{CheckpointError, CheckpointProblem, RunDirError, RunError};
use crate::integrity::{verify_checkpoint, Checked};
use crate::rundir::RunDir;
use std::path::PathBuf;

/// A checkpoint chosen to continue from.
#[derive(Clone, Debug, PartialEq)]
pub struct Chosen {
    pub dir: PathBuf,
    pub step: u64,
    /// Newer checkpoints that failed their checks, with why.
    pub rejected: Vec<String>,
}

/// The newest checkpoint that checks out, or the one at `from_step` (which must).
pub fn choose_checkpoint(run: &RunDir, from_step: Option<u64>) -> Result<Chosen, RunError> {
    let all = run.checkpoints();
    if all.is_empty() {
        return Err(RunDirError::NoCheckpoint { path: run.path.clone() }.into());
    }
    if let Some(step) = from_step {
        let Some((_, dir)) = all.iter().find(|(s, _)| *s == step) else {
            let available: Vec<String> = all.iter().map(|(s, _)| s.to_string()).collect();
            return Err(RunDirError::NoSuchStep { path: run.path.clone(), step, available: format!("steps {}", available.join(", ")) }.into());
        };
        check(dir)?;
        return Ok(Chosen { dir: dir.clone(), step, rejected: Vec::new() });
    }
    let mut rejected = Vec::new();
    for (step, dir) in &all {
        match check(dir) {
            Ok(()) => return Ok(Chosen { dir: dir.clone(), step: *step, rejected }),
            Err(e) => {
                let why = elmlab_core::error::chain(&e);
                tracing::warn!(checkpoint = %dir.display(), "skipped: {why}");
                rejected.push(format!("step {step}: {why}"));
            }
        }
    }
    Err(RunDirError::NoUsableCheckpoint { path: run.path.clone(), tried: rejected.join("; ") }.into())
}

/// Its files against the manifest, and a trainer state that parses.
fn check(dir: &std::path::Path) -> Result<(), RunError> {
    if verify_checkpoint(dir, &[WEIGHTS, OPTIMIZER, TRAINER])? == Checked::Unverified {
        tracing::warn!(checkpoint = %dir.display(), "has no manifest (written before checksums); taken unchecked");
    }
    let path = dir.join(TRAINER);
    let text = std::fs::read_to_string(&path).map_err(|e| RunError::io(format!("reading {}", path.display()), e))?;
    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| CheckpointError { path, problem: CheckpointProblem::TrainerState(e.to_string()) })?;
    Ok(())
}

/// Moves the checkpoints newer than `step` to `checkpoints/set-aside/` (kept, not used:
/// the run continues from `step` and writes its own) and points `latest` at `step`'s.
pub fn set_aside_after(run: &RunDir, step: u64) -> Result<(), RunError> {
    let aside = run.checkpoints_dir().join("set-aside");
    for (s, dir) in run.checkpoints().into_iter().filter(|(s, _)| *s > step) {
        std::fs::create_dir_all(&aside).map_err(|e| RunError::io(format!("creating {}", aside.display()), e))?;
        let to = aside.join(dir.file_name().unwrap_or_default());
        let _ = std::fs::remove_dir_all(&to);
        std::fs::rename(&dir, &to).map_err(|e| RunError::io(format!("moving {} to {}", dir.display(), to.display()), e))?;
        tracing::warn!(step = s, to = %to.display(), "set aside a newer checkpoint");
    }
    if let Some((_, dir)) = run.checkpoints().into_iter().find(|(s, _)| *s == step) {
        let name = dir.file_name().unwrap_or_default().to_string_lossy().to_string();
        elmlab_core::fs::write_atomic(&run.checkpoints_dir().join("latest"), name.as_bytes())?;
    }
    Ok(())
}
