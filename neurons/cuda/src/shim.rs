//! The kernels compiled as host C++ (kernels/host.cpp): every phase a loop over the
//! grid's blocks and threads, run on the calling thread. The tests compare it with the
//! CPU kernels; its grid is set by hand so that odd sizes exercise the strided loops.

use crate::args::LaunchArgs;
use crate::driver::{Element, Kernel, Memory};
use std::ffi::c_void;
use crate::KernelError;
use std::cell::UnsafeCell;

extern "C" {
    fn elm_args_size() -> u64;
    fn lstm_args_size() -> u64;
    fn elm_forward_host(args: *const c_void, grid: u32, block: u32);
    fn elm_backward_host(args: *const c_void, grid: u32, block: u32);
    fn lstm_forward_host(args: *const c_void, grid: u32, block: u32);
    fn lstm_backward_host(args: *const c_void, grid: u32, block: u32);
}

/// The sizes of `ElmArgs` and `LstmArgs` as the C++ compiler laid them out (the Rust
/// mirrors must match).
pub fn args_sizes() -> [usize; 2] {
    // SAFETY: constants of the compiled kernels.
    unsafe { [elm_args_size() as usize, lstm_args_size() as usize] }
}

/// Host memory, and the grid each launch simulates.
pub struct HostShim {
    pub grid: u32,
    pub block: u32,
}

/// A host buffer the kernels write through its address.
pub struct HostBuf<T>(UnsafeCell<Vec<T>>);

impl Memory for HostShim {
    type Buf<T: Element> = HostBuf<T>;

    fn upload<T: Element>(&self, values: &[T]) -> Result<HostBuf<T>, KernelError> {
        Ok(HostBuf(UnsafeCell::new(values.to_vec())))
    }

    fn zeros<T: Element>(&self, len: usize) -> Result<HostBuf<T>, KernelError> {
        Ok(HostBuf(UnsafeCell::new(vec![T::default(); len])))
    }

    fn download<T: Element>(&self, buf: &HostBuf<T>) -> Result<Vec<T>, KernelError> {
        // SAFETY: no launch runs while the caller holds `&self` here (launches are calls
        // on this thread that return before it).
        Ok(unsafe { (*buf.0.get()).clone() })
    }

    fn download_range<T: Element>(&self, buf: &HostBuf<T>, range: std::ops::Range<usize>) -> Result<Vec<T>, KernelError> {
        // SAFETY: as in `download`.
        let v = unsafe { &*buf.0.get() };
        v.get(range.clone()).map(|s| s.to_vec()).ok_or_else(|| KernelError::Shape(format!("elements {range:?} of a buffer of {}", v.len())))
    }

    fn address<T: Element>(&self, buf: &HostBuf<T>) -> u64 {
        // SAFETY: only the address is taken; the vector is never resized after creation.
        unsafe { (*buf.0.get()).as_mut_ptr() as u64 }
    }

    fn launch<A: LaunchArgs>(&self, kernel: Kernel, args: &A, _work: usize) -> Result<(), KernelError> {
        if self.grid == 0 || self.block == 0 {
            return Err(KernelError::Launch("the shim's grid and block must be at least 1".into()));
        }
        if !kernel.takes::<A>() {
            return Err(KernelError::Launch(format!("{kernel:?} launched with another kernel's argument")));
        }
        let args = args as *const A as *const c_void;
        // SAFETY: `args` is the kernel's own argument type (checked above), naming buffers
        // of this memory sized by the driver for this shape.
        unsafe {
            match kernel {
                Kernel::ElmForward => elm_forward_host(args, self.grid, self.block),
                Kernel::ElmBackward => elm_backward_host(args, self.grid, self.block),
                Kernel::LstmForward => lstm_forward_host(args, self.grid, self.block),
                Kernel::LstmBackward => lstm_backward_host(args, self.grid, self.block),
            }
        }
        Ok(())
    }
}
