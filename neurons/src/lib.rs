//! Neuron models, each registered as a plugin.

pub mod elm;
pub mod fused;
pub mod gated;
pub mod linear;
mod wiring;

#[cfg(test)]
mod carry_tests;
#[cfg(test)]
mod test_wiring;
