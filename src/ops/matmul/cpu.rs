//! CPU reference of shaders/matmul.wgsl.
//!
//! `f32` and `f16acc32` go through `cpu_f32`'s packed AVX-512 / AVX2 kernels (the `gemm` crate
//! on other CPUs) on all cores; the order of summation is free there: results differ from the
//! GPU only within `error_bound`. `f16acc32` widens its f16
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
    out_scale: f32,
) -> Result<HostTensor> {
    match precision {
        Precision::F32 => {
            let (HostData::F32(av), HostData::F32(bv)) = (a.data(), b.data()) else {
                unreachable!("dtypes checked by the caller")
            };
            HostTensor::from_f32(m, n, matmul_f32(av, bv, op, m, k, n))
        }
        // f32 accumulation, one rounding to the storage format per result; FP8 operands
        // arrive quantised, and their products are exact in f32.
        Precision::F16Accumulate32
        | Precision::Bf16
        | Precision::Bf16Accumulate32
        | Precision::Fp8 => {
            let mut c = matmul_f32(&a.f32_values(), &b.f32_values(), op, m, k, n);
            if out_scale != 1.0 {
                c.iter_mut().for_each(|x| *x *= out_scale);
            }
            HostTensor::from_f32_vec_as(precision.storage(), m, n, c)
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

/// C = op(A)·op(B) in f32: `cpu_f32`'s packed kernels where the CPU has AVX-512F or AVX2 + FMA,
/// else the `gemm` crate.
pub fn matmul_f32(a: &[f32], b: &[f32], op: MatmulOp, m: usize, k: usize, n: usize) -> Vec<f32> {
    super::cpu_f32::matmul(a, b, op, (m, k, n))
        .unwrap_or_else(|| matmul_f32_gemm(a, b, op, m, k, n))
}

/// C = op(A)·op(B) in f32 through `gemm`, which takes any strides, so transposes cost nothing.
/// The fallback on CPUs without the kernels of `cpu_f32` (its stable build has only AVX2).
pub fn matmul_f32_gemm(
    a: &[f32],
    b: &[f32],
    op: MatmulOp,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
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

    // The vector kernel of cpu_f16.rs against the scalar emulation above, bit for bit. They
    // live here, beside the emulation, so that cpu_f16.rs depends on nothing of this file.
    use super::super::cpu_f16;
    use rand::{Rng, SeedableRng};

    /// Values that stress every rounding: normals over the whole range, subnormals, zeros of
    /// both signs, and a few infinities and NaNs.
    fn hostile(rng: &mut impl Rng, len: usize, specials: bool) -> Vec<f16> {
        (0..len)
            .map(|_| {
                let roll: f64 = rng.random();
                if specials && roll < 0.01 {
                    [f16::INFINITY, f16::NEG_INFINITY, f16::NAN, f16::NEG_ZERO]
                        [rng.random_range(0..4)]
                } else if roll < 0.1 {
                    f16::from_bits(rng.random_range(1..0x0400) | (rng.random::<u16>() & 0x8000))
                } else {
                    let e = rng.random_range(-10..8);
                    let v = (rng.random::<f64>() * 2.0 - 1.0) * 2f64.powi(e);
                    crate::precision::f16_from_f64(v)
                }
            })
            .collect()
    }

    fn same_bits(x: &[f16], y: &[f16]) -> bool {
        x.iter()
            .zip(y)
            .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()))
    }

    #[test]
    fn gives_the_bits_of_the_in_order_emulation_fused_and_not() {
        if !cpu_f16::available() {
            eprintln!("SKIPPED: this CPU lacks AVX2, FMA or F16C; the scalar emulation runs");
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        // Shapes that leave partial row blocks (4 rows for AVX2, 8 for AVX-512) and partial
        // panels of 32 columns, whole blocks and panels, several of each, k = 1, and long sums
        // where the fused and unfused forms part ways.
        let shapes = [
            (1, 1, 1),
            (3, 5, 7),
            (5, 17, 19),
            (8, 64, 16),
            (9, 300, 33),
            (4, 2000, 3),
            (16, 1, 32),
            (15, 9, 40),
            (17, 33, 65),
            (24, 70, 64),
        ];
        for (case, &(m, k, n)) in shapes.iter().enumerate() {
            for op in MatmulOp::ALL {
                for specials in [false, true] {
                    let a = hostile(&mut rng, m * k, specials);
                    let b = hostile(&mut rng, k * n, specials);
                    for fused in [true, false] {
                        let slow = f16_in_order(&a, &b, op, (m, k, n), fused);
                        // Both kernels this CPU has: AVX2 always, AVX-512 where present.
                        for wide in [false, true] {
                            let Some(fast) = cpu_f16::product(&a, &b, op, (m, k, n), fused, wide)
                            else {
                                continue;
                            };
                            assert!(
                                same_bits(&fast, &slow),
                                "case {case} {m}×{k}×{n} {} fused {fused} wide {wide} \
                                 specials {specials}",
                                op.name()
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_fused_and_unfused_forms_are_different_computations() {
        // Otherwise the bit-identity test above could pass with one form standing in for the
        // other: over long sums of ordinary values, one rounding per step and two part ways.
        if !cpu_f16::available() {
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let (m, k, n) = (8, 512, 16);
        let a = hostile(&mut rng, m * k, false);
        let b = hostile(&mut rng, k * n, false);
        for wide in [false, true] {
            let Some(fused) = cpu_f16::product(&a, &b, MatmulOp::default(), (m, k, n), true, wide)
            else {
                continue;
            };
            let unfused =
                cpu_f16::product(&a, &b, MatmulOp::default(), (m, k, n), false, wide).unwrap();
            let differ = fused.iter().zip(&unfused).filter(|(x, y)| x != y).count();
            assert!(differ > 10, "only {differ} of {} results differ", m * n);
        }
    }
}
