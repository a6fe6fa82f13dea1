//! The fused layers against the op-by-op reference (values, final states, penalties and
//! every gradient, with dropout, carried state and reset sequences), the kernels in f64
//! against central finite differences, and the same numbers on 1 and 2 threads.

use crate::gated::lstm_kernel::{LstmForward, LstmWeights};
use elmlab_train::network::{Gradients, Network, NetworkState};
use elmlab_core::neuron::{ForwardContext, NetworkShape};
use elmlab_core::params::ParamStore;
use elmlab_core::registry::Registry;
use elmlab_core::rng::stream;
use elmlab_core::settings::{default_settings, Settings};
use elmlab_core::task::{Batch, Carry, Inputs, LossAt};
use rand::Rng;
use serde_json::{json, Value};

const D: usize = 6;
const C: usize = 4;
const T: usize = 7;

fn network(name: &str, settings: &[(&str, Value)], path: &str, units: usize) -> Network {
    let entry = Registry::builtin().neurons.get(name).unwrap();
    let mut m = default_settings(entry.fields).as_map().clone();
    for (k, v) in settings {
        m.insert(k.to_string(), v.clone());
    }
    m.insert("path".into(), json!(path));
    let model = (entry.build)(&Settings::from_map(m)).unwrap();
    let shape = NetworkShape { units, input_width: D, classes: C, fan_in: model.requested_fan_in() };
    let mut params = ParamStore::new();
    let mut rng = stream(11, "init", 0);
    let layers = model.build(&shape, &elmlab_core::conformance::AnySource, &mut params, &mut rng).unwrap();
    let last = layers.last().unwrap().units();
    params.insert_uniform("output.weight", &[C, last], 0.7, &mut rng).unwrap();
    params.insert_uniform("output.bias", &[C], 0.7, &mut rng).unwrap();
    Network { layers, params, classes: C, input_width: D }
}

fn batch(seed: u64, carry: Carry, loss_at: LossAt, b: usize) -> Batch {
    let mut rng = stream(seed, "batch", 0);
    let inputs = (0..T * b * D).map(|_| rng.gen_range(-1.0..1.0f32)).collect();
    let reads = if loss_at == LossAt::EveryStep { T } else { 1 };
    let targets = (0..reads * b).map(|_| rng.gen_range(0..C)).collect();
    Batch { steps: T, batch: b, inputs: Inputs::Dense(inputs), targets, carry }
}

/// `got` equals `want` to `rel` relative to the tensor's largest magnitude, entry by entry
/// (`‖got − want‖∞ ≤ rel·‖want‖∞`): both paths round in f32, in different orders, so
/// small entries that are sums of cancelling terms differ more relative to themselves.
fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rel * w.abs().max(scale).max(1e-30), "{what}[{i}]: fused {g} vs reference {w} (tensor scale {scale})");
    }
}

fn state_values(s: &NetworkState) -> Vec<Vec<f32>> {
    s.iter().flat_map(|layer| layer.iter().map(|m| m.as_vec())).collect()
}

/// Two batches (the second continues the first's state with one sequence reset), in
/// training mode (dropout and penalties on), on both paths.
fn train_pass(net: &Network, loss_at: LossAt, b: usize) -> (Gradients, Gradients) {
    let first = net.loss_and_gradients(&mut ForwardContext::new(true, stream(5, "forward", 0)), &batch(1, Carry::Fresh, loss_at, b), loss_at, 0.1, None).unwrap();
    let mut reset = vec![false; b];
    reset[1] = true;
    let second = net.loss_and_gradients(&mut ForwardContext::new(true, stream(5, "forward", 1)), &batch(2, Carry::Continue { reset }, loss_at, b), loss_at, 0.1, Some(&first.final_state)).unwrap();
    (first, second)
}

