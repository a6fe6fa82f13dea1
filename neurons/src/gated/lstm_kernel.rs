//! The LSTM over a whole sequence. Each step is one product `[W_ih | W_hh]·[x_t ; h_t]`
//! and a fused pointwise gate step; backward through time is one product `W_hhᵀ·δ` per
//! step, the pointwise gate gradients, and the weight gradients added while the step's
//! values are in cache. The step products run on weights packed once per sequence
//! (`host_op::packed`). Units are cut into fixed chunks that the threads of a [`team`]
//! claim one at a time at each step, so a step needs one barrier and the numbers do not
//! depend on the thread count (a chunk computes the same whoever takes it). Gates in
//! PyTorch's order (i, f, g, o); every buffer step-major, batch last (`[T][rows][B]`), so
//! that a step's values are contiguous.

use elmlab_host_ops::matmul::{matmul_here, View};
use elmlab_host_ops::packed::PackedRows;
use crate::fused::slots::StepSlots;
use crate::fused::team::{self, Claims, Shared};
use crate::fused::{cpu, Real};

/// The parameters, as `torch.nn.LSTM` lays them out.
pub struct LstmWeights<'a, F> {
    pub w_ih: &'a [F],
    pub w_hh: &'a [F],
    pub b_ih: &'a [F],
    pub b_hh: &'a [F],
}

/// Units per chunk: the weight-gradient product (`gemm`, inner size B) runs at 131–138
/// GFLOP/s on one core at 4·64 rows, 126 at 4·32, 108 at 4·16 (the packed step products
/// do not care: 160–164 at any of these); fewer, larger chunks balance less finely.
const UNITS_PER_CHUNK: usize = 64;

/// What the forward pass keeps for backward: the inputs and states of every step and the
/// gate activations (no other intermediates), and the weights as the steps used them.
pub struct LstmForward<F: Real> {
    pub hidden: usize,
    pub input: usize,
    pub batch: usize,
    pub steps: usize,
    /// `[x_t ; h_t]` for `t` in `0..=T` as `[T+1][I+H][B]` (`x_T` is zero): the right
    /// operand of step `t`'s product, and where the outputs are.
    xh: Vec<F>,
    /// `c_0..c_T` as `[T+1][H][B]` (with `forward_only`, the last two: step `t` in slot `t % 2`).
    cs: Vec<F>,
    /// Gate activations `[T][4H][B]`, rows unit-major (`4u + k`); none with `forward_only`.
    gates: Vec<F>,
    /// No backward pass follows (evaluation): the gates of a chunk go to a buffer of the
    /// thread's own that stays in its cache (every step's gates were 13 MB a batch at
    /// B 32, H 256, T 100, written and never read), and only two steps of `c` are kept.
    forward_only: bool,
    /// `[W_ih | W_hh]` as `[4H, I+H]`, rows unit-major.
    w: Vec<F>,
}

pub struct LstmGrads<F> {
    pub w_ih: Vec<F>,
    pub w_hh: Vec<F>,
    /// Equal for both biases (they enter as a sum).
    pub bias: Vec<F>,
    /// One `[I, B]` per step (none unless asked for).
    pub inputs: Vec<Vec<F>>,
    pub h0: Vec<F>,
    pub c0: Vec<F>,
}

/// Gate row `k·H + u` (PyTorch) of unit-major row `r = 4u + k`.
fn gate_major_row(r: usize, hidden: usize) -> usize {
    (r % 4) * hidden + r / 4
}

/// The units of chunk `c` of `hidden`.
fn chunk_units(c: usize, hidden: usize) -> std::ops::Range<usize> {
    c * UNITS_PER_CHUNK..((c + 1) * UNITS_PER_CHUNK).min(hidden)
}

impl<F: Real> LstmForward<F> {
    /// Runs the sequence `inputs` (each `[I, B]`) from `h0`, `c0` (each `[H, B]`).
    pub fn run(w: &LstmWeights<F>, hidden: usize, input: usize, batch: usize, inputs: &[&[F]], h0: &[F], c0: &[F]) -> Self {
        Self::run_with(w, hidden, input, batch, inputs.len(), |t, out| out.copy_from_slice(&inputs[t][..input * batch]), h0, c0, false)
    }

