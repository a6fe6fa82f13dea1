//! The tanh RNN against an independent float64 implementation written here (its outputs,
//! and a weighted sum of them with every gradient against central finite differences),
//! plus the core's conformance checks. Only the core crate is needed.

use super::*;
use elmlab_core::dfdx::prelude::*;
use elmlab_core::conformance::{check_entry_fields, check_neuron, AnySource};
use elmlab_core::neuron::{ForwardContext, NetworkShape, Outputs};
use elmlab_core::rng::stream;
use elmlab_core::tensor::{device, matrix, trace, values, Tape};
use rand::Rng;

const D: usize = 3;
const H: usize = 4;
const T: usize = 5;
const B: usize = 2;

/// Parameters by name as float64 row-major values.
type Values = std::collections::BTreeMap<String, Vec<f64>>;

/// `Σ_t Σ_{i,b} r[t][i,b] · h_t[i,b]` of the RNN in f64; inputs `[t][d, b]`.
fn reference_loss(p: &Values, inputs: &[Vec<f64>], r: &[Vec<f64>]) -> f64 {
    let (wih, whh, bih, bhh) = (&p["rnn.weight_ih_l0"], &p["rnn.weight_hh_l0"], &p["rnn.bias_ih_l0"], &p["rnn.bias_hh_l0"]);
    let mut total = 0.0;
    for b in 0..B {
        let mut h = [0.0f64; H];
        for t in 0..T {
            let x = |j: usize| inputs[t][j * B + b];
            let mut next = [0.0f64; H];
            for i in 0..H {
                let mut s = bih[i] + bhh[i];
                s += (0..D).map(|j| wih[i * D + j] * x(j)).sum::<f64>();
                s += (0..H).map(|j| whh[i * H + j] * h[j]).sum::<f64>();
                next[i] = s.tanh();
            }
            h = next;
            total += (0..H).map(|i| r[t][i * B + b] * h[i]).sum::<f64>();
        }
    }
    total
}

#[test]
fn weighted_outputs_and_gradients_equal_the_float64_reference() {
    let model = CellModel::new(TanhRnn { recurrent_gain: 1.5 });
    let shape = NetworkShape { units: H, input_width: D, classes: 2, fan_in: None };
    let mut store = ParamStore::new();
    let layers = model.build(&shape, &AnySource, &mut store, &mut stream(2, "init", 0)).unwrap();
    let mut rng = stream(3, "data", 0);
    let mut draw = |n: usize| -> Vec<f64> { (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect() };
    let inputs: Vec<Vec<f64>> = (0..T).map(|_| draw(D * B)).collect();
    let r: Vec<Vec<f64>> = (0..T).map(|_| draw(H * B)).collect();
    let dev = device();
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();

    // the layer's loss on the tape, its history merged in
    let xs = inputs.iter().map(|x| trace(&matrix(&dev, f32s(x), D, B))).collect();
    let state = elmlab_core::neuron::LayerState::new(layers[0].zero_state(B).iter().map(trace).collect());
    let (outputs, _, history) = layers[0].sequence(&store, &mut ForwardContext::new(true, stream(0, "f", 0)), xs, state).unwrap().into_parts();
    let Outputs::PerStep(outputs) = outputs else { panic!("the tanh RNN hands over one output per step") };
    let mut loss = dev.zeros::<Rank0>().retaped::<Tape>();
    for (y, r) in outputs.into_iter().zip(&r) {
        loss = loss + (y * matrix(&dev, f32s(r), H, B)).sum::<(), _>();
    }
    let got = loss.array() as f64;
    let (value, tape) = loss.split_tape();
    let mut grads = value.put_tape(tape.merge(history.into_tape())).backward();

    let params: Values = store.iter().map(|p| (p.name.clone(), values(&p.value).iter().map(|&v| v as f64).collect())).collect();
    let want = reference_loss(&params, &inputs, &r);
    assert!((got - want).abs() < 1e-5 * want.abs().max(1.0), "loss {got} vs reference {want}");

    let eps = 1e-6;
    for param in store.iter() {
        grads.try_alloc_for(&param.value).unwrap();
        let grad = values(&grads.get(&param.value));
        for k in 0..param.numel() {
            let mut shifted = params.clone();
            shifted.get_mut(&param.name).unwrap()[k] += eps;
            let up = reference_loss(&shifted, &inputs, &r);
            shifted.get_mut(&param.name).unwrap()[k] -= 2.0 * eps;
            let down = reference_loss(&shifted, &inputs, &r);
            let numeric = (up - down) / (2.0 * eps);
            assert!((grad[k] as f64 - numeric).abs() < 1e-4 + 1e-3 * numeric.abs(), "{}[{k}]: {} vs finite difference {numeric}", param.name, grad[k]);
        }
    }
}

#[test]
fn plan_counts_pytorch_s_parameters_and_the_cell_conforms() {
    let model = CellModel::new(TanhRnn { recurrent_gain: 1.0 });
    let plan = &model.plan(&NetworkShape { units: H, input_width: D, classes: 2, fan_in: None })[0];
    assert_eq!((plan.params, plan.k_e, plan.k_c), (H * (D + H + 2), D + H + 2, 0));
    check_entry_fields(&NeuronEntry::of::<TanhRnn>());
    check_neuron(&model);
    check_neuron(&CellModel::new(TanhRnn { recurrent_gain: 2.0 }));
}
