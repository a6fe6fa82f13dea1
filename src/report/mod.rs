//! `elmlab report DIR`: one self-contained HTML page for a sweep, a `compare` or a run.

mod figures;
mod html;
mod runs;

use anyhow::{Context, Result};
use elmlab_core::registry::Registry;
use std::path::{Path, PathBuf};

pub fn run(registry: &Registry, dir: &Path, out: Option<&Path>) -> Result<i32> {
    let study = runs::find(dir)?;
    let scratch = tempfile::tempdir().context("making a scratch folder")?;
    let mut figures = Vec::new();
    match &study.kind {
        runs::Kind::Sweep { manifest } => {
            let manifest = crate::sweep::manifest::Manifest::read(manifest)?;
            let collected = crate::sweep::collect::collect(&manifest, registry)?;
            let first_axis = manifest.entries.first().and_then(|e| e.axes.keys().next().cloned());
            if collected.finished > 0 {
                figures = figures::sweep_figures(&collected.csv, first_axis.as_deref(), scratch.path());
            }
        }
        runs::Kind::Compare => {
            if let Ok(svg) = std::fs::read_to_string(dir.join("chart.svg")) {
                figures.push(figures::Figure { title: "Comparison".into(), svg: Ok(svg), text: None });
            }
        }
        runs::Kind::Single => {}
    }
    let curves: Vec<(String, Option<String>)> = study.runs.iter().map(|r| (r.name.clone(), figures::learning_curve(r))).collect();
    let page = html::page(&study, &figures, &curves);
    let out: PathBuf = out.map(Path::to_path_buf).unwrap_or_else(|| dir.join("report.html"));
    elmlab_train::rundir::write_atomic(&out, page.as_bytes())?;
    println!("wrote {} ({} runs)", out.display(), study.runs.len());
    Ok(0)
}
