//! Gradients against finite differences, for any chain of layers. The loss is a fixed
//! random weighting of the last layer's outputs and of every layer's final state, plus
//! the penalties the layers add; it runs in training mode with one fixed random stream,
//! so dropout masks are the same in every evaluation.
//!
//! The tensors are f32, so a difference quotient carries rounding noise of about
//! 1e-7·|loss|/ε: each tensor is checked along two directions (its gradient, which
//! catches wrong scales and lost contributions, and a random one, which catches a
//! gradient that is missing entirely), each at the first of three step sizes that agrees.

use crate::neuron::{EncodedInputs, ForwardContext, History, LayerState, RecurrentLayer};
use crate::task::Inputs;
use crate::params::ParamStore;
use crate::rng::stream;
use crate::tensor::{device, matrix, trace, values, Matrix, Traced, TracedScalar};
use dfdx::prelude::*;
use rand::Rng;

/// The layers under test with the sizes of the inputs they run on.
pub(super) struct Chain<'a> {
    pub layers: &'a [Box<dyn RecurrentLayer>],
    pub batch: usize,
    pub steps: usize,
}

fn uniform(rows: usize, cols: usize, scale: f32, purpose: &str, index: u64) -> Matrix {
    let mut rng = stream(11, purpose, index);
    matrix(&device(), (0..rows * cols).map(|_| rng.gen_range(-scale..scale)).collect(), rows, cols)
}

impl Chain<'_> {
    /// Random inputs of the first layer, one `[width, batch]` matrix per step.
    pub fn inputs(&self, width: usize) -> Vec<Traced> {
        (0..self.steps).map(|t| trace(&uniform(width, self.batch, 1.0, "conformance/inputs", t as u64))).collect()
    }

    /// The same inputs as a task's batch (`[steps][batch][width]`), as the network hands
    /// them to its first layer.
    pub fn data(&self, width: usize) -> Inputs {
        let mut dense = vec![0.0; self.steps * self.batch * width];
        for (t, x) in self.inputs(width).iter().enumerate() {
            for (d, row) in values(x).chunks_exact(self.batch).enumerate() {
                for (s, &v) in row.iter().enumerate() {
                    dense[(t * self.batch + s) * width + d] = v;
                }
            }
        }
        Inputs::Dense(dense)
    }

    /// A random initial state of layer `i` (a carried state, not zeros, so that the
    /// paths from it are exercised).
    pub fn initial_state(&self, i: usize) -> Vec<Matrix> {
        let parts = self.layers[i].state_parts();
        parts.iter().enumerate().map(|(p, part)| uniform(part.rows, self.batch, 0.5, "conformance/state", (i * 16 + p) as u64)).collect()
    }

    /// The loss from these initial states, on the tape.
    fn loss(&self, store: &ParamStore, states: &[Vec<Matrix>]) -> (TracedScalar, History) {
        let mut ctx = ForwardContext::new(true, stream(7, "conformance/dropout", 0));
        // the first layer reads the data, as in a network; each later one the outputs before
        let width = self.layers[0].input_width();
        let inputs = self.data(width);
        let data = EncodedInputs { inputs: &inputs, steps: self.steps, batch: self.batch, width };
        let mut xs = Vec::new();
        let mut histories = History::new();
        let mut total = device().zeros::<Rank0>().retaped::<crate::tensor::Tape>();
        for (i, layer) in self.layers.iter().enumerate() {
            let state = LayerState::new(states[i].iter().map(trace).collect());
            let out = if i == 0 { layer.sequence_from_data(store, &mut ctx, &data, state) } else { layer.sequence(store, &mut ctx, xs, state) };
            let out = out.unwrap_or_else(|e| panic!("{e}"));
            let (outputs, finals, history) = out.into_parts();
            histories.merge(history);
            for (p, s) in finals.into_parts().into_iter().enumerate() {
                let (rows, cols) = *s.shape();
                total = total + (s * uniform(rows, cols, 1.0, "conformance/state-weight", (i * 16 + p) as u64)).sum::<(), _>();
            }
            xs = outputs.into_steps(self.steps);
        }
        for (t, y) in xs.into_iter().enumerate() {
            let (rows, cols) = *y.shape();
            total = total + (y * uniform(rows, cols, 1.0, "conformance/output-weight", t as u64)).sum::<(), _>();
        }
        for (_, penalty) in ctx.penalties.drain(..) {
            total = total + penalty;
        }
        (total, histories)
    }

    fn loss_value(&self, store: &ParamStore, states: &[Vec<Matrix>]) -> f64 {
        self.loss(store, states).0.array() as f64
    }
}

