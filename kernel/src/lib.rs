//! The elmlab kernel: the contracts that neuron models, connectivity patterns and tasks
//! implement, the registry that finds them, experiment configs, the parameter store,
//! optimisers and schedules, the trainer and run directories. It names no plugin.

pub mod budget;
pub mod checkpoint;
pub mod config;
pub mod connectivity;
pub mod device;
pub mod error;
pub mod fit;
pub mod host_op;
pub mod network;
pub mod neuron;
pub mod optim;
pub mod params;
pub mod plugin;
pub mod registry;
pub mod rng;
pub mod rundir;
pub mod schedule;
pub mod schema;
pub mod task;
pub mod tensor;
pub mod tradeoff;
pub mod trainer;

pub use dfdx;
pub use inventory;
pub use tracing;

/// Versions recorded in summaries and checkpoints.
pub const KERNEL_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const DFDX_VERSION: &str = "0.13.0";
pub const RUSTC_VERSION: &str = env!("ELMLAB_RUSTC_VERSION");
/// The target triple the kernel was built for.
pub const TARGET: &str = env!("ELMLAB_TARGET");
