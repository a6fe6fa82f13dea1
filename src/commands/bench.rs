//! `elmlab bench`: times training steps (forward, backward, clipping, optimiser update)
//! and inference for a config's model and batch shape. `--compare` measures the fused
//! and the reference path, each in a child process of its own (peak memory is a
//! per-process high-water mark that cannot be reset), and prints the ratio.

use anyhow::{bail, Context, Result};
use elmlab_train::config::ResolvedConfig;
use elmlab_train::network::NetworkState;
use elmlab_core::neuron::ForwardContext;
use elmlab_train::optim::{clip_global_norm, Optimizer};
use elmlab_core::registry::Registry;
use elmlab_core::rng::stream;
use elmlab_core::task::{Batch, Carry, Inputs, LossAt};
use elmlab_train::trainer::Session;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// What one benchmark measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchResult {
    pub name: String,
    pub neuron: String,
    /// `auto`, `fused` or `reference` (the neuron's `path` setting), or `-` if it has none.
    pub path: String,
    pub threads: usize,
    pub units: usize,
    pub params: usize,
    pub batch: usize,
    pub steps_per_sequence: usize,
    /// Whether the inputs came from the task's data or were random values of its shape.
    pub data: String,
    pub train_steps: usize,
    /// Seconds per training step (median of the timed steps).
    pub train_step_s: f64,
    pub train_steps_per_s: f64,
    /// Time steps × sequences per second in training.
    pub train_positions_per_s: f64,
    /// Forward FLOPs × 3 (forward + backward) per second, from the model's FLOP count.
    pub train_gflops: f64,
    /// Seconds per inference batch (forward only, median).
    pub infer_batch_s: f64,
    pub infer_positions_per_s: f64,
    pub infer_gflops: f64,
    /// Peak resident memory of the process (VmHWM), bytes.
    pub peak_memory_bytes: Option<u64>,
    /// CUDA build: the most GPU memory in use after any training step, bytes.
    #[serde(default)]
    pub peak_device_memory_bytes: Option<u64>,
    /// Seconds per training step (mean of the timed steps) in each fused kernel,
    /// `(kernel, seconds per step)`: on the CPU each fused layer's forward and backward pass
    /// (`hidden forward`, …); in a CUDA build with `ELMLAB_CUDA_TIMING` set, each CUDA
    /// kernel (each launch waited for).
    #[serde(default)]
    pub kernel_s_per_step: Vec<(String, f64)>,
    /// Mean seconds per training step, the total the kernels' shares are part of.
    #[serde(default)]
    pub train_step_mean_s: f64,
    /// The same for an inference batch (mean of the timed batches).
    #[serde(default)]
    pub kernel_s_per_batch: Vec<(String, f64)>,
    #[serde(default)]
    pub infer_batch_mean_s: f64,
}

pub fn run(registry: &Registry, config: &Path, overrides: &[String], steps: usize, compare: bool, threads: Option<usize>, as_json: bool) -> Result<i32> {
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    if compare {
        return run_compare(registry, config, overrides, steps, threads, as_json);
    }
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("setting up the thread pool")?;
    }
    let resolved = ResolvedConfig::load(config, overrides, registry)?;
    let result = measure(registry, resolved, steps)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print_result(&result);
    }
    Ok(0)
}

fn path_setting(resolved: &ResolvedConfig) -> String {
    resolved.tree["model"]["neuron"]["path"].as_str().unwrap_or("-").to_string()
}

