//! `e^x` in f32 as straight-line arithmetic: loops over many values that call it
//! vectorise (a call to libm's `expf` keeps them scalar). Used by the fused layers'
//! nonlinearities and by the host cross-entropy.

/// `e^x` in f32 without a libm call, so that loops over many values vectorise: `x = k·ln 2 + r`
/// with `|r| ≤ ln 2 / 2`, the Taylor polynomial of degree 7 for `e^r` (truncation below
/// 1e-8 relative), and `2^k` built from its exponent bits. Inputs are clamped to
/// [−87, 88] (`e^x` there is within f32's normal range); within 3e-7 relative of `exp`
/// (checked in the tests).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    exp_with(x, |a, b, c| a * b + c)
}

/// [`exp_f32`] with fused multiply-adds: the reduction and each step of the polynomial one
/// instruction and one rounding. For code compiled with FMA (`#[target_feature(enable =
/// "fma")]`, where it inlines to `vfmadd`); elsewhere each `mul_add` is a libm call. In the
/// LSTM's gate step (five of these per unit and sequence) it took the gates from 2.2–2.6 to
/// 1.2–1.5 ms per thread of a batch.
#[inline(always)]
pub fn exp_f32_fused(x: f32) -> f32 {
    exp_with(x, f32::mul_add)
}

/// The arithmetic of both, `mul_add(a, b, c)` standing for `a·b + c` (two roundings or one).
#[inline(always)]
fn exp_with(x: f32, mul_add: impl Fn(f32, f32, f32) -> f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two (high and low part) for a more precise reduction
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // adding and subtracting 1.5·2^23 rounds to the nearest integer
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = mul_add(x, LOG2E, ROUND);
    let k = shifted - ROUND;
    let r = mul_add(-k, LN2_LO, mul_add(-k, LN2_HI, x));
    // Horner from the x⁷ term down
    let p = [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0].into_iter().fold(1.0 / 5040.0, |p, c| mul_add(p, r, c));
    // k as an integer from the low bits of `shifted` (not a float-to-int cast, whose
    // saturating semantics kept loops from vectorising)
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    p * f32::from_bits(k_bits.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `exp_f32` (a polynomial that vectorises) against f64 `exp`.
    #[test]
    fn fast_f32_exp_is_within_f32_rounding_of_exp() {
        let mut worst = 0.0f64;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4; // [-87, 88]
            let (got, want) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "relative error {worst:e}");
        assert_eq!(exp_f32(-200.0f32), exp_f32(-87.0f32));
        assert!(exp_f32(200.0f32).is_finite());
    }

    /// The fused version against f64 `exp` (here its `mul_add`s are libm calls: the same
    /// arithmetic as `vfmadd`, one rounding each).
    #[test]
    fn fused_f32_exp_is_within_f32_rounding_of_exp() {
        let mut worst = 0.0f64;
        for i in (-870_000..=880_000).step_by(7) {
            let x = i as f32 * 1e-4;
            let (got, want) = (exp_f32_fused(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "relative error {worst:e}");
        assert_eq!(exp_f32_fused(-200.0f32), exp_f32_fused(-87.0f32));
        assert!(exp_f32_fused(200.0f32).is_finite());
    }
}
