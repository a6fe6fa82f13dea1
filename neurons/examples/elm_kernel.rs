//! Times the fused ELM kernel alone (no tape, loss or optimiser) on a layer's shape:
//! forward `run` and `backward`, medians of several rounds. A development bench: the
//! whole training step is `elmlab bench`.
//!
//! `cargo run --release -p elmlab-neurons --example elm_kernel -- [shd|enwik8|shd-readout|enwik8-readout] [BATCH] [ROUNDS] [spikes|dense]`
//! (threads: `RAYON_NUM_THREADS`). `shd-readout` is the SHD-Adding readout layer: 19
//! neurons whose synapses all read the hidden layer's outputs, whose gradients it forms;
//! `enwik8-readout` Enwik8's, 204 neurons reading 1,024.

use elmlab_neurons::elm::kernel::{ElmExtras, ElmKernel, ElmParams, ElmUpstream};
use elmlab_neurons::elm::{LayerSpec, MlpActivation};
use elmlab_neurons::Path;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn spec(task: &str) -> (LayerSpec, usize) {
    let (units, input, memory, branches, synapses, hidden, steps, high_pass) = match task {
        "enwik8" => (1024, 204, 15, 50, 15, 30, 100, Some(2.0)),
        // the SHD-Adding readout layer: 19 neurons fed by the 96 hidden outputs
        "shd-readout" => (19, 96, 3, 30, 10, 0, 1000, None),
        // the Enwik8 readout layer: 204 neurons (one per symbol) fed by the 1,024 hidden outputs
        "enwik8-readout" => (204, 1024, 3, 50, 15, 0, 100, None),
        _ => (96, 700, 5, 30, 10, 10, 1000, Some(5.0)),
    };
    let readout = task.ends_with("-readout");
    let spec = LayerSpec {
        name: if readout { "readout" } else { "hidden" }.into(),
        units,
        input_width: input,
        memory,
        mlp_hidden: hidden,
        mlp_layers: if readout { 0 } else { 1 },
        mlp_activation: MlpActivation::Relu2,
        branches,
        synapses_per_branch: synapses,
        lambda: 5.0,
        tau_memory: (1.0, 500.0),
        learn_tau: false,
        high_pass_tau: high_pass,
        input_scale: 10.0,
        relu_output: !readout,
        dropout: 0.0,
        mlp_penalty: 0.002,
        activity_penalty: 0.2,
        path: Path::Fused,
        inputs_need_grad: readout,
    };
    (spec, steps)
}

fn uniform(rng: &mut impl Rng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.gen_range(-scale..scale)).collect()
}