fn assert_paths_equal(name: &str, settings: &[(&str, Value)], units: usize, b: usize) {
    let what = format!("{name} {settings:?} batch {b}");
    let (reference, fused) = (network(name, settings, "reference", units), network(name, settings, "fused", units));
    for loss_at in [LossAt::EveryStep, LossAt::LastStep] {
        let (r, f) = (train_pass(&reference, loss_at, b), train_pass(&fused, loss_at, b));
        for ((rg, fg), batch) in [(&r.0, &f.0), (&r.1, &f.1)].into_iter().zip(["first", "second"]) {
            let at = format!("{what} {loss_at:?} {batch} batch");
            assert_close(&format!("{at} loss"), &[fg.loss], &[rg.loss], 1e-5);
            assert_eq!(rg.penalties.len(), fg.penalties.len(), "{at}: penalties");
            for ((rn, rv), (fnm, fv)) in rg.penalties.iter().zip(&fg.penalties) {
                assert_eq!(rn, fnm);
                assert_close(&format!("{at} penalty {rn}"), &[*fv], &[*rv], 1e-5);
            }
            for ((rs, fs), i) in state_values(&rg.final_state).iter().zip(state_values(&fg.final_state)).zip(0..) {
                assert_close(&format!("{at} final state {i}"), &fs, rs, 1e-5);
            }
            for (p, (rgr, fgr)) in reference.params.iter().zip(rg.grads.iter().zip(&fg.grads)) {
                let want = rgr.as_vec();
                assert!(want.iter().any(|v| *v != 0.0) || p.name.ends_with(".b"), "{at}: reference gradient of {} is all zero", p.name);
                assert_close(&format!("{at} d/d {}", p.name), &fgr.as_vec(), &want, 1e-5);
            }
        }
        // evaluation mode: logits at every step
        let eval = batch(3, Carry::Fresh, LossAt::EveryStep, b);
        let logits = |net: &Network| -> Vec<f32> {
            net.forward(&mut ForwardContext::new(false, stream(0, "eval", 0)), &eval, LossAt::EveryStep, None).unwrap().step_logits(eval.batch).concat()
        };
        assert_close(&format!("{what} eval logits"), &logits(&fused), &logits(&reference), 1e-5);
        // an evaluation pass (no backward follows, no history kept), from a carried state:
        // bit for bit the logits and final state of a pass that keeps its history
        let start = train_pass(&fused, loss_at, b).1.final_state;
        let pass = |mut ctx: ForwardContext| {
            let mut out = fused.forward(&mut ctx, &eval, LossAt::EveryStep, Some(&start)).unwrap();
            let state = state_values(&std::mem::take(&mut out.final_state));
            (out.step_logits(eval.batch).concat(), state)
        };
        let kept = pass(ForwardContext::new(false, stream(0, "eval", 0)));
        assert!(kept.0.iter().chain(kept.1.iter().flatten()).all(|v| v.is_finite()), "{what}: finite values");
        assert_eq!(pass(ForwardContext::evaluation(stream(0, "eval", 0))), kept, "{what}: evaluation pass");
    }
}

/// The fused path's gradients, run on a pool of `threads` threads.
fn fused_grads_on(threads: usize, name: &str, settings: &[(&str, Value)], units: usize) -> Vec<Vec<f32>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let net = network(name, settings, "fused", units);
        let (a, b) = train_pass(&net, LossAt::EveryStep, 3);
        a.grads.iter().chain(&b.grads).map(|g| g.as_vec()).chain([vec![a.loss, b.loss]]).collect()
    })
}

#[test]
fn fused_lstm_equals_reference() {
    assert_paths_equal("lstm", &[], 5, 3);
    assert_paths_equal("lstm", &[("forget_bias", json!(1.0))], 70, 8);
}

#[test]
fn fused_lstm_same_numbers_on_one_and_two_threads() {
    // 96 units: large enough for the products and the pointwise steps to split over threads
    assert_eq!(fused_grads_on(1, "lstm", &[], 96), fused_grads_on(2, "lstm", &[], 96));
}

