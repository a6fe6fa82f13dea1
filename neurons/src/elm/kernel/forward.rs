//! The forward pass: every neuron's step, all neurons of a step in parallel.

// Index loops over fixed-size lane blocks are deliberate: they are what vectorises.
#![allow(clippy::needless_range_loop)]

use super::lanes::{affine_rows, blocks, blocks_mut, fma, pad, padded, LANES};
use super::{activate, ElmExtras, ElmKernel, ElmParams, ElmRun, Scratch, LECUN_SCALE, LECUN_SLOPE, NEURONS_PER_TASK};
use crate::fused::{cpu, Real};
use rayon::prelude::*;

impl<F: Real> ElmKernel<F> {
    /// Neuron `n`'s step: fills `s` and writes `m`, `e`, `a` (each this neuron's rows,
    /// `[·, W]`). Works one block of [`LANES`] sequences at a time, in registers.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn neuron_step(&self, p: &ElmParams<F>, n: usize, width: usize, src: &[F], m_prev: &[F], e_prev: &[F], s: &mut Scratch<F>, m: &mut [F], e: &mut [F], a: &mut [F]) {
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
        let (kappa_m, okl) = (&p.kappa_m[n * d_m..(n + 1) * d_m], &p.one_minus_kappa_lambda[n * d_m..(n + 1) * d_m]);
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
                z[(self.branches + d) * nb + lb] = m_prev[d * nb + lb].map(|v| v * kappa_m[d]);
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
                    mem[l] = dec[l] + F::of(LECUN_SCALE) * (F::of(LECUN_SLOPE) * dl[l]).tanh() * okl[d];
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