fn measure(registry: &Registry, resolved: ResolvedConfig, steps: usize) -> Result<BenchResult> {
    let path = path_setting(&resolved);
    let mut session = Session::prepare_for(resolved, registry, Vec::new(), elmlab_train::trainer::Purpose::Train)?;
    let cfg = session.config.config.clone();
    let task = session.task.as_ref();
    let loss_at = task.loss_at();
    let (batch_size, seq) = (cfg.train.batch, task.sequence_length());
    // The task's own batches where its data is there; otherwise random inputs of its shape.
    let (data, batches): (String, Box<dyn Fn(u64) -> Result<Batch>>) = match task.check_data() {
        Ok(()) => ("task".into(), Box::new(|step| task.train_batch(step, batch_size).map_err(|e| anyhow::anyhow!("task `{}`: {e}", cfg.task.kind)))),
        Err(e) => {
            eprintln!("note: {e}; timing on random inputs of the task's shape instead");
            let (width, classes) = (task.input_width(), task.classes());
            ("random".into(), Box::new(move |step| Ok(random_batch(step, seq, batch_size, width, classes, loss_at))))
        }
    };
    let network = &mut session.network;
    let mut optimizer = Optimizer::new(&cfg.train.optimizer, &network.params);
    let mut train_times = Vec::with_capacity(steps);
    let mut device_peak: Option<u64> = None;
    // the kernels' times once the untimed step is done
    let mut kernel_start = Vec::new();
    let mut carried: Option<NetworkState> = None;
    // one untimed step first: allocations and caches warm up
    for step in 0..=steps as u64 {
        let batch = batches(step)?;
        let started = Instant::now();
        let mut ctx = ForwardContext::new(true, stream(cfg.seed, "forward", step));
        let mut g = network.loss_and_gradients(&mut ctx, &batch, loss_at, cfg.train.label_smoothing, carried.as_ref())?;
        carried = Some(std::mem::take(&mut g.final_state));
        if let Some(limit) = cfg.train.clip_norm {
            clip_global_norm(&mut g.grads, limit);
        }
        optimizer.update(&mut network.params, &g.grads, cfg.train.optimizer.lr);
        if step > 0 {
            train_times.push(started.elapsed().as_secs_f64());
        } else {
            kernel_start = kernel_time();
        }
        device_peak = device_peak.max(device_memory());
    }
    let kernel_s_per_step = kernel_time_since(&kernel_start, steps);
    let train_step_mean_s = mean(&train_times);
    let mut infer_kernel_start = Vec::new();
    let mut infer_times = Vec::with_capacity(steps);
    for step in 0..=steps as u64 {
        let batch = batches(step)?;
        let started = Instant::now();
        let mut ctx = ForwardContext::evaluation(stream(cfg.seed, "eval", step));
        network.evaluate_batch(&mut ctx, &batch, loss_at, None)?;
        if step > 0 {
            infer_times.push(started.elapsed().as_secs_f64());
        } else {
            infer_kernel_start = kernel_time();
        }
    }
    let kernel_s_per_batch = kernel_time_since(&infer_kernel_start, steps);
    let infer_batch_mean_s = mean(&infer_times);
    let (train_s, infer_s) = (median(&mut train_times), median(&mut infer_times));
    let positions = (seq * batch_size) as f64;
    let forward_flops = session.plan.flops_per_step as f64 * positions;
    Ok(BenchResult {
        name: cfg.name.clone(),
        neuron: cfg.model.neuron.kind.clone(),
        path,
        threads: rayon::current_num_threads(),
        units: session.plan.units,
        params: session.plan.total_params,
        batch: batch_size,
        steps_per_sequence: seq,
        data,
        train_steps: steps,
        train_step_s: train_s,
        train_steps_per_s: 1.0 / train_s,
        train_positions_per_s: positions / train_s,
        train_gflops: 3.0 * forward_flops / train_s / 1e9,
        infer_batch_s: infer_s,
        infer_positions_per_s: positions / infer_s,
        infer_gflops: forward_flops / infer_s / 1e9,
        peak_memory_bytes: peak_memory(),
        peak_device_memory_bytes: device_peak,
        kernel_s_per_step,
        train_step_mean_s,
        kernel_s_per_batch,
        infer_batch_mean_s,
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Each kernel's seconds per timed step since `start` (a kernel first seen after it
/// started from zero; kernels that did not run are left out).
fn kernel_time_since(start: &[(String, f64)], steps: usize) -> Vec<(String, f64)> {
    kernel_time()
        .into_iter()
        .map(|(name, s)| {
            let s0 = start.iter().find(|(n, _)| *n == name).map_or(0.0, |(_, s0)| *s0);
            (name, (s - s0) / steps.max(1) as f64)
        })
        .filter(|(_, s)| *s > 0.0)
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 }
}

fn random_batch(step: u64, steps: usize, batch: usize, width: usize, classes: usize, loss_at: LossAt) -> Batch {
    let mut rng = stream(0, "bench-batch", step);
    let inputs = (0..steps * batch * width).map(|_| rng.gen_range(0.0..1.0f32)).collect();
    let reads = if loss_at == LossAt::EveryStep { steps } else { 1 };
    let targets = (0..reads * batch).map(|_| rng.gen_range(0..classes)).collect();
    Batch { steps, batch, inputs: Inputs::Dense(inputs), targets, carry: Carry::Fresh }
}

/// GPU memory in use (CUDA build), bytes.
fn device_memory() -> Option<u64> {
    #[cfg(feature = "cuda")]
    return elmlab_cuda_kernels::gpu::device_memory_in_use();
    #[cfg(not(feature = "cuda"))]
    None
}

/// Seconds spent so far in each fused kernel: the CUDA kernels in a CUDA build (with
/// `ELMLAB_CUDA_TIMING`), each fused CPU layer's forward and backward pass otherwise.
fn kernel_time() -> Vec<(String, f64)> {
    #[cfg(feature = "cuda")]
    return elmlab_cuda_kernels::gpu::time_spent().into_iter().map(|(name, s, _)| (name.to_string(), s)).collect();
    #[cfg(not(feature = "cuda"))]
    elmlab_neurons::fused::timing::time_spent()
}

/// The process's peak resident memory (Linux `VmHWM`).
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn gib(bytes: Option<u64>) -> String {
    bytes.map(|b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)).unwrap_or_else(|| "n/a".into())
}

fn print_result(r: &BenchResult) {
    println!(
        "{} ({} neuron, path {}, {} units, {} parameters), batch {} × {} steps, {} inputs, {} threads",
        r.name, r.neuron, r.path, r.units, r.params, r.batch, r.steps_per_sequence, r.data, r.threads
    );
    println!(
        "  training step: {:.4} s  ({:.2} steps/s, {:.0} time steps×sequences/s, {:.2} GFLOP/s)",
        r.train_step_s, r.train_steps_per_s, r.train_positions_per_s, r.train_gflops
    );
    println!("  inference:     {:.4} s per batch  ({:.0} time steps×sequences/s, {:.2} GFLOP/s)", r.infer_batch_s, r.infer_positions_per_s, r.infer_gflops);
    println!("  peak memory:   {}", gib(r.peak_memory_bytes));
    if r.peak_device_memory_bytes.is_some() {
        println!("  GPU memory:    {} in use at most (the whole device, after each training step)", gib(r.peak_device_memory_bytes));
    }
    print_shares("a training step", r.train_step_mean_s, &r.kernel_s_per_step, "inputs, copies, output map, loss, optimiser");
    print_shares("an inference batch", r.infer_batch_mean_s, &r.kernel_s_per_batch, "inputs, copies, output map, loss");
    println!("  (median of {} timed steps after one untimed; GFLOP/s from the model's forward FLOP count, ×3 for training)", r.train_steps);
}

/// Where `what` goes: each kernel's mean time and, on the CPU (where the kernels are the
/// fused layers' passes), the rest of `total`.
fn print_shares(what: &str, total: f64, kernels: &[(String, f64)], rest_is: &str) {
    if kernels.is_empty() {
        return;
    }
    println!("  where {what} goes (means, {:.1} ms in all):", total * 1e3);
    for (kernel, s) in kernels {
        println!("    {kernel:<26} {:8.2} ms", s * 1e3);
    }
    let rest = total - kernels.iter().map(|(_, s)| s).sum::<f64>();
    if rest >= 0.0 && !cfg!(feature = "cuda") {
        println!("    {:<26} {:8.2} ms  ({rest_is})", "outside the fused layers", rest * 1e3);
    }
}

/// The fused and the reference path, each measured in a child process.
fn run_compare(registry: &Registry, config: &Path, overrides: &[String], steps: usize, threads: Option<usize>, as_json: bool) -> Result<i32> {
    let resolved = ResolvedConfig::load(config, overrides, registry)?;
    let neuron = &resolved.config.model.neuron.kind;
    let fields = registry.neurons.get(neuron)?.fields;
    if !fields.iter().any(|f| f.name == "path") {
        bail!("neuron `{neuron}` has no fused path (no `path` setting): nothing to compare");
    }
    let exe = std::env::current_exe().context("locating the elmlab binary")?;
    let mut results = Vec::new();
    for path in ["fused", "reference"] {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("bench").arg(config).args(overrides).arg(format!("model.neuron.path={path}")).arg("--steps").arg(steps.to_string()).arg("--json");
        if let Some(n) = threads {
            cmd.arg("--threads").arg(n.to_string());
        }
        if !as_json {
            eprintln!("measuring the {path} path ...");
        }
        let out = cmd.stderr(std::process::Stdio::inherit()).output().with_context(|| format!("running {}", exe.display()))?;
        if !out.status.success() {
            bail!("the {path} path's benchmark failed ({})", out.status);
        }
        let r: BenchResult = serde_json::from_slice(&out.stdout).with_context(|| format!("reading the {path} path's result"))?;
        results.push(r);
    }
    let (fused, reference) = (&results[0], &results[1]);
    let train_ratio = reference.train_step_s / fused.train_step_s;
    let infer_ratio = reference.infer_batch_s / fused.infer_batch_s;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "fused": fused, "reference": reference, "train_speedup": train_ratio, "infer_speedup": infer_ratio }))?);
        return Ok(0);
    }
    print_result(fused);
    print_result(reference);
    println!("fused vs reference: training {train_ratio:.1}× faster, inference {infer_ratio:.1}× faster; peak memory {} vs {}", gib(fused.peak_memory_bytes), gib(reference.peak_memory_bytes));
    Ok(0)
}
