//! Checks of a neuron model: accounting, structure, sequence against steps, gradients.

use super::gradients::{check_gradients, Chain};
use super::AnySource;
use crate::neuron::{check_state, step_by_step, EncodedInputs, ForwardContext, LayerState, NetworkShape, NeuronModel, RecurrentLayer};
use crate::params::ParamStore;
use crate::rng::stream;
use crate::tensor::{device, matrix, trace, values, Tape, Traced};
use dfdx::prelude::*;

/// What [`check_neuron`] checks at, when the defaults do not suit a model.
#[derive(Clone, Debug)]
pub struct NeuronCheck {
    /// Hidden units of the sizes whose plans are compared with built tensors.
    pub units: Vec<usize>,
    /// Input width and classes of the network around the model.
    pub input_width: usize,
    pub classes: usize,
    /// The small network the sequence and gradient checks run on.
    pub small_units: usize,
    pub batch: usize,
    pub steps: usize,
    /// Largest relative difference allowed between a sequence and its step loop.
    pub sequence_tolerance: f64,
    /// Whether gradients are compared with finite differences. A spiking model's are a
    /// surrogate by design (the loss is piecewise constant in what drives a spike), so
    /// they are checked against an independent implementation of the same surrogate.
    pub finite_differences: bool,
}

impl Default for NeuronCheck {
    fn default() -> Self {
        NeuronCheck { units: vec![1, 3, 8], input_width: 5, classes: 3, small_units: 4, batch: 3, steps: 6, sequence_tolerance: 2e-5, finite_differences: true }
    }
}

/// Every check of a neuron model at the default sizes ([`NeuronCheck`]).
pub fn check_neuron(model: &dyn NeuronModel) {
    NeuronCheck::default().run(model)
}

impl NeuronCheck {
    fn shape(&self, model: &dyn NeuronModel, units: usize) -> NetworkShape {
        NetworkShape { units, input_width: self.input_width, classes: self.classes, fan_in: model.requested_fan_in() }
    }

    fn build(&self, model: &dyn NeuronModel, shape: &NetworkShape, seed: u64) -> (Vec<Box<dyn RecurrentLayer>>, ParamStore) {
        let mut store = ParamStore::new();
        let layers = model.build(shape, &AnySource, &mut store, &mut stream(seed, "conformance/init", 0)).unwrap_or_else(|e| panic!("building {shape:?}: {e}"));
        (layers, store)
    }

    pub fn run(&self, model: &dyn NeuronModel) {
        for &units in &self.units {
            self.check_structure(model, &self.shape(model, units));
        }
        let shape = self.shape(model, self.small_units);
        let (layers, store) = self.build(model, &shape, 3);
        self.check_sequence_equals_steps(&layers, &store);
        self.check_data_equals_tensors(&layers, &store);
        if self.finite_differences {
            check_gradients(&Chain { layers: &layers, batch: self.batch, steps: self.steps }, store);
        }
    }

    /// Plan against tensors, chaining, state parts, determinism.
    fn check_structure(&self, model: &dyn NeuronModel, shape: &NetworkShape) {
        let plans = model.plan(shape);
        let (layers, store) = self.build(model, shape, 1);
        assert_eq!(plans.len(), layers.len(), "{shape:?}: the plan has {} layers, the build {}", plans.len(), layers.len());
        let mut width = shape.input_width;
        for (plan, layer) in plans.iter().zip(&layers) {
            assert_eq!(plan.name, layer.name(), "the plan and the build name a layer differently");
            assert_eq!(plan.units, layer.units(), "layer `{}`: plan and build differ in units", plan.name);
            let built = store.count(&format!("{}.", plan.name));
            assert_eq!(built, plan.params, "layer `{}` at {shape:?}: the closed form says {} parameters, the build made {built}", plan.name, plan.params);
            assert_eq!(plan.params, plan.units * (plan.k_e + plan.k_c), "layer `{}`: params {} is not units·(k_e + k_c) = {}·({} + {})", plan.name, plan.params, plan.units, plan.k_e, plan.k_c);
            assert_eq!(layer.input_width(), width, "layer `{}` reads {} inputs but the previous layer gives {width}", plan.name, layer.input_width());
            width = layer.units();
            let zero = layer.zero_state(2);
            let state = LayerState::new(zero.iter().map(trace).collect());
            if let Err(e) = check_state(layer.name(), &layer.state_parts(), &state, 2) {
                panic!("the zero state does not match the declared parts: {e}");
            }
        }
        let total: usize = plans.iter().map(|p| p.params).sum();
        assert_eq!(store.count(""), total, "{shape:?}: parameters outside the planned layers");
        let (_, again) = self.build(model, shape, 1);
        for (a, b) in store.iter().zip(again.iter()) {
            assert_eq!((&a.name, values(&a.value)), (&b.name, values(&b.value)), "building twice from one seed gave other parameters");
        }
        assert_eq!(store.buffers(), again.buffers(), "building twice from one seed gave other fixed tensors");
    }

