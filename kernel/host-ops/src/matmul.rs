//! Dense matrix products through the `gemm` crate, with its AVX-512 kernels (`x86-v4`; the
//! version dfdx uses has them only on nightly Rust: 2.3× slower here on the LSTM's step
//! product). Every output element is reduced by one thread in a fixed order, so the
//! numbers do not depend on the thread count (checked in `tests.rs`).


/// The scalars the products run in (`f32`, and `f64` for tests in double precision).
pub trait Scalar: Copy + Send + Sync + 'static + From<u8> {}
impl<F: Copy + Send + Sync + 'static + From<u8>> Scalar for F {}

/// A strided view of a matrix: element `(r, c)` at `data[r * row + c * col]`.
#[derive(Clone, Copy)]
pub struct View<'a, F> {
    pub data: &'a [F],
    pub row: usize,
    pub col: usize,
}

impl<'a, F> View<'a, F> {
    /// Row-major with `cols` columns.
    pub fn rows(data: &'a [F], cols: usize) -> Self {
        View { data, row: cols, col: 1 }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [F], cols: usize) -> Self {
        View { data, row: 1, col: cols }
    }
}

/// `dst[m, n] (+)= lhs[m, k] @ rhs[k, n]` on rayon's pool; `dst` is row-major with row
/// stride `dst_row`. With `accumulate` the product is added to what `dst` holds.
#[allow(clippy::too_many_arguments)]
pub fn matmul<F: Scalar>(m: usize, n: usize, k: usize, dst: &mut [F], dst_row: usize, accumulate: bool, lhs: View<F>, rhs: View<F>) {
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 && m * n * k >= 64 * 64 * 64 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    product(m, n, k, dst, dst_row, accumulate, lhs, rhs, parallelism)
}

/// [`matmul`] on the calling thread only (for the threads of a [`super::team`]).
#[allow(clippy::too_many_arguments)]
pub fn matmul_here<F: Scalar>(m: usize, n: usize, k: usize, dst: &mut [F], dst_row: usize, accumulate: bool, lhs: View<F>, rhs: View<F>) {
    product(m, n, k, dst, dst_row, accumulate, lhs, rhs, gemm::Parallelism::None)
}

#[allow(clippy::too_many_arguments)]
fn product<F: Scalar>(m: usize, n: usize, k: usize, dst: &mut [F], dst_row: usize, accumulate: bool, lhs: View<F>, rhs: View<F>, parallelism: gemm::Parallelism) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= (m - 1) * dst_row + n, "matmul: destination too small");
    if k == 0 {
        // an empty sum (gemm would leave `dst` as it is)
        if !accumulate {
            (0..m).for_each(|r| dst[r * dst_row..][..n].fill(F::from(0)));
        }
        return;
    }
    assert!(lhs.data.len() > (m - 1) * lhs.row + (k - 1) * lhs.col, "matmul: lhs too small");
    assert!(rhs.data.len() > (k - 1) * rhs.row + (n - 1) * rhs.col, "matmul: rhs too small");
    // SAFETY: the asserts above keep every strided access inside the slices; `dst` is
    // borrowed mutably and cannot alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col as isize,
            lhs.row as isize,
            rhs.data.as_ptr(),
            rhs.col as isize,
            rhs.row as isize,
            F::from(1),
            F::from(1),
            false,
            false,
            false,
            parallelism,
        )
    }
}
