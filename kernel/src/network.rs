//! Model assembly and the forward pass: input encoding → the neuron model's recurrent
//! layers → a dense output map to class logits, with exact parameter accounting.

use crate::host_op;
use crate::plugin::ids::bridge;
use crate::budget::largest_fitting;
use crate::config::ModelConfig;
use crate::connectivity::Connectivity;
use crate::error::BuildError;
use crate::neuron::{ForwardContext, LayerPlan, NetworkShape, NeuronModel, RecurrentLayer};
use crate::params::ParamStore;
use crate::registry::Registry;
use crate::task::{Batch, Carry, Inputs, LossAt, Task};
use crate::tensor::{absorb, device, matrix, trace, Dev, Matrix, Traced, TracedScalar};
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The model's sizes, in closed form, before any tensor exists.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModelPlan {
    pub neuron: String,
    pub connectivity: String,
    pub units: usize,
    /// Whether `units` was solved from `model.budget`.
    pub solved_from_budget: Option<usize>,
    pub input_width: usize,
    pub classes: usize,
    pub k_e: usize,
    pub k_c: usize,
    /// Every layer, the output map last.
    pub layers: Vec<LayerPlan>,
    pub total_params: usize,
    pub flops_per_step: u64,
}

/// The configured plugins of a model, ready to be planned or built.
pub struct ModelRecipe {
    pub neuron: Box<dyn NeuronModel>,
    pub connectivity: Box<dyn Connectivity>,
    pub neuron_name: String,
    pub connectivity_name: String,
    pub input_width: usize,
    pub classes: usize,
}

impl ModelRecipe {
    pub fn new(cfg: &ModelConfig, task: &dyn Task, registry: &Registry) -> Result<Self, BuildError> {
        let plugin_err = |plugin: &str| {
            let plugin = plugin.to_string();
            move |source| BuildError::Plugin { plugin: plugin.clone(), source }
        };
        let neuron_entry = registry.neurons.get(&cfg.neuron.kind)?;
        let conn_entry = registry.connectivity.get(&cfg.connectivity.kind)?;
        let neuron = (neuron_entry.build)(&cfg.neuron.settings()).map_err(plugin_err(&format!("neuron `{}`", cfg.neuron.kind)))?;
        let connectivity = (conn_entry.build)(&cfg.connectivity.settings()).map_err(plugin_err(&format!("connectivity `{}`", cfg.connectivity.kind)))?;
        Ok(ModelRecipe {
            neuron,
            connectivity,
            neuron_name: cfg.neuron.kind.clone(),
            connectivity_name: cfg.connectivity.kind.clone(),
            input_width: task.input_width(),
            classes: task.classes(),
        })
    }

    pub fn shape(&self, units: usize) -> NetworkShape {
        let fan_in = self.neuron.requested_fan_in().map(|k| self.connectivity.fan_in(k, self.input_width, units));
        NetworkShape { units, input_width: self.input_width, classes: self.classes, fan_in }
    }

    /// Closed-form plan for `units` hidden units.
    pub fn plan_units(&self, units: usize) -> ModelPlan {
        let shape = self.shape(units);
        let mut layers = self.neuron.plan(&shape);
        let last = layers.last().map(|l| l.units).unwrap_or(self.input_width);
        layers.push(output_plan(last, self.classes));
        let total_params = layers.iter().map(|l| l.params).sum();
        let flops_per_step = layers.iter().map(|l| l.flops_per_step).sum();
        let first = &layers[0];
        ModelPlan {
            neuron: self.neuron_name.clone(),
            connectivity: self.connectivity_name.clone(),
            units,
            solved_from_budget: None,
            input_width: self.input_width,
            classes: self.classes,
            k_e: first.k_e,
            k_c: first.k_c,
            total_params,
            flops_per_step,
            layers,
        }
    }

    /// The plan for the config: `units` as given, or the largest that fits `budget`.
    pub fn plan(&self, cfg: &ModelConfig) -> Result<ModelPlan, BuildError> {
        match (cfg.units, cfg.budget) {
            (Some(units), _) => Ok(self.plan_units(units)),
            (None, Some(budget)) => {
                let units = largest_fitting(budget, |n| self.plan_units(n).total_params)?;
                let mut plan = self.plan_units(units);
                plan.solved_from_budget = Some(budget);
                Ok(plan)
            }
            (None, None) => Err(BuildError::Shape("neither `model.units` nor `model.budget` is set".into())),
        }
    }

