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

/// `0..len` in as few consecutive blocks of at most `most` as there can be, of nearly equal
/// size, as `(start, size)`.
#[inline(always)]
pub(super) fn balanced_blocks(len: usize, most: usize) -> impl Iterator<Item = (usize, usize)> {
    let size = len.div_ceil(len.div_ceil(most.max(1)).max(1)).max(1);
    (0..len).step_by(size).map(move |start| (start, size.min(len - start)))
}

/// `match $n` over the literal counts `$v`, each arm calling `$call` with the const
/// generic `$k` set to that count; any other count runs `$otherwise`.
macro_rules! const_count {
    ($n:expr, $k:ident, $call:expr, $otherwise:expr, $($v:literal)*) => {
        match $n {
            $($v => { const $k: usize = $v; $call })*
            _ => $otherwise,
        }
    };
}
pub(super) use const_count;

/// Calls `$call` with the const generic `$k` set to the runtime count `$n` (1 to 12).
macro_rules! twelve_at_most {
    ($n:expr, |$k:ident| $call:expr) => {
        super::lanes::const_count!($n, $k, $call, unreachable!("blocks of at most twelve"), 1 2 3 4 5 6 7 8 9 10 11 12)
    };
}
pub(super) use twelve_at_most;

/// Calls `$call` with the const generic `$k` set to the runtime count `$n` where it is 1 to
/// 16, and to 0 (meaning: read the count at run time) otherwise. A loop of a known short
/// count is unrolled whole: no remainder branches, every load issued ahead.
macro_rules! sixteen_or_runtime {
    ($n:expr, |$k:ident| $call:expr) => {
        super::lanes::const_count!($n, $k, $call, { const $k: usize = 0; $call }, 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
    };
}
pub(super) use sixteen_or_runtime;

/// One MLP layer for the `G` blocks of sequences from block `lb`: `out = W·in + bias`,
/// a block of rows at a time with their accumulators in registers over the whole input
/// (each weight loaded once for the `G` blocks). Every row's sum runs over the inputs in
/// order, whatever the blocks.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn affine_layer<F: Real, const G: usize>(outputs: usize, inputs: usize, w: &[F], bias: &[F], ins: &[[F; LANES]], outs: &mut [[F; LANES]], nb: usize, lb: usize) {
    assert!(w.len() == outputs * inputs && bias.len() == outputs && ins.len() >= inputs * nb && outs.len() >= outputs * nb && lb + G <= nb);
    // as few blocks of rows as twelve accumulators allow (with the inputs and a weight,
    // sixteen registers), of nearly equal size: each block is one pass over the inputs
    // with R·G independent chains, and a small last block (two rows of ten) was bound by
    // the FMA latency
    for (r0, r) in balanced_blocks(outputs, (12 / G).max(1)) {
        twelve_at_most!(r, |R| affine_rows::<F, R, G>(r0, inputs, w, bias, ins, outs, nb, lb));
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn affine_rows<F: Real, const R: usize, const G: usize>(r0: usize, inputs: usize, w: &[F], bias: &[F], ins: &[[F; LANES]], outs: &mut [[F; LANES]], nb: usize, lb: usize) {
    let w = &w[r0 * inputs..(r0 + R) * inputs];
    let mut acc = [[[F::zero(); LANES]; G]; R];
    for rr in 0..R {
        acc[rr] = [[bias[r0 + rr]; LANES]; G];
    }
    for c in 0..inputs {
        let mut x = [[F::zero(); LANES]; G];
        for g in 0..G {
            // SAFETY: `affine_layer` checked ins.len() ≥ inputs·nb and lb + G ≤ nb
            x[g] = unsafe { *ins.get_unchecked(c * nb + lb + g) };
        }
        for rr in 0..R {
            // SAFETY: rr·inputs + c < R·inputs = w.len()
            let wv = unsafe { *w.get_unchecked(rr * inputs + c) };
            for g in 0..G {
                fma(&mut acc[rr][g], wv, &x[g]);
            }
        }
    }
    for rr in 0..R {
        for g in 0..G {
            outs[(r0 + rr) * nb + lb + g] = acc[rr][g];
        }
    }
}

/// One branch's sum `Σ_q w_q·src[idx_q]` for the `G` blocks of sequences at `rows`
/// (a row is `stride` blocks apart from the next; `ONE_BLOCK`: `stride` is 1), on four chains (synapse q into q mod 4)
/// joined at the end: one chain was bound by the FMA latency. The same sum for any `G`
/// and `S` (the synapse count when known at compile time, 0 otherwise).
///
/// # Safety
/// `rows.add(idx_q·stride + g)` must be inside one allocation for every q and g < G.
#[inline(always)]
pub(super) unsafe fn branch_sums<F: Real, const G: usize, const ONE_BLOCK: bool, const S: usize>(w: &[F], idx: &[u32], rows: *const [F; LANES], stride: usize) -> [[F; LANES]; G] {
    // with one block per row (a batch of up to eight) the row index needs no multiply
    let stride = if ONE_BLOCK { 1 } else { stride };
    let len = if S > 0 {
        assert!(w.len() >= S && idx.len() >= S, "a branch of {S} synapses");
        S
    } else {
        w.len().min(idx.len())
    };
    // four named chains (not an array indexed in a loop: that ended up in memory)
    let (mut c0, mut c1, mut c2, mut c3) = ([[F::zero(); LANES]; G], [[F::zero(); LANES]; G], [[F::zero(); LANES]; G], [[F::zero(); LANES]; G]);
    macro_rules! synapse {
        ($acc:ident, $q:expr) => {{
            let q = $q;
            let (wq, row) = (*w.get_unchecked(q), rows.add(*idx.get_unchecked(q) as usize * stride));
            for g in 0..G {
                fma(&mut $acc[g], wq, &*row.add(g));
            }
        }};
    }
    let mut q = 0;
    while q + 4 <= len {
        synapse!(c0, q);
        synapse!(c1, q + 1);
        synapse!(c2, q + 2);
        synapse!(c3, q + 3);
        q += 4;
    }
    let rest = len - q;
    if rest > 0 {
        synapse!(c0, q);
    }
    if rest > 1 {
        synapse!(c1, q + 1);
    }
    if rest > 2 {
        synapse!(c2, q + 2);
    }
    let mut out = [[F::zero(); LANES]; G];
    for g in 0..G {
        out[g] = join(&c0[g], &c1[g], &c2[g], &c3[g]);
    }
    out
}

/// Rows `c < rows` of one block of sequences (`ins[c·nb + lb]`) written transposed into
/// `xt` `[LANES, ip]` (`ip` ≥ `rows`, a multiple of [`LANES`]), eight rows at a time through
/// a register tile; the padding columns get zeros. Written per element, a build for
/// AVX-512 turned it into gathers and scatters (slow on Zen 4), and the AVX2 build moved
/// the 64 values one by one through memory (6 % of the SHD-Adding kernel);
/// [`Real::transpose_8x8`] does it in registers.
#[inline(always)]
pub(super) fn transpose_rows<F: Real>(ins: &[[F; LANES]], rows: usize, nb: usize, lb: usize, xt: &mut [F], ip: usize) {
    assert!(ip % LANES == 0 && rows <= ip && xt.len() >= LANES * ip && (rows == 0 || (rows - 1) * nb + lb < ins.len()));
    for c0 in (0..rows).step_by(LANES) {
        let mut tile = [[F::zero(); LANES]; LANES];
        for (cc, t) in tile.iter_mut().enumerate().take(rows - c0) {
            *t = ins[(c0 + cc) * nb + lb];
        }
        const { assert!(LANES == 8, "a tile is 8×8") };
        let columns = F::transpose_8x8(&tile);
        let out = blocks_mut(xt);
        for (ln, column) in columns.iter().enumerate() {
            // SAFETY: c0 < rows ≤ ip, both multiples of LANES where it matters (c0 by the
            // step, ip asserted), so the block (ln·ip + c0)/LANES < LANES·ip/LANES ≤ out.len()
            unsafe { *out.get_unchecked_mut((ln * ip + c0) / LANES) = *column };
        }
    }
}

/// `gw[r, ·] += Σ_l d_out[r][l] · xt[l, ·]` for every row `r`: one block of sequences'
/// share of a weight gradient (`gw` `[rows, ip]`, `xt` `[LANES, ip]`, `ip` a multiple of
/// [`LANES`]). Four blocks of a row stay in registers over the lanes; each entry sums the
/// lanes in order.
#[inline(always)]
pub(super) fn outer_accumulate<F: Real>(gw: &mut [F], d_out: &[[F; LANES]], xt: &[F], ip: usize) {
    assert!(ip % LANES == 0 && gw.len() == d_out.len() * ip && xt.len() == LANES * ip);
    let xt = blocks(xt);
    let vb = ip / LANES;
    for (row, d) in blocks_mut(gw).chunks_exact_mut(vb).zip(d_out) {
        let mut v0 = 0;
        while v0 + 4 <= vb {
            outer_blocks::<F, 4>(row, d, xt, vb, v0);
            v0 += 4;
        }
        match vb - v0 {
            1 => outer_blocks::<F, 1>(row, d, xt, vb, v0),
            2 => outer_blocks::<F, 2>(row, d, xt, vb, v0),
            3 => outer_blocks::<F, 3>(row, d, xt, vb, v0),
            _ => {}
        }
    }
}

/// Blocks `v0..v0+V` of one row of [`outer_accumulate`], in registers over the lanes.
#[inline(always)]
fn outer_blocks<F: Real, const V: usize>(row: &mut [[F; LANES]], d: &[F; LANES], xt: &[[F; LANES]], vb: usize, v0: usize) {
    assert!(v0 + V <= vb && row.len() == vb && xt.len() == LANES * vb);
    let mut acc = [[F::zero(); LANES]; V];
    for v in 0..V {
        acc[v] = row[v0 + v];
    }
    for l in 0..LANES {
        for v in 0..V {
            // SAFETY: l·vb + v0 + v < LANES·vb = xt.len() (asserted above)
            fma(&mut acc[v], d[l], unsafe { xt.get_unchecked(l * vb + v0 + v) });
        }
    }
    for v in 0..V {
        row[v0 + v] = acc[v];
    }
}

/// `(a + b) + (c + d)` per lane: four chains joined.
#[inline(always)]
pub(super) fn join<F: Real>(a: &[F; LANES], b: &[F; LANES], c: &[F; LANES], d: &[F; LANES]) -> [F; LANES] {
    let mut out = [F::zero(); LANES];
    for l in 0..LANES {
        out[l] = (a[l] + b[l]) + (c[l] + d[l]);
    }
    out
}

/// `x·k` per lane.
#[inline(always)]
pub(super) fn scaled<F: Real>(x: &[F; LANES], k: F) -> [F; LANES] {
    let mut out = [F::zero(); LANES];
    for l in 0..LANES {
        out[l] = x[l] * k;
    }
    out
}

/// `d_in = Wᵀ·d_out` for one block of sequences (`W` `[outputs, inputs]`), each sum over
/// `r` in order: the inputs in as few blocks of at most twelve as there can be, of nearly
/// equal size (independent chains; a small last block was bound by the FMA latency).
#[inline(always)]
pub(super) fn transposed_product<F: Real>(inputs: usize, outputs: usize, w: &[F], d_out: &[[F; LANES]], d_in: &mut [[F; LANES]]) {
    for (c0, c) in balanced_blocks(inputs, 12) {
        twelve_at_most!(c, |C| input_grads::<F, C>(c0, inputs, outputs, w, d_out, d_in));
    }
}

/// `d_in[c0..c0+C] = Σ_r w[r, c]·d_out[r]` for one block of sequences, `r` in order.
#[inline(always)]
fn input_grads<F: Real, const C: usize>(c0: usize, inputs: usize, outputs: usize, w: &[F], d_out: &[[F; LANES]], d_in: &mut [[F; LANES]]) {
    assert!(c0 + C <= inputs && w.len() == outputs * inputs && d_out.len() >= outputs);
    let mut acc = [[F::zero(); LANES]; C];
    for r in 0..outputs {
        let dv = d_out[r];
        for cc in 0..C {
            // SAFETY: r·inputs + c0 + cc < outputs·inputs = w.len() (asserted above). Read
            // one by one on purpose: as plain loads, a build for AVX-512 vectorised the
            // weights across `cc` and kept `acc` in memory through gathers and scatters (a
            // 2.5× slower backward on Zen 4); a volatile read is one scalar load, never
            // merged, whatever the target (`-C target-cpu=native` included), and cost
            // nothing measurable in the AVX2 build.
            let wv = unsafe { std::ptr::read_volatile(w.as_ptr().add(r * inputs + c0 + cc)) };
            fma(&mut acc[cc], wv, &dv);
        }
    }
    d_in[c0..c0 + C].copy_from_slice(&acc);
}

/// Sums the first `batch` of the `width` lanes of each entry (`[len, W]` → `[len]`), in lane order.
pub(super) fn sum_lanes<F: Real>(lanes: &[F], width: usize, batch: usize) -> impl Iterator<Item = F> + '_ {
    lanes.chunks_exact(width).map(move |l| l[..batch].iter().fold(F::zero(), |acc, &v| acc + v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_rows_are_zero_padded() {
        // 11 rows of 2 blocks, block 1 transposed into [8, 16]
        let (rows, nb, lb, ip) = (11, 2, 1, 16);
        let ins: Vec<[f32; LANES]> = (0..rows * nb).map(|b| std::array::from_fn(|l| (b * LANES + l) as f32 + 1.0)).collect();
        let mut xt = vec![f32::NAN; LANES * ip];
        transpose_rows(&ins, rows, nb, lb, &mut xt, ip);
        for l in 0..LANES {
            for c in 0..ip {
                let want = if c < rows { ins[c * nb + lb][l] } else { 0.0 };
                assert_eq!(xt[l * ip + c], want, "lane {l}, column {c}");
            }
        }
    }
}
