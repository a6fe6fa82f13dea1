//! Sweeps end to end: planning (expansion, budget rules, run ids), refusals, running
//! locally with an interruption, run-index under a simulated Slurm task, collecting,
//! the sbatch script, plots and the fit.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn manifest(dir: &Path) -> Vec<Value> {
    json_lines(&dir.join("manifest.jsonl"))
}

/// A sweep directory planned from `body` (a sweep file whose base is SMALL).
fn plan(tmp: &Path, name: &str, body: &str) -> PathBuf {
    config(tmp, "small.ron", SMALL);
    let file = config(tmp, &format!("{name}.ron"), body);
    let dir = tmp.join(name);
    let o = elmlab(&["sweep", "plan", s(&file), "--out", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    dir
}

#[test]
fn plan_expands_axes_zips_ranges_seeds_and_budgets_in_a_stable_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = plan(
        tmp.path(),
        "grid",
        r#"(
            name: "grid", base: "small.ron", set: {"train.steps": 24},
            axes: [
                (key: "model.neuron.synapses", values: [6, 12]),
                (zip: [(key: "train.optimizer.lr", values: [1e-2, 5e-3]), (key: "train.batch", values: [8, 4])]),
            ],
            seeds: [0, 1],
            budget: (params: [900, 1500], tolerance: 0.1),
        )"#,
    );
    let m = manifest(&dir);
    assert_eq!(m.len(), 2 * 2 * 2 * 2);
    let mut expected = Vec::new();
    for budget in [900, 1500] {
        for syn in [6, 12] {
            for (lr, batch) in [(1e-2, 8), (5e-3, 4)] {
                for seed in [0, 1] {
                    expected.push((budget, syn, lr, batch, seed));
                }
            }
        }
    }
    for (i, (e, (budget, syn, lr, batch, seed))) in m.iter().zip(expected).enumerate() {
        assert_eq!(e["index"], i);
        assert_eq!(e["budget"], budget);
        assert_eq!(e["seed"], seed);
        assert_eq!(e["axes"]["model.neuron.synapses"], syn);
        assert_eq!(e["axes"]["train.optimizer.lr"].as_f64().unwrap(), lr);
        assert_eq!(e["axes"]["train.batch"], batch);
        // The budget rule: never above P, within the tolerance below it.
        let p = e["params"].as_u64().unwrap();
        assert!(p <= budget && p as f64 >= 0.9 * budget as f64, "row {i}: {p} for budget {budget}");
        assert!(e["config"].as_str().unwrap().contains("steps: 24"));
    }
    // The stored config is what inspect sees: same units and parameter count.
    let row = &m[5];
    let cfg = config(tmp.path(), "row5.ron", row["config"].as_str().unwrap());
    let o = elmlab(&["inspect", s(&cfg), "--json"]);
    let info: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["units"], row["units"]);
    assert_eq!(info["params"]["total"], row["params"]);
    // Every config differs, so every id differs.
    let ids: std::collections::BTreeSet<&str> = m.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), m.len());
}

