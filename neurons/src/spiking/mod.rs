//! Spiking baselines trained with surrogate gradients: `lif` (current-based leaky
//! integrate-and-fire, snnTorch's `Synaptic` convention) and `alif` (with an adaptive
//! threshold), read out by leaky integrators or the output map. docs/neurons.md.

mod lif;
mod model;
mod readout;
mod settings;
mod surrogate;
#[cfg(test)]
mod tests;

pub use lif::{Adaptation, Decay, LifCell};
pub use model::SpikingModel;
pub use readout::LeakyReadout;
pub use settings::{AlifSettings, LifSettings, Readout, SpikingSettings};
pub use surrogate::{spike, Surrogate};