/// One tensor the check perturbs: a parameter, or a layer's initial state part.
enum Target {
    Param(String),
    State { layer: usize, part: usize },
}

/// Every parameter's and every initial state part's gradient against finite differences.
pub(super) fn check_gradients(chain: &Chain, mut store: ParamStore) {
    let states: Vec<Vec<Matrix>> = (0..chain.layers.len()).map(|i| chain.initial_state(i)).collect();
    let (loss, history) = chain.loss(&store, &states);
    let base = loss.array() as f64;
    let (value, tape) = loss.split_tape();
    let mut grads = value.put_tape(tape.merge(history.into_tape())).backward();
    let mut grad_of = |m: &Matrix| {
        grads.try_alloc_for(m).expect("allocating a gradient");
        values(&grads.get(m))
    };
    let mut targets: Vec<(Target, Vec<f32>, Vec<f32>)> = store.iter().map(|p| (Target::Param(p.name.clone()), values(&p.value), grad_of(&p.value))).collect();
    for (layer, parts) in states.iter().enumerate() {
        for (part, m) in parts.iter().enumerate() {
            targets.push((Target::State { layer, part }, values(m), grad_of(m)));
        }
    }
    for (index, (target, theta, g)) in targets.iter().enumerate() {
        let name = match target {
            Target::Param(name) => name.clone(),
            Target::State { layer, part } => format!("initial state `{}` of layer `{}`", chain.layers[*layer].state_parts()[*part].name, chain.layers[*layer].name()),
        };
        let norm = g.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        let mut rng = stream(13, "conformance/direction", index as u64);
        let random: Vec<f64> = (0..g.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let random_norm = random.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        let mut directions = vec![("random", random.iter().map(|v| v / random_norm).collect::<Vec<f64>>())];
        if norm > 0.0 {
            directions.push(("gradient", g.iter().map(|v| *v as f64 / norm).collect()));
        }
        for (label, v) in directions {
            let analytic: f64 = g.iter().zip(&v).map(|(a, b)| *a as f64 * b).sum();
            let mut tried = Vec::new();
            let agrees = [1e-2, 3e-3, 1e-3].iter().any(|&eps| {
                let mut at = |sign: f64| {
                    let shifted: Vec<f32> = theta.iter().zip(&v).map(|(t, d)| (*t as f64 + sign * eps * d) as f32).collect();
                    match target {
                        Target::Param(name) => {
                            store.load_values(name, shifted).expect("same size");
                            let l = chain.loss_value(&store, &states);
                            store.load_values(name, theta.clone()).expect("same size");
                            l
                        }
                        Target::State { layer, part } => {
                            let mut s = states.clone();
                            let (rows, cols) = *s[*layer][*part].shape();
                            s[*layer][*part] = matrix(&device(), shifted, rows, cols);
                            chain.loss_value(&store, &s)
                        }
                    }
                };
                let numeric = (at(1.0) - at(-1.0)) / (2.0 * eps);
                tried.push((eps, numeric));
                let noise = 2e-6 * (base.abs() + 1.0) / eps;
                (numeric - analytic).abs() <= 2e-2 * numeric.abs().max(analytic.abs()) + noise
            });
            assert!(agrees, "{name}: the gradient along the {label} direction is {analytic:.6e}; finite differences (step, value) give {tried:?}");
        }
    }
}
