//! Test support: a neuron model inside a whole network (output map, mean cross-entropy
//! over every step) against golden values from a PyTorch/snnTorch script — logits, loss
//! and every parameter's gradient.

use elmlab_core::connectivity::Connectivity;
use elmlab_core::error::PluginError;
use elmlab_core::neuron::{ForwardContext, NetworkShape, NeuronModel};
use elmlab_core::params::ParamStore;
use elmlab_core::registry::{NeuronEntry, NeuronPlugin};
use elmlab_core::rng::stream;
use elmlab_core::settings::{default_settings, DeclaredSettings, Settings};
use elmlab_core::task::{Batch, Carry, Inputs, LossAt};
use elmlab_train::network::Network;
use serde_json::Value;

pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// The model of plugin `S` at its default settings with `overrides`, through its entry
/// (the path a config takes).
pub fn model_of<S: NeuronPlugin + DeclaredSettings>(overrides: &[(&str, Value)]) -> Result<Box<dyn NeuronModel>, PluginError> {
    let mut s = default_settings(S::FIELDS).as_map().clone();
    for (k, v) in overrides {
        s.insert(k.to_string(), v.clone());
    }
    (NeuronEntry::of::<S>().build)(&Settings::from_map(s))
}

/// The fixture `neurons/tests/fixtures/<name>.json`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e} (regenerate it with the script next to it)"))).unwrap()
}

/// Builds `model` for `units` neurons into `store` (which may hold given fixed tensors),
/// loads the case's `params`, and checks logits, loss and gradients to `tolerance`
/// (relative, floored at 0.1 in magnitude).
pub fn assert_matches(label: &str, case: &Value, model: &dyn NeuronModel, wiring: &dyn Connectivity, mut store: ParamStore, units: usize, tolerance: f64) {
    let u = |k: &str| case[k].as_u64().unwrap() as usize;
    let (d, c, t, b) = (u("input_width"), u("classes"), u("steps"), u("batch"));
    let shape = NetworkShape { units, input_width: d, classes: c, fan_in: model.requested_fan_in() };
    let layers = model.build(&shape, wiring, &mut store, &mut stream(0, "init", 0)).unwrap();
    let width = layers.last().unwrap().units();
    store.insert_zeros("output.weight", &[c, width]).unwrap();
    store.insert_zeros("output.bias", &[c]).unwrap();
    let params = case["params"].as_object().unwrap();
    for (name, p) in params {
        store.load_values(name, floats(&p["values"]).iter().map(|&x| x as f32).collect()).unwrap_or_else(|e| panic!("{e}"));
    }
    let given: usize = params.values().map(|p| floats(&p["values"]).len()).sum();
    assert_eq!(store.count(""), given, "{label}: the fixture and the model have different parameters");
    let net = Network { layers, params: store, classes: c, input_width: d };
    let inputs: Vec<f32> = case["inputs"].as_array().unwrap().iter().flat_map(|s| s.as_array().unwrap().iter().flat_map(floats)).map(|x| x as f32).collect();
    let targets: Vec<usize> = case["targets"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    let batch = Batch { steps: t, batch: b, inputs: Inputs::Dense(inputs), targets, carry: Carry::Fresh };
    let close = |got: f64, want: f64| (got - want).abs() <= tolerance * want.abs().max(1e-1);
    let pass = net.forward(&mut ForwardContext::new(true, stream(0, "f", 0)), &batch, LossAt::EveryStep, None).unwrap();
    for (step, got) in pass.step_logits(b).iter().enumerate() {
        for s in 0..b {
            for k in 0..c {
                let want = case["logits"][step][s][k].as_f64().unwrap();
                assert!(close(got[k * b + s] as f64, want), "{label} logits[t={step}][b={s}][{k}]: {} vs {want}", got[k * b + s]);
            }
        }
    }
    let g = net.loss_and_gradients(&mut ForwardContext::new(true, stream(0, "f", 0)), &batch, LossAt::EveryStep, 0.0, None).unwrap();
    assert!(close(g.loss as f64, case["loss"].as_f64().unwrap()), "{label} loss {} vs {}", g.loss, case["loss"]);
    for (i, p) in net.params.iter().enumerate() {
        let want = floats(&case["grads"][p.name.as_str()]);
        let got = g.grads[i].as_vec();
        assert_eq!(want.len(), got.len(), "{label}: gradient of {}", p.name);
        for (j, (&a, &w)) in got.iter().zip(&want).enumerate() {
            assert!(close(a as f64, w), "{label}: d loss / d {}[{j}] {a} vs reference {w}", p.name);
        }
    }
}
