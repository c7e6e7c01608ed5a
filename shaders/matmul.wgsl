// C = op(A) · op(B), row-major, op(X) = X or Xᵀ.
//
// Template: the header (src/ops/matmul/gpu.rs) defines
//   alias S    storage type of A, B and C (f32 or f16)
//   alias A    accumulator type (f32, or f16 for pure half arithmetic)
//   const TRANSPOSE_A, TRANSPOSE_B: bool
//   const THREADS_PER_EDGE: u32   the workgroup is THREADS_PER_EDGE² threads
//   const REG: u32           register block edge (2 or 4): the tile is THREADS_PER_EDGE·REG wide
//   const USE_SHARED: bool   stage tiles in workgroup memory, or read straight from storage
//   const INTERIOR_PATH: bool   take the unchecked path in workgroups wholly inside the matrix
//   fn load4_lhs, load4_rhs  elements i … i+3: one vec4 load where the host bound a
//                            vector view of the operand (VEC_A, VEC_B), four loads otherwise
// so one source serves every precision, transpose combination and variant.
//
// Interior and boundary: a workgroup whose TILE × TILE block of C lies wholly inside the
// matrix, staging a k-block wholly inside k, needs none of the bounds tests of load_a and
// load_b, and its stores need none either. Whether a workgroup is interior depends only on its
// workgroup id and the uniform params, so the choice is uniform and the barriers stay in
// uniform control flow. Both paths stage the same values in the same places, so the sum and
// its bits do not depend on the path.
//
// Each workgroup computes a TILE × TILE block of C; each thread owns a REG × REG register
// block whose rows and columns are strided by THREADS_PER_EDGE, so that neighbouring
// threads write neighbouring columns. Every variant sums k in order 0, 1, …, k−1 with fma, so
// all of them give the same bits, and the CPU reference emulates exactly that order in pure
// f16 (there the order changes the result).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // Workgroups per row of the dispatch grid; grids of more than 65535 tiles fold into y.
    groups_x: u32,
    // (1/s_a)·(1/s_b) of FP8 operands quantised with scales s_a, s_b (DEQUANTIZE).
    out_scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Bindings 0 (lhs), 1 (rhs) and 2 (out) come from the header: load_lhs, load_rhs, store_out.
@group(0) @binding(3) var<uniform> params: Params;

const TILE: u32 = THREADS_PER_EDGE * REG;
// The k-step of the staged variants: one row of the tile per thread column.
const BK: u32 = THREADS_PER_EDGE;
const THREADS: u32 = THREADS_PER_EDGE * THREADS_PER_EDGE;
const TILE_BK: u32 = TILE * BK;
const LOADS: u32 = TILE_BK / THREADS;
const REG2: u32 = REG * REG;

// tile_a[kk * TILE + r] = op(A)[row0 + r, k0 + kk];  tile_b[kk * TILE + c] = op(B)[k0 + kk, col0 + c]
var<workgroup> tile_a: array<A, TILE_BK>;
var<workgroup> tile_b: array<A, TILE_BK>;

// op(A)[row, kk] of a row and kk known to lie inside the matrix.
fn load_a_inside(row: u32, kk: u32) -> A {
    if (TRANSPOSE_A) {
        return load_lhs(kk * params.m + row);
    }
    return load_lhs(row * params.k + kk);
}

// op(B)[kk, col] of a kk and col known to lie inside the matrix.
fn load_b_inside(kk: u32, col: u32) -> A {
    if (TRANSPOSE_B) {
        return load_rhs(col * params.k + kk);
    }
    return load_rhs(kk * params.n + col);
}

// op(A)[row, kk], zero outside the matrix: a zero pad adds fma(0, 0, acc) = acc exactly.
fn load_a(row: u32, kk: u32) -> A {
    if (row >= params.m || kk >= params.k) {
        return A(0);
    }
    return load_a_inside(row, kk);
}

// op(B)[kk, col], zero outside the matrix.
fn load_b(kk: u32, col: u32) -> A {
    if (kk >= params.k || col >= params.n) {
        return A(0);
    }
    return load_b_inside(kk, col);
}

// Stages the k-block at k0 of a boundary workgroup: every load tested, zero outside.
fn stage_checked(thread: u32, row0: u32, col0: u32, k0: u32) {
    // Each thread stages LOADS elements of each tile, walking memory along its contiguous
    // axis.
    for (var step = 0u; step < LOADS; step++) {
        let idx = thread + step * THREADS;
        if (TRANSPOSE_A) {
            let kk = idx / TILE;
            let r = idx % TILE;
            tile_a[kk * TILE + r] = load_a(row0 + r, k0 + kk);
        } else {
            let r = idx / BK;
            let kk = idx % BK;
            tile_a[kk * TILE + r] = load_a(row0 + r, k0 + kk);
        }
        if (TRANSPOSE_B) {
            let c = idx / BK;
            let kk = idx % BK;
            tile_b[kk * TILE + c] = load_b(k0 + kk, col0 + c);
        } else {
            let kk = idx / TILE;
            let c = idx % TILE;
            tile_b[kk * TILE + c] = load_b(k0 + kk, col0 + c);
        }
    }
}

// Four contiguous elements of each tile per load: TILE_BK / 4 loads per tile.
const VEC_LOADS_PER_TILE: u32 = TILE_BK / 4u;
const VEC_STEPS: u32 = (VEC_LOADS_PER_TILE + THREADS - 1u) / THREADS;

