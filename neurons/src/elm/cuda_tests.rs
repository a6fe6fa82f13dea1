//! The CUDA kernels' arithmetic, without a GPU: the same kernels/elm.cu compiled as host
//! C++ (the shim) against the CPU fused kernel, forward values and every gradient, on
//! random small models (several N, d_m, k_c, MLP depths and activations, batch, T, with
//! repeated connectome entries, dropout masks, penalties, high-pass, carried state,
//! learnt timescales) and odd grids (so the kernels' strided loops and phases are used).

use super::cuda;
use super::kernel::{ElmExtras, ElmKernel, ElmParams, ElmUpstream};
use super::{LayerSpec, MlpActivation};
use elmlab_core::rng::stream;
use elmlab_cuda_kernels::shim::{args_sizes, HostShim};
use rand::Rng;

struct Case {
    units: usize,
    inputs: usize,
    memory: usize,
    hidden: usize,
    layers: usize,
    activation: MlpActivation,
    branches: usize,
    synapses: usize,
    batch: usize,
    steps: usize,
    high_pass: Option<f64>,
    relu_output: bool,
    extras: bool,
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 2e-5 * scale + 1e-4 * w.abs(), "{what}[{k}]: shim {g} vs CPU kernel {w} (largest |value| {scale})");
    }
}

fn check(case: &Case, seed: u64, grid: u32, block: u32) {
    let (n, i, b, t) = (case.units, case.inputs, case.batch, case.steps);
    let spec = LayerSpec {
        name: "hidden".into(),
        units: n,
        input_width: i,
        memory: case.memory,
        mlp_hidden: case.hidden,
        mlp_layers: case.layers,
        mlp_activation: case.activation,
        branches: case.branches,
        synapses_per_branch: case.synapses,
        lambda: 5.0,
        tau_memory: (1.0, 20.0),
        learn_tau: case.extras,
        high_pass_tau: case.high_pass,
        input_scale: 2.0,
        relu_output: case.relu_output,
        dropout: 0.0,
        mlp_penalty: 0.0,
        activity_penalty: 0.0,
        path: crate::path::Path::Fused,
        inputs_need_grad: true,
    };
    let mut rng = stream(seed, "cuda-shim", 0);
    // few sources for many synapses: every source is read several times, some by one neuron twice
    let mut connectome: Vec<usize> = (0..n * spec.k_c()).map(|_| rng.gen_range(0..i + n)).collect();
    connectome[1] = connectome[0];
    let kernel = ElmKernel::<f32>::new(&spec, &connectome);
    let mut draw = |len: usize, lo: f32, hi: f32| -> Vec<f32> { (0..len).map(|_| rng.gen_range(lo..hi)).collect() };
    let w_s = draw(n * spec.k_c(), -0.6, 0.6);
    let mlp: Vec<(Vec<f32>, Vec<f32>)> = spec.mlp_shapes().iter().map(|&(o, inp)| (draw(n * o * inp, -0.5, 0.5), draw(n * o, -0.3, 0.3))).collect();
    let (w_y, bias) = (draw(n * case.memory, -0.8, 0.8), draw(n, -0.2, 0.2));
    let kappa_m = draw(n * case.memory, 0.3, 0.98);
    let okl = draw(n * case.memory, 0.05, 0.9);
    let xs: Vec<Vec<f32>> = (0..t).map(|_| draw(i * b, -1.0, 1.0)).collect();
    let (m0, e0, a0) = (draw(n * case.memory * b, -0.5, 0.5), draw(n * b, -0.3, 0.3), draw(n * b, 0.0, 0.5));
    let mask = |len: usize, d: &mut dyn FnMut(usize, f32, f32) -> Vec<f32>| -> Vec<f32> { d(len, 0.0, 1.0).iter().map(|&v| if v > 0.25 { 1.0 / 0.75 } else { 0.0 }).collect() };
    let extras = || ElmExtras {
        input_mask: None,
        recurrent_mask: None,
        mlp_penalty: case.extras,
        activity_penalty: case.extras,
        kappa_grads: case.extras,
        forward_only: false,
    };
    let mut ex = extras();
    if case.extras {
        ex.input_mask = Some(mask(i * b, &mut draw));
        ex.recurrent_mask = Some(mask(n * b, &mut draw));
    }
    let up_out: Vec<Vec<f32>> = (0..t).map(|_| draw(n * b, -1.0, 1.0)).collect();
    let (up_m, up_e, up_abs, up_act) = (draw(n * case.memory * b, -1.0, 1.0), draw(n * b, -1.0, 1.0), draw(n * b, -1.0, 1.0), draw(n * b, -1.0, 1.0));
    let params = ElmParams { w_s: &w_s, mlp: mlp.iter().map(|(w, b)| (w.as_slice(), b.as_slice())).collect(), w_y: &w_y, b: &bias, kappa_m: &kappa_m, one_minus_kappa_lambda: &okl };
    let x_refs: Vec<&[f32]> = xs.iter().map(|x| x.as_slice()).collect();
    let up = ElmUpstream {
        outputs: &up_out,
        m_last: &up_m,
        e_last: &up_e,
        abs_delta: case.extras.then_some(up_abs.as_slice()),
        activity: case.extras.then_some(up_act.as_slice()),
    };

    let cpu_run = kernel.run(&params, &x_refs, m0.clone(), e0.clone(), a0.clone(), ElmExtras { input_mask: ex.input_mask.clone(), recurrent_mask: ex.recurrent_mask.clone(), ..extras() });
    let cpu = kernel.backward(&params, &cpu_run, &up, true);
    let shim = HostShim { grid, block };
    let gpu_run = cuda::run(&shim, &kernel, &params, &x_refs, &m0, &e0, &a0, &ex).unwrap();
    let what = |s: &str| format!("N={n} I={i} d_m={} k_c={} layers={} {:?} B={b} T={t} grid {grid}×{block}: {s}", case.memory, spec.k_c(), case.layers, case.activation);
    for step in 0..=t {
        close(&what(&format!("a_{step}")), &gpu_run.output(step), &cpu_run.output(step));
    }
    close(&what("m_T"), &gpu_run.memory_last(), &cpu_run.memory(t));
    close(&what("e_T"), &gpu_run.high_pass_last(), &cpu_run.high_pass(t));
    if case.extras {
        close(&what("Σ|Δ|"), &gpu_run.abs_delta(), &cpu_run.abs_delta());
        close(&what("Σ relu(a)"), &gpu_run.activity(), &cpu_run.activity());
    }
    let g = cuda::backward(&shim, &gpu_run, &up, true).unwrap();
    close(&what("d w_s"), &g.w_s, &cpu.w_s);
    for (l, ((gw, gb), (cw, cb))) in g.mlp.iter().zip(&cpu.mlp).enumerate() {
        close(&what(&format!("d MLP weight {l}")), gw, cw);
        close(&what(&format!("d MLP bias {l}")), gb, cb);
    }
    close(&what("d w_y"), &g.w_y, &cpu.w_y);
    close(&what("d b"), &g.b, &cpu.b);
    assert_eq!(g.inputs.len(), t);
    for (step, (gx, cx)) in g.inputs.iter().zip(&cpu.inputs).enumerate() {
        close(&what(&format!("d x_{step}")), gx, cx);
    }
    close(&what("d m_0"), &g.m0, &cpu.m0);
    close(&what("d e_0"), &g.e0, &cpu.e0);
    close(&what("d a_0"), &g.a0, &cpu.a0);
    if case.extras {
        close(&what("d κ_m"), &g.kappa_m, &cpu.kappa_m);
        close(&what("d (1 − κ_λ)"), &g.one_minus_kappa_lambda, &cpu.one_minus_kappa_lambda);
    }
}

