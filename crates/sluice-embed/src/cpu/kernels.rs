//! Fused element-wise kernels for the CPU encoder: layer norm, GELU, softmax.
//!
//! Each is one pass over rows that are hot in cache after the matrix product that made them, split
//! across threads by rows. Loops are written so LLVM vectorises them once `pulp` has switched on
//! the CPU's widest instruction set (AVX-512 or AVX2, detected at run time): no early exits, lane
//! arrays for reductions (a plain `sum()` stays scalar because float addition is not associative),
//! and `exp`/`erf` as polynomials rather than calls into libm.

use pulp::Arch;
use rayon::prelude::*;

/// Rows handed to one thread at a time; small enough to balance, large enough to amortise.
const ROWS_PER_TASK: usize = 16;
/// Independent accumulators in reductions: one AVX-512 register of `f32`.
const LANES: usize = 16;

/// `rows[r] = layer_norm(rows[r]) * gamma + beta` for every row of `width` values.
pub fn layer_norm(rows: &mut [f32], width: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    let arch = Arch::new();
    rows.par_chunks_mut(width * ROWS_PER_TASK).for_each(|block| {
        arch.dispatch(|| {
            for row in block.chunks_exact_mut(width) {
                layer_norm_row(row, gamma, beta, eps);
            }
        })
    });
}

#[inline(always)]
fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = lanes_sum(row, |x| x) / n;
    let variance = lanes_sum(row, |x| (x - mean) * (x - mean)) / n;
    let inv_std = 1.0 / (variance + eps).sqrt();
    for ((x, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
        *x = (*x - mean) * inv_std * g + b;
    }
}

/// Exact (erf-based) GELU, as BERT uses, in place.
pub fn gelu(values: &mut [f32], width: usize) {
    let arch = Arch::new();
    values.par_chunks_mut(width * ROWS_PER_TASK).for_each(|block| {
        arch.dispatch(|| {
            for x in block.iter_mut() {
                *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
            }
        })
    });
}

/// Softmax of each row of `width` values, in place (rows already scaled).
pub fn softmax_rows(rows: &mut [f32], width: usize) {
    Arch::new().dispatch(|| {
        for row in rows.chunks_exact_mut(width) {
            let max = lanes_max(row);
            for x in row.iter_mut() {
                *x = exp(*x - max);
            }
            let inv_sum = 1.0 / lanes_sum(row, |x| x);
            for x in row.iter_mut() {
                *x *= inv_sum;
            }
        }
    });
}

/// `dst[r] = src[r] + bias` for every row (the residual and bias a matrix product then adds to).
pub fn add_bias_rows(dst: &mut [f32], src: &[f32], bias: &[f32]) {
    let width = bias.len();
    let arch = Arch::new();
    dst.par_chunks_mut(width * ROWS_PER_TASK).zip(src.par_chunks(width * ROWS_PER_TASK)).for_each(|(dst, src)| {
        arch.dispatch(|| {
            for (dst_row, src_row) in dst.chunks_exact_mut(width).zip(src.chunks_exact(width)) {
                for ((d, &s), &b) in dst_row.iter_mut().zip(src_row).zip(bias) {
                    *d = s + b;
                }
            }
        })
    });
}

/// Every row of `dst` set to `bias`.
pub fn fill_rows(dst: &mut [f32], bias: &[f32]) {
    dst.par_chunks_mut(bias.len() * ROWS_PER_TASK).for_each(|block| {
        for row in block.chunks_exact_mut(bias.len()) {
            row.copy_from_slice(bias);
        }
    });
}

#[inline(always)]
fn lanes_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += f(x);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn lanes_max(values: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a = if x > *a { x } else { *a };
        }
    }
    acc.iter().fold(tail, |m, &x| m.max(x))
}

/// `e^x`, relative error below 2e-7 (Cephes `expf`): 2^k × a degree-5 polynomial on the remainder.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 × 2^23 rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2_E + ROUND;
    let k = shifted - ROUND;
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    e_r * f32::from_bits(k_bits.wrapping_add(127) << 23)
}

/// `erf(x)`, absolute error below 5e-7 in f32 (Abramowitz & Stegun 7.1.26, 1.5e-7 in exact arithmetic).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_7) * t - 0.284_496_72) * t + 0.254_829_6) * t;
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_standard_library() {
        for i in -8000..=8000 {
            let x = i as f32 / 100.0;
            let (got, want) = (exp(x), x.exp());
            assert!(((got - want) / want).abs() < 3e-7, "exp({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn erf_matches_a_reference_within_its_bound() {
        // Reference values of erf to 9 digits.
        for (x, want) in
            [(0.0f32, 0.0f64), (0.5, 0.520_499_878), (1.0, 0.842_700_793), (-2.0, -0.995_322_265), (3.5, 0.999_999_257)]
        {
            assert!((f64::from(erf(x)) - want).abs() < 5e-7, "erf({x}) = {}, want {want}", erf(x));
        }
    }

    #[test]
    fn softmax_and_layer_norm_rows() {
        let mut rows = vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
        softmax_rows(&mut rows, 3);
        let e: f32 = 1.0 + 1f32.exp() + 2f32.exp();
        for (got, want) in rows.iter().zip([1.0 / e, 1f32.exp() / e, 2f32.exp() / e, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]) {
            assert!((got - want).abs() < 1e-6);
        }
        let mut rows: Vec<f32> = (0..40).map(|i| i as f32).collect();
        let (gamma, beta) = (vec![2.0; 20], vec![1.0; 20]);
        layer_norm(&mut rows, 20, &gamma, &beta, 1e-12);
        for row in rows.chunks(20) {
            let mean: f32 = row.iter().sum::<f32>() / 20.0;
            let var: f32 = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / 20.0;
            assert!((mean - 1.0).abs() < 1e-5 && (var - 4.0).abs() < 1e-4, "mean {mean} var {var}");
        }
    }
}
