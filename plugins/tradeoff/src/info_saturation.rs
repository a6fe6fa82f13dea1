//! Our information-saturation model (stated as ours; the paper's exact formula is not
//! available): a neuron's signal-to-noise ratio saturates as it grows more complex,
//! neurons become redundant as their number grows, and the metric approaches its limit
//! exponentially in the population's information.
//!
//!   SNR   = s · k_e/(k_e + k_0) · k_c/(k_c + c_0)
//!   I_1   = ½ · log2(1 + SNR)
//!   N_eff = N / (1 + r·(N − 1))
//!   I     = N_eff · I_1
//!   metric = L_∞ + A · exp(−I / I_0)        (A < 0 for accuracies, > 0 for losses)

use elmlab_analysis::tradeoff::{Observation, ParamSpec, TradeoffEntry, TradeoffModel};

pub struct InfoSaturation;

static PARAMS: [ParamSpec; 7] = [
    ParamSpec { name: "s", doc: "SNR of a neuron at full complexity and connectivity", positive: true },
    ParamSpec { name: "k0", doc: "complexity k_e at which a neuron reaches half its SNR", positive: true },
    ParamSpec { name: "c0", doc: "connections k_c at which a neuron reaches half its SNR", positive: true },
    ParamSpec { name: "r", doc: "redundancy between neurons (N_eff → 1/r for large N)", positive: true },
    ParamSpec { name: "L_inf", doc: "metric with unlimited information", positive: false },
    ParamSpec { name: "A", doc: "metric at zero information minus L_inf", positive: false },
    ParamSpec { name: "I0", doc: "information (bits) that closes 63% of the gap", positive: true },
];

pub fn information(t: &[f64], n: f64, k_e: f64, k_c: f64) -> f64 {
    let snr = t[0] * k_e / (k_e + t[1]) * k_c / (k_c + t[2]);
    let per_neuron = 0.5 * (1.0 + snr).log2();
    let n_eff = n / (1.0 + t[3] * (n - 1.0).max(0.0));
    n_eff * per_neuron
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 1.0 } else { v[v.len() / 2] }
}

/// A starting point with the given shape parameters; I0, L_inf and A read off the data
/// (I0 at the data's median information, L_inf just beyond the best point).
fn start_at(data: &[Observation], s: f64, k0: f64, c0: f64, r: f64) -> Vec<f64> {
    let mut t = vec![s, k0, c0, r, 0.0, 0.0, 1.0];
    let mut by_info: Vec<(f64, f64)> = data.iter().map(|o| (information(&t, o.n, o.k_e, o.k_c), o.metric)).collect();
    by_info.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let (Some(lo), Some(hi)) = (by_info.first(), by_info.last()) {
        t[6] = median(by_info.iter().map(|p| p.0).collect()).max(1e-3);
        t[4] = hi.1 + 0.1 * (hi.1 - lo.1);
        t[5] = (lo.1 - t[4]) * (lo.0 / t[6]).exp();
    }
    t
}

impl TradeoffModel for InfoSaturation {
    fn parameters(&self) -> &'static [ParamSpec] {
        &PARAMS
    }

    fn initial_guesses(&self, data: &[Observation]) -> Vec<Vec<f64>> {
        let k_e = median(data.iter().map(|o| o.k_e).collect());
        let c0 = median(data.iter().map(|o| o.k_c).collect());
        let mut starts = Vec::new();
        for s in [2.0, 20.0, 200.0] {
            for k0 in [0.3 * k_e, k_e, 3.0 * k_e] {
                for r in [1e-3, 2e-2, 0.2] {
                    starts.push(start_at(data, s, k0, c0, r));
                }
            }
        }
        starts
    }

    fn predict(&self, t: &[f64], n: f64, k_e: f64, k_c: f64) -> f64 {
        t[4] + t[5] * (-information(t, n, k_e, k_c) / t[6]).exp()
    }

    fn score(&self, t: &[f64], n: f64, k_e: f64, k_c: f64) -> f64 {
        information(t, n, k_e, k_c)
    }

    fn formula(&self) -> &'static str {
        "metric = L_inf + A·exp(−I/I0),  I = N/(1 + r(N−1)) · ½·log2(1 + s·k_e/(k_e+k0)·k_c/(k_c+c0))"
    }
}

