//! `elmlab record`: per-step logits and internal states of a trained model on a given
//! input batch, for analysis and for checks against other implementations.

use anyhow::{bail, Context, Result};
use elmlab_train::checkpoint::{load_tensors, load_weights, WEIGHTS};
use elmlab_train::config::ResolvedConfig;
use elmlab_core::registry::Registry;
use elmlab_train::rundir::RunDir;
use elmlab_core::task::{Batch, Carry, Inputs};
use elmlab_train::trainer::Session;
use npyz::WriterBuilder;
use std::path::{Path, PathBuf};

pub fn run(registry: &Registry, source: &Path, input: &Path, out: &Path, weights: &str, overrides: &[String]) -> Result<i32> {
    let (config, weights_path) = locate(registry, source, weights, overrides)?;
    // the file's fixed tensors (connectomes, timescales) define the model's
    let mut session = Session::prepare_fixed(config, registry, load_tensors(&weights_path)?.0).with_context(|| format!("building the model of {}", weights_path.display()))?;
    load_weights(&weights_path, &mut session.network.params)?;
    let (shape, values) = read_input(input)?;
    let [batch, steps, width] = shape[..] else {
        bail!("{}: expected an array of shape [B, T, D_in], got {shape:?}", input.display());
    };
    if width != session.task.input_width() {
        bail!("{}: inputs have width {width}, the model's task `{}` encodes {}", input.display(), session.config.config.task.kind, session.task.input_width());
    }
    if batch == 0 || steps == 0 {
        bail!("{}: the batch is empty ({shape:?})", input.display());
    }
    // [B, T, D] → the kernel's time-major [T, B, D]
    let mut time_major = vec![0.0f32; values.len()];
    for b in 0..batch {
        for t in 0..steps {
            let from = (b * steps + t) * width;
            let to = (t * batch + b) * width;
            time_major[to..to + width].copy_from_slice(&values[from..from + width]);
        }
    }
    let b = Batch { steps, batch, inputs: Inputs::Dense(time_major), targets: Vec::new(), carry: Carry::Fresh };
    let arrays = session.network.record(&b, elmlab_core::rng::stream(session.config.config.seed, "record", 0))?;
    write_npz(out, &arrays)?;
    let names: Vec<String> = arrays.iter().map(|(n, s, _)| format!("{n} {s:?}")).collect();
    println!("wrote {}: {}", out.display(), names.join(", "));
    Ok(0)
}

/// The config and weights file for a run directory (its `best` or `last` weights) or a
/// weights file (its config from its metadata); `overrides` apply to the config.
pub(crate) fn locate(registry: &Registry, source: &Path, weights: &str, overrides: &[String]) -> Result<(ResolvedConfig, PathBuf)> {
    if source.is_dir() {
        let run = RunDir::open(source)?;
        let config = ResolvedConfig::load(&run.config_path(), overrides, registry)?;
        let path = match weights {
            "best" => run.best_dir().join(WEIGHTS),
            "last" => {
                let chosen = elmlab_train::recovery::choose_checkpoint(&run, None)?;
                if !chosen.rejected.is_empty() {
                    eprintln!("warning: using the checkpoint of step {}; newer ones failed their checks: {}", chosen.step, chosen.rejected.join("; "));
                }
                chosen.dir.join(WEIGHTS)
            }
            other => bail!("--weights must be `best` or `last`, got `{other}`"),
        };
        if !path.is_file() {
            bail!("{} does not exist (no {weights} weights in this run yet)", path.display());
        }
        return Ok((config, path));
    }
    if !source.is_file() {
        bail!("{} does not exist; give a run directory or a weights file (.safetensors)", source.display());
    }
    let (_, meta) = load_tensors(source).with_context(|| format!("{} is not a run directory, so it must be a weights file (.safetensors)", source.display()))?;
    let text = meta.get("config").with_context(|| format!("{} carries no config in its metadata; record from its run directory instead", source.display()))?;
    let config = ResolvedConfig::from_text(text, &format!("{} (metadata)", source.display()), overrides, registry)?;
    Ok((config, source.to_path_buf()))
}

fn read_input(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    elmlab_train::npy::parse_npy(&bytes, path).map_err(anyhow::Error::msg)
}

fn write_npz(path: &Path, arrays: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
    let tmp = path.with_extension("npz.partial");
    {
        let mut npz = npyz::npz::NpzWriter::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        for (name, shape, values) in arrays {
            let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
            let mut w = npz.array::<f32>(name, Default::default())?.default_dtype().shape(&shape).begin_nd()?;
            w.extend(values.iter().copied())?;
            w.finish()?;
        }
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
