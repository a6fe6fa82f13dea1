//! `sweep collect`: one CSV row per run of a manifest — flattened config, parameter
//! accounting, final and best metrics, speed, Slurm ids — and the indices still
//! missing or failed, ready to resubmit.

use super::manifest::{index_ranges, Manifest};
use elmlab_train::rundir::RunState;
use anyhow::{Context, Result};
use elmlab_train::config::ResolvedConfig;
use elmlab_core::registry::Registry;
use serde_json::Value;
use std::path::PathBuf;

pub const RESULTS: &str = "results.csv";

pub struct Collected {
    pub csv: PathBuf,
    pub rows: usize,
    pub finished: usize,
    /// Indices not finished (missing, unfinished or failed).
    pub incomplete: Vec<usize>,
    pub failed: Vec<(usize, String)>,
}

/// Leaf values of a JSON tree under dotted keys, in tree order.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out);
            }
        }
        Value::Null => out.push((prefix.to_string(), String::new())),
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn collect(manifest: &Manifest, registry: &Registry) -> Result<Collected> {
    let mut columns: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<(String, String)>> = Vec::new();
    let mut incomplete = Vec::new();
    let mut failed = Vec::new();
    let mut finished = 0;
    for e in &manifest.entries {
        let dir = manifest.run_dir(e);
        let status = manifest.status(e);
        let mut row: Vec<(String, String)> = vec![
            ("index".into(), e.index.to_string()),
            ("run_id".into(), e.id.clone()),
            ("status".into(), status.as_str().into()),
            ("seed".into(), e.seed.to_string()),
            ("budget".into(), e.budget.map_or(String::new(), |b| b.to_string())),
            ("units".into(), e.units.to_string()),
            ("k_e".into(), e.k_e.to_string()),
            ("k_c".into(), e.k_c.to_string()),
            ("params".into(), e.params.to_string()),
        ];
        for (k, v) in &e.axes {
            row.push((format!("axis.{k}"), cell(v)));
        }
        let resolved = ResolvedConfig::from_text(&e.config, &format!("manifest entry {}", e.index), &[], registry).with_context(|| format!("manifest entry {}", e.index))?;
        let mut config = Vec::new();
        flatten("config", &resolved.tree, &mut config);
        row.extend(config);
        if status.state == RunState::Finished {
            finished += 1;
            let path = dir.join("summary.json");
            let s: Value = serde_json::from_str(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?).with_context(|| format!("reading {}", path.display()))?;
            let metric = s["best"]["metric"].as_str().unwrap_or("").to_string();
            row.push(("metric".into(), metric.clone()));
            row.push(("best_step".into(), cell(&s["best"]["step"])));
            row.push(("best_valid".into(), cell(&s["best"]["value"])));
            row.push(("test".into(), cell(&s["best"]["test"][&metric])));
            for (split, node) in [("final_valid", &s["final"]["valid"]), ("best_valid", &s["best"]["valid"]), ("test", &s["best"]["test"])] {
                if let Value::Object(m) = node {
                    for (k, v) in m {
                        row.push((format!("{split}.{k}"), cell(v)));
                    }
                }
            }
            row.push(("params_built".into(), cell(&s["params"]["total"])));
            row.push(("steps".into(), cell(&s["steps"])));
            row.push(("steps_per_s".into(), cell(&s["steps_per_s"])));
            row.push(("wall_time_s".into(), cell(&s["wall_time_s"])));
            for k in ["job_id", "array_job_id", "array_task_id", "restart_count"] {
                row.push((format!("slurm.{k}"), cell(&s["slurm"][k])));
            }
        } else {
            incomplete.push(e.index);
            if let Some(f) = status.failure {
                row.push(("error".into(), f.lines().last().unwrap_or("").to_string()));
                failed.push((e.index, f));
            }
        }
        for (k, _) in &row {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
        rows.push(row);
    }
    let csv_path = manifest.dir().join(RESULTS);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&columns)?;
    for row in &rows {
        w.write_record(columns.iter().map(|c| row.iter().find(|(k, _)| k == c).map(|(_, v)| v.as_str()).unwrap_or("")))?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("writing CSV: {e}"))?;
    elmlab_train::rundir::write_atomic(&csv_path, &bytes)?;
    let resubmit = manifest.dir().join("incomplete.txt");
    if incomplete.is_empty() {
        let _ = std::fs::remove_file(&resubmit);
    } else {
        elmlab_train::rundir::write_atomic(&resubmit, format!("{}\n", index_ranges(&incomplete)).as_bytes())?;
    }
    Ok(Collected { csv: csv_path, rows: rows.len(), finished, incomplete, failed })
}
