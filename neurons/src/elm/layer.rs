//! One layer of ELM neurons (elm-network.md §1), all `N` neurons at once: activations
//! are neuron-major and batch-last (`[N, ·, B]`), so the per-neuron MLPs are one
//! batched matmul `[N, out, in] @ [N, in, B]` per MLP layer.

use crate::fused::elm_kernel::{ElmExtras, ElmKernel, ElmParams, ElmUpstream};
use crate::fused::tape::{add_grad, detach, finish, grad_of};
use crate::fused::Path;
use crate::linear::log_spaced;
use elmlab_kernel::dfdx::tensor::Tape as _;
use std::sync::Arc;
use crate::wiring::Synapses;
use elmlab_kernel::dfdx::prelude::*;
use elmlab_kernel::error::PluginError;
use elmlab_kernel::neuron::{ForwardContext, LayerPlan, LayerState, RecurrentLayer, SequenceOutput};
use elmlab_kernel::params::{BufferValues, ParamStore};
use elmlab_kernel::tensor::{device, fork, matrix, values, Dev, Matrix, Tape, Traced};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

type T3 = Tensor<(usize, usize, usize), f32, Dev, Tape>;
type Const3 = Tensor<(usize, usize, usize), f32, Dev>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlpActivation {
    Relu2,
    Relu,
    Silu,
}

/// Everything that sizes and configures one ELM layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// Parameter prefix: `hidden` or `readout`.
    pub name: String,
    pub units: usize,
    pub input_width: usize,
    pub memory: usize,
    pub mlp_hidden: usize,
    pub mlp_layers: usize,
    pub mlp_activation: MlpActivation,
    pub branches: usize,
    pub synapses_per_branch: usize,
    pub lambda: f64,
    pub tau_memory: (f64, f64),
    pub high_pass_tau: Option<f64>,
    pub input_scale: f64,
    pub relu_output: bool,
    pub dropout: f64,
    pub mlp_penalty: f64,
    pub activity_penalty: f64,
    /// Fused whole-sequence layer or op-by-op reference.
    pub path: Path,
    /// Whether the fused layer forms its inputs' gradients: not for the first layer,
    /// whose inputs are the task's data.
    pub inputs_need_grad: bool,
}

impl LayerSpec {
    pub fn k_c(&self) -> usize {
        self.branches * self.synapses_per_branch
    }

    /// `(out, in)` of each affine map of the MLP, first to last.
    pub fn mlp_shapes(&self) -> Vec<(usize, usize)> {
        let z = self.branches + self.memory;
        if self.mlp_layers == 0 {
            return vec![(self.memory, z)];
        }
        let mut shapes = vec![(self.mlp_hidden, z)];
        shapes.extend(std::iter::repeat((self.mlp_hidden, self.mlp_hidden)).take(self.mlp_layers - 1));
        shapes.push((self.memory, self.mlp_hidden));
        shapes
    }

    /// Trainable parameters per neuron besides the synapses: MLP, `w_y`, `b`.
    pub fn k_e(&self) -> usize {
        self.mlp_shapes().iter().map(|(o, i)| o * i + o).sum::<usize>() + self.memory + 1
    }

    pub fn plan(&self) -> LayerPlan {
        let (k_c, d_m) = (self.k_c(), self.memory);
        let mlp: usize = self.mlp_shapes().iter().map(|(o, i)| 2 * o * i + 2 * o).sum();
        // synapses, branch scale, decay, MLP, bounded update (3), memory (2), readout (2), filter and output
        let per_neuron = 2 * k_c + self.branches + d_m + mlp + 3 * d_m + 2 * d_m + 2 * d_m + 6;
        LayerPlan { name: self.name.clone(), units: self.units, k_e: self.k_e(), k_c, params: self.units * (k_c + self.k_e()), flops_per_step: (self.units * per_neuron) as u64 }
    }

    /// Memory timescales `τ_m`, log-spaced from `τ_min` to `τ_max` inclusive.
    pub fn tau_m(&self) -> Vec<f64> {
        log_spaced(self.tau_memory.0, self.tau_memory.1, self.memory)
    }
}

