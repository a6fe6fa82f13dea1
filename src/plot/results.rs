//! A sweep's results.csv as rows of named cells, with the lookups the figures and the
//! fit need.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;

pub struct Results {
    pub columns: Vec<String>,
    pub rows: Vec<HashMap<String, String>>,
}

impl Results {
    /// The finished rows of a results.csv (unfinished runs have no metrics).
    pub fn read(path: &Path) -> Result<Self> {
        let mut reader = csv::Reader::from_path(path).with_context(|| format!("reading {} (write it with `elmlab sweep collect SWEEP_DIR`)", path.display()))?;
        let columns: Vec<String> = reader.headers().with_context(|| format!("reading {}", path.display()))?.iter().map(String::from).collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.with_context(|| format!("reading {}", path.display()))?;
            let row: HashMap<String, String> = columns.iter().cloned().zip(record.iter().map(String::from)).collect();
            if row.get("status").is_none_or(|s| s == "finished") {
                rows.push(row);
            }
        }
        if rows.is_empty() {
            bail!("{} has no finished runs", path.display());
        }
        Ok(Results { columns, rows })
    }

    /// Checks a column exists, listing the numeric ones if not.
    pub fn require(&self, column: &str) -> Result<()> {
        if self.columns.iter().any(|c| c == column) {
            return Ok(());
        }
        let numeric: Vec<&str> = self.columns.iter().filter(|c| self.rows.iter().all(|r| r.get(*c).is_some_and(|v| v.parse::<f64>().is_ok()))).map(String::as_str).collect();
        bail!("no column `{column}` in the results; numeric columns: {}", numeric.join(", "))
    }

    pub fn num(row: &HashMap<String, String>, column: &str) -> f64 {
        row.get(column).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
    }

    /// A row's budget as a key that sorts by size (zero-padded); empty without a budget.
    pub fn budget_key(row: &HashMap<String, String>) -> String {
        row.get("budget").and_then(|b| b.parse::<f64>().ok()).map(|b| format!("{b:020.3}")).unwrap_or_default()
    }

    /// Whether larger values of `metric` are better (accuracies), judged by the
    /// selection metric's name in the table.
    pub fn higher_is_better(&self, metric: &str) -> bool {
        let name = if metric == "test" || metric == "best_valid" { self.rows[0].get("metric").cloned().unwrap_or_default() } else { metric.to_string() };
        name.contains("accuracy")
    }
}

/// Mean and sample standard deviation.
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    (mean, sd)
}
