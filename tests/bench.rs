//! `elmlab bench`: the report of each path, `--compare` in child processes, refusals.
//! (No timing is asserted: only that the numbers are there and consistent.)

mod common;
use common::*;

fn elm_config(dir: &std::path::Path) -> std::path::PathBuf {
    config(dir, "elm.ron", &SMALL.replace(r#"neuron: (kind: "linear", synapses: 12, tau: (1.0, 50.0))"#, r#"neuron: (kind: "elm", memory: 2, branches: 2, synapses_per_branch: 3)"#))
}

#[test]
fn bench_reports_each_path_and_compares_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = elm_config(dir.path());
    let o = elmlab(&["bench", s(&cfg), "model.neuron.path=reference", "--steps", "2", "--threads", "1", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["path"], "reference");
    assert_eq!(r["threads"], 1);
    assert_eq!(r["train_steps"], 2);
    assert_eq!((r["batch"].as_u64(), r["steps_per_sequence"].as_u64()), (Some(8), Some(3 + 8 + 1)), "{r}");
    let step = r["train_step_s"].as_f64().unwrap();
    assert!(step > 0.0 && (r["train_steps_per_s"].as_f64().unwrap() * step - 1.0).abs() < 1e-9);
    assert!((r["train_positions_per_s"].as_f64().unwrap() * step - 8.0 * 12.0).abs() < 1e-6);
    assert!(r["peak_memory_bytes"].as_u64().unwrap() > 0);
    // the op-by-op path has no fused layers to account for
    assert_eq!(r["kernel_s_per_step"], serde_json::json!([]), "{r}");

    // the fused path: each layer's passes, within the step they are part of; inference
    // runs no backward pass
    let o = elmlab(&["bench", s(&cfg), "--steps", "2", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let shares = |key: &str| -> Vec<(String, f64)> { r[key].as_array().unwrap().iter().map(|e| (e[0].as_str().unwrap().to_string(), e[1].as_f64().unwrap())).collect() };
    let (train, infer) = (shares("kernel_s_per_step"), shares("kernel_s_per_batch"));
    let names = |v: &[(String, f64)]| v.iter().map(|(n, _)| n.clone()).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(names(&train), ["hidden backward", "hidden forward", "readout backward", "readout forward"].map(String::from).into(), "{r}");
    assert_eq!(names(&infer), ["hidden forward", "readout forward"].map(String::from).into(), "{r}");
    for (v, total) in [(&train, r["train_step_mean_s"].as_f64().unwrap()), (&infer, r["infer_batch_mean_s"].as_f64().unwrap())] {
        assert!(v.iter().all(|(_, t)| *t > 0.0), "{r}");
        assert!(v.iter().map(|(_, t)| t).sum::<f64>() < total, "the layers' passes are part of the step: {r}");
    }

    let o = elmlab(&["bench", s(&cfg), "--steps", "1", "--compare", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((c["fused"]["path"].as_str(), c["reference"]["path"].as_str()), (Some("fused"), Some("reference")));
    let ratio = c["reference"]["train_step_s"].as_f64().unwrap() / c["fused"]["train_step_s"].as_f64().unwrap();
    assert!((c["train_speedup"].as_f64().unwrap() - ratio).abs() < 1e-9 * ratio);
}

#[test]
fn bench_refusals_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let linear = config(dir.path(), "linear.ron", SMALL);
    let o = elmlab(&["bench", s(&linear), "--compare"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("neuron `linear` has no fused path"), "{}", text(&o));
    let o = elmlab(&["bench", s(&linear), "--steps", "0"]);
    assert!(text(&o).contains("--steps must be at least 1"), "{}", text(&o));
    let elm = elm_config(dir.path());
    let o = elmlab(&["bench", s(&elm), "model.neuron.path=fast"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("path"), "{}", text(&o));
}
