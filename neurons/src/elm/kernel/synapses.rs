//! The synapses' share of the backward pass: the weight gradients, contracted over a
//! batch of steps at once, and each source's gradient gathered from the synapses that
//! read it.

use super::lanes::{blocks, fma, LANES};
use super::ElmKernel;
use crate::fused::{cpu, Real};

impl<F: Real> ElmKernel<F> {
    /// Steps per batch of the synapse-weight gradients: their branch gradients and
    /// sources are kept (about 32 MB) and then contracted neuron by neuron.
    pub(super) fn w_s_chunk(&self, width: usize) -> usize {
        let per_step = (self.units * self.branches + self.input + self.units) * width * std::mem::size_of::<F>();
        ((32 << 20) / per_step.max(1)).max(1)
    }

    /// Adds to `w_s` (neuron `n`'s `[k_c]`, unscaled) `Σ_t Σ_b δβ_t[branch(k), b]·src_t[j(k), b]`
    /// over the steps in `pending` (each its sources `[I + N, W]` and branch gradients
    /// `[N, branches, W]`). Per-sequence sums stay in lanes over all the steps, so there is
    /// one horizontal sum per synapse per batch of steps instead of one per step.
    pub(super) fn synapse_grads(&self, n: usize, width: usize, pending: &[(Vec<F>, Vec<F>)], w_s: &mut [F]) {
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
