//! One layer of ELM neurons (elm-network.md §1), all `N` neurons at once: activations
//! are neuron-major and batch-last (`[N, ·, B]`), so the per-neuron MLPs are one
//! batched matmul `[N, out, in] @ [N, in, B]` per MLP layer.

use crate::linear::log_spaced;
use crate::wiring::Synapses;
use elmlab_kernel::dfdx::prelude::*;
use elmlab_kernel::error::PluginError;
use elmlab_kernel::neuron::{ForwardContext, LayerPlan, LayerState, RecurrentLayer, SequenceOutput};
use elmlab_kernel::params::{BufferValues, ParamStore};
use elmlab_kernel::tensor::{device, fork, Dev, Matrix, Tape, Traced};
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
        let dev = device();
        let zeros = || elmlab_kernel::tensor::trace(&elmlab_kernel::tensor::matrix(&dev, vec![0.0; s.units * batch], s.units, batch));
        let dropout = ctx.training && s.dropout > 0.0;
        let mut extras = SequenceExtras {
            input_mask: dropout.then(|| self.mask(s.input_width, batch, &mut ctx.rng)),
            recurrent_mask: dropout.then(|| self.mask(s.units, batch, &mut ctx.rng)),
            abs_delta: (ctx.training && s.mlp_penalty > 0.0).then(zeros),
            activity: (ctx.training && s.activity_penalty > 0.0).then(zeros),
        };
        let mut state = state;
        let mut outputs = Vec::with_capacity(steps);
        for x in inputs {
            let (out, next) = self.step_with(p, ctx, x, state, &mut extras);
            state = next;
            outputs.push(out);
        }
        if let Some(sum) = extras.abs_delta {
            // mean over neurons of (mean over steps and memory units of |Δ|)², averaged over the batch
            let per_neuron = sum * (1.0 / (steps * s.memory) as f32);
            ctx.penalties.push(("mlp_magnitude".into(), per_neuron.square().mean::<(), _>() * s.mlp_penalty as f32));
        }
        if let Some(sum) = extras.activity {
            ctx.penalties.push(("activity".into(), sum.mean::<(), _>() * (s.activity_penalty / steps as f64) as f32));
        }
        SequenceOutput { outputs, state }
    }
}
