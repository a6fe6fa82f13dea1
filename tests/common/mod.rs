//! Helpers for the end-to-end tests: run the real binary on configs in a temp folder.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const SMALL: &str = r#"(
    name: "small",
    seed: 5,
    task: (kind: "delayed_recall", classes: 4, cue_steps: 3, delay: 8, noise_channels: 4, valid_batches: 2, test_batches: 2),
    model: (neuron: (kind: "linear", synapses: 12, tau: (1.0, 50.0)), connectivity: (kind: "random_fan_in", recurrent_share: 0.3), units: 16),
    train: (steps: 30, batch: 8, eval_batch: 16, optimizer: (kind: "adamax", lr: 1e-2), schedule: (warmup_steps: 5),
            log_every: 4, eval_every: 10, checkpoint_every: 7, label_smoothing: 0.01),
)"#;

pub fn elmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_elmlab")).args(args).output().expect("running elmlab")
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Writes `body` as a config file in `dir`.
pub fn config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Trains `cfg` into `out` with extra arguments; panics with the output on failure.
pub fn train_ok(cfg: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["train", s(cfg), "--out", s(out)];
    args.extend_from_slice(extra);
    let o = elmlab(&args);
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

/// The Python in ELMLAB_PYTHON (or `python3`) if it imports `modules`; else None, after
/// saying the test is skipped, unless `gate` is set in the environment (CI sets it),
/// where missing modules fail the test.
pub fn python_with(modules: &str, gate: &str) -> Option<String> {
    let python = std::env::var("ELMLAB_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python).args(["-c", &format!("import {modules}")]).output().map(|o| o.status.success()).unwrap_or(false);
    if has {
        return Some(python);
    }
    assert!(std::env::var(gate).is_err(), "{gate} is set but `{python}` cannot import {modules}");
    eprintln!("skipped: `{python}` cannot import {modules} (pip install them, or set ELMLAB_PYTHON)");
    None
}

/// A run's metrics.jsonl as text.
pub fn metrics(run: &Path) -> String {
    std::fs::read_to_string(run.join("metrics.jsonl")).unwrap()
}

/// The JSON values of a JSON-lines file (metrics.jsonl, manifest.jsonl).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
