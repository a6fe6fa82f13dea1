//! The figures of a report as inline SVG: learning curves drawn here, and for a sweep the
//! frontier, the tradeoff along the first swept axis and the fitted model, made by elmlab's
//! own `plot` and `fit` commands (run as child processes, so a figure that cannot be made
//! leaves its reason in the page instead of stopping the report).

use super::runs::RunInfo;
use crate::plot::chart::{Chart, Series, Style};
use std::path::Path;

pub struct Figure {
    pub title: String,
    /// The SVG, or why there is none.
    pub svg: Result<String, String>,
    /// Text that comes with it (the fit's table).
    pub text: Option<String>,
}

/// Train and validation loss against step.
pub fn learning_curve(run: &RunInfo) -> Option<String> {
    let series = |split: &str| -> Vec<(f64, f64, Option<f64>)> {
        run.metrics.iter().filter(|m| m["split"] == split).filter_map(|m| Some((m["step"].as_f64()?, m["loss"].as_f64()?, None))).collect()
    };
    let (train, valid) = (series("train"), series("valid"));
    if train.is_empty() && valid.is_empty() {
        return None;
    }
    let chart = Chart {
        title: format!("{}: loss", run.name),
        x_label: "step".into(),
        y_label: "loss".into(),
        series: vec![Series { name: "train".into(), points: train, style: Style::Line }, Series { name: "valid".into(), points: valid, style: Style::LineAndPoints }],
        ..Default::default()
    };
    Some(chart.to_svg())
}

/// Runs `elmlab ARGS` writing `stem.svg` in `scratch`: the SVG, and what the command
/// printed besides the names of the files it wrote.
fn by_command(title: &str, args: &[&str], scratch: &Path, stem: &str) -> Figure {
    let svg_path = scratch.join(format!("{stem}.svg"));
    let out = std::env::current_exe().map_err(|e| e.to_string()).and_then(|exe| std::process::Command::new(exe).args(args).output().map_err(|e| e.to_string()));
    let (svg, text) = match out {
        Ok(o) if o.status.success() => {
            let printed: String = String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.starts_with("wrote ")).map(|l| format!("{l}\n")).collect();
            (std::fs::read_to_string(&svg_path).map_err(|e| format!("{}: {e}", svg_path.display())), Some(printed).filter(|t| !t.trim().is_empty()))
        }
        Ok(o) => (Err(String::from_utf8_lossy(&o.stderr).trim().to_string()), None),
        Err(e) => (Err(e), None),
    };
    Figure { title: title.into(), svg, text }
}

/// A sweep's figures from its results.csv.
pub fn sweep_figures(results: &Path, first_axis: Option<&str>, scratch: &Path) -> Vec<Figure> {
    let r = results.to_string_lossy().to_string();
    let at = |stem: &str| scratch.join(stem).to_string_lossy().to_string();
    let mut figures = vec![by_command("Frontier: the test metric against the budget", &["plot", "frontier", &r, "--out", &at("frontier")], scratch, "frontier")];
    if let Some(axis) = first_axis {
        let x = format!("axis.{axis}");
        figures.push(by_command(&format!("Tradeoff along {axis}"), &["plot", "tradeoff", &r, "--x", &x, "--out", &at("tradeoff")], scratch, "tradeoff"));
    }
    figures.push(by_command("The tradeoff model fitted to the runs", &["fit", &r, "--plot", &at("fit")], scratch, "fit"));
    figures
}
