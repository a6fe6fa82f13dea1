//! Linear units (baselines.md): a point neuron with one leaky state, wired by a
//! connectivity pattern like ELM, so that only per-neuron complexity differs.
//!
//! ```text
//! β_t = s_in · Σ_k w_s[k] · u_t[k]
//! h_t = κ ⊙ h_{t−1} + (1 − κ) · β_t,   κ = exp(−1/τ), τ log-spaced over the units
//! a_t = g(h_t + b)
//! ```

use crate::activation::Activation;
use crate::timescales::log_spaced;
use crate::wiring::Synapses;
use elmlab_core::cell::{Cell, CellModel, CellParams, CellShape, Init, ParamSpec};
use elmlab_core::connectivity::{Connectivity, WiringShape};
use elmlab_core::dfdx::prelude::*;
use elmlab_core::error::PluginError;
use elmlab_core::neuron::{LayerState, NeuronModel, Step};
use elmlab_core::params::ParamStore;
use elmlab_core::registry::{NeuronEntry, NeuronPlugin};
use elmlab_core::settings::Settings;
use elmlab_core::tensor::{device, fork, Dev, Traced};
use rand_chacha::ChaCha8Rng;

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct LinearSettings {
    /// synapses per unit k_c asked of the connectivity pattern
    #[setting(default = 300, min = 1)]
    pub synapses: usize,
    /// leak timescales in steps, log-spaced over the units (fixed)
    #[setting(default = (1.0, 500.0))]
    pub tau: (f64, f64),
    /// s_in, scale on the summed synaptic input
    #[setting(default = 1.0, min = 0.0)]
    pub input_scale: f64,
    /// output non-linearity g
    #[setting(default = "relu")]
    pub activation: Activation,
}

impl NeuronPlugin for LinearSettings {
    const NAME: &'static str = "linear";
    const DOC: &'static str = "linear leaky point units (k_e = 1), wired by any connectivity pattern";
    fn build(self) -> Result<Box<dyn NeuronModel>, PluginError> {
        if self.tau.0 <= 0.0 {
            return Err(PluginError::setting("tau", format!("must be positive, got ({}, {})", self.tau.0, self.tau.1)));
        }
        Ok(Box::new(CellModel::new(LinearUnits { synapses: self.synapses, tau: self.tau, input_scale: self.input_scale, relu: self.activation == Activation::Relu })))
    }
}

elmlab_core::inventory::submit! { NeuronEntry::of::<LinearSettings>() }

/// The linear-unit cell.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearUnits {
    pub synapses: usize,
    pub tau: (f64, f64),
    pub input_scale: f64,
    pub relu: bool,
}

/// What a layer of linear units fixes when it is built.
pub struct LinearFixed {
    synapses: Synapses,
    /// `κ` per unit.
    kappa: Tensor<(usize,), f32, Dev>,
}

impl Cell for LinearUnits {
    const NAME: &'static str = "hidden";
    const STATE: &'static [&'static str] = &["h", "a"];
    type Fixed = LinearFixed;

    fn fan_in(&self) -> Option<usize> {
        Some(self.synapses)
    }

    /// `N (k_c + 1)`: the synapse weights and a bias per unit.
    fn parameters(&self, shape: &CellShape) -> Vec<ParamSpec> {
        let (n, k_c) = (shape.units, shape.fan_in);
        vec![ParamSpec::new("w_s", &[n, k_c], Init::Uniform(1.0 / (k_c as f64).sqrt())), ParamSpec::new("b", &[n], Init::Zeros)]
    }

    /// Per unit: k_c multiply-adds, the scale, the leak (3), bias and activation.
    fn flops_per_step(&self, shape: &CellShape) -> u64 {
        (shape.units * (2 * shape.fan_in + 6)) as u64
    }

    fn prepare(&self, shape: &CellShape, wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<LinearFixed, PluginError> {
        let (n, k_c) = (shape.units, shape.fan_in);
        let connectome = store.fixed_connectome("hidden.connectome", wiring, WiringShape { units: n, input_width: shape.input_width, fan_in: k_c }, rng)?;
        let kappa: Vec<f32> = log_spaced(self.tau.0, self.tau.1, n).iter().map(|t| (-1.0 / t).exp() as f32).collect();
        let dev = device();
        Ok(LinearFixed { synapses: Synapses::new(&dev, connectome, n, k_c), kappa: dev.tensor_from_vec(kappa, (n,)) })
    }

    fn step(&self, fixed: &LinearFixed, p: &CellParams, input: Traced, state: LayerState) -> Step {
        let [h_prev, a_prev] = state.into_array();
        let shape = (fixed.synapses.units, input.shape().1);
        let sources = (input, a_prev).concat_along(Axis::<0>);
        let beta = fixed.synapses.weighted_sum(sources, p.traced("w_s"), self.input_scale as f32);
        let kappa = fixed.kappa.clone().broadcast_like::<(usize, usize), Axis<1>>(&shape);
        let one_minus = kappa.clone().negate() + 1.0;
        let h = h_prev * kappa + beta * one_minus;
        let (h_state, h_out) = fork(h);
        let pre = p.add_bias("b", h_out);
        let a = if self.relu { pre.relu() } else { pre };
        let (a_state, a_out) = fork(a);
        Step::new(a_out, vec![h_state, a_state])
    }
}

#[cfg(test)]
mod tests;
