//! The neuron-model contract: a configured model contributes one or more recurrent
//! layers to a network, declares their sizes in closed form, and builds them.

use crate::connectivity::Connectivity;
use crate::error::PluginError;
use crate::params::ParamStore;
use crate::tensor::{Matrix, Traced, TracedScalar};
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;

/// What the network around the neuron model looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkShape {
    /// Hidden units `N`.
    pub units: usize,
    /// Width of the encoded input `D_in`.
    pub input_width: usize,
    /// Classes (or vocabulary) `C` of the task.
    pub classes: usize,
    /// Synapses per hidden unit after the connectivity pattern had its say (`k_c`);
    /// `None` for models with their own dense wiring (LSTM, GRU).
    pub fan_in: Option<usize>,
}

/// Closed-form accounting of one layer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LayerPlan {
    /// Layer name; also the prefix of its parameters (`hidden.w_s`).
    pub name: String,
    pub units: usize,
    /// Trainable parameters per unit besides the synapses (`k_e`).
    pub k_e: usize,
    /// Synapses per unit (`k_c`); 0 for densely wired models.
    pub k_c: usize,
    /// Trainable parameters of the whole layer.
    pub params: usize,
    /// Floating-point operations per time step for one sequence (multiply and add count 2).
    pub flops_per_step: u64,
}

/// A neuron model configured from its settings, not yet sized.
pub trait NeuronModel: Send + Sync {
    /// Synapses per unit the model asks of the connectivity pattern, or `None` when the
    /// model wires itself densely and takes no connectivity pattern.
    fn requested_fan_in(&self) -> Option<usize>;
    /// The layers the model contributes for this shape, counted in closed form.
    fn plan(&self, shape: &NetworkShape) -> Vec<LayerPlan>;
    /// Creates the layers' parameters in `store` and returns the layers, in order.
    fn build(
        &self,
        shape: &NetworkShape,
        wiring: &dyn Connectivity,
        store: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Box<dyn RecurrentLayer>>, PluginError>;
}

/// Per-forward-pass context shared by the layers.
pub struct ForwardContext {
    /// Training (dropout on, penalties computed) or evaluation.
    pub training: bool,
    /// Randomness of this pass (dropout masks), derived from the seed and step.
    pub rng: ChaCha8Rng,
    /// Named, already-weighted regularisation terms; the trainer adds them to the loss
    /// and reports each separately.
    pub penalties: Vec<(String, TracedScalar)>,
    /// When set, layers record their internal states per step (`elmlab record`).
    pub recorder: Option<Recorder>,
}

impl ForwardContext {
    pub fn new(training: bool, rng: ChaCha8Rng) -> Self {
        ForwardContext { training, rng, penalties: Vec::new(), recorder: None }
    }

    /// Records `value` (`[rows, batch]`, rows laid out as `row_shape`) as the next step of `name`.
    pub fn record(&mut self, name: &str, row_shape: &[usize], value: &Traced) {
        if let Some(r) = self.recorder.as_mut() {
            r.push(name, row_shape, value.as_vec());
        }
    }
}

/// Per-step values of named internal states, gathered during a forward pass.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// name → (shape of one step's row for one sequence, one `[rows, batch]` vector per step)
    pub series: std::collections::BTreeMap<String, (Vec<usize>, Vec<Vec<f32>>)>,
}

impl Recorder {
    pub fn push(&mut self, name: &str, row_shape: &[usize], values: Vec<f32>) {
        self.series.entry(name.to_string()).or_insert_with(|| (row_shape.to_vec(), Vec::new())).1.push(values);
    }

    /// Each series as a `[batch, steps, row_shape...]` array (row-major values and shape).
    pub fn arrays(&self, batch: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        self.series
            .iter()
            .map(|(name, (row_shape, steps))| {
                let rows: usize = row_shape.iter().product();
                let mut out = Vec::with_capacity(batch * steps.len() * rows);
                for b in 0..batch {
                    for step in steps {
                        out.extend((0..rows).map(|r| step[r * batch + b]));
                    }
                }
                let mut shape = vec![batch, steps.len()];
                shape.extend(row_shape);
                (name.clone(), shape, out)
            })
            .collect()
    }
}

/// A layer's recurrent state: matrices `[rows, batch]`, starting at zero.
pub type LayerState = Vec<Traced>;

/// What a layer produces over a sequence.
pub struct SequenceOutput {
    /// One `[units, batch]` output per step. Each carries a fresh tape: the history of the
    /// outputs travels with `state`. Empty when `stacked` holds the outputs.
    pub outputs: Vec<Traced>,
    /// Or every step's output in one `[steps·units, batch]` matrix, step-major (rows
    /// `t·units..(t+1)·units` are step `t`), on a fresh tape: what a fused layer has
    /// without cutting it into per-step tensors. The network maps it to logits whole, or
    /// cuts it ([`SequenceOutput::into_steps`]) where per-step outputs are needed.
    pub stacked: Option<Traced>,
    /// The state after the last step; it holds the history of the whole sequence, and
    /// the caller must merge its tape into the loss.
    pub state: LayerState,
}

