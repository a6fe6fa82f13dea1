//! The ELM Network neuron (elm-network.md): a hidden layer of Expressive Leaky Memory
//! neurons wired by a connectivity pattern, followed by a readout layer of `C` ELM
//! neurons with linear integration; the kernel adds the output map `C → C`.

mod layer;
#[cfg(test)]
mod tests;

pub use layer::{ElmLayer, LayerSpec, MlpActivation};

use crate::fused::{Path, PATH_FIELD};
use elmlab_kernel::connectivity::{Connectivity, WiringShape};
use elmlab_kernel::error::PluginError;
use elmlab_kernel::neuron::{LayerPlan, NetworkShape, NeuronModel, RecurrentLayer};
use elmlab_kernel::params::ParamStore;
use elmlab_kernel::registry::NeuronEntry;
use elmlab_kernel::schema::{DefaultValue as D, FieldKind as K, FieldSpec as F, Settings};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

static FIELDS: &[F] = &[
    F::new("memory", K::Int { min: 1 }, D::Int(5), "d_m, memory units per neuron"),
    F::new("mlp_hidden", K::OptionalInt { min: 1 }, D::None, "d_mlp, MLP hidden width (None: 2·memory)"),
    F::new("mlp_layers", K::Int { min: 0 }, D::Int(1), "l_mlp, hidden layers of the MLP (0 = linear integration)"),
    F::new("mlp_activation", K::Choice(&["relu2", "relu", "silu"]), D::Text("relu2"), "φ after every hidden MLP layer (relu2 = max(x,0)²)"),
    F::new("branches", K::OptionalInt { min: 1 }, D::None, "d_tree, dendritic branches (None: 2·mlp_hidden)"),
    F::new("synapses_per_branch", K::OptionalInt { min: 1 }, D::None, "d_brch (None: = branches); k_c = branches·synapses_per_branch"),
    F::new("lambda", K::Float { min: 0.0 }, D::Float(5.0), "λ, input/forget timescale ratio"),
    F::new("tau_memory", K::Range, D::Range(1.0, 500.0), "(τ_min, τ_max), memory timescales in steps, log-spaced, fixed"),
    F::new("learn_tau", K::Bool, D::Bool(false), "train the memory timescales (not implemented yet: refused)"),
    F::new("high_pass_tau", K::OptionalFloat { min: 0.0 }, D::Float(5.0), "τ_r of the output high-pass filter (None = off)"),
    F::new("input_scale", K::Float { min: 0.0 }, D::Float(10.0), "s_in, scale on each branch's summed input"),
    F::new("activation", K::Choice(&["relu", "identity"]), D::Text("relu"), "g, the hidden neuron's output non-linearity"),
    F::new("dropout", K::Float { min: 0.0 }, D::Float(0.0), "variational dropout p on both layers' inputs and recurrent inputs (one mask per sequence)"),
    F::new("mlp_penalty", K::Float { min: 0.0 }, D::Float(0.0), "strength of the MLP-magnitude penalty (training.md)"),
    F::new("activity_penalty", K::Float { min: 0.0 }, D::Float(0.0), "strength of the activity penalty (training.md)"),
    PATH_FIELD,
];

elmlab_kernel::inventory::submit! {
    NeuronEntry { name: "elm", doc: "ELM Network: expressive leaky-memory neurons with a dendritic MLP, plus an ELM readout layer", fields: FIELDS, build }
}

/// The resolved settings of the ELM Network.
#[derive(Clone, Debug, PartialEq)]
pub struct Elm {
    pub hidden: LayerSpec,
}

fn build(s: &Settings) -> Result<Box<dyn NeuronModel>, PluginError> {
    let memory = s.usize("memory");
    let mlp_hidden = s.optional_usize("mlp_hidden").unwrap_or(2 * memory);
    let branches = s.optional_usize("branches").unwrap_or(2 * mlp_hidden);
    let synapses_per_branch = s.optional_usize("synapses_per_branch").unwrap_or(branches);
    let tau = s.range("tau_memory");
    if tau.0 <= 0.0 {
        return Err(PluginError::new(format!("tau_memory must be positive, got ({}, {})", tau.0, tau.1)));
    }
    if s.bool("learn_tau") {
        return Err(PluginError::new("learn_tau = true is not implemented yet; the timescales are fixed (set learn_tau: false)"));
    }
    let dropout = s.float("dropout");
    if dropout >= 1.0 {
        return Err(PluginError::new(format!("dropout must be below 1, got {dropout}")));
    }
    if s.optional_float("high_pass_tau") == Some(0.0) {
        return Err(PluginError::new("high_pass_tau must be positive (or None for off)"));
    }
    let hidden = LayerSpec {
        name: "hidden".into(),
        units: 0,
        input_width: 0,
        memory,
        mlp_hidden,
        mlp_layers: s.usize("mlp_layers"),
        mlp_activation: match s.text("mlp_activation") {
            "relu" => MlpActivation::Relu,
            "silu" => MlpActivation::Silu,
            _ => MlpActivation::Relu2,
        },
        branches,
        synapses_per_branch,
        lambda: s.float("lambda"),
        tau_memory: tau,
        high_pass_tau: s.optional_float("high_pass_tau"),
        input_scale: s.float("input_scale"),
        relu_output: s.text("activation") == "relu",
        dropout,
        mlp_penalty: s.float("mlp_penalty"),
        activity_penalty: s.float("activity_penalty"),
        path: Path::parse(s.text("path"))?,
        inputs_need_grad: false,
    };
    Ok(Box::new(Elm { hidden }))
}

impl Elm {
    /// The two layers for a network shape. The hidden layer's fan-in is what the
    /// connectivity pattern gave; it must split into whole branches.
    pub fn layer_specs(&self, shape: &NetworkShape) -> Result<(LayerSpec, LayerSpec), PluginError> {
        let mut hidden = self.hidden.clone();
        hidden.units = shape.units;
        hidden.input_width = shape.input_width;
        let k_c = shape.fan_in.unwrap_or(hidden.k_c());
        if k_c != hidden.k_c() {
            if k_c % hidden.branches != 0 {
                return Err(PluginError::new(format!(
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
        let connectome = wiring.wire(WiringShape { units: hidden.units, input_width: hidden.input_width, fan_in: hidden.k_c() }, rng)?;
        connectome.validate()?;
        let hidden_layer = ElmLayer::create(hidden, connectome.flat(), store, rng)?;
        // The readout reads only the hidden layer (ρ = 0): draws with replacement.
        let readout_index: Vec<usize> = (0..readout.units * readout.k_c()).map(|_| rng.gen_range(0..readout.input_width)).collect();
        let readout_layer = ElmLayer::create(readout, readout_index, store, rng)?;
        Ok(vec![Box::new(hidden_layer), Box::new(readout_layer)])
    }
}
