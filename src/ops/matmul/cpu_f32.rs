//! The CPU backend's f32 product `C = op(A)·op(B)`: packed panels and register-tiled
//! microkernels for AVX-512F and for AVX2 + FMA, chosen at run time. The `gemm` crate (whose
//! stable build has only an AVX2 kernel) stays the fallback on CPUs with neither.
//!
//! The layout follows BLIS, with the roles of A and B swapped because C is row-major and its
//! vectors run along n:
//!
//! - the columns of op(B) are cut into blocks of `NC`, and k into blocks of `KC`; each
//!   `KC × NC` block of op(B) is packed into panels of `KC × NR` (the NR values of one p
//!   contiguous), so it streams from L2 in the order the kernel reads it;
//! - the rows of op(A) are packed into panels of `MR × KC` (the MR values of one p contiguous):
//!   one panel, a few KiB, stays in L1 while the kernel walks every panel of the B block;
//! - the microkernel keeps an `MR × NR` tile of C in registers (24 zmm accumulators with
//!   AVX-512, 12 ymm with AVX2), loads NR/16 (or NR/8) vectors of B per step of k and
//!   broadcasts MR values of A, one fused multiply-add per accumulator.
//!
//! Transposes cost nothing extra: the packing reads op(A) and op(B) through strides, so NN, NT,
//! TN and TT all become the same panels. Edges are padded with zeros in the packing (padded
//! rows and columns only fill lanes whose results are dropped; k is never padded, so an inf or
//! NaN never meets a padding zero in a result that is kept). Partial tiles of C go through a
//! small buffer.
//!
//! Both cores: C's columns are split into one chunk per rayon thread (or its rows when n is
//! narrow), and each thread packs its own panels, so the threads share nothing but the inputs.
//! Summation order differs from a naive loop only in being blocked: each result is the sum over
//! KC-blocks of in-order fused sums, within γ_k·Σ|a||b| of the exact product like any order.

use std::cell::RefCell;

use rayon::prelude::*;

use super::MatmulOp;

/// Rows of C per microkernel tile with AVX-512 and its columns (three zmm vectors).
const MR_512: usize = 8;
const NR_512: usize = 48;
/// The AVX2 tile: 6 rows × two ymm vectors.
const MR_256: usize = 6;
const NR_256: usize = 16;

/// The depth of one packed block (k per pass over C): an A panel of MR × KC is 8 KiB in L1.
const KC: usize = 256;
/// The columns of one packed B block: KC × NC × 4 bytes = 512 KiB, half of a Zen 4/5 L2.
/// (KC, NC) = (256, 256), (384, 384) and (192, 768) measured no better on the busy machine
/// of BENCHMARKS.md; the differences were within its noise.
const NC: usize = 512;

/// Products below this many multiply-adds run on one thread: waking the other costs more.
const PARALLEL_THRESHOLD: usize = 1 << 18;

/// An instruction set this file has a microkernel for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
}

impl Isa {
    /// Whether this CPU can run the kernel.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Isa::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// The widest kernel this CPU runs, if any.
    pub fn best() -> Option<Isa> {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|isa| isa.available())
    }
}

/// op(A)·op(B) with the best kernel this CPU has; `None` where it has neither.
pub fn matmul(a: &[f32], b: &[f32], op: MatmulOp, dims: (usize, usize, usize)) -> Option<Vec<f32>> {
    product(a, b, op, dims, Isa::best()?)
}

