//! The ELM layer through the fused kernels, attached to the tape as one op: the CPU
//! kernel (`kernel/`), or in a CUDA build the CUDA kernels (`cuda.rs`), behind [`engine`].

use super::kernel::{ElmExtras, ElmParams, ElmUpstream};
use super::layer::ElmLayer;
use crate::fused::inputs::LayerInputs;
use crate::fused::tape::{add_grad, finish, grad_of};
use crate::fused::timing::timed;
use elmlab_host_ops::take_input;
use elmlab_core::dfdx::prelude::*;
use elmlab_core::dfdx::tensor::Tape as _;
use elmlab_core::error::LayerError;
use elmlab_core::neuron::{LayerState, SequenceOutput};
use elmlab_core::params::ParamStore;
use elmlab_core::tensor::{device, matrix, values, Matrix, Tape, Traced};

impl ElmLayer {
    /// The whole sequence through the fused kernel, attached to the tape as one op.
    /// Returns the layer's results and the penalty sums (`Σ|Δ|`, `Σ relu(a)`, `[N, B]`).
    pub(super) fn fused(&self, p: &ParamStore, inputs: LayerInputs, state: LayerState, extras: ElmExtras<f32>) -> Result<(SequenceOutput, Option<Traced>, Option<Traced>), LayerError> {
        let s = &self.spec;
        let (n, dev) = (s.units, device());
        inputs.check(&s.name, s.input_width)?;
        let (steps, batch) = (inputs.steps(), inputs.batch());
        // data is read straight from the batch (and needs no gradients); traced inputs are
        // detached, their histories joining the layer's
        let (sources, state, mut tape) = inputs.detach(state);
        let step_len = s.input_width * batch;
        // the timescale factors `[N, d_m]`: constants, or computed from learnt logits (their
        // history joins the layer's, and backward adds their gradients)
        let learnt = self.timescales.is_learnt();
        let (kappa_m, okl) = self.timescales.factors(p);
        let ((kappa_m, km_tape), (okl, okl_tape)) = (take_input(kappa_m), take_input(okl));
        tape = tape.merge(km_tape).merge(okl_tape);
        let factors = [values(&kappa_m), values(&okl)];
        let (mlp_penalty, activity_penalty, forward_only) = (extras.mlp_penalty, extras.activity_penalty, extras.forward_only);
        // parameters in order: w_s, (weight, bias) per MLP layer, w_y, b
        let mut names = vec![format!("{}.w_s", s.name)];
        for (w, b) in &self.mlp_names {
            names.extend([w.clone(), b.clone()]);
        }
        names.extend([format!("{}.w_y", s.name), format!("{}.b", s.name)]);
        let params: Vec<Matrix> = names.iter().map(|name| p.get(name).value.clone()).collect();
        let param_values: Vec<Vec<f32>> = params.iter().map(values).collect();
        let [m0, e0, a0] = [0, 1, 2].map(|i| values(&state[i]));
        let kernel = self.kernel.clone();
        let fill = |t: usize, out: &mut [f32]| sources.fill(t, out);
        let run = timed(|| format!("{} forward", s.name), || engine::run(&kernel, &elm_params(&view(&param_values), &factors), steps, step_len, &fill, m0, e0, a0, extras)).map_err(|problem| LayerError { layer: s.name.clone(), problem })?;

        let outputs: Vec<Matrix> = (1..=run.steps()).map(|t| matrix(&dev, run.output(t), n, batch)).collect();
        let m_last = matrix(&dev, run.memory_last(), n * s.memory, batch);
        let e_last = matrix(&dev, run.high_pass_last(), n, batch);
        let abs_delta = mlp_penalty.then(|| matrix(&dev, run.abs_delta(), n, batch));
        let activity = activity_penalty.then(|| matrix(&dev, run.activity(), n, batch));
        let (keys_out, key_m, key_e, key_abs, key_act) = (outputs.clone(), m_last.clone(), e_last.clone(), abs_delta.clone(), activity.clone());
        let (inputs, start) = (sources.into_tensors(), state);
        // data (the network's first layer) has no gradients to take
        let (input_grads, name) = (s.inputs_need_grad && !inputs.is_empty(), s.name.clone());
        tape.add_backward_op(move |grads| {
            // an evaluation pass (`ForwardContext::evaluation`) kept no history to go back through
            assert!(!forward_only, "layer {name}: a backward pass through an evaluation forward pass (ForwardContext::backward was false)");
            let d_out = keys_out.iter().map(|o| grad_of(grads, o)).collect::<Result<Vec<_>, _>>()?;
            let (d_m, d_e) = (grad_of(grads, &key_m)?, grad_of(grads, &key_e)?);
            let d_abs = key_abs.as_ref().map(|k| grad_of(grads, k)).transpose()?;
            let d_act = key_act.as_ref().map(|k| grad_of(grads, k)).transpose()?;
            let up = ElmUpstream { outputs: &d_out, m_last: &d_m, e_last: &d_e, abs_delta: d_abs.as_deref(), activity: d_act.as_deref() };
            let g = timed(|| format!("{name} backward"), || engine::backward(&kernel, &elm_params(&view(&param_values), &factors), &run, &up, input_grads))?;
            let mut param_grads = vec![&g.w_s];
            for (w, b) in &g.mlp {
                param_grads.extend([w, b]);
            }
            param_grads.extend([&g.w_y, &g.b]);
            for (param, grad) in params.iter().zip(param_grads) {
                add_grad(grads, param, grad)?;
            }
            for (x, dx) in inputs.iter().zip(&g.inputs) {
                add_grad(grads, x, dx)?;
            }
            for (st, ds) in start.iter().zip([&g.m0, &g.e0, &g.a0]) {
                add_grad(grads, st, ds)?;
            }
            if learnt {
                add_grad(grads, &kappa_m, &g.kappa_m)?;
                add_grad(grads, &okl, &g.one_minus_kappa_lambda)?;
            }
            Ok(())
        });
        // The last output and the state `a` are one tensor, as on the step path.
        let a_last = outputs.last().expect("a non-empty sequence").clone();
        let out = finish(tape, &outputs, vec![m_last, e_last, a_last]);
        Ok((out, abs_delta.map(|m| m.retaped::<Tape>()), activity.map(|m| m.retaped::<Tape>())))
    }
}

