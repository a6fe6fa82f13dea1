//! What the fused whole-sequence CPU layers share: forward and backward through time are
//! written by hand (the ELM kernel in `elm::kernel`, the LSTM's in `gated::lstm_kernel`,
//! generic over `f32`/`f64` so that they can be checked in double precision) and attached
//! to dfdx's tape as one backward operation (`tape`); `inputs` what they read (tensors,
//! or the data itself for a network's first layer); `real` is their scalar type, `team`
//! the threads of a time loop, `slots` where a step lies in a per-step buffer, `cpu` (the
//! host ops') the vector instructions they may use, `kernels` where the CUDA kernels run
//! instead (the GPU; the host shim in tests), `timing` the time each layer's passes took.
//! The op-by-op layers stay the reference these must equal.

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
