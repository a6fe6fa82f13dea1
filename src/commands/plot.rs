//! `elmlab plot tradeoff|frontier|curves`.

use crate::cli::PlotCommand;
use crate::plot::chart::{tick_text, Chart, Mark, Series, Style};
use crate::plot::results::{mean_sd, Results};
use crate::plot::write_figure;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn run(command: PlotCommand) -> Result<i32> {
    let written = match command {
        PlotCommand::Tradeoff { results, x, metric, out } => tradeoff(&results, &x, &metric, out)?,
        PlotCommand::Frontier { results, metric, out } => frontier(&results, &metric, out)?,
        PlotCommand::Curves { runs, metric, out } => curves(&runs, &metric, &out)?,
    };
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(0)
}

fn beside(results: &Path, name: &str) -> PathBuf {
    results.parent().unwrap_or(Path::new(".")).join(name)
}

/// A readable name for a column (`config.model.neuron.memory` → `memory (d_m)`).
pub fn label(column: &str) -> String {
    match column {
        "config.model.neuron.memory" | "axis.model.neuron.memory" => "memory dimension d_m".into(),
        "units" => "neurons N".into(),
        "params" => "parameters P".into(),
        "test" => "test metric".into(),
        other => other.strip_prefix("config.").unwrap_or(other).to_string(),
    }
}

fn budget_name(b: &str) -> String {
    b.parse::<f64>().map(|v| format!("P = {}", tick_text(v))).unwrap_or_else(|_| "runs".into())
}

/// Per budget: (x, mean, sd, mean N) at each x, sorted by x.
fn group_by_x(r: &Results, x: &str, metric: &str) -> BTreeMap<String, Vec<(f64, f64, f64, f64)>> {
    let mut raw: BTreeMap<String, BTreeMap<String, (f64, Vec<f64>, Vec<f64>)>> = BTreeMap::new();
    for row in &r.rows {
        let xv = Results::num(row, x);
        let m = Results::num(row, metric);
        if !xv.is_finite() || !m.is_finite() {
            continue;
        }
        let e = raw.entry(Results::budget_key(row)).or_default().entry(format!("{xv:020.6}")).or_insert((xv, Vec::new(), Vec::new()));
        e.1.push(m);
        e.2.push(Results::num(row, "units"));
    }
    raw.into_iter()
        .map(|(b, xs)| {
            let mut pts: Vec<(f64, f64, f64, f64)> = xs.into_values().map(|(xv, ms, ns)| {
                let (mean, sd) = mean_sd(&ms);
                (xv, mean, sd, mean_sd(&ns).0)
            }).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (b, pts)
        })
        .collect()
}

fn tradeoff(results: &Path, x: &str, metric: &str, out: Option<PathBuf>) -> Result<Vec<PathBuf>> {
    let r = Results::read(results)?;
    r.require(x)?;
    r.require(metric)?;
    let higher = r.higher_is_better(metric);
    let stem = out.unwrap_or_else(|| beside(results, "tradeoff"));
    let groups = group_by_x(&r, x, metric);
    let mut written = Vec::new();
    // Against the swept axis, then against N (log axis).
    for (x_is_units, suffix) in [(false, ""), (true, "-units")] {
        let mut chart = Chart {
            title: format!("{} at fixed budget (mean ± sd over seeds)", label(metric)),
            x_label: if x_is_units { label("units") } else { label(x) },
            y_label: r.rows[0].get("metric").map(|m| format!("{} ({m})", label(metric))).unwrap_or_else(|| label(metric)),
            x_log: x_is_units,
            ..Default::default()
        };
        for (budget, pts) in &groups {
            let xy = |p: &(f64, f64, f64, f64)| if x_is_units { p.3 } else { p.0 };
            chart.series.push(Series { name: budget_name(budget), points: pts.iter().map(|p| (xy(p), p.1, Some(p.2))).collect(), style: Style::LineAndPoints });
            let best = pts.iter().max_by(|a, b| if higher { a.1.total_cmp(&b.1) } else { b.1.total_cmp(&a.1) });
            if let Some(b) = best {
                chart.marks.push(Mark { x: xy(b), y: b.1, label: format!("best {}: {} = {}, N = {:.0}", tick_text(b.1), short(x), tick_text(b.0), b.3) });
            }
        }
        let (svg, png) = write_figure(&chart, &PathBuf::from(format!("{}{suffix}", stem.with_extension("").display())))?;
        written.extend([svg, png]);
    }
    Ok(written)
}

