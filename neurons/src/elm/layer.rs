//! One layer of ELM neurons (elm-network.md §1), all `N` neurons at once: activations
//! are neuron-major and batch-last (`[N, ·, B]`), so the per-neuron MLPs are one
//! batched matmul `[N, out, in] @ [N, in, B]` per MLP layer. This is the op-by-op
//! reference; `fused.rs` runs the same layer through the hand-written kernel.

use super::kernel::{ElmExtras, ElmKernel};
use super::spec::LayerSpec;
use super::timescales::{InputShare, Timescales};
use crate::fused::inputs::LayerInputs;
use crate::wiring::Synapses;
use elmlab_core::dfdx::prelude::*;
use elmlab_core::error::{LayerError, PluginError};
use elmlab_core::neuron::{ForwardContext, History, LayerState, RecurrentLayer, SequenceOutput, StatePart, Step, StepInputs};
use elmlab_core::params::ParamStore;
use elmlab_core::tensor::{device, fork, trace, Dev, Matrix, Tape, Traced};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

type T3 = Tensor<(usize, usize, usize), f32, Dev, Tape>;

pub struct ElmLayer {
    pub(super) spec: LayerSpec,
    synapses: Synapses,
    /// `κ_m`, `1 − κ_λ` per neuron and memory unit, fixed or learnt.
    pub(super) timescales: Timescales,
    /// `κ_r` of the high-pass filter, if on.
    kappa_r: Option<f32>,
    pub(super) mlp_names: Vec<(String, String)>,
    /// The fused whole-sequence layer, shared with its backward op.
    pub(super) kernel: Arc<ElmKernel<f32>>,
}

/// Per-sequence dropout masks and penalty sums.
struct SequenceExtras {
    input_mask: Option<Matrix>,
    recurrent_mask: Option<Matrix>,
    abs_delta: Option<Traced>,
    activity: Option<Traced>,
    /// `(κ_m, 1 − κ_λ)` of the sequence: values whose history is already in the sequence's.
    factors: (Matrix, Matrix),
}