    /// Each layer's `sequence` against the step loop, in evaluation mode, from a random
    /// initial state; the next layer reads the step loop's outputs.
    fn check_sequence_equals_steps(&self, layers: &[Box<dyn RecurrentLayer>], store: &ParamStore) {
        let chain = Chain { layers, batch: self.batch, steps: self.steps };
        let mut inputs = chain.inputs(layers[0].input_width());
        for (i, layer) in layers.iter().enumerate() {
            let start = chain.initial_state(i);
            let run = |fused: bool, inputs: &[Traced]| {
                let mut ctx = ForwardContext::new(false, stream(5, "conformance/forward", 0));
                let state = LayerState::new(start.iter().map(trace).collect());
                let inputs: Vec<Traced> = inputs.iter().map(|x| x.retaped::<Tape>()).collect();
                let out = if fused { layer.sequence(store, &mut ctx, inputs, state) } else { step_by_step(layer.as_ref(), store, &mut ctx, inputs, state) };
                let out = out.unwrap_or_else(|e| panic!("{e}"));
                if let Err(e) = out.outputs().check(layer.name(), layer.units(), self.steps, self.batch) {
                    panic!("{e}");
                }
                if let Err(e) = check_state(layer.name(), &layer.state_parts(), out.state(), self.batch) {
                    panic!("{e}");
                }
                let (outputs, state, history) = out.into_parts();
                drop(history);
                (outputs.into_steps(self.steps), state.into_parts())
            };
            let (seq_out, seq_state) = run(true, &inputs);
            let (ref_out, ref_state) = run(false, &inputs);
            for (t, (a, b)) in seq_out.iter().zip(&ref_out).enumerate() {
                self.assert_close(&values(a), &values(b), &format!("layer `{}` output at step {t}", layer.name()));
            }
            for (part, (a, b)) in layer.state_parts().iter().zip(seq_state.iter().zip(&ref_state)) {
                self.assert_close(&values(a), &values(b), &format!("layer `{}` final state `{}`", layer.name(), part.name));
            }
            inputs = ref_out;
        }
    }

    /// The first layer over the data (`sequence_from_data`, what a network calls) against
    /// the same inputs as tensors (`sequence`), in training mode: the same outputs, final
    /// state and parameter gradients, bit for bit.
    fn check_data_equals_tensors(&self, layers: &[Box<dyn RecurrentLayer>], store: &ParamStore) {
        let chain = Chain { layers, batch: self.batch, steps: self.steps };
        let (layer, width) = (&layers[0], layers[0].input_width());
        let inputs = chain.data(width);
        let data = EncodedInputs { inputs: &inputs, steps: self.steps, batch: self.batch, width };
        let run = |from_data: bool| {
            let mut ctx = ForwardContext::new(true, stream(5, "conformance/data", 0));
            let state = LayerState::new(chain.initial_state(0).iter().map(trace).collect());
            let out = if from_data { layer.sequence_from_data(store, &mut ctx, &data, state) } else { layer.sequence(store, &mut ctx, chain.inputs(width), state) };
            let (outputs, finals, history) = out.unwrap_or_else(|e| panic!("{e}")).into_parts();
            let outputs = outputs.into_steps(self.steps);
            let finals = finals.into_parts();
            let seen: Vec<Vec<f32>> = outputs.iter().chain(&finals).map(values).collect();
            // a fixed weighting of every output and final state part, and the penalties
            let mut total = device().zeros::<Rank0>().retaped::<Tape>();
            for (k, y) in outputs.into_iter().chain(finals).enumerate() {
                let (rows, cols) = *y.shape();
                let weight: Vec<f32> = (0..rows * cols).map(|j| ((j * 7 + k * 3) % 11) as f32 / 11.0 - 0.5).collect();
                total = total + (y * matrix(&device(), weight, rows, cols)).sum::<(), _>();
            }
            for (_, penalty) in ctx.penalties.drain(..) {
                total = total + penalty;
            }
            let (value, tape) = total.split_tape();
            let mut grads = value.put_tape(tape.merge(history.into_tape())).backward();
            let grads: Vec<Vec<f32>> = store
                .iter()
                .map(|p| {
                    grads.try_alloc_for(&p.value).expect("allocating a gradient");
                    values(&grads.get(&p.value))
                })
                .collect();
            (seen, grads)
        };
        let ((data_seen, data_grads), (tensor_seen, tensor_grads)) = (run(true), run(false));
        for (k, (a, b)) in data_seen.iter().zip(&tensor_seen).enumerate() {
            assert_eq!(a, b, "layer `{}`: output or final state {k} differs between the data and the same inputs as tensors", layer.name());
        }
        for (p, (a, b)) in store.iter().zip(data_grads.iter().zip(&tensor_grads)) {
            assert_eq!(a, b, "layer `{}`: the gradient of `{}` differs between the data and the same inputs as tensors", layer.name(), p.name);
        }
    }

    fn assert_close(&self, got: &[f32], want: &[f32], what: &str) {
        let scale = want.iter().fold(1.0f64, |m, &v| m.max(v.abs() as f64));
        for (j, (&a, &b)) in got.iter().zip(want).enumerate() {
            let diff = (a as f64 - b as f64).abs();
            assert!(diff <= self.sequence_tolerance * scale, "{what}[{j}]: sequence {a} vs step loop {b}");
        }
    }
}
