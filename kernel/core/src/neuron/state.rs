//! What a layer carries from step to step and hands back over a sequence, with the
//! history made explicit. dfdx records each operation on the tape of the tensor it
//! produced; a tape that never reaches the loss drops its gradients silently. Here every
//! tape a layer returns (outputs and state alike) is moved into the sequence's
//! [`History`], and the values travel on fresh tapes, so no result can lose its history.

use super::{ForwardContext, RecurrentLayer};
use crate::error::LayerError;
use crate::params::ParamStore;
use crate::tensor::{Dev, Tape, Traced};
use dfdx::prelude::*;

/// One named part of a layer's recurrent state: a `[rows, batch]` matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatePart {
    pub name: &'static str,
    pub rows: usize,
}

impl StatePart {
    pub fn new(name: &'static str, rows: usize) -> Self {
        StatePart { name, rows }
    }
}

/// A layer's recurrent state: one matrix per declared [`StatePart`], in order.
pub struct LayerState {
    parts: Vec<Traced>,
}

impl LayerState {
    pub fn new(parts: Vec<Traced>) -> Self {
        LayerState { parts }
    }
    pub fn len(&self) -> usize {
        self.parts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
    pub fn parts(&self) -> &[Traced] {
        &self.parts
    }
    pub fn into_parts(self) -> Vec<Traced> {
        self.parts
    }
    /// The parts as an array, for a layer that declared exactly `K` of them (the network
    /// hands every layer the parts it declared).
    pub fn into_array<const K: usize>(self) -> [Traced; K] {
        let len = self.parts.len();
        self.parts.try_into().unwrap_or_else(|_| panic!("a layer declared {K} state parts and received {len}"))
    }
}

/// The recorded operations behind a layer's results. The network merges it into the
/// loss; whatever a layer returns has its tape moved here.
#[must_use = "a history that does not reach the loss drops its gradients"]
#[derive(Default)]
pub struct History {
    tape: Tape,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }
    /// Moves `t`'s tape into the history; the value continues on a fresh tape.
    pub fn take<S: Shape>(&mut self, t: Tensor<S, f32, Dev, Tape>) -> Tensor<S, f32, Dev, Tape> {
        let (value, tape) = t.split_tape();
        self.add(tape);
        value.put_tape(Tape::default())
    }
    /// Adds recorded operations (a fused layer's merged tape with its backward op).
    pub fn add(&mut self, tape: Tape) {
        self.tape = std::mem::take(&mut self.tape).merge(tape);
    }
    pub fn merge(&mut self, other: History) {
        self.add(other.tape);
    }
    pub fn into_tape(self) -> Tape {
        self.tape
    }
}

/// A layer's outputs over a sequence.
pub enum Outputs {
    /// One `[units, batch]` matrix per step.
    PerStep(Vec<Traced>),
    /// Every step in one step-major block `[steps·units, batch]` (rows `t·units..(t+1)·units`
    /// are step `t`): what a fused layer has without cutting it into per-step tensors.
    Stacked(Traced),
}

/// What one step produces.
pub struct Step {
    pub output: Traced,
    pub state: LayerState,
}

impl Step {
    pub fn new(output: Traced, state: Vec<Traced>) -> Self {
        Step { output, state: LayerState::new(state) }
    }
}

/// What a layer produces over a sequence: outputs and final state on fresh tapes, and
/// the history of all of it.
pub struct SequenceOutput {
    outputs: Outputs,
    state: LayerState,
    history: History,
}

impl SequenceOutput {
    /// Outputs one per step; every tape they and `state` carry moves into the history.
    pub fn per_step(outputs: Vec<Traced>, state: LayerState) -> Self {
        let mut history = History::new();
        let outputs = outputs.into_iter().map(|o| history.take(o)).collect();
        let state = LayerState::new(state.into_parts().into_iter().map(|s| history.take(s)).collect());
        SequenceOutput { outputs: Outputs::PerStep(outputs), state, history }
    }

