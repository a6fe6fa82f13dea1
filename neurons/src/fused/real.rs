//! The scalar the fused kernels compute in: `f32` in training, `f64` in the tests that
//! check the kernels against finite differences.

use elmlab_host_ops::exp::{exp_f32, exp_f32_fused};
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

pub trait Real:
    elmlab_host_ops::matmul::Scalar + Default + PartialOrd + std::fmt::Debug
    + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> + Neg<Output = Self>
    + AddAssign + SubAssign + MulAssign
{
    fn of(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn tanh(self) -> Self;
    fn abs(self) -> Self;
    /// `self·a + b` with one rounding.
    fn mul_add(self, a: Self, b: Self) -> Self;
    fn zero() -> Self {
        Self::default()
    }
    fn one() -> Self {
        Self::of(1.0)
    }
    fn sigmoid(self) -> Self {
        Self::one() / (Self::one() + (-self).exp())
    }
    /// [`Real::sigmoid`] for code compiled with FMA (`f32`: fused multiply-adds inside
    /// `exp`, the same accuracy in fewer instructions; elsewhere they would be libm calls).
    fn sigmoid_fused(self) -> Self {
        self.sigmoid()
    }
    /// [`Real::tanh`] for code compiled with FMA, as [`Real::sigmoid_fused`].
    fn tanh_fused(self) -> Self {
        self.tanh()
    }
    fn relu(self) -> Self {
        if self > Self::zero() { self } else { Self::zero() }
    }
    /// A buffer of `len` values with unspecified contents (zeros, or values left by an
    /// earlier use), for a buffer the caller overwrites completely before reading it.
    fn scratch(len: usize) -> Vec<Self> {
        vec![Self::zero(); len]
    }
    /// Hands a buffer back for [`Real::scratch`] to reuse.
    fn recycle(_buffer: Vec<Self>) {}
    /// `out[c][r] = rows[r][c]` for an 8×8 tile.
    #[inline(always)]
    fn transpose_8x8(rows: &[[Self; 8]; 8]) -> [[Self; 8]; 8] {
        elmlab_core::tile::transpose_8x8_plain(rows)
    }
}

/// `f64` keeps libm's functions: it is what the finite-difference checks run in.
macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            #[inline(always)]
            fn of(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
        }
    };
}
real!(f64);

impl Real for f32 {
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp(self) -> Self {
        exp_f32(self)
    }
    /// One `exp` instead of libm's `tanhf` (about three times slower), [`tanh_with`].
    #[inline(always)]
    fn tanh(self) -> Self {
        // `exp_f32`, not `.exp()`: on a concrete `f32` that is the inherent libm call
        tanh_with(self, exp_f32)
    }
    #[inline(always)]
    fn sigmoid_fused(self) -> Self {
        1.0 / (1.0 + exp_f32_fused(-self))
    }
    #[inline(always)]
    fn tanh_fused(self) -> Self {
        tanh_with(self, exp_f32_fused)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }
    /// In registers (AVX shuffles) where the CPU has AVX: inlined into the kernels' AVX2
    /// builds, where the check below is one predictable branch.
    #[inline(always)]
    fn transpose_8x8(rows: &[[f32; 8]; 8]) -> [[f32; 8]; 8] {
        #[cfg(target_arch = "x86_64")]
        if super::cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2 (so AVX), checked just above
            return unsafe { elmlab_core::tile::transpose_8x8_avx(rows) };
        }
        elmlab_core::tile::transpose_8x8_plain(rows)
    }
    /// Reuses this thread's spare buffers: a training step asks for the same large buffers
    /// every time, and zeroing them anew cost as much as a tenth of an LSTM step.
    fn scratch(len: usize) -> Vec<f32> {
        let reused = SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            let fitting = (0..spare.len()).filter(|&i| spare[i].capacity() >= len).min_by_key(|&i| spare[i].capacity());
            fitting.map(|i| spare.swap_remove(i))
        });
        match reused {
            Some(mut buffer) => {
                buffer.resize(len, 0.0);
                buffer
            }
            None => vec![0.0; len],
        }
    }
    /// An empty buffer (a pass that kept none of some kind) is not kept: it would take a
    /// slot from a real one, and after a few evaluation passes none were reused.
    fn recycle(buffer: Vec<f32>) {
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < SPARE_BUFFERS && buffer.capacity() > 0 {
                spare.push(buffer);
            }
        });
    }
}

/// `tanh` from one `exp`: `1 − 2/(e^{2x} + 1)`, and near zero, where that loses relative
/// precision, the Taylor series to `x⁷`. Both are computed and one chosen (a select, not a
/// branch, so loops vectorise).
#[inline(always)]
fn tanh_with(x: f32, exp: impl Fn(f32) -> f32) -> f32 {
    let x2 = x * x;
    let series = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))));
    let general = 1.0 - 2.0 / (exp(2.0 * x) + 1.0);
    if x.abs() < 0.1 { series } else { general }
}

/// How many spare buffers a thread keeps.
const SPARE_BUFFERS: usize = 8;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Empty buffers handed back take no spare slot: after as many of them as there are
    /// slots, a real buffer is still kept and handed out again (its old values show it is
    /// the same one: `scratch` does not clear a reused buffer, a new one is zeros).
    #[test]
    fn empty_buffers_take_no_spare_slot() {
        std::thread::spawn(|| {
            for _ in 0..SPARE_BUFFERS {
                f32::recycle(Vec::new());
            }
            f32::recycle(vec![7.0; 1000]);
            assert_eq!(f32::scratch(1000), vec![7.0; 1000]);
        })
        .join()
        .unwrap();
    }
}