/// Every entry of `analytic` (the gradient of `loss` by each variable) equals the f64
/// central difference to `tol` (relative above 1).
fn assert_finite_differences(what: &str, vars: &[Vec<f64>], analytic: &[Vec<f64>], loss: impl Fn(&[Vec<f64>]) -> f64, tol: f64) {
    assert_eq!(analytic.len(), vars.len(), "{what}: one gradient per variable");
    let eps = 1e-6;
    for (k, grad) in analytic.iter().enumerate() {
        for j in 0..grad.len() {
            let mut plus = vars.to_vec();
            plus[k][j] += eps;
            let mut minus = vars.to_vec();
            minus[k][j] -= eps;
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * eps);
            assert!((numeric - grad[j]).abs() < tol * numeric.abs().max(1.0), "{what}: variable {k}[{j}]: backward {} vs finite difference {numeric}", grad[j]);
        }
    }
}

/// Central differences in f64 of `L = Σ_t r_t·h_t + s·c_T` against the kernel's backward.
#[test]
fn lstm_kernel_gradients_equal_finite_differences_in_f64() {
    let (h, i, b, t) = (3usize, 2usize, 2usize, 4usize);
    let mut rng = stream(4, "lstm-fd", 0);
    let mut draw = |n: usize| -> Vec<f64> { (0..n).map(|_| rng.gen_range(-0.8..0.8)).collect() };
    // inputs: w_ih, w_hh, b_ih, b_hh, x_0..x_{T-1}, h0, c0
    let mut vars: Vec<Vec<f64>> = vec![draw(4 * h * i), draw(4 * h * h), draw(4 * h), draw(4 * h)];
    vars.extend((0..t).map(|_| draw(i * b)));
    vars.push(draw(h * b));
    vars.push(draw(h * b));
    let r: Vec<Vec<f64>> = (0..t).map(|_| draw(h * b)).collect();
    let s = draw(h * b);
    let loss = |v: &[Vec<f64>]| -> f64 {
        let w = LstmWeights { w_ih: &v[0], w_hh: &v[1], b_ih: &v[2], b_hh: &v[3] };
        let xs: Vec<&[f64]> = v[4..4 + t].iter().map(|x| x.as_slice()).collect();
        let run = LstmForward::run(&w, h, i, b, &xs, &v[4 + t], &v[5 + t]);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        (0..t).map(|k| dot(&r[k], &run.h(k + 1))).sum::<f64>() + dot(&s, &run.c(t))
    };
    let w = LstmWeights { w_ih: &vars[0], w_hh: &vars[1], b_ih: &vars[2], b_hh: &vars[3] };
    let xs: Vec<&[f64]> = vars[4..4 + t].iter().map(|x| x.as_slice()).collect();
    let g = LstmForward::run(&w, h, i, b, &xs, &vars[4 + t], &vars[5 + t]).backward(&r.concat(), &s, true);
    let mut analytic: Vec<Vec<f64>> = vec![g.w_ih, g.w_hh, g.bias.clone(), g.bias];
    analytic.extend(g.inputs);
    analytic.push(g.h0);
    analytic.push(g.c0);
    assert_finite_differences("lstm", &vars, &analytic, loss, 1e-8);
}