fn view(v: &[Vec<f32>]) -> Vec<&[f32]> {
    v.iter().map(|x| x.as_slice()).collect()
}

/// The kernel's view of the parameters, in the order `fused` lists them, and of the
/// timescale factors.
fn elm_params<'a>(v: &[&'a [f32]], factors: &'a [Vec<f32>; 2]) -> ElmParams<'a, f32> {
    let layers = (v.len() - 3) / 2;
    ElmParams {
        w_s: v[0],
        mlp: (0..layers).map(|l| (v[1 + 2 * l], v[2 + 2 * l])).collect(),
        w_y: v[v.len() - 2],
        b: v[v.len() - 1],
        kappa_m: &factors[0],
        one_minus_kappa_lambda: &factors[1],
    }
}

/// The pass on the CPU kernel, or on the CUDA kernels where they are selected
/// (`fused::kernels`: always in a CUDA build; on the host shim when a test asks).
mod engine {
    use super::super::kernel::{ElmExtras, ElmGrads, ElmKernel, ElmParams, ElmRun, ElmUpstream};
    #[cfg(any(test, feature = "cuda"))]
    use crate::fused::kernels;
    use elmlab_host_ops::tape::DevError;

    pub enum Run {
        // never made in a CUDA build, which runs the CUDA kernels only
        #[cfg_attr(feature = "cuda", allow(dead_code))]
        Cpu(ElmRun<f32>),
        #[cfg(any(test, feature = "cuda"))]
        Kernels(super::super::cuda::CudaRun<kernels::KernelDevice>),
    }