/// op(A)·op(B) with the kernel of `isa`; `None` where this CPU lacks it.
pub fn product(
    a: &[f32],
    b: &[f32],
    op: MatmulOp,
    (m, k, n): (usize, usize, usize),
    isa: Isa,
) -> Option<Vec<f32>> {
    if !isa.available() {
        return None;
    }
    // Checked products: a wrapped m·n would allocate a C smaller than the kernels write.
    let size = |x: usize, y: usize| x.checked_mul(y).expect("matmul dimensions overflow usize");
    assert_eq!(a.len(), size(m, k));
    assert_eq!(b.len(), size(k, n));
    let mut c = vec![0.0f32; size(m, n)];
    if m == 0 || n == 0 {
        return Some(c);
    }
    // (row stride, column stride) of op(A) [m, k] and op(B) [k, n] inside the stored arrays.
    let lhs = if op.transpose_a {
        Operand::new(a, 1, m)
    } else {
        Operand::new(a, k, 1)
    };
    let rhs = if op.transpose_b {
        Operand::new(b, 1, k)
    } else {
        Operand::new(b, n, 1)
    };
    let out = Output {
        ptr: c.as_mut_ptr(),
        ld: n,
    };
    #[cfg(target_arch = "x86_64")]
    match isa {
        Isa::Avx512 => parallel::<x86::Avx512>(&lhs, &rhs, out, (m, k, n)),
        Isa::Avx2 => parallel::<x86::Avx2>(&lhs, &rhs, out, (m, k, n)),
    }
    Some(c)
}

/// A matrix read through strides: element (r, c) is `data[r·rs + c·cs]`.
struct Operand<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Operand<'a> {
    fn new(data: &'a [f32], rs: usize, cs: usize) -> Self {
        Operand { data, rs, cs }
    }
}

/// C as a raw pointer, so that threads can write disjoint blocks of it.
#[derive(Clone, Copy)]
struct Output {
    ptr: *mut f32,
    ld: usize,
}

// SAFETY: every thread writes only its own rows × columns block of C (`parallel` hands out
// disjoint ranges), and C outlives the parallel section.
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

/// A microkernel: `c[0..MR][0..NR]` (row stride `ldc`) = (or +=, with `accumulate`)
/// Σ_p a_panel[p][0..MR] ⊗ b_panel[p][0..NR], over `kc` steps.
trait Kernel {
    const MR: usize;
    const NR: usize;
    /// # Safety
    /// The CPU has the kernel's ISA; `a` holds kc·MR values, `b` kc·NR, and `c` is valid for
    /// MR rows of NR values at stride `ldc`.
    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    );
}

/// Split C among rayon's threads and run `blocked` on each part.
fn parallel<K: Kernel>(
    lhs: &Operand,
    rhs: &Operand,
    out: Output,
    (m, k, n): (usize, usize, usize),
) {
    let threads = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
        rayon::current_num_threads()
    } else {
        1
    };
    // Columns when there are enough for every thread to get whole tiles, else rows.
    let (parts, by_columns) = if n >= threads * K::NR * 2 || m < threads * K::MR * 2 {
        (n.div_ceil(K::NR).min(threads), true)
    } else {
        (m.div_ceil(K::MR).min(threads), false)
    };
    let (len, unit) = if by_columns { (n, K::NR) } else { (m, K::MR) };
    let chunk = len.div_ceil(parts).div_ceil(unit) * unit;
    let run = |part: usize| {
        let start = part * chunk;
        let end = (start + chunk).min(len);
        if start >= end {
            return;
        }
        let (rows, cols) = if by_columns {
            (0..m, start..end)
        } else {
            (start..end, 0..n)
        };
        blocked::<K>(lhs, rhs, out, rows, cols, k);
    };
    if parts == 1 {
        run(0);
    } else {
        (0..parts).into_par_iter().for_each(run);
    }
}

/// A 64-byte aligned block of f32, so that packed panels never split a vector over two
/// cache lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

