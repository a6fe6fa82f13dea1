//! One layer of ELM neurons over a whole sequence (elm-network.md §1), forward and
//! backward through time by hand. Each step runs the `N` neurons in parallel (their
//! work is independent given the step's sources) on a team of threads that claim pieces
//! of neurons and meet at a spinning barrier per step (`fused::team`: a rayon loop per
//! step woke sleeping workers, which cost more than the step); backward keeps only the
//! per-step states `m, e, a` and sources, and recomputes a step's intermediates from them. The gradient of the
//! sources (inputs and previous outputs) is gathered per source through the inverted
//! connectome, so every sum runs in a fixed order whatever the thread count.
//! Every matrix is row-major with the batch last (`[N, d_m, B]` for the memory).
//! The inner loops are plain loops over fixed-size lane blocks, with no `array::map` or
//! `from_fn` (those are functions of their own, not compiled for AVX2, and not inlined
//! into the functions that are: the call kept the accumulators in memory).
//!
//! `lanes`: the fixed-size blocks everything runs on; `forward`: the step and the
//! sequence; `backward`: backpropagation through time; `synapses`: the synapse-weight
//! gradients and the per-source gather; `prefetch`: the next neuron's data asked for
//! ahead where a layer is too large to stay in cache.

mod backward;
mod forward;
mod lanes;
mod prefetch;
mod synapses;

use super::spec::{LayerSpec, MlpActivation};
use crate::fused::slots::StepSlots;
use crate::fused::Real;
use lanes::{unpad, LANES};

/// Neurons per piece of a step that a thread claims: up to four (fewer claims), but at
/// least six pieces per thread so that the last claims even out the threads (a readout of
/// 19 neurons in pieces of four left one thread idle for a third of each step). The split
/// never changes a number, only the scheduling.
fn neurons_per_piece(units: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    (units / (threads * 6)).clamp(1, 4)
}

/// The layer's fixed configuration in the kernel's scalar type.
pub struct ElmKernel<F> {
    pub units: usize,
    pub input: usize,
    pub memory: usize,
    pub branches: usize,
    pub synapses: usize,
    /// `(out, in)` of each MLP layer.
    pub mlp: Vec<(usize, usize)>,
    pub activation: MlpActivation,
    pub relu_output: bool,
    input_scale: F,
    kappa_r: Option<F>,
    /// The connectome `[N, k_c]` into `[inputs ; previous outputs]` (32-bit: it is read
    /// at every step of every pass, and half the bytes is half the traffic).
    connectome: Vec<u32>,
    /// For each source `j`, the synapses `n·k_c + k` that read it, in ascending order
    /// (`inverse[inverse_start[j]..inverse_start[j + 1]]`; 32-bit, as the CUDA kernels take it).
    inverse_start: Vec<u32>,
    inverse: Vec<u32>,
    /// For each synapse `n·k_c + k`, the row `n·branches + k / synapses` of its branch.
    branch_of: Vec<u32>,
    /// The sources a batch of the synapse-weight contraction keeps, in bytes (192 KiB; see
    /// `w_s_chunk`).
    contraction_bytes: usize,
    /// The parameters per step beyond which the passes prefetch (`prefetch`).
    cached_bytes: usize,
}

/// The trainable parameters, laid out as in the parameter store.
pub struct ElmParams<'a, F> {
    /// `[N, k_c]`
    pub w_s: &'a [F],
    /// Per MLP layer: weight `[N, out, in]`, bias `[N, out]`.
    pub mlp: Vec<(&'a [F], &'a [F])>,
    /// `[N, d_m]`
    pub w_y: &'a [F],
    /// `[N]`
    pub b: &'a [F],
    /// The memory's decay `κ_m` and input share `1 − κ_λ` per neuron, `[N, d_m]` (the
    /// timescales may differ between neurons: learnt, or read from a weights file).
    pub kappa_m: &'a [F],
    pub one_minus_kappa_lambda: &'a [F],
}