impl SequenceOutput {
    /// Outputs one per step.
    pub fn per_step(outputs: Vec<Traced>, state: LayerState) -> Self {
        SequenceOutput { outputs, stacked: None, state }
    }

    /// Every step's output in one step-major block `[steps·units, batch]`.
    pub fn stacked(all: Traced, state: LayerState) -> Self {
        SequenceOutput { outputs: Vec::new(), stacked: Some(all), state }
    }

    /// The outputs one per step (`[units, batch]` each), cutting a stacked block into
    /// `steps` row blocks (slices on the tape: their gradients reach the block).
    pub fn into_steps(self, steps: usize) -> (Vec<Traced>, LayerState) {
        let Some(all) = self.stacked else { return (self.outputs, self.state) };
        let rows = all.shape().0 / steps.max(1);
        assert_eq!(rows * steps, all.shape().0, "a stacked output of {} rows cannot hold {steps} steps", all.shape().0);
        let (value, tape) = all.split_tape();
        // whatever the block's tape holds goes with the first step
        let mut history = Some(tape);
        let outputs = (0..steps)
            .map(|t| {
                let traced = match history.take() {
                    Some(tape) => value.clone().put_tape(tape),
                    None => value.retaped(),
                };
                traced.slice((t * rows..(t + 1) * rows, ..))
            })
            .collect();
        (outputs, self.state)
    }
}

/// One recurrent layer of a built network. Not `Send`: dfdx's CUDA device (it holds a raw
/// CUDA stream) is not, and a network stays on the thread that built it.
pub trait RecurrentLayer {
    fn name(&self) -> &str;
    fn units(&self) -> usize;
    fn input_width(&self) -> usize;
    /// Rows of each state matrix (each is `[rows, batch]`).
    fn state_rows(&self) -> Vec<usize>;
    /// One time step: input `[input_width, batch]`, state in, `(output [units, batch], state)` out.
    /// Output and state may carry any tapes; [`RecurrentLayer::sequence`] moves the
    /// output's history into the state, and the trainer merges the final state into the loss.
    fn step(&self, params: &ParamStore, ctx: &mut ForwardContext, input: Traced, state: LayerState) -> (Traced, LayerState);

    /// A whole sequence. The default runs [`RecurrentLayer::step`] ([`step_by_step`]); a
    /// fused path may override it and must then equal the step path.
    fn sequence(&self, params: &ParamStore, ctx: &mut ForwardContext, inputs: Vec<Traced>, state: LayerState) -> SequenceOutput {
        step_by_step(self, params, ctx, inputs, state)
    }

    /// A zero state for `batch` sequences.
    fn zero_state(&self, batch: usize) -> Vec<Matrix> {
        let dev = crate::tensor::device();
        self.state_rows().into_iter().map(|rows| crate::tensor::matrix(&dev, vec![0.0; rows * batch], rows, batch)).collect()
    }
}

/// A whole sequence through [`RecurrentLayer::step`]: the reference every fused
/// [`RecurrentLayer::sequence`] must equal, and its fallback.
pub fn step_by_step<L: RecurrentLayer + ?Sized>(layer: &L, params: &ParamStore, ctx: &mut ForwardContext, inputs: Vec<Traced>, state: LayerState) -> SequenceOutput {
    let mut state = state;
    let mut outputs = Vec::with_capacity(inputs.len());
    for x in inputs {
        let (out, next) = layer.step(params, ctx, x, state);
        // Emit the output on a fresh tape; its history joins the state's, so outputs
        // that never reach the loss (all but the last, for last-step tasks) lose nothing.
        let (keep, emit) = crate::tensor::fork(out);
        ctx.record(&format!("{}.activity", layer.name()), &[layer.units()], &emit);
        state = next;
        outputs.push(emit);
        if !state.is_empty() {
            let first = state.remove(0);
            state.insert(0, crate::tensor::absorb(first, keep));
        }
    }
    SequenceOutput::per_step(outputs, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{device, matrix, trace};

    /// Cutting a stacked block into steps gives each step's rows, and the gradients of
    /// the steps reach the block in its rows.
    #[test]
    fn into_steps_cuts_rows_and_returns_their_gradients() {
        let dev = device();
        let block = matrix(&dev, (0..12).map(|v| v as f32).collect(), 6, 2); // 3 steps × [2, 2]
        let (steps, _) = SequenceOutput::stacked(trace(&block), Vec::new()).into_steps(3);
        assert_eq!(steps.iter().map(|s| s.as_vec()).collect::<Vec<_>>(), vec![vec![0.0, 1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0, 7.0], vec![8.0, 9.0, 10.0, 11.0]]);
        // loss Σ_t (t+1)·Σ step_t: the block's gradient is t+1 on step t's rows
        let mut steps = steps.into_iter().enumerate();
        let (_, first) = steps.next().unwrap();
        let mut loss = first.sum::<(), _>();
        for (t, step) in steps {
            loss = loss + step.sum::<(), _>() * (t + 1) as f32;
        }
        let grads = loss.backward();
        assert_eq!(grads.get(&block).as_vec(), vec![1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0]);
    }
}
