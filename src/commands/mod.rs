//! One module per subcommand.

mod bench;
mod compare;
mod eval;
mod fit;
mod inspect;
mod list;
mod plot;
mod record;
mod run_index;
mod sweep;
mod train;

use crate::cli::{Cli, Command, DataCommand, SweepCommand};
use anyhow::Result;

/// Runs the command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    crate::logging::init(cli.verbose);
    if let Some(limit) = cli.max_memory {
        elmlab_train::memory::set_limit(limit);
    }
    let mut registry = elmlab_core::registry::Registry::builtin();
    crate::plugins::load_given(&mut registry, &cli.plugins)?;
    // Plugins a config names are loaded before the config is checked.
    match &cli.command {
        Command::Inspect { config, overrides, .. } | Command::Train { config: Some(config), overrides, resume: None, .. } => crate::plugins::load_for_config(&mut registry, config, overrides)?,
        Command::Train { resume: Some(dir), .. } => crate::plugins::load_for_run(&mut registry, dir)?,
        Command::Eval { run_dir: dir, .. } if dir.is_dir() => crate::plugins::load_for_run(&mut registry, dir)?,
        Command::Record { source, .. } if source.is_dir() => crate::plugins::load_for_run(&mut registry, source)?,
        Command::Compare { file, .. } => crate::plugins::load_for_compare(&mut registry, file)?,
        Command::Sweep { command: SweepCommand::Plan { file, .. } } => crate::plugins::load_for_sweep(&mut registry, file)?,
        Command::Sweep { command: SweepCommand::Run { manifest, .. } | SweepCommand::Collect { dir: manifest } } | Command::RunIndex { manifest, .. } => {
            crate::plugins::load_for_manifest(&mut registry, manifest)?
        }
        _ => {}
    }
    match cli.command {
        Command::List { json } => list::run(&registry, json),
        Command::Inspect { config, mut overrides, device, json } => {
            overrides.extend(device_override(device));
            inspect::run(&registry, &config, &overrides, json)
        }
        Command::Train { config, overrides, out, resume, from_step, halt_after, init_from, device } => {
            train::run(&registry, train::TrainRequest { config, overrides, out, resume, from_step, halt_after, init_from, device: device_override(device), ..Default::default() })
        }
        Command::Bench { config, overrides, steps, compare, threads, json } => bench::run(&registry, &config, &overrides, steps, compare, threads, json),
        Command::Compare { file, jobs } => compare::run(&registry, &file, jobs),
        Command::Sweep { command } => sweep::run(&registry, command),
        Command::RunIndex { manifest, index } => run_index::run(&registry, &manifest, index),
        Command::Plot { command } => plot::run(command),
        Command::Fit { list: true, .. } => fit::list(),
        Command::Fit { results, model, metric, budgets, plot, fix, json, .. } => fit::run(fit::FitArgs {
            results: &results.unwrap_or_default(),
            model: &model,
            metric: &metric,
            budgets: &budgets,
            fix: &fix,
            plot: plot.as_deref(),
            json,
        }),
        Command::Record { source, mut overrides, input, out, weights, device } => {
            overrides.extend(device_override(device));
            record::run(&registry, &source, &input, &out, &weights, &overrides)
        }
        Command::Report { dir, out } => crate::report::run(&registry, &dir, out.as_deref()),
        Command::Data { command: DataCommand::Fetch { dataset, dir, mirror } } => crate::fetch::run(&dataset, dir.as_deref(), mirror.as_deref()),
        Command::Data { command: DataCommand::SynthShd { out, train_samples, test_samples, seed } } => {
            std::fs::create_dir_all(&out)?;
            let spec = elmlab_tasks::shd::synth::SynthSpec { train_samples, test_samples, seed, ..Default::default() };
            elmlab_tasks::shd::synth::write_synthetic(&out, &spec)?;
            println!("wrote {} and {}", out.join("shd_train.h5").display(), out.join("shd_test.h5").display());
            Ok(0)
        }
        Command::Eval { run_dir, split, weights, max_bytes, device, json } => eval::run(&registry, &run_dir, &split, &weights, max_bytes, &device_override(device), json),
    }
}

/// `--device D` as the config override `device=D` (checked like any override).
fn device_override(device: Option<String>) -> Vec<String> {
    device.map(|d| format!("device={d}")).into_iter().collect()
}
