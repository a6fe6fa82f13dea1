//! The output map of a whole sequence as one host operation: `W·a_t + b` for every read
//! step in one product instead of a matmul, a broadcast and an add per step.

use crate::both::both;
use crate::matmul::{matmul, matmul_here, View};
use crate::packed::PackedRows;
use crate::tape::{add_grad, grad_of, take_input, AVAILABLE};
use elmlab_core::dfdx::prelude::*;
use elmlab_core::dfdx::tensor::Tape as _;
use elmlab_core::tensor::{device, matrix, values, values_into, Matrix, Tape, Traced};

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
        both(
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
    both(|| map(0, first), || map(half, second));
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
        both(|| backward(0, y_first, &mut d_w), || backward(half, y_second, &mut d_w_second));
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


#[cfg(all(test, not(feature = "cuda")))]
mod tests {
    use super::*;
    use elmlab_core::tensor::trace;

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
