//! `sweep run`: the manifest's runs on this machine, K child processes at a time
//! (each `elmlab run-index`, so a local sweep and a Slurm array run the same code).
//! Idempotent: finished runs are skipped and unfinished ones resumed by `run-index`.
//! Ctrl-C or SIGTERM stops the children at their next step with a checkpoint.

use super::manifest::Manifest;
use elmlab_train::rundir::RunState;
use anyhow::{Context, Result};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Outcome {
    pub failed: Vec<usize>,
    pub stopped: bool,
}

fn spawn(manifest: &Path, index: usize, log: &Path) -> Result<Child> {
    let exe = std::env::current_exe().context("locating the elmlab binary")?;
    let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(crate::plugins::inherited_args());
    cmd.arg("run-index").arg(manifest).arg("--index").arg(index.to_string());
    cmd.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
    // Own process group: a terminal Ctrl-C reaches only this process, which forwards
    // exactly one stop request (a second one would make the child quit without a checkpoint).
    cmd.process_group(0);
    // SAFETY: prctl only, between fork and exec; if this process dies, the child is told to stop.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.spawn().context("starting `elmlab run-index`")
}

pub fn run(manifest: &Manifest, jobs: usize) -> Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The second signal quits at once (children get SIGTERM through the death signal).
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone()).context("installing signal handlers")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let logs = manifest.dir().join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let pending: Vec<usize> = manifest.entries.iter().filter(|e| manifest.run_state(e) != RunState::Finished).map(|e| e.index).collect();
    let skipped = manifest.entries.len() - pending.len();
    if skipped > 0 {
        println!("{skipped} of {} runs finished earlier; skipped", manifest.entries.len());
    }
    let queue = Arc::new(Mutex::new(pending.into_iter().rev().collect::<Vec<_>>()));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let path = manifest.path.clone();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let (queue, failed, stop, logs, path) = (queue.clone(), failed.clone(), stop.clone(), logs.clone(), path.clone());
            scope.spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Some(index) = queue.lock().ok().and_then(|mut q| q.pop()) else { break };
                let log = logs.join(format!("{index}.log"));
                println!("run {index}: started (log {})", log.display());
                let mut child = match spawn(&path, index, &log) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("run {index}: {e:#}");
                        failed.lock().map(|mut f| f.push(index)).ok();
                        continue;
                    }
                };
                let mut forwarded = false;
                let status = loop {
                    match child.try_wait() {
                        Ok(Some(status)) => break Some(status),
                        Ok(None) => {}
                        Err(_) => break None,
                    }
                    if stop.load(Ordering::SeqCst) && !forwarded {
                        // SAFETY: signalling our own child by pid.
                        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                        forwarded = true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                };
                match status {
                    Some(s) if s.success() => println!("run {index}: done"),
                    Some(s) if s.code() == Some(130) => println!("run {index}: stopped with a checkpoint"),
                    // the SIGTERM we forwarded reached it before it could catch signals (while
                    // it was building): stopped, not failed; the next `sweep run` starts it
                    Some(s) if forwarded && std::os::unix::process::ExitStatusExt::signal(&s) == Some(libc::SIGTERM) => println!("run {index}: stopped before its first checkpoint"),
                    _ => {
                        eprintln!("run {index}: failed (see {})", log.display());
                        failed.lock().map(|mut f| f.push(index)).ok();
                    }
                }
            });
        }
    });
    let mut failed = failed.lock().map(|f| f.clone()).unwrap_or_default();
    failed.sort_unstable();
    Ok(Outcome { failed, stopped: stop.load(Ordering::SeqCst) })
}
