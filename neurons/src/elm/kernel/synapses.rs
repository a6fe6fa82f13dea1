//! The synapses' share of the backward pass: the weight gradients, contracted over a
//! batch of steps at once, and each source's gradient gathered from the synapses that
//! read it.

use super::lanes::{balanced_blocks, blocks, fma, join, twelve_at_most, LANES};
use super::ElmKernel;
use crate::fused::{cpu, Real};

impl<F: Real> ElmKernel<F> {
    /// Steps per batch of the synapse-weight gradients: their branch gradients and
    /// sources are kept and then contracted neuron by neuron. Every neuron reads all the
    /// batch's sources, so they must stay in cache across the neurons: about 192 KiB of
    /// sources (with 32 MB, each neuron streamed them from memory again: a fifth of the
    /// SHD-Adding backward). The count depends on the shape only, never on the threads.
    pub(super) fn w_s_chunk(&self, width: usize) -> usize {
        let per_step = (self.input + self.units) * width * std::mem::size_of::<F>();
        (self.contraction_bytes / per_step.max(1)).clamp(1, 64)
    }

    /// Steps the team takes between two barriers: one where the neurons read each other's
    /// previous outputs; otherwise a synapse-weight contraction's worth (the SHD-Adding
    /// readout, 19 neurons, met at two barriers in each of its 1,000 backward steps).
    pub(super) fn steps_per_round(&self, width: usize) -> usize {
        if self.recurrent() { 1 } else { self.w_s_chunk(width) }
    }

    /// Adds to `w_s` (neuron `n`'s `[k_c]`, unscaled) `Σ_t Σ_b δβ_t[branch(k), b]·src_t[j(k), b]`
    /// over the steps in `pending` (each its sources `[I + N, W]` and this neuron's branch
    /// gradients `[branches, W]`). Per-sequence sums stay in lanes over all the steps and
    /// blocks of sequences, so there is one horizontal sum per synapse per batch of steps.
    pub(super) fn synapse_grads(&self, n: usize, width: usize, pending: &[(&[F], &[F])], w_s: &mut [F]) {
        #[cfg(target_arch = "x86_64")]
        if cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { self.synapse_grads_avx2(n, width, pending, w_s) };
        }
        self.synapse_grads_body(n, width, pending, w_s)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn synapse_grads_avx2(&self, n: usize, width: usize, pending: &[(&[F], &[F])], w_s: &mut [F]) {
        self.synapse_grads_body(n, width, pending, w_s)
    }

    #[inline(always)]
    fn synapse_grads_body(&self, n: usize, width: usize, pending: &[(&[F], &[F])], w_s: &mut [F]) {
        let (k_c, nb, syn, sources) = (self.k_c(), width / LANES, self.synapses, self.input + self.units);
        let idx = &self.connectome[n * k_c..(n + 1) * k_c];
        for &(src, d_beta) in pending {
            assert!(src.len() == sources * width && d_beta.len() == self.branches * width, "a step's sources and branch gradients");
        }
        // each synapse summed over the steps and the blocks of sequences in registers,
        // then over the lanes: no accumulator goes through memory, and one lane sum per
        // synapse per batch of steps (at batch 32 a batch is one step, and with a lane sum
        // per block and step, six instructions against the synapse's one multiply-add, the
        // SHD-Adding backward took 1.3× as long). A branch's synapses in as few groups of at
        // most twelve as there can be, all of a group's chains in one pass (in groups of
        // four, a branch of ten left its last two synapses a pass each on a single chain,
        // bound by the FMA latency).
        for br in 0..self.branches {
            for (k0, r) in balanced_blocks(syn, 12) {
                let k0 = br * syn + k0;
                twelve_at_most!(r, |R| synapse_group::<F, R>(&idx[k0..k0 + R], br, nb, pending, &mut w_s[k0..k0 + R]));
            }
        }
    }
}

/// Adds to `w_s[q]` the sum over the steps of `pending`, the `nb` blocks of sequences and
/// their lanes of `δβ[br]·src[idx[q]]`, for the `R` synapses `q` of one branch.
#[inline(always)]
fn synapse_group<F: Real, const R: usize>(idx: &[u32], br: usize, nb: usize, pending: &[(&[F], &[F])], w_s: &mut [F]) {
    const { assert!(LANES == 8, "the lane sum below is written for eight lanes") };
    let lane_sum = |a: &[F; LANES]| ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
    assert!(idx.len() == R && w_s.len() == R);
    let mut rows = [0usize; R];
    for q in 0..R {
        rows[q] = idx[q] as usize * nb;
    }
    let mut acc = [[F::zero(); LANES]; R];
    for &(src, d_beta) in pending {
        let (src, db) = (blocks(src), &blocks(d_beta)[br * nb..(br + 1) * nb]);
        for (lb, db) in db.iter().enumerate() {
            for q in 0..R {
                // SAFETY: connectome entries are below I + N (`new`), and `src` is I + N rows
                // of nb blocks (asserted by the caller)
                mul_add_lanes(&mut acc[q], db, unsafe { src.get_unchecked(rows[q] + lb) });
            }
        }
    }
    for q in 0..R {
        w_s[q] += lane_sum(&acc[q]);
    }
}

/// `acc += a·x` per lane, fused.
#[inline(always)]
fn mul_add_lanes<F: Real>(acc: &mut [F; LANES], a: &[F; LANES], x: &[F; LANES]) {
    for l in 0..LANES {
        acc[l] = a[l].mul_add(x[l], acc[l]);
    }
}

/// One source's gradient `acc` (`[W]` as blocks): the sum, in the order of `synapses`, of
/// what each synapse reading it sends (its scaled weight times its branch's gradient).
/// Compiled for AVX2 and FMA where the CPU has them, like the per-neuron functions.
pub(super) fn gather_source<F: Real>(acc: &mut [[F; LANES]], synapses: &[(F, u32)], d_beta: &[[F; LANES]], nb: usize) {
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
            *out = join(&chains[0], &chains[1], &chains[2], &chains[3]);
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
