//! The tensor types every plugin uses, and the build's one device type: the CPU, or with
//! the cargo feature `cuda` an NVIDIA GPU (dfdx's `Cuda`). This file is the only place
//! that switches on that feature; code that works on raw CPU buffers must be gated with
//! `#[cfg(not(feature = "cuda"))]` (dfdx 0.13 has one device type per build).

use crate::device::DeviceChoice;
use crate::error::DeviceError;
use dfdx::prelude::*;

#[cfg(not(feature = "cuda"))]
pub type Dev = Cpu;
#[cfg(feature = "cuda")]
pub type Dev = Cuda;
/// The gradient tape of one forward pass.
pub type Tape = OwnedTape<f32, Dev>;
/// A matrix without a tape (parameters, inputs, detached state).
pub type Matrix = Tensor<(usize, usize), f32, Dev>;
/// A matrix that records its history on a tape.
pub type Traced = Tensor<(usize, usize), f32, Dev, Tape>;
/// A traced scalar (losses, penalties).
pub type TracedScalar = Tensor<(), f32, Dev, Tape>;

/// Whether this build computes on CUDA devices (and only on them).
pub const CUDA_BUILD: bool = cfg!(feature = "cuda");

/// The device every tensor is made on.
pub fn device() -> Dev {
    backend::device()
}

/// The index of the process's GPU, for code that drives it directly (the CUDA kernels).
#[cfg(feature = "cuda")]
pub fn cuda_ordinal() -> usize {
    backend::cuda_ordinal()
}

/// Checks that this build can compute on `choice` and, for a GPU, starts it, so that a
/// wrong device is refused before anything runs. Call it before building a model.
pub fn select_device(choice: DeviceChoice) -> Result<(), DeviceError> {
    backend::select(choice)
}

#[cfg(not(feature = "cuda"))]
mod backend {
    use super::*;

    pub fn device() -> Dev {
        Cpu::default()
    }

    pub fn select(choice: DeviceChoice) -> Result<(), DeviceError> {
        match choice {
            DeviceChoice::Cpu => Ok(()),
            DeviceChoice::Cuda(_) => Err(DeviceError::NeedsCudaBuild { requested: choice.to_string() }),
        }
    }
}

#[cfg(feature = "cuda")]
mod backend {
    use super::*;
    use std::cell::OnceCell;
    use std::sync::OnceLock;

    /// The GPU of this process, chosen once.
    static ORDINAL: OnceLock<usize> = OnceLock::new();

    thread_local! {
        // dfdx's `Cuda` is not `Send` (it holds a raw CUDA stream): one per thread, all
        // on the process's GPU. Starting one costs a context and cuBLAS handle, so it is
        // made once and cloned (a clone shares everything).
        static DEVICE: OnceCell<Cuda> = const { OnceCell::new() };
    }

    fn start(ordinal: usize) -> Result<Cuda, DeviceError> {
        let unavailable = |reason: String| DeviceError::Unavailable { requested: DeviceChoice::Cuda(ordinal).to_string(), reason };
        // cudarc panics when the driver cannot start or the GPU does not exist: ask first.
        use cudarc::driver::result as driver;
        driver::init().map_err(|e| unavailable(format!("the CUDA driver does not start ({:?})", e.0)))?;
        let count = driver::device::get_count().map_err(|e| unavailable(format!("cannot count GPUs ({:?})", e.0)))?;
        if ordinal >= count.max(0) as usize {
            return Err(unavailable(format!("this machine shows {count} GPU(s)")));
        }
        // The seed only feeds dfdx's own sampling, which elmlab never uses (every random
        // draw comes from `rng::stream`).
        Cuda::try_build(ordinal, 0).map_err(|e| unavailable(describe(&e)))
    }

    /// The error's code by name. cudarc's own `Display` asks the driver for a text and
    /// panics when that fails too (as it does without a working driver).
    fn describe(e: &CudaError) -> String {
        match e {
            CudaError::Driver(d) => format!("CUDA driver error {:?}", d.0),
            CudaError::Blas(b) => format!("cuBLAS error {:?}", b.0),
            CudaError::Cpu(c) => c.to_string(),
        }
    }

    pub fn device() -> Dev {
        DEVICE.with(|cell| {
            cell.get_or_init(|| {
                let ordinal = *ORDINAL.get_or_init(|| 0);
                // Reached only when nothing called `select_device` first (library use).
                start(ordinal).unwrap_or_else(|e| panic!("{e}"))
            })
            .clone()
        })
    }

    /// The index of the process's GPU (0 unless `select_device` chose another).
    pub fn cuda_ordinal() -> usize {
        *ORDINAL.get_or_init(|| 0)
    }

    pub fn select(choice: DeviceChoice) -> Result<(), DeviceError> {
        let DeviceChoice::Cuda(wanted) = choice else {
            return Err(DeviceError::CudaBuildOnly { requested: choice.to_string() });
        };
        let current = *ORDINAL.get_or_init(|| wanted);
        if current != wanted {
            return Err(DeviceError::AlreadySelected { current: DeviceChoice::Cuda(current).to_string(), requested: choice.to_string() });
        }
        DEVICE.with(|cell| {
            if cell.get().is_none() {
                let dev = start(wanted)?;
                let _ = cell.set(dev);
            }
            Ok(())
        })
    }
}

/// A matrix from row-major values; the caller guarantees `values.len() == rows*cols`.
pub fn matrix(dev: &Dev, values: Vec<f32>, rows: usize, cols: usize) -> Matrix {
    debug_assert_eq!(values.len(), rows * cols);
    dev.tensor_from_vec(values, (rows, cols))
}

/// The values of `t` in row-major order. dfdx's `as_vec` walks the elements one strided
/// index at a time (~1 ns each); a tensor laid out row-major already (what every op and
/// [`matrix`] make) is copied here in one `memcpy`, and any other is made so first.
pub fn values<S: Shape, T>(t: &Tensor<S, f32, Dev, T>) -> Vec<f32> {
    let mut out = vec![0.0; t.shape().num_elements()];
    values_into(t, &mut out);
    out
}

/// [`values`] into a buffer of exactly the tensor's size.
pub fn values_into<S: Shape, T>(t: &Tensor<S, f32, Dev, T>, out: &mut [f32]) {
    t.retaped::<NoneTape>().contiguous().copy_into(out);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `values` reads what `as_vec` reads (row-major, element by element) for tensors
    /// that are not laid out row-major: a permuted view and a broadcast.
    #[test]
    fn values_reads_any_layout_row_major() {
        let dev = device();
        let m = matrix(&dev, (0..6).map(|v| v as f32).collect(), 2, 3);
        assert_eq!(values(&m), m.as_vec());
        let permuted: Tensor<(usize, usize), f32, Dev> = m.clone().permute::<_, Axes2<1, 0>>();
        assert_eq!(values(&permuted), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let row = dev.tensor_from_vec(vec![1.0f32, 2.0, 3.0], (3,));
        let broadcast: Tensor<(usize, usize), f32, Dev> = row.broadcast_like::<_, Axis<0>>(&(2, 3));
        assert_eq!(values(&broadcast), vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    }
}
