//! The spiking baselines' settings (`lif`, `alif`) with snnTorch's defaults where it has
//! them (threshold 1, the surrogates' slopes).

use super::lif::{Adaptation, Decay, LifCell};
use super::model::SpikingModel;
use super::readout::LeakyReadout;
use super::surrogate::Surrogate;
use elmlab_core::error::PluginError;
use elmlab_core::neuron::NeuronModel;
use elmlab_core::registry::{NeuronEntry, NeuronPlugin};
use elmlab_core::settings::{Choice, Settings};
use std::sync::Arc;

/// What reads the spikes before the kernel's output map.
#[derive(Choice, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readout {
    /// C non-spiking leaky integrators (their membrane), then the output map
    LeakyIntegrator,
    /// the output map reads the spikes directly
    OutputMap,
}

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct SpikingSettings {
    /// synapses per neuron k_c asked of the connectivity pattern (dense: all inputs and neurons)
    #[setting(default = 100, min = 1)]
    pub synapses: usize,
    /// τ_mem, membrane timescale in steps (β = exp(−1/τ_mem))
    #[setting(default = 20.0, above = 0.0)]
    pub tau_mem: f64,
    /// τ_syn, synaptic-current timescale in steps (α = exp(−1/τ_syn); None: no current filter)
    #[setting(default = 10.0, above = 0.0)]
    pub tau_syn: Option<f64>,
    /// train β and α per neuron (and the readout's β_o), starting from the timescales
    #[setting(default = false)]
    pub learn_tau: bool,
    /// θ, the firing threshold
    #[setting(default = 1.0, above = 0.0)]
    pub threshold: f64,
    /// the surrogate derivative of a spike
    #[setting(default = "fast_sigmoid")]
    pub surrogate: Surrogate,
    /// the surrogate's slope k (None: snnTorch's, 25 for fast_sigmoid and sigmoid, 2 for atan)
    #[setting(above = 0.0)]
    pub slope: Option<f64>,
    /// what reads the spikes before the output map
    #[setting(default = "leaky_integrator")]
    pub readout: Readout,
    /// τ_o of the leaky-integrator readout in steps
    #[setting(default = 20.0, above = 0.0)]
    pub tau_out: f64,
}

impl SpikingSettings {
    fn model(&self, adaptation: Option<Adaptation>) -> SpikingModel {
        // no timescale (no current filter) stays no filter when the others are learnt
        let decay = |tau: Option<f64>| if self.learn_tau && tau.is_some() { Decay::Learnt { tau } } else { Decay::Fixed(tau) };
        let hidden = LifCell {
            synapses: self.synapses,
            beta: decay(Some(self.tau_mem)),
            alpha: decay(self.tau_syn),
            threshold: self.threshold,
            surrogate: self.surrogate,
            slope: self.slope.unwrap_or(self.surrogate.default_slope()),
            adaptation,
        };
        let readout = (self.readout == Readout::LeakyIntegrator).then(|| Arc::new(LeakyReadout { beta: decay(Some(self.tau_out)) }));
        SpikingModel { hidden: Arc::new(hidden), readout }
    }
}

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct LifSettings {
    #[setting(flatten)]
    pub common: SpikingSettings,
}

impl NeuronPlugin for LifSettings {
    const NAME: &'static str = "lif";
    const DOC: &'static str = "current-based leaky integrate-and-fire neurons (snnTorch Synaptic), surrogate gradients, reset by subtraction";
    fn build(self) -> Result<Box<dyn NeuronModel>, PluginError> {
        Ok(Box::new(self.common.model(None)))
    }
}

elmlab_core::inventory::submit! { NeuronEntry::of::<LifSettings>() }

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct AlifSettings {
    #[setting(flatten)]
    pub common: SpikingSettings,
    /// β_a, the threshold's rise per unit of adaptation (θ_t = θ + β_a·a_t)
    #[setting(default = 1.8, min = 0.0)]
    pub adaptation: f64,
    /// τ_a, the adaptation's timescale in steps
    #[setting(default = 200.0, above = 0.0)]
    pub tau_adapt: f64,
}

impl NeuronPlugin for AlifSettings {
    const NAME: &'static str = "alif";
    const DOC: &'static str = "adaptive-threshold LIF neurons (Bellec et al. 2018 threshold on the lif dynamics)";
    fn build(self) -> Result<Box<dyn NeuronModel>, PluginError> {
        Ok(Box::new(self.common.model(Some(Adaptation { strength: self.adaptation, tau: self.tau_adapt }))))
    }
}

elmlab_core::inventory::submit! { NeuronEntry::of::<AlifSettings>() }
