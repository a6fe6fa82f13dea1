//! The network and its forward pass: input encoding → the neuron model's recurrent
//! layers → a dense output map to class logits; loss and gradients of a batch.

mod recipe;

pub use recipe::{ModelPlan, ModelRecipe};

use crate::loss::{cross_entropy, BatchStats};
use elmlab_core::dfdx::prelude::*;
use elmlab_core::error::LayerError;
use elmlab_core::neuron::{check_state, EncodedInputs, ForwardContext, History, LayerState, Outputs, RecurrentLayer};
use elmlab_core::params::ParamStore;
use elmlab_core::task::{Batch, Carry, LossAt};
use elmlab_core::tensor::{device, matrix, trace, Matrix, Traced};
use elmlab_host_ops as host_op;
use rand_chacha::ChaCha8Rng;

/// A built network: its layers and its parameters.
pub struct Network {
    pub layers: Vec<Box<dyn RecurrentLayer>>,
    pub params: ParamStore,
    pub classes: usize,
    pub input_width: usize,
}

/// Every layer's recurrent state, detached: per layer, its `[rows, batch]` matrices.
pub type NetworkState = Vec<Vec<Matrix>>;

/// Logits at the read steps plus the histories the loss must absorb.
pub struct ForwardPass {
    /// Logits `[classes, columns]`, the read positions step-major (column `t·B + s` is
    /// sequence `s` at read step `t`): one matrix per read step, or one for all of them.
    pub logits: Vec<Traced>,
    /// The state after the last step, detached (no gradient flows back through it).
    pub final_state: NetworkState,
    /// Each layer's history; the loss merges them.
    pub histories: Vec<History>,
}

impl ForwardPass {
    /// The logits of each read step, `[classes, batch]` each, however they are laid out.
    pub fn step_logits(&self, batch: usize) -> Vec<Vec<f32>> {
        let mut steps = Vec::new();
        for logits in &self.logits {
            let (classes, columns) = *logits.shape();
            let values = logits.as_vec();
            for first in (0..columns).step_by(batch.max(1)) {
                steps.push((0..classes).flat_map(|c| values[c * columns + first..][..batch].iter().copied()).collect());
            }
        }
        steps
    }
}

/// The result of one forward and backward pass.
pub struct Gradients {
    /// Total loss (cross-entropy plus penalties).
    pub loss: f32,
    pub stats: BatchStats,
    /// Each penalty's value, as added to the loss.
    pub penalties: Vec<(String, f32)>,
    /// One gradient per parameter, in store order.
    pub grads: Vec<Matrix>,
    /// The state after the batch, detached, for the next batch to continue from.
    pub final_state: NetworkState,
}