fn small_elm(extra: &[(&'static str, Value)]) -> Vec<(&'static str, Value)> {
    let mut s = vec![
        ("memory", json!(3)),
        ("mlp_hidden", json!(4)),
        ("branches", json!(3)),
        ("synapses_per_branch", json!(2)),
        ("tau_memory", json!([1.0, 30.0])),
    ];
    s.extend_from_slice(extra);
    s
}

#[test]
fn fused_elm_equals_reference_for_every_option() {
    let cases: Vec<Vec<(&str, Value)>> = vec![
        vec![],
        vec![("mlp_layers", json!(0))],
        vec![("mlp_layers", json!(2)), ("mlp_activation", json!("silu"))],
        vec![("mlp_layers", json!(3)), ("mlp_activation", json!("relu"))],
        vec![("high_pass_tau", Value::Null), ("activation", json!("identity"))],
        vec![("dropout", json!(0.3)), ("mlp_penalty", json!(0.05)), ("activity_penalty", json!(0.1))],
        vec![("dropout", json!(0.2)), ("mlp_penalty", json!(0.5)), ("high_pass_tau", Value::Null), ("mlp_layers", json!(2))],
    ];
    for extra in cases {
        assert_paths_equal("elm", &small_elm(&extra), 5, 3);
    }
    // batch 8 (one block of sequences, no padding) and 10 (two blocks, padded)
    assert_paths_equal("elm", &small_elm(&[("dropout", json!(0.2)), ("mlp_penalty", json!(0.1))]), 6, 8);
    assert_paths_equal("elm", &small_elm(&[("activity_penalty", json!(0.1)), ("mlp_layers", json!(2))]), 6, 10);
    // branches of 13 synapses (two synapse-gradient groups, an unrolled gather with a
    // remainder) and of 17 (more than the gather unrolls: the count read at run time)
    assert_paths_equal("elm", &small_elm(&[("synapses_per_branch", json!(13)), ("dropout", json!(0.1))]), 6, 3);
    assert_paths_equal("elm", &small_elm(&[("synapses_per_branch", json!(17)), ("branches", json!(2))]), 6, 9);
    // wider: enough neurons for several parallel tasks per step
    assert_paths_equal("elm", &small_elm(&[("dropout", json!(0.1)), ("activity_penalty", json!(0.2)), ("mlp_penalty", json!(0.1))]), 40, 3);
}

#[test]
fn fused_elm_same_numbers_on_one_and_two_threads() {
    let settings = small_elm(&[("dropout", json!(0.1)), ("activity_penalty", json!(0.2)), ("mlp_penalty", json!(0.1))]);
    assert_eq!(fused_grads_on(1, "elm", &settings, 64), fused_grads_on(2, "elm", &settings, 64));
}

/// The kernel's parameters from the list `[w_s, (weight, bias) per MLP layer, w_y, b]`.
fn listed_params<'a>(p: &'a [Vec<f64>], kappa_m: &'a [f64], one_minus_kappa_lambda: &'a [f64]) -> crate::elm::kernel::ElmParams<'a, f64> {
    let layers = (p.len() - 3) / 2;
    crate::elm::kernel::ElmParams {
        w_s: &p[0],
        mlp: (0..layers).map(|l| (p[1 + 2 * l].as_slice(), p[2 + 2 * l].as_slice())).collect(),
        w_y: &p[p.len() - 2],
        b: &p[p.len() - 1],
        kappa_m,
        one_minus_kappa_lambda,
    }
}

/// A small ELM layer for the kernel-level tests: `n` neurons on `i` inputs, two branches
/// of two synapses, a two-layer relu² MLP, high-pass on, no dropout or penalties.
fn kernel_spec(n: usize, i: usize) -> crate::elm::LayerSpec {
    crate::elm::LayerSpec {
        name: "hidden".into(),
        units: n,
        input_width: i,
        memory: 2,
        mlp_hidden: 3,
        mlp_layers: 2,
        mlp_activation: crate::elm::MlpActivation::Relu2,
        branches: 2,
        synapses_per_branch: 2,
        lambda: 5.0,
        tau_memory: (1.0, 20.0),
        learn_tau: false,
        high_pass_tau: Some(3.0),
        input_scale: 2.0,
        relu_output: true,
        dropout: 0.0,
        mlp_penalty: 0.0,
        activity_penalty: 0.0,
        path: crate::path::Path::Fused,
        inputs_need_grad: true,
    }
}

