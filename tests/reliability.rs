//! Runs that lose nothing: damaged checkpoints are detected by their checksums and an
//! older one is used, sizes that cannot fit are refused before anything is allocated,
//! a run directory is used by one process at a time, and a full disk during a
//! checkpoint leaves the previous one intact.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn checkpoint(run: &Path, step: u64) -> PathBuf {
    run.join("checkpoints").join(format!("step-{step:09}"))
}

/// Flips one byte near the end of a file: inside the tensor data, the header intact.
fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() - 9;
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// SMALL checkpoints every 7 steps and keeps 3: stopped at 24 it has 14, 21 and 24.
fn stopped_at_24(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let cfg = config(dir, "c.ron", SMALL);
    let (whole, parts) = (dir.join("whole"), dir.join("parts"));
    train_ok(&cfg, &whole, &[]);
    train_ok(&cfg, &parts, &["--halt-after", "24"]);
    (cfg, whole, parts)
}

#[test]
fn a_damaged_latest_checkpoint_is_detected_and_the_run_resumes_from_the_one_before() {
    let dir = tempfile::tempdir().unwrap();
    let (_, whole, parts) = stopped_at_24(dir.path());
    flip_a_byte(&checkpoint(&parts, 24).join("weights.safetensors"));
    // `eval --weights last` says so and uses step 21
    let o = elmlab(&["eval", s(&parts), "--weights", "last", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("step 24") && t.contains("do not match the checksum") && t.contains("weights.safetensors"), "{t}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["step"], "21");
    // resume: from 21, the metrics after it written again, equal to the whole run
    let o = elmlab(&["train", "--resume", s(&parts)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("damaged"), "{}", text(&o));
    assert_eq!(metrics(&whole), metrics(&parts));
    assert!(parts.join("checkpoints/set-aside/step-000000024").is_dir(), "the damaged checkpoint is kept aside");
}

#[test]
fn a_truncated_or_unlisted_file_falls_back_too_and_none_usable_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, whole, parts) = stopped_at_24(dir.path());
    let f = checkpoint(&parts, 24).join("optimizer.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(checkpoint(&parts, 21).join("trainer.json"), "{}").unwrap();
    let o = elmlab(&["train", "--resume", s(&parts)]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("step-000000024") && t.contains("step-000000021") && t.contains("resuming"), "{t}");
    assert_eq!(metrics(&whole), metrics(&parts));
    // every checkpoint damaged: refused, each with why
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    let (_, _, again) = stopped_at_24(&dir.path().join("b"));
    for step in [14, 21, 24] {
        flip_a_byte(&checkpoint(&again, step).join("trainer.json"));
    }
    let o = elmlab(&["train", "--resume", s(&again)]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("no usable checkpoint") && t.contains("step 14:") && !t.contains("panicked"), "{t}");
}

#[test]
fn from_step_resumes_from_an_older_checkpoint_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (_, whole, parts) = stopped_at_24(dir.path());
    let o = elmlab(&["train", "--resume", s(&parts), "--from-step", "9"]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("no checkpoint at step 9") && t.contains("steps 24, 21, 14"), "{t}");
    let o = elmlab(&["train", "--resume", s(&parts), "--from-step", "14"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(metrics(&whole), metrics(&parts));
}

#[test]
fn damaged_best_weights_and_weights_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let run = dir.path().join("r");
    train_ok(&cfg, &run, &[]);
    let best = run.join("best/weights.safetensors");
    let copy = dir.path().join("copied.safetensors");
    std::fs::copy(&best, &copy).unwrap();
    let o = elmlab(&["eval", s(&copy)]);
    assert!(o.status.success(), "a copied weights file verifies anywhere: {}", text(&o));
    flip_a_byte(&best);
    flip_a_byte(&copy);
    for args in [vec!["eval", s(&run), "--weights", "best"], vec!["eval", s(&copy)], vec!["train", s(&cfg), "--init-from", s(&copy), "--out", s(&dir.path().join("tuned"))]] {
        let o = elmlab(&args);
        let t = text(&o);
        assert!(!o.status.success() && t.contains("weights.safetensors") == args.contains(&"best") && t.contains("damaged") && !t.contains("panicked"), "{args:?}: {t}");
    }
    assert!(!dir.path().join("tuned").exists());
}

#[test]
fn sizes_that_cannot_fit_are_answered_instantly_and_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let started = std::time::Instant::now();
    let o = elmlab(&["inspect", s(&cfg), "model.units=1000000000", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["built"], false);
    assert_eq!(v["params"]["total"].as_u64(), Some(13 * 1_000_000_000 + 4 * 1_000_000_001));
    assert!(v["memory"]["training_bytes"].as_u64().unwrap() > 1 << 40);
    let run = dir.path().join("big");
    let o = elmlab(&["train", s(&cfg), "model.units=1000000000", "--out", s(&run)]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("needs an estimated") && t.contains("TiB") && t.contains("available on this machine"), "{t}");
    assert!(!run.exists());
    assert!(started.elapsed().as_secs() < 10, "both answered from the closed form");
    // an explicit limit, for eval and bench too
    let o = elmlab(&["--max-memory", "1M", "train", s(&cfg), "--out", s(&run)]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("1.0 MiB (the limit given with --max-memory)") && t.contains("training with batch 8"), "{t}");
    let o = elmlab(&["bench", s(&cfg), "--max-memory", "1M"]);
    assert!(!o.status.success() && text(&o).contains("--max-memory"), "{}", text(&o));
    let o = elmlab(&["--max-memory", "lots", "inspect", s(&cfg)]);
    assert!(!o.status.success() && text(&o).contains("not a size"), "{}", text(&o));
}

#[test]
fn a_run_directory_is_used_by_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let run = dir.path().join("r");
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_elmlab"))
        .args(["train", s(&cfg), "train.steps=100000", "--out", s(&run)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    // the first checkpoint is there, so the later resume has something to resume from
    while !run.join("checkpoints/latest").exists() {
        assert!(started.elapsed().as_secs() < 60, "training never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = elmlab(&["train", "--resume", s(&run)]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("another elmlab process is using") && t.contains("run.lock"), "{t}");
    first.kill().unwrap();
    first.wait().unwrap();
    // the lock goes with the process, however it ended
    let o = elmlab(&["train", "--resume", s(&run), "--halt-after", "1"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// A disk that fills up during a checkpoint: a 1 MiB tmpfs (needs root to mount; where
/// that is refused the test says so and passes). The run stops saying which checkpoint is
/// intact; resumed elsewhere it finishes equal to an uninterrupted run.
#[test]
fn a_full_disk_during_a_checkpoint_leaves_the_previous_one_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs", s(&mount)]).output().map(|o| o.status.success()).unwrap_or(false);
    if !mounted {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mount);
    // ~20k parameters: ~250 KB per checkpoint (weights, two moments), 80 KB of best
    // weights; three kept and a fourth being written do not fit in 1 MiB
    let body = SMALL.replace("units: 16", "units: 160").replace("synapses: 12", "synapses: 120").replace("steps: 30", "steps: 120").replace("checkpoint_every: 7", "checkpoint_every: 10");
    let cfg = config(dir.path(), "c.ron", &body);
    let (whole, run) = (dir.path().join("whole"), mount.join("r"));
    train_ok(&cfg, &whole, &[]);
    let o = elmlab(&["train", s(&cfg), "--out", s(&run)]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("No space left on device") && !t.contains("panicked"), "{t}");
    assert!(t.contains("could not be written") && t.contains("is intact"), "{t}");
    // what is there checks out; copied to a disk with room, it resumes exactly
    let moved = dir.path().join("moved");
    assert!(std::process::Command::new("cp").args(["-a", s(&run), s(&moved)]).status().unwrap().success());
    std::fs::remove_file(moved.join("run.lock")).ok();
    let o = elmlab(&["train", "--resume", s(&moved)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(metrics(&whole), metrics(&moved));
}
