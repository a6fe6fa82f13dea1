//! The LSTM layer around its two launches (kernels/lstm.cu), for every place the kernels
//! run ([`Memory`]). Parameters as `torch.nn.LSTM` lays them out (gate-major rows i, f, g,
//! o); inside, as the CPU kernel keeps them, joined `[W_ih | W_hh]` with rows unit-major.

use crate::args::LstmArgs;
use crate::driver::{Kernel, Memory};
use crate::KernelError;

/// Gate row `k·H + u` (PyTorch) of unit-major row `r = 4u + k`.
fn gate_major_row(r: usize, hidden: usize) -> usize {
    (r % 4) * hidden + r / 4
}

/// An LSTM layer with its weights in place.
pub struct LstmLayerBuffers<M: Memory> {
    hidden: usize,
    inputs: usize,
    w: M::Buf<f32>,
    bias: M::Buf<f32>,
}

/// What a forward pass keeps for the backward, in place.
pub struct LstmSequence<M: Memory> {
    pub steps: usize,
    pub batch: usize,
    x: M::Buf<f32>,
    hs: M::Buf<f32>,
    cs: M::Buf<f32>,
    gates: M::Buf<f32>,
}

/// The gradients, as `torch.nn.LSTM` lays out the parameters (`inputs` `[T, I, B]`, empty
/// unless asked for).
#[derive(Debug)]
pub struct LstmGrads {
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    /// Equal for both biases (they enter as a sum).
    pub bias: Vec<f32>,
    pub inputs: Vec<f32>,
    pub h0: Vec<f32>,
    pub c0: Vec<f32>,
}

fn check(what: &str, got: usize, want: usize) -> Result<(), KernelError> {
    if got == want {
        Ok(())
    } else {
        Err(KernelError::Shape(format!("{what}: {got} values, the LSTM needs {want}")))
    }
}

impl<M: Memory> LstmLayerBuffers<M> {
    pub fn new(mem: &M, hidden: usize, inputs: usize, w_ih: &[f32], w_hh: &[f32], b_ih: &[f32], b_hh: &[f32]) -> Result<Self, KernelError> {
        let (h, i, k) = (hidden, inputs, inputs + hidden);
        check("w_ih", w_ih.len(), 4 * h * i)?;
        check("w_hh", w_hh.len(), 4 * h * h)?;
        check("b_ih", b_ih.len(), 4 * h)?;
        check("b_hh", b_hh.len(), 4 * h)?;
        if 4 * h * k >= i32::MAX as usize {
            return Err(KernelError::Unsupported(format!("{} weights (the CUDA kernels index rows with 32 bits)", 4 * h * k)));
        }
        let mut joined = vec![0.0f32; 4 * h * k];
        let mut bias = vec![0.0f32; 4 * h];
        for (r, row) in joined.chunks_mut(k).enumerate() {
            let g = gate_major_row(r, h);
            row[..i].copy_from_slice(&w_ih[g * i..][..i]);
            row[i..].copy_from_slice(&w_hh[g * h..][..h]);
            bias[r] = b_ih[g] + b_hh[g];
        }
        Ok(LstmLayerBuffers { hidden, inputs, w: mem.upload(&joined)?, bias: mem.upload(&bias)? })
    }

    fn args(&self, mem: &M, run: &LstmSequence<M>) -> LstmArgs {
        LstmArgs {
            w: mem.address(&self.w),
            bias: mem.address(&self.bias),
            x: mem.address(&run.x),
            hs: mem.address(&run.hs),
            cs: mem.address(&run.cs),
            gates: mem.address(&run.gates),
            hidden: self.hidden as i32,
            inputs: self.inputs as i32,
            batch: run.batch as i32,
            steps: run.steps as i32,
            ..Default::default()
        }
    }