/// Central differences in f64 of `L = Σ_t r_t·a_t + s·m_T + q·e_T + u·Σ|Δ| + v·Σrelu(a)`
/// against the ELM kernel's backward, with dropout masks, both penalty sums, high-pass,
/// a two-layer MLP, a non-zero initial state and per-neuron timescale factors. The last
/// two cases contract the synapse weights over three steps at a time (seven steps: 3, 3,
/// 1), one of them a layer whose synapses all read inputs (a readout's wiring: its team
/// runs each neuron through a contraction's steps between two barriers).
#[test]
fn elm_kernel_gradients_equal_finite_differences_in_f64() {
    use crate::elm::kernel::{ElmExtras, ElmGrads, ElmKernel, ElmUpstream};
    use crate::elm::{LayerSpec, MlpActivation};
    let (n, i, b) = (3usize, 2usize, 2usize);
    // a step's sources in f64: (i + n) rows of one block of eight sequences
    let three_steps = 3 * (i + n) * 8 * std::mem::size_of::<f64>();
    let cases = [
        (MlpActivation::Relu2, Some(3.0), true, false, None, 4usize),
        (MlpActivation::Silu, None, false, false, None, 4),
        (MlpActivation::Relu2, Some(3.0), true, false, Some(three_steps), 7),
        (MlpActivation::Relu2, Some(3.0), true, true, Some(three_steps), 7),
    ];
    for (activation, high_pass, relu_output, feed_forward, contraction, t) in cases {
        let spec = LayerSpec { mlp_activation: activation, high_pass_tau: high_pass, relu_output, ..kernel_spec(n, i) };
        let mut rng = stream(6, "elm-fd", 0);
        let sources = if feed_forward { i } else { i + n };
        let connectome: Vec<usize> = (0..n * spec.k_c()).map(|_| rng.gen_range(0..sources)).collect();
        let build = || {
            let kernel = ElmKernel::<f64>::new(&spec, &connectome);
            match contraction {
                Some(bytes) => kernel.with_contraction_bytes(bytes),
                None => kernel,
            }
        };
        let kernel = build();
        let mut draw = |len: usize| -> Vec<f64> { (0..len).map(|_| rng.gen_range(-0.9..0.9)).collect() };
        // variables: w_s, (weight, bias) × 3 layers, w_y, b, x_0..x_{T-1}, m0, e0, a0
        let mut vars: Vec<Vec<f64>> = vec![draw(n * spec.k_c())];
        for (o, inp) in spec.mlp_shapes() {
            vars.push(draw(n * o * inp));
            vars.push(draw(n * o));
        }
        vars.push(draw(n * spec.memory));
        vars.push(draw(n));
        let first_input = vars.len();
        vars.extend((0..t).map(|_| draw(i * b)));
        vars.extend([draw(n * spec.memory * b), draw(n * b), draw(n * b).iter().map(|v| v.abs()).collect()]);
        // per-neuron timescale factors κ_m in (0.1, 1) and 1 − κ_λ in (0.05, 0.95)
        let first_factor = vars.len();
        vars.push(draw(n * spec.memory).iter().map(|v| 0.55 + v / 2.0).collect());
        vars.push(draw(n * spec.memory).iter().map(|v| 0.5 + v / 2.0).collect());
        let masks = (draw(i * b).iter().map(|v| if *v > -0.5 { 1.25 } else { 0.0 }).collect::<Vec<f64>>(), draw(n * b).iter().map(|v| if *v > -0.5 { 1.25 } else { 0.0 }).collect::<Vec<f64>>());
        let (r, s_m, s_e, s_abs, s_act) = ((0..t).map(|_| draw(n * b)).collect::<Vec<_>>(), draw(n * spec.memory * b), draw(n * b), draw(n * b), draw(n * b));
        let params = |v: &[Vec<f64>]| -> Vec<Vec<f64>> { v[..first_input].to_vec() };
        let run_on = |kernel: &ElmKernel<f64>, v: &[Vec<f64>]| {
            let p = params(v);
            let ep = listed_params(&p, &v[first_factor], &v[first_factor + 1]);
            let xs: Vec<&[f64]> = v[first_input..first_input + t].iter().map(|x| x.as_slice()).collect();
            let extras = ElmExtras { input_mask: Some(masks.0.clone()), recurrent_mask: Some(masks.1.clone()), mlp_penalty: true, activity_penalty: true, kappa_grads: true, forward_only: false };
            let st = &v[first_input + t..];
            let out = kernel.run(&ep, &xs, st[0].clone(), st[1].clone(), st[2].clone(), extras);
            (out, p)
        };
        let run = |v: &[Vec<f64>]| run_on(&kernel, v);
        // the gradients in the order of `vars`
        let listed = |g: ElmGrads<f64>| -> Vec<Vec<f64>> {
            let mut all = vec![g.w_s];
            for (w, bias) in g.mlp {
                all.extend([w, bias]);
            }
            all.extend([g.w_y, g.b]);
            all.extend(g.inputs);
            all.extend([g.m0, g.e0, g.a0, g.kappa_m, g.one_minus_kappa_lambda]);
            all
        };
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let loss = |v: &[Vec<f64>]| -> f64 {
            let (out, _) = run(v);
            (0..t).map(|k| dot(&r[k], &out.output(k + 1))).sum::<f64>() + dot(&s_m, &out.memory(t)) + dot(&s_e, &out.high_pass(t)) + dot(&s_abs, &out.abs_delta()) + dot(&s_act, &out.activity())
        };
        let (out, p) = run(&vars);
        let ep = listed_params(&p, &vars[first_factor], &vars[first_factor + 1]);
        let up = ElmUpstream { outputs: &r, m_last: &s_m, e_last: &s_e, abs_delta: Some(&s_abs), activity: Some(&s_act) };
        let analytic = listed(kernel.backward(&ep, &out, &up, true));
        assert_finite_differences(&format!("elm {activation:?}, feed-forward {feed_forward}, {t} steps"), &vars, &analytic, loss, 1e-7);
        // the same passes asking for each next neuron's data ahead (a large layer's paths):
        // a hint, so every number is the same
        let prefetching = build().with_cached_bytes(0);
        let (out_p, _) = run_on(&prefetching, &vars);
        assert_eq!((1..=t).map(|k| out_p.output(k)).collect::<Vec<_>>(), (1..=t).map(|k| out.output(k)).collect::<Vec<_>>(), "prefetching: outputs");
        assert_eq!(listed(prefetching.backward(&ep, &out_p, &up, true)), analytic, "prefetching: gradients");
    }
}

