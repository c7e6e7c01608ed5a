//! The lean census of a tensor on the CPU: the counts of each numeric class and ‖x‖₂, which a
//! training step reads of every gradient and update (`stats::Census`), in one branch-free pass.
//!
//! The full record (`cpu::reference`) classifies each value through a `match`, bins its
//! exponent and tests four cast thresholds: branchy scalar work that cost 13 to 14% of a
//! training step when it ran on every gradient. Here each value costs a few integer compares on
//! its stored bits and one f64 multiply-add, on `LANES` independent accumulators that the
//! compiler keeps in vector registers (AVX-512 or AVX2 where the CPU has it, chosen at run
//! time), over pieces of the tensor on all cores.
//!
//! Exactness: the counts are exact (integer tests on the bits, as `stats::classify_bits`).
//! The sum of squares is in f64: the square of any f32, f16 or bf16 is exact in f64 (at most
//! 2·24 significant bits, between 2^-298 and 2^256, inside f64's normal range), so only the
//! additions round, all of non-negative terms; whatever their order, the sum errs by at most
//! (n − 1)·u₆₄ relative (u₆₄ = 2^-53), and its square root by half that plus u₆₄. The order
//! is fixed (lanes, then lanes in order, then pieces in order), so the result is the same
//! from run to run and on any number of threads.

use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use super::cpu::reference_of_view;
use crate::stats::{l2_norm_of, Census};
use crate::tensor::HostView;

/// Values per piece of the parallel pass; a lane counts at most PIECE / LANES of them, far
/// below u32's range.
pub(crate) const PIECE: usize = 1 << 16;
/// Independent accumulators: two AVX-512 vectors of f64 squares.
const LANES: usize = 16;
/// f16 values widened to f32 at a time (on the stack).
const WIDEN: usize = 1024;

/// Where the classes lie in a format's stored bits.
#[derive(Clone, Copy)]
struct Layout {
    /// The bits below the sign.
    magnitude: u32,
    /// The magnitude of ±inf: larger ones are NaN.
    inf: u32,
    /// The smallest normal magnitude: non-zero ones below it are subnormal.
    min_normal: u32,
    sign: u32,
}

const F32: Layout = Layout {
    magnitude: 0x7FFF_FFFF,
    inf: 0x7F80_0000,
    min_normal: 0x0080_0000,
    sign: 0x8000_0000,
};
const F16: Layout = Layout {
    magnitude: 0x7FFF,
    inf: 0x7C00,
    min_normal: 0x0400,
    sign: 0x8000,
};
const BF16: Layout = Layout {
    magnitude: 0x7FFF,
    inf: 0x7F80,
    min_normal: 0x0080,
    sign: 0x8000,
};

/// The lane-wise accumulators of one piece.
struct Lanes {
    squares: [f64; LANES],
    zero: [u32; LANES],
    subnormal: [u32; LANES],
    nan: [u32; LANES],
    pos_inf: [u32; LANES],
    neg_inf: [u32; LANES],
}

/// The census of one piece, before the norm's square root.
#[derive(Clone, Copy, Default)]
pub(crate) struct Partial {
    squares: f64,
    zero: u64,
    subnormal: u64,
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
}

impl Lanes {
    fn new() -> Self {
        Lanes {
            squares: [0.0; LANES],
            zero: [0; LANES],
            subnormal: [0; LANES],
            nan: [0; LANES],
            pos_inf: [0; LANES],
            neg_inf: [0; LANES],
        }
    }

    /// One value into lane `j`: stored bits `bits` of `layout`, and its value widened to f32.
    /// No branch: every test is a compare turned into 0 or 1. A NaN or ±inf makes the sum of
    /// squares NaN or inf, which does not matter: where the counts hold one, `l2_norm_of`
    /// decides the norm from them alone.
    #[inline(always)]
    fn add(&mut self, j: usize, bits: u32, value: f32, layout: Layout) {
        let magnitude = bits & layout.magnitude;
        let negative = (bits & layout.sign != 0) as u32;
        let inf = (magnitude == layout.inf) as u32;
        self.zero[j] += (magnitude == 0) as u32;
        // 1 ≤ magnitude < min_normal, in one unsigned compare.
        self.subnormal[j] += (magnitude.wrapping_sub(1) < layout.min_normal - 1) as u32;
        self.nan[j] += (magnitude > layout.inf) as u32;
        self.pos_inf[j] += inf & (1 - negative);
        self.neg_inf[j] += inf & negative;
        let x = value as f64;
        self.squares[j] += x * x;
    }

