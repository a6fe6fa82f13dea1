//! The predecessor neurons against PyTorch (`tests/fixtures/predecessor_reference.py`,
//! float64, each case through torch's finite-difference gradcheck first), the model's
//! own finite differences (conformance), exact counts and refusals.

use super::*;
use elmlab_core::conformance::{check_entry_fields, check_neuron, AnySource};
use elmlab_core::error::PluginError;
use crate::golden::floats;
use elmlab_core::neuron::{NetworkShape, NeuronModel};
use elmlab_core::params::{BufferValues, ParamStore};
use elmlab_core::registry::NeuronEntry;
use elmlab_core::rng::stream;
use serde_json::{json, Value};

fn model(variant: &str, overrides: &[(&str, Value)]) -> Result<Box<dyn NeuronModel>, PluginError> {
    match variant {
        "elm_v1" => crate::golden::model_of::<ElmV1Settings>(overrides),
        _ => crate::golden::model_of::<BranchElmSettings>(overrides),
    }
}

/// Forward logits, loss and every parameter's gradient equal PyTorch's; the fixture's
/// connectome and timescales reach the model as a weights file's fixed tensors do.
fn equals_pytorch(fixture: &str) {
    let case = crate::golden::fixture(&format!("predecessor_{fixture}"));
    let u = |k: &str| json!(case[k].as_u64().unwrap());
    let settings = [
        ("memory", u("memory")),
        ("mlp_hidden", u("mlp_hidden")),
        ("mlp_layers", u("mlp_layers")),
        ("synapses", u("synapses")),
        ("synapses_per_branch", u("synapses_per_branch")),
        ("lambda", case["lambda_"].clone()),
        ("tau_memory", case["tau_memory"].clone()),
        ("learn_tau", case["learn_tau"].clone()),
    ];
    let m = model(case["variant"].as_str().unwrap(), &settings).unwrap();
    let given = case["buffers"].as_object().unwrap().iter().map(|(name, v)| {
        let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        let values = floats(&v["values"]);
        let values = if name.ends_with("connectome") { BufferValues::I64(values.iter().map(|&x| x as i64).collect()) } else { BufferValues::F32(values.iter().map(|&x| x as f32).collect()) };
        (name.clone(), shape, values)
    });
    crate::golden::assert_matches(fixture, &case, m.as_ref(), &AnySource, ParamStore::with_fixed(given.collect::<Vec<_>>()), case["units"].as_u64().unwrap() as usize, 2e-5);
}

#[test]
fn elm_v1_equals_pytorch() {
    equals_pytorch("elm_v1");
}

#[test]
fn elm_v1_with_learnt_timescales_equals_pytorch() {
    equals_pytorch("elm_v1_learnt");
}

#[test]
fn branch_elm_equals_pytorch() {
    equals_pytorch("branch_elm");
}

#[test]
fn branch_elm_with_learnt_timescales_equals_pytorch() {
    equals_pytorch("branch_elm_learnt");
}

fn small(variant: &str, extra: &[(&str, Value)]) -> Box<dyn NeuronModel> {
    let mut s = vec![("memory", json!(3)), ("mlp_hidden", json!(4)), ("synapses", json!(4)), ("synapses_per_branch", json!(2)), ("tau_memory", json!([1.0, 20.0]))];
    s.extend_from_slice(extra);
    model(variant, &s).unwrap()
}

/// Counts, state, sequence against steps and the gradients against finite differences.
#[test]
fn both_conform_with_every_option() {
    for variant in ["elm_v1", "branch_elm"] {
        check_neuron(small(variant, &[]).as_ref());
        check_neuron(small(variant, &[("learn_tau", json!(true)), ("mlp_layers", json!(2)), ("mlp_activation", json!("silu"))]).as_ref());
        check_neuron(small(variant, &[("mlp_layers", json!(0)), ("synapses_per_branch", json!(1))]).as_ref());
    }
    check_entry_fields(&NeuronEntry::of::<ElmV1Settings>());
    check_entry_fields(&NeuronEntry::of::<BranchElmSettings>());
}

