//! Densely wired gated baselines in PyTorch's layout and naming (baselines.md): LSTM and
//! GRU, as cells on the shared block (`elmlab_core::cell`). Weights `weight_ih_l0 [G·H, D]`,
//! `weight_hh_l0 [G·H, H]`, biases `[G·H]`, gates stacked in PyTorch's order (LSTM: i, f,
//! g, o; GRU: r, z, n), so weights carry over. The LSTM also has fused layers: on the CPU
//! (`lstm_kernel`) and, in a CUDA build, on the GPU (`elmlab_cuda_kernels::lstm`).

#[cfg(test)]
mod cuda_tests;
mod gru;
mod lstm;
pub mod lstm_kernel;
#[cfg(test)]
mod tests;

pub use gru::{GruCell, GruSettings};
pub use lstm::{LstmCell, LstmInit, LstmSettings};

use elmlab_core::cell::CellShape;

/// Floating-point operations per step of a gated cell with `gates` gate blocks: two
/// products, two bias adds, the gate non-linearities and the state update.
pub fn gated_flops(gates: usize, shape: &CellShape) -> u64 {
    let (hidden, input) = (shape.units, shape.input_width);
    (hidden * (2 * gates * (input + hidden) + 2 * gates + 6 * gates)) as u64
}
