//! `elmlab eval`: metrics of a run's best or latest weights on a split.

use anyhow::{Context, Result};
use elmlab_train::checkpoint::{load_tensors, load_weights};
use elmlab_core::registry::Registry;
use elmlab_core::task::Split;
use elmlab_train::trainer::Session;
use serde_json::json;
use std::path::Path;

pub fn run(registry: &Registry, source: &Path, split: &str, weights: &str, max_bytes: Option<u64>, device: &[String], as_json: bool) -> Result<i32> {
    let split: Split = split.parse().map_err(anyhow::Error::msg)?;
    let overrides: Vec<String> = max_bytes.map(|n| format!("task.eval_bytes={n}")).into_iter().chain(device.iter().cloned()).collect();
    let (resolved, path) = crate::commands::record::locate(registry, source, weights, &overrides)
        .with_context(|| format!("the config of {}{}", source.display(), if max_bytes.is_some() { " (--max-bytes needs a task with `eval_bytes`)" } else { "" }))?;
    // the file's fixed tensors (connectomes, timescales) define the model's
    let mut session = Session::prepare_fixed(resolved, registry, load_tensors(&path)?.0).with_context(|| format!("building the model of {}", path.display()))?;
    let meta = load_weights(&path, &mut session.network.params)?;
    let metrics = session.evaluate(split)?;
    let step = meta.get("step").cloned().unwrap_or_default();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json!({ "run": source, "split": split, "weights": weights, "step": step, "metrics": metrics }))?);
    } else {
        let text: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {:.4}", v.as_f64().unwrap_or(f64::NAN))).collect();
        let which = if source.is_dir() { format!("{weights} weights, ") } else { String::new() };
        println!("{} {split} ({which}step {step}): {}", source.display(), text.join("  "));
    }
    Ok(0)
}
