//! Command-line arguments.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "elmlab", version, about = "Experiments with recurrent networks of expressive neurons under parameter budgets")]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
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
        /// Stop with a checkpoint after this many steps (for time-limited jobs).
        #[arg(long, value_name = "STEPS")]
        halt_after: Option<u64>,
    },
    /// Run a model on an input batch (.npy [B, T, D_in], already encoded) and write the
    /// per-step logits and internal states (activity, memory) to an .npz file.
    Record {
        /// A run directory, or a weights file (.safetensors; its config is read from its metadata).
        source: PathBuf,
        /// Input batch, float32 or float64 `.npy` of shape [B, T, D_in].
        #[arg(long)]
        input: PathBuf,
        /// Output `.npz` (logits [B,T,C], hidden.activity [B,T,N], hidden.memory [B,T,N,d_m], ...).
        #[arg(long)]
        out: PathBuf,
        /// For a run directory: `best` or `last` weights.
        #[arg(long, default_value = "best")]
        weights: String,
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
    /// Data helpers.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Evaluate a run's weights on a split.
    Eval {
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
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
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