thread_local! {
    /// Each thread's packing buffers (A panels, B panels), kept between products so that a
    /// network's thousands of products do not fault in fresh pages each time.
    static PACKS: RefCell<(Vec<Line>, Vec<Line>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A buffer of at least `len` f32, 64-byte aligned, grown as needed.
fn floats(buf: &mut Vec<Line>, len: usize) -> &mut [f32] {
    let lines = len.div_ceil(16);
    if buf.len() < lines {
        buf.resize(lines, Line([0.0; 16]));
    }
    // SAFETY: `Line` is 16 f32 with no padding, so `lines` of them are 16·lines f32.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<f32>(), len) }
}

/// C[rows, cols] = op(A)[rows, :] · op(B)[:, cols] on this thread.
fn blocked<K: Kernel>(
    lhs: &Operand,
    rhs: &Operand,
    out: Output,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    k: usize,
) {
    let (mr, nr) = (K::MR, K::NR);
    let m_panels = rows.len().div_ceil(mr);
    PACKS.with_borrow_mut(|(a_buf, b_buf)| {
        let kc_max = KC.min(k);
        let a_pack = floats(a_buf, m_panels * mr * kc_max);
        let b_pack = floats(b_buf, NC.min(cols.len()).div_ceil(nr) * nr * kc_max);
        // A is packed once per k block and B once per (k, n) block: every value is packed
        // exactly once, which matters when m or n is a few hundred (packing op(A) for NN is a
        // scatter, about as costly as a few dozen of its multiply-adds).
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            pack_a(lhs, p0, kc, rows.start, rows.len(), mr, a_pack);
            for j0 in cols.clone().step_by(NC) {
                let nc = NC.min(cols.end - j0);
                let n_panels = nc.div_ceil(nr);
                pack_b(rhs, p0, kc, j0, nc, nr, b_pack);
                for ip in 0..m_panels {
                    let i0 = rows.start + ip * mr;
                    let mt = mr.min(rows.end - i0);
                    let a_panel = a_pack[ip * mr * kc..].as_ptr();
                    for jp in 0..n_panels {
                        let jj = j0 + jp * nr;
                        let nt = nr.min(j0 + nc - jj);
                        let b_panel = b_pack[jp * nr * kc..].as_ptr();
                        // SAFETY: (i0, jj) lies in C's block for this thread; the panels hold
                        // kc·MR and kc·NR values; the ISA was checked by `product`.
                        unsafe {
                            let c = out.ptr.add(i0 * out.ld + jj);
                            if mt == mr && nt == nr {
                                K::tile(kc, a_panel, b_panel, c, out.ld, p0 > 0);
                            } else {
                                edge_tile::<K>(kc, a_panel, b_panel, c, out.ld, p0 > 0, mt, nt);
                            }
                        }
                    }
                }
            }
        }
    });
}

/// A partial tile (mt < MR rows or nt < NR columns of C left): the kernel writes a full tile
/// into a local buffer and only its first mt × nt values reach C.
#[allow(clippy::too_many_arguments)]
unsafe fn edge_tile<K: Kernel>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    mt: usize,
    nt: usize,
) {
    let mut tile = [0.0f32; 16 * 64];
    debug_assert!(K::MR * K::NR <= tile.len());
    K::tile(kc, a, b, tile.as_mut_ptr(), K::NR, false);
    for r in 0..mt {
        for j in 0..nt {
            let dst = c.add(r * ldc + j);
            let v = tile[r * K::NR + j];
            *dst = if accumulate { *dst + v } else { v };
        }
    }
}

/// op(A)[i0..i0+mc, p0..p0+kc] into panels of MR rows, panel-major, each kc × MR with the MR
/// values of one p contiguous; rows past mc are zeros.
fn pack_a(lhs: &Operand, p0: usize, kc: usize, i0: usize, mc: usize, mr: usize, dst: &mut [f32]) {
    for (panel, out) in dst.chunks_mut(mr * kc).take(mc.div_ceil(mr)).enumerate() {
        let rows = mr.min(mc - panel * mr);
        let base = i0 + panel * mr;
        if rows < mr {
            out.fill(0.0);
        }
        if lhs.cs == 1 {
            // Rows of op(A) contiguous along p (NN, NT): read a row, scatter it down the panel.
            for r in 0..rows {
                let src = &lhs.data[(base + r) * lhs.rs + p0..][..kc];
                for (p, &v) in src.iter().enumerate() {
                    out[p * mr + r] = v;
                }
            }
        } else {
            // op(A) = Aᵀ (TN, TT): the MR values of one p are contiguous in A.
            for p in 0..kc {
                let src = &lhs.data[(p0 + p) * lhs.cs + base..][..rows];
                out[p * mr..p * mr + rows].copy_from_slice(src);
            }
        }
    }
}

