//! Typed errors of the kernel. The binary turns them into messages with `anyhow`.

use std::path::PathBuf;
use thiserror::Error;

/// A plugin refused its settings or its shape; the message is for the user.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct PluginError {
    pub message: String,
}

impl PluginError {
    pub fn new(message: impl Into<String>) -> Self {
        PluginError { message: message.into() }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid RON: {message}")]
    Syntax { path: String, message: String },
    #[error("unknown key `{key}`; valid keys{place}: {valid}")]
    UnknownKey { key: String, place: String, valid: String },
    #[error("`{key}` expects {expected}, got `{got}`")]
    WrongType { key: String, expected: String, got: String },
    #[error("`{key}` is required ({doc})")]
    Missing { key: String, doc: String },
    #[error("override `{text}` is not of the form key=value (for example model.units=57)")]
    BadOverride { text: String },
    #[error("unknown {noun} `{name}`{place}; registered: {registered}")]
    UnknownPlugin { noun: String, name: String, place: String, registered: String },
    #[error("{0}")]
    Invalid(String),
}

/// A device this build or this machine cannot compute on.
#[derive(Debug, Error)]
pub enum DeviceError {
    #[error(
        "device `{requested}` needs a CUDA build of elmlab, and this one is CPU-only. Build one with \
         `scripts/build-cuda.sh` (no GPU needed; it writes target/cuda/release/elmlab), or with \
         `cargo build --release --features cuda` where the CUDA toolkit is installed (README: GPUs)"
    )]
    NeedsCudaBuild { requested: String },
    #[error(
        "this elmlab is a CUDA build (cargo feature `cuda`) and computes on CUDA devices only: pass \
         `--device cuda:0` (or the override `device=cuda:0`), or use a CPU build (`cargo build --release`) \
         for device `{requested}`"
    )]
    CudaBuildOnly { requested: String },
    #[error("cannot start CUDA device `{requested}`: {reason}. Is the NVIDIA driver loaded (`nvidia-smi`), and is there a GPU with that index (CUDA_VISIBLE_DEVICES)?")]
    Unavailable { requested: String, reason: String },
    #[error("this process already computes on `{current}`; it cannot also use `{requested}`")]
    AlreadySelected { current: String, requested: String },
}

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("{plugin}: {source}")]
    Plugin { plugin: String, source: PluginError },
    #[error("{0}")]
    Shape(String),
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{0}")]
    Checkpoint(String),
    #[error("task: {0}")]
    Task(PluginError),
    #[error("training diverged at step {step}: loss is {loss}")]
    Diverged { step: u64, loss: f32 },
}

impl RunError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RunError::Io { context: context.into(), source }
    }
}
