//! LSTM and GRU against PyTorch (`tests/fixtures/gated_reference.py`: torch.nn.LSTM /
//! nn.GRU + nn.Linear + cross-entropy, float64), closed-form counts, budget solving.

use super::*;
use crate::path::Path;
use elmlab_core::cell::CellModel;
use elmlab_core::params::ParamStore;
use elmlab_core::budget::largest_fitting;
use elmlab_train::network::Network;
use elmlab_core::neuron::{ForwardContext, NetworkShape, NeuronModel};
use elmlab_core::rng::stream;
use elmlab_core::task::{Batch, Carry, Inputs, LossAt};
use serde_json::Value;

struct NoWiring;
impl elmlab_core::connectivity::Connectivity for NoWiring {
    fn fan_in(&self, r: usize, _: usize, _: usize) -> usize {
        r
    }
    fn wire(&self, _: elmlab_core::connectivity::WiringShape, _: &mut rand_chacha::ChaCha8Rng) -> Result<elmlab_core::connectivity::Connectome, elmlab_core::error::PluginError> {
        unreachable!("dense models take no connectome")
    }
    fn is_recurrent(&self) -> bool {
        true
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn check(kind: &str, model: &dyn NeuronModel) {
    let path = format!("{}/tests/fixtures/gated_{kind}.json", env!("CARGO_MANIFEST_DIR"));
    let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let u = |k: &str| case[k].as_u64().unwrap() as usize;
    let (d, h, c, t, b) = (u("input_width"), u("hidden"), u("classes"), u("steps"), u("batch"));
    let mut store = ParamStore::new();
    let shape = NetworkShape { units: h, input_width: d, classes: c, fan_in: None };
    let layers = model.build(&shape, &NoWiring, &mut store, &mut stream(0, "init", 0)).unwrap();
    store.insert_zeros("output.weight", &[c, h]).unwrap();
    store.insert_zeros("output.bias", &[c]).unwrap();
    for (name, p) in case["params"].as_object().unwrap() {
        store.load_values(name, floats(&p["values"]).iter().map(|&x| x as f32).collect()).unwrap_or_else(|e| panic!("{e}"));
    }
    let net = Network { layers, params: store, classes: c, input_width: d };
    let inputs: Vec<f32> = case["inputs"].as_array().unwrap().iter().flat_map(|s| s.as_array().unwrap().iter().flat_map(floats)).map(|x| x as f32).collect();
    let targets: Vec<usize> = case["targets"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    let batch = Batch { steps: t, batch: b, inputs: Inputs::Dense(inputs), targets, carry: Carry::Fresh };
    let close = |got: f64, want: f64| (got - want).abs() <= 1e-5 * want.abs().max(1e-1);

    let pass = net.forward(&mut ForwardContext::new(true, stream(0, "f", 0)), &batch, LossAt::EveryStep, None).unwrap();
    for (step, got) in pass.step_logits(b).iter().enumerate() {
        for s in 0..b {
            for k in 0..c {
                let want = case["logits"][step][s][k].as_f64().unwrap();
                assert!(close(got[k * b + s] as f64, want), "{kind} logits[t={step}][b={s}][{k}]: {} vs {want}", got[k * b + s]);
            }
        }
    }
    let g = net.loss_and_gradients(&mut ForwardContext::new(true, stream(0, "f", 0)), &batch, LossAt::EveryStep, 0.0, None).unwrap();
    assert!(close(g.loss as f64, case["loss"].as_f64().unwrap()), "{kind} loss {} vs {}", g.loss, case["loss"]);
    for (i, p) in net.params.iter().enumerate() {
        let want = floats(&case["grads"][p.name.as_str()]);
        for (j, (&a, &w)) in g.grads[i].as_vec().iter().zip(&want).enumerate() {
            assert!(close(a as f64, w), "{kind}: d loss / d {}[{j}] {a} vs PyTorch {w}", p.name);
        }
    }
}

#[test]
fn lstm_equals_pytorch() {
    check("lstm", &CellModel::new(LstmCell { forget_bias: 0.0, chrono_max: None, path: Path::Reference }));
}

#[test]
fn gru_equals_pytorch() {
    check("gru", &CellModel::new(GruCell));
}

fn count(model: &dyn NeuronModel, units: usize, d: usize, c: usize) -> usize {
    model.plan(&NetworkShape { units, input_width: d, classes: c, fan_in: None }).iter().map(|l| l.params).sum::<usize>() + c * (units + 1)
}

#[test]
fn closed_forms_equal_real_tensors_and_the_reference_count() {
    let lstm = CellModel::new(LstmCell { forget_bias: 1.0, chrono_max: None, path: Path::Reference });
    assert_eq!(count(&lstm, 250, 700, 19), 956_769, "baselines.md: LSTM H = 250 on SHD-Adding");
    for (model, gates) in [(&lstm as &dyn NeuronModel, 4), (&CellModel::new(GruCell) as &dyn NeuronModel, 3)] {
        for (h, d) in [(1, 1), (3, 7), (17, 5), (64, 204)] {
            let mut store = ParamStore::new();
            model.build(&NetworkShape { units: h, input_width: d, classes: 2, fan_in: None }, &NoWiring, &mut store, &mut stream(0, "i", 0)).unwrap();
            assert_eq!(store.count(""), gates * h * (d + h + 2));
            assert_eq!(model.plan(&NetworkShape { units: h, input_width: d, classes: 2, fan_in: None })[0].params, store.count(""));
        }
    }
}

#[test]
fn budget_solving_picks_the_largest_width_that_fits() {
    for model in [&CellModel::new(LstmCell { forget_bias: 0.0, chrono_max: None, path: Path::Reference }) as &dyn NeuronModel, &CellModel::new(GruCell)] {
        for budget in [5_000usize, 10_000, 77_310, 1_000_000, 3_516_748] {
            let h = largest_fitting(budget, |n| count(model, n, 700, 19)).unwrap();
            assert!(count(model, h, 700, 19) <= budget && count(model, h + 1, 700, 19) > budget, "budget {budget}: H = {h}");
        }
    }
}

#[test]
fn forget_bias_and_chrono_initialisation() {
    let shape = NetworkShape { units: 8, input_width: 3, classes: 2, fan_in: None };
    let mut plain = ParamStore::new();
    CellModel::new(LstmCell { forget_bias: 0.0, chrono_max: None, path: Path::Reference }).build(&shape, &NoWiring, &mut plain, &mut stream(5, "i", 0)).unwrap();
    let mut shifted = ParamStore::new();
    CellModel::new(LstmCell { forget_bias: 1.0, chrono_max: None, path: Path::Reference }).build(&shape, &NoWiring, &mut shifted, &mut stream(5, "i", 0)).unwrap();
    let (a, b) = (plain.values("lstm.bias_ih_l0"), shifted.values("lstm.bias_ih_l0"));
    for i in 0..32 {
        let expect = if (8..16).contains(&i) { a[i] + 1.0 } else { a[i] };
        assert!((b[i] - expect).abs() < 1e-6, "bias {i}");
    }
    let mut chrono = ParamStore::new();
    CellModel::new(LstmCell { forget_bias: 0.0, chrono_max: Some(100.0), path: Path::Reference }).build(&shape, &NoWiring, &mut chrono, &mut stream(5, "i", 0)).unwrap();
    let (ih, hh) = (chrono.values("lstm.bias_ih_l0"), chrono.values("lstm.bias_hh_l0"));
    for u in 0..8 {
        assert!(ih[8 + u] >= 0.0 && ih[8 + u] <= (99.0f32).ln() + 1e-6, "forget bias in [0, ln 99]");
        assert_eq!(ih[u], -ih[8 + u]);
        assert_eq!((hh[u], hh[8 + u]), (0.0, 0.0));
    }
}

/// The conformance checks: the LSTM's fused path and reference, the GRU, and their entries.
#[test]
fn conform() {
    use elmlab_core::conformance::{check_entry_fields, check_neuron};
    use elmlab_core::registry::NeuronEntry;
    check_entry_fields(&NeuronEntry::of::<LstmSettings>());
    check_entry_fields(&NeuronEntry::of::<GruSettings>());
    for path in [Path::Fused, Path::Reference] {
        check_neuron(&CellModel::new(LstmCell { forget_bias: 1.0, chrono_max: None, path }));
    }
    check_neuron(&CellModel::new(LstmCell { forget_bias: 0.0, chrono_max: Some(50.0), path: Path::Auto }));
    check_neuron(&CellModel::new(GruCell));
}
