//! The scalar the fused kernels compute in: `f32` in training, `f64` in the tests that
//! check the kernels against finite differences.

use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

pub trait Real:
    Copy + Send + Sync + Default + PartialOrd + std::fmt::Debug + 'static
    + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> + Neg<Output = Self>
    + AddAssign + SubAssign + MulAssign
{
    fn of(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn tanh(self) -> Self;
    fn abs(self) -> Self;
    fn zero() -> Self {
        Self::default()
    }
    fn one() -> Self {
        Self::of(1.0)
    }
    fn sigmoid(self) -> Self {
        Self::one() / (Self::one() + (-self).exp())
    }
    fn relu(self) -> Self {
        if self > Self::zero() { self } else { Self::zero() }
    }
}

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
        }
    };
}
real!(f32);
real!(f64);
