//! Attaching a fused layer to dfdx's tape with public calls only: the traced inputs and
//! state give up their tapes (merged into one), the layer computes on plain values, and
//! one backward operation, added to the merged tape, reads the gradients that reached
//! the layer's results and adds the gradients of its inputs, state and parameters.
//! The backward op runs after every op that consumed the results: dfdx runs ops in
//! reverse order of creation, and consumers are created later.

use elmlab_kernel::dfdx::prelude::*;
use elmlab_kernel::neuron::{LayerState, SequenceOutput};
use elmlab_kernel::tensor::{Dev, Matrix, Tape, Traced};

pub type Grads = elmlab_kernel::dfdx::tensor::Gradients<f32, Dev>;
pub type DevError = <Dev as HasErr>::Err;
pub type GradResult = Result<(), DevError>;

/// A sequence's inputs and initial state as plain values, and their merged history.
pub struct Detached {
    pub inputs: Vec<Matrix>,
    pub state: Vec<Matrix>,
    pub tape: Tape,
}

pub fn detach(inputs: Vec<Traced>, state: LayerState) -> Detached {
    let mut tape = Tape::default();
    let mut plain = |t: Traced| {
        let (value, t_tape) = t.split_tape();
        tape = std::mem::take(&mut tape).merge(t_tape);
        value
    };
    let inputs: Vec<Matrix> = inputs.into_iter().map(&mut plain).collect();
    let state: Vec<Matrix> = state.into_iter().map(&mut plain).collect();
    Detached { inputs, state, tape }
}

/// The gradient that reached `t` (zeros if none did), as a vector.
#[cfg(not(feature = "cuda"))]
pub fn grad_of(grads: &mut Grads, t: &Matrix) -> Result<Vec<f32>, DevError> {
    Ok(grads.get_or_alloc_mut(t)?.to_vec())
}

/// Adds `values` to the gradient of `t`.
#[cfg(not(feature = "cuda"))]
pub fn add_grad(grads: &mut Grads, t: &Matrix, values: &[f32]) -> GradResult {
    let g = grads.get_or_alloc_mut(t)?;
    debug_assert_eq!(g.len(), values.len());
    g.iter_mut().zip(values).for_each(|(g, v)| *g += v);
    Ok(())
}

// The fused layers read and write CPU buffers; a CUDA build never takes them
// (`Path::fused_for` is false there), and dfdx keeps CUDA buffers private.
#[cfg(feature = "cuda")]
pub fn grad_of(_: &mut Grads, _: &Matrix) -> Result<Vec<f32>, DevError> {
    unreachable!("the fused CPU layers are not used in a CUDA build")
}

#[cfg(feature = "cuda")]
pub fn add_grad(_: &mut Grads, _: &Matrix, _: &[f32]) -> GradResult {
    unreachable!("the fused CPU layers are not used in a CUDA build")
}

/// The layer's results: outputs on fresh tapes, the merged history (with the backward op
/// already added) on the first state matrix, as [`SequenceOutput`] requires.
pub fn finish(tape: Tape, outputs: &[Matrix], state: Vec<Matrix>) -> SequenceOutput {
    let outputs = outputs.iter().map(|o| o.retaped::<Tape>()).collect();
    assert!(!state.is_empty(), "a fused layer keeps its history on its state");
    let mut state = state.into_iter();
    let first = state.next().map(|s| s.put_tape(tape));
    let state = first.into_iter().chain(state.map(|s| s.retaped::<Tape>())).collect();
    SequenceOutput { outputs, state }
}
