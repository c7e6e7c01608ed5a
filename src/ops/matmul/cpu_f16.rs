//! Exact pure-f16 matmul at SIMD speed: bit for bit what the in-order emulation of
//! `cpu::f16_in_order_as` gives (k summed in order, one f16 rounding per step), for a device
//! that keeps subnormals, fused or not.
//!
//! Everything runs in f32 lanes, where that is exact or correctly rounded:
//! - the product of two f16 values has at most 22 significant bits: exact in f32;
//! - unfused, acc ← fl16(fl16(a·b) + acc): the sum of two f16 values rounded to f32 and then to
//!   f16 is the correctly rounded sum, since 24 ≥ 2·11 + 2 (double rounding is innocuous);
//! - fused, acc ← fl16(a·b + acc): a·b has 22 bits, so the f32 sum may round twice wrongly.
//!   The f32 sum rounded *to odd* keeps the sticky information, and rounding that to f16 is
//!   the correctly rounded sum, since 24 ≥ 11 + 2 (Boldo and Melquiond, 2008). Round to odd is
//!   the sum truncated (rounded towards zero) with its last bit set when the sum was inexact.
//!   AVX-512 gets both from the rounding mode embedded in each instruction: one fma towards
//!   zero, and one up and one down, which differ exactly when the sum is inexact. AVX2 has no
//!   embedded rounding, so it computes the f32 sum to nearest and its exact error (TwoSum) and
//!   steps the sum one unit towards zero when the error points that way.
//!
//! Rounding f32 to f16 and back uses the F16C conversions (`vcvtps2ph`, `vcvtph2ps`), which
//! round to nearest even, make subnormals and overflow to inf as IEEE says. Each step of one
//! output is a chain of dependent operations some twenty cycles long, so a block computes many
//! outputs at once (rows × two vectors of columns, one chain each) to keep the vector units busy;
//! panels of columns are spread over threads. Without AVX2, FMA and F16C the caller keeps the
//! scalar emulation.

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::MatmulOp;

/// Whether this CPU can run the vector kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Columns of a panel of B and C: two vectors of 16 lanes with AVX-512, four of 8 with AVX2
/// (in two passes of two).
const COLS: usize = 32;

/// Rows of C one block computes: with two vectors per row, 16 independent chains for AVX-512's
/// 32 registers, 8 for AVX2's 16.
const ROWS_AVX512: usize = 8;
const ROWS_AVX2: usize = 4;

/// Whether the 16-lane kernel can run.
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// op(A)·op(B) in pure f16, k in order, fused or not; `None` where `available()` is false.
pub fn matmul(
    a: &[f16],
    b: &[f16],
    op: MatmulOp,
    dims: (usize, usize, usize),
    fused: bool,
) -> Option<Vec<f16>> {
    product(a, b, op, dims, fused, has_avx512())
}