    /// Creates the parameters and layers; checks the real tensor counts against the plan.
    pub fn build(&self, plan: &ModelPlan, rng: &mut ChaCha8Rng) -> Result<Network, BuildError> {
        let shape = self.shape(plan.units);
        let mut params = ParamStore::new();
        // `bridge`: the model may come from a plugin library (one tensor numbering).
        let layers = bridge(|| self.neuron.build(&shape, self.connectivity.as_ref(), &mut params, rng))
            .map_err(|source| BuildError::Plugin { plugin: format!("neuron `{}`", self.neuron_name), source })?;
        let last = layers.last().map(|l| l.units()).unwrap_or(self.input_width);
        let bound = 1.0 / (last as f64).sqrt();
        params.insert_uniform("output.weight", &[self.classes, last], bound, rng);
        params.insert_uniform("output.bias", &[self.classes], bound, rng);
        let mut width = self.input_width;
        for layer in &layers {
            if layer.input_width() != width {
                return Err(BuildError::Shape(format!("layer `{}` reads {} inputs but receives {width}", layer.name(), layer.input_width())));
            }
            width = layer.units();
        }
        for layer in &plan.layers {
            let real = params.count(&format!("{}.", layer.name));
            if real != layer.params {
                return Err(BuildError::Shape(format!(
                    "neuron `{}`: layer `{}` declares {} parameters in closed form but built {real}",
                    self.neuron_name, layer.name, layer.params
                )));
            }
        }
        Ok(Network { layers, params, classes: self.classes, input_width: self.input_width })
    }
}

fn output_plan(width: usize, classes: usize) -> LayerPlan {
    LayerPlan { name: "output".into(), units: classes, k_e: width + 1, k_c: 0, params: classes * (width + 1), flops_per_step: (2 * classes * width + classes) as u64 }
}

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
    leftovers: Vec<Traced>,
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

/// Per-batch numbers the trainer aggregates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct BatchStats {
    /// Sum over read positions of the (unsmoothed) cross-entropy, in nats.
    pub nats: f64,
    pub correct: u64,
    pub count: u64,
}

impl BatchStats {
    pub fn add(&mut self, o: &BatchStats) {
        self.nats += o.nats;
        self.correct += o.correct;
        self.count += o.count;
    }
    pub fn loss(&self) -> f64 {
        self.nats / self.count.max(1) as f64
    }
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.count.max(1) as f64
    }
    pub fn bits_per_symbol(&self) -> f64 {
        self.loss() / std::f64::consts::LN_2
    }
}

impl Network {
    /// Encodes step `t` of a batch as a `[width, batch]` matrix.
    pub fn encode_step(&self, dev: &Dev, batch: &Batch, t: usize) -> Matrix {
        let (w, b) = (self.input_width, batch.batch);
        let mut values = vec![0.0f32; w * b];
        match &batch.inputs {
            Inputs::Dense(v) => {
                let step = &v[t * b * w..(t + 1) * b * w];
                for s in 0..b {
                    for d in 0..w {
                        values[d * b + s] = step[s * w + d];
                    }
                }
            }
            Inputs::OneHot { symbols, scale } => {
                for s in 0..b {
                    values[symbols[t * b + s] as usize * b + s] = *scale;
                }
            }
        }
        matrix(dev, values, w, b)
    }

    /// The state a batch starts from: zero, or `carried` (for [`Carry::Continue`]) with
    /// the sequences marked for reset zeroed.
    fn initial_state(&self, batch: &Batch, carried: Option<&NetworkState>) -> NetworkState {
        let dev = device();
        match (&batch.carry, carried) {
            (Carry::Continue { reset }, Some(state)) if state.len() == self.layers.len() => state
                .iter()
                .map(|layer| {
                    layer
                        .iter()
                        .map(|m| {
                            let (rows, cols) = *m.shape();
                            let mut v = m.as_vec();
                            for (b, _) in reset.iter().enumerate().filter(|(_, r)| **r) {
                                (0..rows).for_each(|r| v[r * cols + b] = 0.0);
                            }
                            matrix(&dev, v, rows, cols)
                        })
                        .collect()
                })
                .collect(),
            _ => self.layers.iter().map(|l| bridge(|| l.zero_state(batch.batch))).collect(),
        }
    }

