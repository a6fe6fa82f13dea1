//! `elmlab compare`: every variant trained at the solved width, a table, a CSV, a chart;
//! a second invocation skips finished runs and completes unfinished ones.

mod common;
use common::*;

const SPEC: &str = r#"(
    name: "cmp",
    out_dir: "OUT",
    budgets: [900, 1500],
    seeds: [1, 2],
    base: (
        task: (kind: "delayed_recall", classes: 4, cue_steps: 2, delay: 4, noise_channels: 2, valid_batches: 1, test_batches: 1),
        model: (neuron: (kind: "linear")),
        train: (steps: 6, batch: 4, eval_batch: 8, log_every: 3, eval_every: 3, checkpoint_every: 3),
    ),
    variants: [
        (name: "lstm", neuron: (kind: "lstm")),
        (name: "lin", neuron: (kind: "linear", synapses: 8)),
    ],
)"#;

#[test]
fn compares_variants_at_equal_budgets_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spec = config(dir.path(), "cmp.ron", &SPEC.replace("OUT", out.to_str().unwrap()));
    let o = elmlab(&["compare", s(&spec), "--jobs", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let root = out.join("cmp");
    let csv = std::fs::read_to_string(root.join("results.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 8, "2 variants × 2 budgets × 2 seeds:\n{csv}");
    for r in &rows {
        let (budget, params): (u64, u64) = (r[1].parse().unwrap(), r[4].parse().unwrap());
        assert!(params <= budget, "{r:?}");
    }
    // the solved widths: LSTM 4H(D+H+2) + C(H+1) with D = 7, C = 4
    let lstm = |h: u64| 4 * h * (7 + h + 2) + 4 * (h + 1);
    for r in rows.iter().filter(|r| r[0] == "lstm") {
        let (budget, h): (u64, u64) = (r[1].parse().unwrap(), r[3].parse().unwrap());
        assert!(lstm(h) <= budget && lstm(h + 1) > budget);
    }
    let md = std::fs::read_to_string(root.join("results.md")).unwrap();
    assert!(md.contains("| lstm | 900 |") && md.contains("| lin | 1500 |") && md.contains("±"), "{md}");
    let svg = std::fs::read_to_string(root.join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.matches("<rect").count() >= 5);

    // an unfinished run (summary missing, checkpoint there) is completed, the rest skipped
    let unfinished = root.join("runs/lin-P900-s2");
    std::fs::remove_file(unfinished.join("summary.json")).unwrap();
    let before = std::fs::read_to_string(root.join("runs/lstm-P900-s1/metrics.jsonl")).unwrap();
    let o = elmlab(&["compare", s(&spec)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(unfinished.join("summary.json").is_file());
    assert_eq!(text(&o).matches("skipped").count(), 7, "{}", text(&o));
    assert_eq!(before, std::fs::read_to_string(root.join("runs/lstm-P900-s1/metrics.jsonl")).unwrap());
    // the same numbers (timings aside)
    let metrics = |csv: &str| csv.lines().map(|l| l.split(',').take(9).collect::<Vec<_>>().join(",")).collect::<Vec<_>>();
    assert_eq!(metrics(&std::fs::read_to_string(root.join("results.csv")).unwrap()), metrics(&csv));
}

#[test]
fn a_bad_variant_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spec = config(dir.path(), "cmp.ron", &SPEC.replace("OUT", out.to_str().unwrap()).replace("(kind: \"lstm\")", "(kind: \"lstm\", memory: 3)"));
    let o = elmlab(&["compare", s(&spec)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("run `lstm-P900-s1`") && text(&o).contains("memory"), "{}", text(&o));
    assert!(!out.join("cmp/runs").exists());
}
