//! The vanilla (Elman) RNN in PyTorch's `nn.RNN` layout:
//! `h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)`, densely wired. A cell on the
//! core's building block: it declares its parameters and writes its step; the plan, the
//! build and the step loop come from `CellModel`.

use elmlab_core::cell::{pytorch_gates, Cell, CellModel, CellParams, CellShape, Init, ParamSpec, B_HH, B_IH, W_HH, W_IH};
use elmlab_core::connectivity::Connectivity;
use elmlab_core::error::PluginError;
use elmlab_core::neuron::{LayerState, NeuronModel, Step};
use elmlab_core::params::ParamStore;
use elmlab_core::registry::{NeuronEntry, NeuronPlugin};
use elmlab_core::settings::Settings;
use elmlab_core::tensor::{fork, Traced};
use rand_chacha::ChaCha8Rng;

/// The settings, and the cell itself.
#[derive(Settings, Clone, Debug, PartialEq)]
pub struct TanhRnn {
    /// W_hh starts uniform on ±gain/√H (1 = PyTorch's init)
    #[setting(default = 1.0, min = 0.0)]
    pub recurrent_gain: f64,
}

impl NeuronPlugin for TanhRnn {
    const NAME: &'static str = "tanh_rnn";
    const DOC: &'static str = "vanilla tanh RNN, densely wired, PyTorch nn.RNN layout (example plugin)";
    fn build(self) -> Result<Box<dyn NeuronModel>, PluginError> {
        Ok(Box::new(CellModel::new(self)))
    }
}

elmlab_core::inventory::submit! { NeuronEntry::of::<TanhRnn>() }

impl Cell for TanhRnn {
    const NAME: &'static str = "rnn";
    const STATE: &'static [&'static str] = &["h"];
    type Fixed = ();

    /// PyTorch's four tensors, with `W_hh` drawn `recurrent_gain` times wider.
    fn parameters(&self, shape: &CellShape) -> Vec<ParamSpec> {
        let mut params = pytorch_gates(1, shape);
        params[1].init = Init::Uniform(self.recurrent_gain / (shape.units as f64).sqrt());
        params
    }

    /// Two matrix-vector products, two bias adds, tanh.
    fn flops_per_step(&self, shape: &CellShape) -> u64 {
        (shape.units * (2 * (shape.input_width + shape.units) + 3)) as u64
    }

    fn prepare(&self, shape: &CellShape, _: &dyn Connectivity, _: &mut ParamStore, _: &mut ChaCha8Rng) -> Result<(), PluginError> {
        elmlab_core::tracing::debug!(units = shape.units, input_width = shape.input_width, "tanh RNN layer built");
        Ok(())
    }

    fn step(&self, _: &(), p: &CellParams, x: Traced, state: LayerState) -> Step {
        let [h_prev] = state.into_array();
        let (h_state, h_out) = fork((p.affine(W_IH, B_IH, x) + p.affine(W_HH, B_HH, h_prev)).tanh());
        Step::new(h_out, vec![h_state])
    }
}

#[cfg(test)]
mod tests;
