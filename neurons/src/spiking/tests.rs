//! The spiking baselines against snnTorch (`tests/fixtures/spiking_reference.py`: its
//! Synaptic and Leaky neurons and surrogates, float64), the spike op's values and
//! gradients against the surrogates' closed forms, counts, conformance and refusals.

use super::*;
use elmlab_core::conformance::{check_entry_fields, AnySource, NeuronCheck};
use elmlab_core::dfdx::prelude::*;
use elmlab_core::error::PluginError;
use crate::golden::floats;
use elmlab_core::neuron::{NetworkShape, NeuronModel};
use elmlab_core::params::{BufferValues, ParamStore};
use elmlab_core::registry::NeuronEntry;
use elmlab_core::rng::stream;
use elmlab_core::tensor::{device, matrix, trace};
use serde_json::{json, Value};

fn model(kind: &str, overrides: &[(&str, Value)]) -> Result<Box<dyn NeuronModel>, PluginError> {
    match kind {
        "lif" => crate::golden::model_of::<LifSettings>(overrides),
        _ => crate::golden::model_of::<AlifSettings>(overrides),
    }
}

fn equals_snntorch(name: &str) {
    let case = crate::golden::fixture(&format!("spiking_{name}"));
    let mut settings: Vec<(&str, Value)> = case["settings"].as_object().unwrap().iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let k_c = case["synapses"].as_u64().unwrap() as usize;
    settings.push(("synapses", json!(k_c)));
    let m = model(case["kind"].as_str().unwrap(), &settings).unwrap();
    let n = case["units"].as_u64().unwrap() as usize;
    let connectome = BufferValues::I64(floats(&case["connectome"]).iter().map(|&v| v as i64).collect());
    let store = ParamStore::with_fixed(vec![("hidden.connectome".to_string(), vec![n, k_c], connectome)]);
    crate::golden::assert_matches(name, &case, m.as_ref(), &AnySource, store, n, 2e-5);
}

#[test]
fn lif_equals_snntorch() {
    equals_snntorch("lif");
}

#[test]
fn lif_with_learnt_decays_and_the_sigmoid_surrogate_equals_snntorch() {
    equals_snntorch("lif_learnt");
}

#[test]
fn lif_without_a_current_filter_read_by_the_output_map_equals_snntorch() {
    equals_snntorch("lif_no_current_filter");
}

#[test]
fn alif_equals_its_torch_reference() {
    equals_snntorch("alif");
}

#[test]
fn alif_with_learnt_decays_equals_its_torch_reference() {
    equals_snntorch("alif_learnt");
}

/// Forward: exactly the step. Backward: the surrogate's closed form at each `U`.
#[test]
fn the_spike_is_a_step_with_the_surrogate_gradient() {
    let us = [-0.7f32, -0.05, 0.0, 1e-3, 0.2, 2.5];
    for (surrogate, k) in [(Surrogate::FastSigmoid, 25.0f32), (Surrogate::Sigmoid, 5.0), (Surrogate::Atan, 2.0)] {
        let x = matrix(&device(), us.to_vec(), 2, 3);
        let s = spike(trace(&x), surrogate, k);
        assert_eq!(s.as_vec(), vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0], "{surrogate:?}");
        let weights: Vec<f32> = (1..=6).map(|i| i as f32).collect();
        let loss = (s * matrix(&device(), weights.clone(), 2, 3)).sum::<(), _>();
        let grads = loss.backward();
        let got = grads.get(&x).as_vec();
        for (i, &u) in us.iter().enumerate() {
            let (u, k) = (u as f64, k as f64);
            let want = match surrogate {
                Surrogate::FastSigmoid => 1.0 / (k * u.abs() + 1.0).powi(2),
                Surrogate::Sigmoid => k * (-k * u).exp() / ((-k * u).exp() + 1.0).powi(2),
                Surrogate::Atan => k / 2.0 / (1.0 + (std::f64::consts::PI / 2.0 * k * u).powi(2)),
            } * weights[i] as f64;
            assert!((got[i] as f64 - want).abs() < 1e-5 * want.abs().max(1.0), "{surrogate:?} at {u}: {} vs {want}", got[i]);
        }
    }
}

