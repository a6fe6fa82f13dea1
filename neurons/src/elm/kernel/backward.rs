//! Backpropagation through time: each step's intermediates recomputed from the kept
//! states, every neuron's backward step in parallel, the sources' gradients gathered per
//! source in a fixed order.

// Index loops over fixed-size lane blocks are deliberate: they are what vectorises.
#![allow(clippy::needless_range_loop)]

use super::lanes::{blocks, blocks_mut, outer_accumulate, transpose_rows, transposed_product, pad, padded, sum_lanes, unpad, LANES};
use super::synapses::gather_source;
use super::{activate_slope, ElmGrads, ElmKernel, ElmParams, ElmRun, ElmUpstream, NeuronGrads, NeuronUpstream, Scratch, LECUN_SCALE, LECUN_SLOPE};
use super::neurons_per_piece;
use super::prefetch::NeuronBuffers;
use crate::fused::team::{self, Claims, Shared};
use crate::fused::{cpu, prefetch, prefetch_slice, Real};

impl<F: Real> ElmKernel<F> {
    /// Backward through time. Without `input_grads` the inputs' gradients are not formed
    /// (`inputs` comes back empty): the first layer reads data, which needs none.
    ///
    /// A team of threads runs each step in two rounds, each ended by a spinning barrier:
    /// the neurons (recomputed step, then backward step), then the sources (each gathers
    /// what its synapses send) together with, every [`Self::w_s_chunk`] steps, the
    /// synapse-weight gradients of those steps, neuron by neuron.
    pub fn backward(&self, p: &ElmParams<F>, run: &ElmRun<F>, up: &ElmUpstream<F>, input_grads: bool) -> ElmGrads<F> {
        assert!(!run.extras.forward_only, "backward through a forward-only pass (ElmExtras::forward_only), which kept no history");
        let (n, d_m, k_c, w, inp, steps) = (self.units, self.memory, self.k_c(), run.width, self.input, run.steps);
        let unpadded = run.batch;
        let outputs: Vec<Vec<F>> = up.outputs.iter().map(|v| pad(v, unpadded, w)).collect();
        let abs_up = up.abs_delta.map(|v| pad(v, unpadded, w));
        let act_up = up.activity.map(|v| pad(v, unpadded, w));
        let mut grads: Vec<NeuronGrads<F>> = (0..n)
            .map(|_| NeuronGrads {
                w_s: vec![F::zero(); k_c],
                mlp: self.mlp.iter().map(|&(o, i)| (vec![F::zero(); o * padded(i)], vec![F::zero(); o * w])).collect(),
                w_y: vec![F::zero(); d_m * w],
                b: vec![F::zero(); w],
                kappa_m: vec![F::zero(); if run.extras.kappa_grads { d_m * w } else { 0 }],
                one_minus_kappa_lambda: vec![F::zero(); if run.extras.kappa_grads { d_m * w } else { 0 }],
            })
            .collect();
        let mut d_m_carry = pad(up.m_last, unpadded, w);
        let mut d_e_carry = pad(up.e_last, unpadded, w);
        // gradient reaching a_t from later steps (as a source), added to the output's own
        let mut d_a_from_later = vec![F::zero(); n * w];
        // the gradients of the branch sums β of the last `chunk` steps, one slot per step:
        // `[chunk, N, branches, W]`; the synapse-weight gradients contract them
        let chunk = self.w_s_chunk(w).min(steps.max(1));
        let slot_len = n * self.branches * w;
        let mut d_beta = vec![F::zero(); chunk * slot_len];
        // the synapses in the order the sources gather them: scaled weight and branch row
        let gather: Vec<(F, u32)> = self.inverse.iter().map(|&syn| (p.w_s[syn as usize] * self.input_scale, self.branch_of[syn as usize])).collect();
        // the gathered gradients of the inputs, `[T, I, W]` (only with `input_grads`)
        let mut d_x = vec![F::zero(); if input_grads { steps * inp * w } else { 0 }];
        // only the recurrent sources gather when the inputs need no gradient
        let first = if input_grads { 0 } else { inp };
        const SOURCES_PER_PIECE: usize = 16;
        // without synapses that read the layer's outputs, no gradient flows to them: only the
        // inputs gather (if they need gradients at all), and a round is a contraction's worth
        // of steps (`steps_per_round`), each neuron through them all, latest first
        let last = if self.recurrent() { inp + n } else { inp };
        let round = self.steps_per_round(w).min(chunk);
        let rounds = steps.div_ceil(round);
        let per_piece = neurons_per_piece(n);
        let (neuron_pieces, source_pieces) = (n.div_ceil(per_piece), (last - first).div_ceil(SOURCES_PER_PIECE));
        let threads = team::size_for(neuron_pieces.max(source_pieces));
        let (neuron_round, source_round) = (Claims::new(rounds, neuron_pieces, threads), Claims::new(rounds, source_pieces + neuron_pieces, threads));
        // where a layer streams its parameters, each neuron's gradient accumulators and
        // branch gradients are asked for too, ahead of its steps
        let prefetching = self.streams_parameters();
        let (mlp_grads, w_s_grads) = if prefetching {
            (NeuronBuffers::new(grads.iter().map(|g| g.mlp.iter().flat_map(|(w, b)| [&w[..], &b[..]]).collect())), NeuronBuffers::new(grads.iter().map(|g| vec![&g.w_s[..]])))
        } else {
            (NeuronBuffers::none(), NeuronBuffers::none())
        };
        let d_beta_at = d_beta.as_ptr() as usize;
        {
            let (mlp_grads, w_s_grads) = (&mlp_grads, &w_s_grads);
            let (g_s, d_m_s, d_e_s) = (Shared::new(&mut grads), Shared::new(&mut d_m_carry), Shared::new(&mut d_e_carry));
            let (later_s, d_beta_s, d_x_s) = (Shared::new(&mut d_a_from_later), Shared::new(&mut d_beta), Shared::new(&mut d_x));
            let (outputs, abs_up, act_up, gather) = (&outputs, &abs_up, &act_up, &gather);
            let nb = w / LANES;
            // step t's slot among the contraction's branch gradients
            let slot_of = |t: usize| (steps - 1 - t) % chunk;
            team::run(threads, |rank, barrier| {
                let (mut s, mut m_i, mut e_i, mut a_i, mut d_a) = (self.scratch(w), vec![F::zero(); d_m * w], vec![F::zero(); w], vec![F::zero(); w], vec![F::zero(); w]);
                // the steps a synapse-weight contraction reads (one list per thread, refilled)
                let mut pending: Vec<(&[F], &[F])> = Vec::with_capacity(chunk);
                for k in 0..rounds {
                    // this round's steps t0..t1 (the first round ends the sequence)
                    let t1 = steps - k * round;
                    let t0 = t1.saturating_sub(round);
                    for piece in neuron_round.take(k, rank) {
                        // step by step, the piece's neurons at each (where a round is several
                        // steps, they share each step's table of sources while it is in cache)
                        for t in (t0..t1).rev() {
                            for i in piece * per_piece..n.min((piece + 1) * per_piece) {
                                if prefetching && i + 1 < n {
                                    if t + 1 == t1 {
                                        self.prefetch_parameters(p, i + 1);
                                        mlp_grads.prefetch(i + 1);
                                    }
                                    prefetch_slice(&run.m_at(t)[(i + 1) * d_m * w..(i + 2) * d_m * w]);
                                }
                                let (slot, src, m_prev, e_prev) = (slot_of(t), run.sources_at(t), run.m_at(t), run.e_at(t));
                                // SAFETY: in this round neuron i's carried gradients, parameter
                                // gradients and branch gradients are this piece's alone; the
                                // gradients from later steps were written before the last barrier
                                // (where a round is one step; otherwise they are zeros) and are
                                // only read here.
                                let (later, g, d_m_i, d_e_i, d_beta_i) = unsafe {
                                    (
                                        later_s.read(i * w..(i + 1) * w),
                                        &mut g_s.write(i..i + 1)[0],
                                        d_m_s.write(i * d_m * w..(i + 1) * d_m * w),
                                        d_e_s.write(i * w..(i + 1) * w),
                                        d_beta_s.write(slot * slot_len + i * self.branches * w..slot * slot_len + (i + 1) * self.branches * w),
                                    )
                                };
                                d_a.iter_mut().zip(&outputs[t][i * w..(i + 1) * w]).zip(later).for_each(|((o, &x), &y)| *o = x + y);
                                let m_prev_i = &m_prev[i * d_m * w..(i + 1) * d_m * w];
                                self.neuron_step(p, i, w, src, m_prev_i, &e_prev[i * w..(i + 1) * w], &mut s, &mut m_i, &mut e_i, &mut a_i);
                                let up_i = NeuronUpstream {
                                    d_a: &d_a,
                                    abs_delta: abs_up.as_ref().map(|v| &v[i * w..(i + 1) * w]),
                                    activity: act_up.as_ref().map(|v| &v[i * w..(i + 1) * w]),
                                };
                                self.neuron_backward(p, i, w, &mut s, &m_i, m_prev_i, &a_i, &up_i, d_m_i, d_e_i, g, d_beta_i);
                            }
                        }
                    }
                    barrier.wait();
                    // the contraction runs once its slots are full, or at the sequence's start
                    let first_slot = slot_of(t0);
                    let flush = first_slot + 1 == chunk || t0 == 0;
                    for piece in source_round.take(k, rank) {
                        if piece < source_pieces {
                            // step by step, all the piece's sources at each: a step's branch
                            // gradients (18 KB at SHD-Adding's readout) stay in L1 for them,
                            // where source by source through a round's 53 steps every gather
                            // read another step's (966 KB in all, beyond L2)
                            for t in t0..t1 {
                                let slot = slot_of(t);
                                // SAFETY: this round's branch gradients are complete (barrier)
                                // and only read in this round
                                let d_beta_now = unsafe { d_beta_s.read(slot * slot_len..(slot + 1) * slot_len) };
                                for j in first + piece * SOURCES_PER_PIECE..last.min(first + (piece + 1) * SOURCES_PER_PIECE) {
                                    // each source's rows are this piece's alone
                                    let (out, mask) = if j < inp {
                                        // SAFETY: step t's row of input j is this piece's alone
                                        (unsafe { d_x_s.write((t * inp + j) * w..(t * inp + j + 1) * w) }, run.extras.input_mask.as_ref().map(|v| &v[j * w..(j + 1) * w]))
                                    } else {
                                        // SAFETY: read by the neurons only after the next barrier
                                        (unsafe { later_s.write((j - inp) * w..(j - inp + 1) * w) }, run.extras.recurrent_mask.as_ref().map(|v| &v[(j - inp) * w..(j - inp + 1) * w]))
                                    };
                                    gather_source(blocks_mut(out), &gather[self.inverse_start[j] as usize..self.inverse_start[j + 1] as usize], blocks(d_beta_now), nb);
                                    if let Some(mask) = mask {
                                        out.iter_mut().zip(mask).for_each(|(g, &m)| *g = *g * m);
                                    }
                                }
                            }
                        } else if flush {
                            // the slots 0..=first_slot hold steps t0 + first_slot down to t0
                            let i0 = (piece - source_pieces) * per_piece;
                            for i in i0..n.min(i0 + per_piece) {
                                // SAFETY: the branch gradients are only read in this round;
                                // neuron i's synapse-weight gradients are this piece's alone
                                let g = unsafe {
                                    pending.extend((0..=first_slot).map(|q| (run.sources_at(t0 + first_slot - q), d_beta_s.read(q * slot_len + i * self.branches * w..q * slot_len + (i + 1) * self.branches * w))));
                                    &mut g_s.write(i..i + 1)[0]
                                };
                                if prefetching && i + 1 < n {
                                    // the next neuron's sources, accumulators and branch gradients
                                    prefetch_slice(&self.connectome[(i + 1) * k_c..(i + 2) * k_c]);
                                    w_s_grads.prefetch(i + 1);
                                    let row = self.branches * w * std::mem::size_of::<F>();
                                    for q in 0..=first_slot {
                                        prefetch(d_beta_at + (q * slot_len * std::mem::size_of::<F>() + (i + 1) * row), row);
                                    }
                                }
                                self.synapse_grads(i, w, &pending, &mut g.w_s);
                                // no slice of the slots may outlive this round (the next one writes them)
                                pending.clear();
                            }
                        }
                    }
                    barrier.wait();
                }
            });
        }
        let d_inputs: Vec<Vec<F>> = if input_grads { d_x.chunks_exact(inp * w).map(|x| unpad(x, w, unpadded)).collect() } else { Vec::new() };
        let mut out = ElmGrads {
            w_s: Vec::with_capacity(n * k_c),
            mlp: self.mlp.iter().map(|&(o, i)| (Vec::with_capacity(n * o * i), Vec::with_capacity(n * o))).collect(),
            w_y: Vec::with_capacity(n * d_m),
            b: Vec::with_capacity(n),
            inputs: d_inputs,
            m0: unpad(&d_m_carry, w, unpadded),
            e0: unpad(&d_e_carry, w, unpadded),
            a0: unpad(&d_a_from_later, w, unpadded),
            kappa_m: Vec::new(),
            one_minus_kappa_lambda: Vec::new(),
        };
        for g in grads {
            out.w_s.extend(g.w_s.iter().map(|&v| v * self.input_scale));
            for ((o, (gw, b)), &(_, i)) in out.mlp.iter_mut().zip(g.mlp).zip(&self.mlp) {
                o.0.extend(gw.chunks_exact(padded(i)).flat_map(|row| &row[..i]));
                o.1.extend(sum_lanes(&b, w, unpadded));
            }
            out.w_y.extend(sum_lanes(&g.w_y, w, unpadded));
            out.b.extend(sum_lanes(&g.b, w, unpadded));
            out.kappa_m.extend(sum_lanes(&g.kappa_m, w, unpadded));
            out.one_minus_kappa_lambda.extend(sum_lanes(&g.one_minus_kappa_lambda, w, unpadded));
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
        if cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.neuron_backward_avx2(p, n, width, s, m, m_prev, a, up, d_m, d_e, g, d_beta_out) };
        }
        self.neuron_backward_body(p, n, width, s, m, m_prev, a, up, d_m, d_e, g, d_beta_out)
    }

    /// Compiled for AVX2 and FMA, like [`Self::neuron_step_avx2`] (AVX-512 CPUs included).
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
            // 8. output and activity penalty; 7. high-pass (on local copies of the blocks, so
            // that the lanes vectorise)
            let (d_a_in, a_out, pre) = (blocks(up.d_a)[lb], blocks(a)[lb], blocks(&s.pre)[lb]);
            let activity = up.activity.map(|act| blocks(act)[lb]);
            let (mut g_b, mut d_e_blk) = (blocks(&g.b)[lb], blocks(d_e)[lb]);
            let mut d_r = [F::zero(); LANES];
            for l in 0..LANES {
                let mut da = d_a_in[l];
                if let Some(act) = activity {
                    if a_out[l] > F::zero() {
                        da += act[l];
                    }
                }
                let d_pre = if self.relu_output && pre[l] <= F::zero() { F::zero() } else { da };
                g_b[l] += d_pre;
                d_r[l] = match self.kappa_r {
                    Some(k) => {
                        let d_e_total = d_e_blk[l] - d_pre;
                        d_e_blk[l] = d_e_total * k;
                        d_pre + d_e_total * (F::one() - k)
                    }
                    None => d_pre,
                };
            }
            blocks_mut(&mut g.b)[lb] = g_b;
            blocks_mut(d_e)[lb] = d_e_blk;
            // 6. readout; 5.–4. memory update: the gradient of the MLP output Δ
            let delta = blocks(&s.layer_out[last]);
            let d_mb = blocks_mut(d_m);
            // on local copies of the blocks, so that the lanes vectorise (in place, through
            // the slices, the loop ran scalar: a division per lane in tanh)
            let abs_block: Option<[F; LANES]> = up.abs_delta.map(|abs| *blocks(abs).get(lb).expect("a block per sequence block"));
            for d in 0..mem {
                let at = d * nb + lb;
                let (mv, dl, squashed) = (m[at], delta[at], blocks(&s.squashed)[at]);
                let gw_y = &mut g.w_y[d * width + lb * LANES..][..LANES];
                let mut gw: [F; LANES] = *blocks(gw_y).first().expect("one block");
                let mut dm = d_mb[at];
                let mut dd = [F::zero(); LANES];
                let mut d_okl = [F::zero(); LANES];
                for l in 0..LANES {
                    gw[l] += d_r[l] * mv[l];
                    dm[l] += d_r[l] * w_y[d];
                    let th = squashed[l];
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
                let gb = blocks_mut(gb);
                for r in 0..o {
                    // on a local copy (through the slice, the lanes were added one by one)
                    let (mut acc, dv) = (gb[r * nb + lb], s.d_out[r]);
                    for ln in 0..LANES {
                        acc[ln] += dv[ln];
                    }
                    gb[r * nb + lb] = acc;
                }
                // weight gradients: the inputs transposed (sequence-major, rows padded to whole
                // blocks), so that each sequence adds `d_out[r, b] · x[·, b]` to a whole weight
                // row of whole blocks, no horizontal sums (the padding columns hold zeros;
                // their sums are dropped at the end)
                let ip = padded(i);
                transpose_rows(ins, i, nb, lb, &mut s.inputs_t, ip);
                outer_accumulate(gw, &s.d_out[..o], &s.inputs_t[..LANES * ip], ip);
                // d_in = Wᵀ·d_out, eight inputs at a time (independent chains; one input per
                // chain was bound by the FMA latency); each sum still runs over r in order
                transposed_product(i, o, w, &s.d_out, &mut s.d_in);
                if l > 0 {
                    // through the previous layer's activation
                    let pre = blocks(&s.layer_out[l - 1]);
                    for c in 0..i {
                        let (dv, x) = (s.d_in[c], pre[c * nb + lb]);
                        let out = &mut s.d_out[c];
                        for ln in 0..LANES {
                            out[ln] = dv[ln] * activate_slope(self.activation, x[ln]);
                        }
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
