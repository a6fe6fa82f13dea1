//! Attaching host computations to dfdx's tape, with public dfdx calls only: the
//! gradient that reached a result is read with [`grad_of`], the gradients of the inputs
//! are added with [`add_grad`]. The backward op runs after every op that consumed the
//! result: dfdx runs ops in reverse order of creation, and consumers are created later.

use elmlab_core::tensor::{Dev, Matrix, Tape, Traced};
use elmlab_core::dfdx::prelude::*;

pub type Grads = elmlab_core::dfdx::tensor::Gradients<f32, Dev>;
pub type DevError = <Dev as HasErr>::Err;
pub type GradResult = Result<(), DevError>;

/// Whether host operations are available: they read and write CPU buffers.
pub const AVAILABLE: bool = !cfg!(feature = "cuda");

/// The gradient that reached `t` (zeros if none did), as a vector.
#[cfg(not(feature = "cuda"))]
pub fn grad_of<S: Shape>(grads: &mut Grads, t: &Tensor<S, f32, Dev>) -> Result<Vec<f32>, DevError> {
    Ok(grads.get_or_alloc_mut(t)?.to_vec())
}

/// Adds `values` to the gradient of `t`.
#[cfg(not(feature = "cuda"))]
pub fn add_grad<S: Shape>(grads: &mut Grads, t: &Tensor<S, f32, Dev>, values: &[f32]) -> GradResult {
    let g = grads.get_or_alloc_mut(t)?;
    debug_assert_eq!(g.len(), values.len());
    g.iter_mut().zip(values).for_each(|(g, v)| *g += v);
    Ok(())
}

#[cfg(feature = "cuda")]
pub fn grad_of<S: Shape>(_: &mut Grads, _: &Tensor<S, f32, Dev>) -> Result<Vec<f32>, DevError> {
    unreachable!("host operations are not used in a CUDA build")
}

#[cfg(feature = "cuda")]
pub fn add_grad<S: Shape>(_: &mut Grads, _: &Tensor<S, f32, Dev>, _: &[f32]) -> GradResult {
    unreachable!("host operations are not used in a CUDA build")
}

/// A traced input of a host operation as its value and its history. The value is made
/// row-major first (a copy op on the tape only where it is not): dfdx keeps a tensor's
/// gradient buffer in the tensor's own layout, and [`add_grad`] adds row-major values.
pub fn take_input(t: Traced) -> (Matrix, Tape) {
    t.contiguous().split_tape()
}

