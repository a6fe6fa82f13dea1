//! The neuron-model contract: a configured model contributes one or more recurrent
//! layers to a network, declares their sizes in closed form, and builds them.

mod context;
mod data;
mod state;

pub use context::{ForwardContext, Recorder};
pub use data::{EncodedInputs, StepInputs};
pub use state::{check_state, step_by_step, History, LayerState, Outputs, SequenceOutput, StatePart, Step};

use crate::connectivity::Connectivity;
use crate::error::{LayerError, PluginError};
use crate::params::ParamStore;
use crate::tensor::{Matrix, Traced};
use rand_chacha::ChaCha8Rng;

/// What the network around the neuron model looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkShape {
    /// Hidden units `N`.
    pub units: usize,
    /// Width of the encoded input `D_in`.
    pub input_width: usize,
    /// Classes (or vocabulary) `C` of the task.
    pub classes: usize,
    /// Synapses per hidden unit after the connectivity pattern had its say (`k_c`);
    /// `None` for models with their own dense wiring (LSTM, GRU).
    pub fan_in: Option<usize>,
}

/// Closed-form accounting of one layer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LayerPlan {
    /// Layer name; also the prefix of its parameters (`hidden.w_s`).
    pub name: String,
    pub units: usize,
    /// Trainable parameters per unit besides the synapses (`k_e`).
    pub k_e: usize,
    /// Synapses per unit (`k_c`); 0 for densely wired models.
    pub k_c: usize,
    /// Trainable parameters of the whole layer: `units · (k_e + k_c)`.
    pub params: usize,
    /// Floating-point operations per time step for one sequence (multiply and add count 2).
    pub flops_per_step: u64,
    /// Values the layer keeps per time step and sequence for the backward pass (an
    /// estimate, for sizing memory before anything is allocated).
    pub activations_per_step: u64,
}

/// A neuron model configured from its settings, not yet sized.
pub trait NeuronModel: Send + Sync {
    /// Synapses per unit the model asks of the connectivity pattern, or `None` when the
    /// model wires itself densely and takes no connectivity pattern.
    fn requested_fan_in(&self) -> Option<usize>;
    /// The layers the model contributes for this shape, counted in closed form.
    fn plan(&self, shape: &NetworkShape) -> Vec<LayerPlan>;
    /// Creates the layers' parameters in `store` and returns the layers, in order.
    fn build(&self, shape: &NetworkShape, wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Vec<Box<dyn RecurrentLayer>>, PluginError>;
}

/// One recurrent layer of a built network. Not `Send`: dfdx's CUDA device (it holds a raw
/// CUDA stream) is not, and a network stays on the thread that built it.
///
/// Gradients: every tape a layer hands back goes into its sequence's [`History`], which
/// the network merges into the loss, so nothing a layer returns can lose its gradients.
/// A layer must still not drop, inside its own code, a tape whose values it uses
/// (dfdx's `split_tape`/`put_tape`); the conformance checks compare every gradient with
/// finite differences.
pub trait RecurrentLayer {
    fn name(&self) -> &str;
    fn units(&self) -> usize;
    fn input_width(&self) -> usize;
    /// The parts of the recurrent state, each a `[rows, batch]` matrix, in order.
    fn state_parts(&self) -> Vec<StatePart>;
    /// One time step: input `[input_width, batch]` and the state (one matrix per part) in,
    /// the output `[units, batch]` and the next state out. Either may carry any tapes.
    fn step(&self, params: &ParamStore, ctx: &mut ForwardContext, input: Traced, state: LayerState) -> Step;

    /// A whole sequence. The default runs [`RecurrentLayer::step`] ([`step_by_step`]); a
    /// fused path may override it and must then equal the step path.
    fn sequence(&self, params: &ParamStore, ctx: &mut ForwardContext, inputs: Vec<Traced>, state: LayerState) -> Result<SequenceOutput, LayerError> {
        step_by_step(self, params, ctx, inputs, state)
    }

    /// A whole sequence read from the data, as the network's first layer: its inputs need
    /// no gradients. The default makes every step a tensor and runs
    /// [`RecurrentLayer::sequence`]; a fused layer may read the steps into its own buffers
    /// and must then give the same numbers.
    fn sequence_from_data(&self, params: &ParamStore, ctx: &mut ForwardContext, inputs: &dyn StepInputs, state: LayerState) -> Result<SequenceOutput, LayerError> {
        self.sequence(params, ctx, inputs.traced(), state)
    }

    /// A zero state for `batch` sequences.
    fn zero_state(&self, batch: usize) -> Vec<Matrix> {
        let dev = crate::tensor::device();
        self.state_parts().into_iter().map(|part| crate::tensor::matrix(&dev, vec![0.0; part.rows * batch], part.rows, batch)).collect()
    }
}