/// op(B)[p0..p0+kc, j0..j0+nc] into panels of NR columns, each kc × NR with the NR values of
/// one p contiguous; columns past nc are zeros.
fn pack_b(rhs: &Operand, p0: usize, kc: usize, j0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
    for (panel, out) in dst.chunks_mut(nr * kc).take(nc.div_ceil(nr)).enumerate() {
        let cols = nr.min(nc - panel * nr);
        let base = j0 + panel * nr;
        if cols < nr {
            out.fill(0.0);
        }
        if rhs.cs == 1 {
            // op(B) = B (NN, TN): the NR values of one p are contiguous in B.
            for p in 0..kc {
                let src = &rhs.data[(p0 + p) * rhs.rs + base..][..cols];
                out[p * nr..p * nr + cols].copy_from_slice(src);
            }
        } else {
            // op(B) = Bᵀ (NT, TT): column j of op(B) is row j of B, contiguous along p.
            for c in 0..cols {
                let src = &rhs.data[(base + c) * rhs.cs + p0..][..kc];
                for (p, &v) in src.iter().enumerate() {
                    out[p * nr + c] = v;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Kernel, MR_256, MR_512, NR_256, NR_512};

    pub(super) struct Avx512;
    pub(super) struct Avx2;

    const V512: usize = NR_512 / 16;
    const V256: usize = NR_256 / 8;

    impl Kernel for Avx512 {
        const MR: usize = MR_512;
        const NR: usize = NR_512;
        unsafe fn tile(
            kc: usize,
            a: *const f32,
            b: *const f32,
            c: *mut f32,
            ldc: usize,
            accumulate: bool,
        ) {
            tile_512(kc, a, b, c, ldc, accumulate)
        }
    }

    impl Kernel for Avx2 {
        const MR: usize = MR_256;
        const NR: usize = NR_256;
        unsafe fn tile(
            kc: usize,
            a: *const f32,
            b: *const f32,
            c: *mut f32,
            ldc: usize,
            accumulate: bool,
        ) {
            tile_256(kc, a, b, c, ldc, accumulate)
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn tile_512(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V512]; MR_512];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            let mut bv = [_mm512_setzero_ps(); V512];
            for (v, bv) in bv.iter_mut().enumerate() {
                *bv = _mm512_load_ps(b.add(v * 16));
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r));
                for (acc_rv, bv) in acc_r.iter_mut().zip(&bv) {
                    *acc_rv = _mm512_fmadd_ps(av, *bv, *acc_rv);
                }
            }
            a = a.add(MR_512);
            b = b.add(NR_512);
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (v, acc_rv) in acc_r.iter().enumerate() {
                let dst = c.add(r * ldc + v * 16);
                let sum = if accumulate {
                    _mm512_add_ps(_mm512_loadu_ps(dst), *acc_rv)
                } else {
                    *acc_rv
                };
                _mm512_storeu_ps(dst, sum);
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_256(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); V256]; MR_256];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            let mut bv = [_mm256_setzero_ps(); V256];
            for (v, bv) in bv.iter_mut().enumerate() {
                *bv = _mm256_load_ps(b.add(v * 8));
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*a.add(r));
                for (acc_rv, bv) in acc_r.iter_mut().zip(&bv) {
                    *acc_rv = _mm256_fmadd_ps(av, *bv, *acc_rv);
                }
            }
            a = a.add(MR_256);
            b = b.add(NR_256);
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (v, acc_rv) in acc_r.iter().enumerate() {
                let dst = c.add(r * ldc + v * 8);
                let sum = if accumulate {
                    _mm256_add_ps(_mm256_loadu_ps(dst), *acc_rv)
                } else {
                    *acc_rv
                };
                _mm256_storeu_ps(dst, sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::ops::bounds::gamma;

    /// f32's unit roundoff, and f64's (the reference's own sums round too).
    const U32: f64 = 1.0 / (1u64 << 24) as f64;
    const U64: f64 = 1.0 / (1u64 << 53) as f64;

    /// Shapes that hit every edge of both kernels (MR 8 and 6, NR 48 and 16), of the blocks
    /// (KC 256, NC 512) and of the split between threads (columns when n is wide, rows when it
    /// is narrow): ones, primes, one past a tile or block, k over several KC blocks, n over
    /// NC.
    const SHAPES: [(usize, usize, usize); 16] = [
        (1, 1, 1),
        (1, 7, 1),
        (7, 1, 13),
        (8, 256, 48),
        (6, 256, 16),
        (9, 257, 49),
        (7, 255, 17),
        (13, 300, 97),
        (3, 513, 5),
        (17, 31, 529),
        (31, 1031, 3),
        (300, 100, 40),
        (37, 600, 300),
        (97, 263, 1031),
        (193, 97, 389),
        (64, 512, 512),
    ];

    fn values(rng: &mut impl Rng, len: usize) -> Vec<f32> {
        // Mixed signs and four decades of magnitude, so cancellation happens and a wrong term
        // shows.
        (0..len)
            .map(|_| {
                let scale = 10f32.powi(rng.random_range(-2..2));
                (rng.random::<f32>() * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// The product in f64 (each f32·f32 product exact) and Σ|a||b|, per element.
    fn exact(
        a: &[f32],
        b: &[f32],
        op: MatmulOp,
        dims: (usize, usize, usize),
    ) -> (Vec<f64>, Vec<f64>) {
        let (m, k, n) = dims;
        let mut c = vec![0.0; m * n];
        let mut abs = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let x = a[op.lhs_index(i, p, dims)] as f64 * b[op.rhs_index(p, j, dims)] as f64;
                    c[i * n + j] += x;
                    abs[i * n + j] += x.abs();
                }
            }
        }
        (c, abs)
    }

    /// Every result within γ_k·Σ|a||b| of the exact product (the bound for any order of
    /// summation, fused or not), plus the f64 reference's own γ_k(2^-53)·Σ|a||b|; where the
    /// reference is inf or NaN, the same.
    fn check(
        got: &[f32],
        a: &[f32],
        b: &[f32],
        op: MatmulOp,
        dims: (usize, usize, usize),
        what: &str,
    ) {
        let (m, k, n) = dims;
        let (c, abs) = exact(a, b, op, dims);
        assert_eq!(got.len(), m * n);
        for idx in 0..m * n {
            let (x, want) = (got[idx] as f64, c[idx]);
            let (i, j) = (idx / n, idx % n);
            if want.is_nan() {
                assert!(
                    x.is_nan(),
                    "{what} {m}×{k}×{n} {} [{i},{j}]: {x}, want NaN",
                    op.name()
                );
            } else if want.is_infinite() {
                assert_eq!(x, want, "{what} {m}×{k}×{n} {} [{i},{j}]", op.name());
            } else {
                let bound = (gamma(k, U32) + gamma(k, U64)) * abs[idx];
                assert!(
                    (x - want).abs() <= bound,
                    "{what} {m}×{k}×{n} {} [{i},{j}]: {x} vs exact {want}, bound {bound:e}",
                    op.name()
                );
            }
        }
    }

    fn isas() -> Vec<Isa> {
        let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|i| i.available())
            .collect();
        if isas.is_empty() {
            eprintln!("SKIPPED: this CPU has neither AVX-512F nor AVX2 + FMA; `gemm` runs");
        }
        isas
    }

    #[test]
    fn every_shape_op_and_kernel_is_within_the_bound_of_the_exact_product() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        for &(m, k, n) in &SHAPES {
            for op in MatmulOp::ALL {
                let a = values(&mut rng, m * k);
                let b = values(&mut rng, k * n);
                for isa in isas() {
                    let got = product(&a, &b, op, (m, k, n), isa).unwrap();
                    check(&got, &a, &b, op, (m, k, n), &format!("{isa:?}"));
                }
            }
        }
    }

    #[test]
    fn the_two_kernels_agree_within_twice_the_bound() {
        // Both within γ_k·Σ|a||b| of the exact product, so within twice that of each other.
        if !Isa::Avx512.available() || !Isa::Avx2.available() {
            eprintln!("SKIPPED: this CPU lacks one of the two kernels");
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(22);
        for &(m, k, n) in &SHAPES {
            for op in MatmulOp::ALL {
                let dims = (m, k, n);
                let a = values(&mut rng, m * k);
                let b = values(&mut rng, k * n);
                let wide = product(&a, &b, op, dims, Isa::Avx512).unwrap();
                let narrow = product(&a, &b, op, dims, Isa::Avx2).unwrap();
                let (_, abs) = exact(&a, &b, op, dims);
                for idx in 0..m * n {
                    let bound = 2.0 * gamma(k, U32) * abs[idx];
                    let diff = (wide[idx] as f64 - narrow[idx] as f64).abs();
                    assert!(
                        diff <= bound,
                        "{m}×{k}×{n} {} [{idx}]: {diff:e} > {bound:e}",
                        op.name()
                    );
                }
            }
        }
    }

    #[test]
    fn inf_and_nan_propagate_as_ieee_says() {
        // m, n not multiples of any tile and k over two KC blocks, so the specials sit in the
        // second block and next to padded rows and columns (whose NaNs must not leak).
        let (m, k, n) = (11, 300, 53);
        let mut rng = rand::rngs::StdRng::seed_from_u64(23);
        let mut a = values(&mut rng, m * k);
        let mut b = values(&mut rng, k * n);
        // Row 0 of op(A) has +inf at p = 270; column 0 of op(B) a zero there (inf·0 = NaN),
        // column 1 +2 (+inf), column 2 −1 (−inf); row 1 has +inf at p = 5 and −inf at p = 280,
        // which meet positive values in column 3 (inf − inf = NaN); column 4 of op(B) has a NaN
        // at p = 100, which makes the whole column NaN; the rest stays finite.
        for op in MatmulOp::ALL {
            let dims = (m, k, n);
            let ai = |i, p| op.lhs_index(i, p, dims);
            let bi = |p, j| op.rhs_index(p, j, dims);
            a[ai(0, 270)] = f32::INFINITY;
            a[ai(1, 5)] = f32::INFINITY;
            a[ai(1, 280)] = f32::NEG_INFINITY;
            b[bi(270, 0)] = 0.0;
            b[bi(270, 1)] = 2.0;
            b[bi(270, 2)] = -1.0;
            b[bi(5, 3)] = 1.0;
            b[bi(280, 3)] = 1.0;
            b[bi(100, 4)] = f32::NAN;
            for isa in isas() {
                let c = product(&a, &b, op, dims, isa).unwrap();
                assert!(c[0].is_nan(), "{isa:?} {}: inf·0", op.name());
                assert_eq!(c[1], f32::INFINITY, "{isa:?} {}", op.name());
                assert_eq!(c[2], f32::NEG_INFINITY, "{isa:?} {}", op.name());
                assert!(c[n + 3].is_nan(), "{isa:?} {}: inf − inf", op.name());
                assert!(
                    (0..m).all(|i| c[i * n + 4].is_nan()),
                    "{isa:?} {}: NaN column",
                    op.name()
                );
                assert!(c[2 * n..]
                    .iter()
                    .enumerate()
                    .all(|(idx, x)| x.is_finite() || idx % n == 4));
                check(&c, &a, &b, op, dims, &format!("{isa:?} specials"));
            }
            // Restore the operands for the next op, which puts its specials elsewhere.
            a = values(&mut rng, m * k);
            b = values(&mut rng, k * n);
        }
    }

    #[test]
    fn a_product_with_zero_rows_columns_or_depth_is_zeros_or_empty() {
        for isa in isas() {
            assert!(product(&[], &[0.0; 5], MatmulOp::default(), (0, 1, 5), isa)
                .unwrap()
                .is_empty());
            let c = product(&[], &[], MatmulOp::default(), (3, 0, 4), isa).unwrap();
            assert_eq!(c, vec![0.0; 12]);
        }
    }
}
