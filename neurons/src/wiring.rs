//! The gather that every connectome-wired layer shares: `[inputs ; previous outputs]`
//! → per-unit synaptic inputs, weighted and summed.

use elmlab_core::dfdx::prelude::*;
use elmlab_core::tensor::{Dev, Tape, Traced};

/// The index list of a connectome as a device tensor, `[units * fan_in]`.
pub struct Synapses {
    pub units: usize,
    pub fan_in: usize,
    pub index: Tensor<(usize,), usize, Dev>,
}

impl Synapses {
    pub fn new(dev: &Dev, flat: Vec<usize>, units: usize, fan_in: usize) -> Self {
        let n = flat.len();
        Synapses { units, fan_in, index: dev.tensor_from_vec(flat, (n,)) }
    }

    /// `scale * Σ_k w[i,k] * v[idx[i,k]]` for every unit `i`: `[units, batch]`.
    /// `v` is `[sources, batch]`, `w` is `[units, fan_in]`.
    pub fn weighted_sum(&self, v: Traced, w: Traced, scale: f32) -> Traced {
        let batch = v.shape().1;
        let gathered: Tensor<(usize, usize), f32, Dev, Tape> = v.gather(self.index.clone());
        let u = gathered.reshape_like(&(self.units, self.fan_in, batch));
        let w = w.broadcast_like::<(usize, usize, usize), Axis<2>>(&(self.units, self.fan_in, batch));
        (u * w).sum::<(usize, usize), Axis<1>>() * scale
    }
}
