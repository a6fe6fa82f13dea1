//! What a layer's pass needs around the two launches, written once for every place the
//! kernels run ([`Memory`]: the GPU, or the host shim the tests use): the buffers, the
//! arguments, the sums over the batch at the end.

use crate::args::{ElmArgs, ElmShape};
use crate::KernelError;

/// A buffer element the kernels read: `f32` or `u32`.
#[cfg(feature = "cuda")]
pub trait Element: Copy + Default + Unpin + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + 'static {}
#[cfg(not(feature = "cuda"))]
pub trait Element: Copy + Default + 'static {}
impl Element for f32 {}
impl Element for u32 {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    ElmForward,
    ElmBackward,
    LstmForward,
    LstmBackward,
}

impl Kernel {
    pub const ALL: [Kernel; 4] = [Kernel::ElmForward, Kernel::ElmBackward, Kernel::LstmForward, Kernel::LstmBackward];

    /// The kernel's name in the PTX, and its module (the .cu file).
    pub fn name(self) -> (&'static str, &'static str) {
        match self {
            Kernel::ElmForward => ("elm_forward", "elm"),
            Kernel::ElmBackward => ("elm_backward", "elm"),
            Kernel::LstmForward => ("lstm_forward", "lstm"),
            Kernel::LstmBackward => ("lstm_backward", "lstm"),
        }
    }

    /// Whether `A` is the argument this kernel takes.
    pub fn takes<A: 'static>(self) -> bool {
        use std::any::TypeId;
        let want = match self {
            Kernel::ElmForward | Kernel::ElmBackward => TypeId::of::<ElmArgs>(),
            Kernel::LstmForward | Kernel::LstmBackward => TypeId::of::<crate::args::LstmArgs>(),
        };
        TypeId::of::<A>() == want
    }
}

/// Where the kernels run: buffers there, and a launch over `work` independent items per
/// phase (the launch picks its own grid; the numbers do not depend on it).
pub trait Memory {
    type Buf<T: Element>;
    fn upload<T: Element>(&self, values: &[T]) -> Result<Self::Buf<T>, KernelError>;
    fn zeros<T: Element>(&self, len: usize) -> Result<Self::Buf<T>, KernelError>;
    fn download<T: Element>(&self, buf: &Self::Buf<T>) -> Result<Vec<T>, KernelError>;
    /// Elements `range` of the buffer.
    fn download_range<T: Element>(&self, buf: &Self::Buf<T>, range: std::ops::Range<usize>) -> Result<Vec<T>, KernelError>;
    /// The buffer's address as the kernels take it (writable through it).
    fn address<T: Element>(&self, buf: &Self::Buf<T>) -> u64;
    /// Runs `kernel` on `args` (the argument type it takes, [`Kernel::takes`]).
    fn launch<A: crate::args::LaunchArgs>(&self, kernel: Kernel, args: &A, work: usize) -> Result<(), KernelError>;
}

/// A layer's trainable parameters and timescale factors, laid out as in the parameter
/// store (as `ElmParams` on the CPU).
pub struct ElmModel<'a> {
    pub w_s: &'a [f32],
    /// Per MLP layer: weight `[N, out, in]`, bias `[N, out]`.
    pub mlp: Vec<(&'a [f32], &'a [f32])>,
    pub w_y: &'a [f32],
    pub b: &'a [f32],
    pub kappa_m: &'a [f32],
    pub one_minus_kappa_lambda: &'a [f32],
}

/// One forward pass's inputs; every matrix row-major with the batch last.
pub struct ForwardInputs<'a> {
    /// The inputs of all steps, `[T, I, B]`.
    pub x: &'a [f32],
    pub steps: usize,
    pub batch: usize,
    pub m0: &'a [f32],
    pub e0: &'a [f32],
    pub a0: &'a [f32],
    pub input_mask: Option<&'a [f32]>,
    pub recurrent_mask: Option<&'a [f32]>,
    pub mlp_penalty: bool,
    pub activity_penalty: bool,
    pub kappa_grads: bool,
}

