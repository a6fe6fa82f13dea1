//! The training loop: batches from the task, loss and gradients from the network,
//! clipping, schedule and optimiser from the config; metrics, checkpoints and the
//! summary into the run directory. Resuming continues exactly: batches and dropout
//! draws are functions of (seed, step), and everything else is in the checkpoint.

use crate::checkpoint::{load_carried, load_optimizer, load_weights, save_weights, write_checkpoint, CheckpointContents, NamedTensors, CARRIED, OPTIMIZER, TRAINER, WEIGHTS};
use crate::config::ResolvedConfig;
use crate::error::{BuildError, CheckpointError, CheckpointProblem, RunError};
use crate::loss::BatchStats;
use crate::network::{ModelPlan, ModelRecipe, Network, NetworkState};
use crate::optim::{clip_global_norm, Optimizer};
use crate::rundir::{write_atomic, RunDir};
use crate::schedule::Schedule;
use crate::tensorboard::TensorBoardLog;
use elmlab_core::neuron::ForwardContext;
use elmlab_core::params::ParamStore;
use elmlab_core::registry::Registry;
use elmlab_core::rng::stream;
use elmlab_core::task::{validate_batch, Split, Task, TaskContext};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn build_task(config: &ResolvedConfig, registry: &Registry) -> Result<Box<dyn Task>, BuildError> {
    let cfg = &config.config;
    let found = registry.tasks.find(&cfg.task.kind)?;
    found.build(&cfg.task.settings(), &TaskContext { seed: cfg.seed }).map_err(|source| BuildError::Plugin { plugin: format!("task `{}`", cfg.task.kind), source })
}

/// Everything built from a config: task, model plan and network.
pub struct Session {
    pub config: ResolvedConfig,
    pub task: Box<dyn Task>,
    pub recipe: ModelRecipe,
    pub plan: ModelPlan,
    pub network: Network,
}

impl Session {
    /// Builds the task and the model (initialised from the seed) for evaluation. Shapes
    /// that cannot work, and models that do not fit in memory, are refused here, before
    /// anything large is allocated.
    pub fn prepare(config: ResolvedConfig, registry: &Registry) -> Result<Self, BuildError> {
        Self::prepare_for(config, registry, Vec::new(), Purpose::Evaluate)
    }

    /// [`Session::prepare`] with the fixed tensors (connectomes, timescales) of a weights
    /// file: the layers use those instead of drawing their own. The file's parameters are
    /// loaded separately (`checkpoint::load_weights`).
    pub fn prepare_fixed(config: ResolvedConfig, registry: &Registry, fixed: NamedTensors) -> Result<Self, BuildError> {
        Self::prepare_for(config, registry, fixed, Purpose::Evaluate)
    }

    /// The session for `purpose`, whose memory estimate must fit the limit
    /// ([`crate::memory::check`]) before the network is built.
    pub fn prepare_for(config: ResolvedConfig, registry: &Registry, fixed: NamedTensors, purpose: Purpose) -> Result<Self, BuildError> {
        elmlab_core::tensor::select_device(config.config.device)?;
        let task = build_task(&config, registry)?;
        let cfg = &config.config;
        let recipe = ModelRecipe::new(&cfg.model, task.data_shape(), registry)?;
        let plan = recipe.plan(&cfg.model)?;
        crate::memory::check(&purpose.estimate(&plan, &config, task.sequence_length()))?;
        let network = recipe.build_into(&plan, &mut stream(cfg.seed, "init", 0), ParamStore::with_fixed(fixed))?;
        Ok(Session { config, task, recipe, plan, network })
    }

    /// The model's accounting (units solved from a budget, k_e, k_c, parameters) without
    /// allocating weights: what planning many runs needs.
    pub fn plan_only(config: &ResolvedConfig, registry: &Registry) -> Result<ModelPlan, BuildError> {
        Self::plan_with_steps(config, registry).map(|(plan, _)| plan)
    }