    /// [`Self::run`] over `steps` steps whose inputs `fill(t, out)` writes (`out` is `[I, B]`,
    /// where the step's product reads it); with `forward_only`, keeping nothing for a
    /// backward pass (the same outputs and final state).
    #[allow(clippy::too_many_arguments)]
    pub fn run_with(w: &LstmWeights<F>, hidden: usize, input: usize, batch: usize, steps: usize, fill: impl Fn(usize, &mut [F]), h0: &[F], c0: &[F], forward_only: bool) -> Self {
        let (h, i, b) = (hidden, input, batch);
        let c_slots = StepSlots::new(!forward_only);
        let c_slot = |t: usize| c_slots.of(t);
        let k = i + h;
        // every buffer below is written completely before it is read (x_T, never read, is zeroed)
        let mut xh = F::scratch((steps + 1) * k * b);
        xh[steps * k * b..steps * k * b + i * b].fill(F::zero());
        for t in 0..steps {
            fill(t, &mut xh[t * k * b..][..i * b]);
        }
        xh[i * b..k * b].copy_from_slice(&h0[..h * b]);
        let mut cs = F::scratch(c_slots.count(steps + 1) * h * b);
        cs[..h * b].copy_from_slice(&c0[..h * b]);
        let mut joined = vec![F::zero(); 4 * h * k];
        for (r, row) in joined.chunks_mut(k).enumerate() {
            let g = gate_major_row(r, h);
            row[..i].copy_from_slice(&w.w_ih[g * i..][..i]);
            row[i..].copy_from_slice(&w.w_hh[g * h..][..h]);
        }
        let bias: Vec<F> = (0..4 * h).map(|r| w.b_ih[gate_major_row(r, h)] + w.b_hh[gate_major_row(r, h)]).collect();
        let step_weights = PackedRows::new(4 * h, k, View::rows(&joined, k));
        let mut gates = if forward_only { Vec::new() } else { F::scratch(steps * 4 * h * b) };
        let chunks = h.div_ceil(UNITS_PER_CHUNK);
        let threads = team::size_for(chunks);
        let claims = Claims::new(steps, chunks, threads);
        {
            let (xh_s, cs_s, gates_s) = (Shared::new(&mut xh), Shared::new(&mut cs), Shared::new(&mut gates));
            let (step_weights, bias) = (&step_weights, &bias);
            team::run(threads, |rank, barrier| {
                let mut own_gates = vec![F::zero(); if forward_only { 4 * UNITS_PER_CHUNK * b } else { 0 }];
                for t in 0..steps {
                    for c in claims.take(t, rank) {
                        let units = chunk_units(c, h);
                        let rows = 4 * units.start..4 * units.end;
                        // SAFETY: step t's rows of chunk c are this thread's alone (it claimed c); [x_t ; h_t]
                        // and c_t were finished before the last barrier and are only read now;
                        // h_{t+1}, c_{t+1} of these units are written here only (c_t and c_{t+1}
                        // are two slots also where only two are kept).
                        let (pre, xh_t, c_prev, c_next, h_next) = unsafe {
                            (
                                if forward_only { &mut own_gates[..rows.len() * b] } else { gates_s.write(t * 4 * h * b + rows.start * b..t * 4 * h * b + rows.end * b) },
                                xh_s.read(t * k * b..(t + 1) * k * b),
                                cs_s.read(c_slot(t) * h * b + units.start * b..c_slot(t) * h * b + units.end * b),
                                cs_s.write(c_slot(t + 1) * h * b + units.start * b..c_slot(t + 1) * h * b + units.end * b),
                                xh_s.write((t + 1) * k * b + (i + units.start) * b..(t + 1) * k * b + (i + units.end) * b),
                            )
                        };
                        step_weights.product_here(rows.clone(), b, pre, b, false, View::rows(xh_t, b));
                        gate_step(pre, c_prev, c_next, h_next, &bias[rows], b);
                    }
                    barrier.wait();
                }
            });
        }
        LstmForward { hidden, input, batch, steps, xh, cs, gates, w: joined, forward_only }
    }

