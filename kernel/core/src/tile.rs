//! The 8×8 transpose of a register tile: the ELM backward's weight gradients need it for
//! every block of eight sequences, and a dense batch's step is transposed with it into the
//! `[width, batch]` a layer reads. Written element by element the compiler moved the 64
//! values one at a time through memory (and, for AVX-512, into gathers and scatters); for
//! `f32` on a CPU with AVX it is the usual three rounds of shuffles in registers.

/// `out[c][r] = rows[r][c]`, element by element: `f64`, and `f32` without AVX.
#[inline(always)]
pub fn transpose_8x8_plain<F: Copy>(rows: &[[F; 8]; 8]) -> [[F; 8]; 8] {
    let mut out = *rows;
    for (c, column) in out.iter_mut().enumerate() {
        for (r, v) in column.iter_mut().enumerate() {
            *v = rows[r][c];
        }
    }
    out
}

/// The same with AVX shuffles (unpack, 64-bit pairs, 128-bit halves: 24 shuffles). Called
/// from a function compiled for AVX2 it is inlined there (`#[inline]`: without it the
/// kernels' AVX2 builds called it, 1.5 % of an SHD-Adding kernel run in the call).
///
/// # Safety
/// The CPU must have AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
pub unsafe fn transpose_8x8_avx(rows: &[[f32; 8]; 8]) -> [[f32; 8]; 8] {
    use std::arch::x86_64::*;
    let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(rows[i].as_ptr()));
    // t[2p], t[2p+1]: rows 2p and 2p+1 interleaved, elements (0, 1, 4, 5) and (2, 3, 6, 7)
    let t = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    // u[q + 4h]: elements q and q + 4 of rows 4h..4h + 4
    let u = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
    ];
    let mut out = [[0.0f32; 8]; 8];
    for q in 0..4 {
        _mm256_storeu_ps(out[q].as_mut_ptr(), _mm256_permute2f128_ps::<0x20>(u[q], u[q + 4]));
        _mm256_storeu_ps(out[q + 4].as_mut_ptr(), _mm256_permute2f128_ps::<0x31>(u[q], u[q + 4]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered() -> [[f32; 8]; 8] {
        std::array::from_fn(|r| std::array::from_fn(|c| (r * 8 + c) as f32))
    }

    #[test]
    fn the_plain_transpose_swaps_rows_and_columns() {
        let (rows, t) = (numbered(), transpose_8x8_plain(&numbered()));
        for r in 0..8 {
            for c in 0..8 {
                assert_eq!(t[c][r], rows[r][c], "row {r}, column {c}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx_transpose_equals_the_plain_one() {
        if !std::arch::is_x86_feature_detected!("avx") {
            eprintln!("no AVX on this CPU: nothing to compare");
            return;
        }
        let rows = numbered();
        // SAFETY: the CPU has AVX (checked above)
        assert_eq!(unsafe { transpose_8x8_avx(&rows) }, transpose_8x8_plain(&rows));
    }
}
