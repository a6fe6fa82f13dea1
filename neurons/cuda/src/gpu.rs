//! The kernels on an NVIDIA GPU: the PTX built with the binary (build.rs), loaded through
//! the CUDA driver, each pass one cooperative launch (every block resident, which the
//! kernels' grid barrier needs) on the default stream that dfdx's work runs on too.

use crate::args::LaunchArgs;
use crate::driver::{Element, Kernel, Memory};
use crate::KernelError;
use cudarc::driver::{sys, CudaDevice, CudaSlice, DevicePtr, DeviceSlice, DriverError};
use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The kernels' PTX per module, compiled by build.rs (empty in a type-check build).
pub const PTX: [(&str, &str); 2] = [("elm", include_str!(concat!(env!("OUT_DIR"), "/elm.ptx"))), ("lstm", include_str!(concat!(env!("OUT_DIR"), "/lstm.ptx")))];
/// The compute capability the PTX targets, as CUDA_COMPUTE_CAP gave it (`90` = sm_90).
pub const COMPUTE_CAP: &str = env!("ELMLAB_PTX_COMPUTE_CAP");
/// Threads per block. Small blocks spread one step's few hundred items over many SMs.
const BLOCK: u32 = 64;

/// Seconds spent in each kernel since the start, counted when `ELMLAB_CUDA_TIMING` is set
/// (each launch then waits for its end, which the normal run does not).
static SPENT: Mutex<[(f64, u64); 4]> = Mutex::new([(0.0, 0); 4]);

/// `(kernel name, seconds, launches)` so far (zeros unless `ELMLAB_CUDA_TIMING` is set).
pub fn time_spent() -> Vec<(&'static str, f64, u64)> {
    let spent = SPENT.lock().map(|s| *s).unwrap_or_default();
    Kernel::ALL.iter().zip(spent).map(|(k, (s, n))| (k.name().0, s, n)).collect()
}

/// The GPU memory in use on the current context's device (everything allocated, by this
/// process and any other), bytes; `None` without a current context.
pub fn device_memory_in_use() -> Option<u64> {
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: two out-parameters; the call fails cleanly without a current context.
    unsafe { sys::cuMemGetInfo_v2(&mut free, &mut total) }.result().ok()?;
    Some((total - free) as u64)
}

pub struct Gpu {
    dev: Arc<CudaDevice>,
    /// Per kernel, in the order of [`Kernel::ALL`].
    functions: [sys::CUfunction; 4],
    /// The most blocks of [`BLOCK`] threads that can be resident at once, per kernel.
    resident: [u32; 4],
    sms: u32,
    timing: bool,
}

fn driver(what: &str) -> impl Fn(DriverError) -> KernelError + '_ {
    move |e| KernelError::Driver(format!("{what}: {:?}", e.0))
}

impl Gpu {
    /// Loads the kernels on GPU `ordinal`; refuses a GPU the PTX cannot run on.
    pub fn new(ordinal: usize) -> Result<Self, KernelError> {
        if PTX.iter().any(|(_, ptx)| ptx.is_empty()) {
            return Err(KernelError::Unsupported("this binary holds no kernel PTX (nvcc was not found when it was built): build it with scripts/build-cuda.sh".into()));
        }
        let dev = CudaDevice::new(ordinal).map_err(driver("starting the GPU"))?;
        let attr = |a| dev.attribute(a).map_err(driver("reading the GPU's attributes"));
        let (major, minor) = (attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?, attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?);
        let built: i32 = COMPUTE_CAP.parse().unwrap_or(0);
        if major * 10 + minor < built {
            return Err(KernelError::Unsupported(format!(
                "the kernels were built for compute capability {}.{} (sm_{built}) and this GPU has {major}.{minor}: rebuild with CUDA_COMPUTE_CAP={major}{minor} scripts/build-cuda.sh",
                built / 10,
                built % 10
            )));
        }
        if attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH)? == 0 {
            return Err(KernelError::Unsupported(format!("GPU {ordinal} has no cooperative launches, which the kernels' time loop needs")));
        }
        let sms = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
        dev.bind_to_thread().map_err(driver("binding the GPU's context"))?;
        let mut modules = Vec::new();
        for (name, ptx) in PTX {
            let source = CString::new(ptx).map_err(|_| KernelError::Launch(format!("the {name} PTX holds a NUL byte")))?;
            let mut module = std::ptr::null_mut();
            // SAFETY: the context is current (bound above); `source` is a NUL-terminated PTX text.
            unsafe { sys::cuModuleLoadData(&mut module, source.as_ptr() as *const c_void) }.result().map_err(driver("loading the kernels' PTX (a driver older than the nvcc that built it refuses it)"))?;
            modules.push((name, module));
        }
        let mut functions = [std::ptr::null_mut(); 4];
        let mut resident = [0u32; 4];
        for ((f, r), kernel) in functions.iter_mut().zip(resident.iter_mut()).zip(Kernel::ALL) {
            let (name, module) = kernel.name();
            let module = modules.iter().find(|(m, _)| *m == module).expect("every kernel's module is loaded").1;
            let c = CString::new(name).expect("a kernel name");
            // SAFETY: `module` was loaded above and is never unloaded (it lives as long as the process).
            unsafe { sys::cuModuleGetFunction(f, module, c.as_ptr()) }.result().map_err(driver("finding a kernel"))?;
            let mut per_sm = 0i32;
            // SAFETY: a loaded function, a plain block size, no dynamic shared memory.
            unsafe { sys::cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut per_sm, *f, BLOCK as i32, 0) }.result().map_err(driver("asking the kernels' occupancy"))?;
            if per_sm < 1 {
                return Err(KernelError::Unsupported(format!("a block of {BLOCK} threads of {name} does not fit on an SM of this GPU (registers)")));
            }
            *r = per_sm as u32 * sms;
        }
        Ok(Gpu { dev, functions, resident, sms, timing: std::env::var_os("ELMLAB_CUDA_TIMING").is_some() })
    }
}

