//! Training from the command line: reproducibility, exact resume after a stop or an
//! interrupt, and the run directory's contents.

mod common;
use common::*;
use std::path::Path;


/// The latest checkpoint's tensors (names, shapes, values); the file's metadata order
/// may differ between writes, its tensors may not.
fn final_weights(run: &Path) -> elmlab_train::checkpoint::NamedTensors {
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    elmlab_train::checkpoint::load_tensors(&run.join("checkpoints").join(latest.trim()).join("weights.safetensors")).unwrap().0
}

#[test]
fn same_seed_same_numbers_other_seed_other_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    train_ok(&cfg, &a, &[]);
    train_ok(&cfg, &b, &[]);
    train_ok(&cfg, &c, &["seed=6"]);
    assert_eq!(metrics(&a), metrics(&b));
    assert!(final_weights(&a) == final_weights(&b), "weights differ");
    assert_ne!(metrics(&a), metrics(&c));
}

#[test]
fn stop_and_resume_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let (whole, parts) = (dir.path().join("whole"), dir.path().join("parts"));
    train_ok(&cfg, &whole, &[]);
    // Stop at step 13: between checkpoints (every 7), evaluations (10) and log lines (4).
    let out = train_ok(&cfg, &parts, &["--halt-after", "13"]);
    assert!(out.contains("stopped at step 13"), "{out}");
    assert!(!parts.join("summary.json").exists());
    let o = elmlab(&["train", "--resume", s(&parts)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(metrics(&whole), metrics(&parts), "metrics after resume differ");
    assert!(final_weights(&whole) == final_weights(&parts), "weights differ after resume");
    let a: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(whole.join("summary.json")).unwrap()).unwrap();
    let b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(parts.join("summary.json")).unwrap()).unwrap();
    assert_eq!(a["best"], b["best"]);
}

#[cfg(unix)]
#[test]
fn ctrl_c_leaves_a_checkpoint_that_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let (whole, cut) = (dir.path().join("whole"), dir.path().join("cut"));
    // Long enough (a few seconds) that the interrupt lands mid-run.
    let long = ["train.steps=200", "train.log_every=1", "train.eval_every=50", "train.checkpoint_every=50", "model.units=64", "task.delay=40", "train.batch=16"];
    train_ok(&cfg, &whole, &long);
    let mut args = vec!["train", s(&cfg), "--out", s(&cut)];
    args.extend_from_slice(&long);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_elmlab")).args(&args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    // Interrupt once a few steps are logged.
    let started = std::time::Instant::now();
    while std::fs::read_to_string(cut.join("metrics.jsonl")).map(|m| m.lines().count()).unwrap_or(0) < 3 {
        assert!(started.elapsed().as_secs() < 60, "training never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "the run should stop on the interrupt");
    assert!(!cut.join("summary.json").exists());
    assert!(cut.join("checkpoints/latest").exists());
    let o = elmlab(&["train", "--resume", s(&cut)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(metrics(&whole), metrics(&cut));
    assert!(final_weights(&whole) == final_weights(&cut), "weights differ after resume");
}

#[test]
fn run_directory_holds_config_metrics_summary_checkpoints_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let run = dir.path().join("r");
    train_ok(&cfg, &run, &[]);
    for f in ["config.ron", "metrics.jsonl", "summary.json", "train.log", "best/weights.safetensors", "checkpoints/latest"] {
        assert!(run.join(f).exists(), "missing {f}");
    }
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["params"]["total"], summary["params"]["closed_form"]);
    assert_eq!(summary["params"]["total"].as_u64(), Some(16 * 13 + 4 * 17));
    assert_eq!(summary["steps"], 30);
    assert!(summary["versions"]["rustc"].as_str().unwrap().starts_with("rustc"));
    // metrics: train lines every 4 steps (+ the last), valid lines every 10 steps
    let lines: Vec<serde_json::Value> = metrics(&run).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let train_steps: Vec<u64> = lines.iter().filter(|l| l["split"] == "train").map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(train_steps, [4, 8, 12, 16, 20, 24, 28, 30]);
    let valid_steps: Vec<u64> = lines.iter().filter(|l| l["split"] == "valid").map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(valid_steps, [10, 20, 30]);
    // the newest `keep_checkpoints` (3) checkpoints are kept, each with its manifest
    let mut kept: Vec<String> = std::fs::read_dir(run.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    kept.sort();
    assert_eq!(kept, ["latest", "step-000000021", "step-000000028", "step-000000030"]);
    assert!(run.join("checkpoints/step-000000030/manifest.json").is_file());
    // the stored config runs as it is: `eval` rebuilds the model from it
    let o = elmlab(&["eval", s(&run), "--split", "valid", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["metrics"], summary["best"]["valid"]);
}