    /// The lanes summed, in lane order.
    fn total(&self) -> Partial {
        let sum = |v: &[u32; LANES]| v.iter().map(|&c| c as u64).sum::<u64>();
        Partial {
            squares: self.squares.iter().sum(),
            zero: sum(&self.zero),
            subnormal: sum(&self.subnormal),
            nan: sum(&self.nan),
            pos_inf: sum(&self.pos_inf),
            neg_inf: sum(&self.neg_inf),
        }
    }
}

/// Values whose stored bits are `bits(i)` and whose f32 values are `values`, into `lanes`:
/// whole groups of LANES, then the rest one by one, each value always in lane i % LANES.
#[inline(always)]
fn add_all(lanes: &mut Lanes, bits: impl Fn(usize) -> u32, values: &[f32], layout: Layout) {
    let whole = values.len() / LANES * LANES;
    for start in (0..whole).step_by(LANES) {
        for j in 0..LANES {
            lanes.add(j, bits(start + j), values[start + j], layout);
        }
    }
    for (i, &value) in values.iter().enumerate().skip(whole) {
        lanes.add(i % LANES, bits(i), value, layout);
    }
}

#[inline(always)]
fn f32_piece(values: &[f32]) -> Partial {
    let mut lanes = Lanes::new();
    add_all(&mut lanes, |i| values[i].to_bits(), values, F32);
    lanes.total()
}

/// bf16 widens to f32 by a shift of its bits: exact.
#[inline(always)]
fn bf16_piece(values: &[half::bf16]) -> Partial {
    let mut lanes = Lanes::new();
    let mut wide = [0f32; WIDEN];
    for block in values.chunks(WIDEN) {
        let wide = &mut wide[..block.len()];
        for (w, b) in wide.iter_mut().zip(block) {
            *w = f32::from_bits((b.to_bits() as u32) << 16);
        }
        add_all(&mut lanes, |i| block[i].to_bits() as u32, wide, BF16);
    }
    lanes.total()
}

/// f16 widens to f32 through `half`'s slice conversion (F16C where the CPU has it): exact.
#[inline(always)]
fn f16_piece(values: &[half::f16]) -> Partial {
    let mut lanes = Lanes::new();
    let mut wide = [0f32; WIDEN];
    for block in values.chunks(WIDEN) {
        let wide = &mut wide[..block.len()];
        block.convert_to_f32_slice(wide);
        add_all(&mut lanes, |i| block[i].to_bits() as u32, wide, F16);
    }
    lanes.total()
}

/// The same pass as the compiler vectorises it for AVX2, chosen at run time.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::Partial;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn f32_avx2(v: &[f32]) -> Partial {
        super::f32_piece(v)
    }

    /// Whole groups of f32 values into lanes already holding earlier ones.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn f32_groups_avx2(lanes: &mut super::Lanes, v: &[f32]) {
        super::add_all(lanes, |i| v[i].to_bits(), v, super::F32)
    }
}

