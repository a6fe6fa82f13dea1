//! LSTM: `i, f, o = σ(·)`, `g = tanh(·)`, `c_t = f⊙c_{t−1} + i⊙g`, `h_t = o⊙tanh(c_t)`;
//! the step as dfdx ops (the reference) or the whole sequence through `lstm_kernel`.

use super::gated_flops;
use super::lstm_kernel::LstmWeights;
use crate::fused::inputs::LayerInputs;
use crate::fused::tape::{add_grad, finish_stacked, grad_of};
use crate::fused::timing::timed;
use crate::path::Path;
use elmlab_core::cell::{gate_blocks, pytorch_gates, Cell, CellModel, CellParams, CellParamsMut, CellShape, ParamSpec, B_HH, B_IH, W_HH, W_IH};
use elmlab_core::connectivity::Connectivity;
use elmlab_core::dfdx::prelude::*;
use elmlab_core::error::{LayerError, PluginError};
use elmlab_core::neuron::{ForwardContext, LayerState, NeuronModel, SequenceOutput, Step, StepInputs};
use elmlab_core::params::ParamStore;
use elmlab_core::registry::{NeuronEntry, NeuronPlugin};
use elmlab_core::settings::{Choice, Settings};
use elmlab_core::tensor::{device, fork, matrix, values, Matrix, Traced};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How the gate biases start.
#[derive(Choice, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LstmInit {
    Uniform,
    Chrono,
}

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct LstmSettings {
    /// added to the forget gate's input bias after initialisation (e.g. 1.0)
    #[setting(default = 0.0)]
    pub forget_bias: f64,
    /// chrono: forget bias log(U(1, chrono_max − 1)), input bias its negative
    #[setting(default = "uniform")]
    pub init: LstmInit,
    /// longest dependency (in steps) chrono initialisation prepares for
    #[setting(default = 1000.0, min = 2.0)]
    pub chrono_max: f64,
    /// auto/fused: the fused whole-sequence layer (CPU kernel; CUDA kernels in a CUDA build); reference: the op-by-op layer (same numbers, slower)
    #[setting(default = "auto")]
    pub path: Path,
}

impl NeuronPlugin for LstmSettings {
    const NAME: &'static str = "lstm";
    const DOC: &'static str = "LSTM, densely wired, PyTorch layout (weight_ih_l0, ...); gates i, f, g, o";
    fn build(self) -> Result<Box<dyn NeuronModel>, PluginError> {
        let chrono_max = (self.init == LstmInit::Chrono).then_some(self.chrono_max);
        Ok(Box::new(CellModel::new(LstmCell { forget_bias: self.forget_bias, chrono_max, path: self.path })))
    }
}

elmlab_core::inventory::submit! { NeuronEntry::of::<LstmSettings>() }

#[derive(Clone, Debug, PartialEq)]
pub struct LstmCell {
    pub forget_bias: f64,
    /// Chrono initialisation for dependencies up to this many steps.
    pub chrono_max: Option<f64>,
    pub path: Path,
}

