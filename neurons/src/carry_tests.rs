//! Carried state, for every registered neuron model: two segments of 50 steps with the
//! state carried equal one segment of 100 in the forward pass, and no gradient flows
//! back across the segment boundary.

use elmlab_core::dfdx::prelude::HasShape;
use elmlab_train::network::{Network, NetworkState};
use elmlab_core::neuron::{ForwardContext, NetworkShape};
use elmlab_core::params::ParamStore;
use elmlab_core::registry::Registry;
use elmlab_core::rng::stream;
use elmlab_core::settings::{default_settings, Settings};
use elmlab_core::task::{Batch, Carry, Inputs, LossAt};
use rand::Rng;


const D: usize = 5;
const C: usize = 5;
const B: usize = 2;

/// Small settings for each model, so the test stays fast.
fn small(name: &str) -> Settings {
    let entry = Registry::builtin().neurons.get(name).unwrap();
    let mut m = default_settings(entry.fields).as_map().clone();
    let small: &[(&str, serde_json::Value)] = match name {
        "elm" => &[("memory", serde_json::json!(2)), ("branches", serde_json::json!(2)), ("synapses_per_branch", serde_json::json!(3)), ("tau_memory", serde_json::json!([1.0, 30.0]))],
        "linear" => &[("synapses", serde_json::json!(6)), ("tau", serde_json::json!([1.0, 30.0]))],
        _ => &[],
    };
    for (k, v) in small {
        m.insert(k.to_string(), v.clone());
    }
    Settings::from_map(m)
}

fn network(name: &str) -> Network {
    let model = (Registry::builtin().neurons.get(name).unwrap().build)(&small(name)).unwrap();
    let shape = NetworkShape { units: 4, input_width: D, classes: C, fan_in: model.requested_fan_in() };
    let mut params = ParamStore::new();
    let mut rng = stream(3, "init", 0);
    let layers = model.build(&shape, &elmlab_core::conformance::AnySource, &mut params, &mut rng).unwrap();
    let last = layers.last().unwrap().units();
    params.insert_uniform("output.weight", &[C, last], 0.5, &mut rng).unwrap();
    params.insert_uniform("output.bias", &[C], 0.5, &mut rng).unwrap();
    Network { layers, params, classes: C, input_width: D }
}

fn segment(symbols: &[u32], from: usize, len: usize, carry: Carry) -> Batch {
    let s: Vec<u32> = (from..from + len).flat_map(|t| (0..B).map(move |b| symbols[t * B + b])).collect();
    let targets = (from + 1..from + len + 1).flat_map(|t| (0..B).map(move |b| symbols[t * B + b] as usize)).collect();
    Batch { steps: len, batch: B, inputs: Inputs::OneHot { symbols: s, scale: 3.0 }, targets, carry }
}

fn logits(net: &Network, b: &Batch, carried: Option<&NetworkState>) -> (Vec<f32>, NetworkState) {
    let mut ctx = ForwardContext::new(false, stream(0, "f", 0));
    let mut pass = net.forward(&mut ctx, b, LossAt::EveryStep, carried).unwrap();
    let state = std::mem::take(&mut pass.final_state);
    (pass.step_logits(b.batch).concat(), state)
}

#[test]
fn two_carried_segments_equal_one_long_segment_for_every_neuron_model() {
    let names = Registry::builtin().neurons.names();
    assert!(names.len() >= 2);
    let mut rng = stream(9, "symbols", 0);
    let symbols: Vec<u32> = (0..101 * B).map(|_| rng.gen_range(0..D as u32)).collect();
    for name in names {
        let net = network(name);
        let (whole, _) = logits(&net, &segment(&symbols, 0, 100, Carry::Fresh), None);
        let (first, state) = logits(&net, &segment(&symbols, 0, 50, Carry::Fresh), None);
        let (second, _) = logits(&net, &segment(&symbols, 50, 50, Carry::Continue { reset: vec![false; B] }), Some(&state));
        let joined: Vec<f32> = first.into_iter().chain(second).collect();
        assert_eq!(joined.len(), whole.len());
        for (i, (a, b)) in joined.iter().zip(&whole).enumerate() {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{name}: logit {i}: {a} vs {b}");
        }
        // a reset sequence starts from zero: it matches a fresh start, the other does not
        let (reset_one, _) = logits(&net, &segment(&symbols, 50, 50, Carry::Continue { reset: vec![true, false] }), Some(&state));
        let (fresh, _) = logits(&net, &segment(&symbols, 50, 50, Carry::Fresh), None);
        let column = |v: &[f32], b: usize| v.iter().enumerate().filter(|(i, _)| i % B == b).map(|(_, x)| *x).collect::<Vec<_>>();
        assert_eq!(column(&reset_one, 0), column(&fresh, 0), "{name}");
        assert_ne!(column(&reset_one, 1), column(&fresh, 1), "{name}");
    }
}

#[test]
fn no_gradient_flows_into_the_previous_segment() {
    let mut rng = stream(4, "symbols", 0);
    let symbols: Vec<u32> = (0..41 * B).map(|_| rng.gen_range(0..D as u32)).collect();
    for name in Registry::builtin().neurons.names() {
        let net = network(name);
        let (_, state) = logits(&net, &segment(&symbols, 0, 20, Carry::Fresh), None);
        let second = segment(&symbols, 20, 20, Carry::Continue { reset: vec![false; B] });
        let carried = net.loss_and_gradients(&mut ForwardContext::new(false, stream(0, "f", 0)), &second, LossAt::EveryStep, 0.0, Some(&state)).unwrap();
        // The same state handed over as plain numbers: identical gradients, so nothing
        // flowed back into the first segment's computation.
        let copied: NetworkState = state.iter().map(|l| l.iter().map(|m| elmlab_core::tensor::matrix(&elmlab_core::tensor::device(), m.as_vec(), m.shape().0, m.shape().1)).collect()).collect();
        let constant = net.loss_and_gradients(&mut ForwardContext::new(false, stream(0, "f", 0)), &second, LossAt::EveryStep, 0.0, Some(&copied)).unwrap();
        for (a, b) in carried.grads.iter().zip(&constant.grads) {
            assert_eq!(a.as_vec(), b.as_vec(), "{name}");
        }
        // Full backpropagation through both segments, for the same last-step loss: the
        // loss value is the same, the gradients are not (the boundary really cuts a path).
        let last = |b: &Batch| Batch { targets: b.targets[(b.steps - 1) * B..].to_vec(), ..b.clone() };
        let ctx = || ForwardContext::new(false, stream(0, "f", 0));
        let cut = net.loss_and_gradients(&mut ctx(), &last(&second), LossAt::LastStep, 0.0, Some(&state)).unwrap();
        let full = net.loss_and_gradients(&mut ctx(), &last(&segment(&symbols, 0, 40, Carry::Fresh)), LossAt::LastStep, 0.0, None).unwrap();
        assert!((cut.loss - full.loss).abs() <= 1e-5 * full.loss.abs(), "{name}: {} vs {}", cut.loss, full.loss);
        assert!(full.grads.iter().zip(&cut.grads).any(|(a, b)| a.as_vec() != b.as_vec()), "{name}");
    }
}
