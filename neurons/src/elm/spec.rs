//! Everything that sizes and configures one ELM layer, and its closed-form count.

use crate::path::Path;
use crate::timescales::log_spaced;
use elmlab_core::neuron::LayerPlan;
use elmlab_core::dfdx::prelude::*;
use elmlab_core::settings::Choice;
use elmlab_core::tensor::{fork, Dev, Tape};

/// φ after every hidden MLP layer (relu2 = max(x,0)²).
#[derive(Choice, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlpActivation {
    Relu2,
    Relu,
    Silu,
}

impl MlpActivation {
    /// φ on a traced tensor of any shape.
    pub fn apply<S: Shape>(self, h: Tensor<S, f32, Dev, Tape>) -> Tensor<S, f32, Dev, Tape> {
        match self {
            MlpActivation::Relu2 => h.relu().square(),
            MlpActivation::Relu => h.relu(),
            MlpActivation::Silu => {
                let (a, b) = fork(h);
                a * b.sigmoid()
            }
        }
    }
}

/// Everything that sizes and configures one ELM layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// Parameter prefix: `hidden` or `readout`.
    pub name: String,
    pub units: usize,
    pub input_width: usize,
    pub memory: usize,
    pub mlp_hidden: usize,
    pub mlp_layers: usize,
    pub mlp_activation: MlpActivation,
    pub branches: usize,
    pub synapses_per_branch: usize,
    pub lambda: f64,
    pub tau_memory: (f64, f64),
    /// Whether the memory timescales are trained (per neuron, through a bounded sigmoid).
    pub learn_tau: bool,
    pub high_pass_tau: Option<f64>,
    pub input_scale: f64,
    pub relu_output: bool,
    pub dropout: f64,
    pub mlp_penalty: f64,
    pub activity_penalty: f64,
    /// Fused whole-sequence layer or op-by-op reference.
    pub path: Path,
    /// Whether the fused layer forms its inputs' gradients: not for the first layer,
    /// whose inputs are the task's data.
    pub inputs_need_grad: bool,
}

impl LayerSpec {
    pub fn k_c(&self) -> usize {
        self.branches * self.synapses_per_branch
    }

    /// `(out, in)` of each affine map of the MLP, first to last.
    pub fn mlp_shapes(&self) -> Vec<(usize, usize)> {
        let z = self.branches + self.memory;
        if self.mlp_layers == 0 {
            return vec![(self.memory, z)];
        }
        let mut shapes = vec![(self.mlp_hidden, z)];
        shapes.extend(std::iter::repeat((self.mlp_hidden, self.mlp_hidden)).take(self.mlp_layers - 1));
        shapes.push((self.memory, self.mlp_hidden));
        shapes
    }

    /// Trainable parameters per neuron besides the synapses: MLP, `w_y`, `b`, and the
    /// `d_m` timescale logits when they are learnt.
    pub fn k_e(&self) -> usize {
        let tau = if self.learn_tau { self.memory } else { 0 };
        self.mlp_shapes().iter().map(|(o, i)| o * i + o).sum::<usize>() + self.memory + 1 + tau
    }

    pub fn plan(&self) -> LayerPlan {
        let (k_c, d_m) = (self.k_c(), self.memory);
        let mlp: usize = self.mlp_shapes().iter().map(|(o, i)| 2 * o * i + 2 * o).sum();
        // synapses, branch scale, decay, MLP, bounded update (3), memory (2), readout (2), filter and output
        let per_neuron = 2 * k_c + self.branches + d_m + mlp + 3 * d_m + 2 * d_m + 2 * d_m + 6;
        LayerPlan { name: self.name.clone(), units: self.units, k_e: self.k_e(), k_c, params: self.units * (k_c + self.k_e()), flops_per_step: (self.units * per_neuron) as u64, activations_per_step: self.activations_per_step() }
    }

    /// Values kept per step and sequence for the backward: for the fused layer a bound on
    /// the state (memory, filter, output), its sources and the per-step output tensors
    /// (its kernel keeps less since the second speed round: the estimate is 25–40% above
    /// the measured peaks of the reference configs); the reference path's tape every
    /// intermediate (gathered and weighted synapses, branch sums, the MLP's layers, the
    /// update and readout), within 10% of its measured peak (README, `elmlab inspect`).
    pub fn activations_per_step(&self) -> u64 {
        let (n, k_c, d_m) = (self.units, self.k_c(), self.memory);
        if self.path.fused_for(false) {
            let hidden: usize = self.mlp_shapes().iter().skip(1).map(|(_, i)| i).sum();
            // (+ n: the outputs are kept a second time, as the next step's sources)
            return (n * (2 * d_m + 3 + hidden) + self.input_width) as u64;
        }
        let mlp: usize = self.mlp_shapes().iter().map(|(o, _)| 3 * o).sum();
        (n * (2 * k_c + 2 * self.branches + 8 * d_m + mlp + 8)) as u64
    }

    /// Memory timescales `τ_m`, log-spaced from `τ_min` to `τ_max` inclusive.
    pub fn tau_m(&self) -> Vec<f64> {
        log_spaced(self.tau_memory.0, self.tau_memory.1, self.memory)
    }
}
