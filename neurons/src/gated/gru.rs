//! GRU (PyTorch): `r, z = σ(·)`, `n = tanh(W_in x + b_in + r⊙(W_hn h + b_hn))`,
//! `h_t = (1 − z)⊙n + z⊙h_{t−1}`.

use super::gated_flops;
use elmlab_core::cell::{gate_blocks, pytorch_gates, Cell, CellModel, CellParams, CellShape, ParamSpec, B_HH, B_IH, W_HH, W_IH};
use elmlab_core::connectivity::Connectivity;
use elmlab_core::dfdx::prelude::*;
use elmlab_core::error::PluginError;
use elmlab_core::neuron::{LayerState, NeuronModel, Step};
use elmlab_core::params::ParamStore;
use elmlab_core::registry::{NeuronEntry, NeuronPlugin};
use elmlab_core::settings::Settings;
use elmlab_core::tensor::{fork, Traced};
use rand_chacha::ChaCha8Rng;

/// The GRU has no settings of its own.
#[derive(Settings, Clone, Debug, PartialEq)]
pub struct GruSettings {}

impl NeuronPlugin for GruSettings {
    const NAME: &'static str = "gru";
    const DOC: &'static str = "GRU, densely wired, PyTorch layout (weight_ih_l0, ...); gates r, z, n";
    fn build(self) -> Result<Box<dyn NeuronModel>, PluginError> {
        Ok(Box::new(CellModel::new(GruCell)))
    }
}

elmlab_core::inventory::submit! { NeuronEntry::of::<GruSettings>() }

#[derive(Clone, Debug, PartialEq)]
pub struct GruCell;

impl Cell for GruCell {
    const NAME: &'static str = "gru";
    const STATE: &'static [&'static str] = &["h"];
    type Fixed = ();

    fn parameters(&self, shape: &CellShape) -> Vec<ParamSpec> {
        pytorch_gates(3, shape)
    }
    fn flops_per_step(&self, shape: &CellShape) -> u64 {
        gated_flops(3, shape)
    }
    /// The op-by-op step's tape: about sixteen values per unit.
    fn activations_per_step(&self, shape: &CellShape) -> u64 {
        (16 * shape.units + shape.input_width) as u64
    }
    fn prepare(&self, _: &CellShape, _: &dyn Connectivity, _: &mut ParamStore, _: &mut ChaCha8Rng) -> Result<(), PluginError> {
        Ok(())
    }

    fn step(&self, _: &(), p: &CellParams, x: Traced, state: LayerState) -> Step {
        let [h_prev] = state.into_array();
        let hidden = h_prev.shape().0;
        let (h_prev, h_for_gates) = fork(h_prev);
        let mut gi = gate_blocks(p.affine(W_IH, B_IH, x), 3, hidden).into_iter();
        let mut gh = gate_blocks(p.affine(W_HH, B_HH, h_for_gates), 3, hidden).into_iter();
        let r = (gi.next().unwrap() + gh.next().unwrap()).sigmoid();
        let z = (gi.next().unwrap() + gh.next().unwrap()).sigmoid();
        let n = (gi.next().unwrap() + r * gh.next().unwrap()).tanh();
        let (z, z2) = fork(z);
        let h = (z.negate() + 1.0) * n + z2 * h_prev;
        let (h_state, h_out) = fork(h);
        Step::new(h_out, vec![h_state])
    }
}
