//! One layer of `N` predecessor ELM neurons (docs/neurons.md): each with its own synapses
//! (read through the connectome), synaptic or branch traces, MLP, memory and linear
//! output `y = W_y m + b_y`, which is the unit's activity the next step reads.

use super::trace::Trace;
use crate::elm::{InputShare, MlpActivation, Timescales};
use crate::timescales::log_spaced;
use crate::wiring::Synapses;
use elmlab_core::cell::{Cell, CellParams, CellParamsMut, CellShape, Init, ParamSpec};
use elmlab_core::connectivity::{Connectivity, WiringShape};
use elmlab_core::dfdx::prelude::*;
use elmlab_core::error::PluginError;
use elmlab_core::neuron::{LayerState, StatePart, Step};
use elmlab_core::params::ParamStore;
use elmlab_core::tensor::{device, fork, Dev, Tape, Traced};
use rand_chacha::ChaCha8Rng;

type T3 = Tensor<(usize, usize, usize), f32, Dev, Tape>;

/// A layer of predecessor ELM neurons, resolved from its settings.
#[derive(Clone, Debug, PartialEq)]
pub struct PredecessorElm {
    pub trace: Trace,
    /// `k_c` asked of the connectivity pattern.
    pub synapses: usize,
    pub synapses_per_branch: usize,
    pub memory: usize,
    pub mlp_hidden: usize,
    pub mlp_layers: usize,
    pub mlp_activation: MlpActivation,
    pub lambda: f64,
    pub tau_memory: (f64, f64),
    pub learn_tau: bool,
    /// The starting value of every `proto_w_s` entry (`w_s = relu(proto_w_s)`).
    pub w_s_init: f64,
}

/// What a built layer fixes: its synapses and, unless learnt, its timescale factors.
pub struct Fixed {
    synapses: Synapses,
    branches: usize,
    /// `κ` of the synaptic (first ELM) or branch (branch ELM) traces, one per state row.
    kappa_trace: Tensor<(usize,), f32, Dev>,
    timescales: Timescales,
}

impl PredecessorElm {
    fn branches(&self, s: &CellShape) -> usize {
        s.fan_in / self.synapses_per_branch
    }

    /// `(out, in)` of each affine map of the MLP (`mlp.network.{0,2,…}`, the predecessor's
    /// `nn.Sequential` indices: a map, then its ReLU, ...).
    pub fn mlp_shapes(&self, branches: usize) -> Vec<(usize, usize)> {
        let mut widths = vec![branches + self.memory];
        widths.extend(std::iter::repeat(self.mlp_hidden).take(self.mlp_layers));
        widths.push(self.memory);
        widths.windows(2).map(|w| (w[1], w[0])).collect()
    }

    fn mlp_names(&self, branches: usize) -> Vec<(String, String)> {
        (0..self.mlp_shapes(branches).len()).map(|i| (format!("mlp.network.{}.weight", 2 * i), format!("mlp.network.{}.bias", 2 * i))).collect()
    }

    /// The log-spaced memory timescales, kept strictly inside `(τ_min, τ_max)` as the
    /// predecessor's `logspace(log10(τ_min + 1e-6), log10(τ_max − 1e-6))` does.
    pub fn tau_m(&self) -> Vec<f64> {
        log_spaced(self.tau_memory.0 + 1e-6, self.tau_memory.1 - 1e-6, self.memory)
    }

    fn share(&self) -> InputShare {
        match self.trace {
            Trace::Synapse { .. } => InputShare::LambdaTimesLeak { lambda: self.lambda },
            Trace::Branch { .. } => InputShare::KappaLambda { lambda: self.lambda },
        }
    }
}

