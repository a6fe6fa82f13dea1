//! What a fused layer reads: the outputs of the layer before (traced tensors, whose
//! histories join the layer's and which get gradients), or, as the network's first
//! layer, the data itself, read step by step straight into the kernel's buffers.

use super::tape::detach;
use elmlab_core::dfdx::prelude::HasShape;
use elmlab_core::error::LayerError;
use elmlab_core::neuron::{LayerState, StepInputs};
use elmlab_core::tensor::{values_into, Matrix, Tape, Traced};

pub enum LayerInputs<'a> {
    Traced(Vec<Traced>),
    Data(&'a dyn StepInputs),
}

impl<'a> LayerInputs<'a> {
    pub fn steps(&self) -> usize {
        match self {
            LayerInputs::Traced(xs) => xs.len(),
            LayerInputs::Data(d) => d.steps(),
        }
    }
    pub fn batch(&self) -> usize {
        match self {
            LayerInputs::Traced(xs) => xs.first().map(|x| x.shape().1).unwrap_or(0),
            LayerInputs::Data(d) => d.batch(),
        }
    }
    /// Refuses inputs of another width than the layer's, or of changing batch size (which
    /// would otherwise fail inside a copy).
    pub fn check(&self, layer: &str, width: usize) -> Result<(), LayerError> {
        let batch = self.batch();
        let fits = match self {
            LayerInputs::Traced(xs) => xs.iter().all(|x| *x.shape() == (width, batch)),
            LayerInputs::Data(d) => d.width() == width,
        };
        if fits {
            return Ok(());
        }
        Err(LayerError { layer: layer.into(), problem: format!("takes inputs of width {width} (and one batch size for every step); got other shapes") })
    }
    /// Every step as a tensor (for the op-by-op path).
    pub fn into_traced(self) -> Vec<Traced> {
        match self {
            LayerInputs::Traced(xs) => xs,
            LayerInputs::Data(d) => d.traced(),
        }
    }
    /// The inputs and `state` as plain values, and the merged history of those that had one.
    pub fn detach(self, state: LayerState) -> (Sources<'a>, Vec<Matrix>, Tape) {
        match self {
            LayerInputs::Traced(xs) => {
                let d = detach(xs, state);
                (Sources::Tensors(d.inputs), d.state, d.tape)
            }
            LayerInputs::Data(data) => {
                let d = detach(Vec::new(), state);
                (Sources::Data(data), d.state, d.tape)
            }
        }
    }
}

/// Detached inputs.
pub enum Sources<'a> {
    Tensors(Vec<Matrix>),
    Data(&'a dyn StepInputs),
}

impl Sources<'_> {
    /// Writes step `t` (`[width, batch]`, every value) into `out`.
    pub fn fill(&self, t: usize, out: &mut [f32]) {
        match self {
            Sources::Tensors(xs) => values_into(&xs[t], out),
            Sources::Data(d) => d.fill(t, out),
        }
    }
    /// The tensors that get the inputs' gradients (none for data).
    pub fn into_tensors(self) -> Vec<Matrix> {
        match self {
            Sources::Tensors(xs) => xs,
            Sources::Data(_) => Vec::new(),
        }
    }
}
