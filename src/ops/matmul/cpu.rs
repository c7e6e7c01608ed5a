//! CPU reference of shaders/matmul.wgsl.
//!
//! `f32` and `f16acc32` go through the `gemm` crate on all cores (the order of summation is free
//! there: results differ from the GPU only within `error_bound`). `f16acc32` widens its f16
//! operands to f32 (exact), multiplies in f32 and rounds each result to f16 once, as the kernel
//! does. Pure `f16` emulates the kernel exactly: k summed in order, each step an f16 fused
//! multiply-add rounded once. The product of two f16 values has at most 22 significant bits,
//! so it is exact in f64; adding an f16 to it in f64 either is exact or loses only bits far
//! below f16's rounding point without erasing the sticky information (for finite f16 results
//! the smaller addend is never below 2^-53 of the larger), so rounding the f64 sum to f16 once
//! (`precision::f16_from_f64`, not `half`'s double rounding) gives the correctly rounded fma.
//! That scalar emulation is the reference; the backend runs `cpu_f16`'s vector kernel, which
//! gives the same bits, where the CPU has AVX2, FMA and F16C.

use half::f16;
use rayon::prelude::*;

use super::{F16Fma, MatmulOp};
use crate::error::Result;
use crate::precision::{f16_from_f64, Precision};
use crate::tensor::{HostData, HostTensor};

/// Products below this many multiply-adds run on one thread: spawning costs more.
const PARALLEL_THRESHOLD: usize = 1 << 18;

/// `op(A)·op(B)` on operands already checked to be `m × k` by `k × n` in `precision`.
pub(crate) fn run(
    a: &HostTensor,
    b: &HostTensor,
    op: MatmulOp,
    (m, k, n): (usize, usize, usize),
    precision: Precision,
) -> Result<HostTensor> {
    match precision {
        Precision::F32 => {
            let (HostData::F32(av), HostData::F32(bv)) = (a.data(), b.data()) else {
                unreachable!("dtypes checked by the caller")
            };
            HostTensor::from_f32(m, n, matmul_f32(av, bv, op, m, k, n))
        }
        Precision::F16Accumulate32 => {
            let c = matmul_f32(&a.f32_values(), &b.f32_values(), op, m, k, n);
            HostTensor::from_f16(m, n, crate::tensor::f16_from_f32_slice(&c))
        }
        Precision::F16 => {
            let (HostData::F16(av), HostData::F16(bv)) = (a.data(), b.data()) else {
                unreachable!("dtypes checked by the caller")
            };
            // The vector kernel where the CPU has it, bit for bit the in-order emulation.
            let c = super::cpu_f16::matmul(av, bv, op, (m, k, n), true)
                .unwrap_or_else(|| f16_in_order(av, bv, op, (m, k, n), true));
            HostTensor::from_f16(m, n, c)
        }
    }
}

