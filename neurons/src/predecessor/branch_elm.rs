//! `branch_elm`: the predecessor's second ELM neuron, a trace per branch and the
//! `1 − κ_λ` update.

use super::settings::PredecessorSettings;
use super::trace::Trace;
use elmlab_core::cell::CellModel;
use elmlab_core::error::PluginError;
use elmlab_core::neuron::NeuronModel;
use elmlab_core::registry::{NeuronEntry, NeuronPlugin};
use elmlab_core::settings::Settings;

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct BranchElmSettings {
    #[setting(flatten)]
    pub common: PredecessorSettings,
    /// τ_b of the branch traces in steps (fixed)
    #[setting(default = 5.0, above = 0.0)]
    pub tau_b: f64,
}

impl NeuronPlugin for BranchElmSettings {
    const NAME: &'static str = "branch_elm";
    const DOC: &'static str = "the branch ELM neuron (the predecessor's v2): branch traces, an MLP, (1−κ_λ) memory update, linear output";
    fn build(self) -> Result<Box<dyn NeuronModel>, PluginError> {
        Ok(Box::new(CellModel::new(self.common.cell(Trace::Branch { tau_b: self.tau_b })?)))
    }
}

elmlab_core::inventory::submit! { NeuronEntry::of::<BranchElmSettings>() }
