//! Fixed-size lane blocks: the batch is padded to whole blocks of [`LANES`] sequences so
//! that every inner loop runs over fixed-size arrays, which the compiler vectorises, and
//! the small dense products the per-neuron MLPs need, written on those blocks.

// Index loops over fixed-size lane blocks are deliberate: they are what vectorises.
#![allow(clippy::needless_range_loop)]

use crate::fused::Real;

/// The batch is padded to a multiple of this many sequences inside the kernel, so that
/// every row is whole blocks of fixed-size arrays, which the compiler vectorises. The
/// padded sequences start from zero and receive zero gradients; they never reach a result.
pub const LANES: usize = 8;

pub(super) fn padded(batch: usize) -> usize {
    batch.div_ceil(LANES) * LANES
}

/// `[rows, batch]` → `[rows, width]` with zeros in the extra columns.
pub(super) fn pad<F: Real>(v: &[F], batch: usize, width: usize) -> Vec<F> {
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
pub(super) fn unpad<F: Real>(v: &[F], width: usize, batch: usize) -> Vec<F> {
    if batch == width {
        return v.to_vec();
    }
    v.chunks_exact(width).flat_map(|r| r[..batch].iter().copied()).collect()
}

/// A row `[W]` (W a multiple of [`LANES`]) as blocks of sequences.
#[inline(always)]
pub(super) fn blocks<F>(v: &[F]) -> &[[F; LANES]] {
    v.as_chunks::<LANES>().0
}

#[inline(always)]
pub(super) fn blocks_mut<F>(v: &mut [F]) -> &mut [[F; LANES]] {
    v.as_chunks_mut::<LANES>().0
}

/// `acc += a·x`, fused (one rounding). Only inside functions compiled for AVX2 and FMA
/// where the CPU has them (elsewhere `mul_add` is a slow library call, rounding the same).
#[inline(always)]
pub(super) fn fma<F: Real>(acc: &mut [F; LANES], a: F, x: &[F; LANES]) {
    for l in 0..LANES {
        acc[l] = a.mul_add(x[l], acc[l]);
    }
}

/// Rows `r0..r0+R` of one MLP layer for one block of sequences: `out = W·in + bias`,
/// the `R` accumulators kept in registers over the whole input.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn affine_rows<F: Real, const R: usize>(r0: usize, inputs: usize, w: &[F], bias: &[F], ins: &[[F; LANES]], outs: &mut [[F; LANES]], nb: usize, lb: usize) {
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
pub(super) fn input_grads<F: Real, const C: usize>(c0: usize, inputs: usize, outputs: usize, w: &[F], d_out: &[[F; LANES]], d_in: &mut [[F; LANES]]) {
    let mut acc = [[F::zero(); LANES]; C];
    for r in 0..outputs {
        let dv = d_out[r];
        for cc in 0..C {
            fma(&mut acc[cc], w[r * inputs + c0 + cc], &dv);
        }
    }
    d_in[c0..c0 + C].copy_from_slice(&acc);
}

/// Sums the first `batch` of the `width` lanes of each entry (`[len, W]` → `[len]`), in lane order.
pub(super) fn sum_lanes<F: Real>(lanes: &[F], width: usize, batch: usize) -> impl Iterator<Item = F> + '_ {
    lanes.chunks_exact(width).map(move |l| l[..batch].iter().fold(F::zero(), |acc, &v| acc + v))
}
