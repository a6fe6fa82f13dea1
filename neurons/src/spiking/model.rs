//! A spiking network as a neuron model: the spiking layer, then (optionally) the
//! leaky-integrator readout of `C` units.

use super::lif::LifCell;
use super::readout::LeakyReadout;
use elmlab_core::cell::{cell_layer, cell_plan, CellShape};
use elmlab_core::connectivity::Connectivity;
use elmlab_core::error::PluginError;
use elmlab_core::neuron::{LayerPlan, NetworkShape, NeuronModel, RecurrentLayer};
use elmlab_core::params::ParamStore;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

pub struct SpikingModel {
    pub hidden: Arc<LifCell>,
    pub readout: Option<Arc<LeakyReadout>>,
}

impl SpikingModel {
    fn shapes(&self, shape: &NetworkShape) -> (CellShape, CellShape) {
        let hidden = CellShape { units: shape.units, input_width: shape.input_width, fan_in: shape.fan_in.unwrap_or(self.hidden.synapses) };
        (hidden, CellShape { units: shape.classes, input_width: shape.units, fan_in: 0 })
    }
}

impl NeuronModel for SpikingModel {
    fn requested_fan_in(&self) -> Option<usize> {
        Some(self.hidden.synapses)
    }

    fn plan(&self, shape: &NetworkShape) -> Vec<LayerPlan> {
        let (hidden, readout) = self.shapes(shape);
        let mut plans = vec![cell_plan(self.hidden.as_ref(), &hidden)];
        plans.extend(self.readout.as_ref().map(|r| cell_plan(r.as_ref(), &readout)));
        plans
    }

    fn build(&self, shape: &NetworkShape, wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Vec<Box<dyn RecurrentLayer>>, PluginError> {
        let (hidden, readout) = self.shapes(shape);
        let mut layers = vec![cell_layer(self.hidden.clone(), hidden, wiring, store, rng)?];
        if let Some(r) = &self.readout {
            layers.push(cell_layer(r.clone(), readout, wiring, store, rng)?);
        }
        Ok(layers)
    }
}
