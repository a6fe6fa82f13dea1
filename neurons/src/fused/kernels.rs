//! Where the fused layers' CUDA kernels (`elmlab-cuda-kernels`) run: on the GPU in a CUDA
//! build, where they are always taken; in the tests of a CPU build, on the host shim
//! (the same kernels compiled as C++) when a test asks for it with [`on_host_kernels`],
//! so that the code around the kernels (inputs, outputs, gradients on the tape) is
//! checked whole against the reference layers without a GPU.

#[cfg(feature = "cuda")]
pub type KernelDevice = elmlab_cuda_kernels::gpu::Gpu;
#[cfg(all(test, not(feature = "cuda")))]
pub type KernelDevice = elmlab_cuda_kernels::shim::HostShim;

#[cfg(all(test, not(feature = "cuda")))]
thread_local! {
    static ON_HOST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the fused layers take the CUDA kernels here and now.
#[cfg(any(test, feature = "cuda"))]
pub fn selected() -> bool {
    #[cfg(all(test, not(feature = "cuda")))]
    return ON_HOST.with(|on| on.get());
    #[cfg(not(all(test, not(feature = "cuda"))))]
    cfg!(feature = "cuda")
}

/// Runs `f` with the fused layers on the host shim (this thread only).
#[cfg(all(test, not(feature = "cuda")))]
pub fn on_host_kernels<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ON_HOST.with(|on| on.set(false));
        }
    }
    ON_HOST.with(|on| on.set(true));
    let _reset = Reset;
    f()
}

/// Runs `f` with this thread's kernel device: the process's GPU (loaded once per thread:
/// the driver's module handles are kept per thread, as dfdx's device is), or a shim of an
/// odd grid (3 blocks of 7 threads, so that every strided loop is used).
#[cfg(any(test, feature = "cuda"))]
pub fn with_kernels<T>(f: impl FnOnce(&KernelDevice) -> Result<T, String>) -> Result<T, String> {
    #[cfg(feature = "cuda")]
    {
        use std::cell::OnceCell;
        thread_local! {
            static GPU: OnceCell<Result<KernelDevice, String>> = const { OnceCell::new() };
        }
        GPU.with(|cell| match cell.get_or_init(|| KernelDevice::new(elmlab_core::tensor::cuda_ordinal()).map_err(|e| e.to_string())) {
            Ok(gpu) => f(gpu),
            Err(e) => Err(e.clone()),
        })
    }
    #[cfg(not(feature = "cuda"))]
    f(&KernelDevice { grid: 3, block: 7 })
}

/// A kernel failure inside a backward op, in dfdx's error type (which has no room for
/// words: they are logged here).
#[cfg(any(test, feature = "cuda"))]
pub fn backward_failed(layer: &str, e: String) -> elmlab_host_ops::tape::DevError {
    tracing::error!("the {layer} layer's CUDA backward failed: {e}");
    #[cfg(feature = "cuda")]
    return elmlab_core::dfdx::tensor::CudaError::Driver(cudarc::driver::DriverError(cudarc::driver::sys::CUresult::CUDA_ERROR_UNKNOWN));
    #[cfg(not(feature = "cuda"))]
    elmlab_core::dfdx::tensor::CpuError::WrongNumElements
}
