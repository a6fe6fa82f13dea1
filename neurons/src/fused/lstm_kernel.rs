//! The LSTM over a whole sequence: the input projection of every step in one matrix
//! product before the time loop, one `W_hh h` product and a fused pointwise gate step per
//! step; backward through time stores the gate gradients of every step and forms the
//! weight gradients with one product each after the loop. Gates in PyTorch's order
//! (i, f, g, o); every matrix row-major, batch last.

use super::matmul::{matmul, View};
use super::Real;
use rayon::prelude::*;

/// The parameters, as `torch.nn.LSTM` lays them out.
pub struct LstmWeights<'a, F> {
    pub w_ih: &'a [F],
    pub w_hh: &'a [F],
    pub b_ih: &'a [F],
    pub b_hh: &'a [F],
}

/// What the forward pass keeps for backward: the states of every step and the gate
/// activations (no other intermediates).
pub struct LstmForward<F> {
    pub hidden: usize,
    pub input: usize,
    pub batch: usize,
    pub steps: usize,
    /// Inputs `[I, T·B]`, step `t` in columns `t·B..(t+1)·B`.
    xs: Vec<F>,
    /// `h_0..h_T` as `[H, (T+1)·B]`.
    hs: Vec<F>,
    /// `c_0..c_T` as `[H, (T+1)·B]`.
    cs: Vec<F>,
    /// Gate activations `[4H, T·B]`.
    gates: Vec<F>,
}

pub struct LstmGrads<F> {
    pub w_ih: Vec<F>,
    pub w_hh: Vec<F>,
    /// Equal for both biases (they enter as a sum).
    pub bias: Vec<F>,
    /// One `[I, B]` per step.
    pub inputs: Vec<Vec<F>>,
    pub h0: Vec<F>,
    pub c0: Vec<F>,
}

/// Gathers column block `t` (`width` columns) of a `[rows, blocks·width]` matrix.
fn block<F: Real>(m: &[F], rows: usize, blocks: usize, width: usize, t: usize) -> Vec<F> {
    (0..rows).flat_map(|r| m[r * blocks * width + t * width..][..width].iter().copied()).collect()
}

/// Reorders the rows of a `[4H, cols]` matrix from gate-major (`k·H + u`, PyTorch) to
/// unit-major (`4u + k`), so that each unit's four gates are one contiguous block.
fn unit_major<F: Real>(m: &[F], hidden: usize, cols: usize) -> Vec<F> {
    (0..4 * hidden).flat_map(|r| m[((r % 4) * hidden + r / 4) * cols..][..cols].iter().copied()).collect()
}

/// The inverse of [`unit_major`].
fn gate_major<F: Real>(m: &[F], hidden: usize, cols: usize) -> Vec<F> {
    (0..4 * hidden).flat_map(|r| m[(4 * (r % hidden) + r / hidden) * cols..][..cols].iter().copied()).collect()
}

/// Units per parallel task in the pointwise steps; fixed, so that the split (and the
/// numbers) do not depend on the thread count.
const UNITS_PER_TASK: usize = 16;

impl<F: Real> LstmForward<F> {
    /// Runs the sequence `inputs` (each `[I, B]`) from `h0`, `c0` (each `[H, B]`).
    pub fn run(w: &LstmWeights<F>, hidden: usize, input: usize, batch: usize, inputs: &[&[F]], h0: &[F], c0: &[F]) -> Self {
        let (h, b, steps) = (hidden, batch, inputs.len());
        let (tb, sb) = (steps * b, (steps + 1) * b);
        let mut xs = vec![F::zero(); input * tb];
        for (t, x) in inputs.iter().enumerate() {
            for i in 0..input {
                xs[i * tb + t * b..][..b].copy_from_slice(&x[i * b..][..b]);
            }
        }
        let mut hs = vec![F::zero(); h * sb];
        let mut cs = vec![F::zero(); h * sb];
        for u in 0..h {
            hs[u * sb..][..b].copy_from_slice(&h0[u * b..][..b]);
            cs[u * sb..][..b].copy_from_slice(&c0[u * b..][..b]);
        }
        let (w_ih, w_hh) = (unit_major(w.w_ih, h, input), unit_major(w.w_hh, h, h));
        let summed: Vec<F> = w.b_ih.iter().zip(w.b_hh).map(|(&a, &c)| a + c).collect();
        let bias = unit_major(&summed, h, 1);
        // every step's input projection at once
        let mut gates = vec![F::zero(); 4 * h * tb];
        matmul(4 * h, tb, input, &mut gates, tb, false, View::rows(&w_ih, input), View::rows(&xs, tb));
        let mut recurrent = vec![F::zero(); 4 * h * b];
        for t in 0..steps {
            matmul(4 * h, b, h, &mut recurrent, b, false, View::rows(&w_hh, h), View { data: &hs[t * b..], row: sb, col: 1 });
            // one pass over the units: gate non-linearities and the state update
            gates
                .par_chunks_mut(4 * tb)
                .zip(hs.par_chunks_mut(sb))
                .zip(cs.par_chunks_mut(sb))
                .enumerate()
                .with_min_len(UNITS_PER_TASK)
                .for_each(|(u, ((gates, hs), cs))| {
                    for j in 0..b {
                        let pre = |k: usize| gates[k * tb + t * b + j] + recurrent[(4 * u + k) * b + j] + bias[4 * u + k];
                        let (i, f, g, o) = (pre(0).sigmoid(), pre(1).sigmoid(), pre(2).tanh(), pre(3).sigmoid());
                        let c = f * cs[t * b + j] + i * g;
                        cs[(t + 1) * b + j] = c;
                        hs[(t + 1) * b + j] = o * c.tanh();
                        for (k, v) in [i, f, g, o].into_iter().enumerate() {
                            gates[k * tb + t * b + j] = v;
                        }
                    }
                });
        }
        LstmForward { hidden, input, batch, steps, xs, hs, cs, gates }
    }

