//! Matrix product `C = op(A) · op(B)`: the error bound that holds any two conforming backends
//! together. The CPU reference is in `cpu.rs`, the host code of shaders/matmul.wgsl in `gpu.rs`.

pub mod autotune;
pub mod cpu;
pub mod cpu_f16;
pub mod cpu_f32;
pub mod gpu;

use std::fmt;
use std::str::FromStr;

use super::bounds::gamma;
use crate::error::{Error, Result};
use crate::precision::{DType, Precision};
use crate::tensor::Shape;

/// Which operands of a matmul are read transposed: `C = op(A) · op(B)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MatmulOp {
    pub transpose_a: bool,
    pub transpose_b: bool,
}

impl MatmulOp {
    pub const ALL: [MatmulOp; 4] = [
        MatmulOp::new(false, false),
        MatmulOp::new(false, true),
        MatmulOp::new(true, false),
        MatmulOp::new(true, true),
    ];

    pub const fn new(transpose_a: bool, transpose_b: bool) -> Self {
        MatmulOp {
            transpose_a,
            transpose_b,
        }
    }

    /// `NN`, `NT`, `TN` or `TT`, as in BLAS.
    pub fn name(self) -> &'static str {
        match (self.transpose_a, self.transpose_b) {
            (false, false) => "NN",
            (false, true) => "NT",
            (true, false) => "TN",
            (true, true) => "TT",
        }
    }

    /// Where op(A)\[i, p\] of an `m × k` by `k × n` product sits in A as stored (row-major).
    pub fn lhs_index(self, i: usize, p: usize, (m, k, _n): (usize, usize, usize)) -> usize {
        if self.transpose_a {
            p * m + i
        } else {
            i * k + p
        }
    }

    /// Where op(B)\[p, j\] of an `m × k` by `k × n` product sits in B as stored (row-major).
    pub fn rhs_index(self, p: usize, j: usize, (_m, k, n): (usize, usize, usize)) -> usize {
        if self.transpose_b {
            j * k + p
        } else {
            p * n + j
        }
    }

    /// The stored shapes of A and B for an `m × k` by `k × n` product.
    pub fn operand_shapes(self, m: usize, k: usize, n: usize) -> (Shape, Shape) {
        let a = if self.transpose_a {
            Shape::new(k, m)
        } else {
            Shape::new(m, k)
        };
        let b = if self.transpose_b {
            Shape::new(n, k)
        } else {
            Shape::new(k, n)
        };
        (a, b)
    }

    /// `(m, k, n)` of the product, or an error naming both shapes.
    pub fn dims(self, a: Shape, b: Shape) -> Result<(usize, usize, usize)> {
        let (m, ka) = if self.transpose_a {
            (a.cols, a.rows)
        } else {
            (a.rows, a.cols)
        };
        let (kb, n) = if self.transpose_b {
            (b.cols, b.rows)
        } else {
            (b.rows, b.cols)
        };
        if ka != kb {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                detail: format!(
                    "op(A) of A{a} is {m}×{ka} but op(B) of B{b} is {kb}×{n} ({}): inner dimensions {ka} ≠ {kb}",
                    self.name()
                ),
            });
        }
        Ok((m, ka, n))
    }
}

/// The largest difference allowed between two results of one element of `op(A)·op(B)`
/// computed by two conforming backends in `precision`:
///
/// - each backend's inner product is within γ_k·Σ|a||b| of the exact one for any order of
///   summation, fused or not (Higham, Thm 3.1 and §3.1), with u the accumulator's roundoff,
///   so the two differ by at most 2·γ_k·Σ|a||b|;
/// - in `f16acc32` each rounds its f32 sum to f16 once on store, which adds u16·|c| for each
///   result c (round to nearest: |fl(s) − s| ≤ u·|fl(s)|);
/// - every operation that lands below the normal range may err by half a subnormal spacing,
///   or by the whole smallest normal when the device flushes subnormals to zero; there are
///   at most 2k such operations per element (product and sum).
///
/// `sum_abs_products` is Σ_p |op(A)\[i,p\]|·|op(B)\[p,j\]| in exact (f64) arithmetic, `c1` and `c2`
/// the two results.
pub fn error_bound(
    precision: Precision,
    k: usize,
    sum_abs_products: f64,
    c1: f64,
    c2: f64,
    flushes_subnormals: bool,
) -> f64 {
    let subnormal_error = |dtype: DType| {
        if flushes_subnormals {
            dtype.min_normal()
        } else {
            dtype.subnormal_half_spacing()
        }
    };
    let acc = precision.arithmetic();
    let accumulation = 2.0 * gamma(k, acc.unit_roundoff()) * sum_abs_products
        + 4.0 * k as f64 * subnormal_error(acc);
    let store = if precision.rounds_on_store() {
        let storage = precision.storage();
        storage.unit_roundoff() * (finite_or_zero(c1).abs() + finite_or_zero(c2).abs())
            + 2.0 * subnormal_error(storage)
    } else {
        0.0
    };
    accumulation + store
}

fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Σ_p |op(A)\[i,p\]|·|op(B)\[p,j\]| for every element, exactly (products of f32 or f16 values are
/// exact in f64, and the sum's own rounding is far below any bound it feeds).
pub fn sum_abs_products(
    a: &[f64],
    b: &[f64],
    op: MatmulOp,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f64> {
    let dims = (m, k, n);
    let at = |i: usize, p: usize| a[op.lhs_index(i, p, dims)];
    let bt = |p: usize, j: usize| b[op.rhs_index(p, j, dims)];
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| (at(i, p) * bt(p, j)).abs()).sum();
        }
    }
    out
}

/// What a device's pure-f16 multiply-add does, as `gradstab probe` finds it: whether `fma` is
/// fused (one rounding) and whether subnormal inputs and results are flushed to zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct F16Fma {
    pub fused: bool,
    pub flush_inputs: bool,
    pub flush_results: bool,
}

impl F16Fma {
    /// A fused fma that keeps subnormals: what the CPU backend computes.
    pub const FUSED: F16Fma = F16Fma {
        fused: true,
        flush_inputs: false,
        flush_results: false,
    };
}

/// For every element of `op(A)·op(B)` in pure f16 (`a`, `b` the stored values in f64), a
/// bound on |computed − exact| that holds for any implementation summing k in order with
/// `fma`, fused or not, flushing subnormals or not: Higham's running error analysis, driven by
/// the exact partial sums s_p. Each step rounds its result once (|fl(x) − x| ≤ u·|fl(x)| + η,
/// with η = 2^-14, the smallest normal, which also covers a flushed subnormal), and an
/// unfused step rounds the product first, so the error e_p of the p-th partial sum obeys
///
///   |e_p| ≤ (|e_{p−1}| + u·|s_p| + u·|a_p b_p| + 2η) / (1 − u),
///
/// and a flushed subnormal input costs |other factor|·2^-14 more. Unlike γ_k·Σ|a||b| it follows
/// the partial sums, so cancellation does not empty it. Where a partial sum may leave f16's
/// range the bound is infinite: the result may be inf.
pub fn f16_in_order_error_bounds(
    a: &[f64],
    b: &[f64],
    op: MatmulOp,
    (m, k, n): (usize, usize, usize),
) -> Vec<f64> {
    let u = DType::F16.unit_roundoff();
    let eta = DType::F16.min_normal();
    let dims = (m, k, n);
    let at = |i: usize, p: usize| a[op.lhs_index(i, p, dims)];
    let bt = |p: usize, j: usize| b[op.rhs_index(p, j, dims)];
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut e) = (0.0f64, 0.0f64);
            for p in 0..k {
                let (x, y) = (at(i, p), bt(p, j));
                s += x * y;
                let flushed_input = (x.abs() + y.abs()) * eta;
                e = (e + u * s.abs() + u * (x * y).abs() + 2.0 * eta + flushed_input) / (1.0 - u);
                if s.abs() + e > crate::precision::F16_MAX {
                    e = f64::INFINITY;
                    break;
                }
            }
            out[i * n + j] = e;
        }
    }
    out
}

/// A matmul workgroup is THREADS_PER_EDGE × THREADS_PER_EDGE threads, each owning a REG × REG
/// block of C (both written into the shader's header).
pub const THREADS_PER_EDGE: u32 = 16;

/// A way of computing the product on the GPU. Every variant sums k in order with fma, so all of
/// them give the same bits; they differ only in speed, which depends on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum MatmulVariant {
    /// 64 × 64 tiles staged in workgroup memory, 4 × 4 register blocks.
    Tile64Shared,
    /// 32 × 32 tiles staged in workgroup memory, 2 × 2 register blocks.
    Tile32Shared,
    /// 64 × 64 tiles, 4 × 4 register blocks read straight from storage (no workgroup memory).
    Tile64Direct,
}

impl MatmulVariant {
    pub const ALL: [MatmulVariant; 3] = [
        MatmulVariant::Tile64Shared,
        MatmulVariant::Tile32Shared,
        MatmulVariant::Tile64Direct,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Tile64Shared => "tile64-shared",
            MatmulVariant::Tile32Shared => "tile32-shared",
            MatmulVariant::Tile64Direct => "tile64-direct",
        }
    }

    /// The register block edge (REG in the shader).
    pub fn register_block(self) -> u32 {
        match self {
            MatmulVariant::Tile32Shared => 2,
            MatmulVariant::Tile64Shared | MatmulVariant::Tile64Direct => 4,
        }
    }

    /// The edge of the block of C one workgroup computes.
    pub fn tile(self) -> usize {
        (THREADS_PER_EDGE * self.register_block()) as usize
    }

    pub fn uses_workgroup_memory(self) -> bool {
        self != MatmulVariant::Tile64Direct
    }
}

impl fmt::Display for MatmulVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MatmulVariant {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        MatmulVariant::ALL
            .into_iter()
            .find(|v| v.name() == s.trim())
            .ok_or_else(|| Error::Parse {
                what: "matmul variant",
                value: s.to_string(),
                expected: "tile64-shared, tile32-shared or tile64-direct",
            })
    }
}
