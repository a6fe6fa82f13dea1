//! A layer of current-based leaky integrate-and-fire neurons in snnTorch's `Synaptic`
//! convention, optionally with an adaptive threshold (ALIF), wired by a connectivity
//! pattern (recurrent synapses read the previous step's spikes):
//!
//! ```text
//! I_t     = Σ_k w_s[k]·u_t[k] + bias,           u_t = [x_t ; s_{t−1}]
//! a_t     = ρ a_{t−1} + (1 − ρ) s_{t−1},        θ_t = θ + β_a a_t      (ALIF; LIF: θ_t = θ)
//! r_t     = H(mem_{t−1} − θ_{t−1})              (held constant, as snnTorch's reset)
//! syn_t   = α syn_{t−1} + I_t
//! mem_t   = β mem_{t−1} + syn_t − r_t θ_{t−1}
//! s_t     = H(mem_t − θ_t)                      (surrogate gradient)
//! ```
//! α, β clamped to [0, 1] when learnt (snnTorch), else `exp(−1/τ)` from the settings.

use super::surrogate::{heaviside, spike, Surrogate};
use crate::wiring::Synapses;
use elmlab_core::cell::{Cell, CellParams, CellShape, Init, ParamSpec};
use elmlab_core::connectivity::{Connectivity, WiringShape};
use elmlab_core::dfdx::prelude::*;
use elmlab_core::error::PluginError;
use elmlab_core::neuron::{LayerState, StatePart, Step};
use elmlab_core::params::ParamStore;
use elmlab_core::tensor::{device, fork, matrix, Traced};
use rand_chacha::ChaCha8Rng;

/// The adaptive threshold of an ALIF neuron.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adaptation {
    /// β_a, the threshold's rise per unit of adaptation
    pub strength: f64,
    /// τ_a in steps, ρ = exp(−1/τ_a)
    pub tau: f64,
}

/// A decay factor: fixed from a timescale, or a trained per-neuron parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decay {
    /// `exp(−1/τ)`; `None`: no filter (factor 0).
    Fixed(Option<f64>),
    /// The parameter of this name, initialised to `exp(−1/τ)`, clamped to [0, 1].
    Learnt { tau: Option<f64> },
}

impl Decay {
    pub fn initial(self) -> f64 {
        let tau = match self {
            Decay::Fixed(t) | Decay::Learnt { tau: t } => t,
        };
        tau.map(|t| (-1.0 / t).exp()).unwrap_or(0.0)
    }

