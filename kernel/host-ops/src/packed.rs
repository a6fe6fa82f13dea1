//! Products `W·X` whose left operand stays the same for many calls (a recurrent layer's
//! weights over the steps of a sequence) and whose right operand is narrow (one column
//! per sequence of a batch). The weights are packed once into panels of [`PANEL`] rows,
//! stored k-major, and each call streams them against `X`'s rows: with f32 on a CPU with
//! AVX-512 a hand-written loop does this (measured on one core: 160–165 GFLOP/s on the
//! LSTM's step product 256×32×320 and carry product 64×32×1024, where `gemm` reached
//! 127–153 and repacked the weights at every call); elsewhere, and for f64, the product
//! goes to `gemm`. Each output
//! element is one sum over `k` in order, so the numbers do not depend on how rows are
//! shared out over threads.

use super::matmul::{matmul_here, Scalar, View};
use std::any::TypeId;
use std::ops::Range;

/// Rows per panel: two 16-lane accumulators per row (32 columns) times eight rows keeps
/// sixteen sums in flight, enough to hide the FMA latency, with registers to spare.
pub const PANEL: usize = 8;

/// A left operand `[rows, k]` kept for repeated products.
pub struct PackedRows<F> {
    rows: usize,
    k: usize,
    /// Panels `[rows/PANEL][k][PANEL]` (the last one zero-padded) where the packed loop
    /// runs; otherwise the rows as given, row-major.
    data: Vec<F>,
    packed: bool,
}

impl<F: Scalar> PackedRows<F> {
    /// Packs `lhs` (`rows × k`).
    pub fn new(rows: usize, k: usize, lhs: View<F>) -> Self {
        let at = |r: usize, c: usize| lhs.data[r * lhs.row + c * lhs.col];
        if packed_loop_runs::<F>() {
            let panels = rows.div_ceil(PANEL);
            let mut data = vec![F::from(0); panels * k * PANEL];
            for (p, panel) in data.chunks_exact_mut(k * PANEL).enumerate() {
                for r in 0..PANEL.min(rows - p * PANEL) {
                    (0..k).for_each(|c| panel[c * PANEL + r] = at(p * PANEL + r, c));
                }
            }
            PackedRows { rows, k, data, packed: true }
        } else {
            let data = (0..rows).flat_map(|r| (0..k).map(move |c| at(r, c))).collect();
            PackedRows { rows, k, data, packed: false }
        }
    }

    /// `dst[r - rows.start][j] (+)= Σ_c self[r][c] · rhs[c][j]` for `r` in `rows` and `j` in
    /// `0..n`, on the calling thread. `rows.start` must be a multiple of [`PANEL`]; `dst`
    /// is row-major with row stride `dst_row`.
    pub fn product_here(&self, rows: Range<usize>, n: usize, dst: &mut [F], dst_row: usize, accumulate: bool, rhs: View<F>) {
        assert!(rows.end <= self.rows && rows.start.is_multiple_of(PANEL), "packed product: rows {rows:?} of {} (panels of {PANEL})", self.rows);
        let m = rows.len();
        if m == 0 || n == 0 {
            return;
        }
        assert!(dst.len() >= (m - 1) * dst_row + n, "packed product: destination too small");
        if !self.packed || rhs.col != 1 {
            let unpacked = if self.packed { self.unpack(rows.clone()) } else { Vec::new() };
            let lhs = if self.packed { View::rows(&unpacked, self.k) } else { View::rows(&self.data[rows.start * self.k..], self.k) };
            return matmul_here(m, n, self.k, dst, dst_row, accumulate, lhs, rhs);
        }
        assert!(self.k == 0 || rhs.data.len() >= (self.k - 1) * rhs.row + n, "packed product: rhs too small");
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `packed` is only set for f32 on a CPU with AVX-512F (`packed_loop_runs`),
            // so `F` is `f32` and the casts below reinterpret f32 slices as themselves; the
            // asserts above keep every access inside `dst`, `rhs` and the panels.
            unsafe {
                let cast = |s: &[F]| std::slice::from_raw_parts(s.as_ptr() as *const f32, s.len());
                let dst = std::slice::from_raw_parts_mut(dst.as_mut_ptr() as *mut f32, dst.len());
                avx512::product(cast(&self.data), self.k, rows, n, dst, dst_row, accumulate, cast(rhs.data), rhs.row)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("the packed loop runs only on x86-64")
    }

    /// Rows `rows` back out of the panels, row-major (the fallback for a strided `rhs`).
    fn unpack(&self, rows: Range<usize>) -> Vec<F> {
        rows.flat_map(|r| (0..self.k).map(move |c| self.data[(r / PANEL) * self.k * PANEL + c * PANEL + r % PANEL])).collect()
    }
}

/// Whether [`PackedRows`] runs its own loop (f32 with AVX-512F) rather than `gemm`.
fn packed_loop_runs<F: 'static>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        TypeId::of::<F>() == TypeId::of::<f32>() && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::PANEL;
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// Lanes of one vector.
    const LANES: usize = 16;

