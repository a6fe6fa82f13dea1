//! Linear units (baselines.md): a point neuron with one leaky state, wired by a
//! connectivity pattern like ELM, so that only per-neuron complexity differs.
//!
//! ```text
//! β_t = s_in · Σ_k w_s[k] · u_t[k]
//! h_t = κ ⊙ h_{t−1} + (1 − κ) · β_t,   κ = exp(−1/τ), τ log-spaced over the units
//! a_t = g(h_t + b)
//! ```

use crate::wiring::Synapses;
use elmlab_kernel::connectivity::{Connectivity, WiringShape};
use elmlab_kernel::dfdx::prelude::*;
use elmlab_kernel::error::PluginError;
use elmlab_kernel::neuron::{ForwardContext, LayerPlan, LayerState, NetworkShape, NeuronModel, RecurrentLayer};
use elmlab_kernel::params::{BufferValues, ParamStore};
use elmlab_kernel::registry::NeuronEntry;
use elmlab_kernel::schema::{DefaultValue as D, FieldKind as K, FieldSpec as F, Settings};
use elmlab_kernel::tensor::{device, fork, Dev, Traced};
use rand_chacha::ChaCha8Rng;

static FIELDS: &[F] = &[
    F::new("synapses", K::Int { min: 1 }, D::Int(300), "synapses per unit k_c asked of the connectivity pattern"),
    F::new("tau", K::Range, D::Range(1.0, 500.0), "leak timescales in steps, log-spaced over the units (fixed)"),
    F::new("input_scale", K::Float { min: 0.0 }, D::Float(1.0), "s_in, scale on the summed synaptic input"),
    F::new("activation", K::Choice(&["relu", "identity"]), D::Text("relu"), "output non-linearity g"),
];

elmlab_kernel::inventory::submit! {
    NeuronEntry { name: "linear", doc: "linear leaky point units (k_e = 1), wired by any connectivity pattern", fields: FIELDS, build }
}

/// The linear-unit model's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearUnits {
    pub synapses: usize,
    pub tau: (f64, f64),
    pub input_scale: f64,
    pub relu: bool,
}

fn build(s: &Settings) -> Result<Box<dyn NeuronModel>, PluginError> {
    let tau = s.range("tau");
    if tau.0 <= 0.0 {
        return Err(PluginError::new(format!("tau must be positive, got ({}, {})", tau.0, tau.1)));
    }
    Ok(Box::new(LinearUnits { synapses: s.usize("synapses"), tau, input_scale: s.float("input_scale"), relu: s.text("activation") == "relu" }))
}

/// `n` timescales from `lo` to `hi` inclusive, geometrically spaced (one unit gets `lo`).
pub fn log_spaced(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![lo];
    }
    (0..n).map(|i| lo * (hi / lo).powf(i as f64 / (n - 1) as f64)).collect()
}

impl LinearUnits {
    /// Trainable parameters of a layer of `units` units with fan-in `k_c`: `N (k_c + 1)`.
    pub fn layer_params(units: usize, k_c: usize) -> usize {
        units * (k_c + 1)
    }
}

impl NeuronModel for LinearUnits {
    fn requested_fan_in(&self) -> Option<usize> {
        Some(self.synapses)
    }

    fn plan(&self, shape: &NetworkShape) -> Vec<LayerPlan> {
        let k_c = shape.fan_in.unwrap_or(self.synapses);
        vec![LayerPlan {
            name: "hidden".into(),
            units: shape.units,
            k_e: 1,
            k_c,
            params: Self::layer_params(shape.units, k_c),
            // per unit: k_c multiply-adds, the scale, the leak (3), bias and activation
            flops_per_step: (shape.units * (2 * k_c + 6)) as u64,
        }]
    }

    fn build(&self, shape: &NetworkShape, wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Vec<Box<dyn RecurrentLayer>>, PluginError> {
        let k_c = shape.fan_in.unwrap_or(self.synapses);
        let connectome = wiring.wire(WiringShape { units: shape.units, input_width: shape.input_width, fan_in: k_c }, rng)?;
        connectome.validate()?;
        store.insert_uniform("hidden.w_s", &[shape.units, k_c], 1.0 / (k_c as f64).sqrt(), rng);
        store.insert_zeros("hidden.b", &[shape.units]);
        store.insert_buffer("hidden.connectome", &[shape.units, k_c], BufferValues::I64(connectome.flat().iter().map(|&i| i as i64).collect()));
        let kappa: Vec<f32> = log_spaced(self.tau.0, self.tau.1, shape.units).iter().map(|t| (-1.0 / t).exp() as f32).collect();
        let dev = device();
        Ok(vec![Box::new(LinearLayer {
            units: shape.units,
            input_width: shape.input_width,
            synapses: Synapses::new(&dev, connectome.flat(), shape.units, k_c),
            kappa: dev.tensor_from_vec(kappa, (shape.units,)),
            input_scale: self.input_scale as f32,
            relu: self.relu,
        })])
    }
}

pub struct LinearLayer {
    units: usize,
    input_width: usize,
    synapses: Synapses,
    kappa: Tensor<(usize,), f32, Dev>,
    input_scale: f32,
    relu: bool,
}

impl RecurrentLayer for LinearLayer {
    fn name(&self) -> &str {
        "hidden"
    }
    fn units(&self) -> usize {
        self.units
    }
    fn input_width(&self) -> usize {
        self.input_width
    }
    fn state_rows(&self) -> Vec<usize> {
        vec![self.units, self.units] // h, a
    }

    fn step(&self, p: &ParamStore, _ctx: &mut ForwardContext, input: Traced, state: LayerState) -> (Traced, LayerState) {
        let mut state = state.into_iter();
        let (h_prev, a_prev) = (state.next().expect("state h"), state.next().expect("state a"));
        let batch = input.shape().1;
        let shape = (self.units, batch);
        let sources = (input, a_prev).concat_along(Axis::<0>);
        let beta = self.synapses.weighted_sum(sources, p.traced("hidden.w_s"), self.input_scale);
        let kappa = self.kappa.clone().broadcast_like::<(usize, usize), Axis<1>>(&shape);
        let one_minus = kappa.clone().negate() + 1.0;
        let h = h_prev * kappa + beta * one_minus;
        let (h_state, h_out) = fork(h);
        let pre = h_out + p.traced_vector("hidden.b").broadcast_like::<(usize, usize), Axis<1>>(&shape);
        let a = if self.relu { pre.relu() } else { pre };
        let (a_state, a_out) = fork(a);
        (a_out, vec![h_state, a_state])
    }
}

#[cfg(test)]
mod tests;