impl Network {
    /// A batch's inputs as the first layer reads them, a step at a time.
    pub fn inputs_of<'a>(&self, batch: &'a Batch) -> EncodedInputs<'a> {
        EncodedInputs { inputs: &batch.inputs, steps: batch.steps, batch: batch.batch, width: self.input_width }
    }

    /// The state a batch starts from: zero, or `carried` (for [`Carry::Continue`]) with
    /// the sequences marked for reset zeroed. A carried state that does not fit the
    /// layers (a checkpoint of another model) is refused.
    fn initial_state(&self, batch: &Batch, carried: Option<&NetworkState>) -> Result<NetworkState, LayerError> {
        let (Carry::Continue { reset }, Some(state)) = (&batch.carry, carried) else {
            return Ok(self.layers.iter().map(|l| l.zero_state(batch.batch)).collect());
        };
        if state.len() != self.layers.len() {
            return Ok(self.layers.iter().map(|l| l.zero_state(batch.batch)).collect());
        }
        let dev = device();
        let mut out = Vec::with_capacity(state.len());
        for (layer, parts) in self.layers.iter().zip(state) {
            let traced = LayerState::new(parts.iter().map(trace).collect());
            check_state(layer.name(), &layer.state_parts(), &traced, batch.batch)
                .map_err(|e| LayerError { layer: e.layer, problem: format!("cannot continue from the carried state: {}", e.problem) })?;
            let reset_parts = parts
                .iter()
                .map(|m| {
                    let (rows, cols) = *m.shape();
                    let mut v = m.as_vec();
                    for (b, _) in reset.iter().enumerate().filter(|(_, r)| **r) {
                        (0..rows).for_each(|r| v[r * cols + b] = 0.0);
                    }
                    matrix(&dev, v, rows, cols)
                })
                .collect();
            out.push(reset_parts);
        }
        Ok(out)
    }

    /// Runs the whole network over a batch from `carried` state (used when the batch
    /// says [`Carry::Continue`]); returns logits where `loss_at` reads and the final
    /// state. What each layer hands back is checked against what it declares.
    pub fn forward(&self, ctx: &mut ForwardContext, batch: &Batch, loss_at: LossAt, carried: Option<&NetworkState>) -> Result<ForwardPass, LayerError> {
        let initial = self.initial_state(batch, carried)?;
        // the first layer reads the data itself; each later one the outputs of the one before
        let data = self.inputs_of(batch);
        let mut xs: Vec<Traced> = Vec::new();
        let mut histories = Vec::with_capacity(self.layers.len());
        let mut final_state = Vec::with_capacity(self.layers.len());
        // the output map as one host op over all read steps (recording wants per-step logits);
        // the last layer's outputs as one step-major block where it reads every step
        let on_host = host_op::AVAILABLE && ctx.recorder.is_none();
        let whole = on_host && loss_at == LossAt::EveryStep;
        let mut stacked = None;
        for (index, (layer, start)) in self.layers.iter().zip(initial).enumerate() {
            let state = LayerState::new(start.iter().map(trace).collect());
            let out = if index == 0 { layer.sequence_from_data(&self.params, ctx, &data, state)? } else { layer.sequence(&self.params, ctx, xs, state)? };
            out.outputs().check(layer.name(), layer.units(), batch.steps, batch.batch)?;
            check_state(layer.name(), &layer.state_parts(), out.state(), batch.batch)?;
            let (outputs, state, history) = out.into_parts();
            histories.push(history);
            final_state.push(state.parts().iter().map(|s| s.retaped::<NoneTape>()).collect());
            xs = match outputs {
                Outputs::Stacked(all) if whole && index + 1 == self.layers.len() => {
                    stacked = Some(all);
                    Vec::new()
                }
                outputs => outputs.into_steps(batch.steps),
            };
        }
        let (weight, bias) = (&self.params.get("output.weight").value, &self.params.get("output.bias").value);
        if let Some(all) = stacked {
            let logits = vec![host_op::affine_stacked(weight, bias, all, batch.steps)];
            return Ok(ForwardPass { logits, final_state, histories });
        }
        let read: Vec<Traced> = match loss_at {
            LossAt::LastStep => xs.pop().into_iter().collect(),
            LossAt::EveryStep => xs,
        };
        let logits: Vec<Traced> = if read.len() > 1 && on_host {
            // every read step through one product and one loss (one op each instead of one per step)
            vec![host_op::affine_columns(weight, bias, read)]
        } else {
            let logits: Vec<Traced> = read.into_iter().map(|a| self.output_map(a, batch.batch)).collect();
            for l in &logits {
                ctx.record("logits", &[self.classes], l);
            }
            logits
        };
        Ok(ForwardPass { logits, final_state, histories })
    }

    /// Logits `[classes, columns]` of activations `a` (`[units, columns]`).
    fn output_map(&self, a: Traced, columns: usize) -> Traced {
        let w = self.params.traced("output.weight");
        let bias = self.params.traced_vector("output.bias").broadcast_like::<(usize, usize), Axis<1>>(&(self.classes, columns));
        w.matmul(a) + bias
    }

    /// Loss and gradients of every parameter for one batch.
    pub fn loss_and_gradients(&self, ctx: &mut ForwardContext, batch: &Batch, loss_at: LossAt, smoothing: f64, carried: Option<&NetworkState>) -> Result<Gradients, LayerError> {
        let mut pass = self.forward(ctx, batch, loss_at, carried)?;
        let final_state = std::mem::take(&mut pass.final_state);
        let (mut loss, stats) = cross_entropy(pass, &batch.targets, self.classes, smoothing);
        let mut penalties = Vec::new();
        for (name, term) in ctx.penalties.drain(..) {
            penalties.push((name, term.array()));
            loss = loss + term;
        }
        let value = loss.array();
        let mut grads = loss.backward();
        let grads = self
            .params
            .iter()
            .map(|p| {
                // A parameter the loss never reached gets a zero gradient, not a panic.
                grads.try_alloc_for(&p.value).expect("allocating a gradient");
                grads.get(&p.value)
            })
            .collect();
        Ok(Gradients { loss: value, stats, penalties, grads, final_state })
    }

    /// Runs a batch in evaluation mode and returns every recorded series as
    /// `[batch, steps, ...]` arrays: `logits`, `<layer>.activity`, and what layers add
    /// (`hidden.memory` for ELM).
    pub fn record(&self, batch: &Batch, rng: ChaCha8Rng) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>, LayerError> {
        let mut ctx = ForwardContext::new(false, rng);
        ctx.recorder = Some(Default::default());
        drop(self.forward(&mut ctx, batch, LossAt::EveryStep, None)?);
        Ok(ctx.recorder.map(|r| r.arrays(batch.batch)).unwrap_or_default())
    }

    /// Loss statistics of one batch without gradients (evaluation), and the state after it.
    pub fn evaluate_batch(&self, ctx: &mut ForwardContext, batch: &Batch, loss_at: LossAt, carried: Option<&NetworkState>) -> Result<(BatchStats, NetworkState), LayerError> {
        let mut pass = self.forward(ctx, batch, loss_at, carried)?;
        let final_state = std::mem::take(&mut pass.final_state);
        Ok((cross_entropy(pass, &batch.targets, self.classes, 0.0).1, final_state))
    }
}
