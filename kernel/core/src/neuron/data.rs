//! A batch's inputs as the network's first layer reads them: straight from the task's
//! batch, a step at a time, into a buffer the layer owns. Data needs no gradients, so a
//! fused first layer can skip the per-step input tensors (at SHD-Adding's 700 inputs ×
//! 1,000 steps × batch 8, encoding them took ~6 ms of a 40–50 ms inference batch, and the
//! kernel copied them once more into its own table).

use crate::task::Inputs;
use crate::tensor::{device, matrix, trace, Traced};

/// Encoded inputs of a sequence batch, read one step at a time (`Sync`: a layer's team of
/// threads may read the next step while it runs the current one).
pub trait StepInputs: Sync {
    fn steps(&self) -> usize;
    fn width(&self) -> usize;
    fn batch(&self) -> usize;
    /// Writes every value of step `t` as `[width, batch]` (row-major) into `out`, which
    /// holds exactly `width · batch` values.
    fn fill(&self, t: usize, out: &mut [f32]);
    /// Every step as a traced `[width, batch]` matrix on a fresh tape (for a layer that
    /// reads tensors).
    fn traced(&self) -> Vec<Traced> {
        let dev = device();
        (0..self.steps())
            .map(|t| {
                let mut values = vec![0.0; self.width() * self.batch()];
                self.fill(t, &mut values);
                trace(&matrix(&dev, values, self.width(), self.batch()))
            })
            .collect()
    }
}

/// A task's [`Inputs`] with the sizes that give them shape. The sizes must agree with the
/// inputs (`task::validate_batch` checks a task's batches).
pub struct EncodedInputs<'a> {
    pub inputs: &'a Inputs,
    pub steps: usize,
    pub batch: usize,
    pub width: usize,
}

impl StepInputs for EncodedInputs<'_> {
    fn steps(&self) -> usize {
        self.steps
    }
    fn width(&self) -> usize {
        self.width
    }
    fn batch(&self) -> usize {
        self.batch
    }
    fn fill(&self, t: usize, out: &mut [f32]) {
        let (w, b) = (self.width, self.batch);
        match self.inputs {
            // `[batch][width]` per step, transposed: each row of `out` is one channel
            Inputs::Dense(v) => transpose(&v[t * b * w..(t + 1) * b * w], w, b, out),
            Inputs::OneHot { symbols, scale } => {
                out.fill(0.0);
                for (s, &symbol) in symbols[t * b..(t + 1) * b].iter().enumerate() {
                    out[symbol as usize * b + s] = *scale;
                }
            }
        }
    }
}

/// `out[d][s] = step[s][d]` for `b` rows `s` of `w` values. With AVX, tiles of 8 × 8 in
/// registers (at SHD-Adding's 700 channels and batch 8, element by element in tiles this
/// took 5.6 µs a step, a fifth of the step the layer runs meanwhile); the rest, and CPUs
/// without AVX, [`transpose_plain`].
fn transpose(step: &[f32], w: usize, b: usize, out: &mut [f32]) {
    assert!(step.len() == w * b && out.len() == w * b, "a step of {b} × {w} values");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above)
        let done = unsafe { transpose_avx(step, w, b, out) };
        return transpose_plain(step, w, b, done, out);
    }
    transpose_plain(step, w, b, (0, 0), out)
}

/// The tiles of 8 sequences × 8 channels; returns `(sequences, channels)` done (every
/// channel below the second of every sequence below the first).
///
/// # Safety
/// The CPU must have AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose_avx(step: &[f32], w: usize, b: usize, out: &mut [f32]) -> (usize, usize) {
    let (sequences, channels) = (b - b % 8, w - w % 8);
    for s0 in (0..sequences).step_by(8) {
        for d0 in (0..channels).step_by(8) {
            let mut tile = [[0.0f32; 8]; 8];
            for (r, row) in tile.iter_mut().enumerate() {
                row.copy_from_slice(&step[(s0 + r) * w + d0..][..8]);
            }
            let columns = crate::tile::transpose_8x8_avx(&tile);
            for (c, column) in columns.iter().enumerate() {
                out[(d0 + c) * b + s0..][..8].copy_from_slice(column);
            }
        }
    }
    (sequences, channels)
}