/// The closed form per neuron, by hand: synapses, MLP, readout, timescale logits.
#[test]
fn counts_are_the_closed_form() {
    let (k_c, d_m, h) = (6, 4, 8);
    let branches = k_c / 2;
    let mlp = h * (branches + d_m) + h + d_m * h + d_m;
    for (variant, learn) in [("elm_v1", false), ("branch_elm", true)] {
        let m = model(variant, &[("memory", json!(d_m)), ("mlp_hidden", json!(h)), ("synapses", json!(k_c)), ("synapses_per_branch", json!(2)), ("learn_tau", json!(learn))]).unwrap();
        let plan = m.plan(&NetworkShape { units: 10, input_width: 7, classes: 3, fan_in: Some(k_c) });
        let per_neuron = k_c + mlp + d_m + 1 + if learn { d_m } else { 0 };
        assert_eq!(plan[0].params, 10 * per_neuron, "{variant}");
        assert_eq!((plan[0].k_c, plan[0].k_e), (k_c, per_neuron - k_c));
    }
    // the predecessor's defaults: d_m = 100, a hidden layer of 200, 100 synapses, one per branch
    let m = model("elm_v1", &[]).unwrap();
    let plan = m.plan(&NetworkShape { units: 1, input_width: 700, classes: 20, fan_in: Some(100) });
    assert_eq!(plan[0].params, 100 + (200 * 200 + 200) + (100 * 200 + 100) + 100 + 1);
}

/// Initialisation as the predecessor's: w_s at 0.5, log-spaced timescales (their logits
/// when learnt), PyTorch's Linear bounds.
#[test]
fn initialisation_follows_the_predecessor() {
    let m = small("elm_v1", &[("learn_tau", json!(true))]);
    let mut store = ParamStore::new();
    m.build(&NetworkShape { units: 5, input_width: 3, classes: 2, fan_in: Some(4) }, &AnySource, &mut store, &mut stream(1, "init", 0)).unwrap();
    assert!(store.values("hidden.proto_w_s").iter().all(|&v| v == 0.5));
    let want = crate::timescales::log_spaced(1.0 + 1e-6, 20.0 - 1e-6, 3);
    for (i, l) in store.values("hidden.proto_tau_m").iter().enumerate() {
        let tau = 1.0 + 19.0 / (1.0 + (-*l as f64).exp());
        assert!((tau - want[i % 3]).abs() < 1e-4 * want[i % 3], "unit {i}: τ {tau} vs {}", want[i % 3]);
    }
    let bound = 1.0 / (3.0f32 + 2.0).sqrt(); // first MLP map: branches 2 + d_m 3 inputs
    let w0 = store.values("hidden.mlp.network.0.weight");
    assert!(w0.iter().all(|v| v.abs() <= bound) && w0.iter().any(|v| v.abs() > 0.5 * bound));
    assert_eq!(store.buffer("hidden.tau_s").map(|b| b.shape.clone()), Some(vec![5, 4]));
    let fixed = small("branch_elm", &[]);
    let mut store = ParamStore::new();
    fixed.build(&NetworkShape { units: 5, input_width: 3, classes: 2, fan_in: Some(4) }, &AnySource, &mut store, &mut stream(1, "init", 0)).unwrap();
    let BufferValues::F32(tau) = &store.buffer("hidden.tau_m").unwrap().values else { panic!("tau_m dtype") };
    assert!(tau.iter().zip(want.iter().cycle()).all(|(a, b)| (*a as f64 - b).abs() < 1e-5 * b));
    assert_eq!(store.buffer("hidden.tau_b").map(|b| b.shape.clone()), Some(vec![5, 2]));
}

#[test]
fn refusals_name_the_setting_and_the_numbers() {
    for variant in ["elm_v1", "branch_elm"] {
        let e = model(variant, &[("tau_memory", json!([5.0, 5.0]))]).err().unwrap().to_string();
        assert!(e.contains("tau_memory") && e.contains("(5, 5)"), "{e}");
        let e = model(variant, &[("tau_memory", json!([0.0, 5.0]))]).err().unwrap().to_string();
        assert!(e.contains("0 < τ_min"), "{e}");
        // a fan-in that does not split into branches is refused at build time
        let m = small(variant, &[("synapses_per_branch", json!(3))]);
        let mut store = ParamStore::new();
        let e = m.build(&NetworkShape { units: 2, input_width: 3, classes: 2, fan_in: Some(4) }, &AnySource, &mut store, &mut stream(1, "init", 0)).err().unwrap().to_string();
        assert!(e.contains("4 synapses per neuron") && e.contains("synapses_per_branch = 3"), "{e}");
    }
    let e = model("elm_v1", &[("tau_s", json!(0.0))]).err().unwrap().to_string();
    assert!(e.contains("tau_s"), "{e}");
}