    /// `h_t` (`t` in `0..=T`) as `[H, B]`, where it lies in `[x_t ; h_t]`.
    fn h_of(&self, t: usize) -> &[F] {
        let (k, b) = (self.input + self.hidden, self.batch);
        &self.xh[t * k * b + self.input * b..(t + 1) * k * b]
    }
    /// `h_t` (`t` in `0..=T`) as `[H, B]`.
    pub fn h(&self, t: usize) -> Vec<F> {
        self.h_of(t).to_vec()
    }
    /// The outputs `h_1..h_T` as one step-major block `[T][H][B]`.
    pub fn outputs(&self) -> Vec<F> {
        // one copy per step (a value at a time through an iterator, 0.75–1.25 ms of a 16 ms
        // inference batch at B 32, H 256, T 100)
        let mut out = Vec::with_capacity(self.steps * self.hidden * self.batch);
        (1..=self.steps).for_each(|t| out.extend_from_slice(self.h_of(t)));
        out
    }
    /// `c_t` (`t` in `0..=T`; with `forward_only`, one of the last two) as `[H, B]`.
    pub fn c(&self, t: usize) -> Vec<F> {
        let (hb, slot) = (self.hidden * self.batch, StepSlots::new(!self.forward_only).after(t, self.steps + 1));
        self.cs[slot * hb..(slot + 1) * hb].to_vec()
    }

