//! Planning: every run of a sweep resolved and sized (units solved for budget rules,
//! checked against the tolerance) before anything trains.

use super::manifest::{run_id, Entry};
use super::spec::SweepSpec;
use anyhow::{bail, Context, Result};
use elmlab_train::config::ResolvedConfig;
use elmlab_core::registry::Registry;
use elmlab_train::trainer::Session;
use serde_json::{Map, Value};

/// The value at a dotted key of a resolved config tree.
pub fn lookup<'a>(tree: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(tree, |node, key| node.get(key))
}

pub fn plan(spec: &SweepSpec, registry: &Registry) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for run in spec.expand()? {
        let label = || {
            let mut parts: Vec<String> = run.axes.iter().map(|(k, v)| format!("{k}={}", v.brief())).collect();
            if let Some(p) = run.budget {
                parts.push(format!("budget={p}"));
            }
            parts.push(format!("seed={}", run.seed));
            parts.join(" ")
        };
        let resolved = ResolvedConfig::from_tree(&run.tree, registry).with_context(|| format!("run {} ({})", entries.len(), label()))?;
        let plan = Session::plan_only(&resolved, registry).with_context(|| format!("run {} ({})", entries.len(), label()))?;
        if let (Some(p), Some(rule)) = (run.budget, &spec.budget) {
            let shortfall = (p - plan.total_params.min(p)) as f64 / p as f64;
            if shortfall > rule.tolerance {
                bail!(
                    "run {} ({}): the largest model within the budget has {} parameters (N = {}), {:.1}% below P = {p}, more than the tolerance {:.1}%; \
                     widen `budget.tolerance` or change the other sizes",
                    entries.len(),
                    label(),
                    plan.total_params,
                    plan.units,
                    100.0 * shortfall,
                    100.0 * rule.tolerance
                );
            }
        }
        let mut axes = Map::new();
        for (key, _) in &run.axes {
            axes.insert(key.clone(), lookup(&resolved.tree, key).cloned().unwrap_or(Value::Null));
        }
        let config = resolved.to_ron();
        entries.push(Entry {
            index: entries.len(),
            id: run_id(&config),
            axes,
            seed: run.seed,
            budget: run.budget,
            units: plan.units,
            params: plan.total_params,
            k_e: plan.k_e,
            k_c: plan.k_c,
            config,
        });
    }
    Ok(entries)
}

/// The table `sweep plan` prints.
pub fn table(entries: &[Entry]) -> String {
    // `model.units` has its own column.
    let keys: Vec<String> = entries.first().map(|e| e.axes.keys().filter(|k| *k != "model.units").cloned().collect()).unwrap_or_default();
    let short = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
    let mut header = vec!["index".to_string(), "run id".into()];
    header.extend(keys.iter().map(|k| short(k)));
    header.extend(["budget", "seed", "units", "k_e", "k_c", "params"].map(String::from));
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let mut r = vec![e.index.to_string(), e.id.clone()];
            r.extend(keys.iter().map(|k| e.axes.get(k).map(|v| v.to_string()).unwrap_or_default()));
            r.extend([e.budget.map_or("-".into(), |b| b.to_string()), e.seed.to_string(), e.units.to_string(), e.k_e.to_string(), e.k_c.to_string(), e.params.to_string()]);
            r
        })
        .collect();
    let widths: Vec<usize> = (0..header.len()).map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0)).collect();
    let line = |cells: &[String]| cells.iter().zip(&widths).map(|(c, w)| format!("{c:>w$}")).collect::<Vec<_>>().join("  ") + "\n";
    let mut out = line(&header);
    for r in &rows {
        out += &line(r);
    }
    out
}