/// C = op(A)·op(B) in f32 through `gemm`, which takes any strides, so transposes cost nothing.
/// `faer` multiplies a lone 1024³ product faster on some machines, but the whole network ran
/// a third slower with it (BENCHMARKS.md), so `gemm` stays.
pub fn matmul_f32(a: &[f32], b: &[f32], op: MatmulOp, m: usize, k: usize, n: usize) -> Vec<f32> {
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), k * n);
    let mut c = vec![0.0f32; m * n];
    // (column stride, row stride) of op(A) [m, k] and op(B) [k, n] inside the stored arrays.
    let (a_cs, a_rs) = if op.transpose_a {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let (b_cs, b_rs) = if op.transpose_b {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let parallelism = if m * n * k >= PARALLEL_THRESHOLD {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above make every index gemm computes from (m, n, k) and the strides
    // fall inside `a`, `b` and `c`; `c` is exclusively borrowed and does not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    c
}

/// Pure f16 summed in order: for each element, acc ← fl16(a·b + acc) for p = 0, 1, …, k − 1
/// with `fused`, or acc ← fl16(fl16(a·b) + acc) without, as a device whose f16 `fma` is not
/// fused computes it (`gradstab probe` says which). The backend uses the fused form, as
/// docs/design.md specifies; the unfused one lets a test demand bit-identical results from such a
/// device.
pub fn f16_in_order(
    a: &[f16],
    b: &[f16],
    op: MatmulOp,
    dims: (usize, usize, usize),
    fused: bool,
) -> Vec<f16> {
    f16_in_order_as(
        a,
        b,
        op,
        dims,
        F16Fma {
            fused,
            ..F16Fma::FUSED
        },
    )
}

/// `f16_in_order` as a device with this `F16Fma` computes it: fused or not, and flushing
/// subnormal inputs (to a signed zero) or results, as its probe reports.
pub fn f16_in_order_as(
    a: &[f16],
    b: &[f16],
    op: MatmulOp,
    (m, k, n): (usize, usize, usize),
    fma: F16Fma,
) -> Vec<f16> {
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), k * n);
    let flush = |x: f16, on: bool| {
        let subnormal = x.to_bits() & 0x7c00 == 0 && x.to_bits() & 0x03ff != 0;
        if on && subnormal {
            f16::from_bits(x.to_bits() & 0x8000)
        } else {
            x
        }
    };
    let round = |x: f64| flush(f16_from_f64(x), fma.flush_results).to_f64();
    // Lay op(A) out as rows of length k and op(B)ᵀ likewise, so each dot product reads two
    // contiguous rows.
    let a_rows: Vec<f64> = (0..m * k)
        .map(|idx| {
            let (i, p) = (idx / k, idx % k);
            let v = a[op.lhs_index(i, p, (m, k, n))];
            flush(v, fma.flush_inputs).to_f64()
        })
        .collect();
    let b_cols: Vec<f64> = (0..n * k)
        .map(|idx| {
            let (j, p) = (idx / k, idx % k);
            let v = b[op.rhs_index(p, j, (m, k, n))];
            flush(v, fma.flush_inputs).to_f64()
        })
        .collect();
    let mut c = vec![f16::ZERO; m * n];
    c.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        let a_row = &a_rows[i * k..(i + 1) * k];
        for (j, out) in row.iter_mut().enumerate() {
            let b_col = &b_cols[j * k..(j + 1) * k];
            let mut acc = 0.0f64;
            for (x, y) in a_row.iter().zip(b_col) {
                let product = if fma.fused { x * y } else { round(x * y) };
                acc = round(product + acc);
            }
            *out = f16_from_f64(acc);
        }
    });
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_dot_product_sums_in_order_with_one_rounding_per_step() {
        // 2048 + 1 rounds back to 2048 in f16 (spacing 2 there); summed in order, every +1 is
        // lost, while an f32 accumulator keeps them all.
        let k = 9;
        let mut a = vec![f16::from_f32(1.0); k];
        a[0] = f16::from_f32(2048.0);
        let b = vec![f16::from_f32(1.0); k];
        let c = f16_in_order(&a, &b, MatmulOp::default(), (1, k, 1), true);
        assert_eq!(c[0].to_f32(), 2048.0);
        let wide = matmul_f32(
            &a.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
            &b.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
            MatmulOp::default(),
            1,
            k,
            1,
        );
        assert_eq!(wide[0], 2056.0);
    }

    #[test]
    fn transposes_agree_with_a_naive_product() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive = |i: usize, j: usize| (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f32>();
        let transpose = |v: &[f32], rows: usize, cols: usize| {
            (0..rows * cols)
                .map(|idx| v[(idx % rows) * cols + idx / rows])
                .collect::<Vec<f32>>()
        };
        let at = transpose(&a, m, k);
        let bt = transpose(&b, k, n);
        for op in MatmulOp::ALL {
            let lhs = if op.transpose_a { &at } else { &a };
            let rhs = if op.transpose_b { &bt } else { &b };
            let c = matmul_f32(lhs, rhs, op, m, k, n);
            for i in 0..m {
                for j in 0..n {
                    assert!((c[i * n + j] - naive(i, j)).abs() < 1e-5, "{}", op.name());
                }
            }
        }
    }
}
