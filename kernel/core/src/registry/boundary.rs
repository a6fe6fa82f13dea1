//! Calls into the code of a plugin library. A shared library carries its own copy of
//! dfdx's tensor counter; the loader keeps the copies as one numbering around every
//! call into the library (its `enter` function). The registry remembers that function
//! for the library's entries, and what they build is wrapped here, so no call into a
//! library's tensor code can go around it. Connectivity patterns and tasks make no
//! tensors and are called directly.

use crate::connectivity::Connectivity;
use crate::error::{LayerError, PluginError};
use crate::neuron::{ForwardContext, LayerPlan, LayerState, NetworkShape, NeuronModel, RecurrentLayer, SequenceOutput, StatePart, Step, StepInputs};
use crate::params::ParamStore;
use crate::tensor::{Matrix, Traced};
use rand_chacha::ChaCha8Rng;

/// Runs the closure it is given with whatever a plugin library needs around its code.
pub type Enter = fn(&mut dyn FnMut());

/// `f()` run through `enter`.
pub fn within<R>(enter: Enter, f: impl FnOnce() -> R) -> R {
    let mut f = Some(f);
    let mut out = None;
    enter(&mut || {
        if let Some(f) = f.take() {
            out = Some(f());
        }
    });
    out.expect("a plugin boundary's `enter` must run the call it is given")
}

/// A neuron model of a library, every call entered.
pub(crate) struct EnteredModel {
    pub(crate) inner: Box<dyn NeuronModel>,
    pub(crate) enter: Enter,
}

impl NeuronModel for EnteredModel {
    fn requested_fan_in(&self) -> Option<usize> {
        within(self.enter, || self.inner.requested_fan_in())
    }
    fn plan(&self, shape: &NetworkShape) -> Vec<LayerPlan> {
        within(self.enter, || self.inner.plan(shape))
    }
    fn build(&self, shape: &NetworkShape, wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Vec<Box<dyn RecurrentLayer>>, PluginError> {
        let layers = within(self.enter, || self.inner.build(shape, wiring, store, rng))?;
        Ok(layers.into_iter().map(|inner| Box::new(EnteredLayer { inner, enter: self.enter }) as Box<dyn RecurrentLayer>).collect())
    }
}

/// A layer of a library, every call that can make tensors entered.
struct EnteredLayer {
    inner: Box<dyn RecurrentLayer>,
    enter: Enter,
}

impl RecurrentLayer for EnteredLayer {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn units(&self) -> usize {
        self.inner.units()
    }
    fn input_width(&self) -> usize {
        self.inner.input_width()
    }
    fn state_parts(&self) -> Vec<StatePart> {
        self.inner.state_parts()
    }
    fn step(&self, params: &ParamStore, ctx: &mut ForwardContext, input: Traced, state: LayerState) -> Step {
        within(self.enter, || self.inner.step(params, ctx, input, state))
    }
    fn sequence(&self, params: &ParamStore, ctx: &mut ForwardContext, inputs: Vec<Traced>, state: LayerState) -> Result<SequenceOutput, LayerError> {
        within(self.enter, || self.inner.sequence(params, ctx, inputs, state))
    }
    /// The data's tensors are made here, by the host's tensor code, and the library gets
    /// `sequence` (inside it, the host's `StepInputs::traced` would number tensors on the
    /// host's counter while the library's is the one in use).
    fn sequence_from_data(&self, params: &ParamStore, ctx: &mut ForwardContext, inputs: &dyn StepInputs, state: LayerState) -> Result<SequenceOutput, LayerError> {
        let inputs = inputs.traced();
        within(self.enter, || self.inner.sequence(params, ctx, inputs, state))
    }
    fn zero_state(&self, batch: usize) -> Vec<Matrix> {
        within(self.enter, || self.inner.zero_state(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        static ENTERED: Cell<usize> = const { Cell::new(0) };
    }

    fn counting(f: &mut dyn FnMut()) {
        ENTERED.with(|c| c.set(c.get() + 1));
        f();
    }

    #[test]
    fn calls_run_inside_enter_and_return_their_result() {
        assert_eq!(within(counting, || 7), 7);
        assert_eq!(ENTERED.with(Cell::get), 1);
    }
}
