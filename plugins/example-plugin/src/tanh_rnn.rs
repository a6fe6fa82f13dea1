//! The vanilla (Elman) RNN in PyTorch's `nn.RNN` layout:
//! `h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)`, densely wired.

use elmlab_kernel::connectivity::Connectivity;
use elmlab_kernel::dfdx::prelude::*;
use elmlab_kernel::error::PluginError;
use elmlab_kernel::neuron::{ForwardContext, LayerPlan, LayerState, NetworkShape, NeuronModel, RecurrentLayer};
use elmlab_kernel::params::ParamStore;
use elmlab_kernel::registry::NeuronEntry;
use elmlab_kernel::schema::{DefaultValue as D, FieldKind as K, FieldSpec as F, Settings};
use elmlab_kernel::tensor::{fork, Traced};
use rand_chacha::ChaCha8Rng;

static FIELDS: &[F] = &[F::new("recurrent_gain", K::Float { min: 0.0 }, D::Float(1.0), "W_hh starts uniform on ±gain/√H (1 = PyTorch's init)")];

elmlab_kernel::inventory::submit! {
    NeuronEntry { name: "tanh_rnn", doc: "vanilla tanh RNN, densely wired, PyTorch nn.RNN layout (example plugin)", fields: FIELDS, build }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TanhRnn {
    pub recurrent_gain: f64,
}

fn build(s: &Settings) -> Result<Box<dyn NeuronModel>, PluginError> {
    Ok(Box::new(TanhRnn { recurrent_gain: s.float("recurrent_gain") }))
}

impl NeuronModel for TanhRnn {
    fn requested_fan_in(&self) -> Option<usize> {
        None
    }

    fn plan(&self, shape: &NetworkShape) -> Vec<LayerPlan> {
        let (h, d) = (shape.units, shape.input_width);
        vec![LayerPlan {
            name: "rnn".into(),
            units: h,
            k_e: d + h + 2,
            k_c: 0,
            params: h * (d + h + 2),
            // two matrix-vector products, two bias adds, tanh
            flops_per_step: (h * (2 * (d + h) + 3)) as u64,
        }]
    }

    fn build(&self, shape: &NetworkShape, _wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Vec<Box<dyn RecurrentLayer>>, PluginError> {
        let (h, d) = (shape.units, shape.input_width);
        let bound = 1.0 / (h as f64).sqrt();
        store.insert_uniform("rnn.weight_ih_l0", &[h, d], bound, rng);
        store.insert_uniform("rnn.weight_hh_l0", &[h, h], bound * self.recurrent_gain, rng);
        store.insert_uniform("rnn.bias_ih_l0", &[h], bound, rng);
        store.insert_uniform("rnn.bias_hh_l0", &[h], bound, rng);
        elmlab_kernel::tracing::debug!(units = h, input_width = d, "tanh RNN layer built");
        Ok(vec![Box::new(TanhRnnLayer { hidden: h, input: d })])
    }
}

pub struct TanhRnnLayer {
    hidden: usize,
    input: usize,
}

impl RecurrentLayer for TanhRnnLayer {
    fn name(&self) -> &str {
        "rnn"
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
        let h_prev = state.into_iter().next().expect("state h");
        let shape = (self.hidden, x.shape().1);
        let bias = |name: &str| p.traced_vector(name).broadcast_like::<(usize, usize), Axis<1>>(&shape);
        let pre = p.traced("rnn.weight_ih_l0").matmul(x) + bias("rnn.bias_ih_l0") + p.traced("rnn.weight_hh_l0").matmul(h_prev) + bias("rnn.bias_hh_l0");
        let (h_state, h_out) = fork(pre.tanh());
        (h_out, vec![h_state])
    }
}

#[cfg(test)]
mod tests;