/// The pass written out for AVX-512: the compiler's own vectorisation of `Lanes::add` kept
/// the lanes on the stack and ran at 1 G values/s on two cores, a seventh of a training step.
/// Here the 16 lanes are the 16 lanes of a vector: the counts in u32 lanes, added under the
/// compare masks, the squares in two f64 vectors (lanes 0–7 and 8–15). A square of a widened
/// f32 is exact in f64, so the fused multiply-add adds the same value as `Lanes::add`'s
/// multiply then add, in the same order: the same bits as the baseline, for every format.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Lanes, Layout, Partial, BF16, F16, F32, LANES};
    use std::arch::x86_64::*;

    /// Whole groups of LANES values into `lanes`; `load(g)` gives group g's stored bits
    /// (zero-extended to u32) and its values widened to f32.
    #[target_feature(enable = "avx512f")]
    fn groups(
        lanes: &mut Lanes,
        count: usize,
        layout: Layout,
        load: impl Fn(usize) -> (__m512i, __m512),
    ) {
        let splat = |x: u32| _mm512_set1_epi32(x as i32);
        let (magnitude, inf, sign, one) = (
            splat(layout.magnitude),
            splat(layout.inf),
            splat(layout.sign),
            splat(1),
        );
        let below_normal = splat(layout.min_normal - 1);
        let counts = |c: &[u32; LANES]| unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
        let (mut zero, mut subnormal, mut nan) = (
            counts(&lanes.zero),
            counts(&lanes.subnormal),
            counts(&lanes.nan),
        );
        let (mut pos_inf, mut neg_inf) = (counts(&lanes.pos_inf), counts(&lanes.neg_inf));
        // SAFETY: `squares` holds LANES = 16 f64, two vectors of 8.
        let (mut low, mut high) = unsafe {
            let p = lanes.squares.as_ptr();
            (_mm512_loadu_pd(p), _mm512_loadu_pd(p.add(8)))
        };
        for g in 0..count {
            let (bits, values) = load(g);
            let m = _mm512_and_si512(bits, magnitude);
            let is_zero = _mm512_cmpeq_epi32_mask(m, _mm512_setzero_si512());
            // 1 ≤ m < min_normal as one unsigned compare of m − 1, as `Lanes::add`.
            let is_subnormal = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(m, one), below_normal);
            let is_nan = _mm512_cmpgt_epu32_mask(m, inf);
            let is_inf = _mm512_cmpeq_epi32_mask(m, inf);
            let negative = _mm512_test_epi32_mask(bits, sign);
            zero = _mm512_mask_add_epi32(zero, is_zero, zero, one);
            subnormal = _mm512_mask_add_epi32(subnormal, is_subnormal, subnormal, one);
            nan = _mm512_mask_add_epi32(nan, is_nan, nan, one);
            pos_inf = _mm512_mask_add_epi32(pos_inf, is_inf & !negative, pos_inf, one);
            neg_inf = _mm512_mask_add_epi32(neg_inf, is_inf & negative, neg_inf, one);
            let first = _mm512_cvtps_pd(_mm512_castps512_ps256(values));
            let second = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                _mm512_castps_pd(values),
            )));
            low = _mm512_fmadd_pd(first, first, low);
            high = _mm512_fmadd_pd(second, second, high);
        }
        let store = |c: &mut [u32; LANES], v: __m512i| unsafe {
            _mm512_storeu_si512(c.as_mut_ptr().cast(), v)
        };
        store(&mut lanes.zero, zero);
        store(&mut lanes.subnormal, subnormal);
        store(&mut lanes.nan, nan);
        store(&mut lanes.pos_inf, pos_inf);
        store(&mut lanes.neg_inf, neg_inf);
        // SAFETY: as the loads above.
        unsafe {
            let p = lanes.squares.as_mut_ptr();
            _mm512_storeu_pd(p, low);
            _mm512_storeu_pd(p.add(8), high);
        }
    }

    /// The values after the whole groups, one by one into their lanes, then the total.
    fn finish(
        mut lanes: Lanes,
        len: usize,
        bits: impl Fn(usize) -> u32,
        value: impl Fn(usize) -> f32,
        layout: Layout,
    ) -> Partial {
        for i in len / LANES * LANES..len {
            lanes.add(i % LANES, bits(i), value(i), layout);
        }
        lanes.total()
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn f32_piece(v: &[f32]) -> Partial {
        let mut lanes = Lanes::new();
        groups(&mut lanes, v.len() / LANES, F32, |g| {
            // SAFETY: group g < len / LANES lies inside `v`.
            let bits = unsafe { _mm512_loadu_si512(v.as_ptr().add(g * LANES).cast()) };
            (bits, _mm512_castsi512_ps(bits))
        });
        finish(lanes, v.len(), |i| v[i].to_bits(), |i| v[i], F32)
    }

    /// Whole groups of f32 values (`v.len()` a multiple of LANES) into lanes already
    /// holding earlier ones.
    #[target_feature(enable = "avx512f")]
    pub(super) fn f32_groups(lanes: &mut Lanes, v: &[f32]) {
        groups(lanes, v.len() / LANES, F32, |g| {
            // SAFETY: group g < len / LANES lies inside `v`.
            let bits = unsafe { _mm512_loadu_si512(v.as_ptr().add(g * LANES).cast()) };
            (bits, _mm512_castsi512_ps(bits))
        });
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn f16_piece(v: &[half::f16]) -> Partial {
        let mut lanes = Lanes::new();
        groups(&mut lanes, v.len() / LANES, F16, |g| {
            // SAFETY: as in f32_piece; 16 f16 are one 256-bit load.
            let h = unsafe { _mm256_loadu_si256(v.as_ptr().add(g * LANES).cast()) };
            // vcvtph2ps widens every f16, subnormals included, exactly.
            (_mm512_cvtepu16_epi32(h), _mm512_cvtph_ps(h))
        });
        finish(
            lanes,
            v.len(),
            |i| v[i].to_bits() as u32,
            |i| v[i].to_f32(),
            F16,
        )
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn bf16_piece(v: &[half::bf16]) -> Partial {
        let mut lanes = Lanes::new();
        groups(&mut lanes, v.len() / LANES, BF16, |g| {
            // SAFETY: as in f16_piece.
            let h = unsafe { _mm256_loadu_si256(v.as_ptr().add(g * LANES).cast()) };
            let bits = _mm512_cvtepu16_epi32(h);
            (bits, _mm512_castsi512_ps(_mm512_slli_epi32::<16>(bits)))
        });
        finish(
            lanes,
            v.len(),
            |i| v[i].to_bits() as u32,
            |i| v[i].to_f32(),
            BF16,
        )
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Isa {
    Avx512,
    Avx2,
    Baseline,
}

fn isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    })
}

fn piece_of(view: HostView<'_>) -> Partial {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each wrapper runs only where `isa()` found its features on this CPU.
        match (isa(), view) {
            (Isa::Avx512, HostView::F32(v)) => return unsafe { avx512::f32_piece(v) },
            (Isa::Avx2, HostView::F32(v)) => return unsafe { wide::f32_avx2(v) },
            (Isa::Avx512, HostView::F16(v)) => return unsafe { avx512::f16_piece(v) },
            (Isa::Avx512, HostView::Bf16(v)) => return unsafe { avx512::bf16_piece(v) },
            _ => {}
        }
    }
    match view {
        HostView::F32(v) => f32_piece(v),
        HostView::F16(v) => f16_piece(v),
        HostView::Bf16(v) => bf16_piece(v),
        HostView::Fp8 { .. } => unreachable!("FP8 takes the full record"),
    }
}

