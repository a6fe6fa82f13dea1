//! Fused whole-sequence layers for the CPU: forward and backward through time written
//! by hand (the `*_kernel` files, generic over `f32`/`f64` so that they can be checked
//! in double precision) and attached to dfdx's tape as one backward operation
//! (`tape.rs`). The op-by-op layers stay the reference these must equal.

mod cpu;
pub mod elm_kernel;
pub mod lstm_kernel;
mod real;
pub mod tape;
mod team;
#[cfg(test)]
mod tests;

pub use real::Real;

use elmlab_kernel::error::PluginError;
use elmlab_kernel::schema::{DefaultValue as D, FieldKind as K, FieldSpec as F};

/// Which implementation a layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// The fused layer wherever it applies (everything but recording internal states).
    Auto,
    /// Always the fused layer (recording falls back to the reference, which it equals).
    Fused,
    /// The op-by-op reference.
    Reference,
}

impl Path {
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        match text {
            "auto" => Ok(Path::Auto),
            "fused" if cfg!(feature = "cuda") => Err(PluginError::new("path `fused` is the CPU layer; a CUDA build runs `reference` (or `auto`, which means it there)")),
            "fused" => Ok(Path::Fused),
            "reference" => Ok(Path::Reference),
            other => Err(PluginError::new(format!("path must be auto, fused or reference, got `{other}`"))),
        }
    }

    /// Whether a pass runs fused: recording wants the reference's per-step internal states.
    pub fn fused_for(self, recording: bool) -> bool {
        !cfg!(feature = "cuda") && self != Path::Reference && !recording
    }
}

/// The config field that selects the path, shared by every neuron model with a fused layer.
pub const PATH_FIELD: F = F::new("path", K::Choice(&["auto", "fused", "reference"]), D::Text("auto"), "auto/fused: the fused whole-sequence CPU layer; reference: the op-by-op layer (same numbers, slower)");