    /// Backward through time from the gradients of the outputs `h_1..h_T` (one step-major
    /// block `[T][H][B]`, step `t` for `h_{t+1}`) and of the final cell state. The inputs'
    /// gradients are formed only with `input_grads` (a first layer reads data, which needs none).
    pub fn backward(&self, d_h: &[F], d_c_last: &[F], input_grads: bool) -> LstmGrads<F> {
        assert!(!self.forward_only, "backward through a forward-only LSTM pass, which kept no history");
        let (h, i, b, steps) = (self.hidden, self.input, self.batch, self.steps);
        let (k, g) = (i + h, 4 * h);
        // W_hhᵀ `[H, 4H]`: the product that carries δ back to h_{t−1}
        let w_hh_t = PackedRows::new(h, g, View::transposed(&self.w[i..], k));
        // written completely, step by step, before it is read
        let mut d_pre = F::scratch(steps * g * b);
        let mut d_w = vec![F::zero(); g * k];
        // δ summed over the steps lane by lane (one vector add per row and step; a sum along
        // each row at every step was a serial chain of B additions), then along the rows
        let mut bias_lanes = vec![F::zero(); g * b];
        let mut d_c = d_c_last[..h * b].to_vec();
        let mut d_h0 = vec![F::zero(); h * b];
        let chunks = h.div_ceil(UNITS_PER_CHUNK);
        let threads = team::size_for(chunks);
        let claims = Claims::new(steps, chunks, threads);
        {
            let (d_pre_s, d_w_s, bias_lanes_s) = (Shared::new(&mut d_pre), Shared::new(&mut d_w), Shared::new(&mut bias_lanes));
            let (d_c_s, d_h0_s) = (Shared::new(&mut d_c), Shared::new(&mut d_h0));
            let w_hh_t = &w_hh_t;
            team::run(threads, |rank, barrier| {
                let mut carry = vec![F::zero(); UNITS_PER_CHUNK * b];
                for t in (0..steps).rev() {
                    for c in claims.take(t, rank) {
                        let hu = chunk_units(c, h);
                        let rows = 4 * hu.start..4 * hu.end;
                        let carry = &mut carry[..hu.len() * b];
                        if t + 1 < steps {
                            // SAFETY: δ_{t+1} (all rows) was finished before the last barrier and is only read now
                            let d_next = unsafe { d_pre_s.read((t + 1) * g * b..(t + 2) * g * b) };
                            w_hh_t.product_here(hu.clone(), b, carry, b, false, View::rows(d_next, b));
                        } else {
                            carry.fill(F::zero());
                        }
                        // SAFETY: chunk c is this thread's alone at step t (it claimed c): its
                        // units' rows of step t, of the running d_c, of the weight gradient
                        // and of the bias sums.
                        let (d_pre_t, d_c, d_w, lanes) = unsafe {
                            (
                                d_pre_s.write(t * g * b + rows.start * b..t * g * b + rows.end * b),
                                d_c_s.write(hu.start * b..hu.end * b),
                                d_w_s.write(rows.start * k..rows.end * k),
                                bias_lanes_s.write(rows.start * b..rows.end * b),
                            )
                        };
                        let gates = &self.gates[t * g * b + rows.start * b..t * g * b + rows.end * b];
                        let c_prev = &self.cs[t * h * b + hu.start * b..t * h * b + hu.end * b];
                        let c_next = &self.cs[(t + 1) * h * b + hu.start * b..(t + 1) * h * b + hu.end * b];
                        gate_step_backward(d_pre_t, d_c, gates, c_prev, c_next, &d_h[t * h * b + hu.start * b..t * h * b + hu.end * b], carry, b);
                        // the weight gradients of these rows, while δ_t and [x_t ; h_t] are in cache
                        let xh_t = &self.xh[t * k * b..(t + 1) * k * b];
                        matmul_here(rows.len(), k, b, d_w, k, t + 1 < steps, View::rows(d_pre_t, b), View::transposed(xh_t, b));
                        lanes.iter_mut().zip(d_pre_t.iter()).for_each(|(sum, &d)| *sum += d);
                    }
                    barrier.wait();
                }
                // dh_0 from δ_0
                for c in team::owned(rank, threads, chunks).filter(|_| steps > 0) {
                    let hu = chunk_units(c, h);
                    // SAFETY: δ_0 is only read now; these rows of dh_0 are this thread's
                    let (d_first, d_h0) = unsafe { (d_pre_s.read(0..g * b), d_h0_s.write(hu.start * b..hu.end * b)) };
                    w_hh_t.product_here(hu, b, d_h0, b, false, View::rows(d_first, b));
                }
            });
        }
        let d_bias: Vec<F> = bias_lanes.chunks(b.max(1)).map(|row| row.iter().fold(F::zero(), |a, &v| a + v)).collect();
        let inputs = if input_grads { self.input_grads(&d_pre) } else { Vec::new() };
        let (mut w_ih, mut w_hh, mut bias) = (vec![F::zero(); g * i], vec![F::zero(); g * h], vec![F::zero(); g]);
        for r in 0..g {
            let to = gate_major_row(r, h);
            w_ih[to * i..][..i].copy_from_slice(&d_w[r * k..][..i]);
            w_hh[to * h..][..h].copy_from_slice(&d_w[r * k + i..][..h]);
            bias[to] = d_bias[r];
        }
        F::recycle(d_pre);
        LstmGrads { w_ih, w_hh, bias, inputs, h0: d_h0, c0: d_c }
    }

    /// `W_ihᵀ·δ_t` for every step, the steps shared out over a team.
    fn input_grads(&self, d_pre: &[F]) -> Vec<Vec<F>> {
        let (h, i, b, steps) = (self.hidden, self.input, self.batch, self.steps);
        let (k, g) = (i + h, 4 * h);
        let threads = team::size_for(steps);
        let mut per_rank = team::run(threads, |rank, _| {
            team::owned(rank, threads, steps)
                .map(|t| {
                    let mut d_x = vec![F::zero(); i * b];
                    matmul_here(i, b, g, &mut d_x, b, false, View::transposed(&self.w, k), View::rows(&d_pre[t * g * b..(t + 1) * g * b], b));
                    d_x
                })
                .collect::<Vec<_>>()
                .into_iter()
        });
        (0..steps).map(|t| per_rank[t % threads].next().expect("every step once")).collect()
    }
}

