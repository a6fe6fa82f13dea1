//! Operations computed on the host and attached to dfdx's tape as one backward operation,
//! with public dfdx calls only: the gradient that reached a result is read with
//! [`grad_of`], the gradients of the inputs are added with [`add_grad`]. The backward op
//! runs after every op that consumed the result: dfdx runs ops in reverse order of
//! creation, and consumers are created later. CPU only (dfdx keeps CUDA buffers private).

pub mod exp;
pub mod matmul;
pub mod packed;

use crate::tensor::{device, matrix, values, values_into, Dev, Matrix, Tape, Traced, TracedScalar};
use matmul::{matmul, matmul_here, View};
use packed::PackedRows;
use dfdx::prelude::*;
use dfdx::tensor::Tape as _;

pub type Grads = dfdx::tensor::Gradients<f32, Dev>;
pub type DevError = <Dev as HasErr>::Err;
pub type GradResult = Result<(), DevError>;

/// Whether host operations are available: they read and write CPU buffers.
pub const AVAILABLE: bool = !cfg!(feature = "cuda");

/// The gradient that reached `t` (zeros if none did), as a vector.
#[cfg(not(feature = "cuda"))]
pub fn grad_of<S: Shape>(grads: &mut Grads, t: &Tensor<S, f32, Dev>) -> Result<Vec<f32>, DevError> {
    Ok(grads.get_or_alloc_mut(t)?.to_vec())
}

/// Adds `values` to the gradient of `t`.
#[cfg(not(feature = "cuda"))]
pub fn add_grad<S: Shape>(grads: &mut Grads, t: &Tensor<S, f32, Dev>, values: &[f32]) -> GradResult {
    let g = grads.get_or_alloc_mut(t)?;
    debug_assert_eq!(g.len(), values.len());
    g.iter_mut().zip(values).for_each(|(g, v)| *g += v);
    Ok(())
}

#[cfg(feature = "cuda")]
pub fn grad_of<S: Shape>(_: &mut Grads, _: &Tensor<S, f32, Dev>) -> Result<Vec<f32>, DevError> {
    unreachable!("host operations are not used in a CUDA build")
}

#[cfg(feature = "cuda")]
pub fn add_grad<S: Shape>(_: &mut Grads, _: &Tensor<S, f32, Dev>, _: &[f32]) -> GradResult {
    unreachable!("host operations are not used in a CUDA build")
}

/// A traced input of a host operation as its value and its history. The value is made
/// row-major first (a copy op on the tape only where it is not): dfdx keeps a tensor's
/// gradient buffer in the tensor's own layout, and [`add_grad`] adds row-major values.
pub fn take_input(t: Traced) -> (Matrix, Tape) {
    t.contiguous().split_tape()
}

