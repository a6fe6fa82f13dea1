//! The fused whole-sequence CUDA layers (ELM and LSTM). The kernels (kernels/*.cu) are written in phases
//! (kernels/portable.h) so that the same source compiles to PTX for a GPU (`cuda`) and as
//! host C++ (`host-shim`), which the tests compare with the CPU fused kernels on random
//! models. [`driver`] holds what surrounds a launch, written once for both.
//!
//! `args`: the launch arguments and the ELM scratch layout; `driver`: buffers, launches,
//! sums, and the ELM layer around its launches; `lstm`: the LSTM layer around its;
//! `shim`: the host C++ build; `gpu`: the CUDA driver (cooperative launches of the PTX).

pub mod args;
pub mod driver;
pub mod lstm;
#[cfg(feature = "cuda")]
pub mod gpu;
#[cfg(feature = "host-shim")]
pub mod shim;

pub use args::{Activation, ElmShape};
pub use driver::{ElmLayerBuffers, ElmModel, ElmSequence, ElmWiring, ForwardInputs, Grads, Memory, Upstream};
pub use lstm::{LstmGrads, LstmLayerBuffers, LstmSequence};

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("the CUDA kernels cannot run this layer: {0}")]
    Unsupported(String),
    #[error("wrong shape for the CUDA kernels: {0}")]
    Shape(String),
    #[error("CUDA kernel launch: {0}")]
    Launch(String),
    #[error("CUDA driver: {0}")]
    Driver(String),
}
