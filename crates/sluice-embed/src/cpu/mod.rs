//! The CPU forward pass: a packed BERT encoder over `gemm` products and fused kernels.

mod bert;
mod kernels;
mod matmul;

pub use bert::CpuBert;
