//! The `elmlab` command. It names every built-in plugin crate so the linker keeps
//! their registrations; everything else lives in the kernel.

// Each `use … as _` keeps a plugin crate's `inventory` registrations in the binary.
use elmlab_connectivity as _;
use elmlab_neurons as _;
use elmlab_tasks as _;
use elmlab_tradeoff as _;

mod cli;
mod commands;
mod logging;
mod plot;
mod plugins;
mod progress;
mod sweep;

fn main() {
    let args = <cli::Cli as clap::Parser>::parse();
    let code = match commands::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            2
        }
    };
    std::process::exit(code);
}
