//! `elmlab train`: a new run, or `--resume` of an interrupted one.

use crate::progress::Progress;
use anyhow::{Context, Result};
use elmlab_train::checkpoint::{load_tensors, load_weights, WEIGHTS};
use elmlab_train::error::RunDirError;
use elmlab_train::recovery::choose_checkpoint;
use elmlab_train::config::ResolvedConfig;
use elmlab_core::registry::Registry;
use elmlab_train::rundir::RunDir;
use elmlab_train::trainer::{train, Outcome, Purpose, Session, TrainOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// What `elmlab train` was asked to do.
#[derive(Default)]
pub struct TrainRequest {
    pub config: Option<PathBuf>,
    pub overrides: Vec<String>,
    pub out: Option<PathBuf>,
    /// Continue this run directory...
    pub resume: Option<PathBuf>,
    /// ...from its checkpoint of this step (else the newest that checks out).
    pub from_step: Option<u64>,
    pub halt_after: Option<u64>,
    pub init_from: Option<PathBuf>,
    /// `device=...` overrides.
    pub device: Vec<String>,
    /// Extra hyperparameters for the TensorBoard log (a sweep's swept values).
    pub hparams: serde_json::Map<String, serde_json::Value>,
}

pub fn run(registry: &Registry, request: TrainRequest) -> Result<i32> {
    let TrainRequest { config, overrides, out, resume, from_step, halt_after, init_from, device, hparams } = request;
    let (resolved, resume_dir) = match &resume {
        Some(dir) => {
            if !overrides.is_empty() {
                anyhow::bail!("--resume continues a run with the config stored in it; overrides are not accepted ({})", overrides.join(" "));
            }
            let run = RunDir::open(dir)?;
            let lock = run.lock()?;
            // The device may change between invocations (trained on a GPU, continued on another).
            let resolved = ResolvedConfig::load(&run.config_path(), &device, registry).with_context(|| format!("the config stored in {}", dir.display()))?;
            (resolved, Some((run, lock)))
        }
        None => {
            let config = config.context("a config file is needed (or --resume RUN_DIR)")?;
            let overrides: Vec<String> = overrides.into_iter().chain(device).collect();
            (ResolvedConfig::load(&config, &overrides, registry)?, None)
        }
    };
    // The fixed tensors (connectomes, timescales) of the weights the run continues from or
    // starts from define the model's: a resumed run keeps its own, a fine-tuned one the file's.
    let chosen = match &resume_dir {
        Some((run, _)) => Some(choose_checkpoint(run, from_step)?),
        None => None,
    };
    let weights = match (&chosen, &init_from) {
        (Some(c), _) => Some(c.dir.join(WEIGHTS)),
        (None, Some(path)) => Some(path.clone()),
        (None, None) => None,
    };
    let fixed = match &weights {
        Some(path) => load_tensors(path)?.0,
        None => Vec::new(),
    };
    // Build the model (refusing bad shapes) and find the data before anything is written.
    let mut session = Session::prepare_for(resolved, registry, fixed, Purpose::Train).with_context(|| match (&weights, &init_from) {
        (Some(path), Some(_)) => format!("building the model with the fixed tensors of {}", path.display()),
        (Some(path), None) => format!("building the model with the fixed tensors of its checkpoint {}", path.display()),
        _ => "building the model".to_string(),
    })?;
    if let Some(path) = &init_from {
        load_weights(path, &mut session.network.params).with_context(|| format!("--init-from {}", path.display()))?;
    }
    session.task.check_data().map_err(|e| anyhow::anyhow!("task `{}`: {e}", session.config.config.task.kind))?;
    let resuming = resume_dir.is_some();
    let (run_dir, _lock) = match resume_dir {
        Some(held) => held,
        None => {
            let cfg = &session.config.config;
            let dir = out.unwrap_or_else(|| free_run_dir(Path::new(&cfg.out_dir), &cfg.name, cfg.seed));
            let run = RunDir::create(&dir)?;
            let lock = run.lock()?;
            // another process may have started a run here between the check and the lock
            if run.config_path().exists() {
                return Err(RunDirError::Occupied { path: dir }.into());
            }
            (run, lock)
        }
    };
    crate::logging::to_file(&run_dir.log_path()).with_context(|| format!("opening {}", run_dir.log_path().display()))?;
    let plan = &session.plan;
    tracing::info!(
        run = %run_dir.path.display(),
        neuron = %plan.neuron, units = plan.units, k_e = plan.k_e, k_c = plan.k_c, params = plan.total_params,
        "{} training", if resuming { "resuming" } else { "starting" }
    );

    let options = TrainOptions { resume_from: chosen.map(|c| c.dir), halt_after, init_from, hparams, ..TrainOptions::default() };
    let flag = options.interrupt.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("second interrupt: exiting without a new checkpoint (the last one is intact)");
            std::process::exit(130);
        }
        eprintln!("interrupt: writing a checkpoint at the end of this step (Ctrl-C again to quit now)");
    });
    // Slurm's warning before the time limit (`--signal=USR1@…`): checkpoint and stop, like Ctrl-C.
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, options.interrupt.clone()).context("installing the SIGUSR1 handler")?;
    let interrupted = options.interrupt.clone();
    let mut progress = Progress::new();
    match train(&mut session, &run_dir, &options, &mut progress)? {
        Outcome::Finished(summary) => {
            let best = &summary["best"];
            let metric = best["metric"].as_str().unwrap_or("");
            println!(
                "finished {}: best valid {}{} {:.4} at step {}, test {:.4}  ({} parameters, {:.1} steps/s)",
                run_dir.path.display(),
                metric,
                if metric == "bits_per_byte" { " (BPC)" } else { "" },
                best["value"].as_f64().unwrap_or(f64::NAN),
                best["step"],
                best["test"][best["metric"].as_str().unwrap_or("")].as_f64().unwrap_or(f64::NAN),
                summary["params"]["total"],
                summary["steps_per_s"].as_f64().unwrap_or(0.0),
            );
            Ok(0)
        }
        Outcome::Stopped { step } => {
            println!("stopped at step {step}; continue with: elmlab train --resume {}", run_dir.path.display());
            Ok(if interrupted.load(Ordering::SeqCst) { 130 } else { 0 })
        }
    }
}

/// `<out_dir>/<name>-s<seed>`, or the first of `-2`, `-3`, ... not taken yet.
fn free_run_dir(out_dir: &Path, name: &str, seed: u64) -> PathBuf {
    let base = format!("{name}-s{seed}");
    let mut candidate = out_dir.join(&base);
    let mut n = 2;
    while candidate.exists() {
        candidate = out_dir.join(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}