/// What the tiles left: the channels from `done.1` of the sequences below `done.0`, then
/// every channel of the sequences from `done.0` (square tiles of 16, 8, then 4 sequences,
/// the last few one at a time: for SHD-Adding's 700 channels at batch 32 that took 19 ms a
/// batch against 29 for a loop along the rows of `out`).
fn transpose_plain(step: &[f32], w: usize, b: usize, done: (usize, usize), out: &mut [f32]) {
    for s in 0..done.0 {
        for d in done.1..w {
            out[d * b + s] = step[s * w + d];
        }
    }
    let mut s = done.0;
    s = tiles::<16>(step, w, b, s, out);
    s = tiles::<8>(step, w, b, s, out);
    s = tiles::<4>(step, w, b, s, out);
    for s in s..b {
        for (d, &x) in step[s * w..(s + 1) * w].iter().enumerate() {
            out[d * b + s] = x;
        }
    }
}

/// [`transpose`] of the sequences from `from` in tiles of `T`, while `T` remain; returns
/// the first sequence left.
#[inline(always)]
fn tiles<const T: usize>(step: &[f32], w: usize, b: usize, from: usize, out: &mut [f32]) -> usize {
    let mut s0 = from;
    let whole = w - w % T;
    while s0 + T <= b {
        let rows: [&[f32]; T] = std::array::from_fn(|r| &step[(s0 + r) * w..(s0 + r + 1) * w]);
        for d0 in (0..whole).step_by(T) {
            let tile: [[f32; T]; T] = std::array::from_fn(|r| std::array::from_fn(|c| rows[r][d0 + c]));
            for c in 0..T {
                let column = &mut out[(d0 + c) * b + s0..][..T];
                column.iter_mut().enumerate().for_each(|(r, o)| *o = tile[r][c]);
            }
        }
        for d in whole..w {
            (0..T).for_each(|r| out[d * b + s0 + r] = rows[r][d]);
        }
        s0 += T;
    }
    s0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Step `t` of `[steps][batch][width]` values `v(t, s, d)`, read back as `[width][batch]`;
    /// the sizes take every kind of tile and every remainder.
    #[test]
    fn dense_steps_are_transposed_per_step() {
        for (steps, batch, width) in [(3, 5, 7), (2, 29, 37), (2, 32, 700), (1, 8, 16), (2, 8, 700), (1, 17, 8), (1, 16, 5)] {
            let value = |t: usize, s: usize, d: usize| (100_000 * t + 1000 * s + d) as f32;
            let mut v = Vec::new();
            for t in 0..steps {
                for s in 0..batch {
                    v.extend((0..width).map(|d| value(t, s, d)));
                }
            }
            let inputs = Inputs::Dense(v);
            let enc = EncodedInputs { inputs: &inputs, steps, batch, width };
            let mut out = vec![f32::NAN; width * batch];
            for t in 0..steps {
                enc.fill(t, &mut out);
                for d in 0..width {
                    for s in 0..batch {
                        assert_eq!(out[d * batch + s], value(t, s, d), "batch {batch}, width {width}: step {t}, channel {d}, sequence {s}");
                    }
                }
            }
            // the build without tiles in registers (CPUs without AVX) on its own
            let mut plain = vec![f32::NAN; width * batch];
            transpose_plain(&inputs_of(&inputs)[..batch * width], width, batch, (0, 0), &mut plain);
            enc.fill(0, &mut out);
            assert_eq!(plain, out, "batch {batch}, width {width}: without AVX");
            let traced = enc.traced();
            assert_eq!(traced.len(), steps);
            assert_eq!(traced[steps - 1].as_vec()[3 * batch + 4], value(steps - 1, 4, 3));
        }
    }

    fn inputs_of(inputs: &Inputs) -> &[f32] {
        match inputs {
            Inputs::Dense(v) => v,
            Inputs::OneHot { .. } => unreachable!("dense inputs"),
        }
    }

    #[test]
    fn one_hot_steps_write_every_value() {
        let (steps, batch, width) = (2, 3, 4);
        let inputs = Inputs::OneHot { symbols: vec![0, 3, 1, 2, 2, 0], scale: 0.5 };
        let enc = EncodedInputs { inputs: &inputs, steps, batch, width };
        // a buffer holding older values: fill must overwrite all of them
        let mut out = vec![7.0; width * batch];
        enc.fill(1, &mut out);
        let mut expected = vec![0.0; width * batch];
        for (s, symbol) in [2usize, 2, 0].into_iter().enumerate() {
            expected[symbol * batch + s] = 0.5;
        }
        assert_eq!(out, expected);
    }
}