impl Cell for LstmCell {
    const NAME: &'static str = "lstm";
    const STATE: &'static [&'static str] = &["h", "c"];
    type Fixed = ();

    fn parameters(&self, shape: &CellShape) -> Vec<ParamSpec> {
        pytorch_gates(4, shape)
    }
    fn flops_per_step(&self, shape: &CellShape) -> u64 {
        gated_flops(4, shape)
    }
    /// The fused kernel keeps the four gates and both states per step; the op-by-op step's
    /// tape about twenty values per unit (both products, sums, activations, products).
    fn activations_per_step(&self, shape: &CellShape) -> u64 {
        let per_unit = if self.path.fused_for(false) { 6 } else { 20 };
        (per_unit * shape.units + shape.input_width) as u64
    }
    fn prepare(&self, _: &CellShape, _: &dyn Connectivity, _: &mut ParamStore, _: &mut ChaCha8Rng) -> Result<(), PluginError> {
        Ok(())
    }

    fn initialised(&self, shape: &CellShape, p: &mut CellParamsMut, rng: &mut ChaCha8Rng) -> Result<(), PluginError> {
        let h = shape.units;
        let mut bias = p.values(B_IH);
        if let Some(max) = self.chrono_max {
            let mut hh = p.values(B_HH);
            for u in 0..h {
                let f = rng.gen_range(1.0..(max - 1.0)).ln() as f32;
                bias[h + u] = f; // forget block
                bias[u] = -f; // input block
                hh[h + u] = 0.0;
                hh[u] = 0.0;
            }
            p.set(B_HH, hh)?;
        }
        (h..2 * h).for_each(|i| bias[i] += self.forget_bias as f32);
        p.set(B_IH, bias)
    }

    fn step(&self, _: &(), p: &CellParams, x: Traced, state: LayerState) -> Step {
        let [h_prev, c_prev] = state.into_array();
        let hidden = h_prev.shape().0;
        let gates = p.affine(W_IH, B_IH, x) + p.affine(W_HH, B_HH, h_prev);
        let mut g = gate_blocks(gates, 4, hidden).into_iter();
        let (i, f, cell, o) = (g.next().unwrap().sigmoid(), g.next().unwrap().sigmoid(), g.next().unwrap().tanh(), g.next().unwrap().sigmoid());
        let c = f * c_prev + i * cell;
        let (c_state, c_out) = fork(c);
        let h = o * c_out.tanh();
        let (h_state, h_out) = fork(h);
        Step::new(h_out, vec![h_state, c_state])
    }

    fn fused(&self, ctx: &ForwardContext) -> bool {
        self.path.fused_for(ctx.recorder.is_some())
    }

    /// The whole sequence through the fused kernel, attached to the tape as one op.
    fn fused_sequence(&self, _: &(), p: &CellParams, ctx: &mut ForwardContext, inputs: Vec<Traced>, state: LayerState) -> Result<SequenceOutput, LayerError> {
        lstm_sequence(p, LayerInputs::Traced(inputs), state, !ctx.backward)
    }

    /// The kernel reads the data straight into its step operands.
    fn fused_sequence_from_data(&self, _: &(), p: &CellParams, ctx: &mut ForwardContext, inputs: &dyn StepInputs, state: LayerState) -> Result<SequenceOutput, LayerError> {
        lstm_sequence(p, LayerInputs::Data(inputs), state, !ctx.backward)
    }
}

/// The fused LSTM over a sequence. Its inputs get no gradients: an LSTM is its network's
/// first layer (a kernel's backward forms them only when asked, as the CUDA tests do).
/// With `forward_only` (evaluation) the kernel keeps nothing for a backward pass.
fn lstm_sequence(p: &CellParams, inputs: LayerInputs, state: LayerState, forward_only: bool) -> Result<SequenceOutput, LayerError> {
    let dev = device();
    let input = p.value(W_IH).shape().1;
    inputs.check("lstm", input)?;
    let (steps, batch) = (inputs.steps(), inputs.batch());
    let (sources, state, mut tape) = inputs.detach(state);
    let h = state[0].shape().0;
    let params: Vec<Matrix> = [W_IH, W_HH, B_IH, B_HH].iter().map(|n| p.value(n).clone()).collect();
    let param_values: Vec<Vec<f32>> = params.iter().map(values).collect();
    let weights = LstmWeights { w_ih: &param_values[0], w_hh: &param_values[1], b_ih: &param_values[2], b_hh: &param_values[3] };
    let fill = |t: usize, out: &mut [f32]| sources.fill(t, out);
    let run = timed(|| "lstm forward".into(), || engine::run(&weights, h, input, batch, steps, &fill, &values(&state[0]), &values(&state[1]), forward_only)).map_err(|problem| LayerError { layer: "lstm".into(), problem })?;
    // the outputs as one step-major block [T·H, B]; the state h is h_T again, a tensor
    // of its own whose gradient joins step T's
    let (outputs, c_last) = engine::results(&run, steps).map_err(|problem| LayerError { layer: "lstm".into(), problem })?;
    let h_last = outputs[(steps - 1) * h * batch..].to_vec();
    let all = matrix(&dev, outputs, steps * h, batch);
    let (h_last, c_last) = (matrix(&dev, h_last, h, batch), matrix(&dev, c_last, h, batch));
    let start = state;
    let (all_key, h_key, c_key) = (all.clone(), h_last.clone(), c_last.clone());
    tape.add_backward_op(move |grads| {
        // an evaluation pass (`ForwardContext::evaluation`) kept no history to go back through
        assert!(!forward_only, "the LSTM: a backward pass through an evaluation forward pass (ForwardContext::backward was false)");
        let mut d_h = grad_of(grads, &all_key)?;
        let d_h_last = grad_of(grads, &h_key)?;
        d_h[(steps - 1) * h * batch..].iter_mut().zip(&d_h_last).for_each(|(d, e)| *d += e);
        let d_c = grad_of(grads, &c_key)?;
        // an LSTM is its network's first layer: its inputs are data and need no gradients
        let g = timed(|| "lstm backward".into(), || engine::backward(&run, &d_h, &d_c))?;
        for (param, grad) in params.iter().zip([&g.w_ih, &g.w_hh, &g.bias, &g.bias]) {
            add_grad(grads, param, grad)?;
        }
        add_grad(grads, &start[0], &g.h0)?;
        add_grad(grads, &start[1], &g.c0)
    });
    Ok(finish_stacked(tape, &all, vec![h_last, c_last]))
}

