//! The memory timescales of an ELM layer, as the factors its update uses: the decay
//! `κ_m = exp(−1/τ)` and the input share of the update (`1 − κ_λ = 1 − exp(−λ/τ)` in the
//! ELM Network and the branch ELM, `λ(1 − κ_m)` in the first ELM neuron), per neuron and
//! memory unit (`[N, d_m]`). Fixed (log-spaced, or a weights file's own), or learnt
//! through the bounded sigmoid `τ = τ_min + (τ_max − τ_min)·σ(ℓ)` of a trained logit `ℓ`.

use elmlab_core::params::ParamStore;
use elmlab_core::tensor::{device, fork, matrix, trace, Matrix, Traced};

/// How much of the bounded update enters memory, as a function of `τ`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputShare {
    /// `1 − exp(−λ/τ)`
    KappaLambda { lambda: f64 },
    /// `λ·(1 − exp(−1/τ))`
    LambdaTimesLeak { lambda: f64 },
}

impl InputShare {
    fn of(self, tau: f64) -> f64 {
        match self {
            InputShare::KappaLambda { lambda } => 1.0 - (-lambda / tau).exp(),
            InputShare::LambdaTimesLeak { lambda } => lambda * (1.0 - (-1.0 / tau).exp()),
        }
    }
}

pub enum Timescales {
    Fixed { kappa_m: Matrix, input_share: Matrix },
    /// The parameter `logit` (`[N, d_m]`), bounded to `(low, high)`.
    Learnt { logit: String, low: f64, high: f64, share: InputShare },
}

impl Timescales {
    /// Fixed timescales `taus` (`[N, d_m]`, steps), the factors formed in f64.
    pub fn fixed(taus: &[f64], units: usize, memory: usize, share: InputShare) -> Self {
        let dev = device();
        let kappa_m = taus.iter().map(|t| (-1.0 / t).exp() as f32).collect();
        let input_share = taus.iter().map(|&t| share.of(t) as f32).collect();
        Timescales::Fixed { kappa_m: matrix(&dev, kappa_m, units, memory), input_share: matrix(&dev, input_share, units, memory) }
    }

    pub fn is_learnt(&self) -> bool {
        matches!(self, Timescales::Learnt { .. })
    }

    /// The logits whose bounded sigmoid gives `taus` (each kept strictly inside the range,
    /// as the predecessor's code does, so that the ends have finite logits).
    pub fn logits(taus: &[f64], low: f64, high: f64) -> Vec<f32> {
        taus.iter()
            .map(|&t| {
                let t = t.clamp(low + 1e-6, high - 1e-6);
                ((t - low) / (high - t)).ln() as f32
            })
            .collect()
    }

    /// `(κ_m, input share)` on the tape: computed from the logit when learnt (their
    /// history leads to it), constants on fresh tapes when fixed.
    pub fn factors(&self, p: &ParamStore) -> (Traced, Traced) {
        match self {
            Timescales::Fixed { kappa_m, input_share } => (trace(kappa_m), trace(input_share)),
            Timescales::Learnt { logit, low, high, share } => {
                let tau = p.traced(logit).sigmoid() * (high - low) as f32 + *low as f32;
                match *share {
                    InputShare::KappaLambda { lambda } => {
                        let (inverse, inverse_again) = fork(tau.recip());
                        (inverse.negate().exp(), (inverse_again * -(lambda as f32)).exp().negate() + 1.0)
                    }
                    InputShare::LambdaTimesLeak { lambda } => {
                        let (kappa_m, kappa_again) = fork(tau.recip().negate().exp());
                        (kappa_m, (kappa_again.negate() + 1.0) * lambda as f32)
                    }
                }
            }
        }
    }
}
