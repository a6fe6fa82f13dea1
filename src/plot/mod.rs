//! Figures: a chart is written once as SVG and rendered to PNG beside it.

pub mod chart;
pub mod png;
pub mod results;

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Writes `STEM.svg` and `STEM.png`; returns both paths.
pub fn write_figure(chart: &chart::Chart, stem: &Path) -> Result<(PathBuf, PathBuf)> {
    let stem = match stem.extension().and_then(|e| e.to_str()) {
        Some("svg" | "png") => stem.with_extension(""),
        _ => stem.to_path_buf(),
    };
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let svg = chart.to_svg();
    let (svg_path, png_path) = (stem.with_extension("svg"), stem.with_extension("png"));
    elmlab_train::rundir::write_atomic(&svg_path, svg.as_bytes())?;
    elmlab_train::rundir::write_atomic(&png_path, &png::render_png(&svg, 1.5)?)?;
    Ok((svg_path, png_path))
}