    impl Run {
        pub fn steps(&self) -> usize {
            match self {
                Run::Cpu(r) => r.steps,
                #[cfg(any(test, feature = "cuda"))]
                Run::Kernels(r) => r.steps,
            }
        }
        pub fn output(&self, t: usize) -> Vec<f32> {
            match self {
                Run::Cpu(r) => r.output(t),
                #[cfg(any(test, feature = "cuda"))]
                Run::Kernels(r) => r.output(t),
            }
        }
        pub fn memory_last(&self) -> Vec<f32> {
            match self {
                Run::Cpu(r) => r.memory(r.steps),
                #[cfg(any(test, feature = "cuda"))]
                Run::Kernels(r) => r.memory_last(),
            }
        }
        pub fn high_pass_last(&self) -> Vec<f32> {
            match self {
                Run::Cpu(r) => r.high_pass(r.steps),
                #[cfg(any(test, feature = "cuda"))]
                Run::Kernels(r) => r.high_pass_last(),
            }
        }
        pub fn abs_delta(&self) -> Vec<f32> {
            match self {
                Run::Cpu(r) => r.abs_delta(),
                #[cfg(any(test, feature = "cuda"))]
                Run::Kernels(r) => r.abs_delta(),
            }
        }
        pub fn activity(&self) -> Vec<f32> {
            match self {
                Run::Cpu(r) => r.activity(),
                #[cfg(any(test, feature = "cuda"))]
                Run::Kernels(r) => r.activity(),
            }
        }
    }

    /// What writes a step's inputs: shared by the CPU kernel's team of threads (`Sync`). A
    /// CUDA build's tensors are not `Sync`; there the CUDA kernels take every step at once.
    #[cfg(not(feature = "cuda"))]
    pub type Fill<'a> = dyn Fn(usize, &mut [f32]) + Sync + 'a;
    #[cfg(feature = "cuda")]
    pub type Fill<'a> = dyn Fn(usize, &mut [f32]) + 'a;

    /// `steps` steps whose inputs (`step_len` values each, `[I, B]`) `fill` writes: on the
    /// CPU straight into the kernel's table of sources (a copy per step into vectors first
    /// cost 4 ms of an SHD-Adding pass).
    #[allow(clippy::too_many_arguments)]
    #[cfg_attr(not(any(test, feature = "cuda")), allow(unused_variables))]
    pub fn run(kernel: &ElmKernel<f32>, p: &ElmParams<f32>, steps: usize, step_len: usize, fill: &Fill, m0: Vec<f32>, e0: Vec<f32>, a0: Vec<f32>, extras: ElmExtras<f32>) -> Result<Run, String> {
        #[cfg(any(test, feature = "cuda"))]
        if kernels::selected() {
            let xs: Vec<Vec<f32>> = (0..steps)
                .map(|t| {
                    let mut x = vec![0.0; step_len];
                    fill(t, &mut x);
                    x
                })
                .collect();
            let xs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
            return kernels::with_kernels(|device| super::super::cuda::run(device, kernel, p, &xs, &m0, &e0, &a0, &extras).map_err(|e| e.to_string())).map(Run::Kernels);
        }
        #[cfg(feature = "cuda")]
        unreachable!("a CUDA build runs the fused ELM layer on the CUDA kernels");
        #[cfg(not(feature = "cuda"))]
        Ok(Run::Cpu(kernel.run_with(p, steps, fill, m0, e0, a0, extras)))
    }

    pub fn backward(kernel: &ElmKernel<f32>, p: &ElmParams<f32>, run: &Run, up: &ElmUpstream<f32>, input_grads: bool) -> Result<ElmGrads<f32>, DevError> {
        match run {
            Run::Cpu(r) => Ok(kernel.backward(p, r, up, input_grads)),
            #[cfg(any(test, feature = "cuda"))]
            Run::Kernels(r) => kernels::with_kernels(|device| super::super::cuda::backward(device, r, up, input_grads).map_err(|e| e.to_string())).map_err(|e| kernels::backward_failed("ELM", e)),
        }
    }
}