/// A layer's connectome `[N, k_c]` into `[inputs ; previous outputs]` and its inverse: for
/// each source `j`, the synapses `n·k_c + k` that read it, ascending
/// (`inverse[inverse_start[j]..inverse_start[j + 1]]`), as the CPU kernel keeps them.
pub struct ElmWiring<'a> {
    pub connectome: &'a [u32],
    pub inverse_start: &'a [u32],
    pub inverse: &'a [u32],
}

impl ElmWiring<'_> {
    /// Every index the kernels follow stays inside its table.
    fn check(&self, synapses: usize, sources: usize) -> Result<(), KernelError> {
        check("connectome", self.connectome.len(), synapses)?;
        check("inverted connectome", self.inverse.len(), synapses)?;
        check("inverted connectome's starts", self.inverse_start.len(), sources + 1)?;
        if let Some(&j) = self.connectome.iter().find(|&&j| j as usize >= sources) {
            return Err(KernelError::Shape(format!("connectome entry {j} is not below the {sources} sources")));
        }
        if let Some(&v) = self.inverse.iter().find(|&&v| v as usize >= synapses) {
            return Err(KernelError::Shape(format!("inverted connectome entry {v} is not below the {synapses} synapses")));
        }
        if let Some(&v) = self.inverse_start.iter().find(|&&v| v as usize > synapses) {
            return Err(KernelError::Shape(format!("inverted connectome start {v} is beyond the {synapses} synapses")));
        }
        Ok(())
    }
}

/// The gradients the backward pass starts from.
pub struct Upstream<'a> {
    /// Of `a_1..a_T`, `[T, N, B]`.
    pub outputs: &'a [f32],
    pub m_last: &'a [f32],
    pub e_last: &'a [f32],
    pub abs_delta: Option<&'a [f32]>,
    pub activity: Option<&'a [f32]>,
}

/// The gradients, laid out as the parameters (`inputs` `[T, I, B]`, empty unless asked).
#[derive(Debug)]
pub struct Grads {
    pub w_s: Vec<f32>,
    pub mlp: Vec<(Vec<f32>, Vec<f32>)>,
    pub w_y: Vec<f32>,
    pub b: Vec<f32>,
    pub inputs: Vec<f32>,
    pub m0: Vec<f32>,
    pub e0: Vec<f32>,
    pub a0: Vec<f32>,
    pub kappa_m: Vec<f32>,
    pub one_minus_kappa_lambda: Vec<f32>,
}

/// A layer with its connectome and parameters in place.
pub struct ElmLayerBuffers<M: Memory> {
    shape: ElmShape,
    w_s: M::Buf<f32>,
    connectome: M::Buf<u32>,
    mlp_w: M::Buf<f32>,
    mlp_b: M::Buf<f32>,
    w_y: M::Buf<f32>,
    b: M::Buf<f32>,
    kappa_m: M::Buf<f32>,
    okl: M::Buf<f32>,
    inverse_start: M::Buf<u32>,
    inverse: M::Buf<u32>,
}

/// What a forward pass keeps for the backward: the states of every step, in place.
pub struct ElmSequence<M: Memory> {
    pub steps: usize,
    pub batch: usize,
    /// One step's `m` (`N·d_m·B`) and `e` or `a` (`N·B`).
    memory_len: usize,
    state_len: usize,
    x: M::Buf<f32>,
    m: M::Buf<f32>,
    e: M::Buf<f32>,
    a: M::Buf<f32>,
    abs_delta: M::Buf<f32>,
    activity: M::Buf<f32>,
    input_mask: Option<M::Buf<f32>>,
    recurrent_mask: Option<M::Buf<f32>>,
    kappa_grads: bool,
}