impl Cell for PredecessorElm {
    const NAME: &'static str = "hidden";
    /// traces (per synapse or per branch), memory, the output `y`
    const STATE: &'static [&'static str] = &["trace", "m", "y"];
    type Fixed = Fixed;

    fn state_parts(&self, s: &CellShape) -> Vec<StatePart> {
        let trace_rows = match self.trace {
            Trace::Synapse { .. } => s.fan_in,
            Trace::Branch { .. } => self.branches(s),
        };
        vec![StatePart::new(self.trace.state_name(), s.units * trace_rows), StatePart::new("m", s.units * self.memory), StatePart::new("y", s.units)]
    }

    fn fan_in(&self) -> Option<usize> {
        Some(self.synapses)
    }

    fn parameters(&self, s: &CellShape) -> Vec<ParamSpec> {
        let (n, d_m) = (s.units, self.memory);
        let mut specs = vec![ParamSpec::new("proto_w_s", &[n, s.fan_in], Init::Constant(self.w_s_init))];
        // PyTorch's nn.Linear initialisation, U(±1/√fan_in) for weight and bias
        for ((w, b), (out, inp)) in self.mlp_names(self.branches(s)).into_iter().zip(self.mlp_shapes(self.branches(s))) {
            let bound = 1.0 / (inp as f64).sqrt();
            specs.push(ParamSpec::new(w, &[n, out, inp], Init::Uniform(bound)));
            specs.push(ParamSpec::new(b, &[n, out], Init::Uniform(bound)));
        }
        let bound = 1.0 / (d_m as f64).sqrt();
        specs.push(ParamSpec::new("w_y.weight", &[n, d_m], Init::Uniform(bound)));
        specs.push(ParamSpec::new("w_y.bias", &[n], Init::Uniform(bound)));
        if self.learn_tau {
            // set to the log-spaced timescales' logits in `initialised`
            specs.push(ParamSpec::new("proto_tau_m", &[n, d_m], Init::Zeros));
        }
        specs
    }

    /// Per neuron: relu and product of the synapses, the trace, the branch sums, the MLP,
    /// the bounded update (3) and memory (3) per memory unit, the output.
    fn flops_per_step(&self, s: &CellShape) -> u64 {
        let k_c = s.fan_in;
        let branches = self.branches(s);
        let traces = match self.trace {
            Trace::Synapse { .. } => 2 * k_c,
            Trace::Branch { .. } => 2 * branches,
        };
        let mlp: usize = self.mlp_shapes(branches).iter().map(|(o, i)| 2 * o * i + 2 * o).sum();
        (s.units * (2 * k_c + traces + k_c + self.memory + mlp + 6 * self.memory + 2 * self.memory + 1)) as u64
    }

    fn prepare(&self, s: &CellShape, wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Fixed, PluginError> {
        let (n, k_c, d_m) = (s.units, s.fan_in, self.memory);
        if k_c == 0 || k_c % self.synapses_per_branch != 0 {
            return Err(PluginError::shape(format!(
                "the connectivity pattern gives {k_c} synapses per neuron, which does not split into branches of synapses_per_branch = {}",
                self.synapses_per_branch
            )));
        }
        let connectome = store.fixed_connectome("hidden.connectome", wiring, WiringShape { units: n, input_width: s.input_width, fan_in: k_c }, rng)?;
        let branches = self.branches(s);
        let (trace_name, trace_rows) = match self.trace {
            Trace::Synapse { .. } => ("hidden.tau_s", k_c),
            Trace::Branch { .. } => ("hidden.tau_b", branches),
        };
        let trace_tau = store.fixed_timescales(trace_name, &[n, trace_rows], || vec![self.trace.tau(); n * trace_rows])?;
        let dev = device();
        let kappa_trace = dev.tensor_from_vec(trace_tau.iter().map(|t| (-1.0 / t.max(1e-6)).exp() as f32).collect(), (n * trace_rows,));
        let timescales = if self.learn_tau {
            Timescales::Learnt { logit: "hidden.proto_tau_m".into(), low: self.tau_memory.0, high: self.tau_memory.1, share: self.share() }
        } else {
            let taus = store.fixed_timescales("hidden.tau_m", &[n, d_m], || self.tau_m().repeat(n))?;
            Timescales::fixed(&taus, n, d_m, self.share())
        };
        Ok(Fixed { synapses: Synapses::new(&dev, connectome, n, k_c), branches, kappa_trace, timescales })
    }

    fn initialised(&self, s: &CellShape, p: &mut CellParamsMut, _rng: &mut ChaCha8Rng) -> Result<(), PluginError> {
        if self.learn_tau {
            p.set("proto_tau_m", Timescales::logits(&self.tau_m().repeat(s.units), self.tau_memory.0, self.tau_memory.1))?;
        }
        Ok(())
    }

    fn step(&self, f: &Fixed, p: &CellParams, x: Traced, state: LayerState) -> Step {
        let (n, k_c, d_m, nb) = (f.synapses.units, f.synapses.fan_in, self.memory, f.branches);
        let batch = x.shape().1;
        let [trace_prev, m_prev, y_prev] = state.into_array();
        // synaptic input w_s ⊙ u, w_s = relu(proto_w_s), over the gathered sources
        let sources = (x, y_prev).concat_along(Axis::<0>);
        let gathered: Traced = sources.gather(f.synapses.index.clone());
        let w_s = p.traced("proto_w_s").relu().reshape_like(&(n * k_c,)).broadcast_like::<(usize, usize), Axis<1>>(&(n * k_c, batch));
        let weighted: Traced = gathered * w_s;
        let rows = *trace_prev.shape();
        let kappa = f.kappa_trace.clone().broadcast_like::<(usize, usize), Axis<1>>(&rows);
        // first ELM: the trace is per synapse, then summed per branch; branch ELM: the
        // weighted inputs are summed per branch, then the trace is per branch
        let (trace_next, branch_input): (Traced, T3) = match self.trace {
            Trace::Synapse { .. } => {
                let s_t = trace_prev * kappa + weighted;
                let (s_t, s_for_sum) = fork(s_t);
                (s_t, s_for_sum.reshape_like(&(n, nb, self.synapses_per_branch, batch)).sum::<(usize, usize, usize), Axis<2>>())
            }
            Trace::Branch { .. } => {
                let summed: Traced = weighted.reshape_like(&(n, nb, self.synapses_per_branch, batch)).sum::<(usize, usize, usize), Axis<2>>().reshape_like(&(n * nb, batch));
                let b_t = trace_prev * kappa + summed;
                let (b_t, b_for_mlp) = fork(b_t);
                (b_t, b_for_mlp.reshape_like(&(n, nb, batch)))
            }
        };
        // the timescale factors, on this step's tape when learnt
        let (kappa_m, share) = f.timescales.factors(p.store());
        let per_memory = |v: Traced| v.broadcast_like::<(usize, usize, usize), Axis<2>>(&(n, d_m, batch));
        let decayed: T3 = m_prev.reshape_like(&(n, d_m, batch)) * per_memory(kappa_m);
        let (decayed, decayed_for_mlp) = fork(decayed);
        let mut h: T3 = (branch_input, decayed_for_mlp).concat_along(Axis::<1>);
        let names = self.mlp_names(nb);
        let last = names.len() - 1;
        for (i, (w, b)) in names.iter().enumerate() {
            let out = p.param(b).shape[1];
            h = p.traced3(w).matmul(h) + p.traced(b).broadcast_like::<(usize, usize, usize), Axis<2>>(&(n, out, batch));
            if i < last {
                h = self.mlp_activation.apply(h);
            }
        }
        let update = (h * (2.0 / 3.0)).tanh() * 1.7159;
        let memory: T3 = decayed + update * per_memory(share);
        let (memory, memory_for_output) = fork(memory);
        let w_y = p.traced("w_y.weight").broadcast_like::<(usize, usize, usize), Axis<2>>(&(n, d_m, batch));
        let y: Traced = p.add_bias("w_y.bias", (memory_for_output * w_y).sum::<(usize, usize), Axis<1>>());
        let (y_state, y_out) = fork(y);
        Step::new(y_out, vec![trace_next, memory.reshape_like(&(n * d_m, batch)), y_state])
    }
}
