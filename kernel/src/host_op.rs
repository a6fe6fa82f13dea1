//! Operations computed on the host and attached to dfdx's tape as one backward operation,
//! with public dfdx calls only: the gradient that reached a result is read with
//! [`grad_of`], the gradients of the inputs are added with [`add_grad`]. The backward op
//! runs after every op that consumed the result: dfdx runs ops in reverse order of
//! creation, and consumers are created later. CPU only (dfdx keeps CUDA buffers private).

use crate::tensor::{device, matrix, Dev, Tape, Traced, TracedScalar};
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

/// The matrices `parts` (equal row counts) side by side, `[rows, Σ cols]`, as one traced
/// value: one product and one loss over a whole sequence instead of one per step.
pub fn concat_columns(parts: Vec<Traced>) -> Traced {
    assert!(AVAILABLE, "concat_columns is a host operation");
    let rows = parts.first().map(|p| p.shape().0).unwrap_or(0);
    let widths: Vec<usize> = parts.iter().map(|p| p.shape().1).collect();
    assert!(parts.iter().all(|p| p.shape().0 == rows), "concat_columns: parts differ in row count");
    let total: usize = widths.iter().sum();
    let mut tape = Tape::default();
    let mut plain = Vec::with_capacity(parts.len());
    let mut values = vec![0.0f32; rows * total];
    let mut offset = 0;
    for part in parts {
        let (value, part_tape) = part.split_tape();
        tape = tape.merge(part_tape);
        let (cols, data) = (value.shape().1, value.as_vec());
        for r in 0..rows {
            values[r * total + offset..][..cols].copy_from_slice(&data[r * cols..][..cols]);
        }
        offset += cols;
        plain.push(value);
    }
    let joined = matrix(&device(), values, rows, total);
    let key = joined.clone();
    tape.add_backward_op(move |grads| {
        let g = grad_of(grads, &key)?;
        let mut offset = 0;
        for (part, &cols) in plain.iter().zip(&widths) {
            let piece: Vec<f32> = (0..rows).flat_map(|r| g[r * total + offset..][..cols].iter().copied()).collect();
            add_grad(grads, part, &piece)?;
            offset += cols;
        }
        Ok(())
    });
    joined.put_tape(tape)
}

/// What [`softmax_cross_entropy`] measured besides the loss: the unsmoothed
/// cross-entropy summed over the columns (nats), and how many argmaxes hit the target.
pub struct Hits {
    pub nats: f64,
    pub correct: u64,
}

/// `−(1/count)·Σ_s Σ_c q_{c,s} log softmax(z_{·,s})_c` of logits `z` (`[classes, columns]`),
/// with the label-smoothed targets `q = α/C + (1−α)·[c = y_s]`, in one pass: the loss in
/// f64, its gradient `(softmax − q)/count` formed with it and handed back in backward.
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
    let mut exps = vec![0.0f64; classes * columns];
    let mut sum_e = vec![0.0f64; columns];
    for c in 0..classes {
        for s in 0..columns {
            let e = (z[c * columns + s] as f64 - max[s]).exp();
            exps[c * columns + s] = e;
            sum_e[s] += e;
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
    let mut grad = vec![0.0f32; classes * columns];
    for c in 0..classes {
        for (s, &y) in targets.iter().enumerate() {
            let q = off + if c == y { 1.0 - smoothing } else { 0.0 };
            grad[c * columns + s] = ((exps[c * columns + s] / sum_e[s] - q) / count) as f32;
        }
    }
    let result = device().tensor((loss / count) as f32);
    let key = result.clone();
    tape.add_backward_op(move |grads| {
        let upstream = grad_of(grads, &key)?[0];
        let scaled: Vec<f32> = grad.iter().map(|g| g * upstream).collect();
        add_grad(grads, &value, &scaled)
    });
    (result.put_tape(tape), hits)
}

#[cfg(all(test, not(feature = "cuda")))]
mod tests {
    use super::*;
    use crate::tensor::trace;

    #[test]
    fn concat_columns_joins_values_and_splits_gradients() {
        let dev = device();
        let a = matrix(&dev, vec![1.0, 2.0, 3.0, 4.0], 2, 2);
        let b = matrix(&dev, vec![5.0, 6.0], 2, 1);
        let joined = concat_columns(vec![trace(&a), trace(&b)]);
        assert_eq!(joined.as_vec(), vec![1.0, 2.0, 5.0, 3.0, 4.0, 6.0]);
        // L = Σ w ⊙ joined, so dL/d(joined) = w, and each part gets its columns of w
        let w = matrix(&dev, vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 2, 3);
        let grads = (joined * w).sum::<(), _>().backward();
        assert_eq!(grads.get(&a).as_vec(), vec![0.1, 0.2, 0.4, 0.5]);
        assert_eq!(grads.get(&b).as_vec(), vec![0.3, 0.6]);
    }
}
