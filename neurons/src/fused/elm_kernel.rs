//! One layer of ELM neurons over a whole sequence (elm-network.md §1), forward and
//! backward through time by hand. Each step runs the `N` neurons in parallel (their
//! work is independent given the step's sources); backward keeps only the per-step
//! states `m, e, a` and recomputes a step's intermediates from them. The gradient of the
//! sources (inputs and previous outputs) is gathered per source through the inverted
//! connectome, so every sum runs in a fixed order whatever the thread count.
//! Every matrix is row-major with the batch last (`[N, d_m, B]` for the memory).

use super::Real;
use crate::elm::{LayerSpec, MlpActivation};
use rayon::prelude::*;

/// Neurons per parallel task; the split never changes a number, only the scheduling.
const NEURONS_PER_TASK: usize = 4;

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
    /// The connectome `[N, k_c]` into `[inputs ; previous outputs]`.
    connectome: Vec<usize>,
    /// For each source `j`, the synapses `n·k_c + k` that read it, in ascending order
    /// (`inverse[inverse_start[j]..inverse_start[j + 1]]`).
    inverse_start: Vec<usize>,
    inverse: Vec<usize>,
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
pub struct ElmRun<F> {
    pub batch: usize,
    pub steps: usize,
    /// `m_0..m_T`, each `[N·d_m, B]`.
    pub m: Vec<Vec<F>>,
    /// `e_0..e_T`, each `[N, B]`.
    pub e: Vec<Vec<F>>,
    /// `a_0..a_T`, each `[N, B]`: `a_1..a_T` are the outputs.
    pub a: Vec<Vec<F>>,
    /// Each step's inputs, masked, `[I, B]`.
    inputs: Vec<Vec<F>>,
    extras: ElmExtras<F>,
    /// `Σ_t Σ_d |Δ|` per neuron and sequence, `[N, B]` (MLP-magnitude penalty).
    pub abs_delta: Vec<F>,
    /// `Σ_t relu(a)`, `[N, B]` (activity penalty).
    pub activity: Vec<F>,
}

pub struct ElmGrads<F> {
    pub w_s: Vec<F>,
    pub mlp: Vec<(Vec<F>, Vec<F>)>,
    pub w_y: Vec<F>,
    pub b: Vec<F>,
    /// One `[I, B]` per step.
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
    /// Readout `r`, `[B]`.
    r: Vec<F>,
    /// Backward: gradients of a layer's output and input.
    d_out: Vec<F>,
    d_in: Vec<F>,
}

/// One neuron's parameter gradients, accumulated over the steps.
struct NeuronGrads<F> {
    w_s: Vec<F>,
    mlp: Vec<(Vec<F>, Vec<F>)>,
    w_y: Vec<F>,
    b: F,
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
            connectome: connectome.to_vec(),
            inverse_start,
            inverse,
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
            r: vec![F::zero(); batch],
            d_out: vec![F::zero(); widest * batch],
            d_in: vec![F::zero(); widest * batch],
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