/// The f32 ELM kernel's forward takes reused buffers (`Real::scratch`, contents left by
/// earlier uses) for its sources and states: a run on buffers just left by a wider batch
/// (non-zero values where this batch has padding) gives bit for bit what a run on a fresh
/// thread gives.
#[test]
fn elm_kernel_on_reused_buffers_equals_a_fresh_run() {
    use crate::elm::kernel::{ElmExtras, ElmKernel, ElmParams, ElmUpstream};
    use crate::elm::LayerSpec;
    let (n, i, t) = (6usize, 5usize, 7usize);
    let spec = LayerSpec { mlp_layers: 1, synapses_per_branch: 3, ..kernel_spec(n, i) };
    let mut rng = stream(7, "elm-reuse", 0);
    let connectome: Vec<usize> = (0..n * spec.k_c()).map(|_| rng.gen_range(0..i + n)).collect();
    let kernel = ElmKernel::<f32>::new(&spec, &connectome);
    let mut draw = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.gen_range(-0.9..0.9)).collect() };
    let w_s = draw(n * spec.k_c());
    let mlp: Vec<(Vec<f32>, Vec<f32>)> = spec.mlp_shapes().iter().map(|&(o, inp)| (draw(n * o * inp), draw(n * o))).collect();
    let (w_y, b, kappa_m, okl) = (draw(n * spec.memory), draw(n), vec![0.8f32; n * spec.memory], vec![0.2f32; n * spec.memory]);
    let params = ElmParams { w_s: &w_s, mlp: mlp.iter().map(|(w, b)| (w.as_slice(), b.as_slice())).collect(), w_y: &w_y, b: &b, kappa_m: &kappa_m, one_minus_kappa_lambda: &okl };
    // the wide batch's sequences 10..16 (this batch's padding) are NaN: a value of theirs
    // left in a buffer and read would turn this batch's sums into NaN
    let wide_inputs: Vec<Vec<f32>> = (0..t).map(|_| draw(i * 16).iter().enumerate().map(|(k, v)| if k % 16 >= 10 { f32::NAN } else { v * 50.0 }).collect()).collect();
    let inputs: Vec<Vec<f32>> = (0..t).map(|_| draw(i * 10)).collect();
    let (d_out, d_m) = ((0..t).map(|_| draw(n * 10)).collect::<Vec<_>>(), draw(n * spec.memory * 10));
    let batch_10 = || {
        let xs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let run = kernel.run(&params, &xs, vec![0.0; n * spec.memory * 10], vec![0.0; n * 10], vec![0.0; n * 10], ElmExtras::default());
        let up = ElmUpstream { outputs: &d_out, m_last: &d_m, e_last: &vec![0.0; n * 10], abs_delta: None, activity: None };
        let g = kernel.backward(&params, &run, &up, true);
        let outputs: Vec<Vec<f32>> = (0..=t).map(|k| run.output(k)).collect();
        (outputs, run.memory(t), g.w_s, g.mlp, g.w_y, g.inputs)
    };
    let fresh = std::thread::scope(|scope| scope.spawn(batch_10).join().expect("the fresh run"));
    // a batch of 16 (no padding) leaves its buffers behind on this thread
    let xs: Vec<&[f32]> = wide_inputs.iter().map(Vec::as_slice).collect();
    drop(kernel.run(&params, &xs, vec![1.0; n * spec.memory * 16], vec![0.5; n * 16], vec![1.0; n * 16], ElmExtras::default()));
    assert_eq!(batch_10(), fresh);
}

