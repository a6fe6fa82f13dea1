//! LSTM: `i, f, o = σ(·)`, `g = tanh(·)`, `c_t = f⊙c_{t−1} + i⊙g`, `h_t = o⊙tanh(c_t)`.

use super::{affine, gate_blocks, gated_plan, init_gated};
use elmlab_kernel::connectivity::Connectivity;
use elmlab_kernel::error::PluginError;
use crate::fused::lstm_kernel::{LstmForward, LstmWeights};
use crate::fused::tape::{add_grad, detach, finish_stacked, grad_of};
use crate::fused::{Path, PATH_FIELD};
use elmlab_kernel::dfdx::prelude::*;
use elmlab_kernel::neuron::{step_by_step, ForwardContext, LayerPlan, LayerState, NetworkShape, NeuronModel, RecurrentLayer, SequenceOutput};
use elmlab_kernel::params::ParamStore;
use elmlab_kernel::registry::NeuronEntry;
use elmlab_kernel::schema::{DefaultValue as D, FieldKind as K, FieldSpec as F, Settings};
use elmlab_kernel::tensor::{device, fork, matrix, values, Matrix, Traced};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

static FIELDS: &[F] = &[
    F::new("forget_bias", K::Float { min: f64::NEG_INFINITY }, D::Float(0.0), "added to the forget gate's input bias after initialisation (e.g. 1.0)"),
    F::new("init", K::Choice(&["uniform", "chrono"]), D::Text("uniform"), "chrono: forget bias log(U(1, chrono_max − 1)), input bias its negative"),
    F::new("chrono_max", K::Float { min: 2.0 }, D::Float(1000.0), "longest dependency (in steps) chrono initialisation prepares for"),
    PATH_FIELD,
];

