//! What the fused whole-sequence CPU layers share: forward and backward through time are
//! written by hand (the ELM kernel in `elm::kernel`, the LSTM's in `gated::lstm_kernel`,
//! generic over `f32`/`f64` so that they can be checked in double precision) and attached
//! to dfdx's tape as one backward operation (`tape`); `inputs` what they read (tensors,
//! or the data itself for a network's first layer); `real` is their scalar type, `team`
//! the threads of a time loop, `slots` where a step lies in a per-step buffer, `cpu` (the
//! host ops') the vector instructions they may use, `kernels` where the CUDA kernels run
//! instead (the GPU; the host shim in tests), `timing` the time each layer's passes took;
//! `prefetch` asks for memory ahead of use. The op-by-op layers stay the reference these
//! must equal.

pub(crate) use elmlab_host_ops::cpu;
pub(crate) mod inputs;
pub(crate) mod kernels;
mod real;
pub(crate) mod slots;
pub mod tape;
pub(crate) mod team;
pub mod timing;
#[cfg(test)]
mod tests;

pub use real::Real;

/// Asks the CPU to bring `bytes` bytes from address `at` into its second-level cache ahead
/// of use: a hint, with no effect on any number (a prefetch never faults, whatever the
/// address).
#[inline]
pub(crate) fn prefetch(at: usize, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    for offset in (0..bytes).step_by(64) {
        // SAFETY: a prefetch reads nothing the program sees and never faults
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>((at + offset) as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, bytes);
}

/// [`prefetch`] of a slice's bytes.
#[inline]
pub(crate) fn prefetch_slice<T>(data: &[T]) {
    prefetch(data.as_ptr() as usize, std::mem::size_of_val(data));
}