    /// [`Session::plan_only`] and the task's sequence length (what sizing needs).
    pub fn plan_with_steps(config: &ResolvedConfig, registry: &Registry) -> Result<(ModelPlan, usize), BuildError> {
        let task = build_task(config, registry)?;
        let plan = ModelRecipe::new(&config.config.model, task.data_shape(), registry)?.plan(&config.config.model)?;
        Ok((plan, task.sequence_length()))
    }

    /// Metrics of the current weights on a split.
    pub fn evaluate(&self, split: Split) -> Result<Map<String, Value>, RunError> {
        let cfg = &self.config.config;
        let batches = self.task.eval_batches(split, cfg.train.eval_batch).map_err(RunError::Task)?;
        let mut stats = BatchStats::default();
        let mut ctx = ForwardContext::evaluation(stream(cfg.seed, "eval", 0));
        let mut carried = None;
        let started = Instant::now();
        let mut last_report = Instant::now();
        for (i, b) in batches.enumerate() {
            let b = b.map_err(RunError::Task)?;
            // Long evaluations (a whole text split) say how far they are.
            if last_report.elapsed().as_secs() >= 30 {
                tracing::info!(split = %split, batches = i, positions = stats.count, seconds = started.elapsed().as_secs(), "evaluating");
                last_report = Instant::now();
            }
            validate_batch(self.task.as_ref(), &b).map_err(RunError::Batch)?;
            let (batch_stats, state) = self.network.evaluate_batch(&mut ctx, &b, self.task.loss_at(), carried.as_ref())?;
            stats.add(&batch_stats);
            carried = Some(state);
        }
        Ok(self.metrics(&stats))
    }

    fn metrics(&self, stats: &BatchStats) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("loss".into(), json!(stats.loss()));
        m.insert("accuracy".into(), json!(stats.accuracy()));
        if self.task.extra_metrics().contains(&"bits_per_byte") {
            m.insert("bits_per_byte".into(), json!(stats.bits_per_symbol()));
        }
        m
    }

    fn selection_value(&self, metrics: &Map<String, Value>) -> f64 {
        metrics.get(self.task.selection().metric).and_then(Value::as_f64).unwrap_or(f64::NAN)
    }
}

/// What a session is prepared for, which decides the memory it must fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Training steps of `train.batch` sequences (weights, gradients, moments, activations).
    Train,
    /// Evaluation batches of `train.eval_batch` sequences.
    Evaluate,
}

impl Purpose {
    pub fn estimate(self, plan: &ModelPlan, config: &ResolvedConfig, steps: usize) -> crate::memory::MemoryEstimate {
        let train = &config.config.train;
        match self {
            Purpose::Train => crate::memory::MemoryEstimate::training(plan, train.batch, steps),
            Purpose::Evaluate => crate::memory::MemoryEstimate::evaluation(plan, train.eval_batch),
        }
    }
}

/// Receives progress; the binary shows it as a bar or as log lines.
pub trait Observer {
    fn started(&mut self, _first_step: u64, _total_steps: u64) {}
    fn step_done(&mut self, _step: u64, _loss: f32) {}
    fn metrics(&mut self, _line: &Value) {}
    fn finished(&mut self) {}
}

pub struct TrainOptions {
    /// Continue from this checkpoint of the run directory (see `recovery::choose_checkpoint`).
    pub resume_from: Option<std::path::PathBuf>,
    /// Stop (with a checkpoint) after this many steps in this invocation.
    pub halt_after: Option<u64>,
    /// Set by a signal handler: checkpoint at the next step boundary and stop.
    pub interrupt: Arc<AtomicBool>,
    /// The weights file a new run started from (fine-tuning), recorded in its summary.
    pub init_from: Option<std::path::PathBuf>,
    /// Hyperparameters to record beside the model's own (a sweep's swept values).
    pub hparams: Map<String, Value>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { resume_from: None, halt_after: None, interrupt: Arc::new(AtomicBool::new(false)), init_from: None, hparams: Map::new() }
    }
}

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Finished(Value),
    /// Stopped early with a checkpoint at `step`; resume continues from there.
    Stopped { step: u64 },
}