#[test]
fn ranges_log_ranges_seed_counts_and_identical_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = plan(
        tmp.path(),
        "ranges",
        r#"(
            base: "small.ron",
            axes: [(key: "model.neuron.synapses", range: (from: 4, to: 10, step: 3))],
            seeds: 2,
        )"#,
    );
    let syn: Vec<i64> = manifest(&dir).iter().map(|e| e["axes"]["model.neuron.synapses"].as_i64().unwrap()).collect();
    assert_eq!(syn, vec![4, 4, 7, 7, 10, 10]);
    let dir = plan(tmp.path(), "log", r#"(base: "small.ron", axes: [(key: "model.units", log: (from: 2, to: 32, count: 5))])"#);
    let units: Vec<i64> = manifest(&dir).iter().map(|e| e["units"].as_i64().unwrap()).collect();
    assert_eq!(units, vec![2, 4, 8, 16, 32]);
    // The same config twice gets the same run id (and so one run directory); another seed does not.
    let dir = plan(tmp.path(), "same", r#"(base: "small.ron", axes: [(key: "model.neuron.synapses", values: [6, 6])], seeds: [3, 4])"#);
    let m = manifest(&dir);
    assert_eq!(m[0]["id"], m[2]["id"]);
    assert_eq!(m[1]["id"], m[3]["id"]);
    assert_ne!(m[0]["id"], m[1]["id"]);
}

#[test]
fn bad_sweep_files_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    config(tmp.path(), "small.ron", SMALL);
    let cases = [
        (r#"(base: "small.ron", axis: [])"#, vec!["unknown key `axis`", "valid keys: name, out_dir, base, set, axes, seeds, budget"]),
        (r#"(base: "small.ron", axes: [(key: "model.neuron.synapse", values: [1])])"#, vec!["synapse", "synapses"]),
        (r#"(base: "small.ron", axes: [(zip: [(key: "train.batch", values: [1, 2]), (key: "seed", values: [1])])])"#, vec!["equal lengths", "`train.batch` has 2", "`seed` has 1"]),
        (r#"(base: "small.ron", axes: [(key: "train.batch", values: [1], range: (from: 1, to: 2, step: 1))])"#, vec!["exactly one of", "values and range"]),
        (r#"(base: "small.ron", budget: (params: [330], tolerance: 0.001))"#, vec!["below P = 330", "tolerance 0.1%"]),
        (r#"(base: "missing.ron")"#, vec!["missing.ron"]),
    ];
    for (i, (body, needles)) in cases.iter().enumerate() {
        let file = config(tmp.path(), &format!("bad{i}.ron"), body);
        let o = elmlab(&["sweep", "plan", s(&file), "--out", s(&tmp.path().join(format!("bad{i}")))]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "case {i}: {out}");
        for n in needles {
            assert!(out.contains(n), "case {i}: `{n}` not in {out}");
        }
        assert!(!out.contains("panicked"), "{out}");
    }
}

fn four_runs(tmp: &Path, name: &str, steps: u64) -> PathBuf {
    plan(
        tmp,
        name,
        &format!(r#"(name: "four", base: "small.ron", set: {{"train.steps": {steps}, "train.checkpoint_every": 25}}, axes: [(key: "model.units", values: [8, 12])], seeds: 2)"#),
    )
}

fn run_metrics(dir: &Path) -> Vec<(String, String)> {
    manifest(dir).iter().map(|e| {
        let id = e["id"].as_str().unwrap().to_string();
        let m = std::fs::read_to_string(dir.join("runs").join(&id).join("metrics.jsonl")).unwrap();
        (id, m)
    }).collect()
}

#[test]
fn an_interrupted_local_sweep_finishes_on_rerun_with_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    // long enough (about a second a run) that the second run is still training when the
    // test, polling, sees its first checkpoint and stops the sweep, even on a loaded machine
    let clean = four_runs(tmp.path(), "clean", 2000);
    let o = elmlab(&["sweep", "run", s(&clean.join("manifest.jsonl")), "--jobs", "2"]);
    assert!(o.status.success(), "{}", text(&o));

    let cut = four_runs(tmp.path(), "cut", 2000);
    let m = manifest(&cut);
    let first = cut.join("runs").join(m[0]["id"].as_str().unwrap());
    let second = cut.join("runs").join(m[1]["id"].as_str().unwrap());
    let mut child = Command::new(env!("CARGO_BIN_EXE_elmlab")).args(["sweep", "run", s(&cut.join("manifest.jsonl")), "--jobs", "1"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    // Stop it once the first run is done and the second has a checkpoint.
    let t0 = Instant::now();
    while !(first.join("summary.json").is_file() && second.join("checkpoints/latest").is_file()) {
        assert!(t0.elapsed() < Duration::from_secs(120), "the sweep did not get going");
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    let logs = || std::fs::read_dir(cut.join("logs")).map(|d| d.flatten().map(|e| format!("{}:\n{}", e.path().display(), std::fs::read_to_string(e.path()).unwrap_or_default())).collect::<Vec<_>>().join("\n")).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "the stopped sweep's status; its logs:\n{}", logs());
    assert!(!second.join("summary.json").is_file(), "the second run should have been stopped, not finished");
    assert!(second.join("checkpoints/latest").is_file());
    assert!(!cut.join("runs").join(m[3]["id"].as_str().unwrap()).exists(), "later runs should not have started");

    let o = elmlab(&["sweep", "run", s(&cut.join("manifest.jsonl")), "--jobs", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("1 of 4 runs finished earlier; skipped"), "{}", text(&o));
    // Same ids (same configs), same numbers, step for step.
    for ((id, whole), (_, resumed)) in run_metrics(&clean).iter().zip(run_metrics(&cut)) {
        let first_difference = whole.lines().zip(resumed.lines()).find(|(a, b)| a != b);
        assert_eq!(whole, &resumed, "run {id}: metrics of the uninterrupted and the resumed sweep differ, first at {first_difference:?}; logs:\n{}", logs());
    }
    // A third invocation has nothing to do.
    let o = elmlab(&["sweep", "run", s(&cut.join("manifest.jsonl"))]);
    assert!(text(&o).contains("4 of 4 runs finished earlier"), "{}", text(&o));
}

#[test]
fn run_index_takes_the_slurm_task_id_records_the_job_and_checkpoints_on_sigusr1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = four_runs(tmp.path(), "idx", 3000);
    let m = manifest(&dir);
    let run = dir.join("runs").join(m[2]["id"].as_str().unwrap());
    let mut child = Command::new(env!("CARGO_BIN_EXE_elmlab"))
        .args(["run-index", s(&dir.join("manifest.jsonl"))])
        .env("SLURM_JOB_ID", "4242")
        .env("SLURM_ARRAY_JOB_ID", "4240")
        .env("SLURM_ARRAY_TASK_ID", "2")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !run.join("checkpoints/latest").is_file() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no checkpoint appeared in {}", run.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill").args(["-USR1", &child.id().to_string()]).status().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130), "SIGUSR1 should stop with a checkpoint");
    assert!(!run.join("summary.json").exists());

    // The requeued task resumes and finishes; the summary says which job ran it.
    let o = Command::new(env!("CARGO_BIN_EXE_elmlab")).args(["run-index", s(&dir.join("manifest.jsonl"))]).env("SLURM_JOB_ID", "4243").env("SLURM_ARRAY_JOB_ID", "4240").env("SLURM_ARRAY_TASK_ID", "2").output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["slurm"]["job_id"], "4243");
    assert_eq!(summary["slurm"]["array_task_id"], "2");
    assert_eq!(summary["steps"], 3000);

    // Collect: one row per entry, the finished one with metrics, the rest listed to resubmit.
    let o = elmlab(&["sweep", "collect", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("not finished: 0-1,3"), "{}", text(&o));
    assert!(text(&o).contains("--indices 0-1,3"), "{}", text(&o));
    let mut reader = csv::Reader::from_path(dir.join("results.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 4);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {headers:?}"));
    assert_eq!(&rows[2][col("status")], "finished");
    assert_eq!(&rows[0][col("status")], "missing");
    assert_eq!(&rows[2][col("slurm.job_id")], "4243");
    assert_eq!(&rows[2][col("config.model.units")], "12");
    assert_eq!(rows[2][col("params")], rows[2][col("params_built")]);
    let test: f64 = rows[2][col("test")].parse().unwrap();
    assert_eq!(test, summary["best"]["test"]["accuracy"].as_f64().unwrap());
    assert_eq!(std::fs::read_to_string(dir.join("incomplete.txt")).unwrap().trim(), "0-1,3");
}

#[test]
fn the_sbatch_script_is_an_array_with_throttle_signal_requeue_and_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = four_runs(tmp.path(), "slurm", 20);
    let manifest_path = dir.join("manifest.jsonl");
    let args = ["sweep", "submit", s(&manifest_path), "--slurm", "--dry-run", "--partition", "gpu", "--gres", "gpu:1", "--time", "04:00:00", "--cpus", "4", "--mem", "16G", "--max-parallel", "2", "--signal-before", "240"];
    let o = elmlab(&args);
    assert!(o.status.success(), "{}", text(&o));
    let script = std::fs::read_to_string(dir.join("slurm/array.sbatch")).unwrap();
    let abs = std::path::absolute(&dir).unwrap();
    for line in [
        "#!/bin/bash",
        "#SBATCH --array=0-3%2",
        "#SBATCH --signal=B:USR1@240",
        "#SBATCH --requeue",
        "#SBATCH --partition=gpu",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --time=04:00:00",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=16G",
        &format!("#SBATCH --output={}/logs/%A_%a.out", abs.display()),
        &format!("run-index '{}/manifest.jsonl' --index \"$SLURM_ARRAY_TASK_ID\" &", abs.display()),
        "scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"",
    ] {
        assert!(script.lines().any(|l| l.trim_end().ends_with(line.trim_start_matches("#!")) || l.contains(line)), "missing `{line}` in\n{script}");
    }
    let collect = std::fs::read_to_string(dir.join("slurm/collect.sbatch")).unwrap();
    assert!(collect.contains(&format!("sweep collect '{}'", abs.display())), "{collect}");
    // The script is valid bash.
    assert!(Command::new("bash").args(["-n", s(&dir.join("slurm/array.sbatch"))]).status().unwrap().success());
    // Only unfinished runs are submitted; an explicit list is checked against the manifest.
    let o = elmlab(&["sweep", "submit", s(&dir.join("manifest.jsonl")), "--slurm", "--dry-run", "--indices", "1,9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("index 9 is outside the manifest"), "{}", text(&o));
}

#[test]
fn plots_and_fit_from_a_results_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A results table made by an independent implementation of the info_saturation model
    // at known parameters (five budgets, three k_c, nine k_e): the fit must find them.
    let truth = [20.0, 30.0, 16.0, 0.02, 0.9, -0.8, 5.0];
    let info = |n: f64, k_e: f64, k_c: f64| {
        let snr = truth[0] * (k_e / (k_e + truth[1])) * (k_c / (k_c + truth[2]));
        n / (1.0 + truth[3] * (n - 1.0)) * 0.5 * (1.0 + snr).log2()
    };
    let mut csv = String::from("index,status,budget,seed,units,k_e,k_c,params,config.model.neuron.memory,metric,test\n");
    let mut i = 0;
    for budget in [1e3, 4e3, 2e4, 1e5, 4e5] {
        for k_c in [4.0, 16.0, 64.0] {
            for j in 0..9 {
                let k_e = 2.0 * 1.8f64.powi(j);
                let n = (budget / (k_e + k_c)).floor();
                // deterministic small "noise"
                let noise = 0.0005 * ((i * 7919 % 13) as f64 / 6.0 - 1.0);
                let metric = truth[4] + truth[5] * (-info(n, k_e, k_c) / truth[6]).exp() + noise;
                csv += &format!("{i},finished,{budget},0,{n},{k_e},{k_c},{},{j},accuracy,{metric}\n", n * (k_e + k_c));
                i += 1;
            }
        }
    }
    let results = config(dir, "results.csv", &csv);
    let o = elmlab(&["fit", s(&results), "--json", "--plot", s(&dir.join("fit"))]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let json: Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    for (name, want) in ["s", "k0", "c0", "r", "L_inf", "A", "I0"].iter().zip(truth) {
        let got = json["parameters"][name]["value"].as_f64().unwrap();
        assert!((got - want).abs() < 0.15 * want.abs(), "{name}: fitted {got}, true {want}");
    }
    assert!(json["r_squared"].as_f64().unwrap() > 0.99);
    // The predicted best allocation spends the budget.
    for b in json["best_allocation"].as_array().unwrap() {
        let spent = b["units"].as_f64().unwrap() * (b["k_e"].as_f64().unwrap() + b["k_c"].as_f64().unwrap());
        assert!((spent - b["budget"].as_f64().unwrap()).abs() < 1e-6 * spent);
    }
    // Figures: SVG with labels, PNG with the PNG signature and real size.
    for (args, stem) in [
        (vec!["plot", "tradeoff", s(&results), "--x", "config.model.neuron.memory"], "tradeoff"),
        (vec!["plot", "frontier", s(&results)], "frontier"),
    ] {
        let o = elmlab(&args);
        assert!(o.status.success(), "{}", text(&o));
        let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("circle") && (stem != "tradeoff" || svg.contains("P = 20k")), "{stem}");
        let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "{stem}: {} bytes", png.len());
    }
    assert!(dir.join("fit.png").is_file() && dir.join("fit.svg").is_file());
    // A column that is not there names the ones that are.
    let o = elmlab(&["plot", "tradeoff", s(&results), "--x", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no column `nope`") && text(&o).contains("k_e"), "{}", text(&o));
}

#[test]
fn the_ready_sweeps_plan_within_their_budgets() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/sweeps");
    for (file, runs, budgets) in [
        ("quick.ron", 20, vec![5000, 10000]),
        ("shd_adding_number_vs_complexity.ron", 27, vec![69000]),
        ("enwik8_number_vs_complexity.ron", 8, vec![3280000]),
        ("shd_adding_budget_scaling.ron", 40, vec![8000, 25000, 80000, 250000, 800000]),
    ] {
        let dir = tmp.path().join(file);
        let o = elmlab(&["sweep", "plan", s(&root.join(file)), "--out", s(&dir)]);
        assert!(o.status.success(), "{file}: {}", text(&o));
        let m = manifest(&dir);
        assert_eq!(m.len(), runs, "{file}");
        for e in &m {
            let (p, b) = (e["params"].as_u64().unwrap(), e["budget"].as_u64().unwrap());
            assert!(budgets.contains(&b) && p <= b && p as f64 >= 0.9 * b as f64, "{file}: {p} for {b}");
        }
        // N shrinks as d_m grows at a fixed budget.
        let first = m.iter().filter(|e| e["budget"] == m[0]["budget"] && e["seed"] == 0).map(|e| e["units"].as_u64().unwrap()).collect::<Vec<_>>();
        assert!(first.windows(2).all(|w| w[0] > w[1]), "{file}: {first:?}");
    }
}

#[test]
fn a_failing_run_is_reported_with_its_error_and_listed_for_resubmission() {
    let tmp = tempfile::tempdir().unwrap();
    // Plans fine (data are read lazily), fails when it runs: the SHD files are not there.
    let missing = tmp.path().join("no-shd-here");
    let file = config(
        tmp.path(),
        "fail.ron",
        &format!(r#"(name: "fail", base: "{}", set: {{"task.data_dir": "{}"}})"#, Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/shd_adding/linear.ron").display(), missing.display()),
    );
    let dir = tmp.path().join("fail");
    let o = elmlab(&["sweep", "plan", s(&file), "--out", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = elmlab(&["sweep", "run", s(&dir.join("manifest.jsonl"))]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("failed: 0"), "{}", text(&o));
    let o = elmlab(&["sweep", "collect", s(&dir)]);
    let out = text(&o);
    assert!(out.contains("run 0 failed") && out.contains("no-shd-here") && out.contains("--indices 0"), "{out}");
    let mut reader = csv::Reader::from_path(dir.join("results.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    let get = |n: &str| row[headers.iter().position(|h| h == n).unwrap()].to_string();
    assert_eq!(get("status"), "failed");
    assert!(get("error").contains("no-shd-here"), "{}", get("error"));
}