    /// Neuron `n`'s step: fills `s` and writes `m`, `e`, `a` (each this neuron's rows).
    #[allow(clippy::too_many_arguments)]
    fn neuron_step(&self, p: &ElmParams<F>, n: usize, batch: usize, src: &[F], m_prev: &[F], e_prev: &[F], s: &mut Scratch<F>, m: &mut [F], e: &mut [F], a: &mut [F]) {
        let (k_c, d_m, bsz) = (self.k_c(), self.memory, batch);
        // 1. branch integration
        let z = &mut s.layer_in[0];
        z.iter_mut().for_each(|v| *v = F::zero());
        let w_s = &p.w_s[n * k_c..(n + 1) * k_c];
        let idx = &self.connectome[n * k_c..(n + 1) * k_c];
        for (br, beta) in z[..self.branches * bsz].chunks_exact_mut(bsz).enumerate() {
            for k in br * self.synapses..(br + 1) * self.synapses {
                let w = w_s[k];
                let row = &src[idx[k] * bsz..][..bsz];
                beta.iter_mut().zip(row).for_each(|(acc, &v)| *acc += v * w);
            }
            beta.iter_mut().for_each(|v| *v *= self.input_scale);
        }
        // 2. decay into the MLP's input
        for d in 0..d_m {
            let out = &mut z[(self.branches + d) * bsz..][..bsz];
            out.iter_mut().zip(&m_prev[d * bsz..][..bsz]).for_each(|(o, &v)| *o = v * self.kappa_m[d]);
        }
        // 3. the neuron's MLP
        let last = self.mlp.len() - 1;
        for (l, &(o, i)) in self.mlp.iter().enumerate() {
            let (w, bias) = p.mlp[l];
            let w = &w[n * o * i..(n + 1) * o * i];
            let bias = &bias[n * o..(n + 1) * o];
            let (ins, outs) = (&s.layer_in[l], &mut s.layer_out[l]);
            for (r, out) in outs.chunks_exact_mut(bsz).enumerate() {
                out.iter_mut().for_each(|v| *v = bias[r]);
                for (c, input) in ins.chunks_exact(bsz).enumerate() {
                    let wv = w[r * i + c];
                    out.iter_mut().zip(input).for_each(|(acc, &v)| *acc += wv * v);
                }
            }
            if l < last {
                s.layer_in[l + 1].iter_mut().zip(&s.layer_out[l]).for_each(|(h, &v)| *h = activate(self.activation, v));
            }
        }
        // 4.–5. bounded update into memory; 6. readout
        let delta = &s.layer_out[last];
        s.r.iter_mut().for_each(|v| *v = F::zero());
        let w_y = &p.w_y[n * d_m..(n + 1) * d_m];
        for d in 0..d_m {
            let dec = &s.layer_in[0][(self.branches + d) * bsz..][..bsz];
            let rows = m[d * bsz..][..bsz].iter_mut().zip(dec).zip(&delta[d * bsz..][..bsz]);
            for ((m, &dec), &dl) in rows {
                *m = dec + F::of(LECUN_SCALE) * (F::of(LECUN_SLOPE) * dl).tanh() * self.one_minus_kappa_lambda[d];
            }
            s.r.iter_mut().zip(&m[d * bsz..][..bsz]).for_each(|(r, &m)| *r += m * w_y[d]);
        }
        // 7. high-pass; 8. output
        for j in 0..bsz {
            let filtered = match self.kappa_r {
                Some(k) => {
                    e[j] = k * e_prev[j] + (F::one() - k) * s.r[j];
                    s.r[j] - e[j]
                }
                None => {
                    e[j] = e_prev[j];
                    s.r[j]
                }
            };
            s.pre[j] = filtered + p.b[n];
            a[j] = if self.relu_output { s.pre[j].relu() } else { s.pre[j] };
        }
    }

