//! The checks every plugin should pass, as public test helpers: a plugin calls one
//! function in its tests and gets them all. They panic with a message that names what
//! broke, like `assert!`.
//!
//! - [`check_neuron`]: the closed-form plan equals the tensors the build creates, per
//!   layer and in total, at several sizes; `params = units·(k_e + k_c)`; the layers chain
//!   (each reads what the previous produces); the state has its declared parts; building
//!   is deterministic in the seed; a whole sequence ([`RecurrentLayer::sequence`], a
//!   fused path where there is one) equals the step loop; and every gradient (parameters
//!   and initial state, through penalties and dropout where the model has them) equals
//!   finite differences of the forward pass.
//! - [`check_task`]: training batches are valid and depend only on (seed, step);
//!   evaluation sets are valid and the same every time.
//! - [`check_connectivity`]: connectomes keep the contract and depend only on the seed.
//! - [`check_fields`]: declared settings are documented and their defaults are of their kind.
//!
//! The numerical references a plugin's own tests add (an f64 implementation, PyTorch
//! golden values) check what these cannot: that the math is the intended one.

mod connectivity;
mod fields;
mod gradients;
mod neuron;
mod task;

pub use connectivity::{check_connectivity, AnySource};
pub use fields::{check_entry_fields, check_fields};
pub use neuron::{check_neuron, NeuronCheck};
pub use task::check_task;

#[cfg(test)]
mod tests;
