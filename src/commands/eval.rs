//! `elmlab eval`: metrics of a run's best or latest weights on a split.

use anyhow::{Context, Result};
use elmlab_train::checkpoint::{load_weights, WEIGHTS};
use elmlab_train::config::ResolvedConfig;
use elmlab_core::registry::Registry;
use elmlab_train::rundir::RunDir;
use elmlab_core::task::Split;
use elmlab_train::trainer::Session;
use serde_json::json;
use std::path::Path;

pub fn run(registry: &Registry, dir: &Path, split: &str, weights: &str, max_bytes: Option<u64>, device: &[String], as_json: bool) -> Result<i32> {
    let split: Split = split.parse().map_err(anyhow::Error::msg)?;
    let run = RunDir::open(dir)?;
    let overrides: Vec<String> = max_bytes.map(|n| format!("task.eval_bytes={n}")).into_iter().chain(device.iter().cloned()).collect();
    let resolved = ResolvedConfig::load(&run.config_path(), &overrides, registry)
        .with_context(|| format!("the config stored in {}{}", dir.display(), if max_bytes.is_some() { " (--max-bytes needs a task with `eval_bytes`)" } else { "" }))?;
    let mut session = Session::prepare(resolved, registry)?;
    let path = match weights {
        "best" => run.best_dir().join(WEIGHTS),
        "last" => run.latest_checkpoint()?.with_context(|| format!("{} has no checkpoint yet", dir.display()))?.join(WEIGHTS),
        other => anyhow::bail!("--weights must be `best` or `last`, got `{other}`"),
    };
    if !path.is_file() {
        anyhow::bail!("{} does not exist (no {weights} weights in this run yet)", path.display());
    }
    let meta = load_weights(&path, &mut session.network.params)?;
    let metrics = session.evaluate(split)?;
    let step = meta.get("step").cloned().unwrap_or_default();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json!({ "run": dir, "split": split, "weights": weights, "step": step, "metrics": metrics }))?);
    } else {
        let text: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {:.4}", v.as_f64().unwrap_or(f64::NAN))).collect();
        println!("{} {split} ({weights} weights, step {step}): {}", dir.display(), text.join("  "));
    }
    Ok(0)
}
