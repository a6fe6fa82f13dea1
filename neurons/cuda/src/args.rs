//! The one argument of every ELM launch, field by field as `ElmArgs` in kernels/elm.cu
//! (device or host addresses as integers), and the layout of the scratch and the
//! per-sequence sums that the kernels index.

/// As `ELM_MAX_LAYERS` in kernels/elm.cu.
pub const MAX_LAYERS: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ElmArgs {
    pub w_s: u64,
    pub connectome: u64,
    pub mlp_w: u64,
    pub mlp_b: u64,
    pub w_y: u64,
    pub b: u64,
    pub kappa_m: u64,
    pub okl: u64,
    pub input_mask: u64,
    pub recurrent_mask: u64,
    pub inverse_start: u64,
    pub inverse: u64,
    pub x: u64,
    pub m: u64,
    pub e: u64,
    pub a: u64,
    pub abs_delta: u64,
    pub activity: u64,
    pub scratch: u64,
    pub d_outputs: u64,
    pub up_abs: u64,
    pub up_act: u64,
    pub d_later: u64,
    pub d_m: u64,
    pub d_e: u64,
    pub d_x: u64,
    pub d_beta: u64,
    pub acc: u64,
    pub g_w_s: u64,
    pub g_mlp_w: u64,
    pub barrier: u64,
    pub w_offset: [i64; MAX_LAYERS],
    pub b_offset: [i32; MAX_LAYERS],
    pub layer_out: [i32; MAX_LAYERS],
    pub layer_in: [i32; MAX_LAYERS],
    pub in_row: [i32; MAX_LAYERS],
    pub out_row: [i32; MAX_LAYERS],
    pub dout_row: [i32; MAX_LAYERS],
    pub din_row: i32,
    pub mem_row: i32,
    pub pre_row: i32,
    pub a_row: i32,
    pub acc_mlp_b: [i32; MAX_LAYERS],
    pub acc_b: i32,
    pub acc_w_y: i32,
    pub acc_kappa_m: i32,
    pub acc_okl: i32,
    pub units: i32,
    pub inputs: i32,
    pub memory: i32,
    pub branches: i32,
    pub synapses: i32,
    pub batch: i32,
    pub steps: i32,
    pub layers: i32,
    pub activation: i32,
    pub relu_output: i32,
    pub high_pass: i32,
    pub mlp_penalty: i32,
    pub activity_penalty: i32,
    pub kappa_grads: i32,
    pub input_grads: i32,
    pub kappa_r: f32,
    pub input_scale: f32,
}

/// The one argument of every LSTM launch, as `LstmArgs` in kernels/lstm.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LstmArgs {
    pub w: u64,
    pub bias: u64,
    pub x: u64,
    pub hs: u64,
    pub cs: u64,
    pub gates: u64,
    pub d_h: u64,
    pub d_c: u64,
    pub d_pre: u64,
    pub d_h0: u64,
    pub d_w: u64,
    pub d_bias: u64,
    pub d_x: u64,
    pub barrier: u64,
    pub hidden: i32,
    pub inputs: i32,
    pub batch: i32,
    pub steps: i32,
}

/// A kernel's one argument: plain integers and floats, laid out as the kernel declares it.
#[cfg(feature = "cuda")]
pub trait LaunchArgs: Copy + 'static + cudarc::driver::DeviceRepr {}
#[cfg(not(feature = "cuda"))]
pub trait LaunchArgs: Copy + 'static {}
impl LaunchArgs for ElmArgs {}
impl LaunchArgs for LstmArgs {}

#[cfg(feature = "cuda")]
// SAFETY: plain integers and floats, `repr(C)` as the kernels declare them.
unsafe impl cudarc::driver::DeviceRepr for ElmArgs {}
#[cfg(feature = "cuda")]
// SAFETY: as above.
unsafe impl cudarc::driver::DeviceRepr for LstmArgs {}