/// The census of one piece (at most PIECE values) of an f32 tensor that is never stored: its
/// values are handed over a block at a time as a caller computes them (the optimizer's ΔW and
/// new weights, `ops::optimizer::cpu`). Each value goes into the lane `census` gives it in
/// the stored tensor, through the same pass, so the partial (and with `of_pieces` the census)
/// has the same bits as `census` of the tensor cut into the same pieces.
pub(crate) struct PieceCensus {
    lanes: Lanes,
    fed: usize,
}

impl PieceCensus {
    pub(crate) fn new() -> Self {
        PieceCensus {
            lanes: Lanes::new(),
            fed: 0,
        }
    }

    /// The piece's next values. Every block but the piece's last must hold a multiple of
    /// LANES values, so that each block starts at lane 0.
    #[inline]
    pub(crate) fn add_f32(&mut self, values: &[f32]) {
        assert!(
            self.fed.is_multiple_of(LANES) && self.fed + values.len() <= PIECE,
            "a block after a partial group, or past the piece"
        );
        let whole = values.len() / LANES * LANES;
        add_f32_groups(&mut self.lanes, &values[..whole]);
        for (i, &value) in values.iter().enumerate().skip(whole) {
            self.lanes.add(i % LANES, value.to_bits(), value, F32);
        }
        self.fed += values.len();
    }

    pub(crate) fn finish(self) -> Partial {
        self.lanes.total()
    }
}

/// Whole groups of f32 values into `lanes`, with the pass `piece_of` would use.
fn add_f32_groups(lanes: &mut Lanes, values: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each wrapper runs only where `isa()` found its features on this CPU.
        match isa() {
            Isa::Avx512 => return unsafe { avx512::f32_groups(lanes, values) },
            Isa::Avx2 => return unsafe { wide::f32_groups_avx2(lanes, values) },
            Isa::Baseline => {}
        }
    }
    add_all(lanes, |i| values[i].to_bits(), values, F32)
}