/// A forward-only pass (evaluation: two steps of states and sources kept, the inputs filled
/// by the team step by step) gives the outputs and final states of a full pass, bit for
/// bit: recurrent and readout wiring, whole and padded blocks of sequences, with masks and
/// a non-zero start, on two threads (the ring's slots are shared between them).
#[test]
fn elm_kernel_forward_only_equals_a_full_pass() {
    use crate::elm::kernel::{ElmExtras, ElmKernel, ElmParams};
    use crate::elm::LayerSpec;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let (n, i, t) = (40usize, 5usize, 9usize);
    for (readout, b) in [(false, 3usize), (false, 8), (false, 10), (true, 3), (true, 16)] {
        let spec = LayerSpec { mlp_layers: 1, synapses_per_branch: 3, ..kernel_spec(n, i) };
        let mut rng = stream(8, "elm-forward-only", b as u64);
        let sources = if readout { i } else { i + n };
        let connectome: Vec<usize> = (0..n * spec.k_c()).map(|_| rng.gen_range(0..sources)).collect();
        let kernel = ElmKernel::<f32>::new(&spec, &connectome);
        let mut draw = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.gen_range(-0.9..0.9)).collect() };
        let w_s = draw(n * spec.k_c());
        let mlp: Vec<(Vec<f32>, Vec<f32>)> = spec.mlp_shapes().iter().map(|&(o, inp)| (draw(n * o * inp), draw(n * o))).collect();
        let (w_y, bias) = (draw(n * spec.memory), draw(n));
        let kappa_m: Vec<f32> = draw(n * spec.memory).iter().map(|v| 0.5 + 0.4 * v).collect();
        let okl: Vec<f32> = kappa_m.iter().map(|k| 1.0 - k).collect();
        let params = ElmParams { w_s: &w_s, mlp: mlp.iter().map(|(w, b)| (w.as_slice(), b.as_slice())).collect(), w_y: &w_y, b: &bias, kappa_m: &kappa_m, one_minus_kappa_lambda: &okl };
        let inputs: Vec<Vec<f32>> = (0..t).map(|_| draw(i * b)).collect();
        let xs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let (m0, e0, a0) = (draw(n * spec.memory * b), draw(n * b), draw(n * b).iter().map(|v| v.abs()).collect::<Vec<_>>());
        let (input_mask, recurrent_mask) = (draw(i * b).iter().map(|v| if *v > -0.5 { 1.3 } else { 0.0 }).collect::<Vec<f32>>(), draw(n * b).iter().map(|v| if *v > -0.5 { 1.3 } else { 0.0 }).collect::<Vec<f32>>());
        let results = |forward_only: bool| {
            let extras = ElmExtras { input_mask: Some(input_mask.clone()), recurrent_mask: Some(recurrent_mask.clone()), forward_only, ..Default::default() };
            let run = pool.install(|| kernel.run(&params, &xs, m0.clone(), e0.clone(), a0.clone(), extras));
            let outputs: Vec<Vec<f32>> = (1..=t).map(|k| run.output(k)).collect();
            (outputs, run.memory(t), run.high_pass(t))
        };
        let full = results(false);
        assert!(full.0.iter().flatten().any(|v| *v != 0.0), "readout {readout}, batch {b}: some output is not zero");
        assert_eq!(results(true), full, "readout {readout}, batch {b}");
    }
}