/// Dropout masks (fixed over the sequence) and which penalty sums to keep.
#[derive(Default)]
pub struct ElmExtras<F> {
    /// `[I, B]`
    pub input_mask: Option<Vec<F>>,
    /// `[N, B]`
    pub recurrent_mask: Option<Vec<F>>,
    pub mlp_penalty: bool,
    pub activity_penalty: bool,
    /// Whether backward forms the gradients of `κ_m` and `1 − κ_λ` (learnt timescales).
    pub kappa_grads: bool,
    /// No backward pass will follow (evaluation): the states `m`, `e` are kept for two
    /// steps only, the one being read and the one being written (every step's outputs are
    /// still kept). At Enwik8's size every step's `m` is 50 MB a batch, written to memory
    /// and never read.
    pub forward_only: bool,
}

/// What the forward pass keeps: every step's state and sources (no other intermediates),
/// each kind in one buffer, step-major. Internally `[·, W]` with the batch padded to `W`;
/// the accessors return `[·, B]`.
pub struct ElmRun<F: Real> {
    pub batch: usize,
    pub steps: usize,
    width: usize,
    /// `m_0..m_T`, each `[N·d_m, W]` (only the last two with `forward_only`, step `t` in
    /// slot `t % 2`).
    m: Vec<F>,
    /// `e_0..e_T`, each `[N, W]` (slots as `m`'s).
    e: Vec<F>,
    /// `a_0..a_T`, each `[N, W]`: `a_1..a_T` are the outputs.
    a: Vec<F>,
    /// Each step's sources `[inputs ; previous outputs]`, masked, `[I + N, W]`: written
    /// once by the forward pass (the outputs as they are formed), read by the backward
    /// (with `forward_only` in a recurrent layer, two steps' only).
    sources: Vec<F>,
    extras: ElmExtras<F>,
    /// `Σ_t Σ_d |Δ|` per neuron and sequence, `[N, W]` (MLP-magnitude penalty).
    abs_delta: Vec<F>,
    /// `Σ_t relu(a)`, `[N, W]` (activity penalty).
    activity: Vec<F>,
}

impl<F: Real> Drop for ElmRun<F> {
    fn drop(&mut self) {
        for buffer in [&mut self.m, &mut self.e, &mut self.a, &mut self.sources] {
            F::recycle(std::mem::take(buffer));
        }
    }
}

/// Step `t`'s block of a step-major buffer of `len`-long blocks.
fn at<F>(v: &[F], t: usize, len: usize) -> &[F] {
    &v[t * len..(t + 1) * len]
}

impl<F: Real> ElmRun<F> {
    /// The output `a_t` (`t` in `0..=T`; `a_0` is the initial state), `[N, B]`.
    pub fn output(&self, t: usize) -> Vec<F> {
        unpad(self.a_at(t), self.width, self.batch)
    }
    /// The memory `m_t`, `[N·d_m, B]` (with `forward_only`, of the last two steps only).
    pub fn memory(&self, t: usize) -> Vec<F> {
        unpad(self.m_at(t), self.width, self.batch)
    }
    /// The high-pass average `e_t`, `[N, B]`.
    pub fn high_pass(&self, t: usize) -> Vec<F> {
        unpad(self.e_at(t), self.width, self.batch)
    }
    /// `Σ_t Σ_d |Δ|`, `[N, B]`.
    pub fn abs_delta(&self) -> Vec<F> {
        unpad(&self.abs_delta, self.width, self.batch)
    }
    /// `Σ_t relu(a)`, `[N, B]`.
    pub fn activity(&self) -> Vec<F> {
        unpad(&self.activity, self.width, self.batch)
    }
    fn m_at(&self, t: usize) -> &[F] {
        self.state_at(&self.m, t)
    }
    fn e_at(&self, t: usize) -> &[F] {
        self.state_at(&self.e, t)
    }
    fn state_at<'a>(&self, v: &'a [F], t: usize) -> &'a [F] {
        let slots = StepSlots::new(!self.extras.forward_only);
        at(v, slots.after(t, self.steps + 1), v.len() / slots.count(self.steps + 1))
    }
    fn a_at(&self, t: usize) -> &[F] {
        at(&self.a, t, self.a.len() / (self.steps + 1))
    }
    fn sources_at(&self, t: usize) -> &[F] {
        at(&self.sources, t, self.sources.len() / self.steps.max(1))
    }
}

