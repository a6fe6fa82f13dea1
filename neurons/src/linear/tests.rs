//! Checks of the linear-unit layer against an independent f64 implementation written
//! with plain loops, and of its gradients against f64 finite differences of that
//! implementation.

use super::*;
use elmlab_core::conformance::{check_entry_fields, check_neuron, AnySource};
use elmlab_core::neuron::{ForwardContext, NetworkShape};
use elmlab_train::network::Network;
use elmlab_core::rng::stream;
use elmlab_core::task::{Batch, Carry, Inputs, LossAt};
use rand::Rng;


const D_IN: usize = 3;
const UNITS: usize = 4;
const K: usize = 5;
const C: usize = 3;
const T: usize = 6;
const B: usize = 2;

fn model(relu: bool) -> CellModel<LinearUnits> {
    CellModel::new(LinearUnits { synapses: K, tau: (1.5, 20.0), input_scale: 2.0, relu })
}

fn network(relu: bool) -> (Network, Vec<Vec<usize>>) {
    let m = model(relu);
    let shape = NetworkShape { units: UNITS, input_width: D_IN, classes: C, fan_in: Some(K) };
    let mut store = ParamStore::new();
    let mut rng = stream(7, "init", 0);
    let layers = m.build(&shape, &AnySource, &mut store, &mut rng).unwrap();
    // Non-zero biases so the bias gradient is exercised away from relu's kink.
    let b: Vec<f32> = (0..UNITS).map(|i| 0.1 * i as f32 - 0.05).collect();
    store.load_values("hidden.b", b).unwrap();
    store.insert_uniform("output.weight", &[C, UNITS], 0.5, &mut rng).unwrap();
    store.insert_uniform("output.bias", &[C], 0.5, &mut rng).unwrap();
    // Recover the same connectome: the wiring is the first thing drawn from the stream.
    let wiring = AnySource.wire(WiringShape { units: UNITS, input_width: D_IN, fan_in: K }, &mut stream(7, "init", 0)).unwrap();
    (Network { layers, params: store, classes: C, input_width: D_IN }, wiring.indices)
}

fn batch(at: LossAt) -> Batch {
    let mut rng = stream(1, "batch", 0);
    let inputs = (0..T * B * D_IN).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let targets = match at {
        LossAt::LastStep => vec![2, 0],
        LossAt::EveryStep => (0..T * B).map(|i| i % C).collect(),
    };
    Batch { steps: T, batch: B, inputs: Inputs::Dense(inputs), targets, carry: Carry::Fresh }
}

/// The reference: the spec's equations in f64, parameters by name.
fn reference_loss(params: &std::collections::BTreeMap<String, Vec<f64>>, idx: &[Vec<usize>], b: &Batch, at: LossAt, relu: bool) -> f64 {
    let (w_s, bias, hw, hb) = (&params["hidden.w_s"], &params["hidden.b"], &params["output.weight"], &params["output.bias"]);
    let kappa: Vec<f64> = log_spaced(1.5, 20.0, UNITS).iter().map(|t| (-1.0 / t).exp()).collect();
    let Inputs::Dense(x) = &b.inputs else { unreachable!() };
    let mut total = 0.0;
    let mut reads = 0;
    for s in 0..B {
        let (mut h, mut a) = (vec![0.0; UNITS], vec![0.0; UNITS]);
        for t in 0..T {
            let mut v: Vec<f64> = (0..D_IN).map(|d| x[(t * B + s) * D_IN + d] as f64).collect();
            v.extend(a.iter());
            for i in 0..UNITS {
                let beta: f64 = 2.0 * (0..K).map(|k| w_s[i * K + k] * v[idx[i][k]]).sum::<f64>();
                h[i] = kappa[i] * h[i] + (1.0 - kappa[i]) * beta;
            }
            a = (0..UNITS).map(|i| if relu { (h[i] + bias[i]).max(0.0) } else { h[i] + bias[i] }).collect();
            let read = match at {
                LossAt::LastStep => (t == T - 1).then(|| b.targets[s]),
                LossAt::EveryStep => Some(b.targets[t * B + s]),
            };
            if let Some(y) = read {
                let logits: Vec<f64> = (0..C).map(|c| hb[c] + (0..UNITS).map(|i| hw[c * UNITS + i] * a[i]).sum::<f64>()).collect();
                let max = logits.iter().cloned().fold(f64::MIN, f64::max);
                let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
                total += lse - logits[y];
                reads += 1;
            }
        }
    }
    total / reads as f64
}

fn params_f64(net: &Network) -> std::collections::BTreeMap<String, Vec<f64>> {
    net.params.iter().map(|p| (p.name.clone(), p.value.as_vec().iter().map(|&v| v as f64).collect())).collect()
}

fn check(at: LossAt, relu: bool) {
    let (net, idx) = network(relu);
    let b = batch(at);
    let mut ctx = ForwardContext::new(true, stream(0, "fwd", 0));
    let g = net.loss_and_gradients(&mut ctx, &b, at, 0.0, None).unwrap();
    let base = params_f64(&net);
    let expect = reference_loss(&base, &idx, &b, at, relu);
    assert!((g.loss as f64 - expect).abs() < 1e-5 * expect.abs().max(1.0), "loss {} vs reference {expect}", g.loss);
    for (pi, p) in net.params.iter().enumerate() {
        let got = g.grads[pi].as_vec();
        for j in 0..p.numel() {
            let h = 1e-6;
            let mut plus = base.clone();
            plus.get_mut(&p.name).unwrap()[j] += h;
            let mut minus = base.clone();
            minus.get_mut(&p.name).unwrap()[j] -= h;
            let fd = (reference_loss(&plus, &idx, &b, at, relu) - reference_loss(&minus, &idx, &b, at, relu)) / (2.0 * h);
            let err = (got[j] as f64 - fd).abs();
            assert!(err < 2e-4 * fd.abs().max(1e-2), "{}[{j}]: autograd {} vs finite difference {fd}", p.name, got[j]);
        }
    }
}

#[test]
fn last_step_loss_and_gradients_match_f64_reference() {
    check(LossAt::LastStep, true);
}

#[test]
fn every_step_loss_and_gradients_match_f64_reference() {
    check(LossAt::EveryStep, false);
    check(LossAt::EveryStep, true);
}

#[test]
fn closed_form_count_equals_real_tensors() {
    for (units, k) in [(1, 1), (7, 13), (64, 300)] {
        let m = CellModel::new(LinearUnits { synapses: k, tau: (1.0, 500.0), input_scale: 1.0, relu: true });
        let shape = NetworkShape { units, input_width: 9, classes: 4, fan_in: Some(k) };
        let mut store = ParamStore::new();
        m.build(&shape, &AnySource, &mut store, &mut stream(0, "init", 0)).unwrap();
        assert_eq!(store.count("hidden."), m.plan(&shape)[0].params);
        assert_eq!(store.count(""), units * (k + 1));
    }
}

#[test]
fn registered_with_defaults() {
    let reg = elmlab_core::registry::Registry::builtin();
    let e = reg.neurons.get("linear").unwrap();
    let names: Vec<_> = e.fields.iter().map(|f| f.name).collect();
    assert_eq!(names, ["synapses", "tau", "input_scale", "activation"]);
    check_entry_fields(e);
    let built = (e.build)(&elmlab_core::settings::default_settings(e.fields)).unwrap();
    assert_eq!(built.requested_fan_in(), Some(300));
}

#[test]
fn conforms_with_each_activation() {
    check_neuron(&model(true));
    check_neuron(&model(false));
}
