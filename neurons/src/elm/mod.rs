//! The ELM Network neuron (elm-network.md): a hidden layer of Expressive Leaky Memory
//! neurons wired by a connectivity pattern, followed by a readout layer of `C` ELM
//! neurons with linear integration; the kernel adds the output map `C → C`.
//!
//! `spec`: what sizes a layer and its closed-form count; `layer`: the op-by-op reference
//! layer; `fused`: the same layer through the hand-written `kernel` (on the CPU) or the
//! CUDA kernels (`cuda`, in a CUDA build).

pub mod cuda;
#[cfg(test)]
mod cuda_tests;
mod fused;
pub mod kernel;
mod layer;
mod spec;
mod timescales;
#[cfg(test)]
mod tests;

pub use layer::ElmLayer;
pub use spec::{LayerSpec, MlpActivation};
pub use timescales::{InputShare, Timescales};

use crate::activation::Activation;
use crate::path::Path;
use elmlab_core::connectivity::{Connectivity, WiringShape};
use elmlab_core::error::PluginError;
use elmlab_core::neuron::{LayerPlan, NetworkShape, NeuronModel, RecurrentLayer};
use elmlab_core::params::ParamStore;
use elmlab_core::registry::{NeuronEntry, NeuronPlugin};
use elmlab_core::settings::Settings;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The ELM Network's settings.
#[derive(Settings, Clone, Debug, PartialEq)]
pub struct ElmSettings {
    /// d_m, memory units per neuron
    #[setting(default = 5, min = 1)]
    pub memory: usize,
    /// d_mlp, MLP hidden width (None: 2·memory)
    #[setting(min = 1)]
    pub mlp_hidden: Option<usize>,
    /// l_mlp, hidden layers of the MLP (0 = linear integration)
    #[setting(default = 1, min = 0)]
    pub mlp_layers: usize,
    /// φ after every hidden MLP layer (relu2 = max(x,0)²)
    #[setting(default = "relu2")]
    pub mlp_activation: MlpActivation,
    /// d_tree, dendritic branches (None: 2·mlp_hidden)
    #[setting(min = 1)]
    pub branches: Option<usize>,
    /// d_brch (None: = branches); k_c = branches·synapses_per_branch
    #[setting(min = 1)]
    pub synapses_per_branch: Option<usize>,
    /// λ, input/forget timescale ratio
    #[setting(default = 5.0, min = 0.0)]
    pub lambda: f64,
    /// (τ_min, τ_max), memory timescales in steps, log-spaced, fixed
    #[setting(default = (1.0, 500.0))]
    pub tau_memory: (f64, f64),
    /// train the memory timescales per neuron, τ = τ_min + (τ_max − τ_min)·σ(ℓ) (adds d_m to k_e)
    #[setting(default = false)]
    pub learn_tau: bool,
    /// τ_r of the output high-pass filter (None = off)
    #[setting(default = 5.0, above = 0.0)]
    pub high_pass_tau: Option<f64>,
    /// s_in, scale on each branch's summed input
    #[setting(default = 10.0, min = 0.0)]
    pub input_scale: f64,
    /// g, the hidden neuron's output non-linearity
    #[setting(default = "relu")]
    pub activation: Activation,
    /// variational dropout p on both layers' inputs and recurrent inputs (one mask per sequence)
    #[setting(default = 0.0, min = 0.0, below = 1.0)]
    pub dropout: f64,
    /// strength of the MLP-magnitude penalty (training.md)
    #[setting(default = 0.0, min = 0.0)]
    pub mlp_penalty: f64,
    /// strength of the activity penalty (training.md)
    #[setting(default = 0.0, min = 0.0)]
    pub activity_penalty: f64,
    /// auto/fused: the fused whole-sequence layer (CPU kernel; CUDA kernels in a CUDA build); reference: the op-by-op layer (same numbers, slower)
    #[setting(default = "auto")]
    pub path: Path,
}

impl NeuronPlugin for ElmSettings {
    const NAME: &'static str = "elm";
    const DOC: &'static str = "ELM Network: expressive leaky-memory neurons with a dendritic MLP, plus an ELM readout layer";

    fn build(self) -> Result<Box<dyn NeuronModel>, PluginError> {
        Ok(Box::new(Elm::new(&self)?))
    }
}

elmlab_core::inventory::submit! { NeuronEntry::of::<ElmSettings>() }

/// The resolved settings of the ELM Network.
#[derive(Clone, Debug, PartialEq)]
pub struct Elm {
    pub hidden: LayerSpec,
}

