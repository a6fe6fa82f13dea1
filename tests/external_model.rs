//! A model made outside elmlab (tests/fixtures/external_model.py: numpy weights with a
//! connectome and per-neuron timescales of its own, and the outputs of an independent
//! implementation of the spec): recorded, evaluated, fine-tuned and resumed as a user
//! would, and refused with the tensor and value when its fixed tensors cannot work.

mod common;
use common::*;
use elmlab_core::params::BufferValues;
use elmlab_train::checkpoint::{load_tensors, save_tensors, NamedTensors};
use npyz::npz::NpzArchive;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn tensor<'a>(tensors: &'a NamedTensors, name: &str) -> &'a BufferValues {
    &tensors.iter().find(|(n, _, _)| n == name).unwrap_or_else(|| panic!("no tensor {name}")).2
}

/// `record` of the weights file equals the reference to f32 precision, every array.
#[test]
fn record_of_an_external_weights_file_equals_the_independent_reference() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.npz");
    let o = elmlab(&["record", s(&fixture("external_elm.safetensors")), "--input", s(&fixture("external_input.npy")), "--out", s(&out)]);
    assert!(o.status.success(), "{}", text(&o));
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("external_expected.json")).unwrap()).unwrap();
    let mut npz = NpzArchive::open(&out).unwrap();
    for (name, want) in expected.as_object().unwrap() {
        let got: Vec<f32> = npz.by_name(name).unwrap().unwrap_or_else(|| panic!("no {name} in the recording")).into_vec().unwrap();
        let want = flatten(want);
        assert_eq!(got.len(), want.len(), "{name}");
        let worst = got.iter().zip(&want).map(|(g, w)| (*g as f64 - w).abs()).fold(0.0, f64::max);
        assert!(worst < 2e-5, "{name}: max |Δ| {worst:e}");
    }
}

fn flatten(v: &serde_json::Value) -> Vec<f64> {
    match v {
        serde_json::Value::Array(items) => items.iter().flat_map(flatten).collect(),
        other => vec![other.as_f64().unwrap()],
    }
}