    /// Runs the whole network over a batch from `carried` state (used when the batch
    /// says [`Carry::Continue`]); returns logits where `loss_at` reads and the final state.
    pub fn forward(&self, ctx: &mut ForwardContext, batch: &Batch, loss_at: LossAt, carried: Option<&NetworkState>) -> ForwardPass {
        let dev = device();
        let initial = self.initial_state(batch, carried);
        let mut xs: Vec<Traced> = (0..batch.steps).map(|t| trace(&self.encode_step(&dev, batch, t))).collect();
        let mut leftovers = Vec::new();
        let mut final_state = Vec::with_capacity(self.layers.len());
        // the output map as one host op over all read steps (recording wants per-step logits);
        // the last layer's outputs as one step-major block where it reads every step
        let on_host = host_op::AVAILABLE && ctx.recorder.is_none();
        let whole = on_host && loss_at == LossAt::EveryStep;
        let mut stacked = None;
        for (index, (layer, start)) in self.layers.iter().zip(initial).enumerate() {
            let state = start.iter().map(trace).collect();
            let mut out = bridge(|| layer.sequence(&self.params, ctx, xs, state));
            final_state.push(out.state.iter().map(|s| s.retaped::<NoneTape>()).collect());
            leftovers.extend(std::mem::take(&mut out.state));
            if whole && index + 1 == self.layers.len() && out.stacked.is_some() {
                stacked = out.stacked;
                xs = Vec::new();
            } else {
                xs = out.into_steps(batch.steps).0;
            }
        }
        let (weight, bias) = (&self.params.get("output.weight").value, &self.params.get("output.bias").value);
        if let Some(all) = stacked {
            let logits = vec![host_op::affine_stacked(weight, bias, all, batch.steps)];
            return ForwardPass { logits, final_state, leftovers };
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
        ForwardPass { logits, final_state, leftovers }
    }

    /// Logits `[classes, columns]` of activations `a` (`[units, columns]`).
    fn output_map(&self, a: Traced, columns: usize) -> Traced {
        let w = self.params.traced("output.weight");
        let bias = self.params.traced_vector("output.bias").broadcast_like::<(usize, usize), Axis<1>>(&(self.classes, columns));
        w.matmul(a) + bias
    }
}

/// Cross-entropy with label smoothing over all read positions (mean), plus unsmoothed
/// statistics for the metrics. `targets` are ordered like the logits: step-major.
pub fn cross_entropy(pass: ForwardPass, targets: &[usize], classes: usize, smoothing: f64) -> (TracedScalar, BatchStats) {
    let mut stats = BatchStats::default();
    let mut total: Option<TracedScalar> = None;
    let count = targets.len() as f32;
    let mut offset = 0;
    for logits in pass.logits {
        let columns = logits.shape().1;
        let tgt = &targets[offset..offset + columns];
        offset += columns;
        let term = if host_op::AVAILABLE {
            let (term, hits) = host_op::softmax_cross_entropy(logits, tgt, smoothing, count as f64);
            stats.nats += hits.nats;
            stats.correct += hits.correct;
            stats.count += columns as u64;
            term
        } else {
            tensor_cross_entropy(logits, tgt, classes, smoothing, count, &mut stats)
        };
        total = Some(match total {
            None => term,
            Some(acc) => acc + term,
        });
    }
    let mut loss = total.expect("a forward pass reads at least one step");
    for state in pass.leftovers {
        loss = absorb(loss, state);
    }
    (loss, stats)
}

/// One logits matrix's share of [`cross_entropy`] in dfdx ops (any device).
fn tensor_cross_entropy(logits: Traced, tgt: &[usize], classes: usize, smoothing: f64, count: f32, stats: &mut BatchStats) -> TracedScalar {
    let columns = logits.shape().1;
    let values = logits.as_vec();
    for (s, &y) in tgt.iter().enumerate() {
        let column: Vec<f64> = (0..classes).map(|c| values[c * columns + s] as f64).collect();
        let max = column.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + column.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        stats.nats += lse - column[y];
        let argmax = column.iter().enumerate().fold(0, |best, (i, v)| if *v > column[best] { i } else { best });
        stats.correct += (argmax == y) as u64;
        stats.count += 1;
    }
    let mut soft = vec![(smoothing / classes as f64) as f32; classes * columns];
    for (s, &y) in tgt.iter().enumerate() {
        soft[y * columns + s] += (1.0 - smoothing) as f32;
    }
    let soft = matrix(&device(), soft, classes, columns);
    (logits.log_softmax::<Axis<0>>() * soft).sum::<(), _>() * (-1.0 / count)
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
    /// Loss and gradients of every parameter for one batch.
    pub fn loss_and_gradients(&self, ctx: &mut ForwardContext, batch: &Batch, loss_at: LossAt, smoothing: f64, carried: Option<&NetworkState>) -> Gradients {
        let mut pass = self.forward(ctx, batch, loss_at, carried);
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
        Gradients { loss: value, stats, penalties, grads, final_state }
    }

    /// Runs a batch in evaluation mode and returns every recorded series as
    /// `[batch, steps, ...]` arrays: `logits`, `<layer>.activity`, and what layers add
    /// (`hidden.memory` for ELM).
    pub fn record(&self, batch: &Batch, rng: ChaCha8Rng) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut ctx = ForwardContext::new(false, rng);
        ctx.recorder = Some(Default::default());
        let pass = self.forward(&mut ctx, batch, LossAt::EveryStep, None);
        drop(pass);
        ctx.recorder.map(|r| r.arrays(batch.batch)).unwrap_or_default()
    }