    /// `[units, batch]` factors: the learnt parameter `local` or the constant.
    pub fn factor(self, p: &CellParams, local: &str, shape: (usize, usize)) -> Traced {
        match self {
            Decay::Learnt { .. } => p.traced_vector(local).clamp(0.0, 1.0).broadcast_like::<(usize, usize), Axis<1>>(&shape),
            Decay::Fixed(_) => elmlab_core::tensor::trace(&matrix(&device(), vec![self.initial() as f32; shape.0 * shape.1], shape.0, shape.1)),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LifCell {
    /// `k_c` asked of the connectivity pattern.
    pub synapses: usize,
    pub beta: Decay,
    pub alpha: Decay,
    pub threshold: f64,
    pub surrogate: Surrogate,
    pub slope: f64,
    pub adaptation: Option<Adaptation>,
}

impl Cell for LifCell {
    const NAME: &'static str = "hidden";
    /// synaptic current, membrane, spikes (and the adaptation of an ALIF neuron)
    const STATE: &'static [&'static str] = &["syn", "mem", "spk", "adapt"];
    type Fixed = Synapses;

    fn state_parts(&self, s: &CellShape) -> Vec<StatePart> {
        let parts = if self.adaptation.is_some() { 4 } else { 3 };
        Self::STATE[..parts].iter().map(|name| StatePart::new(name, s.units)).collect()
    }

    fn fan_in(&self) -> Option<usize> {
        Some(self.synapses)
    }

    /// nn.Linear's initialisation over the synapses: U(±1/√k_c) for weights and bias.
    fn parameters(&self, s: &CellShape) -> Vec<ParamSpec> {
        let (n, k_c) = (s.units, s.fan_in);
        let bound = 1.0 / (k_c.max(1) as f64).sqrt();
        let mut specs = vec![ParamSpec::new("w_s", &[n, k_c], Init::Uniform(bound)), ParamSpec::new("bias", &[n], Init::Uniform(bound))];
        if let Decay::Learnt { .. } = self.beta {
            specs.push(ParamSpec::new("beta", &[n], Init::Constant(self.beta.initial())));
        }
        if let Decay::Learnt { .. } = self.alpha {
            specs.push(ParamSpec::new("alpha", &[n], Init::Constant(self.alpha.initial())));
        }
        specs
    }

    /// Per neuron: the synapses, the bias, the current and membrane updates, the reset and
    /// the threshold (and the adaptation).
    fn flops_per_step(&self, s: &CellShape) -> u64 {
        let adapt = if self.adaptation.is_some() { 5 } else { 0 };
        (s.units * (2 * s.fan_in + 1 + 2 + 4 + 1 + adapt)) as u64
    }

    fn prepare(&self, s: &CellShape, wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Synapses, PluginError> {
        let connectome = store.fixed_connectome("hidden.connectome", wiring, WiringShape { units: s.units, input_width: s.input_width, fan_in: s.fan_in }, rng)?;
        Ok(Synapses::new(&device(), connectome, s.units, s.fan_in))
    }

    fn step(&self, synapses: &Synapses, p: &CellParams, x: Traced, state: LayerState) -> Step {
        let shape = (synapses.units, x.shape().1);
        let mut parts = state.into_parts().into_iter();
        let (syn_prev, mem_prev, spk_prev) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let (spk_prev, spk_for_adapt) = match self.adaptation {
            Some(_) => {
                let (a, b) = fork(spk_prev);
                (a, Some(b))
            }
            None => (spk_prev, None),
        };
        let current = p.add_bias("bias", synapses.weighted_sum((x, spk_prev).concat_along(Axis::<0>), p.traced("w_s"), 1.0));
        let threshold = self.threshold as f32;
        // θ_{t−1} and θ_t: constant, or rising with the adaptation
        let (theta_prev, theta, adapt) = match (self.adaptation, parts.next(), spk_for_adapt) {
            (Some(a), Some(a_prev), Some(spk_for_adapt)) => {
                let rho = (-1.0 / a.tau).exp() as f32;
                let (a_prev, a_prev_for_theta) = fork(a_prev);
                let a_t = a_prev * rho + spk_for_adapt * (1.0 - rho);
                let (a_t, a_for_theta) = fork(a_t);
                let beta_a = a.strength as f32;
                (Some(a_prev_for_theta * beta_a + threshold), Some(a_for_theta * beta_a + threshold), Some(a_t))
            }
            _ => (None, None, None),
        };
        // the reset, held constant: H(mem_{t−1} − θ_{t−1}), from the values
        let dev = device();
        let mem_values = mem_prev.as_vec();
        let reset = match &theta_prev {
            Some(t) => heaviside(&mem_values.iter().zip(t.as_vec()).map(|(m, t)| m - t).collect::<Vec<_>>()),
            None => heaviside(&mem_values.iter().map(|m| m - threshold).collect::<Vec<_>>()),
        };
        let reset = matrix(&dev, reset, shape.0, shape.1);
        let syn = syn_prev * self.alpha.factor(p, "alpha", shape) + current;
        let (syn, syn_for_mem) = fork(syn);
        let leaked = mem_prev * self.beta.factor(p, "beta", shape) + syn_for_mem;
        let mem = match theta_prev {
            Some(t) => leaked - t * reset,
            None => leaked - reset * threshold,
        };
        let (mem, mem_for_spike) = fork(mem);
        let u = match theta {
            Some(t) => mem_for_spike - t,
            None => mem_for_spike - threshold,
        };
        let spk = spike(u, self.surrogate, self.slope as f32);
        let (spk_state, spk_out) = fork(spk);
        let mut next = vec![syn, mem, spk_state];
        next.extend(adapt);
        Step::new(spk_out, next)
    }
}