/// The census of `view`: counts exact, ‖x‖₂ within (n + 1)·u₆₄ relative of the exact norm
/// (module comment). FP8 values, which training never stores gradients in, take the full
/// record.
pub fn census(view: HostView<'_>) -> Census {
    let count = view.len() as u64;
    if matches!(view, HostView::Fp8 { .. }) {
        return Census::of(&reference_of_view(view));
    }
    // Pieces in order: the same sums whatever the number of threads.
    let partials: Vec<Partial> = if view.len() <= PIECE {
        vec![piece_of(view)]
    } else {
        (0..view.len().div_ceil(PIECE))
            .into_par_iter()
            .map(|i| {
                let start = i * PIECE;
                piece_of(view.slice(start, (start + PIECE).min(view.len())))
            })
            .collect()
    };
    of_pieces(count, &partials)
}

/// The census of a tensor of `count` values from its pieces' partials, in piece order.
pub(crate) fn of_pieces(count: u64, partials: &[Partial]) -> Census {
    let mut total = Partial::default();
    for p in partials {
        total.squares += p.squares;
        total.zero += p.zero;
        total.subnormal += p.subnormal;
        total.nan += p.nan;
        total.pos_inf += p.pos_inf;
        total.neg_inf += p.neg_inf;
    }
    Census {
        count,
        zero: total.zero,
        subnormal: total.subnormal,
        nan: total.nan,
        pos_inf: total.pos_inf,
        neg_inf: total.neg_inf,
        l2_norm: l2_norm_of(
            total.squares.sqrt(),
            total.nan,
            total.pos_inf + total.neg_inf,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::reduce::cpu::reference_of_view;
    use crate::stats::Census;
    use half::{bf16, f16};

    /// Σx² of the finite values, as exactly as f64 allows: the exact squares in ascending
    /// order, summed with Neumaier's compensation (error about 2·u₆₄ relative).
    fn exact_squares(values: impl Iterator<Item = f64>) -> f64 {
        let mut squares: Vec<f64> = values.filter(|x| x.is_finite()).map(|x| x * x).collect();
        squares.sort_by(f64::total_cmp);
        let (mut sum, mut compensation) = (0.0f64, 0.0f64);
        for s in squares {
            let t = sum + s;
            compensation += if sum >= s {
                (sum - t) + s
            } else {
                (s - t) + sum
            };
            sum = t;
        }
        sum + compensation
    }

    /// The census against the full record's counts (exactly) and against the exact norm
    /// (within the module's bound, (n + 1)/2·u₆₄ for the root of the sum plus u₆₄ for the root
    /// and 2·u₆₄ for the reference).
    fn check(view: HostView<'_>, exact: f64, what: &str) {
        let full = Census::of(&reference_of_view(view));
        let lean = census(view);
        let counts = |c: &Census| (c.count, c.zero, c.subnormal, c.nan, c.pos_inf, c.neg_inf);
        assert_eq!(counts(&lean), counts(&full), "{what}: counts");
        let n = view.len() as f64;
        let u = f64::EPSILON / 2.0;
        let expect = l2_norm_of(exact.sqrt(), lean.nan, lean.pos_inf + lean.neg_inf);
        if expect.is_finite() {
            let bound = ((n + 1.0) / 2.0 + 3.0) * u * expect;
            assert!(
                (lean.l2_norm - expect).abs() <= bound,
                "{what}: norm {} against {expect} (bound {bound:e})",
                lean.l2_norm
            );
        } else {
            // NaN where a value is NaN, else +inf: as the full record says.
            assert_eq!(lean.l2_norm.is_nan(), expect.is_nan(), "{what}");
            assert_eq!(full.l2_norm.is_nan(), expect.is_nan(), "{what}");
            if !expect.is_nan() {
                assert_eq!((lean.l2_norm, full.l2_norm), (expect, expect), "{what}");
            }
        }
    }

    /// Every class of f32 on the bit boundaries between them, with both signs, and values
    /// whose square overflows f32 (its range ends near 1.8e19 for squares) or underflows it.
    fn hostile_f32() -> Vec<f32> {
        let mut v = vec![
            0.0,
            -0.0,
            f32::from_bits(1),
            -f32::from_bits(1),
            f32::from_bits(0x007F_FFFF),
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-30,
            1.0,
            -3.5,
            1e20,
            -1e30,
            f32::MAX,
            -f32::MAX,
        ];
        v.extend((0..41).map(|i| (i as f32 - 20.0) * 0.37));
        v
    }

    fn with_specials(mut v: Vec<f32>) -> Vec<f32> {
        v.extend([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7F80_0001),
        ]);
        v
    }

    /// Lengths around LANES and PIECE, so that tails and several pieces are both exercised.
    fn spread(base: &[f32], len: usize) -> Vec<f32> {
        (0..len).map(|i| base[(i * 7919) % base.len()]).collect()
    }

    #[test]
    fn f32_counts_are_the_records_and_the_norm_within_its_bound() {
        let mut infinities = hostile_f32();
        infinities.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        for base in [hostile_f32(), infinities, with_specials(hostile_f32())] {
            for len in [1, 15, 16, 17, 1000, PIECE, 2 * PIECE + 37] {
                let v = spread(&base, len);
                let exact = exact_squares(v.iter().map(|&x| x as f64));
                check(HostView::F32(&v), exact, &format!("f32 × {len}"));
            }
        }
    }

    #[test]
    fn f16_and_bf16_classes_come_from_their_own_bits() {
        // 1e-6 is subnormal in f16 but normal in f32 (and bf16): the census must not read the
        // widened value's class. 1e5 is inf in f16.
        let mut base = hostile_f32();
        base.extend([1e-6, -6e-8, 6.1e-5, 65504.0, 1e5, -1e5, 1e-39, 3e38]);
        let base = with_specials(base);
        for len in [7, 16, 3 * WIDEN + 5, 2 * PIECE + 3] {
            let v = spread(&base, len);
            let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
            let exact = exact_squares(h.iter().map(|x| x.to_f64()));
            check(HostView::F16(&h), exact, &format!("f16 × {len}"));
            let b: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
            let exact = exact_squares(b.iter().map(|x| x.to_f64()));
            check(HostView::Bf16(&b), exact, &format!("bf16 × {len}"));
        }
    }

    /// Every field, the sum of squares by its bits (NaN sums compare as NaN).
    fn assert_same(a: Partial, b: Partial, what: &str) {
        let counts = |p: Partial| (p.zero, p.subnormal, p.nan, p.pos_inf, p.neg_inf);
        assert_eq!(counts(a), counts(b), "{what}: counts");
        let squares_agree = a.squares.to_bits() == b.squares.to_bits()
            || (a.squares.is_nan() && b.squares.is_nan());
        assert!(squares_agree, "{what}: {} against {}", a.squares, b.squares);
    }

    #[test]
    fn every_path_gives_the_same_bits() {
        // The wide kernels and the baseline sum in the same order: the same result exactly,
        // counts and squares, for each format, with specials and with a tail after the whole
        // groups of LANES.
        let v = spread(&with_specials(hostile_f32()), 3 * PIECE + 11);
        let finite: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
        let piece = &finite[..PIECE];
        let baseline = f32_piece(piece);
        #[cfg(target_arch = "x86_64")]
        {
            if isa() == Isa::Avx512 {
                for (len, values) in [(PIECE, piece), (PIECE - 5, &v[..PIECE - 5])] {
                    let what = format!("f32 × {len}");
                    let wide = unsafe { avx512::f32_piece(values) };
                    assert_same(wide, f32_piece(values), &what);
                    let h: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
                    let wide = unsafe { avx512::f16_piece(&h) };
                    assert_same(wide, f16_piece(&h), &format!("f16 × {len}"));
                    let b: Vec<bf16> = values.iter().map(|&x| bf16::from_f32(x)).collect();
                    let wide = unsafe { avx512::bf16_piece(&b) };
                    assert_same(wide, bf16_piece(&b), &format!("bf16 × {len}"));
                }
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                let wide = unsafe { wide::f32_avx2(piece) };
                assert_same(wide, baseline, "f32 avx2");
            }
        }
        let threads = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
                .install(|| census(HostView::F32(&v)))
        };
        assert_eq!(threads(1).l2_norm.to_bits(), threads(2).l2_norm.to_bits());
    }
}
