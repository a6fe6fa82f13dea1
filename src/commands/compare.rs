//! `elmlab compare`: one task, one or more budgets, several model variants, several
//! seeds — every run trained (resumably, N at a time), then one table and one chart.

use anyhow::{bail, Context, Result};
use elmlab_train::config::{Node, ResolvedConfig};
use elmlab_core::registry::Registry;
use elmlab_train::rundir::{RunDir, RunState};
use crate::plot::results::mean_sd;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// One planned run of the comparison.
struct Planned {
    variant: String,
    budget: Option<usize>,
    seed: u64,
    dir: PathBuf,
    config_path: PathBuf,
}

fn text_of(node: Option<&Node>) -> Option<String> {
    match node {
        Some(Node::Text(s)) => Some(s.clone()),
        _ => None,
    }
}

fn ints(node: Option<&Node>, what: &str) -> Result<Vec<i64>> {
    match node {
        None => Ok(Vec::new()),
        Some(Node::List(items)) => items.iter().map(|n| if let Node::Int(i) = n { Ok(*i) } else { bail!("`{what}` must be a list of integers") }).collect(),
        Some(Node::Int(i)) => Ok(vec![*i]),
        Some(_) => bail!("`{what}` must be a list of integers"),
    }
}

const KEYS: &[&str] = &["name", "out_dir", "base", "variants", "budgets", "seeds"];

/// Reads the comparison file and resolves every run's config before anything runs.
fn plan(path: &Path, registry: &Registry) -> Result<(String, PathBuf, Vec<Planned>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let tree = Node::parse_ron(&text, &path.display().to_string())?;
    let Node::Map(top) = &tree else { bail!("{}: a comparison is a section with keys {}", path.display(), KEYS.join(", ")) };
    if let Some(bad) = top.keys().find(|k| !KEYS.contains(&k.as_str())) {
        bail!("unknown key `{bad}` in {}; valid keys: {}", path.display(), KEYS.join(", "));
    }
    let name = text_of(tree.get("name")).unwrap_or_else(|| "compare".into());
    let out = PathBuf::from(text_of(tree.get("out_dir")).unwrap_or_else(|| "runs/compare".into())).join(&name);
    let mut base = tree.get("base").cloned().context("a comparison needs `base`: the experiment config shared by all runs")?;
    // Run configs are written elsewhere; their plugin paths must not depend on where.
    elmlab_train::config::anchor_plugins(&mut base, path)?;
    let Some(Node::List(variants)) = tree.get("variants") else { bail!("a comparison needs `variants: [(name: ..., neuron: (kind: ...), ...)]`") };
    let budgets: Vec<Option<usize>> = match ints(tree.get("budgets"), "budgets")? {
        b if b.is_empty() => vec![None],
        b => b.into_iter().map(|x| Some(x.max(0) as usize)).collect(),
    };
    let seeds = match ints(tree.get("seeds"), "seeds")? {
        s if s.is_empty() => vec![0],
        s => s.into_iter().map(|x| x.max(0) as u64).collect(),
    };
    let mut runs = Vec::new();
    for variant in variants {
        let vname = text_of(variant.get("name")).context("every variant needs a `name`")?;
        if let Node::Map(m) = variant {
            if let Some(bad) = m.keys().find(|k| !["name", "neuron", "connectivity", "units"].contains(&k.as_str())) {
                bail!("variant `{vname}`: unknown key `{bad}`; valid keys: name, neuron, connectivity, units");
            }
        }
        for &budget in &budgets {
            for &seed in &seeds {
                let mut t = base.clone();
                let run = match budget {
                    Some(p) => format!("{vname}-P{p}-s{seed}"),
                    None => format!("{vname}-s{seed}"),
                };
                for key in ["neuron", "connectivity"] {
                    if let Some(n) = variant.get(key) {
                        t.set(&["model", key], n.clone());
                    }
                }
                match (budget, variant.get("units")) {
                    (Some(p), _) => {
                        t.set(&["model", "budget"], Node::Int(p as i64));
                        t.set(&["model", "units"], Node::Null);
                    }
                    (None, Some(u)) => {
                        t.set(&["model", "units"], u.clone());
                        t.set(&["model", "budget"], Node::Null);
                    }
                    (None, None) => {}
                }
                t.set(&["seed"], Node::Int(seed as i64));
                t.set(&["name"], Node::Text(format!("{name}-{run}")));
                let resolved = ResolvedConfig::from_tree(&t, registry).with_context(|| format!("run `{run}`"))?;
                // Refuse impossible budgets now, not halfway through the comparison.
                elmlab_train::trainer::Session::prepare(resolved.clone(), registry).with_context(|| format!("run `{run}`"))?;
                let config_path = out.join("configs").join(format!("{run}.ron"));
                std::fs::create_dir_all(config_path.parent().unwrap_or(&out))?;
                elmlab_train::rundir::write_atomic(&config_path, resolved.to_ron().as_bytes())?;
                runs.push(Planned { variant: vname.clone(), budget, seed, dir: out.join("runs").join(&run), config_path });
            }
        }
    }
    Ok((name, out, runs))
}