impl<M: Memory> ElmLayerBuffers<M> {
    /// Checks the shapes and the wiring (a mismatch is an error with the numbers, never a
    /// bad read) and uploads the wiring and the parameters.
    pub fn new(mem: &M, shape: &ElmShape, wiring: &ElmWiring, p: &ElmModel) -> Result<Self, KernelError> {
        if let Some(why) = shape.unsupported() {
            return Err(KernelError::Unsupported(why));
        }
        let (n, k_c, d_m, sources) = (shape.units, shape.k_c(), shape.memory, shape.inputs + shape.units);
        wiring.check(n * k_c, sources)?;
        check("w_s", p.w_s.len(), n * k_c)?;
        check("MLP layers", p.mlp.len(), shape.mlp.len())?;
        let (mut mlp_w, mut mlp_b) = (Vec::new(), Vec::new());
        for (k, (&(o, i), (w, b))) in shape.mlp.iter().zip(&p.mlp).enumerate() {
            check(&format!("MLP layer {k} weight"), w.len(), n * o * i)?;
            check(&format!("MLP layer {k} bias"), b.len(), n * o)?;
            mlp_w.extend_from_slice(w);
            mlp_b.extend_from_slice(b);
        }
        for (name, v, len) in [("w_y", p.w_y, n * d_m), ("b", p.b, n), ("kappa_m", p.kappa_m, n * d_m), ("1 - kappa_lambda", p.one_minus_kappa_lambda, n * d_m)] {
            check(name, v.len(), len)?;
        }
        Ok(ElmLayerBuffers {
            shape: shape.clone(),
            w_s: mem.upload(p.w_s)?,
            connectome: mem.upload(wiring.connectome)?,
            mlp_w: mem.upload(&mlp_w)?,
            mlp_b: mem.upload(&mlp_b)?,
            w_y: mem.upload(p.w_y)?,
            b: mem.upload(p.b)?,
            kappa_m: mem.upload(p.kappa_m)?,
            okl: mem.upload(p.one_minus_kappa_lambda)?,
            inverse_start: mem.upload(wiring.inverse_start)?,
            inverse: mem.upload(wiring.inverse)?,
        })
    }

    fn args(&self, mem: &M, batch: usize, steps: usize) -> ElmArgs {
        let mut a = self.shape.layout(batch, steps).args;
        a.w_s = mem.address(&self.w_s);
        a.connectome = mem.address(&self.connectome);
        a.mlp_w = mem.address(&self.mlp_w);
        a.mlp_b = mem.address(&self.mlp_b);
        a.w_y = mem.address(&self.w_y);
        a.b = mem.address(&self.b);
        a.kappa_m = mem.address(&self.kappa_m);
        a.okl = mem.address(&self.okl);
        a.inverse_start = mem.address(&self.inverse_start);
        a.inverse = mem.address(&self.inverse);
        a
    }