pub struct ElmGrads<F> {
    pub w_s: Vec<F>,
    pub mlp: Vec<(Vec<F>, Vec<F>)>,
    pub w_y: Vec<F>,
    pub b: Vec<F>,
    /// One `[I, B]` per step (none without `input_grads`).
    pub inputs: Vec<Vec<F>>,
    pub m0: Vec<F>,
    pub e0: Vec<F>,
    pub a0: Vec<F>,
    /// Of `κ_m` and `1 − κ_λ`, `[N, d_m]` (empty without `kappa_grads`).
    pub kappa_m: Vec<F>,
    pub one_minus_kappa_lambda: Vec<F>,
}

/// One neuron's intermediates of one step.
struct Scratch<F> {
    /// Input of each MLP layer (`z = [β ; m̃]` first), `[in, B]`.
    layer_in: Vec<Vec<F>>,
    /// Output of each MLP layer before its activation, `[out, B]` (the last is `Δ`).
    layer_out: Vec<Vec<F>>,
    /// Pre-activation of the output, `[B]`.
    pre: Vec<F>,
    /// `tanh(LECUN_SLOPE·Δ)`, `[d_m, B]`: the backward step reads it instead of forming
    /// it again (a `tanh` is an `exp` and a division per lane).
    squashed: Vec<F>,
    /// Backward, one block of sequences: gradients of a layer's output and input, per row.
    d_out: Vec<[F; LANES]>,
    d_in: Vec<[F; LANES]>,
    /// A layer's input for one block of sequences, transposed: `[LANES, in]`, each row
    /// padded with zeros to whole blocks.
    inputs_t: Vec<F>,
}

/// One neuron's parameter gradients, accumulated over the steps. Biases and `w_y` keep
/// one lane per sequence (`[·, W]`, summed at the end); the large weights are summed over
/// the batch at every step, so that their accumulators stay small (cache-resident).
struct NeuronGrads<F> {
    w_s: Vec<F>,
    mlp: Vec<(Vec<F>, Vec<F>)>,
    w_y: Vec<F>,
    b: Vec<F>,
    /// Of `κ_m` and `1 − κ_λ`, `[d_m, W]` (empty without `kappa_grads`).
    kappa_m: Vec<F>,
    one_minus_kappa_lambda: Vec<F>,
}

const LECUN_SCALE: f64 = 1.7159;
const LECUN_SLOPE: f64 = 2.0 / 3.0;

impl<F: Real> ElmKernel<F> {
    pub fn new(spec: &LayerSpec, connectome: &[usize]) -> Self {
        let sources = spec.input_width + spec.units;
        let synapse_id = |syn: usize| u32::try_from(syn).expect("fewer than 2³² synapses");
        let mut counts = vec![0usize; sources + 1];
        connectome.iter().for_each(|&j| counts[j + 1] += 1);
        let inverse_start: Vec<u32> = counts.iter().scan(0, |acc, c| { *acc += c; Some(synapse_id(*acc)) }).collect();
        let mut fill: Vec<usize> = inverse_start.iter().map(|&s| s as usize).collect();
        let mut inverse = vec![0; connectome.len()];
        for (synapse, &j) in connectome.iter().enumerate() {
            inverse[fill[j]] = synapse_id(synapse);
            fill[j] += 1;
        }
        ElmKernel {
            units: spec.units,
            input: spec.input_width,
            memory: spec.memory,
            branches: spec.branches,
            synapses: spec.synapses_per_branch,
            mlp: spec.mlp_shapes(),
            activation: spec.mlp_activation,
            relu_output: spec.relu_output,
            input_scale: F::of(spec.input_scale),
            kappa_r: spec.high_pass_tau.map(|t| F::of((-1.0 / t).exp())),
            connectome: connectome.iter().map(|&j| u32::try_from(j).expect("fewer than 2³² sources")).collect(),
            inverse_start,
            inverse,
            contraction_bytes: 192 << 10,
            cached_bytes: prefetch::CACHED_BYTES,
            branch_of: (0..connectome.len()).map(|syn| (syn / spec.k_c() * spec.branches + syn % spec.k_c() / spec.synapses_per_branch) as u32).collect(),
        }
    }