impl ElmLayer {
    /// Creates the layer's parameters (initialised as the spec says) and the layer.
    pub fn create(spec: LayerSpec, connectome: Vec<usize>, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Self, PluginError> {
        let (n, k_c) = (spec.units, spec.k_c());
        let p = &spec.name;
        store.insert_uniform(&format!("{p}.w_s"), &[n, k_c], 1.0 / (spec.synapses_per_branch as f64).sqrt(), rng)?;
        for (i, (out, inp)) in spec.mlp_shapes().into_iter().enumerate() {
            let bound = 1.0 / (inp as f64).sqrt();
            store.insert_uniform(&format!("{p}.mlp.{i}.weight"), &[n, out, inp], bound, rng)?;
            store.insert_uniform(&format!("{p}.mlp.{i}.bias"), &[n, out], bound, rng)?;
        }
        store.insert_uniform(&format!("{p}.w_y"), &[n, spec.memory], 1.0 / (spec.memory as f64).sqrt(), rng)?;
        store.insert_zeros(&format!("{p}.b"), &[n])?;
        let d_m = spec.memory;
        let timescales = if spec.learn_tau {
            let (low, high) = spec.tau_memory;
            let logit = format!("{p}.tau_m_logit");
            store.insert(&logit, &[n, d_m], Timescales::logits(&spec.tau_m().repeat(n), low, high))?;
            Timescales::Learnt { logit, low, high, share: InputShare::KappaLambda { lambda: spec.lambda } }
        } else {
            let taus = store.fixed_timescales(&format!("{p}.tau_m"), &[n, d_m], || spec.tau_m().repeat(n))?;
            Timescales::fixed(&taus, n, d_m, InputShare::KappaLambda { lambda: spec.lambda })
        };
        Self::with_timescales(spec, connectome, timescales)
    }

    /// The layer over parameters that already exist (named `<name>.w_s`, ...), with the
    /// spec's fixed timescales.
    pub fn new(spec: LayerSpec, connectome: Vec<usize>) -> Result<Self, PluginError> {
        let taus = spec.tau_m().repeat(spec.units);
        let timescales = Timescales::fixed(&taus, spec.units, spec.memory, InputShare::KappaLambda { lambda: spec.lambda });
        Self::with_timescales(spec, connectome, timescales)
    }

    /// The layer over parameters that already exist, with these timescales.
    pub fn with_timescales(spec: LayerSpec, connectome: Vec<usize>, timescales: Timescales) -> Result<Self, PluginError> {
        let (n, k_c) = (spec.units, spec.k_c());
        if connectome.len() != n * k_c {
            return Err(PluginError::shape(format!("{}: connectome has {} entries, expected {n}·{k_c}", spec.name, connectome.len())));
        }
        if let Some(bad) = connectome.iter().find(|&&i| i >= spec.input_width + n) {
            return Err(PluginError::shape(format!("{}: connectome index {bad} outside {} sources", spec.name, spec.input_width + n)));
        }
        let dev = device();
        let connectome_for_kernel = connectome.clone();
        let mlp_names = (0..spec.mlp_shapes().len()).map(|i| (format!("{}.mlp.{i}.weight", spec.name), format!("{}.mlp.{i}.bias", spec.name))).collect();
        Ok(ElmLayer {
            synapses: Synapses::new(&dev, connectome, n, k_c),
            timescales,
            kappa_r: spec.high_pass_tau.map(|t| (-1.0 / t).exp() as f32),
            mlp_names,
            kernel: Arc::new(ElmKernel::new(&spec, &connectome_for_kernel)),
            spec,
        })
    }

    /// A `[N, d_m]` factor over the batch, on a fresh tape (its gradient reaches the factor).
    fn per_memory(&self, v: &Matrix, batch: usize) -> T3 {
        trace(v).broadcast_like::<(usize, usize, usize), Axis<2>>(&(self.spec.units, self.spec.memory, batch))
    }

    /// The sequence's timescale factors as values, their history moved into `history`.
    fn factor_values(&self, p: &ParamStore, history: &mut History) -> (Matrix, Matrix) {
        let (kappa_m, okl) = self.timescales.factors(p);
        let (kappa_m, okl) = (history.take(kappa_m), history.take(okl));
        (kappa_m.retaped::<NoneTape>(), okl.retaped::<NoneTape>())
    }

    fn mask(&self, rows: usize, batch: usize, rng: &mut ChaCha8Rng) -> Matrix {
        let keep = 1.0 - self.spec.dropout;
        let values = (0..rows * batch).map(|_| if rng.gen::<f64>() < keep { (1.0 / keep) as f32 } else { 0.0 }).collect();
        elmlab_core::tensor::matrix(&device(), values, rows, batch)
    }

    /// One step; `extras` carries dropout masks and penalty sums of a training sequence.
    fn step_with(&self, p: &ParamStore, ctx: &mut ForwardContext, x: Traced, state: LayerState, extras: &mut SequenceExtras) -> Step {
        let s = &self.spec;
        let (n, d_m) = (s.units, s.memory);
        let batch = x.shape().1;
        let [m_prev, e_prev, a_prev] = state.into_array();
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
        let decayed: T3 = m_prev.reshape_like(&(n, d_m, batch)) * self.per_memory(&extras.factors.0, batch);
        let (decayed, decayed_for_mlp) = fork(decayed);
        // 3. integration: z = [β ; m̃] through the per-neuron MLPs
        let mut h: T3 = (beta, decayed_for_mlp).concat_along(Axis::<1>);
        let last = self.mlp_names.len() - 1;
        for (i, (w, b)) in self.mlp_names.iter().enumerate() {
            let out = p.get(b).shape[1];
            let bias = p.traced(b).broadcast_like::<(usize, usize, usize), Axis<2>>(&(n, out, batch));
            h = p.traced3(w).matmul(h) + bias;
            if i < last {
                h = s.mlp_activation.apply(h);
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
        let memory: T3 = decayed + update * self.per_memory(&extras.factors.1, batch);
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
        Step::new(a_out, vec![memory.reshape_like(&(n * d_m, batch)), e, a_state])
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
    fn state_parts(&self) -> Vec<StatePart> {
        let (n, d_m) = (self.spec.units, self.spec.memory);
        vec![StatePart::new("m", n * d_m), StatePart::new("e", n), StatePart::new("a", n)]
    }

    fn step(&self, p: &ParamStore, ctx: &mut ForwardContext, input: Traced, state: LayerState) -> Step {
        let mut history = History::new();
        let factors = self.factor_values(p, &mut history);
        let mut none = SequenceExtras { input_mask: None, recurrent_mask: None, abs_delta: None, activity: None, factors };
        let step = self.step_with(p, ctx, input, state, &mut none);
        // the factors' history goes with the step's output
        let (value, tape) = step.output.split_tape();
        Step { output: value.put_tape(tape.merge(history.into_tape())), state: step.state }
    }

    fn sequence(&self, p: &ParamStore, ctx: &mut ForwardContext, inputs: Vec<Traced>, state: LayerState) -> Result<SequenceOutput, LayerError> {
        self.sequence_of(p, ctx, LayerInputs::Traced(inputs), state)
    }

    /// The fused kernel reads the data straight into its table of sources.
    fn sequence_from_data(&self, p: &ParamStore, ctx: &mut ForwardContext, inputs: &dyn StepInputs, state: LayerState) -> Result<SequenceOutput, LayerError> {
        self.sequence_of(p, ctx, LayerInputs::Data(inputs), state)
    }
}

impl ElmLayer {
    fn sequence_of(&self, p: &ParamStore, ctx: &mut ForwardContext, inputs: LayerInputs, state: LayerState) -> Result<SequenceOutput, LayerError> {
        let s = &self.spec;
        let steps = inputs.steps();
        let batch = inputs.batch();
        // Both paths draw the masks first, in this order, so that they use the same ones.
        let dropout = ctx.training && s.dropout > 0.0;
        let input_mask = dropout.then(|| self.mask(s.input_width, batch, &mut ctx.rng));
        let recurrent_mask = dropout.then(|| self.mask(s.units, batch, &mut ctx.rng));
        let (mlp_penalty, activity_penalty) = (ctx.training && s.mlp_penalty > 0.0, ctx.training && s.activity_penalty > 0.0);
        let (out, abs_delta, activity) = if steps > 0 && s.path.fused_for(ctx.recorder.is_some()) {
            let extras = ElmExtras { input_mask: input_mask.map(|m| m.as_vec()), recurrent_mask: recurrent_mask.map(|m| m.as_vec()), mlp_penalty, activity_penalty, kappa_grads: self.timescales.is_learnt(), forward_only: !ctx.backward };
            self.fused(p, inputs, state, extras)?
        } else {
            let dev = device();
            let zeros = || elmlab_core::tensor::trace(&elmlab_core::tensor::matrix(&dev, vec![0.0; s.units * batch], s.units, batch));
            // each step's results give their tapes to the history, so every step starts fresh
            let mut history = History::new();
            let factors = self.factor_values(p, &mut history);
            let mut extras = SequenceExtras { input_mask, recurrent_mask, abs_delta: mlp_penalty.then(zeros), activity: activity_penalty.then(zeros), factors };
            let mut state = state;
            let mut outputs = Vec::with_capacity(steps);
            for x in inputs.into_traced() {
                let Step { output, state: next } = self.step_with(p, ctx, x, state, &mut extras);
                outputs.push(history.take(output));
                state = LayerState::new(next.into_parts().into_iter().map(|s| history.take(s)).collect());
            }
            (SequenceOutput::per_step(outputs, state).with_history(history.into_tape()), extras.abs_delta, extras.activity)
        };
        if let Some(sum) = abs_delta {
            // mean over neurons of (mean over steps and memory units of |Δ|)², averaged over the batch
            let per_neuron = sum * (1.0 / (steps * s.memory) as f32);
            ctx.penalties.push(("mlp_magnitude".into(), per_neuron.square().mean::<(), _>() * s.mlp_penalty as f32));
        }
        if let Some(sum) = activity {
            ctx.penalties.push(("activity".into(), sum.mean::<(), _>() * (s.activity_penalty / steps as f64) as f32));
        }
        Ok(out)
    }
}

