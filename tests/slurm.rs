//! A sweep submitted to a real Slurm cluster: the array runs every entry, the dependent
//! job collects the table. CI starts a one-node cluster (`.ci/slurm-up`) and sets
//! ELMLAB_SLURM_TESTS=1, which makes this test required; elsewhere it runs when
//! `sbatch` is on PATH and says that it was skipped otherwise.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn slurm_available() -> bool {
    let required = std::env::var("ELMLAB_SLURM_TESTS").is_ok_and(|v| v == "1");
    let present = Command::new("sinfo").arg("-h").output().is_ok_and(|o| o.status.success());
    assert!(present || !required, "ELMLAB_SLURM_TESTS=1 but no Slurm cluster answers (start one with .ci/slurm-up)");
    if !present {
        eprintln!("skipped: no Slurm cluster here (CI starts one with .ci/slurm-up)");
    }
    present
}

fn wait_for_jobs(ids: &[&str], limit: Duration) {
    let t0 = Instant::now();
    loop {
        let o = Command::new("squeue").args(["-h", "-o", "%i %T", "-j", &ids.join(",")]).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        if out.trim().is_empty() {
            return;
        }
        assert!(t0.elapsed() < limit, "jobs still queued after {limit:?}:\n{out}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn read_rows(csv_path: &Path) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut r = csv::Reader::from_path(csv_path).unwrap_or_else(|e| panic!("{}: {e}", csv_path.display()));
    let headers = r.headers().unwrap().clone();
    (headers, r.records().map(|x| x.unwrap()).collect())
}

#[test]
fn a_sweep_runs_as_a_slurm_array_and_the_collect_job_writes_the_table() {
    if !slurm_available() {
        return;
    }
    // Slurm's daemons run the jobs from this directory: keep it out of private /tmp namespaces.
    let base = std::env::current_dir().unwrap().join("target").join("slurm-test");
    std::fs::create_dir_all(&base).unwrap();
    let tmp = tempfile::tempdir_in(&base).unwrap();
    config(tmp.path(), "small.ron", SMALL);
    let file = config(
        tmp.path(),
        "sweep.ron",
        r#"(name: "slurm", base: "small.ron", set: {"train.steps": 40}, axes: [(key: "model.units", values: [8, 12])], seeds: 2)"#,
    );
    let dir = tmp.path().join("sweep");
    let o = elmlab(&["sweep", "plan", s(&file), "--out", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = elmlab(&["sweep", "submit", s(&dir.join("manifest.jsonl")), "--slurm", "--max-parallel", "2", "--cpus", "1", "--time", "00:10:00"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    // "submitted array job A (...) and collect job C"
    let words: Vec<&str> = out.split_whitespace().collect();
    let after = |w: &str| words.iter().position(|x| *x == w).map(|i| words[i + 1].trim_end_matches(|c: char| !c.is_ascii_digit()).to_string()).unwrap();
    let (array_job, collect_job) = (after("job"), words.iter().rposition(|x| *x == "job").map(|i| words[i + 1].to_string()).unwrap());
    assert_ne!(array_job, collect_job);
    wait_for_jobs(&[&array_job, &collect_job], Duration::from_secs(300));

    // The collect job wrote the table: four finished runs, each recording its array task.
    let (headers, rows) = read_rows(&dir.join("results.csv"));
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap_or_else(|| panic!("no {n}"));
    assert_eq!(rows.len(), 4, "logs: {:?}", std::fs::read_dir(dir.join("logs")).map(|d| d.count()));
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(&row[col("status")], "finished", "row {i}");
        assert_eq!(&row[col("slurm.array_job_id")], array_job.as_str(), "row {i}");
        assert_eq!(&row[col("slurm.array_task_id")], i.to_string().as_str(), "row {i}");
        assert!(row[col("test")].parse::<f64>().unwrap() > 0.0);
        assert!(dir.join("logs").join(format!("{array_job}_{i}.out")).is_file());
    }
    assert!(dir.join("logs").join(format!("collect-{collect_job}.out")).is_file());
    // Everything is finished, so a second submit has nothing to do.
    let o = elmlab(&["sweep", "submit", s(&dir.join("manifest.jsonl")), "--slurm"]);
    assert!(text(&o).contains("nothing to submit"), "{}", text(&o));
}
