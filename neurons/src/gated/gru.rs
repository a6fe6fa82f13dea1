//! GRU (PyTorch): `r, z = σ(·)`, `n = tanh(W_in x + b_in + r⊙(W_hn h + b_hn))`,
//! `h_t = (1 − z)⊙n + z⊙h_{t−1}`.

use super::{affine, gate_blocks, gated_plan, init_gated};
use elmlab_kernel::connectivity::Connectivity;
use elmlab_kernel::error::PluginError;
use elmlab_kernel::neuron::{ForwardContext, LayerPlan, LayerState, NetworkShape, NeuronModel, RecurrentLayer};
use elmlab_kernel::params::ParamStore;
use elmlab_kernel::registry::NeuronEntry;
use elmlab_kernel::schema::{FieldSpec as F, Settings};
use elmlab_kernel::tensor::{fork, Traced};
use rand_chacha::ChaCha8Rng;

static FIELDS: &[F] = &[];

elmlab_kernel::inventory::submit! {
    NeuronEntry { name: "gru", doc: "GRU, densely wired, PyTorch layout (weight_ih_l0, ...); gates r, z, n", fields: FIELDS, build }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gru;

fn build(_: &Settings) -> Result<Box<dyn NeuronModel>, PluginError> {
    Ok(Box::new(Gru))
}

impl NeuronModel for Gru {
    fn requested_fan_in(&self) -> Option<usize> {
        None
    }
    fn plan(&self, shape: &NetworkShape) -> Vec<LayerPlan> {
        vec![gated_plan("gru", 3, shape.units, shape.input_width)]
    }
    fn build(&self, shape: &NetworkShape, _wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Vec<Box<dyn RecurrentLayer>>, PluginError> {
        init_gated(store, "gru", 3, shape.units, shape.input_width, rng);
        Ok(vec![Box::new(GruLayer { hidden: shape.units, input: shape.input_width })])
    }
}

pub struct GruLayer {
    hidden: usize,
    input: usize,
}

impl RecurrentLayer for GruLayer {
    fn name(&self) -> &str {
        "gru"
    }
    fn units(&self) -> usize {
        self.hidden
    }
    fn input_width(&self) -> usize {
        self.input
    }
    fn state_rows(&self) -> Vec<usize> {
        vec![self.hidden]
    }
    fn step(&self, p: &ParamStore, _ctx: &mut ForwardContext, x: Traced, state: LayerState) -> (Traced, LayerState) {
        let h_prev = state.into_iter().next().expect("h");
        let (h_prev, h_for_gates) = fork(h_prev);
        let mut gi = gate_blocks(affine(p, "gru.weight_ih_l0", "gru.bias_ih_l0", x), 3, self.hidden).into_iter();
        let mut gh = gate_blocks(affine(p, "gru.weight_hh_l0", "gru.bias_hh_l0", h_for_gates), 3, self.hidden).into_iter();
        let r = (gi.next().unwrap() + gh.next().unwrap()).sigmoid();
        let z = (gi.next().unwrap() + gh.next().unwrap()).sigmoid();
        let n = (gi.next().unwrap() + r * gh.next().unwrap()).tanh();
        let (z, z2) = fork(z);
        let h = (z.negate() + 1.0) * n + z2 * h_prev;
        let (h_state, h_out) = fork(h);
        (h_out, vec![h_state])
    }
}
