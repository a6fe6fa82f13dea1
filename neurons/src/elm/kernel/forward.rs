//! The forward pass: every neuron's step, all neurons of a step in parallel.

// Index loops over fixed-size lane blocks are deliberate: they are what vectorises.
#![allow(clippy::needless_range_loop)]

use super::lanes::{affine_layer, blocks, blocks_mut, branch_sums, fma, pad, padded, scaled, sixteen_or_runtime, LANES};
use super::{activate, neurons_per_piece, ElmExtras, ElmKernel, ElmParams, ElmRun, Scratch, LECUN_SCALE, LECUN_SLOPE};
use crate::fused::slots::StepSlots;
use crate::fused::team::{self, Claims, Shared};
use crate::fused::{cpu, Real};

impl<F: Real> ElmKernel<F> {
    /// Neuron `n`'s step: fills `s` and writes `m`, `e`, `a` (each this neuron's rows,
    /// `[·, W]`). Works one block of [`LANES`] sequences at a time, in registers.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn neuron_step(&self, p: &ElmParams<F>, n: usize, width: usize, src: &[F], m_prev: &[F], e_prev: &[F], s: &mut Scratch<F>, m: &mut [F], e: &mut [F], a: &mut [F]) {
        #[cfg(target_arch = "x86_64")]
        if cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.neuron_step_avx2(p, n, width, src, m_prev, e_prev, s, m, e, a) };
        }
        self.neuron_step_plain(p, n, width, src, m_prev, e_prev, s, m, e, a)
    }

    /// The build for CPUs without AVX2, kept out of the dispatch above: inlined there, its
    /// stack frame (3 KB) was set up at every call, also on the AVX2 path (2 % of an
    /// SHD-Adding training step in the prologue's stores).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn neuron_step_plain(&self, p: &ElmParams<F>, n: usize, width: usize, src: &[F], m_prev: &[F], e_prev: &[F], s: &mut Scratch<F>, m: &mut [F], e: &mut [F], a: &mut [F]) {
        self.neuron_step_body::<false>(p, n, width, src, m_prev, e_prev, s, m, e, a)
    }

    /// The same code compiled for AVX2 and FMA: a block of eight `f32` is one register,
    /// and multiply-adds are fused. (CPUs without them run the plain build, with `mul_add`
    /// as a library call: slower, and rounding the same way.) CPUs with AVX-512 run this
    /// build too: compiled for AVX-512 (32 registers) it was slower on Zen 4, forward and
    /// backward, on both tasks' shapes.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn neuron_step_avx2(&self, p: &ElmParams<F>, n: usize, width: usize, src: &[F], m_prev: &[F], e_prev: &[F], s: &mut Scratch<F>, m: &mut [F], e: &mut [F], a: &mut [F]) {
        self.neuron_step_body::<true>(p, n, width, src, m_prev, e_prev, s, m, e, a)
    }

    /// `FMA`: compiled with fused multiply-adds, where `tanh` takes them too.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn neuron_step_body<const FMA: bool>(&self, p: &ElmParams<F>, n: usize, width: usize, src: &[F], m_prev: &[F], e_prev: &[F], s: &mut Scratch<F>, m: &mut [F], e: &mut [F], a: &mut [F]) {
        let nb = width / LANES;
        // what the unchecked gather relies on: every row the connectome names is in `src`
        assert_eq!(src.len(), (self.input + self.units) * width, "sources [I + N, W]");
        // two blocks of sequences at a time where there are two: each weight is loaded once
        // for both (a block's numbers are the same either way)
        if nb == 1 {
            return self.neuron_step_blocks::<1, true, FMA>(p, n, nb, 0, src, m_prev, e_prev, s, m, e, a);
        }
        let mut lb = 0;
        while lb + 2 <= nb {
            self.neuron_step_blocks::<2, false, FMA>(p, n, nb, lb, src, m_prev, e_prev, s, m, e, a);
            lb += 2;
        }
        if lb < nb {
            self.neuron_step_blocks::<1, false, FMA>(p, n, nb, lb, src, m_prev, e_prev, s, m, e, a);
        }
    }

    /// Neuron `n`'s step for the `G` blocks of sequences from block `lb`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn neuron_step_blocks<const G: usize, const ONE_BLOCK: bool, const FMA: bool>(&self, p: &ElmParams<F>, n: usize, nb: usize, lb: usize, src: &[F], m_prev: &[F], e_prev: &[F], s: &mut Scratch<F>, m: &mut [F], e: &mut [F], a: &mut [F]) {
        let (k_c, d_m, syn) = (self.k_c(), self.memory, self.synapses);
        let w_s = &p.w_s[n * k_c..(n + 1) * k_c];
        let idx = &self.connectome[n * k_c..(n + 1) * k_c];
        let m_prev = blocks(m_prev);
        let w_y = &p.w_y[n * d_m..(n + 1) * d_m];
        let (kappa_m, okl) = (&p.kappa_m[n * d_m..(n + 1) * d_m], &p.one_minus_kappa_lambda[n * d_m..(n + 1) * d_m]);
        let last = self.mlp.len() - 1;
        // 1. branch integration; 2. decay; together the MLP's input z = [β ; m̃]
        let z = blocks_mut(&mut s.layer_in[0]);
        sixteen_or_runtime!(syn, |S| self.gather_branches::<G, ONE_BLOCK, S>(w_s, idx, src, nb, lb, z));
        for d in 0..d_m {
            for g in 0..G {
                z[(self.branches + d) * nb + lb + g] = scaled(&m_prev[d * nb + lb + g], kappa_m[d]);
            }
        }
        // 3. the neuron's MLP
        for (l, &(o, i)) in self.mlp.iter().enumerate() {
            let (w, bias) = p.mlp[l];
            let (w, bias) = (&w[n * o * i..(n + 1) * o * i], &bias[n * o..(n + 1) * o]);
            let (ins, outs) = (blocks(&s.layer_in[l]), blocks_mut(&mut s.layer_out[l]));
            affine_layer::<F, G>(o, i, w, bias, ins, outs, nb, lb);
            if l < last {
                let (outs, next) = (blocks(&s.layer_out[l]), blocks_mut(&mut s.layer_in[l + 1]));
                for r in 0..o {
                    for g in 0..G {
                        let (x, y) = (&outs[r * nb + lb + g], &mut next[r * nb + lb + g]);
                        for ln in 0..LANES {
                            y[ln] = activate(self.activation, x[ln]);
                        }
                    }
                }
            }
        }
        // 4.–5. bounded update into memory; 6. readout
        let (delta, z, m_out, squashed) = (blocks(&s.layer_out[last]), blocks(&s.layer_in[0]), blocks_mut(m), blocks_mut(&mut s.squashed));
        for g in 0..G {
            let b = lb + g;
            let mut r = [F::zero(); LANES];
            for d in 0..d_m {
                let (dec, dl) = (&z[(self.branches + d) * nb + b], &delta[d * nb + b]);
                let (mut mem, mut th) = ([F::zero(); LANES], [F::zero(); LANES]);
                for l in 0..LANES {
                    // the exponential inside with fused multiply-adds where they are one
                    // instruction (SHD-Adding training step 115 → 107 ms); the plain build
                    // rounds it as before
                    let x = F::of(LECUN_SLOPE) * dl[l];
                    th[l] = if FMA { x.tanh_fused() } else { x.tanh() };
                    mem[l] = dec[l] + F::of(LECUN_SCALE) * th[l] * okl[d];
                }
                squashed[d * nb + b] = th;
                m_out[d * nb + b] = mem;
                fma(&mut r, w_y[d], &mem);
            }
            // 7. high-pass; 8. output (on local copies of the blocks, so that the lanes
            // vectorise: through the slices each lane was a scalar with its bounds checks)
            let (e_prev_b, bias) = (blocks(e_prev)[b], p.b[n]);
            let (mut e_b, mut pre_b) = ([F::zero(); LANES], [F::zero(); LANES]);
            match self.kappa_r {
                Some(k) => {
                    for l in 0..LANES {
                        e_b[l] = k * e_prev_b[l] + (F::one() - k) * r[l];
                        pre_b[l] = (r[l] - e_b[l]) + bias;
                    }
                }
                None => {
                    for l in 0..LANES {
                        e_b[l] = e_prev_b[l];
                        pre_b[l] = r[l] + bias;
                    }
                }
            }
            let mut a_b = pre_b;
            if self.relu_output {
                for l in 0..LANES {
                    a_b[l] = pre_b[l].relu();
                }
            }
            blocks_mut(e)[b] = e_b;
            blocks_mut(&mut s.pre)[b] = pre_b;
            blocks_mut(a)[b] = a_b;
        }
    }

    /// Step 1 for the `G` blocks from block `lb`: every branch's scaled sum into the rows
    /// `0..branches` of `z`, `S` synapses per branch (0: as many as the kernel has).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn gather_branches<const G: usize, const ONE_BLOCK: bool, const S: usize>(&self, w_s: &[F], idx: &[u32], src: &[F], nb: usize, lb: usize, z: &mut [[F; LANES]]) {
        let syn = self.synapses;
        let rows = blocks(src)[lb..].as_ptr();
        for br in 0..self.branches {
            let range = br * syn..(br + 1) * syn;
            // SAFETY: every connectome entry is below I + N (`new` counts each into a table
            // of I + N entries), and `src` is I + N rows of `nb` blocks (asserted by the
            // caller), so row·nb + lb + g stays inside it for g < G (lb + G ≤ nb).
            let sums = unsafe { branch_sums::<F, G, ONE_BLOCK, S>(&w_s[range.clone()], &idx[range], rows, nb) };
            for g in 0..G {
                z[br * nb + lb + g] = scaled(&sums[g], self.input_scale);
            }
        }
    }

    /// Runs the sequence `inputs` (each `[I, B]`) from `m0, e0, a0`. A team of threads
    /// claims pieces of a few neurons ([`neurons_per_piece`]) at each step, and one spinning barrier
    /// ends the step (a neuron's step depends on every output of the step before); where no
    /// synapse reads the layer's outputs, at each round of [`Self::steps_per_round`] steps.
    pub fn run(&self, p: &ElmParams<F>, inputs: &[&[F]], m0: Vec<F>, e0: Vec<F>, a0: Vec<F>, extras: ElmExtras<F>) -> ElmRun<F> {
        self.run_with(p, inputs.len(), |t, out| out.copy_from_slice(&inputs[t][..out.len()]), m0, e0, a0, extras)
    }

    /// [`Self::run`] over `steps` steps whose inputs `fill(t, out)` writes (`out` is
    /// `[I, B]`): straight into the kernel's table of sources where the batch is whole
    /// blocks, so that a caller holding its inputs elsewhere (a tensor) copies them once.
    pub fn run_with(&self, p: &ElmParams<F>, steps: usize, fill: impl Fn(usize, &mut [F]) + Sync, m0: Vec<F>, e0: Vec<F>, a0: Vec<F>, extras: ElmExtras<F>) -> ElmRun<F> {
        let (n, d_m, inp) = (self.units, self.memory, self.input);
        let unpadded = e0.len() / n;
        let w = padded(unpadded);
        let extras = ElmExtras {
            input_mask: extras.input_mask.map(|v| pad(&v, unpadded, w)),
            recurrent_mask: extras.recurrent_mask.map(|v| pad(&v, unpadded, w)),
            ..extras
        };
        let rows = inp + n;
        let recurrent = self.recurrent();
        // Where the neurons read each other (a round is one step), a piece of the team fills
        // the next step's inputs while the others run the current step: the fill (a
        // transpose of the batch, bound by memory bandwidth) overlaps the neurons' work. An
        // evaluation there keeps two steps' sources only, the step being run and the next,
        // which stay in cache. (A readout's round runs several steps: its inputs are filled
        // before, and all kept.)
        let fill_in_team = recurrent;
        let source_slots = StepSlots::new(!(extras.forward_only && recurrent));
        let source_slot = |t: usize| source_slots.of(t);
        // every step's sources: the masked inputs now, the masked outputs as they are formed.
        // These buffers and the states are reused ones (`Real::scratch`), not zeroed: every
        // value is written before it is read (zeroed anew, ~47 MB per SHD-Adding pass at
        // batch 8, the kernel's forward took 1.15–1.2× as long; at batch 32 twice as long)
        let mut sources = F::scratch(source_slots.count(steps) * rows * w);
        // step t's masked inputs into `block` (`[I, W]`); a partly filled last block of
        // sequences goes through `unpadded_step` (`[I, B]`) and is padded with zeros
        let fill_inputs = |t: usize, block: &mut [F], unpadded_step: &mut [F]| {
            if unpadded == w {
                fill(t, block);
            } else {
                fill(t, unpadded_step);
                for (o, r) in block.chunks_exact_mut(w).zip(unpadded_step.chunks_exact(unpadded)) {
                    o[..unpadded].copy_from_slice(r);
                    o[unpadded..].fill(F::zero());
                }
            }
            if let Some(mask) = &extras.input_mask {
                block.iter_mut().zip(mask).for_each(|(v, &m)| *v = *v * m);
            }
        };
        let unpadded_len = if unpadded == w { 0 } else { inp * unpadded };
        let mut unpadded_step = vec![F::zero(); unpadded_len];
        for (t, block) in sources.chunks_exact_mut(rows * w).enumerate().take(if fill_in_team { 1 } else { steps }) {
            fill_inputs(t, &mut block[..inp * w], &mut unpadded_step);
        }
        let (state_m, state_n) = (n * d_m * w, n * w);
        let state_slots = StepSlots::new(!extras.forward_only);
        let slot = |t: usize| state_slots.of(t);
        // step 0 written here, every later step by its neurons' steps, all lanes
        let mut m = F::scratch(state_slots.count(steps + 1) * state_m);
        let mut e = F::scratch(state_slots.count(steps + 1) * state_n);
        let mut a = F::scratch((steps + 1) * state_n);
        m[..state_m].copy_from_slice(&pad(&m0, unpadded, w));
        e[..state_n].copy_from_slice(&pad(&e0, unpadded, w));
        a[..state_n].copy_from_slice(&pad(&a0, unpadded, w));
        if steps > 0 && recurrent {
            recurrent_sources(&mut sources[inp * w..rows * w], &a[..state_n], extras.recurrent_mask.as_deref());
        }
        let mut abs_delta = vec![F::zero(); n * w];
        let mut activity = vec![F::zero(); n * w];
        let per_piece = neurons_per_piece(n);
        let pieces = n.div_ceil(per_piece);
        // a round is one step where the neurons read each other's outputs; without such
        // synapses a piece runs its neurons through several steps between two barriers
        // (whose outputs then never become sources: those rows are zeros)
        let round = self.steps_per_round(w).min(steps.max(1));
        let rounds = steps.div_ceil(round);
        if !recurrent {
            sources.chunks_exact_mut(rows * w).for_each(|block| block[inp * w..].fill(F::zero()));
        }
        let threads = team::size_for(pieces);
        let prefetching = self.streams_parameters();
        // one more piece per round where the team fills the inputs, the next step's: the
        // first one, so that its thread starts on it and the neurons' pieces even the team
        // out behind it (as the last piece, 5–6 µs of an SHD-Adding step's ~25, the thread
        // that took it kept the other waiting at the barrier)
        let filler = usize::from(fill_in_team);
        let claims = Claims::new(rounds, pieces + filler, threads);
        {
            let (ms, es, as_) = (Shared::new(&mut m), Shared::new(&mut e), Shared::new(&mut a));
            let (srcs, abs_s, act_s) = (Shared::new(&mut sources), Shared::new(&mut abs_delta), Shared::new(&mut activity));
            let extras = &extras;
            let fill_inputs = &fill_inputs;
            team::run(threads, |rank, barrier| {
                let mut s = self.scratch(w);
                let mut unpadded_step = vec![F::zero(); unpadded_len];
                for r in 0..rounds {
                    for piece in claims.take(r, rank) {
                        if piece < filler {
                            // (a round is one step here, r) the inputs of step r + 1
                            if r + 1 < steps {
                                // SAFETY: nothing reads or writes step r + 1's inputs before the
                                // barrier (with two slots, its slot was last read in round r − 1)
                                let block = unsafe { srcs.write(source_slot(r + 1) * rows * w..source_slot(r + 1) * rows * w + inp * w) };
                                fill_inputs(r + 1, block, &mut unpadded_step);
                            }
                            continue;
                        }
                        let piece = piece - filler;
                        // step by step, the piece's neurons at each (where a round is several
                        // steps, they share each step's table of sources while it is in cache)
                        for t in r * round..steps.min((r + 1) * round) {
                            for i in piece * per_piece..n.min((piece + 1) * per_piece) {
                                // SAFETY: step t's sources were written before the last barrier
                                // (the outputs' rows only where the round is one step) and are
                                // only read in this round; neuron i's rows of the states (read at
                                // step t, written at t + 1: two slots also where only two are
                                // kept) and its penalty sums are this piece's alone.
                                let (src, m_prev, e_prev, m_i, e_i, a_i, abs_i, act_i) = unsafe {
                                    (
                                        srcs.read(source_slot(t) * rows * w..(source_slot(t) + 1) * rows * w),
                                        ms.read(slot(t) * state_m + i * d_m * w..slot(t) * state_m + (i + 1) * d_m * w),
                                        es.read(slot(t) * state_n + i * w..slot(t) * state_n + (i + 1) * w),
                                        ms.write(slot(t + 1) * state_m + i * d_m * w..slot(t + 1) * state_m + (i + 1) * d_m * w),
                                        es.write(slot(t + 1) * state_n + i * w..slot(t + 1) * state_n + (i + 1) * w),
                                        as_.write((t + 1) * state_n + i * w..(t + 1) * state_n + (i + 1) * w),
                                        abs_s.write(i * w..(i + 1) * w),
                                        act_s.write(i * w..(i + 1) * w),
                                    )
                                };
                                if prefetching && t == r * round {
                                    self.prefetch_parameters(p, i + 1);
                                }
                                self.neuron_step(p, i, w, src, m_prev, e_prev, &mut s, m_i, e_i, a_i);
                                if extras.mlp_penalty {
                                    let delta = &s.layer_out[self.mlp.len() - 1];
                                    for d in 0..d_m {
                                        abs_i.iter_mut().zip(&delta[d * w..][..w]).for_each(|(acc, &v)| *acc += v.abs());
                                    }
                                }
                                if extras.activity_penalty {
                                    act_i.iter_mut().zip(a_i.iter()).for_each(|(acc, &v)| *acc += v.relu());
                                }
                                if recurrent && t + 1 < steps {
                                    // SAFETY: step t + 1's row of neuron i is this piece's alone;
                                    // nothing reads step t + 1's sources before the barrier (a
                                    // round is one step here)
                                    let at = source_slot(t + 1) * rows * w + (inp + i) * w;
                                    let row = unsafe { srcs.write(at..at + w) };
                                    let mask = extras.recurrent_mask.as_ref().map(|v| &v[i * w..(i + 1) * w]);
                                    recurrent_sources(row, a_i, mask);
                                }
                            }
                        }
                    }
                    barrier.wait();
                }
            });
        }
        ElmRun { batch: unpadded, steps, width: w, m, e, a, sources, extras, abs_delta, activity }
    }
}

/// The outputs as the next step's sources: `a`, times the recurrent dropout mask.
fn recurrent_sources<F: Real>(out: &mut [F], a: &[F], mask: Option<&[F]>) {
    match mask {
        Some(mask) => out.iter_mut().zip(a).zip(mask).for_each(|((o, &v), &m)| *o = v * m),
        None => out.copy_from_slice(a),
    }
}
