//! One module per subcommand.

mod bench;
mod compare;
mod eval;
mod inspect;
mod list;
mod record;
mod train;

use crate::cli::{Cli, Command, DataCommand};
use anyhow::Result;

/// Runs the command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    crate::logging::init(cli.verbose);
    let registry = elmlab_kernel::registry::Registry::builtin();
    match cli.command {
        Command::List { json } => list::run(&registry, json),
        Command::Inspect { config, overrides, json } => inspect::run(&registry, &config, &overrides, json),
        Command::Train { config, overrides, out, resume, halt_after } => train::run(&registry, config, overrides, out, resume, halt_after),
        Command::Bench { config, overrides, steps, compare, threads, json } => bench::run(&registry, &config, &overrides, steps, compare, threads, json),
        Command::Compare { file, jobs } => compare::run(&registry, &file, jobs),
        Command::Record { source, input, out, weights } => record::run(&registry, &source, &input, &out, &weights),
        Command::Data { command: DataCommand::SynthShd { out, train_samples, test_samples, seed } } => {
            std::fs::create_dir_all(&out)?;
            let spec = elmlab_tasks::shd::synth::SynthSpec { train_samples, test_samples, seed, ..Default::default() };
            elmlab_tasks::shd::synth::write_synthetic(&out, &spec)?;
            println!("wrote {} and {}", out.join("shd_train.h5").display(), out.join("shd_test.h5").display());
            Ok(0)
        }
        Command::Eval { run_dir, split, weights, max_bytes, json } => eval::run(&registry, &run_dir, &split, &weights, max_bytes, json),
    }
}
