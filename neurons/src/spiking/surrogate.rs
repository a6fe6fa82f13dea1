//! The spike nonlinearity: a Heaviside step forward, a surrogate derivative backward
//! (snnTorch's definitions, `snntorch.surrogate`).

use elmlab_core::dfdx::prelude::*;
use elmlab_core::settings::Choice;
use elmlab_core::tensor::{device, matrix, Traced};

/// The surrogate derivative of the spike with respect to `U = mem − threshold`.
#[derive(Choice, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surrogate {
    /// `1 / (k|U| + 1)²` (SuperSpike's surrogate; snnTorch `fast_sigmoid`, k = 25)
    FastSigmoid,
    /// `k e^{−kU} / (e^{−kU} + 1)²`, the logistic's slope (snnTorch `sigmoid`, k = 25)
    Sigmoid,
    /// `(k/2) / (1 + (π k U / 2)²)` (snnTorch `atan`, k = α = 2, snnTorch's default)
    Atan,
}

impl Surrogate {
    /// snnTorch's default slope for this surrogate.
    pub fn default_slope(self) -> f64 {
        match self {
            Surrogate::FastSigmoid | Surrogate::Sigmoid => 25.0,
            Surrogate::Atan => 2.0,
        }
    }

    /// The derivative at `u` for slope `k`.
    pub fn derivative(self, u: f32, k: f32) -> f32 {
        match self {
            Surrogate::FastSigmoid => 1.0 / (k * u.abs() + 1.0).powi(2),
            Surrogate::Sigmoid => {
                let e = (-k * u).exp();
                if e.is_infinite() {
                    0.0
                } else {
                    k * e / (e + 1.0).powi(2)
                }
            }
            Surrogate::Atan => (k / 2.0) / (1.0 + (std::f32::consts::FRAC_PI_2 * k * u).powi(2)),
        }
    }
}

/// `H(U)` (1 where `U > 0`), whose gradient is `surrogate'(U)`: the value `H(U) + (g·U −
/// g·U)` with `g` held constant in the second product, which is exactly `H(U)` (the two
/// products are the same float) and has derivative `g` in `U`.
pub fn spike(u: Traced, surrogate: Surrogate, slope: f32) -> Traced {
    let dev = device();
    let (rows, cols) = *u.shape();
    let values = u.as_vec();
    let step = matrix(&dev, heaviside(&values), rows, cols);
    let g = matrix(&dev, values.iter().map(|&v| surrogate.derivative(v, slope)).collect(), rows, cols);
    let (value, tape) = u.split_tape();
    let held = value.clone() * g.clone();
    value.put_tape(tape) * g - held + step
}

/// `H(U)` as a constant (snnTorch's detached reset signal).
pub fn heaviside(u: &[f32]) -> Vec<f32> {
    u.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect()
}
