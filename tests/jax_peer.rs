//! The JAX peer (bench/elm_jax.py) computes the model elmlab trains: on the weights of an
//! elmlab run it has the same parameter count and the same logits on an input batch as
//! `elmlab record` (hence the same loss). Needs the Python in ELMLAB_PYTHON (or python3)
//! with jax, numpy and safetensors; skipped where it has none, unless ELMLAB_JAX_TESTS=1
//! (set by CI), where it fails.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

fn python() -> Option<String> {
    python_with("jax, numpy, safetensors", "ELMLAB_JAX_TESTS")
}

#[test]
fn the_jax_peer_has_elmlabs_parameter_count_and_logits_on_a_runs_weights() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = tmp.path().join("run");
    // a few steps, so the weights are no longer their initial draw; high-pass on
    let cfg = root.join("configs/quick/delayed_recall_elm.ron");
    let o = elmlab(&["train", s(&cfg), "train.steps=3", "train.eval_every=3", "model.neuron.high_pass_tau=4.0", "--out", s(&run)]);
    assert!(o.status.success(), "{}", text(&o));
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let batch = tmp.path().join("batch.npy");
    // the task's input width: 8 classes + 1 recall cue + 8 noise channels
    let make = format!("import numpy as np; r = np.random.default_rng(1); np.save({:?}, (r.random((3, 46, 17)) < 0.3).astype(np.float32))", batch.display().to_string());
    assert!(std::process::Command::new(&python).args(["-c", &make]).status().unwrap().success());
    let rec = tmp.path().join("rec.npz");
    let o = elmlab(&["record", s(&run), "--input", s(&batch), "--out", s(&rec)]);
    assert!(o.status.success(), "{}", text(&o));

    let weights = run.join("best/weights.safetensors");
    let o = std::process::Command::new(&python).arg(root.join("bench/elm_jax.py")).args(["--check", s(&weights), "--input", s(&batch), "--record", s(&rec)]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "the peer differs: {out}{}", String::from_utf8_lossy(&o.stderr));
    let check: Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    assert_eq!(check["params"], summary["params"]["total"]);
    assert!(check["max_abs_difference"].as_f64().unwrap() < 1e-5, "{check}");
}
