//! Command-line arguments.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// `--version` with the build: CPU, or CUDA and the compute capability its kernels target.
fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        #[cfg(feature = "cuda")]
        let build = format!("CUDA build, fused kernels compiled for sm_{} and newer", elmlab_cuda_kernels::gpu::COMPUTE_CAP);
        #[cfg(not(feature = "cuda"))]
        let build = "CPU build".to_string();
        format!("{} ({build})", env!("CARGO_PKG_VERSION"))
    })
}

#[derive(Parser, Debug)]
#[command(name = "elmlab", version, long_version = long_version(), about = "Experiments with recurrent networks of expressive neurons under parameter budgets")]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Load a plugin library (a path, or a name searched in ELMLAB_PLUGIN_PATH); repeatable.
    #[arg(long = "plugin", value_name = "PATH", global = true)]
    pub plugins: Vec<String>,
    /// Refuse models whose estimated memory exceeds this (e.g. 8G; default: the memory
    /// available on the machine).
    #[arg(long, value_name = "SIZE", global = true, value_parser = elmlab_train::memory::parse_bytes)]
    pub max_memory: Option<u64>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Registered neuron models, connectivity patterns and tasks, with their settings.
    List {
        #[arg(long)]
        json: bool,
    },
    /// The resolved config and the model's sizes: units, k_e, k_c, parameters, FLOPs.
    Inspect {
        /// Experiment config (RON).
        config: PathBuf,
        /// Overrides, `dotted.key=value` (e.g. model.units=57 train.optimizer.lr=1e-3).
        overrides: Vec<String>,
        /// Compute on this device: `cpu` or `cuda:N` (a CUDA build); overrides the config's `device`.
        #[arg(long, value_name = "DEVICE")]
        device: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Train a model; Ctrl-C stops with a checkpoint that `--resume` continues.
    Train {
        /// Experiment config (RON); not needed with --resume.
        #[arg(required_unless_present = "resume")]
        config: Option<PathBuf>,
        /// Overrides, `dotted.key=value`.
        overrides: Vec<String>,
        /// Run directory (default: <out_dir>/<name>-s<seed>, numbered if taken).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the run in this directory from its latest checkpoint.
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "out"])]
        resume: Option<PathBuf>,
        /// With --resume: continue from the checkpoint of this step (default: the newest
        /// one whose checksums match).
        #[arg(long, value_name = "STEP", requires = "resume")]
        from_step: Option<u64>,
        /// Stop with a checkpoint after this many steps (for time-limited jobs).
        #[arg(long, value_name = "STEPS")]
        halt_after: Option<u64>,
        /// Start from these weights (.safetensors) instead of a fresh initialisation, with a
        /// fresh optimiser, in a new run directory (fine-tuning). Fixed tensors in the file
        /// (connectomes, timescales) define the model's.
        #[arg(long, value_name = "WEIGHTS", conflicts_with = "resume")]
        init_from: Option<PathBuf>,
        /// Compute on this device: `cpu` or `cuda:N` (a CUDA build); overrides the config's `device`.
        #[arg(long, value_name = "DEVICE")]
        device: Option<String>,
    },
    /// Run a model on an input batch (.npy [B, T, D_in], already encoded) and write the
    /// per-step logits and internal states (activity, memory) to an .npz file.
    Record {
        /// A run directory, or a weights file (.safetensors; its config is read from its metadata).
        source: PathBuf,
        /// Overrides on the stored config, `dotted.key=value` (e.g. model.neuron.path=fused);
        /// only settings that keep the parameters' shapes can load the weights.
        overrides: Vec<String>,
        /// Input batch, float32 or float64 `.npy` of shape [B, T, D_in].
        #[arg(long)]
        input: PathBuf,
        /// Output `.npz` (logits [B,T,C], hidden.activity [B,T,N], hidden.memory [B,T,N,d_m], ...).
        #[arg(long)]
        out: PathBuf,
        /// For a run directory: `best` or `last` weights.
        #[arg(long, default_value = "best")]
        weights: String,
        /// Compute on this device: `cpu` or `cuda:N` (a CUDA build); overrides the config's `device`.
        #[arg(long, value_name = "DEVICE")]
        device: Option<String>,
    },
    /// Train every model variant of a comparison file (budgets × variants × seeds), then
    /// write a table (Markdown, CSV) and a chart; re-running skips finished runs and
    /// resumes unfinished ones.
    Compare {
        file: PathBuf,
        /// Runs trained at the same time (each in its own process).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
    },
    /// Sweeps: plan a sweep file into a manifest, run it here or on Slurm, collect a table.
    Sweep {
        #[command(subcommand)]
        command: SweepCommand,
    },
    /// Train run I of a sweep manifest (I from --index or SLURM_ARRAY_TASK_ID); finished
    /// runs are skipped, unfinished ones resumed; SIGUSR1/SIGTERM checkpoint and stop.
    RunIndex {
        manifest: PathBuf,
        #[arg(long)]
        index: Option<usize>,
    },
    /// Figures from a sweep's results.csv or from run directories (SVG and PNG).
    Plot {
        #[command(subcommand)]
        command: PlotCommand,
    },
    /// Fit a tradeoff model (metric from N, k_e, k_c) to a sweep's results.csv; print
    /// the fitted parameters with uncertainties and the predicted best allocation.
    Fit {
        /// A results.csv written by `elmlab sweep collect`.
        #[arg(required_unless_present = "list")]
        results: Option<PathBuf>,
        /// The model to fit (`--list` shows them).
        #[arg(long, default_value = "info_saturation")]
        model: String,
        /// Metric column (default: `test`, the selection metric on the test split).
        #[arg(long, default_value = "test")]
        metric: String,
        /// Budgets to predict the best allocation for (default: those in the results).
        #[arg(long, value_delimiter = ',')]
        budgets: Vec<f64>,
        /// Also draw the fitted model over the measured points (SVG + PNG, this stem).
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Hold a parameter fixed, NAME=VALUE (repeatable).
        #[arg(long)]
        fix: Vec<String>,
        /// List the registered tradeoff models.
        #[arg(long)]
        list: bool,
        #[arg(long)]
        json: bool,
    },
    /// Time training steps (forward, backward, update) and inference for a config's model
    /// and batch shape: steps/s, time steps × sequences per second, GFLOP/s, peak memory.
    Bench {
        /// Experiment config (RON).
        config: PathBuf,
        /// Overrides, `dotted.key=value` (e.g. model.neuron.path=reference).
        overrides: Vec<String>,
        /// Timed steps (after one untimed warm-up step); the median is reported.
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Measure the fused and the reference (op-by-op) path, each in its own process, and print the ratio.
        #[arg(long)]
        compare: bool,
        /// Threads for the fused layers and matrix products (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// One self-contained HTML page (report.html) for a sweep, a compare or a run:
    /// results table, figures and fit, learning curves, configs, unfinished runs.
    Report {
        /// A sweep directory, a compare folder or a run directory.
        dir: PathBuf,
        /// Where to write the page (default DIR/report.html).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Data helpers.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Evaluate a run's weights on a split.
    Eval {
        /// A run directory, or a weights file (.safetensors; its config is read from its metadata).
        run_dir: PathBuf,
        /// train, valid or test.
        #[arg(long, default_value = "test")]
        split: String,
        /// Which weights: `best` (selected on validation) or `last` (latest checkpoint).
        #[arg(long, default_value = "best")]
        weights: String,
        /// Evaluate only the first this many bytes of the split (tasks with `eval_bytes`, e.g. enwik8).
        #[arg(long)]
        max_bytes: Option<u64>,
        /// Compute on this device: `cpu` or `cuda:N` (a CUDA build); overrides the config's `device`.
        #[arg(long, value_name = "DEVICE")]
        device: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download a published dataset (shd: shd_train.h5.gz and shd_test.h5.gz; enwik8:
    /// enwik8.zip), continuing a partial download, and check it against the published size
    /// and checksum.
    Fetch {
        /// shd or enwik8.
        dataset: String,
        /// Folder to write into (default: where the task looks, data/shd or data).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Another server holding the same files (its base address).
        #[arg(long)]
        mirror: Option<String>,
    },
    /// Write the synthetic SHD twin (shd_train.h5, shd_test.h5 in the SHD layout).
    SynthShd {
        /// Folder to write into.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1200)]
        train_samples: usize,
        #[arg(long, default_value_t = 400)]
        test_samples: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// Expand a sweep file into `manifest.jsonl` (one resolved config per run) and print the runs.
    Plan {
        file: PathBuf,
        /// Sweep directory (default: <out_dir>/<name> from the sweep file).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run a manifest here, K processes at a time; finished runs are skipped, unfinished resumed.
    Run {
        manifest: PathBuf,
        #[arg(long, default_value_t = 1)]
        jobs: usize,
    },
    /// Submit a manifest as a Slurm job array plus a dependent collect job.
    Submit {
        manifest: PathBuf,
        /// Use Slurm (sbatch).
        #[arg(long)]
        slurm: bool,
        #[arg(long)]
        partition: Option<String>,
        /// Generic resources per task, e.g. `gpu:1`.
        #[arg(long)]
        gres: Option<String>,
        /// Time limit per task (Slurm format, e.g. 04:00:00).
        #[arg(long)]
        time: Option<String>,
        /// CPUs per task.
        #[arg(long)]
        cpus: Option<u32>,
        /// Memory per task, e.g. 8G.
        #[arg(long)]
        mem: Option<String>,
        #[arg(long)]
        account: Option<String>,
        /// At most this many tasks at once.
        #[arg(long)]
        max_parallel: Option<usize>,
        /// Seconds before the time limit at which a task checkpoints and requeues itself.
        #[arg(long, default_value_t = 300)]
        signal_before: u32,
        /// Only these indices (e.g. `3,5-7`); default: every run not finished yet.
        #[arg(long)]
        indices: Option<String>,
        /// The elmlab binary the jobs run (default: this one), e.g. a CUDA build
        /// (target/cuda/release/elmlab) submitted from a login node without GPUs.
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// Write and print the scripts without submitting.
        #[arg(long)]
        dry_run: bool,
    },
    /// One CSV row per run (results.csv beside the manifest) and the indices not finished.
    Collect {
        /// Sweep directory or its manifest.
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum PlotCommand {
    /// Metric against a swept axis (default d_m) at each budget, mean ± sd over seeds, optimum marked.
    Tradeoff {
        results: PathBuf,
        /// Column for the x axis.
        #[arg(long, default_value = "config.model.neuron.memory")]
        x: String,
        #[arg(long, default_value = "test")]
        metric: String,
        /// Output stem; writes STEM.svg and STEM.png (default: beside the CSV).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Metric against parameter count (log axes) for every run; the best allocation per budget joined.
    Frontier {
        results: PathBuf,
        #[arg(long, default_value = "test")]
        metric: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Learning curves (a metrics.jsonl key against step) of one or more runs.
    Curves {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Key in metrics.jsonl, e.g. `train.loss` or `valid.accuracy`.
        #[arg(long, default_value = "train.loss")]
        metric: String,
        #[arg(long)]
        out: PathBuf,
    },
}
