//! What goes wrong reading a config, building a model and running it, by kind. A
//! wrapper's message says only its own context; its cause follows in the error chain
//! (`{:#}` with anyhow, or `elmlab_core::error::chain`).

use elmlab_core::budget::BudgetError;
use elmlab_core::error::{BatchError, DeviceError, LayerError, PluginError, RegistryError, WriteError};
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid RON: {message}")]
    Syntax { path: String, message: String },
    #[error("unknown key `{key}`; valid keys{place}: {valid}")]
    UnknownKey { key: String, place: String, valid: String },
    /// `plugin` names the plugin whose setting it is (" (a setting of neuron `elm`)"), if any.
    #[error("`{key}` expects {expected}, got `{got}`{plugin}")]
    WrongType { key: String, expected: String, got: String, plugin: String },
    #[error("`{key}` is required ({doc})")]
    Missing { key: String, doc: String },
    #[error("override `{text}` is not of the form key=value (for example model.units=57)")]
    BadOverride { text: String },
    #[error("unknown {noun} `{name}`{place}; registered: {registered}")]
    UnknownPlugin { noun: String, name: String, place: String, registered: String },
    #[error("give `model.units` or `model.budget`, not both (set the other to None)")]
    UnitsAndBudget,
    #[error("give `model.units` (hidden units) or `model.budget` (trainable parameters to fill)")]
    NoSize,
    /// The resolved tree does not fit the typed config: a bug in a declaration.
    #[error("internal: the resolved config does not fit its declaration")]
    Internal { source: elmlab_core::error::SettingsError },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// A plugin refused (`plugin` names it: "neuron `elm`").
    #[error("{plugin}")]
    Plugin { plugin: String, source: PluginError },
    #[error("neither `model.units` nor `model.budget` is set")]
    NoSize,
    #[error("layer `{layer}` reads {reads} inputs but receives {receives}")]
    InputWidth { layer: String, reads: usize, receives: usize },
    #[error("the model needs an estimated {estimate}, more than {limit}; make it smaller (model.units, model.budget, train.batch) or give a larger --max-memory")]
    Memory { estimate: String, limit: String },
    #[error("neuron `{neuron}`: layer `{layer}` declares {closed_form} parameters in closed form but built {built}")]
    Count { neuron: String, layer: String, closed_form: usize, built: usize },
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{context}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error("task")]
    Task(#[source] PluginError),
    #[error("task produced a malformed batch")]
    Batch(#[source] BatchError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("training diverged at step {step}: loss is {loss}")]
    Diverged { step: u64, loss: f32 },
    /// A checkpoint could not be written (a full disk, say); `kept` says what is intact.
    #[error("the checkpoint of step {step} could not be written ({kept}; free the space and continue with `elmlab train --resume {}`)", run.display())]
    CheckpointWrite { step: u64, kept: String, run: PathBuf, source: Box<RunError> },
}

impl RunError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RunError::Io { context: context.into(), source }
    }
}

/// A checkpoint or weights file that cannot be used, and why.
#[derive(Debug, Error)]
#[error("{}: {problem}", path.display())]
pub struct CheckpointError {
    pub path: PathBuf,
    pub problem: CheckpointProblem,
}

#[derive(Debug, Error)]
pub enum CheckpointProblem {
    #[error("not a readable safetensors file: {0}")]
    Unreadable(String),
    #[error("cannot be encoded: {0}")]
    Encoding(String),
    #[error("tensor `{tensor}` is {dtype}; elmlab reads F32 and I64")]
    Dtype { tensor: String, dtype: String },
    #[error("fixed tensor `{tensor}` differs from the one this config builds (another seed or model settings?)")]
    FixedDiffers { tensor: String },
    #[error("`{tensor}` holds integers, a parameter needs F32")]
    Integers { tensor: String },
    #[error("unexpected tensor `{tensor}` (the model has {have})")]
    Unexpected { tensor: String, have: String },
    #[error("`{tensor}` has shape {got:?}, the model needs {want:?}")]
    Shape { tensor: String, got: Vec<usize>, want: Vec<usize> },
    #[error("holds {seen} of the model's {total} tensors")]
    Incomplete { seen: usize, total: usize },
    #[error("missing `{tensor}`")]
    Missing { tensor: String },
    #[error("`{tensor}` has {got} values, expected {expected}")]
    Size { tensor: String, got: usize, expected: usize },
    #[error("no update count")]
    NoUpdateCount,
    #[error("the trainer state is not readable: {0}")]
    TrainerState(String),
    #[error("its contents do not match the checksum written with them (sha256 {expected}, now {got}): the file is damaged")]
    Checksum { expected: String, got: String },
    #[error("the checkpoint's manifest is not usable: {0}")]
    Manifest(String),
}

/// A run directory that cannot be used as asked.
#[derive(Debug, Error)]
pub enum RunDirError {
    #[error("{} already holds a run; continue it with `elmlab train --resume {}` or choose another --out", path.display(), path.display())]
    Occupied { path: PathBuf },
    #[error("{} is not a run directory (no config.ron in it)", path.display())]
    NotARun { path: PathBuf },
    #[error("{} names {} which does not exist", pointer.display(), target.display())]
    DanglingLatest { pointer: PathBuf, target: PathBuf },
    #[error("{} has no checkpoint to resume from", path.display())]
    NoCheckpoint { path: PathBuf },
    #[error("{} has no usable checkpoint: {tried}", path.display())]
    NoUsableCheckpoint { path: PathBuf, tried: String },
    #[error("{} has no checkpoint at step {step}; it has {available}", path.display())]
    NoSuchStep { path: PathBuf, step: u64, available: String },
    #[error("another elmlab process is using {} (it holds {}); wait for it to finish or stop it", path.display(), lock.display())]
    Locked { path: PathBuf, lock: PathBuf },
}