    /// The same kernel with contractions over `bytes` of sources: tests make them a few steps
    /// long, so that a short sequence has several (and, without recurrent synapses, several
    /// rounds, the last one short).
    #[cfg(test)]
    pub(crate) fn with_contraction_bytes(self, bytes: usize) -> Self {
        ElmKernel { contraction_bytes: bytes, ..self }
    }

    /// The same kernel prefetching from `bytes` of parameters on: tests take its prefetching
    /// paths on small layers.
    #[cfg(test)]
    pub(crate) fn with_cached_bytes(self, bytes: usize) -> Self {
        ElmKernel { cached_bytes: bytes, ..self }
    }

    /// Whether any synapse reads the layer's own outputs (a readout's do not): only then
    /// does each step wait for every neuron's previous step.
    fn recurrent(&self) -> bool {
        self.inverse_start[self.input] != self.inverse_start[self.input + self.units]
    }

    fn k_c(&self) -> usize {
        self.branches * self.synapses
    }

    fn scratch(&self, batch: usize) -> Scratch<F> {
        let widest = self.mlp.iter().map(|&(o, i)| o.max(i)).max().unwrap_or(0);
        Scratch {
            layer_in: self.mlp.iter().map(|&(_, i)| vec![F::zero(); i * batch]).collect(),
            layer_out: self.mlp.iter().map(|&(o, _)| vec![F::zero(); o * batch]).collect(),
            pre: vec![F::zero(); batch],
            squashed: vec![F::zero(); self.memory * batch],
            d_out: vec![[F::zero(); LANES]; widest],
            d_in: vec![[F::zero(); LANES]; widest],
            inputs_t: vec![F::zero(); LANES * lanes::padded(widest)],
        }
    }
}

fn activate<F: Real>(f: MlpActivation, x: F) -> F {
    match f {
        MlpActivation::Relu2 => x.relu() * x.relu(),
        MlpActivation::Relu => x.relu(),
        MlpActivation::Silu => x * x.sigmoid(),
    }
}

fn activate_slope<F: Real>(f: MlpActivation, x: F) -> F {
    match f {
        MlpActivation::Relu2 => F::of(2.0) * x.relu(),
        MlpActivation::Relu => if x > F::zero() { F::one() } else { F::zero() },
        MlpActivation::Silu => {
            let s = x.sigmoid();
            s + x * s * (F::one() - s)
        }
    }
}

/// Gradients of the layer's results that the backward pass starts from.
pub struct ElmUpstream<'a, F> {
    /// Of each output `a_1..a_T`, `[N, B]`.
    pub outputs: &'a [Vec<F>],
    /// Of the final `m_T` and `e_T`.
    pub m_last: &'a [F],
    pub e_last: &'a [F],
    /// Of the penalty sums, when kept.
    pub abs_delta: Option<&'a [F]>,
    pub activity: Option<&'a [F]>,
}

/// One neuron's share of [`ElmUpstream`] at one step.
struct NeuronUpstream<'a, F> {
    d_a: &'a [F],
    abs_delta: Option<&'a [F]>,
    activity: Option<&'a [F]>,
}

impl ElmKernel<f32> {
    /// The layer as the CUDA kernels take it, and its wiring.
    pub fn cuda_shape(&self) -> (elmlab_cuda_kernels::ElmShape, elmlab_cuda_kernels::ElmWiring<'_>) {
        use elmlab_cuda_kernels::Activation;
        let shape = elmlab_cuda_kernels::ElmShape {
            units: self.units,
            inputs: self.input,
            memory: self.memory,
            branches: self.branches,
            synapses: self.synapses,
            mlp: self.mlp.clone(),
            activation: match self.activation {
                MlpActivation::Relu2 => Activation::Relu2,
                MlpActivation::Relu => Activation::Relu,
                MlpActivation::Silu => Activation::Silu,
            },
            relu_output: self.relu_output,
            kappa_r: self.kappa_r,
            input_scale: self.input_scale,
        };
        (shape, elmlab_cuda_kernels::ElmWiring { connectome: &self.connectome, inverse_start: &self.inverse_start, inverse: &self.inverse })
    }
}