    /// The whole sequence forward, one launch.
    pub fn forward(&self, mem: &M, inp: &ForwardInputs) -> Result<ElmSequence<M>, KernelError> {
        let s = &self.shape;
        let (n, b, t, d_m) = (s.units, inp.batch, inp.steps, s.memory);
        check("inputs [T, I, B]", inp.x.len(), t * s.inputs * b)?;
        check("m0", inp.m0.len(), n * d_m * b)?;
        check("e0", inp.e0.len(), n * b)?;
        check("a0", inp.a0.len(), n * b)?;
        if let Some(v) = inp.input_mask {
            check("input mask", v.len(), s.inputs * b)?;
        }
        if let Some(v) = inp.recurrent_mask {
            check("recurrent mask", v.len(), n * b)?;
        }
        let with_start = |first: &[f32], per_step: usize| -> Result<M::Buf<f32>, KernelError> {
            let mut v = vec![0.0f32; (t + 1) * per_step];
            v[..per_step].copy_from_slice(first);
            mem.upload(&v)
        };
        let run = ElmSequence {
            steps: t,
            batch: b,
            memory_len: n * d_m * b,
            state_len: n * b,
            x: mem.upload(inp.x)?,
            m: with_start(inp.m0, n * d_m * b)?,
            e: with_start(inp.e0, n * b)?,
            a: with_start(inp.a0, n * b)?,
            abs_delta: mem.zeros(n * b)?,
            activity: mem.zeros(n * b)?,
            input_mask: inp.input_mask.map(|v| mem.upload(v)).transpose()?,
            recurrent_mask: inp.recurrent_mask.map(|v| mem.upload(v)).transpose()?,
            kappa_grads: inp.kappa_grads,
        };
        if t == 0 {
            return Ok(run);
        }
        let scratch: M::Buf<f32> = mem.zeros(s.layout(b, t).scratch_rows * n * b)?;
        let barrier: M::Buf<u32> = mem.zeros(2)?;
        let mut a = self.sequence_args(mem, &run);
        a.scratch = mem.address(&scratch);
        a.barrier = mem.address(&barrier);
        a.mlp_penalty = inp.mlp_penalty as i32;
        a.activity_penalty = inp.activity_penalty as i32;
        mem.launch(Kernel::ElmForward, &a, n * b)?;
        Ok(run)
    }

    fn sequence_args(&self, mem: &M, run: &ElmSequence<M>) -> ElmArgs {
        let mut a = self.args(mem, run.batch, run.steps);
        a.x = mem.address(&run.x);
        a.m = mem.address(&run.m);
        a.e = mem.address(&run.e);
        a.a = mem.address(&run.a);
        a.abs_delta = mem.address(&run.abs_delta);
        a.activity = mem.address(&run.activity);
        a.input_mask = run.input_mask.as_ref().map_or(0, |v| mem.address(v));
        a.recurrent_mask = run.recurrent_mask.as_ref().map_or(0, |v| mem.address(v));
        a
    }

