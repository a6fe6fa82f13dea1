//! The loss: cross-entropy with label smoothing over the read positions, and the
//! statistics the trainer reports (nats, accuracy, bits per symbol).

use crate::network::ForwardPass;
use elmlab_core::dfdx::prelude::*;
use elmlab_core::tensor::{device, matrix, Tape, Traced, TracedScalar};
use elmlab_host_ops as host_op;
use serde::Serialize;

/// Per-batch numbers the trainer aggregates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct BatchStats {
    /// Sum over read positions of the (unsmoothed) cross-entropy, in nats.
    pub nats: f64,
    pub correct: u64,
    pub count: u64,
}

impl BatchStats {
    pub fn add(&mut self, o: &BatchStats) {
        self.nats += o.nats;
        self.correct += o.correct;
        self.count += o.count;
    }
    pub fn loss(&self) -> f64 {
        self.nats / self.count.max(1) as f64
    }
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.count.max(1) as f64
    }
    pub fn bits_per_symbol(&self) -> f64 {
        self.loss() / std::f64::consts::LN_2
    }
}

/// Cross-entropy with label smoothing over all read positions (mean), plus unsmoothed
/// statistics for the metrics; the layers' histories are merged into it. `targets` are
/// ordered like the logits: step-major.
pub fn cross_entropy(pass: ForwardPass, targets: &[usize], classes: usize, smoothing: f64) -> (TracedScalar, BatchStats) {
    let mut stats = BatchStats::default();
    let mut total: TracedScalar = device().zeros::<Rank0>().retaped::<Tape>();
    let count = targets.len() as f32;
    let mut offset = 0;
    for logits in pass.logits {
        let columns = logits.shape().1;
        let tgt = &targets[offset..offset + columns];
        offset += columns;
        let term = if host_op::AVAILABLE {
            let (term, hits) = host_op::softmax_cross_entropy(logits, tgt, smoothing, count as f64);
            stats.nats += hits.nats;
            stats.correct += hits.correct;
            stats.count += columns as u64;
            term
        } else {
            tensor_cross_entropy(logits, tgt, classes, smoothing, count, &mut stats)
        };
        total = total + term;
    }
    let (value, mut tape) = total.split_tape();
    for history in pass.histories {
        tape = tape.merge(history.into_tape());
    }
    (value.put_tape(tape), stats)
}

/// One logits matrix's share of [`cross_entropy`] in dfdx ops (any device).
fn tensor_cross_entropy(logits: Traced, tgt: &[usize], classes: usize, smoothing: f64, count: f32, stats: &mut BatchStats) -> TracedScalar {
    let columns = logits.shape().1;
    let values = logits.as_vec();
    for (s, &y) in tgt.iter().enumerate() {
        let column: Vec<f64> = (0..classes).map(|c| values[c * columns + s] as f64).collect();
        let max = column.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + column.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        stats.nats += lse - column[y];
        let argmax = column.iter().enumerate().fold(0, |best, (i, v)| if *v > column[best] { i } else { best });
        stats.correct += (argmax == y) as u64;
        stats.count += 1;
    }
    let mut soft = vec![(smoothing / classes as f64) as f32; classes * columns];
    for (s, &y) in tgt.iter().enumerate() {
        soft[y * columns + s] += (1.0 - smoothing) as f32;
    }
    let soft = matrix(&device(), soft, classes, columns);
    (logits.log_softmax::<Axis<0>>() * soft).sum::<(), _>() * (-1.0 / count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use elmlab_core::tensor::trace;

    /// Smoothed cross-entropy and its gradient against the closed forms
    /// `-Σ_c q_c log softmax(z)_c` and `(softmax(z) - q) / positions`.
    #[test]
    fn smoothed_cross_entropy_value_and_gradient() {
        let dev = device();
        let z = [[1.0f64, -0.5], [0.2, 2.0], [-1.0, 0.3]]; // [classes=3][batch=2]
        let values: Vec<f32> = z.iter().flatten().map(|&v| v as f32).collect();
        let logits = matrix(&dev, values, 3, 2);
        let targets = [2usize, 1];
        let alpha = 0.1;
        let pass = ForwardPass { logits: vec![trace(&logits)], final_state: vec![], histories: vec![] };
        let (loss, stats) = cross_entropy(pass, &targets, 3, alpha);
        let value = loss.array() as f64;
        let grads = loss.backward().get(&logits).as_vec();
        let mut expect = 0.0;
        for (s, &y) in targets.iter().enumerate() {
            let col: Vec<f64> = (0..3).map(|c| z[c][s]).collect();
            let lse = col.iter().map(|v| v.exp()).sum::<f64>().ln();
            for c in 0..3 {
                let q = alpha / 3.0 + if c == y { 1.0 - alpha } else { 0.0 };
                expect -= q * (col[c] - lse) / 2.0;
                let g = ((col[c] - lse).exp() - q) / 2.0;
                assert!((grads[c * 2 + s] as f64 - g).abs() < 1e-6, "grad [{c},{s}]");
            }
        }
        assert!((value - expect).abs() < 1e-6, "{value} vs {expect}");
        // statistics are unsmoothed: plain cross-entropy and argmax accuracy
        let plain: f64 = targets.iter().enumerate().map(|(s, &y)| (0..3).map(|c| z[c][s].exp()).sum::<f64>().ln() - z[y][s]).sum();
        assert!((stats.nats - plain).abs() < 1e-5);
        // argmax of sequence 0 is class 0 (target 2), of sequence 1 class 1 (target 1)
        assert_eq!((stats.correct, stats.count), (1, 2));
    }

    /// The host loss (used on the CPU) and the dfdx-ops loss (used on CUDA) agree.
    #[test]
    fn host_and_tensor_cross_entropy_agree() {
        let dev = device();
        let (classes, columns) = (5, 7);
        let values: Vec<f32> = (0..classes * columns).map(|i| ((i * 37) % 23) as f32 / 4.0 - 2.5).collect();
        let targets: Vec<usize> = (0..columns).map(|s| (s * 3) % classes).collect();
        let logits = matrix(&dev, values, classes, columns);
        let (host, hits) = host_op::softmax_cross_entropy(trace(&logits), &targets, 0.1, 9.0);
        let mut stats = BatchStats::default();
        let tensor = tensor_cross_entropy(trace(&logits), &targets, classes, 0.1, 9.0, &mut stats);
        assert!((host.array() - tensor.array()).abs() < 1e-6, "{} vs {}", host.array(), tensor.array());
        // the host op takes exp in f32 (sums in f64): agreement to f32 precision
        assert!((hits.nats - stats.nats).abs() < 1e-6 * stats.nats.abs().max(1.0), "{} vs {}", hits.nats, stats.nats);
        assert_eq!(hits.correct, stats.correct);
        let (gh, gt) = (host.backward().get(&logits).as_vec(), tensor.backward().get(&logits).as_vec());
        for (a, b) in gh.iter().zip(&gt) {
            assert!((a - b).abs() < 1e-6, "{gh:?} vs {gt:?}");
        }
    }
}
