//! The non-spiking leaky-integrator readout of a spiking network (snnTorch `Leaky` with
//! no reset, its membrane read out): `u_t = β_o u_{t−1} + W s_t + b`, `C` units, densely
//! reading the spiking layer; the kernel's output map follows.

use super::lif::Decay;
use elmlab_core::cell::{Cell, CellParams, CellShape, Init, ParamSpec};
use elmlab_core::connectivity::Connectivity;
use elmlab_core::dfdx::prelude::*;
use elmlab_core::error::PluginError;
use elmlab_core::neuron::{LayerState, Step};
use elmlab_core::params::ParamStore;
use elmlab_core::tensor::{fork, Traced};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct LeakyReadout {
    pub beta: Decay,
}

impl Cell for LeakyReadout {
    const NAME: &'static str = "readout";
    const STATE: &'static [&'static str] = &["mem"];
    type Fixed = ();

    /// nn.Linear(N, C) and, when learnt, β_o per unit.
    fn parameters(&self, s: &CellShape) -> Vec<ParamSpec> {
        let bound = 1.0 / (s.input_width.max(1) as f64).sqrt();
        let mut specs = vec![ParamSpec::new("weight", &[s.units, s.input_width], Init::Uniform(bound)), ParamSpec::new("bias", &[s.units], Init::Uniform(bound))];
        if let Decay::Learnt { .. } = self.beta {
            specs.push(ParamSpec::new("beta", &[s.units], Init::Constant(self.beta.initial())));
        }
        specs
    }

    fn flops_per_step(&self, s: &CellShape) -> u64 {
        (s.units * (2 * s.input_width + 1 + 2)) as u64
    }

    fn prepare(&self, _: &CellShape, _: &dyn Connectivity, _: &mut ParamStore, _: &mut ChaCha8Rng) -> Result<(), PluginError> {
        Ok(())
    }

    fn step(&self, _: &(), p: &CellParams, x: Traced, state: LayerState) -> Step {
        let [mem_prev] = state.into_array();
        let shape = *mem_prev.shape();
        let input = p.add_bias("bias", p.traced("weight").matmul(x));
        let mem = mem_prev * self.beta.factor(p, "beta", shape) + input;
        let (mem_state, mem_out) = fork(mem);
        Step::new(mem_out, vec![mem_state])
    }
}