/// `W·a + b` over the columns of `parts` side by side (`[units, Σ cols]`), as one traced
/// value `[classes, Σ cols]`: the output map of a whole sequence in one product. `weight`
/// (`[classes, units]`) and `bias` (`classes` values) are the parameters themselves, whose
/// gradients this adds.
pub fn affine_columns(weight: &Matrix, bias: &Matrix, parts: Vec<Traced>) -> Traced {
    assert!(AVAILABLE, "affine_columns is a host operation");
    let (classes, units) = *weight.shape();
    let widths: Vec<usize> = parts.iter().map(|p| p.shape().1).collect();
    assert!(parts.iter().all(|p| p.shape().0 == units), "affine_columns: parts must have {units} rows");
    let total: usize = widths.iter().sum();
    let mut tape = Tape::default();
    let mut plain = Vec::with_capacity(parts.len());
    let mut a = vec![0.0f32; units * total];
    let mut piece = Vec::new();
    let mut offset = 0;
    for part in parts {
        let (value, part_tape) = take_input(part);
        tape = tape.merge(part_tape);
        let cols = value.shape().1;
        piece.resize(units * cols, 0.0);
        values_into(&value, &mut piece);
        for (r, row) in piece.chunks_exact(cols.max(1)).enumerate() {
            a[r * total + offset..][..cols].copy_from_slice(row);
        }
        offset += cols;
        plain.push(value);
    }
    let (w, b) = (values(weight), values(bias));
    assert_eq!(b.len(), classes, "affine_columns: {classes} biases expected");
    let mut out = vec![0.0f32; classes * total];
    for (row, &bias) in out.chunks_mut(total.max(1)).zip(&b) {
        row.fill(bias);
    }
    matmul(classes, total, units, &mut out, total, true, View::rows(&w, units), View::rows(&a, total));
    let result = matrix(&device(), out, classes, total);
    let (key, weight, bias) = (result.clone(), weight.clone(), bias.clone());
    tape.add_backward_op(move |grads| {
        let g = grad_of(grads, &key)?;
        // dWᵀ = A·gᵀ, its rows split over two threads: measured 0.74 ms on one thread at
        // [256, 64]·3200, where gemm's own split of dW = g·Aᵀ took 1.7 ms on two
        let mut d_wt = vec![0.0f32; units * classes];
        let half = units.div_ceil(2);
        let (top, bottom) = d_wt.split_at_mut(half * classes);
        rayon::join(
            || matmul_here(half, classes, total, top, classes, false, View::rows(&a, total), View::transposed(&g, total)),
            || matmul_here(units - half, classes, total, bottom, classes, false, View::rows(&a[half * total..], total), View::transposed(&g, total)),
        );
        let d_w: Vec<f32> = (0..classes * units).map(|i| d_wt[(i % units) * classes + i / units]).collect();
        add_grad(grads, &weight, &d_w)?;
        let d_b: Vec<f32> = g.chunks(total.max(1)).map(sum_in_lanes).collect();
        add_grad(grads, &bias, &d_b)?;
        let mut d_a = vec![0.0f32; units * total];
        matmul(units, total, classes, &mut d_a, total, false, View::transposed(&w, units), View::rows(&g, total));
        let (mut offset, mut piece) = (0, Vec::new());
        for (part, &cols) in plain.iter().zip(&widths) {
            piece.clear();
            (0..units).for_each(|r| piece.extend_from_slice(&d_a[r * total + offset..][..cols]));
            add_grad(grads, part, &piece)?;
            offset += cols;
        }
        Ok(())
    });
    result.put_tape(tape)
}

/// `W·a_t + b` for each step `t` of a step-major block `all` (`[steps·units, batch]`, rows
/// `t·units..` are step `t`), as one traced value `[classes, steps·batch]` (column `t·B + s`):
/// the output map of a whole sequence that a layer handed over in one block, without
/// cutting it into per-step tensors. Steps are split over two threads, each step's product
/// on `W` packed once; every output is one sum in a fixed order.
pub fn affine_stacked(weight: &Matrix, bias: &Matrix, all: Traced, steps: usize) -> Traced {
    assert!(AVAILABLE, "affine_stacked is a host operation");
    let (classes, units) = *weight.shape();
    let (rows, batch) = *all.shape();
    assert_eq!(rows, steps * units, "affine_stacked: {steps} steps of {units} rows expected, got {rows} rows");
    let total = steps * batch;
    let (value, mut tape) = take_input(all);
    let y = values(&value);
    let (w, b) = (values(weight), values(bias));
    assert_eq!(b.len(), classes, "affine_stacked: {classes} biases expected");
    let packed_w = PackedRows::new(classes, units, View::rows(&w, units));
    // per step `[classes][batch]` blocks, then laid out as columns
    let mut blocks = vec![0.0f32; steps * classes * batch];
    let half = steps.div_ceil(2);
    let (first, second) = blocks.split_at_mut(half * classes * batch);
    let map = |from: usize, out: &mut [f32]| {
        for (n, block) in out.chunks_exact_mut((classes * batch).max(1)).enumerate() {
            let t = from + n;
            packed_w.product_here(0..classes, batch, block, batch, false, View::rows(&y[t * units * batch..], batch));
        }
    };
    rayon::join(|| map(0, first), || map(half, second));
    let mut out = vec![0.0f32; classes * total];
    for (t, block) in blocks.chunks_exact((classes * batch).max(1)).enumerate() {
        for (c, row) in block.chunks_exact(batch.max(1)).enumerate() {
            out[c * total + t * batch..][..batch].iter_mut().zip(row).for_each(|(o, &v)| *o = v + b[c]);
        }
    }
    let result = matrix(&device(), out, classes, total);
    let (key, weight, bias) = (result.clone(), weight.clone(), bias.clone());
    tape.add_backward_op(move |grads| {
        let g = grad_of(grads, &key)?;
        // the gradient of step t is columns t·B.. of g: a view with row stride `total`
        let step_grad = |t: usize| View { data: &g[t * batch..], row: total, col: 1 };
        let packed_wt = PackedRows::new(units, classes, View::transposed(&w, units));
        let mut d_y = vec![0.0f32; steps * units * batch];
        // dW as two partial sums over the halves of the steps, added in a fixed order
        let (mut d_w, mut d_w_second) = (vec![0.0f32; classes * units], vec![0.0f32; classes * units]);
        let (y_first, y_second) = d_y.split_at_mut(half * units * batch);
        let backward = |from: usize, d_y: &mut [f32], d_w: &mut [f32]| {
            for (n, d_y_t) in d_y.chunks_exact_mut((units * batch).max(1)).enumerate() {
                let t = from + n;
                packed_wt.product_here(0..units, batch, d_y_t, batch, false, step_grad(t));
                matmul_here(classes, units, batch, d_w, units, n > 0, step_grad(t), View::transposed(&y[t * units * batch..], batch));
            }
        };
        rayon::join(|| backward(0, y_first, &mut d_w), || backward(half, y_second, &mut d_w_second));
        if steps > half {
            d_w.iter_mut().zip(&d_w_second).for_each(|(a, b)| *a += b);
        }
        add_grad(grads, &weight, &d_w)?;
        let d_b: Vec<f32> = g.chunks(total.max(1)).map(sum_in_lanes).collect();
        add_grad(grads, &bias, &d_b)?;
        add_grad(grads, &value, &d_y)
    });
    result.put_tape(tape)
}

