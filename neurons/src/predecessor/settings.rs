//! The settings both predecessor neurons share, with the predecessor's defaults
//! (`AaronSpieler/elmneuron`, docs/neurons.md).

use super::cell::PredecessorElm;
use super::trace::Trace;
use crate::elm::MlpActivation;
use elmlab_core::error::PluginError;
use elmlab_core::settings::Settings;

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct PredecessorSettings {
    /// d_m, memory units per neuron
    #[setting(default = 100, min = 1)]
    pub memory: usize,
    /// MLP hidden width (None: 2·memory, the predecessor's default)
    #[setting(min = 1)]
    pub mlp_hidden: Option<usize>,
    /// hidden layers of the MLP (0: one affine map)
    #[setting(default = 1, min = 0)]
    pub mlp_layers: usize,
    /// φ after each hidden MLP layer (the predecessor's is relu)
    #[setting(default = "relu")]
    pub mlp_activation: MlpActivation,
    /// synapses per neuron k_c asked of the connectivity pattern
    #[setting(default = 100, min = 1)]
    pub synapses: usize,
    /// synapses per branch; branches = k_c / synapses_per_branch (the predecessor: 1)
    #[setting(default = 1, min = 1)]
    pub synapses_per_branch: usize,
    /// λ, the input/forget timescale ratio
    #[setting(default = 5.0, above = 0.0)]
    pub lambda: f64,
    /// (τ_min, τ_max) of the memory timescales in steps, log-spaced
    #[setting(default = (1.0, 1000.0))]
    pub tau_memory: (f64, f64),
    /// train the memory timescales per neuron, τ = τ_min + (τ_max − τ_min)·σ(proto_tau_m)
    #[setting(default = false)]
    pub learn_tau: bool,
    /// starting value of every proto_w_s entry (w_s = relu(proto_w_s))
    #[setting(default = 0.5)]
    pub w_s_init: f64,
}

impl PredecessorSettings {
    /// The cell of these settings with `trace`; refuses timescales that cannot work.
    pub fn cell(&self, trace: Trace) -> Result<PredecessorElm, PluginError> {
        let (low, high) = self.tau_memory;
        if !(low > 0.0 && low < high && high.is_finite()) {
            return Err(PluginError::setting("tau_memory", format!("must be 0 < τ_min < τ_max < ∞ (the timescales are bounded by a sigmoid between them), got ({low}, {high})")));
        }
        Ok(PredecessorElm {
            trace,
            synapses: self.synapses,
            synapses_per_branch: self.synapses_per_branch,
            memory: self.memory,
            mlp_hidden: self.mlp_hidden.unwrap_or(2 * self.memory),
            mlp_layers: self.mlp_layers,
            mlp_activation: self.mlp_activation,
            lambda: self.lambda,
            tau_memory: self.tau_memory,
            learn_tau: self.learn_tau,
            w_s_init: self.w_s_init,
        })
    }
}
