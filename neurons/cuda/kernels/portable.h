// What lets one kernel source compile both for a GPU (nvcc) and as host C++ (the CPU shim
// the tests run). A kernel is written as phases: `PHASE { ... }` runs its body once per
// thread of the grid, `GRID_SYNC(p)` ends a phase (every thread of the grid has finished
// it before any thread starts the next). On the GPU a phase is straight-line code and the
// barrier a real one; in the shim a phase is a loop over every block and thread, so the
// barrier is the loop's end. Nothing a thread computes may cross a barrier except
// through memory (global or shared), which is what makes the two the same program.
#pragma once

#ifdef __CUDACC__

#define KERNEL extern "C" __global__ void
#define DEV __device__ __forceinline__
#define PHASE
// Written in this launch by another thread: read from L2 (an SM's L1 is not coherent).
#define SHARED_LOAD(x) __ldcg(&(x))
// Never written during the launch.
#define CONST_LOAD(x) __ldg(&(x))
#define GRID_SYNC(p) grid_barrier((p).barrier)
#define THREAD_ID ((long long)blockIdx.x * blockDim.x + threadIdx.x)
#define THREAD_COUNT ((long long)gridDim.x * blockDim.x)
// Unrolled by 4: the loads of four iterations in flight at once (the loops are latency-bound).
#define UNROLL4 _Pragma("unroll 4")

// A grid-wide barrier for a cooperative launch (every block resident): the last block to
// arrive resets the count and advances the generation the others wait on.
__device__ __forceinline__ void grid_barrier(unsigned *bar) {
    __syncthreads();
    if (threadIdx.x == 0) {
        // atomics read the generation at L2, never a stale L1 line
        unsigned seen = atomicAdd(bar + 1, 0u);
        __threadfence();
        if (atomicAdd(bar, 1u) == gridDim.x - 1) {
            atomicExch(bar, 0u);
            __threadfence();
            atomicAdd(bar + 1, 1u);
        } else {
            while (atomicAdd(bar + 1, 0u) == seen) {
            }
        }
        __threadfence();
    }
    __syncthreads();
}

#else  // the host shim

#include <cmath>
struct ShimDim {
    unsigned x = 0, y = 1, z = 1;
};
// thread_local: tests run kernels on several threads at once.
static thread_local ShimDim blockIdx, threadIdx, blockDim, gridDim;
#define KERNEL static void
#define DEV static inline
#define PHASE                                                                           \
    for (blockIdx.x = 0; blockIdx.x < gridDim.x; ++blockIdx.x)                          \
        for (threadIdx.x = 0; threadIdx.x < blockDim.x; ++threadIdx.x)
#define SHARED_LOAD(x) (x)
#define CONST_LOAD(x) (x)
#define GRID_SYNC(p) ((void)0)
#define THREAD_ID ((long long)blockIdx.x * blockDim.x + threadIdx.x)
#define THREAD_COUNT ((long long)gridDim.x * blockDim.x)
#define UNROLL4
using std::fabs;
using std::tanh;
using std::exp;

#endif