#[test]
fn args_struct_is_laid_out_as_the_kernels_declare_it() {
    assert_eq!(args_sizes(), [std::mem::size_of::<elmlab_cuda_kernels::args::ElmArgs>(), std::mem::size_of::<elmlab_cuda_kernels::args::LstmArgs>()]);
}

#[test]
fn shim_kernels_equal_the_cpu_kernel_on_random_models() {
    let cases = [
        // tiny, one MLP layer, linear output
        Case { units: 3, inputs: 2, memory: 2, hidden: 3, layers: 0, activation: MlpActivation::Relu2, branches: 2, synapses: 2, batch: 1, steps: 3, high_pass: None, relu_output: false, extras: false },
        // deep MLP, silu, high-pass, every extra, odd batch
        Case { units: 5, inputs: 4, memory: 3, hidden: 4, layers: 2, activation: MlpActivation::Silu, branches: 3, synapses: 4, batch: 3, steps: 6, high_pass: Some(3.0), relu_output: true, extras: true },
        // relu, more neurons than threads, batch over one lane block
        Case { units: 19, inputs: 7, memory: 4, hidden: 6, layers: 1, activation: MlpActivation::Relu, branches: 4, synapses: 3, batch: 9, steps: 5, high_pass: Some(2.0), relu_output: true, extras: true },
        // relu², wide synapse tree, few sources (many repeats)
        Case { units: 8, inputs: 1, memory: 5, hidden: 10, layers: 1, activation: MlpActivation::Relu2, branches: 6, synapses: 5, batch: 2, steps: 8, high_pass: Some(5.0), relu_output: true, extras: true },
    ];
    for (k, case) in cases.iter().enumerate() {
        for (grid, block) in [(1, 1), (3, 7), (2, 32)] {
            check(case, k as u64, grid, block);
        }
    }
}

#[test]
fn shim_kernels_refuse_wrong_shapes_with_the_numbers() {
    let spec = LayerSpec {
        name: "hidden".into(),
        units: 2,
        input_width: 2,
        memory: 2,
        mlp_hidden: 2,
        mlp_layers: 1,
        mlp_activation: MlpActivation::Relu2,
        branches: 1,
        synapses_per_branch: 2,
        lambda: 5.0,
        tau_memory: (1.0, 20.0),
        learn_tau: false,
        high_pass_tau: None,
        input_scale: 1.0,
        relu_output: true,
        dropout: 0.0,
        mlp_penalty: 0.0,
        activity_penalty: 0.0,
        path: crate::path::Path::Fused,
        inputs_need_grad: false,
    };
    let kernel = ElmKernel::<f32>::new(&spec, &[0, 1, 2, 3]);
    let z = |len| vec![0.0f32; len];
    let (w_s, w0, b0, w1, b1, w_y, bias, f) = (z(4), z(2 * 2 * 3), z(4), z(2 * 2 * 2), z(4), z(4), z(2), z(4));
    let params = ElmParams { w_s: &w_s, mlp: vec![(&w0, &b0), (&w1, &b1)], w_y: &w_y, b: &bias, kappa_m: &f, one_minus_kappa_lambda: &f };
    let x = z(2 * 3 - 1); // one value short of [I, B] = [2, 3]
    let shim = HostShim { grid: 1, block: 1 };
    let err = cuda::run(&shim, &kernel, &params, &[&x], &z(12), &z(6), &z(6), &ElmExtras::default()).err().expect("a short input is refused");
    assert!(err.to_string().contains("5 values, the layer needs 6"), "{err}");
}
