//! The LSTM's CUDA kernels (kernels/lstm.cu) compiled as host C++, against the CPU fused
//! kernel: outputs, final cell state and every gradient, on random small layers and odd
//! grids.

use super::lstm_kernel::{LstmForward, LstmWeights};
use elmlab_core::rng::stream;
use elmlab_cuda_kernels::shim::HostShim;
use elmlab_cuda_kernels::LstmLayerBuffers;
use rand::Rng;

fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 2e-5 * scale + 1e-4 * w.abs(), "{what}[{k}]: shim {g} vs CPU kernel {w} (largest |value| {scale})");
    }
}

fn check(hidden: usize, inputs: usize, batch: usize, steps: usize, grid: u32, block: u32, seed: u64) {
    let (h, i, b, t) = (hidden, inputs, batch, steps);
    let mut rng = stream(seed, "lstm-cuda-shim", 0);
    let mut draw = |len: usize, r: f32| -> Vec<f32> { (0..len).map(|_| rng.gen_range(-r..r)).collect() };
    let (w_ih, w_hh, b_ih, b_hh) = (draw(4 * h * i, 0.5), draw(4 * h * h, 0.5), draw(4 * h, 0.3), draw(4 * h, 0.3));
    let xs: Vec<Vec<f32>> = (0..t).map(|_| draw(i * b, 1.0)).collect();
    let (h0, c0) = (draw(h * b, 0.5), draw(h * b, 0.5));
    let (d_h, d_c) = (draw(t * h * b, 1.0), draw(h * b, 1.0));
    let weights = LstmWeights { w_ih: &w_ih, w_hh: &w_hh, b_ih: &b_ih, b_hh: &b_hh };
    let refs: Vec<&[f32]> = xs.iter().map(|x| x.as_slice()).collect();
    let cpu = LstmForward::run(&weights, h, i, b, &refs, &h0, &c0);
    let cpu_grads = cpu.backward(&d_h, &d_c, true);

    let shim = HostShim { grid, block };
    let layer = LstmLayerBuffers::new(&shim, h, i, &w_ih, &w_hh, &b_ih, &b_hh).unwrap();
    let run = layer.forward(&shim, &xs.concat(), t, b, &h0, &c0).unwrap();
    let (outputs, c_last) = run.results(&shim, h).unwrap();
    let what = |s: &str| format!("H={h} I={i} B={b} T={t} grid {grid}×{block}: {s}");
    close(&what("h_1..h_T"), &outputs, &cpu.outputs());
    close(&what("c_T"), &c_last, &cpu.c(t));
    let g = layer.backward(&shim, &run, &d_h, &d_c, true).unwrap();
    close(&what("d w_ih"), &g.w_ih, &cpu_grads.w_ih);
    close(&what("d w_hh"), &g.w_hh, &cpu_grads.w_hh);
    close(&what("d bias"), &g.bias, &cpu_grads.bias);
    close(&what("d h_0"), &g.h0, &cpu_grads.h0);
    close(&what("d c_0"), &g.c0, &cpu_grads.c0);
    close(&what("d x"), &g.inputs, &cpu_grads.inputs.concat());
}

#[test]
fn shim_lstm_kernels_equal_the_cpu_kernel_on_random_layers() {
    // (H, I, B, T): one unit; widths that are no multiple of the 4 × 4 gradient tiles; a batch
    // over one lane block; more units than the CPU kernel's chunk of 64
    for (k, &(h, i, b, t)) in [(1, 1, 1, 2), (3, 2, 3, 5), (5, 7, 17, 4), (70, 3, 2, 3)].iter().enumerate() {
        for (grid, block) in [(1, 1), (3, 7), (2, 32)] {
            check(h, i, b, t, grid, block, k as u64);
        }
    }
}

#[test]
fn shim_lstm_refuses_wrong_shapes_with_the_numbers() {
    let shim = HostShim { grid: 1, block: 1 };
    let z = |n| vec![0.0f32; n];
    let err = LstmLayerBuffers::new(&shim, 2, 3, &z(4 * 2 * 3), &z(4 * 2 * 2 - 1), &z(8), &z(8)).err().expect("a short w_hh is refused");
    assert!(err.to_string().contains("w_hh: 15 values, the LSTM needs 16"), "{err}");
}
