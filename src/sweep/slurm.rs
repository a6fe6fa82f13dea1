//! Slurm job arrays: the sbatch script for a manifest (one array task per run, a
//! throttle, a warning signal before the time limit that makes the run checkpoint and
//! requeue itself, one log per task) and the submission of it plus a dependent
//! `sweep collect` job.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// Resources and limits for the array; unset ones are left to the cluster's defaults.
#[derive(Clone, Debug, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub gres: Option<String>,
    /// Time limit per task, Slurm's format (`HH:MM:SS`, `D-HH:MM:SS`, minutes).
    pub time: Option<String>,
    pub cpus: Option<u32>,
    pub mem: Option<String>,
    /// Array throttle: at most this many tasks at once.
    pub max_parallel: Option<usize>,
    /// Seconds before the time limit at which Slurm sends SIGUSR1.
    pub signal_before_s: u32,
    pub account: Option<String>,
}

/// Single-quotes a word for the shell.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The options the jobs inherit (plugins, --max-memory), quoted for the script.
fn inherited() -> String {
    crate::plugins::inherited_args().iter().map(|a| format!(" {}", quote(&a.to_string_lossy()))).collect()
}

/// The array script. `array` is Slurm's index list (`0-9`, `1,4-6`).
pub fn array_script(name: &str, exe: &Path, manifest: &Path, logs: &Path, array: &str, o: &SlurmOptions) -> String {
    let mut s = String::from("#!/bin/bash\n");
    s += &format!("#SBATCH --job-name=elmlab-{name}\n");
    s += &format!("#SBATCH --array={array}{}\n", o.max_parallel.map_or(String::new(), |k| format!("%{k}")));
    s += &format!("#SBATCH --output={}/%A_%a.out\n", logs.display());
    s += "#SBATCH --open-mode=append\n";
    s += "#SBATCH --requeue\n";
    s += &format!("#SBATCH --signal=B:USR1@{}\n", o.signal_before_s);
    for (flag, value) in [("partition", &o.partition), ("gres", &o.gres), ("time", &o.time), ("mem", &o.mem), ("account", &o.account)] {
        if let Some(v) = value {
            s += &format!("#SBATCH --{flag}={v}\n");
        }
    }
    if let Some(c) = o.cpus {
        s += &format!("#SBATCH --cpus-per-task={c}\n");
    }
    s += &format!(
        r#"
# One run of the manifest per array task. Before the time limit Slurm signals this
# shell (USR1); it asks elmlab to checkpoint, waits, and requeues the task, which
# resumes from the checkpoint. A plain SIGTERM (scancel) also checkpoints, without requeue.
requeue=0
{exe}{inherited} run-index {manifest} --index "$SLURM_ARRAY_TASK_ID" &
child=$!
trap 'requeue=1; kill -USR1 $child' USR1
trap 'kill -TERM $child' TERM
status=0
while :; do
    wait "$child"; status=$?
    kill -0 "$child" 2>/dev/null || break
done
if [ "$requeue" = 1 ] && [ "$status" = 130 ]; then
    echo "elmlab: checkpoint written; requeueing ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
    scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
    exit 0
fi
exit "$status"
"#,
        exe = quote(&exe.display().to_string()),
        manifest = quote(&manifest.display().to_string()),
        inherited = inherited(),
    );
    s
}

/// The collect job's script: runs after every array task ended, however it ended.
pub fn collect_script(name: &str, exe: &Path, sweep_dir: &Path, logs: &Path, o: &SlurmOptions) -> String {
    let mut s = String::from("#!/bin/bash\n");
    s += &format!("#SBATCH --job-name=elmlab-{name}-collect\n");
    s += &format!("#SBATCH --output={}/collect-%j.out\n", logs.display());
    if let Some(p) = &o.partition {
        s += &format!("#SBATCH --partition={p}\n");
    }
    if let Some(a) = &o.account {
        s += &format!("#SBATCH --account={a}\n");
    }
    s += "#SBATCH --time=00:30:00\n";
    s += &format!("{}{} sweep collect {}\n", quote(&exe.display().to_string()), inherited(), quote(&sweep_dir.display().to_string()));
    s
}

/// `sbatch --parsable` → the job id.
pub fn sbatch(script: &Path, extra: &[String]) -> Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(extra)
        .arg(script)
        .output()
        .context("running `sbatch` (is Slurm installed and on PATH? `--dry-run` writes the script without submitting)")?;
    if !out.status.success() {
        bail!("sbatch {} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed `{}`, not a job id", text.trim());
    }
    Ok(id)
}