/// The MLP's activation, numbered as the kernels number it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu2 = 0,
    Relu = 1,
    Silu = 2,
}

/// A layer's fixed configuration (what `ElmKernel` holds on the CPU).
#[derive(Clone, Debug)]
pub struct ElmShape {
    pub units: usize,
    pub inputs: usize,
    pub memory: usize,
    pub branches: usize,
    pub synapses: usize,
    /// `(out, in)` of each MLP layer.
    pub mlp: Vec<(usize, usize)>,
    pub activation: Activation,
    pub relu_output: bool,
    /// The high-pass decay `κ_r`, if the layer has one.
    pub kappa_r: Option<f32>,
    pub input_scale: f32,
}

impl ElmShape {
    pub fn k_c(&self) -> usize {
        self.branches * self.synapses
    }

    /// What the kernels cannot run, in words, or `None`.
    pub fn unsupported(&self) -> Option<String> {
        if self.mlp.is_empty() || self.mlp.len() > MAX_LAYERS {
            return Some(format!("{} MLP layers (the CUDA kernels take 1 to {MAX_LAYERS})", self.mlp.len()));
        }
        let sources = self.inputs + self.units;
        if sources >= u32::MAX as usize || self.units * self.k_c() >= u32::MAX as usize || self.units * self.k_c() >= i32::MAX as usize {
            return Some(format!("{} sources and {} synapses (the CUDA kernels index them with 32 bits)", sources, self.units * self.k_c()));
        }
        None
    }

    /// The scratch rows and per-sequence sums the kernels index (in the launch argument,
    /// with the shape's fields; every address zero), and their counts.
    pub(crate) fn layout(&self, batch: usize, steps: usize) -> Layout {
        let mut a = ElmArgs {
            units: self.units as i32,
            inputs: self.inputs as i32,
            memory: self.memory as i32,
            branches: self.branches as i32,
            synapses: self.synapses as i32,
            batch: batch as i32,
            steps: steps as i32,
            layers: self.mlp.len() as i32,
            activation: self.activation as i32,
            relu_output: self.relu_output as i32,
            high_pass: self.kappa_r.is_some() as i32,
            kappa_r: self.kappa_r.unwrap_or(0.0),
            input_scale: self.input_scale,
            ..Default::default()
        };
        // consecutive rows from a counter
        fn take(counter: &mut i32, n: usize) -> i32 {
            let at = *counter;
            *counter += n as i32;
            at
        }
        let (mut rows, mut acc) = (0i32, 0i32);
        let (mut w, mut b) = (0usize, 0usize);
        for (k, &(o, i)) in self.mlp.iter().enumerate() {
            a.layer_out[k] = o as i32;
            a.layer_in[k] = i as i32;
            a.in_row[k] = take(&mut rows, i);
            a.out_row[k] = take(&mut rows, o);
            a.dout_row[k] = take(&mut rows, o);
            a.w_offset[k] = w as i64;
            a.b_offset[k] = b as i32;
            w += self.units * o * i;
            b += self.units * o;
        }
        a.din_row = take(&mut rows, self.mlp[0].1);
        a.mem_row = take(&mut rows, self.memory);
        a.pre_row = take(&mut rows, 1);
        a.a_row = take(&mut rows, 1);
        a.acc_b = take(&mut acc, 1);
        a.acc_w_y = take(&mut acc, self.memory);
        a.acc_kappa_m = take(&mut acc, self.memory);
        a.acc_okl = take(&mut acc, self.memory);
        for (k, &(o, _)) in self.mlp.iter().enumerate() {
            a.acc_mlp_b[k] = take(&mut acc, o);
        }
        Layout { args: a, scratch_rows: rows as usize, acc_rows: acc as usize, mlp_w_len: w }
    }
}

pub(crate) struct Layout {
    pub args: ElmArgs,
    pub scratch_rows: usize,
    pub acc_rows: usize,
    pub mlp_w_len: usize,
}
