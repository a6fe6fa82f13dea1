//! Which implementation a layer runs: the fused whole-sequence layer (CPU kernels, or CUDA
//! kernels in a CUDA build) or the op-by-op reference it must equal.

use elmlab_core::settings::Choice;

/// The `path` setting of every neuron model with a fused layer.
#[derive(Choice, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// The fused layer wherever it applies (everything but recording internal states).
    Auto,
    /// Always the fused layer (recording falls back to the reference, which it equals).
    Fused,
    /// The op-by-op reference.
    Reference,
}

/// The doc line of the `path` setting.
pub const PATH_DOC: &str = "auto/fused: the fused whole-sequence layer (the CPU kernel; in a CUDA build, the CUDA kernels); reference: the op-by-op layer (same numbers, slower)";

impl Path {
    /// Whether a pass runs fused: recording wants the reference's per-step internal states.
    pub fn fused_for(self, recording: bool) -> bool {
        self != Path::Reference && !recording
    }
}