/// Trains one run in a child process: skipped when finished, resumed when started.
fn execute(run: &Planned) -> Result<()> {
    let state = RunDir { path: run.dir.clone() }.state();
    if state == RunState::Finished {
        tracing::info!(run = %run.dir.display(), "finished earlier; skipped");
        return Ok(());
    }
    let exe = std::env::current_exe().context("locating the elmlab binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(crate::plugins::inherited_args());
    if state == RunState::Unfinished {
        tracing::info!(run = %run.dir.display(), "resuming");
        cmd.args(["train", "--resume"]).arg(&run.dir);
    } else {
        if run.dir.exists() {
            // started but no checkpoint yet: nothing to keep
            std::fs::remove_dir_all(&run.dir)?;
        }
        tracing::info!(run = %run.dir.display(), "training");
        cmd.arg("train").arg(&run.config_path).arg("--out").arg(&run.dir);
    }
    let out = cmd.stdin(std::process::Stdio::null()).output().context("starting a training process")?;
    if !out.status.success() {
        bail!("{} failed: {}", run.dir.display(), String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
    }
    Ok(())
}

pub fn run(registry: &Registry, file: &Path, jobs: usize) -> Result<i32> {
    let (name, out, runs) = plan(file, registry)?;
    tracing::info!(comparison = %name, runs = runs.len(), jobs, "planned");
    let queue = Arc::new(Mutex::new((0..runs.len()).collect::<Vec<_>>()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let runs = Arc::new(runs);
    let workers: Vec<_> = (0..jobs.max(1))
        .map(|_| {
            let (queue, failures, runs) = (queue.clone(), failures.clone(), runs.clone());
            std::thread::spawn(move || loop {
                let Some(i) = queue.lock().ok().and_then(|mut q| q.pop()) else { break };
                if let Err(e) = execute(&runs[i]) {
                    tracing::error!("{e:#}");
                    if let Ok(mut f) = failures.lock() {
                        f.push(format!("{e:#}"));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let table = collect(&runs)?;
    write_reports(&out, &name, &table)?;
    println!("{}", markdown(&name, &table));
    println!("wrote {}/results.md, results.csv, chart.svg", out.display());
    let failed = failures.lock().map(|f| f.len()).unwrap_or(0);
    if failed > 0 {
        eprintln!("{failed} run(s) failed; run the same command again to retry them");
        return Ok(1);
    }
    Ok(0)
}

/// Per-run results read from the summaries.
struct Row {
    variant: String,
    budget: Option<usize>,
    seed: u64,
    units: u64,
    params: u64,
    metric: String,
    best_valid: f64,
    test: f64,
    final_valid: f64,
    steps_per_s: f64,
    wall_s: f64,
}

fn collect(runs: &[Planned]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for r in runs {
        let path = r.dir.join("summary.json");
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let s: Value = serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        let metric = s["best"]["metric"].as_str().unwrap_or("").to_string();
        let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        rows.push(Row {
            variant: r.variant.clone(),
            budget: r.budget,
            seed: r.seed,
            units: s["units"].as_u64().unwrap_or(0),
            params: s["params"]["total"].as_u64().unwrap_or(0),
            best_valid: num(&s["best"]["value"]),
            test: num(&s["best"]["test"][&metric]),
            final_valid: num(&s["final"]["valid"][&metric]),
            metric,
            steps_per_s: num(&s["steps_per_s"]),
            wall_s: num(&s["wall_time_s"]),
        });
    }
    Ok(rows)
}

/// Rows grouped by (variant, budget), in first-seen order.
fn groups(rows: &[Row]) -> Vec<(&str, Option<usize>, Vec<&Row>)> {
    let mut out: Vec<(&str, Option<usize>, Vec<&Row>)> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|(v, b, _)| *v == r.variant && *b == r.budget) {
            Some(g) => g.2.push(r),
            None => out.push((&r.variant, r.budget, vec![r])),
        }
    }
    out
}

fn markdown(name: &str, rows: &[Row]) -> String {
    let metric = rows.first().map(|r| r.metric.as_str()).unwrap_or("metric");
    let mut s = format!("## {name}\n\n| model | budget | units | parameters | final valid {metric} | best valid {metric} | test {metric} | seeds | steps/s | wall time (s) |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (variant, budget, g) in groups(rows) {
        let f = |sel: fn(&Row) -> f64| mean_sd(&g.iter().map(|r| sel(r)).collect::<Vec<_>>());
        let (fv, fs) = f(|r| r.final_valid);
        let (bv, bs) = f(|r| r.best_valid);
        let (tv, ts) = f(|r| r.test);
        let (sp, _) = f(|r| r.steps_per_s);
        let (wt, _) = f(|r| r.wall_s);
        s += &format!(
            "| {variant} | {} | {} | {} | {fv:.4} ± {fs:.4} | {bv:.4} ± {bs:.4} | {tv:.4} ± {ts:.4} | {} | {sp:.1} | {wt:.0} |\n",
            budget.map_or("-".into(), |b| b.to_string()),
            g[0].units,
            g[0].params,
            g.len()
        );
    }
    s
}

fn write_reports(out: &Path, name: &str, rows: &[Row]) -> Result<()> {
    let mut csv = String::from("model,budget,seed,units,parameters,metric,final_valid,best_valid,test,steps_per_s,wall_time_s\n");
    for r in rows {
        csv += &format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            r.variant,
            r.budget.map_or(String::new(), |b| b.to_string()),
            r.seed,
            r.units,
            r.params,
            r.metric,
            r.final_valid,
            r.best_valid,
            r.test,
            r.steps_per_s,
            r.wall_s
        );
    }
    elmlab_train::rundir::write_atomic(&out.join("results.csv"), csv.as_bytes())?;
    elmlab_train::rundir::write_atomic(&out.join("results.md"), markdown(name, rows).as_bytes())?;
    elmlab_train::rundir::write_atomic(&out.join("chart.svg"), chart(name, rows).as_bytes())?;
    Ok(())
}

/// A bar chart of the test metric (mean, with ± sd whiskers) per model and budget,
/// plain SVG with generic font families so it renders anywhere.
fn chart(name: &str, rows: &[Row]) -> String {
    let g = groups(rows);
    let metric = rows.first().map(|r| r.metric.as_str()).unwrap_or("metric");
    let stats: Vec<(String, f64, f64)> = g
        .iter()
        .map(|(v, b, rs)| {
            let (m, s) = mean_sd(&rs.iter().map(|r| r.test).collect::<Vec<_>>());
            (b.map_or(v.to_string(), |b| format!("{v} @ {b}")), m, s)
        })
        .collect();
    let top = stats.iter().map(|(_, m, s)| m + s).fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let (w, h, left, bottom, top_pad) = (120.0 * stats.len().max(1) as f64 + 100.0, 360.0, 70.0, 60.0, 40.0);
    let plot_h = h - bottom - top_pad;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{name}: test {metric} (mean ± sd over seeds)</text>\n",
        w / 2.0
    );
    svg += &format!("<line x1=\"{left}\" y1=\"{top_pad}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n", h - bottom);
    svg += &format!("<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", h - bottom, w - 20.0, h - bottom);
    for i in 0..=4 {
        let v = top * i as f64 / 4.0;
        let y = h - bottom - plot_h * i as f64 / 4.0;
        svg += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.3}</text><line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>\n", left - 6.0, y + 4.0, w - 20.0);
    }
    for (i, (label, m, s)) in stats.iter().enumerate() {
        let x = left + 30.0 + 120.0 * i as f64;
        let y = h - bottom - plot_h * m / top;
        svg += &format!("<rect x=\"{x}\" y=\"{y}\" width=\"70\" height=\"{}\" fill=\"#4a78b5\"/>\n", h - bottom - y);
        let (y1, y2) = (h - bottom - plot_h * (m + s) / top, h - bottom - plot_h * (m - s).max(0.0) / top);
        svg += &format!("<line x1=\"{0}\" y1=\"{y1}\" x2=\"{0}\" y2=\"{y2}\" stroke=\"black\"/>\n", x + 35.0);
        svg += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n", x + 35.0, h - bottom + 18.0);
        svg += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{m:.3}</text>\n", x + 35.0, y - 6.0);
    }
    svg + "</svg>\n"
}