/// The trainer's position, saved in every checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct TrainerState {
    /// Completed optimiser steps.
    step: u64,
    /// Training statistics since the last metrics line.
    window: BatchStats,
    window_loss: f64,
    /// Sum of each penalty over the window.
    window_penalties: std::collections::BTreeMap<String, f64>,
    window_steps: u64,
    best_value: Option<f64>,
    best_step: Option<u64>,
    best_metrics: Option<Map<String, Value>>,
    last_valid: Option<Map<String, Value>>,
    /// Wall time spent in earlier invocations.
    elapsed_s: f64,
    /// The weights file the run started from, if it was one (`train --init-from`).
    #[serde(default)]
    init_from: Option<String>,
}

/// Trains the session's network in `run`.
pub fn train(session: &mut Session, run: &RunDir, options: &TrainOptions, observer: &mut dyn Observer) -> Result<Outcome, RunError> {
    let mut tb = None;
    let outcome = train_logged(session, run, options, observer, &mut tb);
    if let (Err(_), Some(tb)) = (&outcome, tb.as_mut()) {
        // after every step, so that a resume (which drops later events) takes it back
        let _ = tb.session_end(i64::MAX as u64, crate::tensorboard::hparams::Status::Failure);
    }
    outcome
}

fn train_logged(session: &mut Session, run: &RunDir, options: &TrainOptions, observer: &mut dyn Observer, tb_slot: &mut Option<TensorBoardLog>) -> Result<Outcome, RunError> {
    let cfg = session.config.config.clone();
    let config_ron = session.config.to_ron();
    let total = cfg.train.steps;
    let schedule = Schedule::from_config(&cfg.train.schedule, cfg.train.optimizer.lr, total);
    let mut optimizer = Optimizer::new(&cfg.train.optimizer, &session.network.params);
    let mut state = TrainerState::default();
    // The recurrent state carried into the next batch (tasks that continue sequences).
    let mut carried: Option<NetworkState> = None;

    if let Some(ckpt) = &options.resume_from {
        load_weights(&ckpt.join(WEIGHTS), &mut session.network.params)?;
        load_optimizer(&ckpt.join(OPTIMIZER), &mut optimizer, &session.network.params)?;
        let text = std::fs::read_to_string(ckpt.join(TRAINER)).map_err(|e| RunError::io(format!("reading {}", ckpt.display()), e))?;
        state = serde_json::from_str(&text).map_err(|e| CheckpointError { path: ckpt.join(TRAINER), problem: CheckpointProblem::TrainerState(e.to_string()) })?;
        carried = load_carried(&ckpt.join(CARRIED))?;
        // newer checkpoints (damaged, or passed over by --from-step) make way for the ones
        // this run writes; the metrics after this step are written again, identically
        crate::recovery::set_aside_after(run, state.step)?;
        run.truncate_metrics_after(state.step)?;
        tracing::info!(step = state.step, checkpoint = %ckpt.display(), "resuming");
    } else {
        write_atomic(&run.config_path(), config_ron.as_bytes())?;
        let _ = std::fs::remove_file(run.metrics_path());
        state.init_from = options.init_from.as_ref().map(|p| p.display().to_string());
    }

    let tb = tb_slot.insert(TensorBoardLog::open(&run.tb_dir(), options.resume_from.is_some().then_some(state.step), state.step)?);
    if options.resume_from.is_none() {
        tb.session_start(&crate::tensorboard::run_hparams(session, &options.hparams), "")?;
    }
    let loss_at = session.task.loss_at();
    let started = Instant::now();
    let first_step = state.step;
    observer.started(first_step, total);
    let save = |state: &TrainerState, optimizer: &Optimizer, session: &Session, carried: &Option<NetworkState>, elapsed: f64| -> Result<(), RunError> {
        let mut s = state.clone();
        s.elapsed_s = elapsed;
        let value = serde_json::to_value(&s).map_err(|e| CheckpointError { path: run.checkpoints_dir(), problem: CheckpointProblem::TrainerState(e.to_string()) })?;
        let contents = CheckpointContents { store: &session.network.params, optimizer, trainer_state: &value, config_ron: &config_ron, carried: carried.as_ref() };
        write_checkpoint(run, s.step, &contents, cfg.train.keep_checkpoints).map_err(|e| {
            let kept = run.checkpoints().first().map(|(step, _)| format!("the checkpoint of step {step} is intact")).unwrap_or_else(|| "there is no earlier checkpoint".into());
            RunError::CheckpointWrite { step: s.step, kept, run: run.path.clone(), source: Box::new(e) }
        })?;
        Ok(())
    };

    while state.step < total {
        let ran = state.step - first_step;
        if options.interrupt.load(Ordering::SeqCst) || options.halt_after.is_some_and(|h| ran >= h) {
            save(&state, &optimizer, session, &carried, state.elapsed_s + started.elapsed().as_secs_f64())?;
            observer.finished();
            tracing::info!(step = state.step, "stopped with a checkpoint; resume with `elmlab train --resume {}`", run.path.display());
            return Ok(Outcome::Stopped { step: state.step });
        }
        let step = state.step;
        let lr = schedule.lr(step);
        let batch = session.task.train_batch(step, cfg.train.batch).map_err(RunError::Task)?;
        validate_batch(session.task.as_ref(), &batch).map_err(RunError::Batch)?;
        let mut ctx = ForwardContext::new(true, stream(cfg.seed, "forward", step));
        let mut g = session.network.loss_and_gradients(&mut ctx, &batch, loss_at, cfg.train.label_smoothing, carried.as_ref())?;
        carried = Some(std::mem::take(&mut g.final_state));
        if !g.loss.is_finite() {
            return Err(RunError::Diverged { step, loss: g.loss });
        }
        let grad_norm = match cfg.train.clip_norm {
            Some(limit) => clip_global_norm(&mut g.grads, limit),
            None => crate::optim::global_norm(&g.grads),
        };
        optimizer.update(&mut session.network.params, &g.grads, lr);
        state.step += 1;
        state.window.add(&g.stats);
        state.window_loss += g.loss as f64;
        for (name, value) in &g.penalties {
            *state.window_penalties.entry(name.clone()).or_default() += *value as f64;
        }
        state.window_steps += 1;
        observer.step_done(state.step, g.loss);

        if state.step % cfg.train.log_every == 0 || state.step == total {
            let mut line = Map::new();
            line.insert("step".into(), json!(state.step));
            line.insert("split".into(), json!("train"));
            line.insert("loss".into(), json!(state.window_loss / state.window_steps as f64));
            line.insert("cross_entropy".into(), json!(state.window.loss()));
            line.insert("accuracy".into(), json!(state.window.accuracy()));
            line.insert("lr".into(), json!(lr));
            line.insert("grad_norm".into(), json!(grad_norm));
            for (name, sum) in &state.window_penalties {
                line.insert(format!("penalty.{name}"), json!(sum / state.window_steps as f64));
            }
            let line = Value::Object(line);
            run.append_metrics(&line)?;
            tb.metrics(&line)?;
            observer.metrics(&line);
            state.window = BatchStats::default();
            state.window_loss = 0.0;
            state.window_penalties.clear();
            state.window_steps = 0;
        }
        if state.step % cfg.train.eval_every == 0 || state.step == total {
            let metrics = session.evaluate(Split::Valid)?;
            let value = session.selection_value(&metrics);
            let higher = session.task.selection().higher_is_better;
            let better = match state.best_value {
                None => true,
                Some(b) => if higher { value > b } else { value < b },
            };
            if better {
                state.best_value = Some(value);
                state.best_step = Some(state.step);
                state.best_metrics = Some(metrics.clone());
                save_weights(&run.best_dir().join(WEIGHTS), &session.network.params, &config_ron, state.step)?;
            }
            let mut line = metrics.clone();
            line.insert("step".into(), json!(state.step));
            line.insert("split".into(), json!("valid"));
            let line = Value::Object(line);
            run.append_metrics(&line)?;
            tb.metrics(&line)?;
            observer.metrics(&line);
            state.last_valid = Some(metrics);
        }
        if state.step % cfg.train.checkpoint_every == 0 || state.step == total {
            save(&state, &optimizer, session, &carried, state.elapsed_s + started.elapsed().as_secs_f64())?;
        }
    }
    observer.finished();

    // Over the whole run, all invocations together (a resumed run reports the same kind of number).
    let wall = state.elapsed_s + started.elapsed().as_secs_f64();
    // The test split is evaluated with the selected (best) weights.
    let final_params = session.network.params.clone();
    if run.best_dir().join(WEIGHTS).is_file() {
        load_weights(&run.best_dir().join(WEIGHTS), &mut session.network.params)?;
    }
    let test = session.evaluate(Split::Test)?;
    session.network.params = final_params;
    let summary = json!({
        "name": cfg.name,
        "seed": cfg.seed,
        "status": "finished",
        "steps": state.step,
        "task": cfg.task.kind,
        "neuron": cfg.model.neuron.kind,
        "connectivity": cfg.model.connectivity.kind,
        "units": session.plan.units,
        "budget": session.plan.solved_from_budget,
        "k_e": session.plan.k_e,
        "k_c": session.plan.k_c,
        "params": params_json(&session.plan, Some(&session.network)),
        "flops_per_step": session.plan.flops_per_step,
        "final": { "valid": state.last_valid },
        "best": { "metric": session.task.selection().metric, "value": state.best_value, "step": state.best_step, "valid": state.best_metrics, "test": test },
        "wall_time_s": wall,
        "steps_per_s": if wall > 0.0 { state.step as f64 / wall } else { 0.0 },
        "init_from": state.init_from,
        "versions": versions(),
    });
    write_atomic(&run.summary_path(), serde_json::to_string_pretty(&summary).unwrap_or_default().as_bytes())?;
    // the results as the HParams table's metrics
    let results = [("final/valid", &summary["final"]["valid"]), ("best/valid", &summary["best"]["valid"]), ("test", &summary["best"]["test"])];
    for (prefix, metrics) in results {
        for (key, v) in metrics.as_object().into_iter().flatten() {
            if let Some(x) = v.as_f64() {
                tb.scalar(&format!("{prefix}/{key}"), state.step, x)?;
            }
        }
    }
    tb.session_end(state.step, crate::tensorboard::hparams::Status::Success)?;
    Ok(Outcome::Finished(summary))
}

/// Parameter counts per layer and in total, from the real tensors beside the closed form
/// (from the closed form alone where the network is not built).
pub fn params_json(plan: &ModelPlan, network: Option<&Network>) -> Value {
    let count = |prefix: &str, closed_form: usize| network.map_or(closed_form, |n| n.params.count(prefix));
    let layers: Vec<Value> = plan
        .layers
        .iter()
        .map(|l| json!({ "name": l.name, "units": l.units, "k_e": l.k_e, "k_c": l.k_c, "params": count(&format!("{}.", l.name), l.params), "closed_form": l.params, "flops_per_step": l.flops_per_step }))
        .collect();
    json!({ "total": count("", plan.total_params), "closed_form": plan.total_params, "layers": layers })
}

pub fn versions() -> Value {
    json!({ "elmlab": elmlab_core::CORE_VERSION, "dfdx": elmlab_core::DFDX_VERSION, "rustc": elmlab_core::RUSTC_VERSION })
}
