//! The ELM layer on the CUDA kernels (`elmlab-cuda-kernels`): the CPU kernel's parameters,
//! inputs and upstream gradients as those kernels take them, and their results back in
//! the CPU kernel's types, so that the fused op (`fused.rs`) and the tests treat both alike.

use super::kernel::{ElmExtras, ElmGrads, ElmKernel, ElmParams, ElmUpstream};
use elmlab_cuda_kernels::{ElmLayerBuffers, ElmModel, ElmSequence, ForwardInputs, KernelError, Memory, Upstream};

/// A forward pass on the CUDA kernels, with what the fused op reads of it fetched.
pub struct CudaRun<M: Memory> {
    pub layer: ElmLayerBuffers<M>,
    pub sequence: ElmSequence<M>,
    pub steps: usize,
    batch: usize,
    units: usize,
    /// `a_0..a_T`, `[T + 1, N, B]`.
    outputs: Vec<f32>,
    m_last: Vec<f32>,
    e_last: Vec<f32>,
    abs_delta: Vec<f32>,
    activity: Vec<f32>,
}

impl<M: Memory> CudaRun<M> {
    /// The output `a_t`, `[N, B]`.
    pub fn output(&self, t: usize) -> Vec<f32> {
        let len = self.units * self.batch;
        self.outputs[t * len..(t + 1) * len].to_vec()
    }
    /// `m_T`, `[N·d_m, B]`.
    pub fn memory_last(&self) -> Vec<f32> {
        self.m_last.clone()
    }
    /// `e_T`, `[N, B]`.
    pub fn high_pass_last(&self) -> Vec<f32> {
        self.e_last.clone()
    }
    pub fn abs_delta(&self) -> Vec<f32> {
        self.abs_delta.clone()
    }
    pub fn activity(&self) -> Vec<f32> {
        self.activity.clone()
    }
}

fn model<'a>(p: &'a ElmParams<'a, f32>) -> ElmModel<'a> {
    ElmModel { w_s: p.w_s, mlp: p.mlp.clone(), w_y: p.w_y, b: p.b, kappa_m: p.kappa_m, one_minus_kappa_lambda: p.one_minus_kappa_lambda }
}

/// The whole sequence `inputs` (each `[I, B]`) forward on `mem`, as `ElmKernel::run`.
pub fn run<M: Memory>(mem: &M, kernel: &ElmKernel<f32>, p: &ElmParams<f32>, inputs: &[&[f32]], m0: &[f32], e0: &[f32], a0: &[f32], extras: &ElmExtras<f32>) -> Result<CudaRun<M>, KernelError> {
    let (shape, wiring) = kernel.cuda_shape();
    let (units, batch, steps) = (shape.units, e0.len() / shape.units.max(1), inputs.len());
    let layer = ElmLayerBuffers::new(mem, &shape, &wiring, &model(p))?;
    let x = inputs.concat();
    let fwd = ForwardInputs {
        x: &x,
        steps,
        batch,
        m0,
        e0,
        a0,
        input_mask: extras.input_mask.as_deref(),
        recurrent_mask: extras.recurrent_mask.as_deref(),
        mlp_penalty: extras.mlp_penalty,
        activity_penalty: extras.activity_penalty,
        kappa_grads: extras.kappa_grads,
    };
    let sequence = layer.forward(mem, &fwd)?;
    Ok(CudaRun {
        outputs: sequence.outputs(mem)?,
        m_last: sequence.memory_at(mem, steps)?,
        e_last: sequence.high_pass_at(mem, steps)?,
        abs_delta: sequence.abs_delta(mem)?,
        activity: sequence.activity(mem)?,
        layer,
        sequence,
        steps,
        batch,
        units,
    })
}

/// Backward through time on `mem`, as `ElmKernel::backward`.
pub fn backward<M: Memory>(mem: &M, run: &CudaRun<M>, up: &ElmUpstream<f32>, input_grads: bool) -> Result<ElmGrads<f32>, KernelError> {
    let outputs = up.outputs.concat();
    let up = Upstream { outputs: &outputs, m_last: up.m_last, e_last: up.e_last, abs_delta: up.abs_delta, activity: up.activity };
    let g = run.layer.backward(mem, &run.sequence, &up, input_grads)?;
    let step = g.inputs.len() / run.steps.max(1);
    Ok(ElmGrads {
        w_s: g.w_s,
        mlp: g.mlp,
        w_y: g.w_y,
        b: g.b,
        inputs: if input_grads { g.inputs.chunks_exact(step.max(1)).map(|c| c.to_vec()).collect() } else { Vec::new() },
        m0: g.m0,
        e0: g.e0,
        a0: g.a0,
        kappa_m: g.kappa_m,
        one_minus_kappa_lambda: g.one_minus_kappa_lambda,
    })
}

