//! `elmlab fit`: a registered tradeoff model fitted to a sweep's results.csv — fitted
//! values with standard errors, fit quality, and the predicted best allocation for
//! each budget, optionally drawn over the measured points.

use crate::plot::chart::{tick_text, Chart, Mark, Series, Style};
use crate::plot::results::{mean_sd, Results};
use crate::plot::write_figure;
use anyhow::{anyhow, bail, Context, Result};
use elmlab_analysis::fit::fit;
use elmlab_analysis::tradeoff::{best_allocation, entries, find, Observation};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

pub struct FitArgs<'a> {
    pub results: &'a Path,
    pub model: &'a str,
    pub metric: &'a str,
    pub budgets: &'a [f64],
    pub fix: &'a [String],
    pub plot: Option<&'a Path>,
    pub json: bool,
}

pub fn list() -> Result<i32> {
    for e in entries() {
        let m = (e.build)();
        println!("{}  {}\n    {}", e.name, e.doc, m.formula());
        for p in m.parameters() {
            println!("    {:<8} {}", p.name, p.doc);
        }
    }
    Ok(0)
}

pub fn run(a: FitArgs) -> Result<i32> {
    let entry = find(a.model).map_err(|e| anyhow!(e))?;
    let model = (entry.build)();
    let specs = model.parameters();
    let r = Results::read(a.results)?;
    for c in ["units", "k_e", "k_c", a.metric] {
        r.require(c)?;
    }
    let data: Vec<Observation> = r
        .rows
        .iter()
        .map(|row| Observation { n: Results::num(row, "units"), k_e: Results::num(row, "k_e"), k_c: Results::num(row, "k_c"), metric: Results::num(row, a.metric) })
        .filter(|o| o.n.is_finite() && o.k_e.is_finite() && o.k_c.is_finite() && o.metric.is_finite())
        .collect();
    let mut fixed = Vec::new();
    for f in a.fix {
        let (name, value) = f.split_once('=').with_context(|| format!("--fix {f}: give NAME=VALUE"))?;
        let i = specs.iter().position(|p| p.name == name.trim()).with_context(|| format!("--fix {f}: `{name}` is not a parameter of `{}`; parameters: {}", a.model, specs.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")))?;
        let v: f64 = value.trim().parse().with_context(|| format!("--fix {f}: `{value}` is not a number"))?;
        if specs[i].positive && v <= 0.0 {
            bail!("--fix {f}: `{name}` must be positive");
        }
        fixed.push((i, v));
    }
    // Data at a single k_c cannot tell the connection half-point apart from the SNR scale.
    let k_cs: Vec<f64> = data.iter().map(|o| o.k_c).collect();
    let k_c_constant = k_cs.iter().all(|&k| k == k_cs[0]);
    let mut notes = Vec::new();
    if k_c_constant {
        if let Some(i) = specs.iter().position(|p| p.name == "c0") {
            if !fixed.iter().any(|(j, _)| *j == i) {
                fixed.push((i, k_cs[0]));
                notes.push(format!("k_c is {} in every run, so c0 cannot be told apart from s: c0 held at {} (choose with --fix c0=VALUE)", k_cs[0], k_cs[0]));
            }
        }
    }
    let f = fit(model.as_ref(), &data, &fixed).map_err(|e| anyhow!("fitting `{}` to {}: {e}", a.model, a.results.display()))?;
    // Budgets: the ones measured (grouped by the `budget` column), or the ones asked for.
    let k_c = mean_sd(&k_cs).0;
    let budgets: Vec<f64> = if a.budgets.is_empty() {
        let mut b: Vec<f64> = r.rows.iter().map(|row| Results::num(row, "budget")).filter(|b| b.is_finite()).collect();
        b.sort_by(f64::total_cmp);
        b.dedup();
        if b.is_empty() {
            b.push(mean_sd(&r.rows.iter().map(|row| Results::num(row, "params")).collect::<Vec<_>>()).0);
        }
        b
    } else {
        a.budgets.to_vec()
    };
    let optima: Vec<(f64, Option<(f64, f64, f64)>)> = budgets
        .iter()
        .map(|&p| (p, best_allocation(model.as_ref(), &f.theta, p, k_c).map(|(n, k_e)| (n, k_e, model.predict(&f.theta, n, k_e, k_c)))))
        .collect();
    if a.json {
        let params: serde_json::Map<String, serde_json::Value> = specs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.to_string(), json!({ "value": f.theta[i], "std_err": f.std_err[i], "fixed": fixed.iter().any(|(j, _)| *j == i) })))
            .collect();
        let best: Vec<_> = optima.iter().map(|(p, o)| json!({ "budget": p, "units": o.map(|x| x.0), "k_e": o.map(|x| x.1), "k_c": k_c, "predicted": o.map(|x| x.2) })).collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "model": a.model, "metric": a.metric, "parameters": params, "rmse": f.rmse, "r_squared": f.r_squared, "points": f.points, "best_allocation": best, "notes": notes }))?);
    } else {
        println!("model {}: {}", a.model, model.formula());
        println!("fitted to {} runs of {} ({}); {} iterations", f.points, a.results.display(), a.metric, f.iterations);
        for n in &notes {
            println!("note: {n}");
        }
        println!("{:<8} {:>14} {:>14}  meaning", "param", "value", "± std. error");
        for (i, p) in specs.iter().enumerate() {
            let se = if fixed.iter().any(|(j, _)| *j == i) { "fixed".to_string() } else if f.std_err[i].is_finite() { format!("{:.4e}", f.std_err[i]) } else { "undetermined".into() };
            println!("{:<8} {:>14.6} {:>14}  {}", p.name, f.theta[i], se, p.doc);
        }
        println!("fit quality: RMSE {:.5}, R² {:.4}", f.rmse, f.r_squared);
        println!("predicted best allocation (N·(k_e + k_c) = P, k_c = {k_c:.1}):");
        for (p, o) in &optima {
            match o {
                Some((n, k_e, m)) => println!("  P = {:>10}: N ≈ {n:.1}, k_e ≈ {k_e:.1}, predicted {} {m:.4}", tick_text(*p), a.metric),
                None => println!("  P = {:>10}: too small for k_c = {k_c:.1}", tick_text(*p)),
            }
        }
    }
    if let Some(stem) = a.plot {
        let mut chart = Chart {
            title: format!("{} fitted to {}", a.model, a.metric),
            x_label: "neuron complexity k_e".into(),
            y_label: a.metric.into(),
            x_log: true,
            note: Some(specs.iter().enumerate().map(|(i, p)| format!("{} = {}", p.name, tick_text(f.theta[i]))).chain([format!("R² = {:.3}", f.r_squared)]).collect::<Vec<_>>().join("\n")),
            ..Default::default()
        };
        // Measured means per (budget, k_e), the model's curve along each budget, its optimum.
        let mut groups: BTreeMap<String, BTreeMap<String, (f64, Vec<f64>)>> = BTreeMap::new();
        for row in &r.rows {
            let k_e = Results::num(row, "k_e");
            groups.entry(Results::budget_key(row)).or_default().entry(format!("{k_e:016.3}")).or_insert((k_e, Vec::new())).1.push(Results::num(row, a.metric));
        }
        for (budget, pts) in &groups {
            let p: f64 = budget.parse().unwrap_or_else(|_| mean_sd(&r.rows.iter().map(|row| Results::num(row, "params")).collect::<Vec<_>>()).0);
            chart.series.push(Series { name: format!("measured, P = {}", tick_text(p)), points: pts.values().map(|(k, m)| { let (mean, sd) = mean_sd(m); (*k, mean, Some(sd)) }).collect(), style: Style::Points });
            let (lo, hi) = pts.values().fold((f64::INFINITY, 0.0f64), |(a, b), (k, _)| (a.min(*k), b.max(*k)));
            let curve: Vec<(f64, f64, Option<f64>)> = (0..=120).map(|i| lo * 0.7 * ((hi * 1.4) / (lo * 0.7)).powf(i as f64 / 120.0)).map(|k_e| (k_e, model.predict(&f.theta, p / (k_e + k_c), k_e, k_c), None)).collect();
            chart.series.push(Series { name: format!("model, P = {}", tick_text(p)), points: curve, style: Style::Line });
            if let Some((n, k_e)) = best_allocation(model.as_ref(), &f.theta, p, k_c) {
                chart.marks.push(Mark { x: k_e, y: model.predict(&f.theta, n, k_e, k_c), label: format!("predicted best: N ≈ {n:.0}") });
            }
        }
        let (svg, png) = write_figure(&chart, stem)?;
        println!("wrote {} and {}", svg.display(), png.display());
    }
    Ok(0)
}