// Stages the k-block at k0 of an interior workgroup, k0 + BK ≤ k: no tests, and four
// contiguous elements per load_4 call (one vector load where the host bound a vector view,
// which it does only where the contiguous dimension is a multiple of 4, so that every
// group of four starts at a multiple of 4: row0, col0 and k0 are multiples of TILE and BK).
fn stage_interior(thread: u32, row0: u32, col0: u32, k0: u32) {
    for (var step = 0u; step < VEC_STEPS; step++) {
        let idx = thread + step * THREADS;
        if (idx < VEC_LOADS_PER_TILE) {
            if (TRANSPOSE_A) {
                // A is k × m: four neighbouring rows r … r+3 of op(A) at one kk.
                let kk = idx / (TILE / 4u);
                let r = (idx % (TILE / 4u)) * 4u;
                let v = load4_lhs((k0 + kk) * params.m + row0 + r);
                for (var j = 0u; j < 4u; j++) {
                    tile_a[kk * TILE + r + j] = v[j];
                }
            } else {
                // A is m × k: four neighbouring kk at one row.
                let r = idx / (BK / 4u);
                let kk = (idx % (BK / 4u)) * 4u;
                let v = load4_lhs((row0 + r) * params.k + k0 + kk);
                for (var j = 0u; j < 4u; j++) {
                    tile_a[(kk + j) * TILE + r] = v[j];
                }
            }
            if (TRANSPOSE_B) {
                // B is n × k: four neighbouring kk at one column.
                let c = idx / (BK / 4u);
                let kk = (idx % (BK / 4u)) * 4u;
                let v = load4_rhs((col0 + c) * params.k + k0 + kk);
                for (var j = 0u; j < 4u; j++) {
                    tile_b[(kk + j) * TILE + c] = v[j];
                }
            } else {
                // B is k × n: four neighbouring columns at one kk.
                let kk = idx / (TILE / 4u);
                let c = (idx % (TILE / 4u)) * 4u;
                let v = load4_rhs((k0 + kk) * params.n + col0 + c);
                for (var j = 0u; j < 4u; j++) {
                    tile_b[kk * TILE + c + j] = v[j];
                }
            }
        }
    }
}

@compute @workgroup_size(THREADS_PER_EDGE, THREADS_PER_EDGE, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let tiles_n = (params.n + TILE - 1u) / TILE;
    let tiles_m = (params.m + TILE - 1u) / TILE;
    let tile = group.y * params.groups_x + group.x;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if (tile >= tiles_m * tiles_n) {
        return;
    }
    let row0 = (tile / tiles_n) * TILE;
    let col0 = (tile % tiles_n) * TILE;

    var acc: array<A, REG2>;
    for (var i = 0u; i < REG2; i++) {
        acc[i] = A(0);
    }

    // Uniform: the workgroup's whole block of C lies inside the matrix.
    let interior = INTERIOR_PATH && row0 + TILE <= params.m && col0 + TILE <= params.n;

    if (USE_SHARED) {
        for (var k0 = 0u; k0 < params.k; k0 += BK) {
            if (interior && k0 + BK <= params.k) {
                stage_interior(thread, row0, col0, k0);
            } else {
                stage_checked(thread, row0, col0, k0);
            }
            workgroupBarrier();

            for (var kk = 0u; kk < BK; kk++) {
                var a_reg: array<A, REG>;
                var b_reg: array<A, REG>;
                for (var i = 0u; i < REG; i++) {
                    a_reg[i] = tile_a[kk * TILE + local.y + i * THREADS_PER_EDGE];
                    b_reg[i] = tile_b[kk * TILE + local.x + i * THREADS_PER_EDGE];
                }
                for (var i = 0u; i < REG; i++) {
                    for (var j = 0u; j < REG; j++) {
                        acc[i * REG + j] = fma(a_reg[i], b_reg[j], acc[i * REG + j]);
                    }
                }
            }
            workgroupBarrier();
        }
    } else {
        // Straight from storage: each thread reads its own rows and columns for every k.
        // The two loops differ only in their loads; the test stays outside them, so that a
        // compiler that cannot prove it uniform (one running the workgroup as SIMD lanes)
        // does not take both sides at every step.
        if (interior) {
            // kk < k by the loop, and every row and column inside: no tests.
            for (var kk = 0u; kk < params.k; kk++) {
                var a_reg: array<A, REG>;
                var b_reg: array<A, REG>;
                for (var i = 0u; i < REG; i++) {
                    a_reg[i] = load_a_inside(row0 + local.y + i * THREADS_PER_EDGE, kk);
                    b_reg[i] = load_b_inside(kk, col0 + local.x + i * THREADS_PER_EDGE);
                }
                for (var i = 0u; i < REG; i++) {
                    for (var j = 0u; j < REG; j++) {
                        acc[i * REG + j] = fma(a_reg[i], b_reg[j], acc[i * REG + j]);
                    }
                }
            }
        } else {
            for (var kk = 0u; kk < params.k; kk++) {
                var a_reg: array<A, REG>;
                var b_reg: array<A, REG>;
                for (var i = 0u; i < REG; i++) {
                    a_reg[i] = load_a(row0 + local.y + i * THREADS_PER_EDGE, kk);
                    b_reg[i] = load_b(kk, col0 + local.x + i * THREADS_PER_EDGE);
                }
                for (var i = 0u; i < REG; i++) {
                    for (var j = 0u; j < REG; j++) {
                        acc[i * REG + j] = fma(a_reg[i], b_reg[j], acc[i * REG + j]);
                    }
                }
            }
        }
    }

    for (var i = 0u; i < REG; i++) {
        let row = row0 + local.y + i * THREADS_PER_EDGE;
        for (var j = 0u; j < REG; j++) {
            let col = col0 + local.x + j * THREADS_PER_EDGE;
            if (interior || (row < params.m && col < params.n)) {
                var c = acc[i * REG + j];
                if (DEQUANTIZE) {
                    c = c * A(params.out_scale);
                }
                store_out(row * params.n + col, c);
            }
        }
    }
}
