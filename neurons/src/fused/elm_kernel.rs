//! One layer of ELM neurons over a whole sequence (elm-network.md §1), forward and
//! backward through time by hand. Each step runs the `N` neurons in parallel (their
//! work is independent given the step's sources); backward keeps only the per-step
//! states `m, e, a` and recomputes a step's intermediates from them. The gradient of the
//! sources (inputs and previous outputs) is gathered per source through the inverted
//! connectome, so every sum runs in a fixed order whatever the thread count.
//! Every matrix is row-major with the batch last (`[N, d_m, B]` for the memory).

// Index loops over fixed-size lane blocks are deliberate: they are what vectorises.
#![allow(clippy::needless_range_loop)]

use super::{cpu, Real};
use crate::elm::{LayerSpec, MlpActivation};
use rayon::prelude::*;

/// Neurons per parallel task; the split never changes a number, only the scheduling.
const NEURONS_PER_TASK: usize = 4;

/// The batch is padded to a multiple of this many sequences inside the kernel, so that
/// every row is whole blocks of fixed-size arrays, which the compiler vectorises. The
/// padded sequences start from zero and receive zero gradients; they never reach a result.
const LANES: usize = 8;

fn padded(batch: usize) -> usize {
    batch.div_ceil(LANES) * LANES
}

/// `[rows, batch]` → `[rows, width]` with zeros in the extra columns.
fn pad<F: Real>(v: &[F], batch: usize, width: usize) -> Vec<F> {
    if batch == width {
        return v.to_vec();
    }
    let mut out = vec![F::zero(); v.len() / batch.max(1) * width];
    for (o, r) in out.chunks_exact_mut(width).zip(v.chunks_exact(batch)) {
        o[..batch].copy_from_slice(r);
    }
    out
}

/// `[rows, width]` → `[rows, batch]`.
fn unpad<F: Real>(v: &[F], width: usize, batch: usize) -> Vec<F> {
    if batch == width {
        return v.to_vec();
    }
    v.chunks_exact(width).flat_map(|r| r[..batch].iter().copied()).collect()
}

/// A row `[W]` (W a multiple of [`LANES`]) as blocks of sequences.
#[inline(always)]
fn blocks<F>(v: &[F]) -> &[[F; LANES]] {
    v.as_chunks::<LANES>().0
}

#[inline(always)]
fn blocks_mut<F>(v: &mut [F]) -> &mut [[F; LANES]] {
    v.as_chunks_mut::<LANES>().0
}

/// `acc += a·x`, fused (one rounding). Only inside functions compiled for AVX2 and FMA
/// where the CPU has them (elsewhere `mul_add` is a slow library call, rounding the same).
#[inline(always)]
fn fma<F: Real>(acc: &mut [F; LANES], a: F, x: &[F; LANES]) {
    for l in 0..LANES {
        acc[l] = a.mul_add(x[l], acc[l]);
    }
}

/// Rows `r0..r0+R` of one MLP layer for one block of sequences: `out = W·in + bias`,
/// the `R` accumulators kept in registers over the whole input.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn affine_rows<F: Real, const R: usize>(r0: usize, inputs: usize, w: &[F], bias: &[F], ins: &[[F; LANES]], outs: &mut [[F; LANES]], nb: usize, lb: usize) {
    let mut acc: [[F; LANES]; R] = std::array::from_fn(|rr| [bias[r0 + rr]; LANES]);
    for c in 0..inputs {
        let x = ins[c * nb + lb];
        for rr in 0..R {
            fma(&mut acc[rr], w[(r0 + rr) * inputs + c], &x);
        }
    }
    for rr in 0..R {
        outs[(r0 + rr) * nb + lb] = acc[rr];
    }
}


/// `d_in[c0..c0+C] = Σ_r w[r, c]·d_out[r]` for one block of sequences, `r` in order.
#[inline(always)]
fn input_grads<F: Real, const C: usize>(c0: usize, inputs: usize, outputs: usize, w: &[F], d_out: &[[F; LANES]], d_in: &mut [[F; LANES]]) {
    let mut acc = [[F::zero(); LANES]; C];
    for r in 0..outputs {
        let dv = d_out[r];
        for cc in 0..C {
            fma(&mut acc[cc], w[r * inputs + c0 + cc], &dv);
        }
    }
    d_in[c0..c0 + C].copy_from_slice(&acc);
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
    kappa_m: Vec<F>,
    one_minus_kappa_lambda: Vec<F>,
    kappa_r: Option<F>,
    /// The connectome `[N, k_c]` into `[inputs ; previous outputs]` (32-bit: it is read
    /// at every step of every pass, and half the bytes is half the traffic).
    connectome: Vec<u32>,
    /// For each source `j`, the synapses `n·k_c + k` that read it, in ascending order
    /// (`inverse[inverse_start[j]..inverse_start[j + 1]]`).
    inverse_start: Vec<usize>,
    inverse: Vec<usize>,
    /// For each synapse `n·k_c + k`, the row `n·branches + k / synapses` of its branch.
    branch_of: Vec<u32>,
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
}