    /// Every step's output in one step-major block `[steps·units, batch]`.
    pub fn stacked(all: Traced, state: LayerState) -> Self {
        let mut history = History::new();
        let all = history.take(all);
        let state = LayerState::new(state.into_parts().into_iter().map(|s| history.take(s)).collect());
        SequenceOutput { outputs: Outputs::Stacked(all), state, history }
    }

    /// Adds recorded operations that lead to the results (a fused layer's tape).
    pub fn with_history(mut self, tape: Tape) -> Self {
        self.history.add(tape);
        self
    }

    pub fn outputs(&self) -> &Outputs {
        &self.outputs
    }
    pub fn state(&self) -> &LayerState {
        &self.state
    }

    pub fn into_parts(self) -> (Outputs, LayerState, History) {
        (self.outputs, self.state, self.history)
    }
}

impl Outputs {
    /// The outputs one per step (`[units, batch]` each), cutting a block into `steps` row
    /// blocks (slices on the tape: their gradients reach the block).
    pub fn into_steps(self, steps: usize) -> Vec<Traced> {
        match self {
            Outputs::PerStep(outputs) => outputs,
            Outputs::Stacked(all) => {
                let rows = all.shape().0 / steps.max(1);
                (0..steps).map(|t| all.retaped::<Tape>().slice((t * rows..(t + 1) * rows, ..))).collect()
            }
        }
    }

    /// Checks the outputs against the layer's width, the steps and the batch.
    pub fn check(&self, layer: &str, units: usize, steps: usize, batch: usize) -> Result<(), LayerError> {
        let error = |problem: String| Err(LayerError { layer: layer.to_string(), problem });
        match self {
            Outputs::PerStep(outputs) => {
                if outputs.len() != steps {
                    return error(format!("returned {} outputs for {steps} steps", outputs.len()));
                }
                if let Some((t, o)) = outputs.iter().enumerate().find(|(_, o)| *o.shape() != (units, batch)) {
                    return error(format!("returned an output of shape {:?} at step {t}, expected [{units}, {batch}]", o.shape()));
                }
            }
            Outputs::Stacked(all) if *all.shape() != (steps * units, batch) => {
                return error(format!("returned an output block of shape {:?}, expected [{steps}·{units}, {batch}]", all.shape()));
            }
            Outputs::Stacked(_) => {}
        }
        Ok(())
    }
}

/// Checks a state against the declared parts: their number and each `[rows, batch]`.
pub fn check_state(layer: &str, parts: &[StatePart], state: &LayerState, batch: usize) -> Result<(), LayerError> {
    let error = |problem: String| Err(LayerError { layer: layer.to_string(), problem });
    if state.len() != parts.len() {
        let names: Vec<&str> = parts.iter().map(|p| p.name).collect();
        return error(format!("returned {} state parts; it declares {} ({})", state.len(), parts.len(), names.join(", ")));
    }
    for (part, m) in parts.iter().zip(state.parts()) {
        if *m.shape() != (part.rows, batch) {
            return error(format!("returned state part `{}` of shape {:?}, declared [{}, {batch}]", part.name, m.shape(), part.rows));
        }
    }
    Ok(())
}

