//! The tensor types every plugin uses. One device type for the whole build: the CPU
//! today; a `cuda` build will switch it (issue: CUDA backend).

use dfdx::prelude::*;

pub type Dev = Cpu;
/// The gradient tape of one forward pass.
pub type Tape = OwnedTape<f32, Dev>;
/// A matrix without a tape (parameters, inputs, detached state).
pub type Matrix = Tensor<(usize, usize), f32, Dev>;
/// A matrix that records its history on a tape.
pub type Traced = Tensor<(usize, usize), f32, Dev, Tape>;
/// A traced scalar (losses, penalties).
pub type TracedScalar = Tensor<(), f32, Dev, Tape>;

pub fn device() -> Dev {
    Dev::default()
}

/// A matrix from row-major values; the caller guarantees `values.len() == rows*cols`.
pub fn matrix(dev: &Dev, values: Vec<f32>, rows: usize, cols: usize) -> Matrix {
    debug_assert_eq!(values.len(), rows * cols);
    dev.tensor_from_vec(values, (rows, cols))
}

/// Starts tracing a detached value on a fresh (empty) tape.
pub fn trace(m: &Matrix) -> Traced {
    m.retaped::<Tape>()
}

/// Splits a traced value used twice: the returned pair shares one history, which
/// stays on the first element; the second carries an empty tape. Whatever holds the
/// first must reach the loss (or have its tape merged into it), or gradients are lost.
pub fn fork<S: Shape>(t: Tensor<S, f32, Dev, Tape>) -> (Tensor<S, f32, Dev, Tape>, Tensor<S, f32, Dev, Tape>) {
    let (data, tape) = t.split_tape();
    let second = data.retaped::<Tape>();
    (data.put_tape(tape), second)
}

/// Moves the history held by `from` into `into` (any shapes), so that it reaches the
/// loss wherever `into` goes; `from`'s value is dropped.
pub fn absorb<S: Shape, R: Shape>(into: Tensor<S, f32, Dev, Tape>, from: Tensor<R, f32, Dev, Tape>) -> Tensor<S, f32, Dev, Tape> {
    let (value, tape) = into.split_tape();
    let (_, other) = from.split_tape();
    value.put_tape(tape.merge(other))
}
