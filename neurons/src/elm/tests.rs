//! The ELM Network against the independent numpy implementation in
//! `neurons/tests/fixtures/elm_reference.py` (forward values, loss, penalties, and f64
//! finite-difference gradients), plus exact accounting and refusals.

use super::*;
use elmlab_train::network::Network;
use elmlab_train::loss::cross_entropy;
use elmlab_core::neuron::{ForwardContext, LayerState};
use elmlab_core::settings::DeclaredSettings;
use elmlab_core::rng::stream;
use elmlab_core::settings::default_settings;
use elmlab_core::task::{Batch, Carry, Inputs, LossAt};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/elm_{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture (regenerate with elm_reference.py)")).unwrap()
}

fn spec(v: &Value, name: &str) -> LayerSpec {
    let u = |k: &str| v[k].as_u64().unwrap() as usize;
    let f = |k: &str| v[k].as_f64().unwrap();
    LayerSpec {
        name: name.into(),
        units: u("units"),
        input_width: u("input_width"),
        memory: u("memory"),
        mlp_hidden: u("mlp_hidden"),
        mlp_layers: u("mlp_layers"),
        mlp_activation: match v["mlp_activation"].as_str().unwrap() {
            "relu" => MlpActivation::Relu,
            "silu" => MlpActivation::Silu,
            _ => MlpActivation::Relu2,
        },
        branches: u("branches"),
        synapses_per_branch: u("synapses_per_branch"),
        lambda: f("lambda"),
        tau_memory: (f("tau_min"), f("tau_max")),
        learn_tau: false,
        high_pass_tau: v["high_pass_tau"].as_f64(),
        input_scale: f("input_scale"),
        relu_output: v["relu_output"].as_bool().unwrap(),
        dropout: 0.0,
        mlp_penalty: f("mlp_penalty"),
        activity_penalty: f("activity_penalty"),
        path: crate::path::Path::Reference,
        inputs_need_grad: name != "hidden",
    }
}

