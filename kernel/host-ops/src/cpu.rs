//! Which vector instructions the CPU offers the wider builds of the kernels and host ops
//! (checked at run time; the answers are cached by the standard library).

/// AVX2 and FMA: eight `f32` per register, fused multiply-adds.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// AVX-512 F and VL with FMA: the same arithmetic with 32 vector registers.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn avx512_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") && std::arch::is_x86_feature_detected!("fma")
}