/// `matmul` with the 16-lane kernel (`wide`, where the CPU has AVX-512) or the 8-lane one.
pub(crate) fn product(
    a: &[f16],
    b: &[f16],
    op: MatmulOp,
    (m, k, n): (usize, usize, usize),
    fused: bool,
    wide: bool,
) -> Option<Vec<f16>> {
    if !available() || (wide && !has_avx512()) {
        return None;
    }
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), k * n);
    let rows = if wide { ROWS_AVX512 } else { ROWS_AVX2 };
    // Both operands widened to f32 first, whole slices at a time (F16C where the CPU has it):
    // exact, and much cheaper than one conversion per element of the layouts below.
    let widen = |x: &[f16]| {
        let mut widened = vec![0f32; x.len()];
        x.convert_to_f32_slice(&mut widened);
        widened
    };
    let (a32, b32) = (widen(a), widen(b));
    // op(A) in blocks of `rows` rows, each k × rows, p-major, so one step of a block reads its
    // rows' values from one cache line; the last block is padded with zero rows, which only
    // fill results that are dropped. Each loop order reads A as stored contiguously.
    let m_pad = m.div_ceil(rows) * rows;
    let mut a_blocks = vec![0f32; m_pad * k];
    let a_slot = |i: usize, p: usize| ((i / rows) * k + p) * rows + i % rows;
    if op.transpose_a {
        for p in 0..k {
            for i in 0..m {
                a_blocks[a_slot(i, p)] = a32[p * m + i];
            }
        }
    } else {
        for i in 0..m {
            for p in 0..k {
                a_blocks[a_slot(i, p)] = a32[i * k + p];
            }
        }
    }
    // op(B) in panels of COLS columns, each k × COLS contiguous and padded with zero columns,
    // so a block streams one panel from cache instead of striding through all of B.
    let n_pad = n.div_ceil(COLS) * COLS;
    let panels = n_pad / COLS;
    let mut b_panels = vec![0f32; k * n_pad];
    let b_slot = |p: usize, j: usize| ((j / COLS) * k + p) * COLS + j % COLS;
    if op.transpose_b {
        for j in 0..n {
            for p in 0..k {
                b_panels[b_slot(p, j)] = b32[j * k + p];
            }
        }
    } else {
        for p in 0..k {
            for j in 0..n {
                b_panels[b_slot(p, j)] = b32[p * n + j];
            }
        }
    }
    // Threads take panels of C's columns; within one, the panel of B stays in cache while
    // every block of rows streams past it.
    let blocks = m_pad / rows;
    let mut c_panels = vec![f16::ZERO; panels * m_pad * COLS];
    use rayon::prelude::*;
    c_panels
        .par_chunks_mut(m_pad * COLS)
        .enumerate()
        .for_each(|(panel, out)| {
            let b_panel = &b_panels[panel * k * COLS..(panel + 1) * k * COLS];
            for block in 0..blocks {
                let a_block = &a_blocks[block * rows * k..(block + 1) * rows * k];
                let c_block = &mut out[block * rows * COLS..(block + 1) * rows * COLS];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `available()` checked AVX2, FMA and F16C, `wide` AVX-512F; `a_block`
                // is k × rows, `b_panel` k × COLS and `c_block` rows × COLS, which is all the
                // kernels touch.
                unsafe {
                    match (wide, fused) {
                        (true, true) => {
                            x86::block_avx512::<ROWS_AVX512, true>(a_block, b_panel, c_block, k)
                        }
                        (true, false) => {
                            x86::block_avx512::<ROWS_AVX512, false>(a_block, b_panel, c_block, k)
                        }
                        (false, _) => {
                            for half in 0..2 {
                                x86::block::<ROWS_AVX2>(a_block, b_panel, c_block, k, half, fused)
                            }
                        }
                    }
                };
            }
        });
    // Each row of a panel of C is a run of up to COLS consecutive columns of C.
    let mut c = vec![f16::ZERO; m * n];
    for (panel, out) in c_panels.chunks(m_pad * COLS).enumerate() {
        let (first, width) = (panel * COLS, COLS.min(n - panel * COLS));
        for i in 0..m {
            c[i * n + first..i * n + first + width]
                .copy_from_slice(&out[i * COLS..i * COLS + width]);
        }
    }
    Some(c)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::COLS;

    /// f32 lanes rounded to f16 (to nearest even) and widened back.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn round16(x: __m256) -> __m256 {
        _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x))
    }

    /// fl16(p + acc) for p exact in f32 (a product of two f16) and acc an f16 value: the f32
    /// sum rounded to odd with TwoSum's error, then to f16.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn fused_add(p: __m256, acc: __m256) -> __m256 {
        let s = _mm256_add_ps(p, acc);
        // Knuth's TwoSum: s + e = p + acc exactly.
        let pp = _mm256_sub_ps(s, acc);
        let aa = _mm256_sub_ps(s, pp);
        let e = _mm256_add_ps(_mm256_sub_ps(p, pp), _mm256_sub_ps(acc, aa));
        // Where the sum is inexact, s truncated is s one unit towards zero when e points
        // towards zero (its sign differs from s's: the arithmetic shift of the xor gives −1),
        // and s otherwise; rounded to odd it is that with its last bit set.
        let bits = _mm256_castps_si256(s);
        let towards_zero = _mm256_srai_epi32::<31>(_mm256_xor_si256(bits, _mm256_castps_si256(e)));
        let odd = _mm256_or_si256(_mm256_add_epi32(bits, towards_zero), _mm256_set1_epi32(1));
        let inexact = _mm256_cmp_ps::<_CMP_NEQ_OQ>(e, _mm256_setzero_ps());
        round16(_mm256_blendv_ps(s, _mm256_castsi256_ps(odd), inexact))
    }

    /// R × 16 outputs of C (the `half`-th 16 columns of a row-major R × COLS `out`) from a
    /// k × R block of `a` (p-major) and a k × COLS panel of `b`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn block<const R: usize>(
        a: &[f32],
        b: &[f32],
        out: &mut [f16],
        k: usize,
        half: usize,
        fused: bool,
    ) {
        assert!(a.len() >= R * k && b.len() >= k * COLS && out.len() >= R * COLS);
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for p in 0..k {
            // SAFETY (for the loads): p < k and half < 2, so both 8-lane loads lie in the panel.
            let row = b.as_ptr().add(p * COLS + half * 16);
            let bv = [_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8))];
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(a[p * R + r]);
                for (v, acc_rv) in acc_r.iter_mut().enumerate() {
                    let product = _mm256_mul_ps(av, bv[v]);
                    *acc_rv = if fused {
                        fused_add(product, *acc_rv)
                    } else {
                        round16(_mm256_add_ps(round16(product), *acc_rv))
                    };
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (v, acc_rv) in acc_r.iter().enumerate() {
                let halves = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(*acc_rv);
                let mut lanes = [0u16; 8];
                _mm_storeu_si128(lanes.as_mut_ptr().cast(), halves);
                let start = r * COLS + half * 16 + v * 8;
                for (o, bits) in out[start..start + 8].iter_mut().zip(lanes) {
                    *o = f16::from_bits(bits);
                }
            }
        }
    }

    /// f32 lanes rounded to f16 (to nearest even) and widened back, 16 at a time.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn round16_512(x: __m512) -> __m512 {
        _mm512_cvtph_ps(_mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x))
    }

    /// fl16(a·b + acc) in 16 lanes for a, b and acc f16 values: a·b is exact in f32, so an
    /// fma rounds the exact sum once, in the mode its instruction names. Towards zero it is
    /// the truncated sum; up and down agree exactly when the sum is exact; the truncated sum
    /// with its last bit set where they differ is the sum rounded to odd, and that rounded to
    /// f16 is the correctly rounded fma. An exact zero sum is +0 towards zero, as to nearest.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fused_fma_512(a: __m512, b: __m512, acc: __m512) -> __m512 {
        const ZERO: i32 = _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC;
        const UP: i32 = _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC;
        const DOWN: i32 = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
        let truncated = _mm512_castps_si512(_mm512_fmadd_round_ps::<ZERO>(a, b, acc));
        let up = _mm512_fmadd_round_ps::<UP>(a, b, acc);
        let down = _mm512_fmadd_round_ps::<DOWN>(a, b, acc);
        // NaN lanes compare equal here (ordered ≠ is false) and stay NaN.
        let inexact = _mm512_cmp_ps_mask::<_CMP_NEQ_OQ>(up, down);
        let odd = _mm512_mask_or_epi32(truncated, inexact, truncated, _mm512_set1_epi32(1));
        round16_512(_mm512_castsi512_ps(odd))
    }

    /// R × COLS outputs of C (a row-major R × COLS `out`) from a k × R block of `a` (p-major)
    /// and a k × COLS panel of `b`, in two 16-lane vectors per row; `FUSED` picks the form.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block_avx512<const R: usize, const FUSED: bool>(
        a: &[f32],
        b: &[f32],
        out: &mut [f16],
        k: usize,
    ) {
        assert!(a.len() >= R * k && b.len() >= k * COLS && out.len() >= R * COLS);
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        for p in 0..k {
            // SAFETY (for the loads): p < k, so both 16-lane loads lie in the panel.
            let row = b.as_ptr().add(p * COLS);
            let bv = [_mm512_loadu_ps(row), _mm512_loadu_ps(row.add(16))];
            let a_step = &a[p * R..(p + 1) * R];
            for (acc_r, &a_value) in acc.iter_mut().zip(a_step) {
                let av = _mm512_set1_ps(a_value);
                for (acc_rv, &bv_v) in acc_r.iter_mut().zip(&bv) {
                    *acc_rv = if FUSED {
                        fused_fma_512(av, bv_v, *acc_rv)
                    } else {
                        round16_512(_mm512_add_ps(round16_512(_mm512_mul_ps(av, bv_v)), *acc_rv))
                    };
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (v, acc_rv) in acc_r.iter().enumerate() {
                let halves = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(*acc_rv);
                let mut lanes = [0u16; 16];
                _mm256_storeu_si256(lanes.as_mut_ptr().cast(), halves);
                let start = r * COLS + v * 16;
                for (o, bits) in out[start..start + 16].iter_mut().zip(lanes) {
                    *o = f16::from_bits(bits);
                }
            }
        }
    }
}