inventory::submit! {
    TradeoffEntry {
        name: "info_saturation",
        doc: "saturating per-neuron SNR, redundancy across neurons, exponential approach of the metric (ours)",
        build: || Box::new(InfoSaturation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elmlab_analysis::fit::fit;
    use elmlab_analysis::tradeoff::best_allocation;
    use rand::{Rng, SeedableRng};

    const TRUE: [f64; 7] = [20.0, 30.0, 16.0, 0.02, 0.9, -0.8, 5.0];

    fn synthetic(noise: f64, seed: u64) -> Vec<Observation> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut data = Vec::new();
        for budget in [1e3, 4e3, 2e4, 1e5, 4e5] {
            for k_c in [4.0, 16.0, 64.0] {
                for i in 0..9 {
                    let k_e = 2.0 * 1.8f64.powi(i);
                    let n = (budget / (k_e + k_c)).floor();
                    if n < 1.0 {
                        continue;
                    }
                    // Box–Muller normal noise
                    let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
                    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                    data.push(Observation { n, k_e, k_c, metric: InfoSaturation.predict(&TRUE, n, k_e, k_c) + noise * z });
                }
            }
        }
        data
    }

    #[test]
    fn the_fit_recovers_the_parameters_that_generated_the_data() {
        let data = synthetic(0.002, 7);
        let f = fit(&InfoSaturation, &data, &[]).unwrap();
        for (i, p) in PARAMS.iter().enumerate() {
            let (got, want, se) = (f.theta[i], TRUE[i], f.std_err[i]);
            assert!((got - want).abs() <= 4.0 * se + 1e-9, "{}: fitted {got} ± {se}, true {want}", p.name);
            assert!((got - want).abs() <= 0.1 * want.abs(), "{}: fitted {got}, true {want}", p.name);
        }
        assert!(f.rmse < 0.004, "rmse {}", f.rmse);
    }

    #[test]
    fn information_has_the_stated_closed_form() {
        // r = 0: N independent neurons; k_e = k0 and k_c = c0 halve the SNR twice.
        let t = [12.0, 10.0, 4.0, 0.0, 0.0, 1.0, 1.0];
        let expect = 50.0 * 0.5 * (1.0f64 + 12.0 / 4.0).log2();
        assert!((information(&t, 50.0, 10.0, 4.0) - expect).abs() < 1e-12);
        // Full redundancy: any number of neurons carry one neuron's information.
        let t = [12.0, 10.0, 4.0, 1.0, 0.0, 1.0, 1.0];
        assert!((information(&t, 50.0, 10.0, 4.0) - information(&t, 1.0, 10.0, 4.0)).abs() < 1e-12);
    }

    #[test]
    fn the_best_allocation_is_interior_and_maximises_information() {
        let (n, k_e) = best_allocation(&InfoSaturation, &TRUE, 2e4, 16.0).unwrap();
        assert!((n * (k_e + 16.0) - 2e4).abs() < 1e-6 * 2e4);
        let best = information(&TRUE, n, k_e, 16.0);
        for f in [0.5, 0.8, 1.25, 2.0] {
            let other = k_e * f;
            assert!(information(&TRUE, 2e4 / (other + 16.0), other, 16.0) < best);
        }
        assert!(k_e > 1.0 && k_e < 2e4 - 16.0, "k_e {k_e}");
    }

    #[test]
    fn the_model_is_registered() {
        assert!(elmlab_analysis::tradeoff::find("info_saturation").is_ok());
    }
}
