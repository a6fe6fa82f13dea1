//! Attaching a fused layer to dfdx's tape as one host operation (`elmlab_kernel::host_op`):
//! the traced inputs and state give up their tapes (merged into one), the layer computes
//! on plain values, and one backward operation, added to the merged tape, reads the
//! gradients that reached the layer's results and adds the gradients of its inputs,
//! state and parameters.

use elmlab_kernel::dfdx::prelude::*;
use elmlab_kernel::neuron::{LayerState, SequenceOutput};
use elmlab_kernel::tensor::{Matrix, Tape, Traced};

pub use elmlab_kernel::host_op::{add_grad, grad_of};
use elmlab_kernel::host_op::take_input;

/// A sequence's inputs and initial state as plain values, and their merged history.
pub struct Detached {
    pub inputs: Vec<Matrix>,
    pub state: Vec<Matrix>,
    pub tape: Tape,
}

pub fn detach(inputs: Vec<Traced>, state: LayerState) -> Detached {
    let mut tape = Tape::default();
    let mut plain = |t: Traced| {
        let (value, t_tape) = take_input(t);
        tape = std::mem::take(&mut tape).merge(t_tape);
        value
    };
    let inputs: Vec<Matrix> = inputs.into_iter().map(&mut plain).collect();
    let state: Vec<Matrix> = state.into_iter().map(&mut plain).collect();
    Detached { inputs, state, tape }
}

/// The layer's results: outputs on fresh tapes, the merged history (with the backward op
/// already added) on the first state matrix, as [`SequenceOutput`] requires.
pub fn finish(tape: Tape, outputs: &[Matrix], state: Vec<Matrix>) -> SequenceOutput {
    let outputs = outputs.iter().map(|o| o.retaped::<Tape>()).collect();
    SequenceOutput::per_step(outputs, with_history(tape, state))
}

/// [`finish`] for a layer whose outputs are one step-major block `[steps·units, batch]`.
pub fn finish_stacked(tape: Tape, all: &Matrix, state: Vec<Matrix>) -> SequenceOutput {
    SequenceOutput::stacked(all.retaped::<Tape>(), with_history(tape, state))
}

fn with_history(tape: Tape, state: Vec<Matrix>) -> Vec<Traced> {
    assert!(!state.is_empty(), "a fused layer keeps its history on its state");
    let mut state = state.into_iter();
    let first = state.next().map(|s| s.put_tape(tape));
    first.into_iter().chain(state.map(|s| s.retaped::<Tape>())).collect()
}
