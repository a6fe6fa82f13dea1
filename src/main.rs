//! The `elmlab` command. It names every built-in plugin crate so the linker keeps
//! their registrations; everything else lives in the kernel.

// Each `use … as _` keeps a plugin crate's `inventory` registrations in the binary.
use elmlab_connectivity as _;
use elmlab_neurons as _;
use elmlab_tasks as _;
use elmlab_tradeoff as _;

mod cli;
mod fetch;
mod commands;
mod logging;
mod plot;
mod plugins;
mod progress;
mod report;
mod sweep;

fn main() {
    keep_freed_memory();
    quiet_on_closed_pipe();
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

/// Training allocates the same large buffers at every step (a layer's states, gradients,
/// dfdx's tensors). By default glibc returns each one over 128 KiB to the system when it
/// is freed, and the next step pays a page fault per 4 KiB to get it back (measured: a
/// tenth of an LSTM step). Up to 32 MiB (glibc's limit), freed blocks now stay in the
/// process for reuse.
fn keep_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator thresholds; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// `elmlab list | head` closes the pipe early: end quietly as other Unix tools do, rather
/// than panic on the failed write (Rust ignores SIGPIPE unless told otherwise).
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