/// A whole sequence through [`RecurrentLayer::step`]: the reference every fused
/// [`RecurrentLayer::sequence`] must equal, and its fallback. Each step's results have
/// their tapes moved into the history, so every step starts from values on fresh tapes.
pub fn step_by_step<L: RecurrentLayer + ?Sized>(layer: &L, params: &ParamStore, ctx: &mut ForwardContext, inputs: Vec<Traced>, state: LayerState) -> Result<SequenceOutput, LayerError> {
    let parts = layer.state_parts();
    let batch = inputs.first().map(|x| x.shape().1).unwrap_or(0);
    let mut history = History::new();
    let mut state = state;
    let mut outputs = Vec::with_capacity(inputs.len());
    let activity = format!("{}.activity", layer.name());
    for (t, x) in inputs.into_iter().enumerate() {
        let Step { output, state: next } = layer.step(params, ctx, x, state);
        check_state(layer.name(), &parts, &next, batch)?;
        if *output.shape() != (layer.units(), batch) {
            return Err(LayerError { layer: layer.name().to_string(), problem: format!("returned an output of shape {:?} at step {t}, expected [{}, {batch}]", output.shape(), layer.units()) });
        }
        let output = history.take(output);
        ctx.record(&activity, &[layer.units()], &output);
        outputs.push(output);
        state = LayerState::new(next.into_parts().into_iter().map(|s| history.take(s)).collect());
    }
    Ok(SequenceOutput { outputs: Outputs::PerStep(outputs), state, history })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{device, matrix, trace};

    /// Cutting a stacked block into steps gives each step's rows, and the gradients of
    /// the steps reach the block in its rows.
    #[test]
    fn stacked_outputs_cut_into_steps_return_their_gradients() {
        let dev = device();
        let block = matrix(&dev, (0..12).map(|v| v as f32).collect(), 6, 2); // 3 steps × [2, 2]
        let (outputs, _, history) = SequenceOutput::stacked(trace(&block), LayerState::new(Vec::new())).into_parts();
        let steps = outputs.into_steps(3);
        assert_eq!(steps.iter().map(|s| s.as_vec()).collect::<Vec<_>>(), vec![vec![0.0, 1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0, 7.0], vec![8.0, 9.0, 10.0, 11.0]]);
        // loss Σ_t (t+1)·Σ step_t: the block's gradient is t+1 on step t's rows
        let mut loss = dev.zeros::<Rank0>().retaped::<Tape>();
        for (t, step) in steps.into_iter().enumerate() {
            loss = loss + step.sum::<(), _>() * (t + 1) as f32;
        }
        let (value, tape) = loss.split_tape();
        let grads = value.put_tape(tape.merge(history.into_tape())).backward();
        assert_eq!(grads.get(&block).as_vec(), vec![1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0]);
    }

    /// A result's history survives when the result is handed back: the loss reads only
    /// the fresh-taped value, and the gradient still reaches the parameter.
    #[test]
    fn results_keep_their_history() {
        let dev = device();
        let w = matrix(&dev, vec![2.0, 3.0], 1, 2);
        let out = (trace(&w) * 5.0).sum::<(usize,), Axis<1>>().reshape_like(&(1usize, 1usize));
        let (outputs, _, history) = SequenceOutput::per_step(vec![out], LayerState::new(Vec::new())).into_parts();
        let Outputs::PerStep(mut outputs) = outputs else { unreachable!() };
        let loss = outputs.remove(0).sum::<(), _>();
        let (value, tape) = loss.split_tape();
        let grads = value.put_tape(tape.merge(history.into_tape())).backward();
        assert_eq!(grads.get(&w).as_vec(), vec![5.0, 5.0]);
    }

    #[test]
    fn states_are_checked_against_their_parts() {
        let dev = device();
        let parts = [StatePart::new("h", 2), StatePart::new("c", 2)];
        let one = LayerState::new(vec![trace(&matrix(&dev, vec![0.0; 4], 2, 2))]);
        let e = check_state("lstm", &parts, &one, 2).unwrap_err().to_string();
        assert!(e.contains("layer `lstm` returned 1 state parts; it declares 2 (h, c)"), "{e}");
        let wide = LayerState::new(vec![trace(&matrix(&dev, vec![0.0; 4], 2, 2)), trace(&matrix(&dev, vec![0.0; 6], 2, 3))]);
        let e = check_state("lstm", &parts, &wide, 2).unwrap_err().to_string();
        assert!(e.contains("state part `c` of shape (2, 3), declared [2, 2]"), "{e}");
    }
}