    /// Loss statistics of one batch without gradients (evaluation), and the state after it.
    pub fn evaluate_batch(&self, ctx: &mut ForwardContext, batch: &Batch, loss_at: LossAt, carried: Option<&NetworkState>) -> (BatchStats, NetworkState) {
        let mut pass = self.forward(ctx, batch, loss_at, carried);
        let final_state = std::mem::take(&mut pass.final_state);
        (cross_entropy(pass, &batch.targets, self.classes, 0.0).1, final_state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Smoothed cross-entropy and its gradient against the closed forms
    /// `-Σ_c q_c log softmax(z)_c` and `(softmax(z) - q) / positions`.
    #[test]
    fn smoothed_cross_entropy_value_and_gradient() {
        let dev = device();
        let z = [[1.0f64, -0.5], [0.2, 2.0], [-1.0, 0.3]]; // [classes=3][batch=2]
        let values: Vec<f32> = z.iter().flatten().map(|&v| v as f32).collect();
        let logits = matrix(&dev, values, 3, 2);
        let targets = [2usize, 1];
        let alpha = 0.1;
        let pass = ForwardPass { logits: vec![trace(&logits)], final_state: vec![], leftovers: vec![] };
        let (loss, stats) = cross_entropy(pass, &targets, 3, alpha);
        let value = loss.array() as f64;
        let grads = loss.backward().get(&logits).as_vec();
        let mut expect = 0.0;
        for (s, &y) in targets.iter().enumerate() {
            let col: Vec<f64> = (0..3).map(|c| z[c][s]).collect();
            let lse = col.iter().map(|v| v.exp()).sum::<f64>().ln();
            for c in 0..3 {
                let q = alpha / 3.0 + if c == y { 1.0 - alpha } else { 0.0 };
                expect -= q * (col[c] - lse) / 2.0;
                let g = ((col[c] - lse).exp() - q) / 2.0;
                assert!((grads[c * 2 + s] as f64 - g).abs() < 1e-6, "grad [{c},{s}]");
            }
        }
        assert!((value - expect).abs() < 1e-6, "{value} vs {expect}");
        // statistics are unsmoothed: plain cross-entropy and argmax accuracy
        let plain: f64 = targets.iter().enumerate().map(|(s, &y)| (0..3).map(|c| z[c][s].exp()).sum::<f64>().ln() - z[y][s]).sum();
        assert!((stats.nats - plain).abs() < 1e-5);
        // argmax of sequence 0 is class 0 (target 2), of sequence 1 class 1 (target 1)
        assert_eq!((stats.correct, stats.count), (1, 2));
    }

    /// The host loss (used on the CPU) and the dfdx-ops loss (used on CUDA) agree.
    #[test]
    fn host_and_tensor_cross_entropy_agree() {
        let dev = device();
        let (classes, columns) = (5, 7);
        let values: Vec<f32> = (0..classes * columns).map(|i| ((i * 37) % 23) as f32 / 4.0 - 2.5).collect();
        let targets: Vec<usize> = (0..columns).map(|s| (s * 3) % classes).collect();
        let logits = matrix(&dev, values, classes, columns);
        let (host, hits) = host_op::softmax_cross_entropy(trace(&logits), &targets, 0.1, 9.0);
        let mut stats = BatchStats::default();
        let tensor = tensor_cross_entropy(trace(&logits), &targets, classes, 0.1, 9.0, &mut stats);
        assert!((host.array() - tensor.array()).abs() < 1e-6, "{} vs {}", host.array(), tensor.array());
        // the host op takes exp in f32 (sums in f64): agreement to f32 precision
        assert!((hits.nats - stats.nats).abs() < 1e-6 * stats.nats.abs().max(1.0), "{} vs {}", hits.nats, stats.nats);
        assert_eq!(hits.correct, stats.correct);
        let (gh, gt) = (host.backward().get(&logits).as_vec(), tensor.backward().get(&logits).as_vec());
        for (a, b) in gh.iter().zip(&gt) {
            assert!((a - b).abs() < 1e-6, "{gh:?} vs {gt:?}");
        }
    }
}
