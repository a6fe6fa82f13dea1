//! The errors a plugin and the contracts report, by kind. The binary turns them into
//! messages with `anyhow`; every message says what was wrong and, where it can, what to do.

use std::path::PathBuf;
use thiserror::Error;

/// A boxed underlying error (a file format library's, an archive's).
pub type Source = Box<dyn std::error::Error + Send + Sync>;

/// Why a plugin refused its settings, its shape or its data.
#[derive(Debug, Error)]
pub enum PluginError {
    /// A setting that cannot be used (beyond its declared type and range).
    #[error(transparent)]
    Setting(#[from] SettingsError),
    /// A connectome that breaks the connectivity contract.
    #[error(transparent)]
    Connectome(#[from] ConnectomeError),
    /// A batch that does not match what its task declares.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A parameter-store operation that cannot be done.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A shape or size the plugin cannot work with, with the numbers.
    #[error("{0}")]
    Shape(String),
    /// A data file that is missing, unreadable or malformed; the message says where to get it.
    #[error("{message}")]
    Data {
        message: String,
        #[source]
        source: Option<Source>,
    },
    /// Reading or writing a file.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Anything else, in the plugin's words.
    #[error("{0}")]
    Other(String),
}

impl PluginError {
    /// A refusal in the plugin's words.
    pub fn new(message: impl Into<String>) -> Self {
        PluginError::Other(message.into())
    }
    pub fn shape(message: impl Into<String>) -> Self {
        PluginError::Shape(message.into())
    }
    /// A data problem without an underlying error.
    pub fn data(message: impl Into<String>) -> Self {
        PluginError::Data { message: message.into(), source: None }
    }
    /// A data problem caused by `source`.
    pub fn data_from(message: impl Into<String>, source: impl Into<Source>) -> Self {
        PluginError::Data { message: message.into(), source: Some(source.into()) }
    }
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        PluginError::Io { context: context.into(), source }
    }
    /// A setting refused for a reason of the plugin's (`key` names the setting).
    pub fn setting(key: &str, reason: impl Into<String>) -> Self {
        PluginError::Setting(SettingsError { key: key.to_string(), problem: SettingProblem::Refused(reason.into()) })
    }
}

/// A setting that is missing, of the wrong type, or refused.
#[derive(Debug, Error)]
#[error("setting `{key}` {problem}")]
pub struct SettingsError {
    pub key: String,
    pub problem: SettingProblem,
}

#[derive(Debug)]
pub enum SettingProblem {
    Missing,
    WrongType { expected: String, got: String },
    /// The value has the declared type but cannot be used.
    Refused(String),
}

impl std::fmt::Display for SettingProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingProblem::Missing => f.write_str("is missing"),
            SettingProblem::WrongType { expected, got } => write!(f, "expects {expected}, got `{got}`"),
            SettingProblem::Refused(reason) => f.write_str(reason),
        }
    }
}

/// How a connectome breaks the connectivity contract.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConnectomeError {
    #[error("connectome has {rows} rows for {units} units")]
    Rows { rows: usize, units: usize },
    #[error("unit {unit} has {got} sources, expected {fan_in}")]
    FanIn { unit: usize, got: usize, fan_in: usize },
    #[error("unit {unit} reads source {source_index}, but there are only {sources}")]
    Source { unit: usize, source_index: usize, sources: usize },
}

/// How a batch differs from what its task declares.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch has {steps} steps and {batch} sequences; both must be at least 1")]
    Empty { steps: usize, batch: usize },
    #[error("batch inputs do not match {steps} steps x {batch} sequences x width {width}")]
    Inputs { steps: usize, batch: usize, width: usize },
    #[error("symbol {symbol} outside the input width {width}")]
    Symbol { symbol: u32, width: usize },
    #[error("batch has {got} targets, expected {expected}")]
    Targets { got: usize, expected: usize },
    #[error("target {target} outside the {classes} classes")]
    Target { target: usize, classes: usize },
    #[error("batch carries {flags} reset flags for {batch} sequences")]
    Resets { flags: usize, batch: usize },
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

/// A registry lookup or addition that cannot be done.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("unknown {noun} `{name}`{place}; registered: {registered}")]
    Unknown { noun: &'static str, name: String, place: String, registered: String },
    #[error("{noun} `{name}` from {origin} is already registered by {existing}")]
    Duplicate { noun: &'static str, name: String, origin: String, existing: String },
}

/// A layer that broke the recurrent-layer contract at run time (a plugin bug, reported
/// instead of a panic inside a tensor operation).
#[derive(Debug, Error)]
#[error("layer `{layer}` {problem}")]
pub struct LayerError {
    pub layer: String,
    pub problem: String,
}

/// A file the core writes (atomically) could not be written.
#[derive(Debug, Error)]
#[error("writing {path}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A parameter-store operation that cannot be done (a plugin bug, reported as such).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParamError {
    #[error("parameter `{name}` is registered twice")]
    Twice { name: String },
    #[error("parameter `{name}` has shape {shape:?}; 1 to 3 axes are supported")]
    Rank { name: String, shape: Vec<usize> },
    #[error("`{name}` has {got} values, expected {} for shape {shape:?}", shape.iter().product::<usize>())]
    Size { name: String, got: usize, shape: Vec<usize> },
    #[error("unknown parameter `{name}`")]
    Unknown { name: String },
    /// A fixed tensor given from a weights file that the model cannot use.
    #[error("fixed tensor `{name}` {problem}")]
    Fixed { name: String, problem: String },
}


/// An error and its causes, joined by `: ` (what `{:#}` shows with anyhow).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}