fn short(column: &str) -> String {
    if column.ends_with("neuron.memory") { "d_m".into() } else { column.rsplit('.').next().unwrap_or(column).to_string() }
}

fn frontier(results: &Path, metric: &str, out: Option<PathBuf>) -> Result<Vec<PathBuf>> {
    let r = Results::read(results)?;
    r.require(metric)?;
    let higher = r.higher_is_better(metric);
    let mut chart = Chart {
        title: format!("{} against budget: every run, best allocation per budget", label(metric)),
        x_label: label("params"),
        y_label: label(metric),
        x_log: true,
        y_log: !higher,
        ..Default::default()
    };
    chart.series.push(Series { name: "runs".into(), points: r.rows.iter().map(|row| (Results::num(row, "params"), Results::num(row, metric), None)).collect(), style: Style::Background });
    // Per budget, the allocation (N, k_e, k_c) with the best mean over seeds.
    let mut by_alloc: BTreeMap<(String, String, String, String), (f64, Vec<f64>)> = BTreeMap::new();
    for row in &r.rows {
        let key = ["budget", "units", "k_e", "k_c"].map(|c| row.get(c).cloned().unwrap_or_default());
        let e = by_alloc.entry(key.into()).or_insert((Results::num(row, "params"), Vec::new()));
        e.1.push(Results::num(row, metric));
    }
    let mut best: BTreeMap<String, (f64, f64, f64, String)> = BTreeMap::new();
    for ((budget, units, k_e, _), (params, ms)) in by_alloc {
        let (mean, sd) = mean_sd(&ms);
        let better = |old: &(f64, f64, f64, String)| if higher { mean > old.1 } else { mean < old.1 };
        if best.get(&budget).is_none_or(better) {
            best.insert(budget, (params, mean, sd, format!("N = {units}, k_e = {k_e}")));
        }
    }
    let mut pts: Vec<(f64, f64, f64, String)> = best.into_values().collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    if pts.is_empty() {
        bail!("no runs with both `params` and `{metric}`");
    }
    chart.series.push(Series { name: "best per budget".into(), points: pts.iter().map(|p| (p.0, p.1, Some(p.2))).collect(), style: Style::LineAndPoints });
    chart.marks = pts.iter().map(|p| Mark { x: p.0, y: p.1, label: p.3.clone() }).collect();
    let (svg, png) = write_figure(&chart, &out.unwrap_or_else(|| beside(results, "frontier")))?;
    Ok(vec![svg, png])
}

fn curves(runs: &[PathBuf], metric: &str, out: &Path) -> Result<Vec<PathBuf>> {
    let (split, key) = metric.split_once('.').with_context(|| format!("`--metric {metric}`: give SPLIT.KEY, e.g. train.loss or valid.accuracy"))?;
    let mut chart = Chart { title: format!("learning curves: {metric}"), x_label: "step".into(), y_label: metric.into(), ..Default::default() };
    for run in runs {
        let path = run.join("metrics.jsonl");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {} (is {} a run directory?)", path.display(), run.display()))?;
        let mut pts = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("reading {}", path.display()))?;
            if v["split"] == split {
                if let (Some(step), Some(y)) = (v["step"].as_f64(), v[key].as_f64()) {
                    pts.push((step, y, None));
                }
            }
        }
        if pts.is_empty() {
            bail!("{} has no `{key}` for split `{split}`", path.display());
        }
        let name = run.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        chart.series.push(Series { name, points: pts, style: Style::Line });
    }
    let (svg, png) = write_figure(&chart, out)?;
    Ok(vec![svg, png])
}
