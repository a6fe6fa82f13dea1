//! Softmax cross-entropy with label smoothing as one host operation: loss, statistics
//! and gradient in one pass over the logits.

use crate::{cpu, exp};
use crate::tape::{add_grad, grad_of, take_input, AVAILABLE};
use elmlab_core::dfdx::prelude::*;
use elmlab_core::tensor::{device, values, Traced, TracedScalar};

/// What [`softmax_cross_entropy`] measured besides the loss: the unsmoothed
/// cross-entropy summed over the columns (nats), and how many argmaxes hit the target.
pub struct Hits {
    pub nats: f64,
    pub correct: u64,
}

/// `−(1/count)·Σ_s Σ_c q_{c,s} log softmax(z_{·,s})_c` of logits `z` (`[classes, columns]`),
/// with the label-smoothed targets `q = α/C + (1−α)·[c = y_s]`, in one pass: the loss in
/// f64, its gradient `(softmax − q)/count` formed in backward from the kept exponentials.
/// Replaces a log-softmax, a product, a sum and a scale (each a tensor and a backward op).
pub fn softmax_cross_entropy(logits: Traced, targets: &[usize], smoothing: f64, count: f64) -> (TracedScalar, Hits) {
    assert!(AVAILABLE, "softmax_cross_entropy is a host operation");
    let (classes, columns) = *logits.shape();
    assert_eq!(targets.len(), columns, "one target per column");
    let (value, mut tape) = take_input(logits);
    let z = values(&value);
    let ColumnStats { max, best, sum_z, exps, sum_e } = column_stats(&z, classes, columns);
    let off = smoothing / classes as f64;
    let (mut loss, mut hits) = (0.0f64, Hits { nats: 0.0, correct: 0 });
    for (s, &y) in targets.iter().enumerate() {
        let lse = max[s] as f64 + sum_e[s].ln();
        let z_y = z[y * columns + s] as f64;
        hits.nats += lse - z_y;
        hits.correct += (best[s] as usize == y) as u64;
        // Σ_c q_c (lse − z_c), with Σ_c q_c = 1
        loss += lse - off * sum_z[s] - (1.0 - smoothing) * z_y;
    }
    let result = device().tensor((loss / count) as f32);
    let (key, targets) = (result.clone(), targets.to_vec());
    // the gradient is formed only if backward runs (evaluation never asks for it)
    tape.add_backward_op(move |grads| {
        let upstream = grad_of(grads, &key)?[0];
        // (softmax − q)/count: every entry with q = α/C first (elementwise, vectorises),
        // then the target entries, where q has 1 − α more
        let inverse: Vec<f64> = sum_e.iter().map(|s| 1.0 / s).collect();
        let scale = upstream as f64 / count;
        let mut grad = vec![0.0f32; classes * columns];
        for (row, exps) in grad.chunks_exact_mut(columns.max(1)).zip(exps.chunks_exact(columns.max(1))) {
            for ((g, &e), &inv) in row.iter_mut().zip(exps).zip(&inverse) {
                *g = ((e as f64 * inv - off) * scale) as f32;
            }
        }
        for (s, &y) in targets.iter().enumerate() {
            let at = y * columns + s;
            grad[at] = ((exps[at] as f64 * inverse[s] - off - (1.0 - smoothing)) * scale) as f32;
        }
        add_grad(grads, &value, &grad)
    });
    (result.put_tape(tape), hits)
}

/// Per column of `z` (`[classes, columns]`): the largest logit and its first class, the sum
/// of the logits, the exponentials `e^{z − max}` (`[classes, columns]`) and their sum.
struct ColumnStats {
    max: Vec<f32>,
    best: Vec<u32>,
    sum_z: Vec<f64>,
    exps: Vec<f32>,
    sum_e: Vec<f64>,
}

/// [`ColumnStats`], compiled for AVX-512 or AVX2 where the CPU has them: the same
/// arithmetic (nothing is fused), in wider vectors. Built for the baseline x86-64 alone the
/// exponentials went four at a time, 3.5 ns a value (0.6–0.7 ms of an LSTM inference batch).
fn column_stats(z: &[f32], classes: usize, columns: usize) -> ColumnStats {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
        unsafe fn avx512(z: &[f32], classes: usize, columns: usize) -> ColumnStats {
            column_stats_body(z, classes, columns)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(z: &[f32], classes: usize, columns: usize) -> ColumnStats {
            column_stats_body(z, classes, columns)
        }
        if cpu::avx512_fma() && cpu::avx2_fma() {
            // SAFETY: the CPU has AVX-512F/VL, AVX2 and FMA, checked just above
            return unsafe { avx512(z, classes, columns) };
        }
        if cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA, checked just above
            return unsafe { avx2(z, classes, columns) };
        }
    }
    column_stats_body(z, classes, columns)
}

#[inline(always)]
fn column_stats_body(z: &[f32], classes: usize, columns: usize) -> ColumnStats {
    // row by row over the columns (contiguous), with per-column accumulators: every inner
    // loop is elementwise over the columns, so it vectorises
    let mut max = z[..columns].to_vec();
    let mut best = vec![0u32; columns];
    let mut sum_z = vec![0.0f64; columns];
    for (c, row) in z.chunks_exact(columns.max(1)).enumerate() {
        for (((&v, max), best), sum) in row.iter().zip(&mut max).zip(&mut best).zip(&mut sum_z) {
            // the first maximal class wins, as in a scan from class 0
            let above = v > *max;
            *max = if above { v } else { *max };
            *best = if above { c as u32 } else { *best };
            *sum += v as f64;
        }
    }
    let mut exps = vec![0.0f32; classes * columns];
    let mut sum_e = vec![0.0f64; columns];
    for (row, exps) in z.chunks_exact(columns.max(1)).zip(exps.chunks_exact_mut(columns.max(1))) {
        for (((&v, &max), e), sum) in row.iter().zip(&max).zip(exps).zip(&mut sum_e) {
            // exp in f32 (its 3e-7 error is below what the f32 logits carry; `exp_f32`
            // vectorises, libm's `expf` does not), sums in f64
            *e = exp::exp_f32(v - max);
            *sum += *e as f64;
        }
    }
    ColumnStats { max, best, sum_z, exps, sum_e }
}