impl<F: Real> Drop for LstmForward<F> {
    fn drop(&mut self) {
        for buffer in [&mut self.xh, &mut self.cs, &mut self.gates] {
            F::recycle(std::mem::take(buffer));
        }
    }
}

/// One chunk's gate step: `pre` (its rows `[4u + k][B]`) holds the products and receives
/// the activations; `c_{t+1}`, `h_{t+1}` of its units go to `c_next`, `h_next`. Compiled for
/// AVX-512 or AVX2 where the CPU has them (wider registers; both with FMA, so their
/// exponentials use fused multiply-adds: the same numbers on either, within f32 rounding
/// of the plain build's).
fn gate_step<F: Real>(pre: &mut [F], c_prev: &[F], c_next: &mut [F], h_next: &mut [F], bias: &[F], b: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
        unsafe fn avx512<F: Real>(pre: &mut [F], c_prev: &[F], c_next: &mut [F], h_next: &mut [F], bias: &[F], b: usize) {
            gate_step_body::<F, true>(pre, c_prev, c_next, h_next, bias, b)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<F: Real>(pre: &mut [F], c_prev: &[F], c_next: &mut [F], h_next: &mut [F], bias: &[F], b: usize) {
            gate_step_body::<F, true>(pre, c_prev, c_next, h_next, bias, b)
        }
        if cpu::avx512_fma() {
            // SAFETY: the CPU has AVX-512F/VL and FMA, checked just above.
            return unsafe { avx512(pre, c_prev, c_next, h_next, bias, b) };
        }
        if cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { avx2(pre, c_prev, c_next, h_next, bias, b) };
        }
    }
    gate_step_body::<F, false>(pre, c_prev, c_next, h_next, bias, b)
}

/// Sequences per block of the pointwise steps: copied into fixed-width local arrays, the
/// loops vectorise (over the rows' slices directly they did not: LLVM gave up on
/// checking that eight slices do not overlap, and the step ran scalar).
const LANES: usize = 16;

/// Copies up to `LANES` values from `from` into a block (the rest stay zero). A full
/// block is one fixed-size copy (vector moves); only a batch's last, partial block pays
/// for a copy of variable length (a `memcpy` call, which had made the gate steps 3× slower).
#[inline(always)]
fn load<F: Real>(from: &[F]) -> [F; LANES] {
    if let Ok(full) = <[F; LANES]>::try_from(from) {
        return full;
    }
    let mut block = [F::zero(); LANES];
    block[..from.len()].copy_from_slice(from);
    block
}

#[inline(always)]
fn store<F: Real>(to: &mut [F], block: &[F; LANES]) {
    if let Ok(full) = <&mut [F; LANES]>::try_from(&mut *to) {
        *full = *block;
        return;
    }
    let n = to.len();
    to.copy_from_slice(&block[..n]);
}

/// `FMA`: compiled with fused multiply-adds, so the nonlinearities may use them.
#[inline(always)]
fn gate_step_body<F: Real, const FMA: bool>(pre: &mut [F], c_prev: &[F], c_next: &mut [F], h_next: &mut [F], bias: &[F], b: usize) {
    let sigmoid = |x: F| if FMA { x.sigmoid_fused() } else { x.sigmoid() };
    let tanh = |x: F| if FMA { x.tanh_fused() } else { x.tanh() };
    for (u, bias) in bias.chunks_exact(4).enumerate() {
        for j in (0..b).step_by(LANES) {
            let cols = j..(j + LANES).min(b);
            let row = |k: usize| 4 * u * b + k * b + cols.start..4 * u * b + k * b + cols.end;
            let (mut i, mut f, mut g, mut o) = (load(&pre[row(0)]), load(&pre[row(1)]), load(&pre[row(2)]), load(&pre[row(3)]));
            let mut c = load(&c_prev[u * b + cols.start..u * b + cols.end]);
            let mut h = [F::zero(); LANES];
            for l in 0..LANES {
                i[l] = sigmoid(i[l] + bias[0]);
                f[l] = sigmoid(f[l] + bias[1]);
                g[l] = tanh(g[l] + bias[2]);
                o[l] = sigmoid(o[l] + bias[3]);
                c[l] = f[l] * c[l] + i[l] * g[l];
                h[l] = o[l] * tanh(c[l]);
            }
            for (k, block) in [i, f, g, o].iter().enumerate() {
                store(&mut pre[row(k)], block);
            }
            store(&mut c_next[u * b + cols.start..u * b + cols.end], &c);
            store(&mut h_next[u * b + cols.start..u * b + cols.end], &h);
        }
    }
}