/// `eval` takes the weights file (config from its metadata) as it takes a run directory.
#[test]
fn eval_of_an_external_weights_file() {
    let o = elmlab(&["eval", s(&fixture("external_elm.safetensors")), "--split", "valid", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let loss = v["metrics"]["loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{v}");
}

/// Fine-tuning keeps the file's connectome and timescales, starts from its weights (a
/// few small steps move them a little, not to a fresh draw), and resumes like any run.
#[test]
fn init_from_fine_tunes_the_file_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (given, meta) = load_tensors(&fixture("external_elm.safetensors")).unwrap();
    let body = meta["config"].replace(
        "seed: 0,",
        "seed: 0, train: (steps: 4, batch: 4, eval_batch: 4, optimizer: (kind: \"adam\", lr: 1e-3), log_every: 1, eval_every: 2, checkpoint_every: 2),",
    );
    let cfg = config(dir.path(), "tune.ron", &body);
    let (whole, parts) = (dir.path().join("whole"), dir.path().join("parts"));
    let weights = fixture("external_elm.safetensors");
    train_ok(&cfg, &whole, &["--init-from", s(&weights)]);
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(whole.join("summary.json")).unwrap()).unwrap();
    assert!(summary["init_from"].as_str().unwrap().ends_with("external_elm.safetensors"), "{summary}");
    let tuned = load_tensors(&latest_weights(&whole)).unwrap().0;
    for name in ["hidden.connectome", "readout.connectome", "hidden.tau_m", "readout.tau_m"] {
        assert!(tensor(&tuned, name) == tensor(&given, name), "{name} is not the file's");
    }
    let (BufferValues::F32(a), BufferValues::F32(b)) = (tensor(&given, "hidden.w_s"), tensor(&tuned, "hidden.w_s")) else { panic!("w_s dtype") };
    let moved = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(moved > 0.0 && moved < 0.02, "w_s moved by {moved}: fine-tuning starts from the file's weights");
    // stopped halfway and resumed: the same numbers as the whole run
    train_ok(&cfg, &parts, &["--init-from", s(&weights), "--halt-after", "2"]);
    let o = elmlab(&["train", "--resume", s(&parts)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(whole.join("metrics.jsonl")).unwrap(), std::fs::read_to_string(parts.join("metrics.jsonl")).unwrap());
    assert!(load_tensors(&latest_weights(&parts)).unwrap().0 == tuned, "weights differ after resume");
}

fn latest_weights(run: &Path) -> PathBuf {
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    run.join("checkpoints").join(latest.trim()).join("weights.safetensors")
}

/// A copy of the fixture with one fixed tensor's entry changed, then `record` on it.
fn record_modified(dir: &Path, name: &str, at: usize, value: f64) -> String {
    let (mut tensors, meta) = load_tensors(&fixture("external_elm.safetensors")).unwrap();
    let entry = tensors.iter_mut().find(|(n, _, _)| n == name).unwrap();
    match &mut entry.2 {
        BufferValues::I64(v) => v[at] = value as i64,
        BufferValues::F32(v) => v[at] = value as f32,
    }
    let path = dir.join(format!("{name}-{at}-{value}.safetensors"));
    save_tensors(&path, &tensors, meta).unwrap();
    let o = elmlab(&["record", s(&path), "--input", s(&fixture("external_input.npy")), "--out", s(&dir.join("r.npz"))]);
    assert!(!o.status.success(), "{name}[{at}] = {value} was accepted");
    let t = text(&o);
    assert!(!t.contains("panicked"), "{t}");
    t
}

#[test]
fn fixed_tensors_that_cannot_work_are_refused_with_the_tensor_and_value() {
    let dir = tempfile::tempdir().unwrap();
    // 4 inputs + 3 units: sources 0..7; entry 4 is [0, 4] of a [3, 6] connectome
    let e = record_modified(dir.path(), "hidden.connectome", 4, 7.0);
    assert!(e.contains("hidden.connectome") && e.contains("entry [0, 4] is 7") && e.contains("7 sources (4 inputs + 3 units)"), "{e}");
    let e = record_modified(dir.path(), "readout.connectome", 7, -1.0);
    assert!(e.contains("readout.connectome") && e.contains("entry [1, 1] is -1"), "{e}");
    let e = record_modified(dir.path(), "hidden.tau_m", 3, 0.0);
    assert!(e.contains("hidden.tau_m") && e.contains("entry [1, 1] is 0") && e.contains("positive and finite"), "{e}");
    let e = record_modified(dir.path(), "readout.tau_m", 0, f64::NAN);
    assert!(e.contains("readout.tau_m") && e.contains("entry [0, 0] is NaN"), "{e}");
    // a connectome of another shape than the config's model
    let (mut tensors, meta) = load_tensors(&fixture("external_elm.safetensors")).unwrap();
    let entry = tensors.iter_mut().find(|(n, _, _)| n == "hidden.connectome").unwrap();
    entry.1 = vec![2, 9];
    let path = dir.path().join("shape.safetensors");
    save_tensors(&path, &tensors, meta).unwrap();
    let o = elmlab(&["eval", s(&path)]);
    let e = text(&o);
    assert!(!o.status.success() && e.contains("hidden.connectome") && e.contains("[2, 9]") && e.contains("[3, 6]"), "{e}");
    // fine-tuning into a model of another size: refused before a run directory exists
    let small = config(dir.path(), "other.ron", &meta_config().replace("units: 3,", "units: 5,"));
    let o = elmlab(&["train", s(&small), "--init-from", s(&fixture("external_elm.safetensors")), "--out", s(&dir.path().join("run"))]);
    let e = text(&o);
    assert!(!o.status.success() && e.contains("hidden.connectome") && e.contains("[3, 6]") && e.contains("[5, 6]") && !e.contains("panicked"), "{e}");
    assert!(!dir.path().join("run").exists());
    // what is neither a run directory nor a weights file
    let o = elmlab(&["eval", s(&fixture("external_input.npy"))]);
    assert!(!o.status.success() && text(&o).contains("must be a weights file (.safetensors)"), "{}", text(&o));
}

fn meta_config() -> String {
    load_tensors(&fixture("external_elm.safetensors")).unwrap().1["config"].clone()
}

/// The `from_file` connectivity: a fresh model (new weights) wired as the file is.
#[test]
fn from_file_connectivity_wires_a_new_model_with_the_files_connectome() {
    let dir = tempfile::tempdir().unwrap();
    let meta = load_tensors(&fixture("external_elm.safetensors")).unwrap().1;
    let wiring = format!("units: 3, connectivity: (kind: \"from_file\", path: \"{}\"),", s(&fixture("external_elm.safetensors")));
    let body = meta["config"]
        .replace("units: 3,", &wiring)
        .replace("seed: 0,", "seed: 0, train: (steps: 2, batch: 4, eval_batch: 4, log_every: 1, eval_every: 2, checkpoint_every: 2),");
    let cfg = config(dir.path(), "wired.ron", &body);
    let run = dir.path().join("run");
    train_ok(&cfg, &run, &[]);
    let (given, _) = load_tensors(&fixture("external_elm.safetensors")).unwrap();
    let trained = load_tensors(&latest_weights(&run)).unwrap().0;
    assert!(tensor(&trained, "hidden.connectome") == tensor(&given, "hidden.connectome"));
    assert!(tensor(&trained, "hidden.w_s") != tensor(&given, "hidden.w_s"), "weights are a fresh draw");
    // a layer of another width than the file's rows
    let o = elmlab(&["train", s(&cfg), "model.units=5", "--out", s(&dir.path().join("bad"))]);
    let e = text(&o);
    assert!(!o.status.success() && e.contains("has 3 rows; the layer has 5 units"), "{e}");
}
