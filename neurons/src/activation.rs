//! The output non-linearity of a point or ELM neuron.

use elmlab_core::settings::Choice;

/// g, a neuron's output non-linearity.
#[derive(Choice, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Identity,
}