/// The LSTM's forward-only pass (each thread's gates in a buffer of its own, two steps of
/// the cell state) gives the outputs and final cell state of a full pass, bit for bit.
#[test]
fn lstm_kernel_forward_only_equals_a_full_pass() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    // 150 units: three chunks, the last one partial; batch 20: a partial block of lanes
    let (h, i, b, t) = (150usize, 4usize, 20usize, 6usize);
    let mut rng = stream(9, "lstm-forward-only", 0);
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-0.5..0.5)).collect() };
    let (w_ih, w_hh, b_ih, b_hh) = (draw(4 * h * i), draw(4 * h * h), draw(4 * h), draw(4 * h));
    let w = LstmWeights { w_ih: &w_ih, w_hh: &w_hh, b_ih: &b_ih, b_hh: &b_hh };
    let inputs: Vec<Vec<f32>> = (0..t).map(|_| draw(i * b)).collect();
    let (h0, c0) = (draw(h * b), draw(h * b));
    let results = |forward_only: bool| {
        let run = pool.install(|| LstmForward::run_with(&w, h, i, b, t, |k, out| out.copy_from_slice(&inputs[k]), &h0, &c0, forward_only));
        (run.outputs(), run.c(t))
    };
    let full = results(false);
    assert!(full.0.iter().any(|v| *v != 0.0));
    assert_eq!(results(true), full);
}

/// The f32 kernels' `tanh` (one `exp`, series near zero) against f64 `tanh`.
#[test]
fn fast_f32_tanh_is_within_f32_rounding_of_tanh() {
    use super::Real;
    let (mut worst_abs, mut worst_rel) = (0.0f64, 0.0f64);
    for i in -400_000..=400_000 {
        let x = i as f32 * 5e-5; // [-20, 20]
        let (got, want) = (Real::tanh(x) as f64, (x as f64).tanh());
        worst_abs = worst_abs.max((got - want).abs());
        if want != 0.0 {
            worst_rel = worst_rel.max(((got - want) / want).abs());
        }
    }
    assert!(worst_abs < 2e-7 && worst_rel < 2e-6, "abs {worst_abs:e}, rel {worst_rel:e}");
}

/// The CUDA kernels, compiled as host C++ (`fused::kernels`), behind the same fused ops as
/// on a GPU: whole networks against the reference layers (both batches, carried state with
/// a reset, dropout, penalties, evaluation), so that what surrounds the kernels in a CUDA
/// build (inputs, outputs, gradients on the tape) is checked without a GPU.
#[test]
#[cfg(not(feature = "cuda"))]
fn cuda_kernels_on_the_host_shim_equal_the_reference_in_whole_networks() {
    use crate::fused::kernels::on_host_kernels;
    on_host_kernels(|| {
        assert_paths_equal("elm", &small_elm(&[]), 5, 3);
        assert_paths_equal("elm", &small_elm(&[("mlp_layers", json!(2)), ("mlp_activation", json!("silu"))]), 5, 3);
        assert_paths_equal("elm", &small_elm(&[("dropout", json!(0.3)), ("mlp_penalty", json!(0.05)), ("activity_penalty", json!(0.1))]), 6, 10);
        assert_paths_equal("elm", &small_elm(&[("high_pass_tau", Value::Null), ("activation", json!("identity")), ("learn_tau", json!(true))]), 5, 2);
        assert_paths_equal("lstm", &[("forget_bias", json!(1.0))], 7, 3);
    });
}
