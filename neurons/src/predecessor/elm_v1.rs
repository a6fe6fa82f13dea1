//! `elm_v1`: the ELM neuron of Spieler et al. (ICLR 2024), a trace per synapse and the
//! `λ(1 − κ_m)` update.

use super::settings::PredecessorSettings;
use super::trace::Trace;
use elmlab_core::cell::CellModel;
use elmlab_core::error::PluginError;
use elmlab_core::neuron::NeuronModel;
use elmlab_core::registry::{NeuronEntry, NeuronPlugin};
use elmlab_core::settings::Settings;

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct ElmV1Settings {
    #[setting(flatten)]
    pub common: PredecessorSettings,
    /// τ_s of the synaptic traces in steps (fixed)
    #[setting(default = 5.0, above = 0.0)]
    pub tau_s: f64,
}

impl NeuronPlugin for ElmV1Settings {
    const NAME: &'static str = "elm_v1";
    const DOC: &'static str = "the first ELM neuron (Spieler et al. 2024): synaptic traces, a ReLU MLP, λ(1−κ_m) memory update, linear output";
    fn build(self) -> Result<Box<dyn NeuronModel>, PluginError> {
        Ok(Box::new(CellModel::new(self.common.cell(Trace::Synapse { tau_s: self.tau_s })?)))
    }
}

elmlab_core::inventory::submit! { NeuronEntry::of::<ElmV1Settings>() }