/// The pass on the CPU kernel, or on the CUDA kernels where they are selected
/// (`fused::kernels`: always in a CUDA build; on the host shim when a test asks).
mod engine {
    use super::super::lstm_kernel::{LstmForward, LstmGrads, LstmWeights};
    #[cfg(any(test, feature = "cuda"))]
    use crate::fused::kernels;
    use elmlab_host_ops::tape::DevError;

    pub enum Run {
        Cpu(LstmForward<f32>),
        #[cfg(any(test, feature = "cuda"))]
        Kernels { layer: elmlab_cuda_kernels::LstmLayerBuffers<kernels::KernelDevice>, sequence: elmlab_cuda_kernels::LstmSequence<kernels::KernelDevice>, hidden: usize },
    }

    /// `steps` steps whose inputs (`[I, B]` each) `fill` writes.
    #[allow(clippy::too_many_arguments)]
    pub fn run(w: &LstmWeights<f32>, hidden: usize, input: usize, batch: usize, steps: usize, fill: &dyn Fn(usize, &mut [f32]), h0: &[f32], c0: &[f32], forward_only: bool) -> Result<Run, String> {
        #[cfg(any(test, feature = "cuda"))]
        if kernels::selected() {
            let mut xs = vec![0.0; steps * input * batch];
            for (t, x) in xs.chunks_exact_mut((input * batch).max(1)).enumerate().take(steps) {
                fill(t, x);
            }
            return kernels::with_kernels(|device| {
                let layer = elmlab_cuda_kernels::LstmLayerBuffers::new(device, hidden, input, w.w_ih, w.w_hh, w.b_ih, w.b_hh).map_err(|e| e.to_string())?;
                let sequence = layer.forward(device, &xs, steps, batch, h0, c0).map_err(|e| e.to_string())?;
                Ok(Run::Kernels { layer, sequence, hidden })
            });
        }
        Ok(Run::Cpu(LstmForward::run_with(w, hidden, input, batch, steps, fill, h0, c0, forward_only)))
    }

    /// `h_1..h_T` `[T, H, B]` and `c_T`.
    pub fn results(run: &Run, steps: usize) -> Result<(Vec<f32>, Vec<f32>), String> {
        match run {
            Run::Cpu(r) => Ok((r.outputs(), r.c(steps))),
            #[cfg(any(test, feature = "cuda"))]
            Run::Kernels { sequence, hidden, .. } => kernels::with_kernels(|device| sequence.results(device, *hidden).map_err(|e| e.to_string())),
        }
    }

    /// An LSTM is its network's first layer: its inputs are data and need no gradients.
    pub fn backward(run: &Run, d_h: &[f32], d_c: &[f32]) -> Result<LstmGrads<f32>, DevError> {
        match run {
            Run::Cpu(r) => Ok(r.backward(d_h, d_c, false)),
            #[cfg(any(test, feature = "cuda"))]
            Run::Kernels { layer, sequence, .. } => {
                let g = kernels::with_kernels(|device| layer.backward(device, sequence, d_h, d_c, false).map_err(|e| e.to_string())).map_err(|e| kernels::backward_failed("LSTM", e))?;
                Ok(LstmGrads { w_ih: g.w_ih, w_hh: g.w_hh, bias: g.bias, inputs: Vec::new(), h0: g.h0, c0: g.c0 })
            }
        }
    }
}
