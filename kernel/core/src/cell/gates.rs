//! Densely wired gated cells in PyTorch's layout: `G` gate blocks of `H` rows stacked in
//! `weight_ih_l0 [G·H, D]`, `weight_hh_l0 [G·H, H]`, `bias_ih_l0 [G·H]`,
//! `bias_hh_l0 [G·H]`, uniform on `±1/√H` (PyTorch's `nn.RNN`/`nn.LSTM`/`nn.GRU`), so
//! that weights carry over between the two.

use super::{CellShape, Init, ParamSpec};
use crate::tensor::{Tape, Traced};
use dfdx::prelude::*;

pub const W_IH: &str = "weight_ih_l0";
pub const W_HH: &str = "weight_hh_l0";
pub const B_IH: &str = "bias_ih_l0";
pub const B_HH: &str = "bias_hh_l0";

/// The four PyTorch tensors of a cell with `gates` gate blocks, in PyTorch's order.
pub fn pytorch_gates(gates: usize, shape: &CellShape) -> Vec<ParamSpec> {
    let (h, d) = (shape.units, shape.input_width);
    let bound = Init::Uniform(1.0 / (h as f64).sqrt());
    vec![
        ParamSpec::new(W_IH, &[gates * h, d], bound),
        ParamSpec::new(W_HH, &[gates * h, h], bound),
        ParamSpec::new(B_IH, &[gates * h], bound),
        ParamSpec::new(B_HH, &[gates * h], bound),
    ]
}

/// Splits `[G·H, batch]` into its `G` gate blocks of `H` rows (slices of one tensor:
/// the gradients of every block reach it).
pub fn gate_blocks(t: Traced, gates: usize, hidden: usize) -> Vec<Traced> {
    let batch = t.shape().1;
    let (value, tape) = t.split_tape();
    // the history goes with the first block; the others read the same value
    let mut history = Some(tape);
    (0..gates)
        .map(|g| {
            let whole = match history.take() {
                Some(tape) => value.clone().put_tape(tape),
                None => value.clone().put_tape(Tape::default()),
            };
            whole.slice((g * hidden..(g + 1) * hidden, 0..batch)).reshape_like(&(hidden, batch))
        })
        .collect()
}
