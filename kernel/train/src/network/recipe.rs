//! Model assembly: the configured plugins, their closed-form plan (N solved from a
//! budget), and the build, whose real tensor counts are checked against the plan.

use super::Network;
use crate::config::ModelConfig;
use crate::error::BuildError;
use elmlab_core::budget::largest_fitting;
use elmlab_core::connectivity::Connectivity;
use elmlab_core::neuron::{LayerPlan, NetworkShape, NeuronModel};
use elmlab_core::params::ParamStore;
use elmlab_core::registry::Registry;
use elmlab_core::task::DataShape;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The model's sizes, in closed form, before any tensor exists.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModelPlan {
    pub neuron: String,
    pub connectivity: String,
    pub units: usize,
    /// Whether `units` was solved from `model.budget`.
    pub solved_from_budget: Option<usize>,
    pub input_width: usize,
    pub classes: usize,
    pub k_e: usize,
    pub k_c: usize,
    /// Every layer, the output map last.
    pub layers: Vec<LayerPlan>,
    pub total_params: usize,
    pub flops_per_step: u64,
}

/// The configured plugins of a model, ready to be planned or built.
pub struct ModelRecipe {
    pub neuron: Box<dyn NeuronModel>,
    pub connectivity: Box<dyn Connectivity>,
    pub neuron_name: String,
    pub connectivity_name: String,
    pub data: DataShape,
}

impl ModelRecipe {
    /// The model of `cfg` for a task's input width and classes.
    pub fn new(cfg: &ModelConfig, data: DataShape, registry: &Registry) -> Result<Self, BuildError> {
        let plugin = |noun: &str, kind: &str| {
            let plugin = format!("{noun} `{kind}`");
            move |source| BuildError::Plugin { plugin, source }
        };
        let neuron = registry.neurons.find(&cfg.neuron.kind)?.build(&cfg.neuron.settings()).map_err(plugin("neuron", &cfg.neuron.kind))?;
        let connectivity = registry.connectivity.find(&cfg.connectivity.kind)?.build(&cfg.connectivity.settings()).map_err(plugin("connectivity", &cfg.connectivity.kind))?;
        Ok(ModelRecipe { neuron, connectivity, neuron_name: cfg.neuron.kind.clone(), connectivity_name: cfg.connectivity.kind.clone(), data })
    }

    pub fn shape(&self, units: usize) -> NetworkShape {
        let input_width = self.data.input_width;
        let fan_in = self.neuron.requested_fan_in().map(|k| self.connectivity.fan_in(k, input_width, units));
        NetworkShape { units, input_width, classes: self.data.classes, fan_in }
    }

    /// Closed-form plan for `units` hidden units.
    pub fn plan_units(&self, units: usize) -> ModelPlan {
        let shape = self.shape(units);
        let mut layers = self.neuron.plan(&shape);
        let last = layers.last().map(|l| l.units).unwrap_or(self.data.input_width);
        layers.push(output_plan(last, self.data.classes));
        let total_params = layers.iter().map(|l| l.params).sum();
        let flops_per_step = layers.iter().map(|l| l.flops_per_step).sum();
        let first = &layers[0];
        ModelPlan {
            neuron: self.neuron_name.clone(),
            connectivity: self.connectivity_name.clone(),
            units,
            solved_from_budget: None,
            input_width: self.data.input_width,
            classes: self.data.classes,
            k_e: first.k_e,
            k_c: first.k_c,
            total_params,
            flops_per_step,
            layers,
        }
    }

    /// The plan for the config: `units` as given, or the largest that fits `budget`.
    pub fn plan(&self, cfg: &ModelConfig) -> Result<ModelPlan, BuildError> {
        match (cfg.units, cfg.budget) {
            (Some(units), _) => Ok(self.plan_units(units)),
            (None, Some(budget)) => {
                let units = largest_fitting(budget, |n| self.plan_units(n).total_params)?;
                let mut plan = self.plan_units(units);
                plan.solved_from_budget = Some(budget);
                Ok(plan)
            }
            (None, None) => Err(BuildError::NoSize),
        }
    }

    /// Creates the parameters and layers; checks the real tensor counts against the plan.
    pub fn build(&self, plan: &ModelPlan, rng: &mut ChaCha8Rng) -> Result<Network, BuildError> {
        self.build_into(plan, rng, ParamStore::new())
    }

    /// [`ModelRecipe::build`] into `params`, which may hold fixed tensors given from a
    /// weights file ([`ParamStore::with_fixed`]): the layers then use those.
    pub fn build_into(&self, plan: &ModelPlan, rng: &mut ChaCha8Rng, params: ParamStore) -> Result<Network, BuildError> {
        let shape = self.shape(plan.units);
        let mut params = params;
        let plugin_error = |source| BuildError::Plugin { plugin: format!("neuron `{}`", self.neuron_name), source };
        let layers = self.neuron.build(&shape, self.connectivity.as_ref(), &mut params, rng).map_err(plugin_error)?;
        let last = layers.last().map(|l| l.units()).unwrap_or(self.data.input_width);
        let bound = 1.0 / (last as f64).sqrt();
        let output = |e| plugin_error(elmlab_core::error::PluginError::Param(e));
        params.insert_uniform("output.weight", &[self.data.classes, last], bound, rng).map_err(output)?;
        params.insert_uniform("output.bias", &[self.data.classes], bound, rng).map_err(output)?;
        let mut width = self.data.input_width;
        for layer in &layers {
            if layer.input_width() != width {
                return Err(BuildError::InputWidth { layer: layer.name().to_string(), reads: layer.input_width(), receives: width });
            }
            width = layer.units();
        }
        for layer in &plan.layers {
            let built = params.count(&format!("{}.", layer.name));
            if built != layer.params {
                return Err(BuildError::Count { neuron: self.neuron_name.clone(), layer: layer.name.clone(), closed_form: layer.params, built });
            }
        }
        Ok(Network { layers, params, classes: self.data.classes, input_width: self.data.input_width })
    }
}

fn output_plan(width: usize, classes: usize) -> LayerPlan {
    // the logits and their softmax per step
    LayerPlan { name: "output".into(), units: classes, k_e: width + 1, k_c: 0, params: classes * (width + 1), flops_per_step: (2 * classes * width + classes) as u64, activations_per_step: (2 * classes + width) as u64 }
}