/// The fastest round: on a shared host the noise only ever adds time.
fn best(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let task = args.get(1).map(String::as_str).unwrap_or("shd");
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let (spec, steps) = spec(task);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let (n, d_m, k_c, inp) = (spec.units, spec.memory, spec.k_c(), spec.input_width);
    // a readout reads only its inputs (recurrent share 0)
    let sources = if spec.inputs_need_grad { inp } else { inp + n };
    let connectome: Vec<usize> = (0..n * k_c).map(|_| rng.gen_range(0..sources)).collect();
    let kernel = ElmKernel::<f32>::new(&spec, &connectome);
    let w_s = uniform(&mut rng, n * k_c, 0.05);
    let mlp: Vec<(Vec<f32>, Vec<f32>)> = spec.mlp_shapes().iter().map(|&(o, i)| (uniform(&mut rng, n * o * i, 0.3), uniform(&mut rng, n * o, 0.1))).collect();
    let (w_y, b) = (uniform(&mut rng, n * d_m, 0.5), uniform(&mut rng, n, 0.1));
    let kappa_m: Vec<f32> = (0..n * d_m).map(|i| 0.5 + 0.49 * (i % d_m) as f32 / d_m as f32).collect();
    let okl: Vec<f32> = kappa_m.iter().map(|k| 1.0 - k).collect();
    let params = ElmParams { w_s: &w_s, mlp: mlp.iter().map(|(w, b)| (w.as_slice(), b.as_slice())).collect(), w_y: &w_y, b: &b, kappa_m: &kappa_m, one_minus_kappa_lambda: &okl };
    // spikes (5 % ones) or, as `elmlab bench` times without data, uniform values in [0, 1)
    let dense = args.get(4).map(String::as_str) == Some("dense");
    let inputs: Vec<Vec<f32>> = (0..steps).map(|_| (0..inp * batch).map(|_| if dense { rng.gen::<f32>() } else if rng.gen::<f32>() < 0.05 { 1.0 } else { 0.0 }).collect()).collect();
    let views: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let d_out: Vec<Vec<f32>> = (0..steps).map(|_| uniform(&mut rng, n * batch, 0.01)).collect();
    let (d_m_last, d_e_last, d_abs, d_act) = (vec![0.0; n * d_m * batch], vec![0.0; n * batch], vec![0.002; n * batch], vec![0.0002; n * batch]);
    let extras = || ElmExtras { mlp_penalty: true, activity_penalty: true, ..Default::default() };
    let (mut fwd, mut bwd, mut eval) = (Vec::new(), Vec::new(), Vec::new());
    let mut fingerprint = 0;
    for round in 0..=rounds {
        // an evaluation pass (no history kept), alternating with the training passes
        let t0 = Instant::now();
        let evaluated = kernel.run(&params, &views, vec![0.0; n * d_m * batch], vec![0.0; n * batch], vec![0.0; n * batch], ElmExtras { forward_only: true, ..Default::default() });
        let last_evaluated = evaluated.output(steps);
        drop(evaluated);
        if round > 0 {
            eval.push(t0.elapsed().as_secs_f64());
        }
        let t0 = Instant::now();
        let run = kernel.run(&params, &views, vec![0.0; n * d_m * batch], vec![0.0; n * batch], vec![0.0; n * batch], extras());
        let t1 = Instant::now();
        assert_eq!(run.output(steps), last_evaluated, "the evaluation pass computes the same outputs");
        let up = ElmUpstream { outputs: &d_out, m_last: &d_m_last, e_last: &d_e_last, abs_delta: Some(&d_abs), activity: Some(&d_act) };
        let g = kernel.backward(&params, &run, &up, spec.inputs_need_grad);
        let t2 = Instant::now();
        fingerprint = fnv1a(run.output(steps).iter().chain(&g.w_s).chain(g.mlp.iter().flat_map(|(w, b)| w.iter().chain(b))).chain(&g.w_y).chain(&g.b).chain(&g.m0).chain(g.inputs.iter().flatten()));
        if round > 0 {
            fwd.push((t1 - t0).as_secs_f64());
            bwd.push((t2 - t1).as_secs_f64());
        }
    }
    let (f, b, e) = (best(fwd), best(bwd), best(eval));
    let flops = (spec.plan().flops_per_step as f64) * (steps * batch) as f64;
    println!("{task} batch {batch}, {} threads: forward {:.1} ms ({:.1} GFLOP/s), backward {:.1} ms, per sequence fwd+bwd {:.2} ms", rayon::current_num_threads(), f * 1e3, flops / f / 1e9, b * 1e3, (f + b) / batch as f64 * 1e3);
    println!("  evaluation forward (no history kept) {:.1} ms", e * 1e3);
    // equal between two builds exactly when the last outputs and every gradient are bit-equal
    println!("  results fingerprint {fingerprint:016x}");
}

/// FNV-1a over the values' bits.
fn fnv1a<'a>(values: impl Iterator<Item = &'a f32>) -> u64 {
    values.fold(0xcbf2_9ce4_8422_2325, |h, v| v.to_bits().to_le_bytes().iter().fold(h, |h, &byte| (h ^ byte as u64).wrapping_mul(0x0100_0000_01b3)))
}
