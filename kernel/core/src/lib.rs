//! elmlab's core: what a plugin author builds against. The contracts that neuron models
//! ([`neuron`], and the shared block for recurrent cells, [`cell`]), connectivity
//! patterns ([`connectivity`]) and tasks ([`task`]) implement; the registry that finds
//! them; settings declared once ([`settings`], `#[derive(Settings)]`); typed errors;
//! the tensor types and the parameter store; and [`conformance`], the checks every
//! plugin runs in its tests. It knows nothing of training, checkpoints or loading
//! libraries, and names no plugin.

pub mod budget;
pub mod cell;
pub mod conformance;
pub mod connectivity;
pub mod device;
pub mod error;
pub mod fs;
pub mod neuron;
pub mod params;
pub mod plugin;
pub mod registry;
pub mod rng;
pub mod schema;
pub mod settings;
pub mod task;
pub mod tensor;
pub mod tile;

pub use dfdx;
pub use inventory;
pub use tracing;

// `#[derive(Settings)]` and `#[derive(Choice)]` name this crate `::elmlab_core`, also here.
extern crate self as elmlab_core;

/// Versions recorded in summaries, checkpoints and plugin compatibility records.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const DFDX_VERSION: &str = "0.13.0";
pub const RUSTC_VERSION: &str = env!("ELMLAB_RUSTC_VERSION");
/// The target triple the core was built for.
pub const TARGET: &str = env!("ELMLAB_TARGET");