    /// The sequence `x` (`[T, I, B]`) from `h0`, `c0` (`[H, B]`), one launch.
    pub fn forward(&self, mem: &M, x: &[f32], steps: usize, batch: usize, h0: &[f32], c0: &[f32]) -> Result<LstmSequence<M>, KernelError> {
        let (h, i, b) = (self.hidden, self.inputs, batch);
        check("inputs [T, I, B]", x.len(), steps * i * b)?;
        check("h0", h0.len(), h * b)?;
        check("c0", c0.len(), h * b)?;
        // the states of every step, the initial ones first
        let with_start = |first: &[f32]| {
            let mut v = vec![0.0f32; (steps + 1) * h * b];
            v[..h * b].copy_from_slice(first);
            mem.upload(&v)
        };
        let run = LstmSequence { steps, batch, x: mem.upload(x)?, hs: with_start(h0)?, cs: with_start(c0)?, gates: mem.zeros(steps * 4 * h * b)? };
        if steps > 0 {
            let barrier = mem.zeros::<u32>(2)?;
            let mut a = self.args(mem, &run);
            a.barrier = mem.address(&barrier);
            mem.launch(Kernel::LstmForward, &a, steps * 4 * h * b)?;
        }
        Ok(run)
    }

    /// Backward through time from the gradients of `h_1..h_T` (`[T, H, B]`) and `c_T`.
    pub fn backward(&self, mem: &M, run: &LstmSequence<M>, d_h: &[f32], d_c_last: &[f32], input_grads: bool) -> Result<LstmGrads, KernelError> {
        let (h, i, b, t) = (self.hidden, self.inputs, run.batch, run.steps);
        let (k, g) = (i + h, 4 * h);
        check("gradient of the outputs [T, H, B]", d_h.len(), t * h * b)?;
        check("gradient of c_T", d_c_last.len(), h * b)?;
        let d_h_buf = mem.upload(d_h)?;
        let d_c = mem.upload(d_c_last)?;
        let d_pre = mem.zeros::<f32>(t * g * b)?;
        let d_h0 = mem.zeros::<f32>(h * b)?;
        let d_w = mem.zeros::<f32>(g * k)?;
        let d_bias = mem.zeros::<f32>(g)?;
        let d_x = mem.zeros::<f32>(if input_grads { t * i * b } else { 1 })?;
        if t > 0 {
            let barrier = mem.zeros::<u32>(2)?;
            let mut a = self.args(mem, run);
            a.d_h = mem.address(&d_h_buf);
            a.d_c = mem.address(&d_c);
            a.d_pre = mem.address(&d_pre);
            a.d_h0 = mem.address(&d_h0);
            a.d_w = mem.address(&d_w);
            a.d_bias = mem.address(&d_bias);
            a.d_x = if input_grads { mem.address(&d_x) } else { 0 };
            a.barrier = mem.address(&barrier);
            mem.launch(Kernel::LstmBackward, &a, (h * b).max(g * k / 16))?;
        }
        let (d_w, d_bias) = (mem.download(&d_w)?, mem.download(&d_bias)?);
        let (mut w_ih, mut w_hh, mut bias) = (vec![0.0f32; g * i], vec![0.0f32; g * h], vec![0.0f32; g]);
        for r in 0..g {
            let to = gate_major_row(r, h);
            w_ih[to * i..][..i].copy_from_slice(&d_w[r * k..][..i]);
            w_hh[to * h..][..h].copy_from_slice(&d_w[r * k + i..][..h]);
            bias[to] = d_bias[r];
        }
        Ok(LstmGrads { w_ih, w_hh, bias, inputs: if input_grads { mem.download(&d_x)? } else { Vec::new() }, h0: mem.download(&d_h0)?, c0: mem.download(&d_c)? })
    }
}

impl<M: Memory> LstmSequence<M> {
    /// `h_1..h_T`, `[T, H, B]`, and `c_T`, `[H, B]`.
    pub fn results(&self, mem: &M, hidden: usize) -> Result<(Vec<f32>, Vec<f32>), KernelError> {
        let (state, t) = (hidden * self.batch, self.steps);
        Ok((mem.download_range(&self.hs, state..(t + 1) * state)?, mem.download_range(&self.cs, t * state..(t + 1) * state)?))
    }
}
