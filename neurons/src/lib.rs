//! Neuron models, each registered as a plugin.

pub mod linear;
mod wiring;