/// One chunk's backward gate step: the gate pre-activation gradients into `d_pre` (rows
/// `[4u + k][B]`), the cell gradient carried back in `d_c`. `d_h` is the output's gradient,
/// `carry` what came back through `W_hh` from the next step. AVX-512/AVX2 like [`gate_step`].
#[allow(clippy::too_many_arguments)]
fn gate_step_backward<F: Real>(d_pre: &mut [F], d_c: &mut [F], gates: &[F], c_prev: &[F], c: &[F], d_h: &[F], carry: &[F], b: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn avx512<F: Real>(d_pre: &mut [F], d_c: &mut [F], gates: &[F], c_prev: &[F], c: &[F], d_h: &[F], carry: &[F], b: usize) {
            gate_step_backward_body::<F, true>(d_pre, d_c, gates, c_prev, c, d_h, carry, b)
        }
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn avx2<F: Real>(d_pre: &mut [F], d_c: &mut [F], gates: &[F], c_prev: &[F], c: &[F], d_h: &[F], carry: &[F], b: usize) {
            gate_step_backward_body::<F, true>(d_pre, d_c, gates, c_prev, c, d_h, carry, b)
        }
        if cpu::avx512_fma() {
            // SAFETY: the CPU has AVX-512F/VL and FMA, checked just above.
            return unsafe { avx512(d_pre, d_c, gates, c_prev, c, d_h, carry, b) };
        }
        if cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { avx2(d_pre, d_c, gates, c_prev, c, d_h, carry, b) };
        }
    }
    gate_step_backward_body::<F, false>(d_pre, d_c, gates, c_prev, c, d_h, carry, b)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gate_step_backward_body<F: Real, const FMA: bool>(d_pre: &mut [F], d_c: &mut [F], gates: &[F], c_prev: &[F], c: &[F], d_h: &[F], carry: &[F], b: usize) {
    let one = F::one();
    for u in 0..d_c.len() / b.max(1) {
        for j in (0..b).step_by(LANES) {
            let cols = u * b + j..u * b + (j + LANES).min(b);
            let row = |k: usize| 4 * u * b + k * b + j..4 * u * b + k * b + cols.end - u * b;
            let (i, f, g, o) = (load(&gates[row(0)]), load(&gates[row(1)]), load(&gates[row(2)]), load(&gates[row(3)]));
            let (c_prev, c, d_h, carry) = (load(&c_prev[cols.clone()]), load(&c[cols.clone()]), load(&d_h[cols.clone()]), load(&carry[cols.clone()]));
            let mut d_c_block = load(&d_c[cols.clone()]);
            let (mut di, mut df, mut dg, mut d_o) = ([F::zero(); LANES], [F::zero(); LANES], [F::zero(); LANES], [F::zero(); LANES]);
            for l in 0..LANES {
                let dh = d_h[l] + carry[l];
                // tanh(c) as the forward formed it
                let tc = if FMA { c[l].tanh_fused() } else { c[l].tanh() };
                let dc = d_c_block[l] + dh * o[l] * (one - tc * tc);
                di[l] = dc * g[l] * i[l] * (one - i[l]);
                df[l] = dc * c_prev[l] * f[l] * (one - f[l]);
                dg[l] = dc * i[l] * (one - g[l] * g[l]);
                d_o[l] = dh * tc * o[l] * (one - o[l]);
                d_c_block[l] = dc * f[l];
            }
            for (k, block) in [di, df, dg, d_o].iter().enumerate() {
                store(&mut d_pre[row(k)], block);
            }
            store(&mut d_c[cols], &d_c_block);
        }
    }
}