pub struct ElmLayer {
    spec: LayerSpec,
    synapses: Synapses,
    /// `κ_m`, `1 − κ_λ` per memory unit.
    kappa_m: Tensor<(usize,), f32, Dev>,
    one_minus_kappa_lambda: Tensor<(usize,), f32, Dev>,
    /// `κ_r` of the high-pass filter, if on.
    kappa_r: Option<f32>,
    mlp_names: Vec<(String, String)>,
    /// The fused whole-sequence layer, shared with its backward op.
    kernel: Arc<ElmKernel<f32>>,
}

/// Per-sequence dropout masks and penalty sums.
struct SequenceExtras {
    input_mask: Option<Matrix>,
    recurrent_mask: Option<Matrix>,
    abs_delta: Option<Traced>,
    activity: Option<Traced>,
}

impl ElmLayer {
    /// Creates the layer's parameters (initialised as the spec says) and the layer.
    pub fn create(spec: LayerSpec, connectome: Vec<usize>, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Self, PluginError> {
        let (n, k_c) = (spec.units, spec.k_c());
        let p = &spec.name;
        store.insert_uniform(&format!("{p}.w_s"), &[n, k_c], 1.0 / (spec.synapses_per_branch as f64).sqrt(), rng);
        for (i, (out, inp)) in spec.mlp_shapes().into_iter().enumerate() {
            let bound = 1.0 / (inp as f64).sqrt();
            store.insert_uniform(&format!("{p}.mlp.{i}.weight"), &[n, out, inp], bound, rng);
            store.insert_uniform(&format!("{p}.mlp.{i}.bias"), &[n, out], bound, rng);
        }
        store.insert_uniform(&format!("{p}.w_y"), &[n, spec.memory], 1.0 / (spec.memory as f64).sqrt(), rng);
        store.insert_zeros(&format!("{p}.b"), &[n]);
        let tau: Vec<f32> = spec.tau_m().iter().map(|&t| t as f32).collect();
        store.insert_buffer(&format!("{p}.tau_m"), &[n, spec.memory], BufferValues::F32(tau.repeat(n)));
        store.insert_buffer(&format!("{p}.connectome"), &[n, k_c], BufferValues::I64(connectome.iter().map(|&i| i as i64).collect()));
        Self::new(spec, connectome)
    }

    /// The layer over parameters that already exist (named `<name>.w_s`, ...).
    pub fn new(spec: LayerSpec, connectome: Vec<usize>) -> Result<Self, PluginError> {
        let (n, k_c) = (spec.units, spec.k_c());
        if connectome.len() != n * k_c {
            return Err(PluginError::new(format!("{}: connectome has {} entries, expected {n}·{k_c}", spec.name, connectome.len())));
        }
        if let Some(bad) = connectome.iter().find(|&&i| i >= spec.input_width + n) {
            return Err(PluginError::new(format!("{}: connectome index {bad} outside {} sources", spec.name, spec.input_width + n)));
        }
        let dev = device();
        let connectome_for_kernel = connectome.clone();
        let tau = spec.tau_m();
        let kappa_m = tau.iter().map(|t| (-1.0 / t).exp() as f32).collect();
        let one_minus_kl = tau.iter().map(|t| (1.0 - (-spec.lambda / t).exp()) as f32).collect();
        let mlp_names = (0..spec.mlp_shapes().len()).map(|i| (format!("{}.mlp.{i}.weight", spec.name), format!("{}.mlp.{i}.bias", spec.name))).collect();
        Ok(ElmLayer {
            synapses: Synapses::new(&dev, connectome, n, k_c),
            kappa_m: dev.tensor_from_vec(kappa_m, (spec.memory,)),
            one_minus_kappa_lambda: dev.tensor_from_vec(one_minus_kl, (spec.memory,)),
            kappa_r: spec.high_pass_tau.map(|t| (-1.0 / t).exp() as f32),
            mlp_names,
            kernel: Arc::new(ElmKernel::new(&spec, &connectome_for_kernel)),
            spec,
        })
    }

    fn per_memory(&self, v: &Tensor<(usize,), f32, Dev>, batch: usize) -> Const3 {
        v.clone().broadcast_like::<(usize, usize, usize), Axes2<0, 2>>(&(self.spec.units, self.spec.memory, batch))
    }

    fn mask(&self, rows: usize, batch: usize, rng: &mut ChaCha8Rng) -> Matrix {
        let keep = 1.0 - self.spec.dropout;
        let values = (0..rows * batch).map(|_| if rng.gen::<f64>() < keep { (1.0 / keep) as f32 } else { 0.0 }).collect();
        elmlab_kernel::tensor::matrix(&device(), values, rows, batch)
    }

    /// One step; `extras` carries dropout masks and penalty sums of a training sequence.
    fn step_with(&self, p: &ParamStore, ctx: &mut ForwardContext, x: Traced, state: LayerState, extras: &mut SequenceExtras) -> (Traced, LayerState) {
        let s = &self.spec;
        let (n, d_m) = (s.units, s.memory);
        let batch = x.shape().1;
        let mut state = state.into_iter();
        let (m_prev, e_prev, a_prev) = (state.next().expect("m"), state.next().expect("e"), state.next().expect("a"));
        let x = match &extras.input_mask {
            Some(mask) => x * mask.clone(),
            None => x,
        };
        let a_prev = match &extras.recurrent_mask {
            Some(mask) => a_prev * mask.clone(),
            None => a_prev,
        };
        // 1. branch integration over the gathered synapses
        let sources = (x, a_prev).concat_along(Axis::<0>);
        let gathered: Traced = sources.gather(self.synapses.index.clone());
        let weighted = gathered.reshape_like(&(n, s.k_c(), batch)) * p.traced(&format!("{}.w_s", s.name)).broadcast_like::<(usize, usize, usize), Axis<2>>(&(n, s.k_c(), batch));
        let beta: T3 = weighted.reshape_like(&(n, s.branches, s.synapses_per_branch, batch)).sum::<(usize, usize, usize), Axis<2>>() * s.input_scale as f32;
        // 2. decay
        let decayed: T3 = m_prev.reshape_like(&(n, d_m, batch)) * self.per_memory(&self.kappa_m, batch);
        let (decayed, decayed_for_mlp) = fork(decayed);
        // 3. integration: z = [β ; m̃] through the per-neuron MLPs
        let mut h: T3 = (beta, decayed_for_mlp).concat_along(Axis::<1>);
        let last = self.mlp_names.len() - 1;
        for (i, (w, b)) in self.mlp_names.iter().enumerate() {
            let out = p.get(b).shape[1];
            let bias = p.traced(b).broadcast_like::<(usize, usize, usize), Axis<2>>(&(n, out, batch));
            h = p.traced3(w).matmul(h) + bias;
            if i < last {
                h = match s.mlp_activation {
                    MlpActivation::Relu2 => h.relu().square(),
                    MlpActivation::Relu => h.relu(),
                    MlpActivation::Silu => {
                        let (a, b) = fork(h);
                        a * b.sigmoid()
                    }
                };
            }
        }
        let delta = match extras.abs_delta.take() {
            Some(sum) => {
                let (delta, for_penalty) = fork(h);
                extras.abs_delta = Some(sum + for_penalty.abs().sum::<(usize, usize), Axis<1>>());
                delta
            }
            None => h,
        };
        // 4.–5. bounded update into memory
        let update = (delta * (2.0 / 3.0)).tanh() * 1.7159;
        let memory: T3 = decayed + update * self.per_memory(&self.one_minus_kappa_lambda, batch);
        let (memory, memory_for_readout) = fork(memory);
        if ctx.recorder.is_some() {
            ctx.record(&format!("{}.memory", s.name), &[n, d_m], &memory_for_readout.retaped::<Tape>().reshape_like(&(n * d_m, batch)));
        }
        // 6. readout r = w_y · m
        let w_y = p.traced(&format!("{}.w_y", s.name)).broadcast_like::<(usize, usize, usize), Axis<2>>(&(n, d_m, batch));
        let r: Traced = (memory_for_readout * w_y).sum::<(usize, usize), Axis<1>>();
        // 7. high-pass: the average takes the current r before it is subtracted
        let (filtered, e) = match self.kappa_r {
            Some(k) => {
                let (r, r_for_filter) = fork(r);
                let e = e_prev * k + r_for_filter * (1.0 - k);
                let (e, e_for_output) = fork(e);
                (r - e_for_output, e)
            }
            None => (r, e_prev),
        };
        // 8. output
        let pre = filtered + p.traced_vector(&format!("{}.b", s.name)).broadcast_like::<(usize, usize), Axis<1>>(&(n, batch));
        let a = if s.relu_output { pre.relu() } else { pre };
        let a = match extras.activity.take() {
            Some(sum) => {
                let (a, for_penalty) = fork(a);
                extras.activity = Some(sum + for_penalty.relu());
                a
            }
            None => a,
        };
        let (a_state, a_out) = fork(a);
        ctx.record(&format!("{}.activity", s.name), &[n], &a_out);
        (a_out, vec![memory.reshape_like(&(n * d_m, batch)), e, a_state])
    }
}

impl RecurrentLayer for ElmLayer {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn units(&self) -> usize {
        self.spec.units
    }
    fn input_width(&self) -> usize {
        self.spec.input_width
    }
    fn state_rows(&self) -> Vec<usize> {
        vec![self.spec.units * self.spec.memory, self.spec.units, self.spec.units] // m, e, a
    }

