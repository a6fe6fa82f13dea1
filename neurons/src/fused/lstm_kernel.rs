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
                    let bias = &bias[4 * u..4 * u + 4];
                    let recurrent = &recurrent[4 * u * b..(4 * u + 4) * b];
                    unit_forward(gates, hs, cs, recurrent, bias, t, b, tb);
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
                    let (gates, cs) = (&self.gates[4 * u * tb..(4 * u + 4) * tb], &self.cs[u * sb..(u + 1) * sb]);
                    let (d_h, carry) = (&d_h[t][u * b..(u + 1) * b], &carry[u * b..(u + 1) * b]);
                    unit_backward(d_gates, d_c, gates, cs, d_h, carry, t, b, tb);
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

/// One unit's gate step at step `t`: `gates` (its four rows `[4, T·B]`) holds the input
/// projections and receives the activations; `c_t`, `h_t` go into `cs`, `hs`. Compiled
/// for AVX2 where the CPU has it (wider registers, the same arithmetic and numbers).
#[allow(clippy::too_many_arguments)]
fn unit_forward<F: Real>(gates: &mut [F], hs: &mut [F], cs: &mut [F], recurrent: &[F], bias: &[F], t: usize, b: usize, tb: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn wide<F: Real>(gates: &mut [F], hs: &mut [F], cs: &mut [F], recurrent: &[F], bias: &[F], t: usize, b: usize, tb: usize) {
            unit_forward_body(gates, hs, cs, recurrent, bias, t, b, tb)
        }
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { wide(gates, hs, cs, recurrent, bias, t, b, tb) };
    }
    unit_forward_body(gates, hs, cs, recurrent, bias, t, b, tb)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn unit_forward_body<F: Real>(gates: &mut [F], hs: &mut [F], cs: &mut [F], recurrent: &[F], bias: &[F], t: usize, b: usize, tb: usize) {
    // exact-length rows, so that the loop has no bounds checks and vectorises
    let (gi, rest) = gates.split_at_mut(tb);
    let (gf, rest) = rest.split_at_mut(tb);
    let (gg, go) = rest.split_at_mut(tb);
    let cols = t * b..(t + 1) * b;
    let (gi, gf, gg, go) = (&mut gi[cols.clone()], &mut gf[cols.clone()], &mut gg[cols.clone()], &mut go[cols]);
    let (ri, rf, rg, ro) = (&recurrent[..b], &recurrent[b..2 * b], &recurrent[2 * b..3 * b], &recurrent[3 * b..4 * b]);
    let (c_prev, c_next) = cs[t * b..(t + 2) * b].split_at_mut(b);
    let h_next = &mut hs[(t + 1) * b..(t + 2) * b];
    for j in 0..b {
        let i = (gi[j] + ri[j] + bias[0]).sigmoid();
        let f = (gf[j] + rf[j] + bias[1]).sigmoid();
        let g = (gg[j] + rg[j] + bias[2]).tanh();
        let o = (go[j] + ro[j] + bias[3]).sigmoid();
        let c = f * c_prev[j] + i * g;
        c_next[j] = c;
        h_next[j] = o * c.tanh();
        (gi[j], gf[j], gg[j], go[j]) = (i, f, g, o);
    }
}

/// One unit's backward gate step at step `t`: the four gate gradients into `d_gates`
/// (`[4, T·B]`), the cell gradient carried back in `d_c` (`[B]`). AVX2 like [`unit_forward`].
#[allow(clippy::too_many_arguments)]
fn unit_backward<F: Real>(d_gates: &mut [F], d_c: &mut [F], gates: &[F], cs: &[F], d_h: &[F], carry: &[F], t: usize, b: usize, tb: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn wide<F: Real>(d_gates: &mut [F], d_c: &mut [F], gates: &[F], cs: &[F], d_h: &[F], carry: &[F], t: usize, b: usize, tb: usize) {
            unit_backward_body(d_gates, d_c, gates, cs, d_h, carry, t, b, tb)
        }
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { wide(d_gates, d_c, gates, cs, d_h, carry, t, b, tb) };
    }
    unit_backward_body(d_gates, d_c, gates, cs, d_h, carry, t, b, tb)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn unit_backward_body<F: Real>(d_gates: &mut [F], d_c: &mut [F], gates: &[F], cs: &[F], d_h: &[F], carry: &[F], t: usize, b: usize, tb: usize) {
    let (di, rest) = d_gates.split_at_mut(tb);
    let (df, rest) = rest.split_at_mut(tb);
    let (dg, d_o) = rest.split_at_mut(tb);
    let cols = t * b..(t + 1) * b;
    let (di, df, dg, d_o) = (&mut di[cols.clone()], &mut df[cols.clone()], &mut dg[cols.clone()], &mut d_o[cols.clone()]);
    let (gi, gf, gg, go) = (&gates[cols.clone()], &gates[tb..][cols.clone()], &gates[2 * tb..][cols.clone()], &gates[3 * tb..][cols]);
    let (c_prev, c) = (&cs[t * b..(t + 1) * b], &cs[(t + 1) * b..(t + 2) * b]);
    let (d_c, d_h, carry) = (&mut d_c[..b], &d_h[..b], &carry[..b]);
    let one = F::one();
    for j in 0..b {
        let (i, f, g, o) = (gi[j], gf[j], gg[j], go[j]);
        let dh = d_h[j] + carry[j];
        let tc = c[j].tanh();
        let dc = d_c[j] + dh * o * (one - tc * tc);
        di[j] = dc * g * i * (one - i);
        df[j] = dc * c_prev[j] * f * (one - f);
        dg[j] = dc * i * (one - g * g);
        d_o[j] = dh * tc * o * (one - o);
        d_c[j] = dc * f;
    }
}