    /// Backward through time, one launch; the per-sequence sums are summed over the batch
    /// here, in order.
    pub fn backward(&self, mem: &M, run: &ElmSequence<M>, up: &Upstream, input_grads: bool) -> Result<Grads, KernelError> {
        let s = &self.shape;
        let (n, b, t, d_m, k_c) = (s.units, run.batch, run.steps, s.memory, s.k_c());
        check("output gradients [T, N, B]", up.outputs.len(), t * n * b)?;
        check("gradient of m_T", up.m_last.len(), n * d_m * b)?;
        check("gradient of e_T", up.e_last.len(), n * b)?;
        for v in [up.abs_delta, up.activity].into_iter().flatten() {
            check("penalty gradient", v.len(), n * b)?;
        }
        let layout = s.layout(b, t);
        let items = n * b;
        let d_outputs = mem.upload(up.outputs)?;
        let up_abs = up.abs_delta.map(|v| mem.upload(v)).transpose()?;
        let up_act = up.activity.map(|v| mem.upload(v)).transpose()?;
        let d_later: M::Buf<f32> = mem.zeros(items)?;
        let d_m_carry = mem.upload(up.m_last)?;
        let d_e = mem.upload(up.e_last)?;
        let d_x: M::Buf<f32> = mem.zeros(if input_grads { t * s.inputs * b } else { 0 }.max(1))?;
        let d_beta: M::Buf<f32> = mem.zeros(n * s.branches * b)?;
        let acc: M::Buf<f32> = mem.zeros(layout.acc_rows * items)?;
        let g_w_s: M::Buf<f32> = mem.zeros(n * k_c)?;
        let g_mlp_w: M::Buf<f32> = mem.zeros(layout.mlp_w_len)?;
        let scratch: M::Buf<f32> = mem.zeros(layout.scratch_rows * items)?;
        let barrier: M::Buf<u32> = mem.zeros(2)?;
        if t > 0 {
            let mut a = self.sequence_args(mem, run);
            a.scratch = mem.address(&scratch);
            a.barrier = mem.address(&barrier);
            a.d_outputs = mem.address(&d_outputs);
            a.up_abs = up_abs.as_ref().map_or(0, |v| mem.address(v));
            a.up_act = up_act.as_ref().map_or(0, |v| mem.address(v));
            a.d_later = mem.address(&d_later);
            a.d_m = mem.address(&d_m_carry);
            a.d_e = mem.address(&d_e);
            a.d_x = if input_grads { mem.address(&d_x) } else { 0 };
            a.d_beta = mem.address(&d_beta);
            a.acc = mem.address(&acc);
            a.g_w_s = mem.address(&g_w_s);
            a.g_mlp_w = mem.address(&g_mlp_w);
            a.kappa_grads = run.kappa_grads as i32;
            a.input_grads = input_grads as i32;
            let work = items.max(n * k_c);
            mem.launch(Kernel::ElmBackward, &a, work)?;
        }
        let acc = mem.download(&acc)?;
        // row r of the per-sequence sums, summed over the batch: `[N]`
        let sum_rows = |row: i32, count: usize| -> Vec<f32> {
            let mut out = vec![0.0f32; n * count];
            for i in 0..n {
                for r in 0..count {
                    let at = (row as usize + r) * items + i * b;
                    out[i * count + r] = acc[at..at + b].iter().sum();
                }
            }
            out
        };
        let g_mlp_w = mem.download(&g_mlp_w)?;
        let mlp = s
            .mlp
            .iter()
            .enumerate()
            .map(|(k, &(o, i))| {
                let w0 = layout.args.w_offset[k] as usize;
                (g_mlp_w[w0..w0 + n * o * i].to_vec(), sum_rows(layout.args.acc_mlp_b[k], o))
            })
            .collect();
        let kappa = run.kappa_grads;
        Ok(Grads {
            w_s: mem.download(&g_w_s)?.iter().map(|&v| v * s.input_scale).collect(),
            mlp,
            w_y: sum_rows(layout.args.acc_w_y, d_m),
            b: sum_rows(layout.args.acc_b, 1),
            inputs: if input_grads { mem.download(&d_x)? } else { Vec::new() },
            m0: mem.download(&d_m_carry)?,
            e0: mem.download(&d_e)?,
            a0: mem.download(&d_later)?,
            kappa_m: if kappa { sum_rows(layout.args.acc_kappa_m, d_m) } else { Vec::new() },
            one_minus_kappa_lambda: if kappa { sum_rows(layout.args.acc_okl, d_m) } else { Vec::new() },
        })
    }
}

impl<M: Memory> ElmSequence<M> {
    /// Every state `a_0..a_T`, `[T + 1, N, B]`.
    pub fn outputs(&self, mem: &M) -> Result<Vec<f32>, KernelError> {
        mem.download(&self.a)
    }
    /// `m_t`, `[N·d_m, B]`.
    pub fn memory_at(&self, mem: &M, t: usize) -> Result<Vec<f32>, KernelError> {
        let len = self.memory_len;
        mem.download_range(&self.m, t * len..(t + 1) * len)
    }
    /// `e_t`, `[N, B]`.
    pub fn high_pass_at(&self, mem: &M, t: usize) -> Result<Vec<f32>, KernelError> {
        let len = self.state_len;
        mem.download_range(&self.e, t * len..(t + 1) * len)
    }
    pub fn abs_delta(&self, mem: &M) -> Result<Vec<f32>, KernelError> {
        mem.download(&self.abs_delta)
    }
    pub fn activity(&self, mem: &M) -> Result<Vec<f32>, KernelError> {
        mem.download(&self.activity)
    }
}

fn check(what: &str, got: usize, want: usize) -> Result<(), KernelError> {
    if got == want {
        Ok(())
    } else {
        Err(KernelError::Shape(format!("{what}: {got} values, the layer needs {want}")))
    }
}