/// Counts, state parts, sequences against steps (gradients: the fixtures above, as a
/// surrogate is not the loss's derivative).
#[test]
fn both_conform_with_every_option() {
    let check = NeuronCheck { finite_differences: false, ..NeuronCheck::default() };
    for kind in ["lif", "alif"] {
        check.run(model(kind, &[("synapses", json!(6))]).unwrap().as_ref());
        check.run(model(kind, &[("synapses", json!(6)), ("learn_tau", json!(true)), ("readout", json!("output_map")), ("tau_syn", Value::Null)]).unwrap().as_ref());
        check.run(model(kind, &[("synapses", json!(6)), ("learn_tau", json!(true)), ("surrogate", json!("atan"))]).unwrap().as_ref());
    }
    check_entry_fields(&NeuronEntry::of::<LifSettings>());
    check_entry_fields(&NeuronEntry::of::<AlifSettings>());
}

/// The closed form: synapses and bias per neuron (+ β, α when learnt), and the readout's
/// `C·N + C` (+ β_o).
#[test]
fn counts_are_the_closed_form() {
    let (n, d, c, k_c) = (50, 700, 20, 120);
    let shape = NetworkShape { units: n, input_width: d, classes: c, fan_in: Some(k_c) };
    for (learn, readout, want) in [
        (false, "leaky_integrator", n * (k_c + 1) + c * n + c),
        (true, "leaky_integrator", n * (k_c + 3) + c * n + 2 * c),
        (false, "output_map", n * (k_c + 1)),
    ] {
        for kind in ["lif", "alif"] {
            let m = model(kind, &[("learn_tau", json!(learn)), ("readout", json!(readout))]).unwrap();
            let total: usize = m.plan(&shape).iter().map(|p| p.params).sum();
            assert_eq!(total, want, "{kind} learn_tau {learn} readout {readout}");
            let mut store = ParamStore::new();
            m.build(&shape, &AnySource, &mut store, &mut stream(0, "init", 0)).unwrap();
            assert_eq!(store.count(""), want);
        }
    }
    // no current filter stays none when the other decays are learnt: no `hidden.alpha`
    let m = model("lif", &[("learn_tau", json!(true)), ("tau_syn", Value::Null)]).unwrap();
    let mut store = ParamStore::new();
    m.build(&shape, &AnySource, &mut store, &mut stream(0, "init", 0)).unwrap();
    assert!(store.iter().all(|p| p.name != "hidden.alpha") && store.count("hidden.") == n * (k_c + 2));
}

/// Learnt decays start at exp(−1/τ); weights at nn.Linear's bounds.
#[test]
fn initialisation_follows_snntorch_and_pytorch() {
    let m = model("alif", &[("learn_tau", json!(true)), ("tau_mem", json!(8.0)), ("tau_syn", json!(3.0)), ("tau_out", json!(5.0)), ("synapses", json!(16))]).unwrap();
    let mut store = ParamStore::new();
    m.build(&NetworkShape { units: 10, input_width: 4, classes: 3, fan_in: Some(16) }, &AnySource, &mut store, &mut stream(2, "init", 0)).unwrap();
    for (name, tau) in [("hidden.beta", 8.0f64), ("hidden.alpha", 3.0), ("readout.beta", 5.0)] {
        assert!(store.values(name).iter().all(|&v| v == (-1.0 / tau).exp() as f32), "{name}");
    }
    let w = store.values("hidden.w_s");
    assert!(w.iter().all(|v| v.abs() <= 0.25) && w.iter().any(|v| v.abs() > 0.2), "U(±1/√16)");
    let r = store.values("readout.weight");
    assert!(r.iter().all(|v| v.abs() <= 1.0 / 10f32.sqrt()));
}

#[test]
fn refusals_name_the_setting_and_the_range() {
    for (key, value, says) in [
        ("tau_mem", json!(0.0), "tau_mem"),
        ("tau_syn", json!(-1.0), "tau_syn"),
        ("threshold", json!(0.0), "threshold"),
        ("slope", json!(0.0), "slope"),
        ("surrogate", json!("triangle"), "fast_sigmoid, sigmoid, atan"),
        ("readout", json!("max"), "leaky_integrator, output_map"),
        ("synapses", json!(0), "synapses"),
    ] {
        let e = model("lif", &[(key, value.clone())]).err().map(|e| e.to_string()).unwrap_or_else(|| panic!("{key} = {value} accepted"));
        assert!(e.contains(says), "{key}: {e}");
    }
    let e = model("alif", &[("tau_adapt", json!(0.0))]).err().unwrap().to_string();
    assert!(e.contains("tau_adapt"), "{e}");
    let e = model("alif", &[("adaptation", json!(-0.5))]).err().unwrap().to_string();
    assert!(e.contains("adaptation"), "{e}");
}