/// `Σ values` with sixteen running sums (so that the loop vectorises), added up at the end.
fn sum_in_lanes(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut blocks = values.chunks_exact(16);
    for block in &mut blocks {
        lanes.iter_mut().zip(block).for_each(|(s, v)| *s += v);
    }
    lanes.iter().sum::<f32>() + blocks.remainder().iter().sum::<f32>()
}

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

#[cfg(all(test, not(feature = "cuda")))]
mod tests {
    use super::*;
    use crate::tensor::trace;

    #[test]
    fn affine_columns_values_and_gradients_match_loops() {
        let dev = device();
        // W [2, 3], bias [2], parts [3, 2] and [3, 1]; L = Σ r ⊙ out with fixed r
        let w: Vec<f32> = vec![0.5, -1.0, 2.0, 1.5, 0.25, -0.75];
        let bias = vec![0.1f32, -0.2];
        let (p0, p1) = (vec![1.0f32, 2.0, -1.0, 0.5, 3.0, -2.0], vec![0.3f32, -0.6, 0.9]);
        let r: Vec<f32> = vec![1.0, -2.0, 0.5, 3.0, 0.25, -1.5];
        let (wm, bm) = (matrix(&dev, w.clone(), 2, 3), matrix(&dev, bias.clone(), 2, 1));
        let (a0, a1) = (matrix(&dev, p0.clone(), 3, 2), matrix(&dev, p1.clone(), 3, 1));
        let out = affine_columns(&wm, &bm, vec![trace(&a0), trace(&a1)]);
        // the columns side by side: x[h][n]
        let x = |h: usize, n: usize| if n < 2 { p0[h * 2 + n] } else { p1[h] };
        let want: Vec<f32> = (0..2).flat_map(|c| (0..3).map(move |n| (c, n))).map(|(c, n)| bias[c] + (0..3).map(|h| w[c * 3 + h] * x(h, n)).sum::<f32>()).collect();
        let got = out.as_vec();
        for (g, e) in got.iter().zip(&want) {
            assert!((g - e).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        let grads = (out * matrix(&dev, r.clone(), 2, 3)).sum::<(), _>().backward();
        let d_w: Vec<f32> = (0..2).flat_map(|c| (0..3).map(move |h| (c, h))).map(|(c, h)| (0..3).map(|n| r[c * 3 + n] * x(h, n)).sum()).collect();
        let d_b: Vec<f32> = (0..2).map(|c| (0..3).map(|n| r[c * 3 + n]).sum()).collect();
        let d_x = |h: usize, n: usize| (0..2).map(|c| w[c * 3 + h] * r[c * 3 + n]).sum::<f32>();
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
        assert!(close(&grads.get(&wm).as_vec(), &d_w));
        assert!(close(&grads.get(&bm).as_vec(), &d_b));
        assert!(close(&grads.get(&a0).as_vec(), &[d_x(0, 0), d_x(0, 1), d_x(1, 0), d_x(1, 1), d_x(2, 0), d_x(2, 1)]));
        assert!(close(&grads.get(&a1).as_vec(), &[d_x(0, 2), d_x(1, 2), d_x(2, 2)]));
    }

    /// A part that is a permuted view (not row-major) gives the values and gradients of
    /// the same part made row-major first: the gradient reaches the tensor it was viewed from.
    #[test]
    fn affine_columns_reads_and_differentiates_a_permuted_part() {
        let dev = device();
        let (w, bias) = (matrix(&dev, vec![0.5, -1.0, 2.0, 1.5, 0.25, -0.75], 2, 3), matrix(&dev, vec![0.1, -0.2], 2, 1));
        let source = matrix(&dev, vec![1.0, 2.0, -1.0, 0.5, 3.0, -2.0], 2, 3); // its transpose is the part [3, 2]
        let part_rows = matrix(&dev, vec![1.0, 0.5, 2.0, 3.0, -1.0, -2.0], 3, 2);
        let r = matrix(&dev, vec![1.0, -2.0, 0.5, 3.0], 2, 2);
        let viewed = affine_columns(&w, &bias, vec![trace(&source).permute::<_, Axes2<1, 0>>()]);
        let plain = affine_columns(&w, &bias, vec![trace(&part_rows)]);
        assert_eq!(viewed.as_vec(), plain.as_vec());
        let g_viewed = (viewed * r.clone()).sum::<(), _>().backward().get(&source).as_vec();
        let g_plain = (plain * r).sum::<(), _>().backward().get(&part_rows).as_vec();
        // the gradient of the source is the transpose of the part's
        assert_eq!(g_viewed, vec![g_plain[0], g_plain[2], g_plain[4], g_plain[1], g_plain[3], g_plain[5]]);
    }

    /// The output map of a step-major block equals the output map of the same steps as
    /// separate parts (checked against loops above): values and every gradient, for an odd
    /// number of steps (unequal halves) and a batch that is not a multiple of 16.
    #[test]
    fn affine_stacked_equals_affine_columns_of_the_steps() {
        let dev = device();
        let (classes, units, batch, steps) = (5, 11, 3, 7);
        let val = |n: usize, k: usize| (0..n).map(|i| ((i * k % 97) as f32 - 48.0) / 40.0).collect::<Vec<f32>>();
        let (w, bias, y) = (matrix(&dev, val(classes * units, 13), classes, units), matrix(&dev, val(classes, 7), classes, 1), val(steps * units * batch, 31));
        let all = matrix(&dev, y.clone(), steps * units, batch);
        let parts: Vec<Matrix> = (0..steps).map(|t| matrix(&dev, y[t * units * batch..][..units * batch].to_vec(), units, batch)).collect();
        let r = matrix(&dev, val(classes * steps * batch, 17), classes, steps * batch);
        let stacked = affine_stacked(&w, &bias, trace(&all), steps);
        let columns = affine_columns(&w, &bias, parts.iter().map(trace).collect());
        let close = |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + y.abs()));
        assert!(close(&stacked.as_vec(), &columns.as_vec()));
        let g_stacked = (stacked * r.clone()).sum::<(), _>().backward();
        let g_columns = (columns * r).sum::<(), _>().backward();
        assert!(close(&g_stacked.get(&w).as_vec(), &g_columns.get(&w).as_vec()));
        assert!(close(&g_stacked.get(&bias).as_vec(), &g_columns.get(&bias).as_vec()));
        let d_parts: Vec<f32> = parts.iter().flat_map(|p| g_columns.get(p).as_vec()).collect();
        assert!(close(&g_stacked.get(&all).as_vec(), &d_parts));
    }
}