/// What the forward pass keeps: every step's state and sources (no other intermediates).
/// Internally `[·, W]` with the batch padded to `W`; the accessors return `[·, B]`.
pub struct ElmRun<F> {
    pub batch: usize,
    pub steps: usize,
    width: usize,
    /// `m_0..m_T`, each `[N·d_m, W]`.
    m: Vec<Vec<F>>,
    /// `e_0..e_T`, each `[N, W]`.
    e: Vec<Vec<F>>,
    /// `a_0..a_T`, each `[N, W]`: `a_1..a_T` are the outputs.
    a: Vec<Vec<F>>,
    /// Each step's inputs, masked, `[I, W]`.
    inputs: Vec<Vec<F>>,
    extras: ElmExtras<F>,
    /// `Σ_t Σ_d |Δ|` per neuron and sequence, `[N, W]` (MLP-magnitude penalty).
    abs_delta: Vec<F>,
    /// `Σ_t relu(a)`, `[N, W]` (activity penalty).
    activity: Vec<F>,
}

impl<F: Real> ElmRun<F> {
    /// The output `a_t` (`t` in `0..=T`; `a_0` is the initial state), `[N, B]`.
    pub fn output(&self, t: usize) -> Vec<F> {
        unpad(&self.a[t], self.width, self.batch)
    }
    /// The memory `m_t`, `[N·d_m, B]`.
    pub fn memory(&self, t: usize) -> Vec<F> {
        unpad(&self.m[t], self.width, self.batch)
    }
    /// The high-pass average `e_t`, `[N, B]`.
    pub fn high_pass(&self, t: usize) -> Vec<F> {
        unpad(&self.e[t], self.width, self.batch)
    }
    /// `Σ_t Σ_d |Δ|`, `[N, B]`.
    pub fn abs_delta(&self) -> Vec<F> {
        unpad(&self.abs_delta, self.width, self.batch)
    }
    /// `Σ_t relu(a)`, `[N, B]`.
    pub fn activity(&self) -> Vec<F> {
        unpad(&self.activity, self.width, self.batch)
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
}

/// One neuron's intermediates of one step.
struct Scratch<F> {
    /// Input of each MLP layer (`z = [β ; m̃]` first), `[in, B]`.
    layer_in: Vec<Vec<F>>,
    /// Output of each MLP layer before its activation, `[out, B]` (the last is `Δ`).
    layer_out: Vec<Vec<F>>,
    /// Pre-activation of the output, `[B]`.
    pre: Vec<F>,
    /// Backward, one block of sequences: gradients of a layer's output and input, per row.
    d_out: Vec<[F; LANES]>,
    d_in: Vec<[F; LANES]>,
    /// A layer's input for one block of sequences, transposed: `[LANES, in]`.
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
}

/// Sums the first `batch` of the `width` lanes of each entry (`[len, W]` → `[len]`), in lane order.
fn sum_lanes<F: Real>(lanes: &[F], width: usize, batch: usize) -> impl Iterator<Item = F> + '_ {
    lanes.chunks_exact(width).map(move |l| l[..batch].iter().fold(F::zero(), |acc, &v| acc + v))
}

const LECUN_SCALE: f64 = 1.7159;
const LECUN_SLOPE: f64 = 2.0 / 3.0;