fn flat_usize(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize)).collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn check_fixture(name: &str) {
    let case = fixture(name);
    let (hidden, readout) = (spec(&case["hidden"], "hidden"), spec(&case["readout"], "readout"));
    let classes = readout.units;
    let mut store = ParamStore::new();
    for (pname, p) in case["params"].as_object().unwrap() {
        let shape: Vec<usize> = p["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        store.insert(pname, &shape, floats(&p["values"]).iter().map(|&x| x as f32).collect()).unwrap();
    }
    let layers: Vec<Box<dyn RecurrentLayer>> = vec![
        Box::new(ElmLayer::new(hidden.clone(), flat_usize(&case["hidden_connectome"])).unwrap()),
        Box::new(ElmLayer::new(readout, flat_usize(&case["readout_connectome"])).unwrap()),
    ];
    let network = Network { layers, params: store, classes, input_width: hidden.input_width };
    let (steps, batch) = (case["steps"].as_u64().unwrap() as usize, case["batch"].as_u64().unwrap() as usize);
    let inputs: Vec<f32> = case["inputs"].as_array().unwrap().iter().flat_map(|t| t.as_array().unwrap().iter().flat_map(|b| floats(b))).map(|x| x as f32).collect();
    let targets: Vec<usize> = case["targets"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    let at = if case["loss_at"] == "last" { LossAt::LastStep } else { LossAt::EveryStep };
    let b = Batch { steps, batch, inputs: Inputs::Dense(inputs), targets, carry: Carry::Fresh };
    let smoothing = case["label_smoothing"].as_f64().unwrap();
    let expected = &case["expected"];
    let close = |got: f64, want: f64, tol: f64| (got - want).abs() <= tol * want.abs().max(1.0);

    // forward: logits at every step (read every step for the comparison)
    let mut ctx = ForwardContext::new(true, stream(0, "fwd", 0));
    let pass = network.forward(&mut ctx, &b, LossAt::EveryStep, None).unwrap();
    for (t, got) in pass.step_logits(batch).iter().enumerate() {
        for c in 0..classes {
            for s in 0..batch {
                let want = expected["logits"][t][c][s].as_f64().unwrap();
                assert!(close(got[c * batch + s] as f64, want, 1e-5), "{name}: logits[t={t}][c={c}][b={s}] {} vs {want}", got[c * batch + s]);
            }
        }
    }
    drop(cross_entropy(pass, &vec![0; steps * batch], classes, 0.0));

    // loss, penalties and gradients
    let mut ctx = ForwardContext::new(true, stream(0, "fwd", 0));
    let g = network.loss_and_gradients(&mut ctx, &b, at, smoothing, None).unwrap();
    assert!(close(g.loss as f64, expected["loss"].as_f64().unwrap(), 1e-5), "{name}: loss {} vs {}", g.loss, expected["loss"]);
    for (pen, value) in &g.penalties {
        assert!(close(*value as f64, expected[pen.as_str()].as_f64().unwrap(), 1e-5), "{name}: penalty {pen} {value} vs {}", expected[pen.as_str()]);
    }
    let want_penalties = ["mlp_magnitude", "activity"].iter().filter(|p| expected[**p].as_f64().unwrap() != 0.0).count();
    assert_eq!(g.penalties.len(), want_penalties, "{name}: penalties reported {:?}", g.penalties);
    for (i, p) in network.params.iter().enumerate() {
        let got = g.grads[i].as_vec();
        let want = floats(&expected["grads"][p.name.as_str()]);
        assert_eq!(got.len(), want.len(), "{}", p.name);
        for (j, (&a, &w)) in got.iter().zip(&want).enumerate() {
            assert!((a as f64 - w).abs() <= 1e-3 * w.abs() + 2e-5, "{name}: d loss / d {}[{j}]: autograd {a} vs finite difference {w}", p.name);
        }
    }
}

#[test]
fn every_step_loss_with_deep_mlp_high_pass_and_penalties_matches_numpy() {
    check_fixture("every_step");
}

#[test]
fn last_step_loss_with_linear_integration_matches_numpy() {
    check_fixture("last_step");
}

#[test]
fn silu_mlp_with_activity_penalty_matches_numpy() {
    check_fixture("silu");
}

fn elm(overrides: &[(&str, Value)]) -> Result<Box<dyn NeuronModel>, PluginError> {
    let mut s = default_settings(ElmSettings::FIELDS).as_map().clone();
    for (k, v) in overrides {
        s.insert(k.to_string(), v.clone());
    }
    (NeuronEntry::of::<ElmSettings>().build)(&Settings::from_map(s))
}

fn total(model: &dyn NeuronModel, units: usize, input_width: usize, classes: usize) -> usize {
    let shape = NetworkShape { units, input_width, classes, fan_in: model.requested_fan_in() };
    model.plan(&shape).iter().map(|l| l.params).sum::<usize>() + classes * classes + classes
}

#[test]
fn worked_examples_of_the_spec() {
    use serde_json::json;
    let shd = elm(&[("memory", json!(5)), ("branches", json!(30)), ("synapses_per_branch", json!(10))]).unwrap();
    let shape = NetworkShape { units: 96, input_width: 700, classes: 19, fan_in: shd.requested_fan_in() };
    let plan = shd.plan(&shape);
    assert_eq!((plan[0].k_c, plan[0].k_e, plan[0].params), (300, 421, 69_216));
    assert_eq!(total(shd.as_ref(), 96, 700, 19), 77_310);
    let enwik = elm(&[("memory", json!(15)), ("branches", json!(50)), ("synapses_per_branch", json!(15))]).unwrap();
    let plan = enwik.plan(&NetworkShape { units: 1024, input_width: 204, classes: 204, fan_in: enwik.requested_fan_in() });
    assert_eq!((plan[0].k_c, plan[0].k_e), (750, 2_461));
    assert_eq!(total(enwik.as_ref(), 1024, 204, 204), 3_516_748);
}

#[test]
fn closed_form_equals_real_tensors_over_a_grid() {
    use serde_json::json;
    for (memory, layers, branches, spb) in [(1, 0, 1, 1), (2, 1, 3, 2), (4, 3, 5, 1), (5, 1, 30, 10)] {
        let model = elm(&[("memory", json!(memory)), ("mlp_layers", json!(layers)), ("branches", json!(branches)), ("synapses_per_branch", json!(spb))]).unwrap();
        let shape = NetworkShape { units: 7, input_width: 11, classes: 4, fan_in: model.requested_fan_in() };
        let mut store = ParamStore::new();
        model.build(&shape, &elmlab_core::conformance::AnySource, &mut store, &mut stream(1, "init", 0)).unwrap();
        for layer in model.plan(&shape) {
            assert_eq!(store.count(&format!("{}.", layer.name)), layer.params, "{memory} {layers} {branches} {spb}: {}", layer.name);
        }
        // the readout layer: C (k_c + 3 d_tree + 16)
        assert_eq!(store.count("readout."), 4 * (branches * spb + 3 * branches + 16));
    }
}

#[test]
fn default_complexity_is_derived_from_memory() {
    use serde_json::json;
    let m = elm(&[("memory", json!(9))]).unwrap();
    // d_mlp = 18, d_tree = 36, d_brch = 36
    assert_eq!(m.requested_fan_in(), Some(36 * 36));
    let plan = m.plan(&NetworkShape { units: 57, input_width: 700, classes: 19, fan_in: Some(36 * 36) });
    assert_eq!(plan[0].k_e, 4 * 81 + 2 * 9 * 36 + 4 * 9 + 1);
}

#[test]
fn refusals_are_clear() {
    use serde_json::json;
    let e = elm(&[("learn_tau", json!(true)), ("tau_memory", json!([5.0, 5.0]))]).err().unwrap().to_string();
    assert!(e.contains("learn_tau") && e.contains("τ_min < τ_max"), "{e}");
    let e = elm(&[("dropout", json!(1.0))]).err().unwrap().to_string();
    assert!(e.contains("dropout"), "{e}");
    let m = elm(&[("branches", json!(4)), ("synapses_per_branch", json!(3))]).unwrap();
    struct Dense;
    impl Connectivity for Dense {
        fn fan_in(&self, _: usize, d: usize, n: usize) -> usize {
            d + n
        }
        fn wire(&self, _: WiringShape, _: &mut ChaCha8Rng) -> Result<elmlab_core::connectivity::Connectome, PluginError> {
            unreachable!()
        }
        fn is_recurrent(&self) -> bool {
            true
        }
    }
    let shape = NetworkShape { units: 3, input_width: 4, classes: 2, fan_in: Some(7) };
    let e = m.build(&shape, &Dense, &mut ParamStore::new(), &mut stream(0, "i", 0)).err().unwrap().to_string();
    assert!(e.contains("7 synapses") && e.contains("4 branches"), "{e}");
}

#[test]
fn dropout_masks_are_fixed_per_sequence_and_off_in_evaluation() {
    let case = fixture("every_step");
    let mut hidden = spec(&case["hidden"], "hidden");
    hidden.dropout = 0.5;
    hidden.mlp_penalty = 0.0;
    hidden.activity_penalty = 0.0;
    let mut store = ParamStore::new();
    let layer = ElmLayer::create(hidden.clone(), flat_usize(&case["hidden_connectome"]), &mut store, &mut stream(2, "init", 0)).unwrap();
    let dev = elmlab_core::tensor::device();
    let x = || (0..6).map(|t| elmlab_core::tensor::trace(&elmlab_core::tensor::matrix(&dev, vec![(t % 2) as f32; 4 * 2], 4, 2))).collect::<Vec<_>>();
    let run = |training: bool, seed: u64| {
        let mut ctx = ForwardContext::new(training, stream(seed, "drop", 0));
        let state = LayerState::new(layer.zero_state(2).iter().map(elmlab_core::tensor::trace).collect());
        let (outputs, _, _) = layer.sequence(&store, &mut ctx, x(), state).unwrap().into_parts();
        outputs.into_steps(6).iter().flat_map(|o| o.as_vec()).collect::<Vec<f32>>()
    };
    assert_eq!(run(false, 1), run(false, 2), "evaluation ignores dropout");
    assert_eq!(run(true, 1), run(true, 1), "masks come from the pass's rng");
    assert_ne!(run(true, 1), run(true, 2));
    assert_ne!(run(true, 1), run(false, 1));
}

/// The conformance checks on the fused and the reference path, over the options that
/// change the layer's structure or its loss (dropout and both penalties in training mode).
#[test]
fn conforms_on_both_paths_with_every_option() {
    use elmlab_core::conformance::{check_entry_fields, check_neuron};
    use serde_json::json;
    check_entry_fields(&NeuronEntry::of::<ElmSettings>());
    let small = [("memory", json!(2)), ("mlp_hidden", json!(3)), ("branches", json!(2)), ("synapses_per_branch", json!(3)), ("tau_memory", json!([1.0, 20.0]))];
    let cases: [&[(&str, Value)]; 4] = [
        &[],
        &[("dropout", json!(0.3)), ("mlp_penalty", json!(0.2)), ("activity_penalty", json!(0.1))],
        &[("mlp_layers", json!(2)), ("mlp_activation", json!("silu")), ("high_pass_tau", Value::Null), ("activation", json!("identity"))],
        &[("mlp_layers", json!(0))],
    ];
    for case in cases {
        for path in ["fused", "reference"] {
            let mut settings: Vec<(&str, Value)> = small.to_vec();
            settings.extend_from_slice(case);
            settings.push(("path", json!(path)));
            check_neuron(elm(&settings).unwrap().as_ref());
        }
    }
    // the defaults, at their real sizes
    check_neuron(elm(&[]).unwrap().as_ref());
}

/// Learnt timescales: `d_m` logits per neuron more in the count, initialised so that the
/// bounded sigmoid gives the log-spaced timescales, trained on both paths (conformance:
/// their gradients equal finite differences through the fused kernel and the reference).
#[test]
fn learnt_timescales_are_counted_initialised_and_conform() {
    use elmlab_core::conformance::check_neuron;
    use serde_json::json;
    let small = |extra: &[(&str, Value)]| {
        let mut s = vec![("memory", json!(3)), ("mlp_hidden", json!(3)), ("branches", json!(2)), ("synapses_per_branch", json!(3)), ("tau_memory", json!([1.0, 20.0]))];
        s.extend_from_slice(extra);
        elm(&s).unwrap()
    };
    let (fixed, learnt) = (small(&[]), small(&[("learn_tau", json!(true))]));
    let shape = NetworkShape { units: 4, input_width: 5, classes: 3, fan_in: fixed.requested_fan_in() };
    let (pf, pl) = (fixed.plan(&shape), learnt.plan(&shape));
    assert_eq!(pl[0].k_e, pf[0].k_e + 3);
    assert_eq!(pl[1].k_e, pf[1].k_e + 3, "the readout layer learns its timescales too");
    let mut store = ParamStore::new();
    learnt.build(&shape, &elmlab_core::conformance::AnySource, &mut store, &mut stream(1, "init", 0)).unwrap();
    assert!(store.buffer("hidden.tau_m").is_none());
    let logits = store.values("hidden.tau_m_logit");
    let want = crate::timescales::log_spaced(1.0, 20.0, 3);
    for (i, l) in logits.iter().enumerate() {
        let tau = 1.0 + 19.0 / (1.0 + (-*l as f64).exp());
        assert!((tau - want[i % 3]).abs() < 1e-4 * want[i % 3], "neuron {} unit {}: τ {tau} vs {}", i / 3, i % 3, want[i % 3]);
    }
    for path in ["fused", "reference"] {
        check_neuron(small(&[("learn_tau", json!(true)), ("path", json!(path)), ("dropout", json!(0.2)), ("mlp_penalty", json!(0.1))]).as_ref());
    }
}