impl Memory for Gpu {
    type Buf<T: Element> = CudaSlice<T>;

    fn upload<T: Element>(&self, values: &[T]) -> Result<CudaSlice<T>, KernelError> {
        if values.is_empty() {
            return self.zeros(1);
        }
        self.dev.htod_sync_copy(values).map_err(driver("copying to the GPU"))
    }

    fn zeros<T: Element>(&self, len: usize) -> Result<CudaSlice<T>, KernelError> {
        self.dev.alloc_zeros(len.max(1)).map_err(driver("allocating GPU memory"))
    }

    fn download<T: Element>(&self, buf: &CudaSlice<T>) -> Result<Vec<T>, KernelError> {
        self.dev.dtoh_sync_copy(buf).map_err(driver("copying from the GPU"))
    }

    fn download_range<T: Element>(&self, buf: &CudaSlice<T>, range: std::ops::Range<usize>) -> Result<Vec<T>, KernelError> {
        let part = buf.try_slice(range.clone()).ok_or_else(|| KernelError::Shape(format!("elements {range:?} of a buffer of {}", buf.len())))?;
        let mut out = vec![T::default(); range.len()];
        self.dev.dtoh_sync_copy_into(&part, &mut out).map_err(driver("copying from the GPU"))?;
        Ok(out)
    }

    fn address<T: Element>(&self, buf: &CudaSlice<T>) -> u64 {
        *buf.device_ptr()
    }

    fn launch<A: LaunchArgs>(&self, kernel: Kernel, args: &A, work: usize) -> Result<(), KernelError> {
        if !kernel.takes::<A>() {
            return Err(KernelError::Launch(format!("{kernel:?} launched with another kernel's argument")));
        }
        let k = kernel as usize;
        let f = self.functions[k];
        // one block per SM at most: the phases have few items each, and the grid barrier
        // costs more the more blocks arrive at it
        let grid = (work.div_ceil(BLOCK as usize) as u32).clamp(1, self.sms.min(self.resident[k]));
        let mut arg = *args;
        let mut params = [&mut arg as *mut A as *mut c_void];
        let started = Instant::now();
        self.dev.bind_to_thread().map_err(driver("binding the GPU's context"))?;
        // SAFETY: `arg` is the kernel's one parameter, laid out as it declares it; its
        // addresses are live buffers of this device sized by the driver for this shape;
        // `grid` blocks are resident at once (at most the occupancy allows), as the
        // cooperative launch checks.
        unsafe { sys::cuLaunchCooperativeKernel(f, grid, 1, 1, BLOCK, 1, 1, 0, *self.dev.cu_stream(), params.as_mut_ptr()) }.result().map_err(driver("launching a kernel"))?;
        if self.timing {
            self.dev.synchronize().map_err(driver("waiting for a kernel"))?;
            if let Ok(mut s) = SPENT.lock() {
                s[k].0 += started.elapsed().as_secs_f64();
                s[k].1 += 1;
            }
        }
        Ok(())
    }
}
