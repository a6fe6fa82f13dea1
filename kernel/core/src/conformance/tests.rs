//! The checks themselves checked: a correct cell passes, and each kind of mistake they
//! are there to catch makes them fail.

use super::*;
use crate::cell::{pytorch_gates, Cell, CellModel, CellParams, CellShape, ParamSpec, B_HH, B_IH, W_HH, W_IH};
use crate::connectivity::{Connectome, Connectivity, WiringShape};
use crate::error::PluginError;
use crate::neuron::{LayerPlan, LayerState, NetworkShape, NeuronModel, RecurrentLayer, Step};
use crate::params::ParamStore;
use crate::task::{Batch, Carry, EvalBatches, Inputs, LossAt, Split, Task};
use crate::tensor::Traced;
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `h_t = tanh(W_ih x + b_ih + W_hh h + b_hh)`; with `drops_tape`, the step hands on
/// only the value of `h_t` and drops the operations that made it.
struct Toy {
    drops_tape: bool,
}

impl Cell for Toy {
    const NAME: &'static str = "toy";
    const STATE: &'static [&'static str] = &["h"];
    type Fixed = ();
    fn parameters(&self, shape: &CellShape) -> Vec<ParamSpec> {
        pytorch_gates(1, shape)
    }
    fn flops_per_step(&self, shape: &CellShape) -> u64 {
        (shape.units * (2 * (shape.input_width + shape.units) + 3)) as u64
    }
    fn prepare(&self, _: &CellShape, _: &dyn Connectivity, _: &mut ParamStore, _: &mut ChaCha8Rng) -> Result<(), PluginError> {
        Ok(())
    }
    fn step(&self, _: &(), p: &CellParams, x: Traced, state: LayerState) -> Step {
        let [h] = state.into_array();
        let h = (p.affine(W_IH, B_IH, x) + p.affine(W_HH, B_HH, h)).tanh();
        if self.drops_tape {
            let (value, tape) = h.split_tape();
            drop(tape);
            let h = value.put_tape(crate::tensor::Tape::default());
            return Step::new(h.retaped(), vec![h]);
        }
        Step::new(h.retaped(), vec![h])
    }
}

/// The toy cell whose plan claims one parameter more than it builds.
struct Miscounted(CellModel<Toy>);

impl NeuronModel for Miscounted {
    fn requested_fan_in(&self) -> Option<usize> {
        None
    }
    fn plan(&self, shape: &NetworkShape) -> Vec<LayerPlan> {
        let mut plan = self.0.plan(shape);
        plan[0].params += 1;
        plan
    }
    fn build(&self, shape: &NetworkShape, wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Vec<Box<dyn RecurrentLayer>>, PluginError> {
        self.0.build(shape, wiring, store, rng)
    }
}

fn fails(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("the check passed");
    err.downcast_ref::<String>().cloned().or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

#[test]
fn a_correct_cell_passes_every_check() {
    check_neuron(&CellModel::new(Toy { drops_tape: false }));
}

#[test]
fn a_dropped_tape_fails_the_gradient_check() {
    let message = fails(|| check_neuron(&CellModel::new(Toy { drops_tape: true })));
    assert!(message.contains("finite differences"), "{message}");
}

#[test]
fn a_wrong_closed_form_fails_the_count_check() {
    let message = fails(|| check_neuron(&Miscounted(CellModel::new(Toy { drops_tape: false }))));
    assert!(message.contains("the closed form says"), "{message}");
}

/// A task whose batches draw from a shared counter: not a function of (seed, step).
struct Forgetful {
    calls: std::sync::atomic::AtomicU64,
    empty: bool,
}

impl Task for Forgetful {
    fn input_width(&self) -> usize {
        2
    }
    fn classes(&self) -> usize {
        2
    }
    fn sequence_length(&self) -> usize {
        if self.empty { 0 } else { 3 }
    }
    fn loss_at(&self) -> LossAt {
        LossAt::LastStep
    }
    fn train_batch(&self, step: u64, batch: usize) -> Result<Batch, PluginError> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut rng = crate::rng::stream(n, "forgetful", step);
        let steps = self.sequence_length();
        Ok(Batch { steps, batch, inputs: Inputs::OneHot { symbols: (0..steps * batch).map(|_| rng.gen_range(0..2)).collect(), scale: 1.0 }, targets: vec![0; batch], carry: Carry::Fresh })
    }
    fn eval_batches(&self, _: Split, batch: usize) -> Result<EvalBatches<'_>, PluginError> {
        Ok(Box::new((0..2).map(move |i| self.train_batch(i, batch))))
    }
}

#[test]
fn batches_that_do_not_depend_on_the_step_alone_fail() {
    let message = fails(|| check_task(&Forgetful { calls: 0.into(), empty: false }));
    assert!(message.contains("differs when asked again"), "{message}");
}

#[test]
fn a_zero_step_batch_fails() {
    let message = fails(|| check_task(&Forgetful { calls: 0.into(), empty: true }));
    assert!(message.contains("both must be at least 1"), "{message}");
}

/// A pattern that reads one source too many.
struct OffByOne;

impl Connectivity for OffByOne {
    fn fan_in(&self, requested: usize, _: usize, _: usize) -> usize {
        requested
    }
    fn wire(&self, shape: WiringShape, _: &mut ChaCha8Rng) -> Result<Connectome, PluginError> {
        let sources = shape.input_width + shape.units;
        Ok(Connectome { shape, indices: (0..shape.units).map(|_| vec![sources; shape.fan_in]).collect() })
    }
    fn is_recurrent(&self) -> bool {
        true
    }
}

#[test]
fn connectivity_checks_pass_and_catch_out_of_range_sources() {
    check_connectivity(&AnySource);
    let message = fails(|| check_connectivity(&OffByOne));
    assert!(message.contains("reads source"), "{message}");
}

#[test]
fn field_checks_catch_a_default_outside_its_kind() {
    use crate::schema::{DefaultValue, FieldKind, FieldSpec, Interval};
    let good = [FieldSpec::new("p", FieldKind::Float(Interval::ANY).at_least(0.0).below(1.0), DefaultValue::Float(0.5), "a probability")];
    check_fields(&good);
    let bad = [FieldSpec::new("p", FieldKind::Float(Interval::ANY).at_least(0.0).below(1.0), DefaultValue::Float(1.0), "a probability")];
    let message = fails(|| check_fields(&bad));
    assert!(message.contains("its default 1.0 is not number >= 0 and < 1"), "{message}");
    let undocumented = [FieldSpec::new("q", FieldKind::Bool, DefaultValue::Bool(true), " ")];
    assert!(fails(|| check_fields(&undocumented)).contains("no doc"));
}