    /// Runs the sequence `inputs` (each `[I, B]`) from `m0, e0, a0`.
    pub fn run(&self, p: &ElmParams<F>, inputs: &[&[F]], m0: Vec<F>, e0: Vec<F>, a0: Vec<F>, extras: ElmExtras<F>) -> ElmRun<F> {
        let (n, d_m) = (self.units, self.memory);
        let batch = e0.len() / n;
        let steps = inputs.len();
        let masked: Vec<Vec<F>> = inputs
            .iter()
            .map(|x| match &extras.input_mask {
                Some(mask) => x.iter().zip(mask).map(|(&v, &m)| v * m).collect(),
                None => x.to_vec(),
            })
            .collect();
        let (mut m, mut e, mut a) = (vec![m0], vec![e0], vec![a0]);
        let mut abs_delta = vec![F::zero(); n * batch];
        let mut activity = vec![F::zero(); n * batch];
        for x in &masked {
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
        }
        ElmRun { batch, steps, m, e, a, inputs: masked, extras, abs_delta, activity }
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
    /// Backward through time.
    pub fn backward(&self, p: &ElmParams<F>, run: &ElmRun<F>, up: &ElmUpstream<F>) -> ElmGrads<F> {
        let (n, d_m, k_c, batch, inp) = (self.units, self.memory, self.k_c(), run.batch, self.input);
        let mut grads: Vec<NeuronGrads<F>> = (0..n)
            .map(|_| NeuronGrads { w_s: vec![F::zero(); k_c], mlp: self.mlp.iter().map(|&(o, i)| (vec![F::zero(); o * i], vec![F::zero(); o])).collect(), w_y: vec![F::zero(); d_m], b: F::zero() })
            .collect();
        let mut d_m_carry = up.m_last.to_vec();
        let mut d_e_carry = up.e_last.to_vec();
        // gradient reaching a_t from later steps (as a source), added to the output's own
        let mut d_a_from_later = vec![F::zero(); n * batch];
        // per synapse, the gradient it sends to its source: `[N, k_c, B]`
        let mut to_source = vec![F::zero(); n * k_c * batch];
        let mut d_inputs = vec![Vec::new(); run.steps];
        for t in (0..run.steps).rev() {
            let src = self.sources(&run.inputs[t], &run.a[t], &run.extras);
            let d_a: Vec<F> = up.outputs[t].iter().zip(&d_a_from_later).map(|(&x, &y)| x + y).collect();
            let (m_prev, e_prev) = (&run.m[t], &run.e[t]);
            d_m_carry
                .par_chunks_mut(d_m * batch)
                .zip(d_e_carry.par_chunks_mut(batch))
                .zip(grads.par_iter_mut())
                .zip(to_source.par_chunks_mut(k_c * batch))
                .enumerate()
                .with_min_len(NEURONS_PER_TASK)
                .for_each_init(
                    || (self.scratch(batch), vec![F::zero(); d_m * batch], vec![F::zero(); batch], vec![F::zero(); batch]),
                    |(s, m_i, e_i, a_i), (i, (((d_m_i, d_e_i), g), to_src))| {
                        let m_prev_i = &m_prev[i * d_m * batch..][..d_m * batch];
                        self.neuron_step(p, i, batch, &src, m_prev_i, &e_prev[i * batch..][..batch], s, m_i, e_i, a_i);
                        let up_i = NeuronUpstream {
                            d_a: &d_a[i * batch..][..batch],
                            abs_delta: up.abs_delta.map(|v| &v[i * batch..][..batch]),
                            activity: up.activity.map(|v| &v[i * batch..][..batch]),
                        };
                        self.neuron_backward(p, i, batch, &src, s, m_i, a_i, &up_i, d_m_i, d_e_i, g, to_src);
                    },
                );
            // each source gathers what its synapses send, in a fixed order
            let mut d_src = vec![F::zero(); (inp + n) * batch];
            d_src.par_chunks_mut(batch).enumerate().with_min_len(16).for_each(|(j, acc)| {
                for &synapse in &self.inverse[self.inverse_start[j]..self.inverse_start[j + 1]] {
                    acc.iter_mut().zip(&to_source[synapse * batch..][..batch]).for_each(|(a, &v)| *a += v);
                }
            });
            let (d_x, d_a_prev) = d_src.split_at(inp * batch);
            d_inputs[t] = match &run.extras.input_mask {
                Some(mask) => d_x.iter().zip(mask).map(|(&g, &m)| g * m).collect(),
                None => d_x.to_vec(),
            };
            d_a_from_later = match &run.extras.recurrent_mask {
                Some(mask) => d_a_prev.iter().zip(mask).map(|(&g, &m)| g * m).collect(),
                None => d_a_prev.to_vec(),
            };
        }
        let mut out = ElmGrads {
            w_s: Vec::with_capacity(n * k_c),
            mlp: self.mlp.iter().map(|&(o, i)| (Vec::with_capacity(n * o * i), Vec::with_capacity(n * o))).collect(),
            w_y: Vec::with_capacity(n * d_m),
            b: Vec::with_capacity(n),
            inputs: d_inputs,
            m0: d_m_carry,
            e0: d_e_carry,
            a0: d_a_from_later,
        };
        for g in grads {
            out.w_s.extend(g.w_s);
            for (o, (w, b)) in out.mlp.iter_mut().zip(g.mlp) {
                o.0.extend(w);
                o.1.extend(b);
            }
            out.w_y.extend(g.w_y);
            out.b.push(g.b);
        }
        out
    }

    /// Neuron `n`'s backward step, after `neuron_step` filled `s`, `m`, `a` for this
    /// step. Reads and replaces the carried `d_m`, `d_e`; adds to `g`; writes what each
    /// synapse sends to its source into `to_src` (`[k_c, B]`).
    #[allow(clippy::too_many_arguments)]
    fn neuron_backward(&self, p: &ElmParams<F>, n: usize, batch: usize, src: &[F], s: &mut Scratch<F>, m: &[F], a: &[F], up: &NeuronUpstream<F>, d_m: &mut [F], d_e: &mut [F], g: &mut NeuronGrads<F>, to_src: &mut [F]) {
        let (k_c, mem, bsz) = (self.k_c(), self.memory, batch);
        let w_y = &p.w_y[n * mem..(n + 1) * mem];
        // 8. output and activity penalty; 7. high-pass
        let mut d_r = vec![F::zero(); bsz];
        for j in 0..bsz {
            let mut da = up.d_a[j];
            if let Some(act) = up.activity {
                if a[j] > F::zero() {
                    da += act[j];
                }
            }
            let d_pre = if self.relu_output && s.pre[j] <= F::zero() { F::zero() } else { da };
            g.b += d_pre;
            d_r[j] = match self.kappa_r {
                Some(k) => {
                    let d_e_total = d_e[j] - d_pre;
                    d_e[j] = d_e_total * k;
                    d_pre + d_e_total * (F::one() - k)
                }
                None => d_pre,
            };
        }
        // 6. readout; 5.–4. memory update: d_m becomes the gradient of the MLP output Δ
        let last = self.mlp.len() - 1;
        let d_delta = &mut s.d_out[..mem * bsz];
        for d in 0..mem {
            let mut dw = F::zero();
            for j in 0..bsz {
                let at = d * bsz + j;
                dw += d_r[j] * m[at];
                d_m[at] += d_r[j] * w_y[d];
                let delta = s.layer_out[last][at];
                let th = (F::of(LECUN_SLOPE) * delta).tanh();
                let mut dd = d_m[at] * self.one_minus_kappa_lambda[d] * F::of(LECUN_SCALE * LECUN_SLOPE) * (F::one() - th * th);
                if let Some(abs) = up.abs_delta {
                    if delta > F::zero() {
                        dd += abs[j];
                    } else if delta < F::zero() {
                        dd -= abs[j];
                    }
                }
                d_delta[at] = dd;
            }
            g.w_y[d] += dw;
        }
        // 3. MLP backward, last layer first; d_out holds the gradient of layer l's output
        for l in (0..self.mlp.len()).rev() {
            let (o, i) = self.mlp[l];
            let w = &p.mlp[l].0[n * o * i..(n + 1) * o * i];
            let (gw, gb) = &mut g.mlp[l];
            let ins = &s.layer_in[l];
            let d_out = &s.d_out[..o * bsz];
            let d_in = &mut s.d_in[..i * bsz];
            d_in.iter_mut().for_each(|v| *v = F::zero());
            for (r, d_row) in d_out.chunks_exact(bsz).enumerate() {
                gb[r] += d_row.iter().fold(F::zero(), |acc, &v| acc + v);
                for (c, (input, d_input)) in ins.chunks_exact(bsz).zip(d_in.chunks_exact_mut(bsz)).enumerate() {
                    let wv = w[r * i + c];
                    let mut acc = F::zero();
                    for ((&dv, &x), dx) in d_row.iter().zip(input).zip(d_input.iter_mut()) {
                        acc += dv * x;
                        *dx += dv * wv;
                    }
                    gw[r * i + c] += acc;
                }
            }
            if l > 0 {
                // through the previous layer's activation
                let pre = &s.layer_out[l - 1];
                for ((dst, &dv), &x) in s.d_out[..i * bsz].iter_mut().zip(s.d_in[..i * bsz].iter()).zip(pre) {
                    *dst = dv * activate_slope(self.activation, x);
                }
            }
        }
        // 2. decay: the memory's gradient flows to m_{t-1} directly and through z
        let d_z = &s.d_in;
        for d in 0..mem {
            let d_z_row = &d_z[(self.branches + d) * bsz..][..bsz];
            d_m[d * bsz..][..bsz].iter_mut().zip(d_z_row).for_each(|(dm, &dz)| *dm = (*dm + dz) * self.kappa_m[d]);
        }
        // 1. branch integration
        let w_s = &p.w_s[n * k_c..(n + 1) * k_c];
        let idx = &self.connectome[n * k_c..(n + 1) * k_c];
        for br in 0..self.branches {
            let d_beta = &d_z[br * bsz..][..bsz];
            for k in br * self.synapses..(br + 1) * self.synapses {
                let row = &src[idx[k] * bsz..][..bsz];
                let mut acc = F::zero();
                let w = w_s[k] * self.input_scale;
                for ((&db, &v), out) in d_beta.iter().zip(row).zip(to_src[k * bsz..][..bsz].iter_mut()) {
                    acc += db * v;
                    *out = db * w;
                }
                g.w_s[k] += acc * self.input_scale;
            }
        }
    }
}

/// One neuron's share of [`ElmUpstream`] at one step.
struct NeuronUpstream<'a, F> {
    d_a: &'a [F],
    abs_delta: Option<&'a [F]>,
    activity: Option<&'a [F]>,
}
