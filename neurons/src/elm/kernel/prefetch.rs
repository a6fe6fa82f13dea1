//! Asking for a neuron's data ahead of its step where a layer is too large for its
//! parameters to stay in cache from one step to the next. At Enwik8's size (1,024 neurons)
//! every step reads ~16 MB of parameters and, backward, ~11 MB of MLP weight gradients,
//! each neuron's in runs of a few hundred bytes a row that the hardware prefetchers barely
//! pick up: the core waited on one line after another (one thread, the forward took 1.4–1.7×
//! as long without asking for neuron n + 1's lines while neuron n runs).

use super::{ElmKernel, ElmParams};
use crate::fused::{prefetch, prefetch_slice, Real};

/// A layer's parameters per step beyond which its passes prefetch: about an L2. SHD-Adding's
/// hidden layer (0.4 MB) stays in L2, and prefetching there only added instructions.
pub(super) const CACHED_BYTES: usize = 1 << 20;

/// Where one kind of per-neuron buffer lies, neuron by neuron (address and bytes of each
/// part): buffers that other threads write while one prefetches, so it keeps addresses,
/// not borrows.
pub(super) struct NeuronBuffers(Vec<Vec<(usize, usize)>>);

impl NeuronBuffers {
    pub(super) fn new<'a, F: 'a>(per_neuron: impl Iterator<Item = Vec<&'a [F]>>) -> Self {
        NeuronBuffers(per_neuron.map(|parts| parts.iter().map(|v| (v.as_ptr() as usize, std::mem::size_of_val(*v))).collect()).collect())
    }

    /// No buffers: a layer that does not prefetch.
    pub(super) fn none() -> Self {
        NeuronBuffers(Vec::new())
    }

    /// Asks for neuron `n`'s buffers (none past the last neuron).
    pub(super) fn prefetch(&self, n: usize) {
        for &(at, bytes) in self.0.get(n).into_iter().flatten() {
            prefetch(at, bytes);
        }
    }
}

impl<F: Real> ElmKernel<F> {
    /// Whether the layer's passes ask for the next neuron's data ahead (beyond
    /// [`CACHED_BYTES`] of parameters, unless a test set another bound).
    pub(super) fn streams_parameters(&self) -> bool {
        let synapse = std::mem::size_of::<F>() + std::mem::size_of::<u32>();
        let mlp: usize = self.mlp.iter().map(|&(o, i)| o * (i + 1)).sum();
        self.units * (self.k_c() * synapse + mlp * std::mem::size_of::<F>()) > self.cached_bytes
    }

    /// Asks for neuron `n`'s parameters: synapse weights and sources, MLP weights and biases
    /// (nothing past the last neuron).
    pub(super) fn prefetch_parameters(&self, p: &ElmParams<F>, n: usize) {
        if n >= self.units {
            return;
        }
        let k_c = self.k_c();
        prefetch_slice(&p.w_s[n * k_c..(n + 1) * k_c]);
        prefetch_slice(&self.connectome[n * k_c..(n + 1) * k_c]);
        for (&(o, i), &(w, b)) in self.mlp.iter().zip(&p.mlp) {
            prefetch_slice(&w[n * o * i..(n + 1) * o * i]);
            prefetch_slice(&b[n * o..(n + 1) * o]);
        }
    }
}