elmlab_kernel::inventory::submit! {
    NeuronEntry { name: "lstm", doc: "LSTM, densely wired, PyTorch layout (weight_ih_l0, ...); gates i, f, g, o", fields: FIELDS, build }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Lstm {
    pub forget_bias: f64,
    pub chrono_max: Option<f64>,
    pub path: Path,
}

fn build(s: &Settings) -> Result<Box<dyn NeuronModel>, PluginError> {
    Ok(Box::new(Lstm { forget_bias: s.float("forget_bias"), chrono_max: (s.text("init") == "chrono").then(|| s.float("chrono_max")), path: Path::parse(s.text("path"))? }))
}

impl NeuronModel for Lstm {
    fn requested_fan_in(&self) -> Option<usize> {
        None
    }
    fn plan(&self, shape: &NetworkShape) -> Vec<LayerPlan> {
        vec![gated_plan("lstm", 4, shape.units, shape.input_width)]
    }
    fn build(&self, shape: &NetworkShape, _wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Vec<Box<dyn RecurrentLayer>>, PluginError> {
        let h = shape.units;
        init_gated(store, "lstm", 4, h, shape.input_width, rng);
        let mut bias = store.values("lstm.bias_ih_l0");
        if let Some(max) = self.chrono_max {
            let mut hh = store.values("lstm.bias_hh_l0");
            for u in 0..h {
                let f = rng.gen_range(1.0..(max - 1.0)).ln() as f32;
                bias[h + u] = f; // forget block
                bias[u] = -f; // input block
                hh[h + u] = 0.0;
                hh[u] = 0.0;
            }
            store.load_values("lstm.bias_hh_l0", hh).map_err(PluginError::new)?;
        }
        (h..2 * h).for_each(|i| bias[i] += self.forget_bias as f32);
        store.load_values("lstm.bias_ih_l0", bias).map_err(PluginError::new)?;
        Ok(vec![Box::new(LstmLayer { hidden: h, input: shape.input_width, path: self.path })])
    }
}

pub struct LstmLayer {
    hidden: usize,
    input: usize,
    path: Path,
}

const W_IH: &str = "lstm.weight_ih_l0";
const W_HH: &str = "lstm.weight_hh_l0";
const B_IH: &str = "lstm.bias_ih_l0";
const B_HH: &str = "lstm.bias_hh_l0";

impl LstmLayer {
    /// The whole sequence through the fused kernel, attached to the tape as one op.
    fn fused(&self, p: &ParamStore, inputs: Vec<Traced>, state: LayerState) -> SequenceOutput {
        let (h, dev) = (self.hidden, device());
        let d = detach(inputs, state);
        let batch = d.inputs[0].shape().1;
        let params: Vec<Matrix> = [W_IH, W_HH, B_IH, B_HH].iter().map(|n| p.get(n).value.clone()).collect();
        let param_values: Vec<Vec<f32>> = params.iter().map(values).collect();
        let xs: Vec<Vec<f32>> = d.inputs.iter().map(values).collect();
        let x_refs: Vec<&[f32]> = xs.iter().map(|x| x.as_slice()).collect();
        let weights = LstmWeights { w_ih: &param_values[0], w_hh: &param_values[1], b_ih: &param_values[2], b_hh: &param_values[3] };
        let run = LstmForward::run(&weights, h, self.input, batch, &x_refs, &values(&d.state[0]), &values(&d.state[1]));
        let steps = xs.len();
        // the outputs as one step-major block [T·H, B]; the state h is h_T again, a tensor
        // of its own whose gradient joins step T's
        let all = matrix(&dev, run.outputs(), steps * h, batch);
        let (h_last, c_last) = (matrix(&dev, run.h(steps), h, batch), matrix(&dev, run.c(steps), h, batch));
        let start = d.state;
        let (all_key, h_key, c_key) = (all.clone(), h_last.clone(), c_last.clone());
        let mut tape = d.tape;
        tape.add_backward_op(move |grads| {
            let mut d_h = grad_of(grads, &all_key)?;
            let d_h_last = grad_of(grads, &h_key)?;
            d_h[(steps - 1) * h * batch..].iter_mut().zip(&d_h_last).for_each(|(d, e)| *d += e);
            let d_c = grad_of(grads, &c_key)?;
            // an LSTM is its network's first layer: its inputs are data and need no gradients
            let g = run.backward(&d_h, &d_c, false);
            for (param, grad) in params.iter().zip([&g.w_ih, &g.w_hh, &g.bias, &g.bias]) {
                add_grad(grads, param, grad)?;
            }
            add_grad(grads, &start[0], &g.h0)?;
            add_grad(grads, &start[1], &g.c0)
        });
        finish_stacked(tape, &all, vec![h_last, c_last])
    }
}

impl RecurrentLayer for LstmLayer {
    fn name(&self) -> &str {
        "lstm"
    }
    fn units(&self) -> usize {
        self.hidden
    }
    fn input_width(&self) -> usize {
        self.input
    }
    fn state_rows(&self) -> Vec<usize> {
        vec![self.hidden, self.hidden] // h, c
    }
    fn step(&self, p: &ParamStore, _ctx: &mut ForwardContext, x: Traced, state: LayerState) -> (Traced, LayerState) {
        let mut state = state.into_iter();
        let (h_prev, c_prev) = (state.next().expect("h"), state.next().expect("c"));
        let gates = affine(p, "lstm.weight_ih_l0", "lstm.bias_ih_l0", x) + affine(p, "lstm.weight_hh_l0", "lstm.bias_hh_l0", h_prev);
        let mut g = gate_blocks(gates, 4, self.hidden).into_iter();
        let (i, f, cell, o) = (g.next().unwrap().sigmoid(), g.next().unwrap().sigmoid(), g.next().unwrap().tanh(), g.next().unwrap().sigmoid());
        let c = f * c_prev + i * cell;
        let (c_state, c_out) = fork(c);
        let h = o * c_out.tanh();
        let (h_state, h_out) = fork(h);
        (h_out, vec![h_state, c_state])
    }

    fn sequence(&self, p: &ParamStore, ctx: &mut ForwardContext, inputs: Vec<Traced>, state: LayerState) -> SequenceOutput {
        if inputs.is_empty() || !self.path.fused_for(ctx.recorder.is_some()) {
            return step_by_step(self, p, ctx, inputs, state);
        }
        self.fused(p, inputs, state)
    }
}
