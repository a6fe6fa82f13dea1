//! LSTM and GRU against PyTorch (`tests/fixtures/gated_reference.py`: torch.nn.LSTM /
//! nn.GRU + nn.Linear + cross-entropy, float64), closed-form counts, budget solving.

use super::*;
use crate::path::Path;
use elmlab_core::cell::CellModel;
use elmlab_core::params::ParamStore;
use elmlab_core::budget::largest_fitting;
use elmlab_core::neuron::{NetworkShape, NeuronModel};
use elmlab_core::rng::stream;

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

fn check(kind: &str, model: &dyn NeuronModel) {
    let case = crate::golden::fixture(&format!("gated_{kind}"));
    crate::golden::assert_matches(kind, &case, model, &NoWiring, ParamStore::new(), case["hidden"].as_u64().unwrap() as usize, 1e-5);
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
