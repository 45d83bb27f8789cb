//! Strided matrix views over `f32` slices and one checked call into the `gemm` crate.
//!
//! The encoder multiplies sub-matrices in place (one attention head's columns of the fused QKV
//! buffer, a weight read as its transpose) so nothing is copied into a contiguous layout first.
//! `gemm` takes raw pointers and strides; this module is the only `unsafe` in the workspace, and
//! it checks that every element a view can address lies inside its slice before calling in.
#![allow(unsafe_code)]

pub use gemm::Parallelism;

/// A read-only matrix: element (r, c) is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows × cols` matrix whose rows are `row_stride` apart.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self::strided(data, rows, cols, row_stride, 1)
    }

    /// The transpose of a row-major `cols × rows` matrix (e.g. a `[out, in]` weight read as `[in, out]`).
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize, source_row_stride: usize) -> Self {
        Self::strided(data, rows, cols, 1, source_row_stride)
    }

    fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Self {
        assert!(fits(data.len(), rows, cols, row_stride, col_stride), "matrix view exceeds its slice");
        Self { data, rows, cols, row_stride, col_stride }
    }
}

/// A writable row-major matrix: element (r, c) is `data[r * row_stride + c]`.
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(fits(data.len(), rows, cols, row_stride, 1), "matrix view exceeds its slice");
        Self { data, rows, cols, row_stride }
    }
}

/// Whether the last element of a `rows × cols` view lies inside a slice of `len` elements.
fn fits(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1).checked_mul(row_stride).and_then(|r| (cols - 1).checked_mul(col_stride)?.checked_add(r));
    last.is_some_and(|last| last < len)
}

/// `dst = (accumulate ? dst : 0) + scale × lhs × rhs`.
pub fn matmul(dst: MatMut<'_>, accumulate: bool, lhs: MatRef<'_>, rhs: MatRef<'_>, scale: f32, threads: Parallelism) {
    assert_eq!(lhs.rows, dst.rows, "lhs rows");
    assert_eq!(rhs.cols, dst.cols, "rhs cols");
    assert_eq!(lhs.cols, rhs.rows, "inner dimension");
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    let stride = |s: usize| isize::try_from(s).expect("stride fits isize");
    // SAFETY: the views were checked at construction to address only elements inside their
    // slices, the dimensions agree (asserted above), and `dst` is borrowed mutably, so it does not
    // alias `lhs` or `rhs`. `gemm` reads and writes nothing else.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            lhs.cols,
            dst.data.as_mut_ptr(),
            1,
            stride(dst.row_stride),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            1.0,
            scale,
            false,
            false,
            false,
            threads,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplies_strided_views_like_the_definition() {
        // lhs: 2×3 taken from a 2×4 buffer; rhs: the transpose of a 2×3 buffer (so 3×2).
        let lhs = [1.0, 2.0, 3.0, 99.0, 4.0, 5.0, 6.0, 99.0];
        let rhs_source = [1.0, 0.0, -1.0, 2.0, 1.0, 0.5];
        let mut out = [10.0f32; 4];
        matmul(
            MatMut::rows(&mut out, 2, 2, 2),
            true,
            MatRef::rows(&lhs, 2, 3, 4),
            MatRef::transposed(&rhs_source, 3, 2, 3),
            2.0,
            Parallelism::None,
        );
        // row 0: [1,2,3]·[1,0,-1] = -2, [1,2,3]·[2,1,0.5] = 5.5
        // row 1: [4,5,6]·[1,0,-1] = -2, [4,5,6]·[2,1,0.5] = 16
        assert_eq!(out, [10.0 - 4.0, 10.0 + 11.0, 10.0 - 4.0, 10.0 + 32.0]);
    }

    #[test]
    #[should_panic(expected = "exceeds its slice")]
    fn rejects_a_view_past_the_end() {
        let data = [0.0f32; 5];
        let _ = MatRef::rows(&data, 2, 3, 3);
    }
}
