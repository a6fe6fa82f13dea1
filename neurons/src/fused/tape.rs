//! Attaching a fused layer to dfdx's tape as one host operation (`elmlab_host_ops::tape`):
//! the traced inputs and state give up their tapes (merged into one), the layer computes
//! on plain values, and one backward operation, added to the merged tape, reads the
//! gradients that reached the layer's results and adds the gradients of its inputs,
//! state and parameters. The merged tape becomes the sequence's history.

use elmlab_core::neuron::{LayerState, SequenceOutput};
use elmlab_core::tensor::{Matrix, Tape, Traced};
use elmlab_core::dfdx::prelude::*;
use elmlab_host_ops::take_input;

#[cfg(not(feature = "cuda"))]
pub use elmlab_host_ops::{add_grad, grad_of};
#[cfg(feature = "cuda")]
pub use gpu_grads::{add_grad, grad_of};

/// The same two calls on a GPU's gradient buffers, through host copies (the fused CUDA
/// layers compute on their own buffers; dfdx keeps its tensors' buffers private).
#[cfg(feature = "cuda")]
mod gpu_grads {
    use elmlab_core::dfdx::prelude::*;
    use elmlab_core::dfdx::tensor::CudaError;
    use elmlab_core::tensor::Dev;
    use elmlab_host_ops::tape::{DevError, GradResult, Grads};

    /// The gradient that reached `t` (zeros if none did), as a vector.
    pub fn grad_of<S: Shape>(grads: &mut Grads, t: &Tensor<S, f32, Dev>) -> Result<Vec<f32>, DevError> {
        let g = grads.get_or_alloc_mut(t)?;
        g.device().dtoh_sync_copy(&**g).map_err(CudaError::Driver)
    }

    /// Adds `values` to the gradient of `t`.
    pub fn add_grad<S: Shape>(grads: &mut Grads, t: &Tensor<S, f32, Dev>, values: &[f32]) -> GradResult {
        let g = grads.get_or_alloc_mut(t)?;
        let dev = g.device();
        let mut sum = dev.dtoh_sync_copy(&**g).map_err(CudaError::Driver)?;
        debug_assert_eq!(sum.len(), values.len());
        sum.iter_mut().zip(values).for_each(|(g, v)| *g += v);
        dev.htod_sync_copy_into(&sum, &mut **g).map_err(CudaError::Driver)
    }
}

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
    let state: Vec<Matrix> = state.into_parts().into_iter().map(&mut plain).collect();
    Detached { inputs, state, tape }
}

/// The layer's results: outputs and state as values, `tape` (with the backward op
/// already added) as their history.
pub fn finish(tape: Tape, outputs: &[Matrix], state: Vec<Matrix>) -> SequenceOutput {
    let outputs = outputs.iter().map(|o| o.retaped::<Tape>()).collect();
    SequenceOutput::per_step(outputs, fresh(state)).with_history(tape)
}

/// [`finish`] for a layer whose outputs are one step-major block `[steps·units, batch]`.
pub fn finish_stacked(tape: Tape, all: &Matrix, state: Vec<Matrix>) -> SequenceOutput {
    SequenceOutput::stacked(all.retaped::<Tape>(), fresh(state)).with_history(tape)
}

fn fresh(state: Vec<Matrix>) -> LayerState {
    LayerState::new(state.iter().map(|s| s.retaped::<Tape>()).collect())
}