    /// `h_t` (`t` in `0..=T`) as `[H, B]`.
    pub fn h(&self, t: usize) -> Vec<F> {
        block(&self.hs, self.hidden, self.steps + 1, self.batch, t)
    }
    /// `c_t` (`t` in `0..=T`) as `[H, B]`.
    pub fn c(&self, t: usize) -> Vec<F> {
        block(&self.cs, self.hidden, self.steps + 1, self.batch, t)
    }

    /// Backward through time from the gradients of the outputs `h_1..h_T` (`d_h[t]` for
    /// `h_{t+1}`) and of the final cell state.
    pub fn backward(&self, w: &LstmWeights<F>, d_h: &[Vec<F>], d_c_last: &[F]) -> LstmGrads<F> {
        let (h, b, steps, input) = (self.hidden, self.batch, self.steps, self.input);
        let (tb, sb) = (steps * b, (steps + 1) * b);
        let (w_ih, w_hh) = (unit_major(w.w_ih, h, input), unit_major(w.w_hh, h, h));
        let mut d_gates = vec![F::zero(); 4 * h * tb];
        let mut d_h_carry = vec![F::zero(); h * b];
        let mut d_c = d_c_last.to_vec();
        for t in (0..steps).rev() {
            let carry = &d_h_carry;
            d_gates
                .par_chunks_mut(4 * tb)
                .zip(d_c.par_chunks_mut(b))
                .enumerate()
                .with_min_len(UNITS_PER_TASK)
                .for_each(|(u, (d_gates, d_c))| {
                    let gates = &self.gates[4 * u * tb..];
                    let cs = &self.cs[u * sb..];
                    for j in 0..b {
                        let at = |k: usize| k * tb + t * b + j;
                        let (i, f, g, o) = (gates[at(0)], gates[at(1)], gates[at(2)], gates[at(3)]);
                        let (c, c_prev) = (cs[(t + 1) * b + j], cs[t * b + j]);
                        let dh = d_h[t][u * b + j] + carry[u * b + j];
                        let tc = c.tanh();
                        let one = F::one();
                        let dc = d_c[j] + dh * o * (one - tc * tc);
                        d_gates[at(0)] = dc * g * i * (one - i);
                        d_gates[at(1)] = dc * c_prev * f * (one - f);
                        d_gates[at(2)] = dc * i * (one - g * g);
                        d_gates[at(3)] = dh * tc * o * (one - o);
                        d_c[j] = dc * f;
                    }
                });
            matmul(h, b, 4 * h, &mut d_h_carry, b, false, View::transposed(&w_hh, h), View { data: &d_gates[t * b..], row: tb, col: 1 });
        }
        // the weight gradients of all steps at once
        let mut d_w_ih = vec![F::zero(); 4 * h * input];
        matmul(4 * h, input, tb, &mut d_w_ih, input, false, View::rows(&d_gates, tb), View::transposed(&self.xs, tb));
        let mut d_w_hh = vec![F::zero(); 4 * h * h];
        matmul(4 * h, h, tb, &mut d_w_hh, h, false, View::rows(&d_gates, tb), View { data: &self.hs, row: 1, col: sb });
        let bias: Vec<F> = d_gates.chunks(tb).map(|row| row.iter().fold(F::zero(), |a, &v| a + v)).collect();
        let mut d_xs = vec![F::zero(); input * tb];
        matmul(input, tb, 4 * h, &mut d_xs, tb, false, View::transposed(&w_ih, input), View::rows(&d_gates, tb));
        let inputs = (0..steps).map(|t| block(&d_xs, input, steps, b, t)).collect();
        LstmGrads {
            w_ih: gate_major(&d_w_ih, h, input),
            w_hh: gate_major(&d_w_hh, h, h),
            bias: gate_major(&bias, h, 1),
            inputs,
            h0: d_h_carry,
            c0: d_c,
        }
    }
}
