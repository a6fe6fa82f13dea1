//! The tanh RNN against an independent float64 implementation written here (forward,
//! linear readout, mean cross-entropy) and its central finite differences.

use super::*;
use elmlab_kernel::network::Network;
use elmlab_kernel::rng::stream;
use elmlab_kernel::task::{Batch, Carry, Inputs, LossAt};
use rand::Rng;

struct NoWiring;
impl Connectivity for NoWiring {
    fn fan_in(&self, r: usize, _: usize, _: usize) -> usize {
        r
    }
    fn wire(&self, _: elmlab_kernel::connectivity::WiringShape, _: &mut ChaCha8Rng) -> Result<elmlab_kernel::connectivity::Connectome, PluginError> {
        unreachable!("the tanh RNN is densely wired")
    }
    fn is_recurrent(&self) -> bool {
        true
    }
}

const D: usize = 3;
const H: usize = 4;
const C: usize = 3;
const T: usize = 5;
const B: usize = 2;

/// Parameters by name as float64 row-major values.
type Values = std::collections::BTreeMap<String, Vec<f64>>;

/// Mean cross-entropy over every step and sequence; inputs `[t][b][d]`.
fn reference_loss(p: &Values, inputs: &[f64], targets: &[usize]) -> f64 {
    let (wih, whh, bih, bhh, wo, bo) = (&p["rnn.weight_ih_l0"], &p["rnn.weight_hh_l0"], &p["rnn.bias_ih_l0"], &p["rnn.bias_hh_l0"], &p["output.weight"], &p["output.bias"]);
    let mut total = 0.0;
    for b in 0..B {
        let mut h = [0.0f64; H];
        for t in 0..T {
            let x = &inputs[(t * B + b) * D..(t * B + b + 1) * D];
            let mut next = [0.0f64; H];
            for i in 0..H {
                let mut s = bih[i] + bhh[i];
                s += (0..D).map(|j| wih[i * D + j] * x[j]).sum::<f64>();
                s += (0..H).map(|j| whh[i * H + j] * h[j]).sum::<f64>();
                next[i] = s.tanh();
            }
            h = next;
            let logits: Vec<f64> = (0..C).map(|c| bo[c] + (0..H).map(|j| wo[c * H + j] * h[j]).sum::<f64>()).collect();
            let lse = logits.iter().map(|v| v.exp()).sum::<f64>().ln();
            total += lse - logits[targets[t * B + b]];
        }
    }
    total / (T * B) as f64
}

#[test]
fn plan_counts_the_built_parameters() {
    let model = TanhRnn { recurrent_gain: 1.0 };
    let shape = NetworkShape { units: H, input_width: D, classes: C, fan_in: None };
    let mut store = ParamStore::new();
    model.build(&shape, &NoWiring, &mut store, &mut stream(1, "init", 0)).unwrap();
    let plan = &model.plan(&shape)[0];
    assert_eq!(plan.params, store.iter().map(|p| p.numel()).sum::<usize>());
    assert_eq!(plan.params, H * (D + H + 2));
}

#[test]
fn loss_and_gradients_equal_the_float64_reference() {
    let model = TanhRnn { recurrent_gain: 1.5 };
    let shape = NetworkShape { units: H, input_width: D, classes: C, fan_in: None };
    let mut rng = stream(2, "init", 0);
    let mut store = ParamStore::new();
    let layers = model.build(&shape, &NoWiring, &mut store, &mut rng).unwrap();
    store.insert_uniform("output.weight", &[C, H], 0.8, &mut rng);
    store.insert_uniform("output.bias", &[C], 0.3, &mut rng);
    let net = Network { layers, params: store, classes: C, input_width: D };
    let inputs: Vec<f32> = (0..T * B * D).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let targets: Vec<usize> = (0..T * B).map(|_| rng.gen_range(0..C)).collect();
    let batch = Batch { steps: T, batch: B, inputs: Inputs::Dense(inputs.clone()), targets: targets.clone(), carry: Carry::Fresh };

    let got = net.loss_and_gradients(&mut ForwardContext::new(true, stream(0, "f", 0)), &batch, LossAt::EveryStep, 0.0, None);
    let values: Values = net.params.iter().map(|p| (p.name.clone(), p.value.as_vec().iter().map(|&v| v as f64).collect())).collect();
    let x64: Vec<f64> = inputs.iter().map(|&v| v as f64).collect();
    let want = reference_loss(&values, &x64, &targets);
    assert!((got.loss as f64 - want).abs() < 1e-5, "loss {} vs reference {want}", got.loss);

    let eps = 1e-6;
    for (param, grad) in net.params.iter().zip(&got.grads) {
        let grad = grad.as_vec();
        for k in 0..param.numel() {
            let mut shifted = values.clone();
            shifted.get_mut(&param.name).unwrap()[k] += eps;
            let up = reference_loss(&shifted, &x64, &targets);
            shifted.get_mut(&param.name).unwrap()[k] -= 2.0 * eps;
            let down = reference_loss(&shifted, &x64, &targets);
            let numeric = (up - down) / (2.0 * eps);
            assert!((grad[k] as f64 - numeric).abs() < 1e-4 + 1e-3 * numeric.abs(), "{}[{k}]: {} vs finite difference {numeric}", param.name, grad[k]);
        }
    }
}
