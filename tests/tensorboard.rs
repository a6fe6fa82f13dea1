//! TensorBoard logs read back with TensorBoard's own readers (tests/tensorboard/read_events.py,
//! run with the Python in ELMLAB_PYTHON or `python3`; needs `pip install tensorboard`).
//! Where that Python has no tensorboard the tests say so and pass, unless
//! ELMLAB_TENSORBOARD_TESTS=1 (set by CI), where they fail.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

fn python() -> Option<String> {
    python_with("tensorboard", "ELMLAB_TENSORBOARD_TESTS")
}

/// What TensorBoard sees under `logdir`: run name → {scalars, hparams}.
fn read(python: &str, logdir: &Path) -> serde_json::Map<String, Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tensorboard/read_events.py");
    let o = std::process::Command::new(python).arg(script).arg(logdir).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice::<Value>(&o.stdout).unwrap().as_object().unwrap().clone()
}

/// Every number of every metrics.jsonl row is the scalar `<split>/<key>` at its step, and
/// no scalar has a step that metrics.jsonl lacks (nothing duplicated, nothing missing).
fn assert_scalars_are_the_metrics(scalars: &Value, rows: &[Value]) {
    let mut expected: std::collections::BTreeMap<String, Vec<(u64, f64)>> = Default::default();
    for row in rows {
        let split = row["split"].as_str().unwrap();
        for (key, v) in row.as_object().unwrap() {
            if let (false, Some(x)) = (key == "step", v.as_f64()) {
                expected.entry(format!("{split}/{key}")).or_default().push((row["step"].as_u64().unwrap(), x));
            }
        }
    }
    assert!(!expected.is_empty());
    for (tag, points) in &expected {
        let got: Vec<(u64, f64)> = scalars[tag].as_array().unwrap_or_else(|| panic!("no scalar {tag}")).iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap())).collect();
        assert_eq!(got.len(), points.len(), "{tag}: steps {:?}, metrics.jsonl has {:?}", got.iter().map(|p| p.0).collect::<Vec<_>>(), points.iter().map(|p| p.0).collect::<Vec<_>>());
        for ((gs, gv), (es, ev)) in got.iter().zip(points) {
            assert_eq!(gs, es, "{tag}");
            assert_eq!(*gv as f32, *ev as f32, "{tag} at step {es}");
        }
    }
    // the speed is there for every training line but the first of an invocation at most
    let speeds = scalars["train/steps_per_s"].as_array().unwrap();
    assert!(speeds.len() + 2 >= expected["train/loss"].len() && speeds.iter().all(|p| p[1].as_f64().unwrap() > 0.0));
}

#[test]
fn a_two_run_sweep_shows_its_scalars_and_hparams_in_tensorboard() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    config(tmp.path(), "small.ron", SMALL);
    let file = config(tmp.path(), "two.ron", r#"(name: "two", base: "small.ron", set: {"train.steps": 30}, axes: [(key: "model.units", values: [8, 12])])"#);
    let dir = tmp.path().join("two");
    let o = elmlab(&["sweep", "plan", s(&file), "--out", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = elmlab(&["sweep", "run", s(&dir.join("manifest.jsonl"))]);
    assert!(o.status.success(), "{}", text(&o));

    let seen = read(&python, &dir);
    let manifest = json_lines(&dir.join("manifest.jsonl"));
    assert_eq!(seen.len(), 2, "runs TensorBoard sees: {:?}", seen.keys().collect::<Vec<_>>());
    for entry in &manifest {
        let id = entry["id"].as_str().unwrap();
        let run = dir.join("runs").join(id);
        let logged = &seen[&format!("runs/{id}/tb")];
        assert_scalars_are_the_metrics(&logged["scalars"], &json_lines(&run.join("metrics.jsonl")));

        let summary: Value = serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
        let start = &logged["hparams"]["_hparams_/session_start_info"]["hparams"];
        assert_eq!(start["model.units"], entry["axes"]["model.units"].as_f64().unwrap(), "the swept value");
        for (hparam, key) in [("N", "units"), ("k_e", "k_e"), ("k_c", "k_c")] {
            assert_eq!(start[hparam].as_f64(), summary[key].as_f64(), "{hparam}");
        }
        assert_eq!(start["params"].as_f64(), summary["params"]["total"].as_f64());
        assert_eq!(start["neuron"], summary["neuron"]);
        assert_eq!(logged["hparams"]["_hparams_/session_end_info"]["status"], "STATUS_SUCCESS");
        // the results, as the table's metrics
        let at_end = |tag: &str| logged["scalars"][tag][0][1].as_f64().unwrap() as f32;
        assert_eq!(at_end("test/accuracy"), summary["best"]["test"]["accuracy"].as_f64().unwrap() as f32);
        assert_eq!(at_end("best/valid/accuracy"), summary["best"]["valid"]["accuracy"].as_f64().unwrap() as f32);
        assert_eq!(at_end("final/valid/loss"), summary["final"]["valid"]["loss"].as_f64().unwrap() as f32);
    }
}

#[test]
fn a_resumed_run_appends_without_duplicating_steps() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // checkpoints every 7 steps, logs every 4: stopped at 10, it resumes from 7 and the
    // lines of step 8 are written twice unless the log is cut back
    let cfg = config(tmp.path(), "c.ron", SMALL);
    let run = tmp.path().join("r");
    let o = elmlab(&["train", s(&cfg), "train.steps=30", "train.checkpoint_every=7", "train.log_every=4", "train.eval_every=4", "--out", s(&run), "--halt-after", "10"]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::remove_dir_all(run.join("checkpoints/step-000000010")).unwrap();
    std::fs::write(run.join("checkpoints/latest"), "step-000000007").unwrap();
    let o = elmlab(&["train", "--resume", s(&run)]);
    assert!(o.status.success(), "{}", text(&o));
    let seen = read(&python, &run.join("tb"));
    let logged = &seen["."];
    let rows = json_lines(&run.join("metrics.jsonl"));
    assert!(rows.iter().any(|r| r["step"] == 8));
    assert_scalars_are_the_metrics(&logged["scalars"], &rows);
    assert!(logged["hparams"]["_hparams_/session_start_info"].is_object());
    assert_eq!(logged["hparams"]["_hparams_/session_end_info"]["status"], "STATUS_SUCCESS");
}