impl<F: Real> ElmKernel<F> {
    pub fn new(spec: &LayerSpec, connectome: &[usize]) -> Self {
        let tau = spec.tau_m();
        let sources = spec.input_width + spec.units;
        let mut counts = vec![0usize; sources + 1];
        connectome.iter().for_each(|&j| counts[j + 1] += 1);
        let inverse_start: Vec<usize> = counts.iter().scan(0, |acc, c| { *acc += c; Some(*acc) }).collect();
        let mut fill = inverse_start.clone();
        let mut inverse = vec![0; connectome.len()];
        for (synapse, &j) in connectome.iter().enumerate() {
            inverse[fill[j]] = synapse;
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
            kappa_m: tau.iter().map(|t| F::of((-1.0 / t).exp())).collect(),
            one_minus_kappa_lambda: tau.iter().map(|t| F::of(1.0 - (-spec.lambda / t).exp())).collect(),
            kappa_r: spec.high_pass_tau.map(|t| F::of((-1.0 / t).exp())),
            connectome: connectome.iter().map(|&j| u32::try_from(j).expect("fewer than 2³² sources")).collect(),
            inverse_start,
            inverse,
            branch_of: (0..connectome.len()).map(|syn| (syn / spec.k_c() * spec.branches + syn % spec.k_c() / spec.synapses_per_branch) as u32).collect(),
        }
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
            d_out: vec![[F::zero(); LANES]; widest],
            d_in: vec![[F::zero(); LANES]; widest],
            inputs_t: vec![F::zero(); LANES * widest],
        }
    }

    /// The step's sources `[inputs ; previous outputs]`, `[I + N, B]`, with dropout.
    fn sources(&self, x: &[F], a_prev: &[F], extras: &ElmExtras<F>) -> Vec<F> {
        let mut src = Vec::with_capacity(x.len() + a_prev.len());
        src.extend_from_slice(x);
        match &extras.recurrent_mask {
            Some(mask) => src.extend(a_prev.iter().zip(mask).map(|(&a, &m)| a * m)),
            None => src.extend_from_slice(a_prev),
        }
        src
    }

    /// Neuron `n`'s step: fills `s` and writes `m`, `e`, `a` (each this neuron's rows,
    /// `[·, W]`). Works one block of [`LANES`] sequences at a time, in registers.
    #[allow(clippy::too_many_arguments)]
    fn neuron_step(&self, p: &ElmParams<F>, n: usize, width: usize, src: &[F], m_prev: &[F], e_prev: &[F], s: &mut Scratch<F>, m: &mut [F], e: &mut [F], a: &mut [F]) {
        #[cfg(target_arch = "x86_64")]
        if cpu::avx512_fma() {
            // SAFETY: the CPU has AVX-512F/VL and FMA, checked just above.
            return unsafe { self.neuron_step_avx512(p, n, width, src, m_prev, e_prev, s, m, e, a) };
        }
        #[cfg(target_arch = "x86_64")]
        if cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.neuron_step_avx2(p, n, width, src, m_prev, e_prev, s, m, e, a) };
        }
        self.neuron_step_body(p, n, width, src, m_prev, e_prev, s, m, e, a)
    }

    /// The same code where AVX-512 is there: the same 8-lane arithmetic, with 32 vector
    /// registers instead of 16 (the eight-row MLP blocks no longer spill).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn neuron_step_avx512(&self, p: &ElmParams<F>, n: usize, width: usize, src: &[F], m_prev: &[F], e_prev: &[F], s: &mut Scratch<F>, m: &mut [F], e: &mut [F], a: &mut [F]) {
        self.neuron_step_body(p, n, width, src, m_prev, e_prev, s, m, e, a)
    }

    /// The same code compiled for AVX2 and FMA: a block of eight `f32` is one register,
    /// and multiply-adds are fused. (CPUs without them run the plain build, with `mul_add`
    /// as a library call: slower, and rounding the same way.)
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn neuron_step_avx2(&self, p: &ElmParams<F>, n: usize, width: usize, src: &[F], m_prev: &[F], e_prev: &[F], s: &mut Scratch<F>, m: &mut [F], e: &mut [F], a: &mut [F]) {
        self.neuron_step_body(p, n, width, src, m_prev, e_prev, s, m, e, a)
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn neuron_step_body(&self, p: &ElmParams<F>, n: usize, width: usize, src: &[F], m_prev: &[F], e_prev: &[F], s: &mut Scratch<F>, m: &mut [F], e: &mut [F], a: &mut [F]) {
        let (k_c, d_m, nb) = (self.k_c(), self.memory, width / LANES);
        let w_s = &p.w_s[n * k_c..(n + 1) * k_c];
        let idx = &self.connectome[n * k_c..(n + 1) * k_c];
        let src = blocks(src);
        let m_prev = blocks(m_prev);
        let w_y = &p.w_y[n * d_m..(n + 1) * d_m];
        let last = self.mlp.len() - 1;
        for lb in 0..nb {
            // 1. branch integration; 2. decay; together the MLP's input z = [β ; m̃]
            let z = blocks_mut(&mut s.layer_in[0]);
            for br in 0..self.branches {
                // four accumulators (synapse q into q mod 4), so that the additions do not
                // wait on each other; unrolled by hand so that they stay in registers
                let range = br * self.synapses..(br + 1) * self.synapses;
                let (w, idx) = (&w_s[range.clone()], &idx[range]);
                let mut acc = [[F::zero(); LANES]; 4];
                let mut q = 0;
                while q + 4 <= w.len() {
                    for u in 0..4 {
                        fma(&mut acc[u], w[q + u], &src[idx[q + u] as usize * nb + lb]);
                    }
                    q += 4;
                }
                let rest = w.len() - q;
                if rest > 0 {
                    fma(&mut acc[0], w[q], &src[idx[q] as usize * nb + lb]);
                }
                if rest > 1 {
                    fma(&mut acc[1], w[q + 1], &src[idx[q + 1] as usize * nb + lb]);
                }
                if rest > 2 {
                    fma(&mut acc[2], w[q + 2], &src[idx[q + 2] as usize * nb + lb]);
                }
                z[br * nb + lb] = std::array::from_fn(|l| ((acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l])) * self.input_scale);
            }
            for d in 0..d_m {
                z[(self.branches + d) * nb + lb] = m_prev[d * nb + lb].map(|v| v * self.kappa_m[d]);
            }
            // 3. the neuron's MLP
            for (l, &(o, i)) in self.mlp.iter().enumerate() {
                let (w, bias) = p.mlp[l];
                let (w, bias) = (&w[n * o * i..(n + 1) * o * i], &bias[n * o..(n + 1) * o]);
                let (ins, outs) = (blocks(&s.layer_in[l]), blocks_mut(&mut s.layer_out[l]));
                // eight rows at a time: eight independent chains of multiply-adds keep both
                // FMA units busy (four were bound by the FMA latency)
                let mut r0 = 0;
                while r0 + 8 <= o {
                    affine_rows::<F, 8>(r0, i, w, bias, ins, outs, nb, lb);
                    r0 += 8;
                }
                // the last rows in one block, so that they too run as independent chains
                match o - r0 {
                    1 => affine_rows::<F, 1>(r0, i, w, bias, ins, outs, nb, lb),
                    2 => affine_rows::<F, 2>(r0, i, w, bias, ins, outs, nb, lb),
                    3 => affine_rows::<F, 3>(r0, i, w, bias, ins, outs, nb, lb),
                    4 => affine_rows::<F, 4>(r0, i, w, bias, ins, outs, nb, lb),
                    5 => affine_rows::<F, 5>(r0, i, w, bias, ins, outs, nb, lb),
                    6 => affine_rows::<F, 6>(r0, i, w, bias, ins, outs, nb, lb),
                    7 => affine_rows::<F, 7>(r0, i, w, bias, ins, outs, nb, lb),
                    _ => {}
                }
                if l < last {
                    let (outs, next) = (blocks(&s.layer_out[l]), blocks_mut(&mut s.layer_in[l + 1]));
                    for r in 0..o {
                        next[r * nb + lb] = outs[r * nb + lb].map(|v| activate(self.activation, v));
                    }
                }
            }
            // 4.–5. bounded update into memory; 6. readout
            let (delta, z, m_out) = (blocks(&s.layer_out[last]), blocks(&s.layer_in[0]), blocks_mut(m));
            let mut r = [F::zero(); LANES];
            for d in 0..d_m {
                let (dec, dl) = (&z[(self.branches + d) * nb + lb], &delta[d * nb + lb]);
                let mut mem = [F::zero(); LANES];
                for l in 0..LANES {
                    mem[l] = dec[l] + F::of(LECUN_SCALE) * (F::of(LECUN_SLOPE) * dl[l]).tanh() * self.one_minus_kappa_lambda[d];
                }
                m_out[d * nb + lb] = mem;
                fma(&mut r, w_y[d], &mem);
            }
            // 7. high-pass; 8. output
            for l in 0..LANES {
                let j = lb * LANES + l;
                let filtered = match self.kappa_r {
                    Some(k) => {
                        e[j] = k * e_prev[j] + (F::one() - k) * r[l];
                        r[l] - e[j]
                    }
                    None => {
                        e[j] = e_prev[j];
                        r[l]
                    }
                };
                s.pre[j] = filtered + p.b[n];
                a[j] = if self.relu_output { s.pre[j].relu() } else { s.pre[j] };
            }
        }
    }

    /// Runs the sequence `inputs` (each `[I, B]`) from `m0, e0, a0`.
    pub fn run(&self, p: &ElmParams<F>, inputs: &[&[F]], m0: Vec<F>, e0: Vec<F>, a0: Vec<F>, extras: ElmExtras<F>) -> ElmRun<F> {
        let (n, d_m) = (self.units, self.memory);
        let (unpadded, steps) = (e0.len() / n, inputs.len());
        let batch = padded(unpadded);
        let extras = ElmExtras {
            input_mask: extras.input_mask.map(|v| pad(&v, unpadded, batch)),
            recurrent_mask: extras.recurrent_mask.map(|v| pad(&v, unpadded, batch)),
            ..extras
        };
        let masked: Vec<Vec<F>> = inputs
            .iter()
            .map(|x| {
                let x = pad(x, unpadded, batch);
                match &extras.input_mask {
                    Some(mask) => x.iter().zip(mask).map(|(&v, &m)| v * m).collect(),
                    None => x,
                }
            })
            .collect();
        let (mut m, mut e, mut a) = (vec![pad(&m0, unpadded, batch)], vec![pad(&e0, unpadded, batch)], vec![pad(&a0, unpadded, batch)]);
        // The time loop runs on a worker of the pool, so the per-step parallel loops
        // below start there instead of being handed over from outside at every step.
        let mut abs_delta = vec![F::zero(); n * batch];
        let mut activity = vec![F::zero(); n * batch];
        rayon::scope(|_| for x in &masked {
            let src = self.sources(x, a.last().expect("a_0"), &extras);
            let (m_prev, e_prev) = (m.last().expect("m_0"), e.last().expect("e_0"));
            let mut m_next = vec![F::zero(); n * d_m * batch];
            let mut e_next = vec![F::zero(); n * batch];
            let mut a_next = vec![F::zero(); n * batch];
            m_next
                .par_chunks_mut(d_m * batch)
                .zip(e_next.par_chunks_mut(batch))
                .zip(a_next.par_chunks_mut(batch))
                .zip(abs_delta.par_chunks_mut(batch))
                .zip(activity.par_chunks_mut(batch))
                .enumerate()
                .with_min_len(NEURONS_PER_TASK)
                .for_each_init(
                    || self.scratch(batch),
                    |s, (i, ((((m_i, e_i), a_i), abs_i), act_i))| {
                        let m_prev = &m_prev[i * d_m * batch..][..d_m * batch];
                        self.neuron_step(p, i, batch, &src, m_prev, &e_prev[i * batch..][..batch], s, m_i, e_i, a_i);
                        if extras.mlp_penalty {
                            let delta = &s.layer_out[self.mlp.len() - 1];
                            for d in 0..d_m {
                                abs_i.iter_mut().zip(&delta[d * batch..][..batch]).for_each(|(acc, &v)| *acc += v.abs());
                            }
                        }
                        if extras.activity_penalty {
                            act_i.iter_mut().zip(a_i.iter()).for_each(|(acc, &v)| *acc += v.relu());
                        }
                    },
                );
            m.push(m_next);
            e.push(e_next);
            a.push(a_next);
        });
        ElmRun { batch: unpadded, steps, width: batch, m, e, a, inputs: masked, extras, abs_delta, activity }
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

impl<F: Real> ElmKernel<F> {
    /// Backward through time. Without `input_grads` the inputs' gradients are not formed
    /// (`inputs` comes back empty): the first layer reads data, which needs none.
    pub fn backward(&self, p: &ElmParams<F>, run: &ElmRun<F>, up: &ElmUpstream<F>, input_grads: bool) -> ElmGrads<F> {
        let (n, d_m, k_c, batch, inp) = (self.units, self.memory, self.k_c(), run.width, self.input);
        let unpadded = run.batch;
        let outputs: Vec<Vec<F>> = up.outputs.iter().map(|v| pad(v, unpadded, batch)).collect();
        let abs_up = up.abs_delta.map(|v| pad(v, unpadded, batch));
        let act_up = up.activity.map(|v| pad(v, unpadded, batch));
        let mut grads: Vec<NeuronGrads<F>> = (0..n)
            .map(|_| NeuronGrads {
                w_s: vec![F::zero(); k_c],
                mlp: self.mlp.iter().map(|&(o, i)| (vec![F::zero(); o * i], vec![F::zero(); o * batch])).collect(),
                w_y: vec![F::zero(); d_m * batch],
                b: vec![F::zero(); batch],
            })
            .collect();
        let mut d_m_carry = pad(up.m_last, unpadded, batch);
        let mut d_e_carry = pad(up.e_last, unpadded, batch);
        // gradient reaching a_t from later steps (as a source), added to the output's own
        let mut d_a_from_later = vec![F::zero(); n * batch];
        // per neuron and branch, the gradient of the branch sum β: `[N, branches, B]`
        let mut d_beta = vec![F::zero(); n * self.branches * batch];
        // the synapses in the order the sources gather them: scaled weight and branch row
        let gather: Vec<(F, u32)> = self.inverse.iter().map(|&syn| (p.w_s[syn] * self.input_scale, self.branch_of[syn])).collect();
        let mut d_inputs = vec![Vec::new(); if input_grads { run.steps } else { 0 }];
        // the steps whose branch gradients and sources wait for the synapse-weight gradients
        let chunk = self.w_s_chunk(batch);
        let mut pending: Vec<(Vec<F>, Vec<F>)> = Vec::with_capacity(chunk);
        // branch-gradient buffers back from contracted steps, for the next steps to fill
        let mut spare: Vec<Vec<F>> = Vec::with_capacity(chunk);
        // on a worker of the pool, like the forward loop
        rayon::scope(|_| for t in (0..run.steps).rev() {
            let src = self.sources(&run.inputs[t], &run.a[t], &run.extras);
            let d_a: Vec<F> = outputs[t].iter().zip(&d_a_from_later).map(|(&x, &y)| x + y).collect();
            let (m_prev, e_prev) = (&run.m[t], &run.e[t]);
            d_m_carry
                .par_chunks_mut(d_m * batch)
                .zip(d_e_carry.par_chunks_mut(batch))
                .zip(grads.par_iter_mut())
                .zip(d_beta.par_chunks_mut(self.branches * batch))
                .enumerate()
                .with_min_len(NEURONS_PER_TASK)
                .for_each_init(
                    || (self.scratch(batch), vec![F::zero(); d_m * batch], vec![F::zero(); batch], vec![F::zero(); batch]),
                    |(s, m_i, e_i, a_i), (i, (((d_m_i, d_e_i), g), d_beta_i))| {
                        let m_prev_i = &m_prev[i * d_m * batch..][..d_m * batch];
                        self.neuron_step(p, i, batch, &src, m_prev_i, &e_prev[i * batch..][..batch], s, m_i, e_i, a_i);
                        let up_i = NeuronUpstream {
                            d_a: &d_a[i * batch..][..batch],
                            abs_delta: abs_up.as_ref().map(|v| &v[i * batch..][..batch]),
                            activity: act_up.as_ref().map(|v| &v[i * batch..][..batch]),
                        };
                        self.neuron_backward(p, i, batch, s, m_i, a_i, &up_i, d_m_i, d_e_i, g, d_beta_i);
                    },
                );
            // each source gathers what its synapses send, in a fixed order
            // (only the recurrent sources when the inputs need no gradient)
            let first = if input_grads { 0 } else { inp };
            let mut d_src = vec![F::zero(); (inp + n - first) * batch];
            let d_beta_blocks = blocks(&d_beta);
            let nb = batch / LANES;
            d_src.par_chunks_mut(batch).enumerate().with_min_len(16).for_each(|(row, acc)| {
                let j = first + row;
                gather_source(blocks_mut(acc), &gather[self.inverse_start[j]..self.inverse_start[j + 1]], d_beta_blocks, nb);
            });
            let (d_x, d_a_prev) = d_src.split_at((inp - first) * batch);
            if input_grads {
                let d_x: Vec<F> = match &run.extras.input_mask {
                    Some(mask) => d_x.iter().zip(mask).map(|(&g, &m)| g * m).collect(),
                    None => d_x.to_vec(),
                };
                d_inputs[t] = unpad(&d_x, batch, unpadded);
            }
            d_a_from_later = match &run.extras.recurrent_mask {
                Some(mask) => d_a_prev.iter().zip(mask).map(|(&g, &m)| g * m).collect(),
                None => d_a_prev.to_vec(),
            };
            // the step's branch gradients move to `pending` (every entry is written again
            // at the next step, so the buffer taken in its place needs no clearing)
            let next = spare.pop().unwrap_or_else(|| vec![F::zero(); d_beta.len()]);
            pending.push((src, std::mem::replace(&mut d_beta, next)));
            if pending.len() == chunk || t == 0 {
                grads.par_iter_mut().enumerate().with_min_len(NEURONS_PER_TASK).for_each(|(i, g)| self.synapse_grads(i, batch, &pending, &mut g.w_s));
                spare.extend(pending.drain(..).map(|(_, d_beta)| d_beta));
            }
        });
        let mut out = ElmGrads {
            w_s: Vec::with_capacity(n * k_c),
            mlp: self.mlp.iter().map(|&(o, i)| (Vec::with_capacity(n * o * i), Vec::with_capacity(n * o))).collect(),
            w_y: Vec::with_capacity(n * d_m),
            b: Vec::with_capacity(n),
            inputs: d_inputs,
            m0: unpad(&d_m_carry, batch, unpadded),
            e0: unpad(&d_e_carry, batch, unpadded),
            a0: unpad(&d_a_from_later, batch, unpadded),
        };
        for g in grads {
            out.w_s.extend(g.w_s.iter().map(|&v| v * self.input_scale));
            for (o, (w, b)) in out.mlp.iter_mut().zip(g.mlp) {
                o.0.extend(w);
                o.1.extend(sum_lanes(&b, batch, unpadded));
            }
            out.w_y.extend(sum_lanes(&g.w_y, batch, unpadded));
            out.b.extend(sum_lanes(&g.b, batch, unpadded));
        }
        out
    }

    /// Neuron `n`'s backward step, after `neuron_step` filled `s`, `m`, `a` for this
    /// step. Reads and replaces the carried `d_m`, `d_e`; adds to `g`; writes the
    /// gradient of each branch sum into `d_beta` (`[branches, W]`). One block of
    /// [`LANES`] sequences at a time, like the forward step.
    #[allow(clippy::too_many_arguments)]
    fn neuron_backward(&self, p: &ElmParams<F>, n: usize, width: usize, s: &mut Scratch<F>, m: &[F], a: &[F], up: &NeuronUpstream<F>, d_m: &mut [F], d_e: &mut [F], g: &mut NeuronGrads<F>, d_beta_out: &mut [F]) {
        #[cfg(target_arch = "x86_64")]
        if cpu::avx512_fma() {
            // SAFETY: the CPU has AVX-512F/VL and FMA, checked just above.
            return unsafe { self.neuron_backward_avx512(p, n, width, s, m, a, up, d_m, d_e, g, d_beta_out) };
        }
        #[cfg(target_arch = "x86_64")]
        if cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.neuron_backward_avx2(p, n, width, s, m, a, up, d_m, d_e, g, d_beta_out) };
        }
        self.neuron_backward_body(p, n, width, s, m, a, up, d_m, d_e, g, d_beta_out)
    }

    /// With 32 vector registers where AVX-512 is there, like [`Self::neuron_step_avx512`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn neuron_backward_avx512(&self, p: &ElmParams<F>, n: usize, width: usize, s: &mut Scratch<F>, m: &[F], a: &[F], up: &NeuronUpstream<F>, d_m: &mut [F], d_e: &mut [F], g: &mut NeuronGrads<F>, d_beta_out: &mut [F]) {
        self.neuron_backward_body(p, n, width, s, m, a, up, d_m, d_e, g, d_beta_out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn neuron_backward_avx2(&self, p: &ElmParams<F>, n: usize, width: usize, s: &mut Scratch<F>, m: &[F], a: &[F], up: &NeuronUpstream<F>, d_m: &mut [F], d_e: &mut [F], g: &mut NeuronGrads<F>, d_beta_out: &mut [F]) {
        self.neuron_backward_body(p, n, width, s, m, a, up, d_m, d_e, g, d_beta_out)
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn neuron_backward_body(&self, p: &ElmParams<F>, n: usize, width: usize, s: &mut Scratch<F>, m: &[F], a: &[F], up: &NeuronUpstream<F>, d_m: &mut [F], d_e: &mut [F], g: &mut NeuronGrads<F>, d_beta_out: &mut [F]) {
        let (mem, nb) = (self.memory, width / LANES);
        let w_y = &p.w_y[n * mem..(n + 1) * mem];
        let m = blocks(m);
        let last = self.mlp.len() - 1;
        for lb in 0..nb {
            // 8. output and activity penalty; 7. high-pass
            let mut d_r = [F::zero(); LANES];
            for l in 0..LANES {
                let j = lb * LANES + l;
                let mut da = up.d_a[j];
                if let Some(act) = up.activity {
                    if a[j] > F::zero() {
                        da += act[j];
                    }
                }
                let d_pre = if self.relu_output && s.pre[j] <= F::zero() { F::zero() } else { da };
                g.b[j] += d_pre;
                d_r[l] = match self.kappa_r {
                    Some(k) => {
                        let d_e_total = d_e[j] - d_pre;
                        d_e[j] = d_e_total * k;
                        d_pre + d_e_total * (F::one() - k)
                    }
                    None => d_pre,
                };
            }
            // 6. readout; 5.–4. memory update: the gradient of the MLP output Δ
            let delta = blocks(&s.layer_out[last]);
            let d_mb = blocks_mut(d_m);
            // on local copies of the blocks, so that the lanes vectorise (in place, through
            // the slices, the loop ran scalar: a division per lane in tanh)
            let abs_block: Option<[F; LANES]> = up.abs_delta.map(|abs| std::array::from_fn(|l| abs[lb * LANES + l]));
            for d in 0..mem {
                let at = d * nb + lb;
                let (mv, dl) = (m[at], delta[at]);
                let gw_y = &mut g.w_y[d * width + lb * LANES..][..LANES];
                let mut gw: [F; LANES] = std::array::from_fn(|l| gw_y[l]);
                let mut dm = d_mb[at];
                let mut dd = [F::zero(); LANES];
                for l in 0..LANES {
                    gw[l] += d_r[l] * mv[l];
                    dm[l] += d_r[l] * w_y[d];
                    let th = (F::of(LECUN_SLOPE) * dl[l]).tanh();
                    dd[l] = dm[l] * self.one_minus_kappa_lambda[d] * F::of(LECUN_SCALE * LECUN_SLOPE) * (F::one() - th * th);
                }
                if let Some(abs) = abs_block {
                    // the subgradient of |Δ|: sign(Δ), zero at zero
                    for l in 0..LANES {
                        let sign = if dl[l] > F::zero() { F::one() } else if dl[l] < F::zero() { -F::one() } else { F::zero() };
                        dd[l] += sign * abs[l];
                    }
                }
                gw_y.copy_from_slice(&gw);
                d_mb[at] = dm;
                s.d_out[d] = dd;
            }
            // 3. MLP backward, last layer first; `d_out` holds the gradient of layer l's output
            for l in (0..self.mlp.len()).rev() {
                let (o, i) = self.mlp[l];
                let w = &p.mlp[l].0[n * o * i..(n + 1) * o * i];
                let (gw, gb) = &mut g.mlp[l];
                let ins = blocks(&s.layer_in[l]);
                for r in 0..o {
                    let gb = &mut gb[r * width + lb * LANES..][..LANES];
                    for ln in 0..LANES {
                        gb[ln] += s.d_out[r][ln];
                    }
                }
                // weight gradients: the inputs transposed (sequence-major), so that each
                // sequence adds `d_out[r, b] · x[·, b]` to a whole weight row, no horizontal sums
                for c in 0..i {
                    for ln in 0..LANES {
                        s.inputs_t[ln * i + c] = ins[c * nb + lb][ln];
                    }
                }
                for r in 0..o {
                    let gw_row = &mut gw[r * i..(r + 1) * i];
                    for ln in 0..LANES {
                        let dv = s.d_out[r][ln];
                        gw_row.iter_mut().zip(&s.inputs_t[ln * i..(ln + 1) * i]).for_each(|(g, &x)| *g = dv.mul_add(x, *g));
                    }
                }
                // d_in = Wᵀ·d_out, eight inputs at a time (independent chains; one input per
                // chain was bound by the FMA latency); each sum still runs over r in order
                let mut c0 = 0;
                while c0 + 8 <= i {
                    input_grads::<F, 8>(c0, i, o, w, &s.d_out, &mut s.d_in);
                    c0 += 8;
                }
                match i - c0 {
                    1 => input_grads::<F, 1>(c0, i, o, w, &s.d_out, &mut s.d_in),
                    2 => input_grads::<F, 2>(c0, i, o, w, &s.d_out, &mut s.d_in),
                    3 => input_grads::<F, 3>(c0, i, o, w, &s.d_out, &mut s.d_in),
                    4 => input_grads::<F, 4>(c0, i, o, w, &s.d_out, &mut s.d_in),
                    5 => input_grads::<F, 5>(c0, i, o, w, &s.d_out, &mut s.d_in),
                    6 => input_grads::<F, 6>(c0, i, o, w, &s.d_out, &mut s.d_in),
                    7 => input_grads::<F, 7>(c0, i, o, w, &s.d_out, &mut s.d_in),
                    _ => {}
                }
                if l > 0 {
                    // through the previous layer's activation
                    let pre = blocks(&s.layer_out[l - 1]);
                    for c in 0..i {
                        let (dv, x) = (s.d_in[c], pre[c * nb + lb]);
                        s.d_out[c] = std::array::from_fn(|ln| dv[ln] * activate_slope(self.activation, x[ln]));
                    }
                }
            }
            // 2. decay: the memory's gradient flows to m_{t-1} directly and through z
            for d in 0..mem {
                let (dm, dz) = (&mut d_mb[d * nb + lb], &s.d_in[self.branches + d]);
                for l in 0..LANES {
                    dm[l] = (dm[l] + dz[l]) * self.kappa_m[d];
                }
            }
            // 1. branch integration (the sources' gradients are gathered per source afterwards)
            let d_beta = blocks_mut(d_beta_out);
            for br in 0..self.branches {
                d_beta[br * nb + lb] = s.d_in[br];
            }
        }
    }
}

impl<F: Real> ElmKernel<F> {
    /// Steps per batch of the synapse-weight gradients: their branch gradients and
    /// sources are kept (about 32 MB) and then contracted neuron by neuron.
    fn w_s_chunk(&self, width: usize) -> usize {
        let per_step = (self.units * self.branches + self.input + self.units) * width * std::mem::size_of::<F>();
        ((32 << 20) / per_step.max(1)).max(1)
    }

    /// Adds to `w_s` (neuron `n`'s `[k_c]`, unscaled) `Σ_t Σ_b δβ_t[branch(k), b]·src_t[j(k), b]`
    /// over the steps in `pending` (each its sources `[I + N, W]` and branch gradients
    /// `[N, branches, W]`). Per-sequence sums stay in lanes over all the steps, so there is
    /// one horizontal sum per synapse per batch of steps instead of one per step.
    fn synapse_grads(&self, n: usize, width: usize, pending: &[(Vec<F>, Vec<F>)], w_s: &mut [F]) {
        #[cfg(target_arch = "x86_64")]
        if cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { self.synapse_grads_avx2(n, width, pending, w_s) };
        }
        self.synapse_grads_body(n, width, pending, w_s)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn synapse_grads_avx2(&self, n: usize, width: usize, pending: &[(Vec<F>, Vec<F>)], w_s: &mut [F]) {
        self.synapse_grads_body(n, width, pending, w_s)
    }

    #[inline(always)]
    fn synapse_grads_body(&self, n: usize, width: usize, pending: &[(Vec<F>, Vec<F>)], w_s: &mut [F]) {
        let (k_c, nb, syn) = (self.k_c(), width / LANES, self.synapses);
        let idx = &self.connectome[n * k_c..(n + 1) * k_c];
        let mut acc = vec![[F::zero(); LANES]; k_c * nb];
        for (src, d_beta) in pending {
            let (src, d_beta) = (blocks(src), blocks(&d_beta[n * self.branches * width..(n + 1) * self.branches * width]));
            for br in 0..self.branches {
                for lb in 0..nb {
                    let db = d_beta[br * nb + lb];
                    for k in br * syn..(br + 1) * syn {
                        // through a local copy: in place, the lanes were not vectorised
                        let (mut a, x) = (acc[k * nb + lb], src[idx[k] as usize * nb + lb]);
                        for l in 0..LANES {
                            a[l] = db[l].mul_add(x[l], a[l]);
                        }
                        acc[k * nb + lb] = a;
                    }
                }
            }
        }
        const { assert!(LANES == 8, "the lane sum below is written for eight lanes") };
        for (k, g) in w_s.iter_mut().enumerate() {
            for lb in 0..nb {
                let a = &acc[k * nb + lb];
                *g += ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
            }
        }
    }
}

/// One source's gradient `acc` (`[W]` as blocks): the sum, in the order of `synapses`, of
/// what each synapse reading it sends (its scaled weight times its branch's gradient).
/// Compiled for AVX2 and FMA where the CPU has them, like the per-neuron functions.
fn gather_source<F: Real>(acc: &mut [[F; LANES]], synapses: &[(F, u32)], d_beta: &[[F; LANES]], nb: usize) {
    #[inline(always)]
    fn body<F: Real>(acc: &mut [[F; LANES]], synapses: &[(F, u32)], d_beta: &[[F; LANES]], nb: usize) {
        // four chains (synapse q into q mod 4), joined at the end: one chain was bound by
        // the FMA latency
        for (lb, out) in acc.iter_mut().enumerate() {
            let mut chains = [[F::zero(); LANES]; 4];
            let mut quads = synapses.chunks_exact(4);
            for quad in &mut quads {
                for u in 0..4 {
                    fma(&mut chains[u], quad[u].0, &d_beta[quad[u].1 as usize * nb + lb]);
                }
            }
            for (u, &(w, row)) in quads.remainder().iter().enumerate() {
                fma(&mut chains[u], w, &d_beta[row as usize * nb + lb]);
            }
            *out = std::array::from_fn(|l| (chains[0][l] + chains[1][l]) + (chains[2][l] + chains[3][l]));
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<F: Real>(acc: &mut [[F; LANES]], synapses: &[(F, u32)], d_beta: &[[F; LANES]], nb: usize) {
            body(acc, synapses, d_beta, nb)
        }
        if cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { avx2(acc, synapses, d_beta, nb) };
        }
    }
    body(acc, synapses, d_beta, nb)
}

/// One neuron's share of [`ElmUpstream`] at one step.
struct NeuronUpstream<'a, F> {
    d_a: &'a [F],
    abs_delta: Option<&'a [F]>,
    activity: Option<&'a [F]>,
}
