//! Neuron models, each registered as a plugin: the ELM Network (`elm`), LSTM and GRU in
//! PyTorch's layout (`gated`), linear leaky units (`linear`). The fused whole-sequence CPU
//! layers share their machinery in `fused`; `path` chooses between them and the op-by-op
//! reference.

pub mod activation;
pub mod elm;
pub mod fused;
pub mod gated;
pub mod linear;
pub mod path;
pub mod predecessor;
pub mod spiking;
mod timescales;
mod wiring;

pub use path::Path;

#[cfg(test)]
mod carry_tests;
#[cfg(test)]
mod golden;
