//! Backpropagation through time: each step's intermediates recomputed from the kept
//! states, every neuron's backward step in parallel, the sources' gradients gathered per
//! source in a fixed order.

// Index loops over fixed-size lane blocks are deliberate: they are what vectorises.
#![allow(clippy::needless_range_loop)]

use super::lanes::{blocks, blocks_mut, input_grads, pad, sum_lanes, unpad, LANES};
use super::synapses::gather_source;
use super::{activate_slope, ElmGrads, ElmKernel, ElmParams, ElmRun, ElmUpstream, NeuronGrads, NeuronUpstream, Scratch, LECUN_SCALE, LECUN_SLOPE, NEURONS_PER_TASK};
use crate::fused::{cpu, Real};
use rayon::prelude::*;

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
                kappa_m: vec![F::zero(); if run.extras.kappa_grads { d_m * batch } else { 0 }],
                one_minus_kappa_lambda: vec![F::zero(); if run.extras.kappa_grads { d_m * batch } else { 0 }],
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
                        self.neuron_backward(p, i, batch, s, m_i, m_prev_i, a_i, &up_i, d_m_i, d_e_i, g, d_beta_i);
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
            kappa_m: Vec::new(),
            one_minus_kappa_lambda: Vec::new(),
        };
        for g in grads {
            out.w_s.extend(g.w_s.iter().map(|&v| v * self.input_scale));
            for (o, (w, b)) in out.mlp.iter_mut().zip(g.mlp) {
                o.0.extend(w);
                o.1.extend(sum_lanes(&b, batch, unpadded));
            }
            out.w_y.extend(sum_lanes(&g.w_y, batch, unpadded));
            out.b.extend(sum_lanes(&g.b, batch, unpadded));
            out.kappa_m.extend(sum_lanes(&g.kappa_m, batch, unpadded));
            out.one_minus_kappa_lambda.extend(sum_lanes(&g.one_minus_kappa_lambda, batch, unpadded));
        }
        out
    }

    /// Neuron `n`'s backward step, after `neuron_step` filled `s`, `m`, `a` for this
    /// step. Reads and replaces the carried `d_m`, `d_e`; adds to `g`; writes the
    /// gradient of each branch sum into `d_beta` (`[branches, W]`). One block of
    /// [`LANES`] sequences at a time, like the forward step.
    #[allow(clippy::too_many_arguments)]
    fn neuron_backward(&self, p: &ElmParams<F>, n: usize, width: usize, s: &mut Scratch<F>, m: &[F], m_prev: &[F], a: &[F], up: &NeuronUpstream<F>, d_m: &mut [F], d_e: &mut [F], g: &mut NeuronGrads<F>, d_beta_out: &mut [F]) {
        #[cfg(target_arch = "x86_64")]
        if cpu::avx512_fma() {
            // SAFETY: the CPU has AVX-512F/VL and FMA, checked just above.
            return unsafe { self.neuron_backward_avx512(p, n, width, s, m, m_prev, a, up, d_m, d_e, g, d_beta_out) };
        }
        #[cfg(target_arch = "x86_64")]
        if cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.neuron_backward_avx2(p, n, width, s, m, m_prev, a, up, d_m, d_e, g, d_beta_out) };
        }
        self.neuron_backward_body(p, n, width, s, m, m_prev, a, up, d_m, d_e, g, d_beta_out)
    }

    /// With 32 vector registers where AVX-512 is there, like [`Self::neuron_step_avx512`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn neuron_backward_avx512(&self, p: &ElmParams<F>, n: usize, width: usize, s: &mut Scratch<F>, m: &[F], m_prev: &[F], a: &[F], up: &NeuronUpstream<F>, d_m: &mut [F], d_e: &mut [F], g: &mut NeuronGrads<F>, d_beta_out: &mut [F]) {
        self.neuron_backward_body(p, n, width, s, m, m_prev, a, up, d_m, d_e, g, d_beta_out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn neuron_backward_avx2(&self, p: &ElmParams<F>, n: usize, width: usize, s: &mut Scratch<F>, m: &[F], m_prev: &[F], a: &[F], up: &NeuronUpstream<F>, d_m: &mut [F], d_e: &mut [F], g: &mut NeuronGrads<F>, d_beta_out: &mut [F]) {
        self.neuron_backward_body(p, n, width, s, m, m_prev, a, up, d_m, d_e, g, d_beta_out)
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn neuron_backward_body(&self, p: &ElmParams<F>, n: usize, width: usize, s: &mut Scratch<F>, m: &[F], m_prev: &[F], a: &[F], up: &NeuronUpstream<F>, d_m: &mut [F], d_e: &mut [F], g: &mut NeuronGrads<F>, d_beta_out: &mut [F]) {
        let (mem, nb) = (self.memory, width / LANES);
        let w_y = &p.w_y[n * mem..(n + 1) * mem];
        let (kappa_m, okl) = (&p.kappa_m[n * mem..(n + 1) * mem], &p.one_minus_kappa_lambda[n * mem..(n + 1) * mem]);
        let kappa_grads = !g.kappa_m.is_empty();
        let (m, m_prev) = (blocks(m), blocks(m_prev));
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
                let mut d_okl = [F::zero(); LANES];
                for l in 0..LANES {
                    gw[l] += d_r[l] * mv[l];
                    dm[l] += d_r[l] * w_y[d];
                    let th = (F::of(LECUN_SLOPE) * dl[l]).tanh();
                    dd[l] = dm[l] * okl[d] * F::of(LECUN_SCALE * LECUN_SLOPE) * (F::one() - th * th);
                    d_okl[l] = dm[l] * F::of(LECUN_SCALE) * th;
                }
                if kappa_grads {
                    // m_t = m̃ + (1 − κ_λ)·Δm: the share's gradient is the memory's times Δm
                    let acc = &mut g.one_minus_kappa_lambda[d * width + lb * LANES..][..LANES];
                    acc.iter_mut().zip(&d_okl).for_each(|(a, v)| *a += *v);
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
                if kappa_grads {
                    // m̃ = κ_m·m_{t−1}: the decay's gradient is m̃'s times m_{t−1}
                    let acc = &mut g.kappa_m[d * width + lb * LANES..][..LANES];
                    let mp = m_prev[d * nb + lb];
                    for l in 0..LANES {
                        acc[l] += (dm[l] + dz[l]) * mp[l];
                    }
                }
                for l in 0..LANES {
                    dm[l] = (dm[l] + dz[l]) * kappa_m[d];
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