impl Elm {
    /// The model of these settings; refuses what the schema cannot say.
    pub fn new(s: &ElmSettings) -> Result<Self, PluginError> {
        let mlp_hidden = s.mlp_hidden.unwrap_or(2 * s.memory);
        let branches = s.branches.unwrap_or(2 * mlp_hidden);
        let synapses_per_branch = s.synapses_per_branch.unwrap_or(branches);
        let tau = s.tau_memory;
        if tau.0 <= 0.0 {
            return Err(PluginError::setting("tau_memory", format!("must be positive, got ({}, {})", tau.0, tau.1)));
        }
        if s.learn_tau && tau.0 >= tau.1 {
            return Err(PluginError::setting("learn_tau", format!("needs τ_min < τ_max to bound the timescales, got tau_memory ({}, {})", tau.0, tau.1)));
        }
        let hidden = LayerSpec {
            name: "hidden".into(),
            units: 0,
            input_width: 0,
            memory: s.memory,
            mlp_hidden,
            mlp_layers: s.mlp_layers,
            mlp_activation: s.mlp_activation,
            branches,
            synapses_per_branch,
            lambda: s.lambda,
            tau_memory: tau,
            learn_tau: s.learn_tau,
            high_pass_tau: s.high_pass_tau,
            input_scale: s.input_scale,
            relu_output: s.activation == Activation::Relu,
            dropout: s.dropout,
            mlp_penalty: s.mlp_penalty,
            activity_penalty: s.activity_penalty,
            path: s.path,
            inputs_need_grad: false,
        };
        Ok(Elm { hidden })
    }

    /// The two layers for a network shape. The hidden layer's fan-in is what the
    /// connectivity pattern gave; it must split into whole branches.
    pub fn layer_specs(&self, shape: &NetworkShape) -> Result<(LayerSpec, LayerSpec), PluginError> {
        let mut hidden = self.hidden.clone();
        hidden.units = shape.units;
        hidden.input_width = shape.input_width;
        let k_c = shape.fan_in.unwrap_or(hidden.k_c());
        if k_c != hidden.k_c() {
            if k_c % hidden.branches != 0 {
                return Err(PluginError::shape(format!(
                    "the connectivity pattern gives {k_c} synapses per neuron, which does not split into {} branches",
                    hidden.branches
                )));
            }
            hidden.synapses_per_branch = k_c / hidden.branches;
        }
        let readout = LayerSpec {
            name: "readout".into(),
            units: shape.classes,
            input_width: shape.units,
            memory: 3,
            mlp_hidden: 0,
            mlp_layers: 0,
            high_pass_tau: None,
            relu_output: false,
            mlp_penalty: 0.0,
            activity_penalty: 0.0,
            inputs_need_grad: true,
            ..hidden.clone()
        };
        Ok((hidden, readout))
    }
}

impl NeuronModel for Elm {
    fn requested_fan_in(&self) -> Option<usize> {
        Some(self.hidden.k_c())
    }

    fn plan(&self, shape: &NetworkShape) -> Vec<LayerPlan> {
        match self.layer_specs(shape) {
            Ok((hidden, readout)) => vec![hidden.plan(), readout.plan()],
            // An unsplittable fan-in is refused by `build`; plan what was asked for.
            Err(_) => {
                let mut hidden = self.hidden.clone();
                hidden.units = shape.units;
                hidden.input_width = shape.input_width;
                vec![hidden.plan()]
            }
        }
    }

    fn build(&self, shape: &NetworkShape, wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Vec<Box<dyn RecurrentLayer>>, PluginError> {
        let (hidden, readout) = self.layer_specs(shape)?;
        // the connectomes of a weights file the store was given, or else drawn
        let (n, k_c) = (hidden.units, hidden.k_c());
        let hidden_index = store.fixed_connectome("hidden.connectome", wiring, WiringShape { units: n, input_width: hidden.input_width, fan_in: k_c }, rng)?;
        let hidden_layer = ElmLayer::create(hidden, hidden_index, store, rng)?;
        // The readout reads only the hidden layer (ρ = 0): draws with replacement.
        let (c, readout_k) = (readout.units, readout.k_c());
        let readout_index = store.fixed_indices("readout.connectome", [c, readout_k], readout.input_width, c, || Ok((0..c * readout_k).map(|_| rng.gen_range(0..readout.input_width)).collect()))?;
        let readout_layer = ElmLayer::create(readout, readout_index, store, rng)?;
        Ok(vec![Box::new(hidden_layer), Box::new(readout_layer)])
    }
}