    fn step(&self, p: &ParamStore, ctx: &mut ForwardContext, input: Traced, state: LayerState) -> (Traced, LayerState) {
        let mut none = SequenceExtras { input_mask: None, recurrent_mask: None, abs_delta: None, activity: None };
        self.step_with(p, ctx, input, state, &mut none)
    }

    fn sequence(&self, p: &ParamStore, ctx: &mut ForwardContext, inputs: Vec<Traced>, state: LayerState) -> SequenceOutput {
        let s = &self.spec;
        let steps = inputs.len();
        let batch = inputs.first().map(|x| x.shape().1).unwrap_or(0);
        // Both paths draw the masks first, in this order, so that they use the same ones.
        let dropout = ctx.training && s.dropout > 0.0;
        let input_mask = dropout.then(|| self.mask(s.input_width, batch, &mut ctx.rng));
        let recurrent_mask = dropout.then(|| self.mask(s.units, batch, &mut ctx.rng));
        let (mlp_penalty, activity_penalty) = (ctx.training && s.mlp_penalty > 0.0, ctx.training && s.activity_penalty > 0.0);
        let (out, abs_delta, activity) = if steps > 0 && s.path.fused_for(ctx.recorder.is_some()) {
            let extras = ElmExtras { input_mask: input_mask.map(|m| m.as_vec()), recurrent_mask: recurrent_mask.map(|m| m.as_vec()), mlp_penalty, activity_penalty };
            self.fused(p, inputs, state, extras)
        } else {
            let dev = device();
            let zeros = || elmlab_kernel::tensor::trace(&elmlab_kernel::tensor::matrix(&dev, vec![0.0; s.units * batch], s.units, batch));
            let mut extras = SequenceExtras { input_mask, recurrent_mask, abs_delta: mlp_penalty.then(zeros), activity: activity_penalty.then(zeros) };
            let mut state = state;
            let mut outputs = Vec::with_capacity(steps);
            for x in inputs {
                let (out, next) = self.step_with(p, ctx, x, state, &mut extras);
                state = next;
                outputs.push(out);
            }
            (SequenceOutput::per_step(outputs, state), extras.abs_delta, extras.activity)
        };
        if let Some(sum) = abs_delta {
            // mean over neurons of (mean over steps and memory units of |Δ|)², averaged over the batch
            let per_neuron = sum * (1.0 / (steps * s.memory) as f32);
            ctx.penalties.push(("mlp_magnitude".into(), per_neuron.square().mean::<(), _>() * s.mlp_penalty as f32));
        }
        if let Some(sum) = activity {
            ctx.penalties.push(("activity".into(), sum.mean::<(), _>() * (s.activity_penalty / steps as f64) as f32));
        }
        out
    }
}

impl ElmLayer {
    /// The whole sequence through the fused kernel, attached to the tape as one op.
    /// Returns the layer's results and the penalty sums (`Σ|Δ|`, `Σ relu(a)`, `[N, B]`).
    fn fused(&self, p: &ParamStore, inputs: Vec<Traced>, state: LayerState, extras: ElmExtras<f32>) -> (SequenceOutput, Option<Traced>, Option<Traced>) {
        let s = &self.spec;
        let (n, dev) = (s.units, device());
        let d = detach(inputs, state);
        let batch = d.inputs[0].shape().1;
        let (mlp_penalty, activity_penalty) = (extras.mlp_penalty, extras.activity_penalty);
        // parameters in order: w_s, (weight, bias) per MLP layer, w_y, b
        let mut names = vec![format!("{}.w_s", s.name)];
        for (w, b) in &self.mlp_names {
            names.extend([w.clone(), b.clone()]);
        }
        names.extend([format!("{}.w_y", s.name), format!("{}.b", s.name)]);
        let params: Vec<Matrix> = names.iter().map(|name| p.get(name).value.clone()).collect();
        let param_values: Vec<Vec<f32>> = params.iter().map(values).collect();
        let xs: Vec<Vec<f32>> = d.inputs.iter().map(values).collect();
        let [m0, e0, a0] = [0, 1, 2].map(|i| values(&d.state[i]));
        let kernel = self.kernel.clone();
        let run = kernel.run(&elm_params(&view(&param_values)), &view(&xs), m0, e0, a0, extras);

        let outputs: Vec<Matrix> = (1..=run.steps).map(|t| matrix(&dev, run.output(t), n, batch)).collect();
        let m_last = matrix(&dev, run.memory(run.steps), n * s.memory, batch);
        let e_last = matrix(&dev, run.high_pass(run.steps), n, batch);
        let abs_delta = mlp_penalty.then(|| matrix(&dev, run.abs_delta(), n, batch));
        let activity = activity_penalty.then(|| matrix(&dev, run.activity(), n, batch));
        let (keys_out, key_m, key_e, key_abs, key_act) = (outputs.clone(), m_last.clone(), e_last.clone(), abs_delta.clone(), activity.clone());
        let (inputs, start) = (d.inputs, d.state);
        let input_grads = s.inputs_need_grad;
        let mut tape = d.tape;
        tape.add_backward_op(move |grads| {
            let d_out = keys_out.iter().map(|o| grad_of(grads, o)).collect::<Result<Vec<_>, _>>()?;
            let (d_m, d_e) = (grad_of(grads, &key_m)?, grad_of(grads, &key_e)?);
            let d_abs = key_abs.as_ref().map(|k| grad_of(grads, k)).transpose()?;
            let d_act = key_act.as_ref().map(|k| grad_of(grads, k)).transpose()?;
            let up = ElmUpstream { outputs: &d_out, m_last: &d_m, e_last: &d_e, abs_delta: d_abs.as_deref(), activity: d_act.as_deref() };
            let g = kernel.backward(&elm_params(&view(&param_values)), &run, &up, input_grads);
    
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
            Ok(())
        });
        // The last output and the state `a` are one tensor, as on the step path.
        let a_last = outputs.last().expect("a non-empty sequence").clone();
        let out = finish(tape, &outputs, vec![m_last, e_last, a_last]);
        (out, abs_delta.map(|m| m.retaped::<Tape>()), activity.map(|m| m.retaped::<Tape>()))
    }
}

fn view(v: &[Vec<f32>]) -> Vec<&[f32]> {
    v.iter().map(|x| x.as_slice()).collect()
}

/// The kernel's view of the parameters, in the order `fused` lists them.
fn elm_params<'a>(v: &[&'a [f32]]) -> ElmParams<'a, f32> {
    let layers = (v.len() - 3) / 2;
    ElmParams { w_s: v[0], mlp: (0..layers).map(|l| (v[1 + 2 * l], v[2 + 2 * l])).collect(), w_y: v[v.len() - 2], b: v[v.len() - 1] }
}