    /// Column blocks of 32 (two vectors), then one of at most 16 for what is left.
    ///
    /// # Safety
    /// AVX-512F must be present; `panels` holds the packed rows, `dst` and `rhs` are large
    /// enough for `rows × n` and `k × n` with the given row strides.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn product(panels: &[f32], k: usize, rows: Range<usize>, n: usize, dst: &mut [f32], dst_row: usize, accumulate: bool, rhs: &[f32], rhs_row: usize) {
        for first in rows.clone().step_by(PANEL) {
            let height = PANEL.min(rows.end - first);
            let panel = panels[(first / PANEL) * k * PANEL..].as_ptr();
            let out = dst[(first - rows.start) * dst_row..].as_mut_ptr();
            let mut j = 0;
            while j < n {
                let width = (n - j).min(2 * LANES);
                // SAFETY: rows `first..first + height` and columns `j..j + width` lie inside
                // `dst` and `rhs` (the caller's sizes); the panel holds `k × PANEL` values.
                unsafe {
                    if width > LANES {
                        block::<2>(panel, k, rhs.as_ptr().add(j), rhs_row, width, out.add(j), dst_row, height, accumulate)
                    } else {
                        block::<1>(panel, k, rhs.as_ptr().add(j), rhs_row, width, out.add(j), dst_row, height, accumulate)
                    }
                }
                j += width;
            }
        }
    }

    /// Lane mask of the `v`-th vector of a block `width` columns wide.
    #[inline(always)]
    fn mask(v: usize, width: usize) -> __mmask16 {
        let lanes = width.saturating_sub(v * LANES).min(LANES);
        ((1u32 << lanes) - 1) as __mmask16
    }

    /// One panel (`height` ≤ PANEL rows) against `V` vectors of columns: `PANEL × V`
    /// accumulators, each a sum over `k` in order.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const V: usize>(panel: *const f32, k: usize, rhs: *const f32, rhs_row: usize, width: usize, out: *mut f32, dst_row: usize, height: usize, accumulate: bool) {
        let masks: [__mmask16; V] = std::array::from_fn(|v| mask(v, width));
        let mut acc = [[_mm512_setzero_ps(); V]; PANEL];
        for c in 0..k {
            // SAFETY: row `c` of `rhs` has `width` values from here (masked beyond them);
            // the panel has PANEL values per `c`.
            unsafe {
                let x: [__m512; V] = std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], rhs.add(c * rhs_row + v * LANES)));
                let a = panel.add(c * PANEL);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let w = _mm512_set1_ps(*a.add(r));
                    for v in 0..V {
                        acc[v] = _mm512_fmadd_ps(w, x[v], acc[v]);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate().take(height) {
            for v in 0..V {
                // SAFETY: row `r` < height of the output has `width` columns from `out`.
                unsafe {
                    let to = out.add(r * dst_row + v * LANES);
                    let sum = if accumulate { _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], to), acc[v]) } else { acc[v] };
                    _mm512_mask_storeu_ps(to, masks[v], sum);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packed product against a plain triple loop in f64, for shapes that exercise
    /// a partial last panel, a 32-column block, a masked remainder block and accumulation.
    #[test]
    fn packed_product_matches_loops() {
        for &(rows, k, n) in &[(256usize, 320usize, 32usize), (13, 7, 45), (8, 1, 1), (20, 33, 16), (5, 4, 17)] {
            let lhs: Vec<f32> = (0..rows * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let rhs: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 89) as f32 - 44.0) / 44.0).collect();
            let packed = PackedRows::new(rows, k, View::rows(&lhs, k));
            let want = |r: usize, j: usize| (0..k).map(|c| lhs[r * k + c] as f64 * rhs[c * n + j] as f64).sum::<f64>();
            for accumulate in [false, true] {
                // a sub-range of rows starting on a panel boundary, into a wider destination
                let start = if rows > PANEL { PANEL } else { 0 };
                let stride = n + 3;
                let mut dst = vec![1.0f32; (rows - start) * stride];
                packed.product_here(start..rows, n, &mut dst, stride, accumulate, View::rows(&rhs, n));
                for r in start..rows {
                    for j in 0..n {
                        let expect = want(r, j) + if accumulate { 1.0 } else { 0.0 };
                        let got = dst[(r - start) * stride + j] as f64;
                        assert!((got - expect).abs() <= 1e-5 * (1.0 + expect.abs()), "{rows}×{k}×{n} ({r},{j}): {got} vs {expect}");
                    }
                    assert!(dst[(r - start) * stride + n..][..3].iter().all(|&v| v == 1.0), "columns past n are left alone");
                }
            }
        }
    }

    /// A transposed right operand takes the fallback and gives the same numbers.
    #[test]
    fn strided_rhs_falls_back_to_the_same_product() {
        let (rows, k, n) = (16, 9, 5);
        let lhs: Vec<f32> = (0..rows * k).map(|i| (i % 11) as f32 * 0.25 - 1.0).collect();
        let rhs: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.5 - 1.5).collect();
        let rhs_t: Vec<f32> = (0..n).flat_map(|j| (0..k).map(move |c| (c, j))).map(|(c, j)| rhs[c * n + j]).collect();
        let packed = PackedRows::new(rows, k, View::rows(&lhs, k));
        let (mut a, mut b) = (vec![0.0f32; rows * n], vec![0.0f32; rows * n]);
        packed.product_here(0..rows, n, &mut a, n, false, View::rows(&rhs, n));
        packed.product_here(0..rows, n, &mut b, n, false, View::transposed(&rhs_t, k));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()));
        }
    }
}
