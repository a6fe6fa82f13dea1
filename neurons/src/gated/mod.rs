//! Densely wired gated baselines in PyTorch's layout and naming (baselines.md): LSTM and
//! GRU. Weights `weight_ih_l0 [G·H, D]`, `weight_hh_l0 [G·H, H]`, biases `[G·H]`, gates
//! stacked in PyTorch's order (LSTM: i, f, g, o; GRU: r, z, n), so weights carry over.

mod gru;
mod lstm;
#[cfg(test)]
mod tests;

pub use gru::Gru;
pub use lstm::Lstm;

use elmlab_kernel::dfdx::prelude::*;
use elmlab_kernel::neuron::LayerPlan;
use elmlab_kernel::params::ParamStore;
use elmlab_kernel::tensor::{absorb, fork, Traced};

/// Closed-form size of a gated layer with `gates` gate blocks of `hidden` units.
pub fn gated_plan(name: &str, gates: usize, hidden: usize, input: usize) -> LayerPlan {
    let per_unit = gates * (input + hidden + 2);
    LayerPlan {
        name: name.into(),
        units: hidden,
        k_e: per_unit,
        k_c: 0,
        params: hidden * per_unit,
        // two matmuls, two bias adds, gate non-linearities and the state update
        flops_per_step: (hidden * (2 * gates * (input + hidden) + 2 * gates + 6 * gates)) as u64,
    }
}

/// Creates the four PyTorch-named tensors, uniform on `[-1/√H, 1/√H]`.
pub fn init_gated(store: &mut ParamStore, name: &str, gates: usize, hidden: usize, input: usize, rng: &mut rand_chacha::ChaCha8Rng) {
    let bound = 1.0 / (hidden as f64).sqrt();
    store.insert_uniform(&format!("{name}.weight_ih_l0"), &[gates * hidden, input], bound, rng);
    store.insert_uniform(&format!("{name}.weight_hh_l0"), &[gates * hidden, hidden], bound, rng);
    store.insert_uniform(&format!("{name}.bias_ih_l0"), &[gates * hidden], bound, rng);
    store.insert_uniform(&format!("{name}.bias_hh_l0"), &[gates * hidden], bound, rng);
}

/// `W x + b` for one of the two affine maps, `[G·H, batch]`.
pub fn affine(p: &ParamStore, weight: &str, bias: &str, x: Traced) -> Traced {
    let w = p.traced(weight);
    let rows = p.get(bias).shape[0];
    let batch = x.shape().1;
    w.matmul(x) + p.traced_vector(bias).broadcast_like::<(usize, usize), Axis<1>>(&(rows, batch))
}

/// Splits `[G·H, batch]` into its `G` gate blocks of `H` rows.
pub fn gate_blocks(t: Traced, gates: usize, hidden: usize) -> Vec<Traced> {
    let batch = t.shape().1;
    let mut rest = t;
    let mut blocks = Vec::with_capacity(gates);
    for g in 0..gates {
        let (keep, use_now) = fork(rest);
        blocks.push(use_now.slice((g * hidden..(g + 1) * hidden, 0..batch)).reshape_like(&(hidden, batch)));
        rest = keep;
    }
    // The history stays on `rest`; hand it to the first block so it reaches the loss.
    let first = blocks.remove(0);
    blocks.insert(0, absorb(first, rest));
    blocks
}
