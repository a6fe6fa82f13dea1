//! Operations computed on the host and attached to dfdx's tape as one backward operation,
//! with public dfdx calls only: the gradient that reached a result is read with
//! [`grad_of`], the gradients of the inputs are added with [`add_grad`]. The backward op
//! runs after every op that consumed the result: dfdx runs ops in reverse order of
//! creation, and consumers are created later. CPU only (dfdx keeps CUDA buffers private).

pub mod matmul;

use crate::tensor::{device, matrix, Dev, Matrix, Tape, Traced, TracedScalar};
use matmul::{matmul, View};
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
    let mut offset = 0;
    for part in parts {
        let (value, part_tape) = part.split_tape();
        tape = tape.merge(part_tape);
        let (cols, data) = (value.shape().1, value.as_vec());
        for r in 0..units {
            a[r * total + offset..][..cols].copy_from_slice(&data[r * cols..][..cols]);
        }
        offset += cols;
        plain.push(value);
    }
    let (w, b) = (weight.as_vec(), bias.as_vec());
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
        let mut d_w = vec![0.0f32; classes * units];
        matmul(classes, units, total, &mut d_w, units, false, View::rows(&g, total), View::transposed(&a, total));
        add_grad(grads, &weight, &d_w)?;
        let d_b: Vec<f32> = g.chunks(total.max(1)).map(|row| row.iter().sum()).collect();
        add_grad(grads, &bias, &d_b)?;
        let mut d_a = vec![0.0f32; units * total];
        matmul(units, total, classes, &mut d_a, total, false, View::transposed(&w, units), View::rows(&g, total));
        let mut offset = 0;
        for (part, &cols) in plain.iter().zip(&widths) {
            let piece: Vec<f32> = (0..units).flat_map(|r| d_a[r * total + offset..][..cols].iter().copied()).collect();
            add_grad(grads, part, &piece)?;
            offset += cols;
        }
        Ok(())
    });
    result.put_tape(tape)
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
    let (value, mut tape) = logits.split_tape();
    let z = value.as_vec();
    // row by row over the columns (contiguous), with per-column accumulators
    let mut max = vec![f64::NEG_INFINITY; columns];
    let mut best = vec![0usize; columns];
    let mut sum_z = vec![0.0f64; columns];
    for c in 0..classes {
        for s in 0..columns {
            let v = z[c * columns + s] as f64;
            if v > max[s] {
                (max[s], best[s]) = (v, c);
            }
            sum_z[s] += v;
        }
    }
    let mut exps = vec![0.0f32; classes * columns];
    let mut sum_e = vec![0.0f64; columns];
    for c in 0..classes {
        for s in 0..columns {
            // exp in f32 (a quarter of f64's time; its 1e-7 error is below what the f32
            // logits carry), sums in f64
            let e = (z[c * columns + s] - max[s] as f32).exp();
            exps[c * columns + s] = e;
            sum_e[s] += e as f64;
        }
    }
    let off = smoothing / classes as f64;
    let (mut loss, mut hits) = (0.0f64, Hits { nats: 0.0, correct: 0 });
    for (s, &y) in targets.iter().enumerate() {
        let lse = max[s] + sum_e[s].ln();
        let z_y = z[y * columns + s] as f64;
        hits.nats += lse - z_y;
        hits.correct += (best[s] == y) as u64;
        // Σ_c q_c (lse − z_c), with Σ_c q_c = 1
        loss += lse - off * sum_z[s] - (1.0 - smoothing) * z_y;
    }
    let result = device().tensor((loss / count) as f32);
    let (key, targets) = (result.clone(), targets.to_vec());
    // the gradient is formed only if backward runs (evaluation never asks for it)
    tape.add_backward_op(move |grads| {
        let upstream = grad_of(grads, &key)?[0];
        let mut grad = vec![0.0f32; classes * columns];
        for c in 0..classes {
            for (s, &y) in targets.iter().enumerate() {
                let q = off + if c == y { 1.0 - smoothing } else { 0.0 };
                grad[c * columns + s] = ((exps[c * columns + s] as f64 / sum_e[s] - q) / count) as f32 * upstream;
            }
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
}
