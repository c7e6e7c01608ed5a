//! The statistics reductions finish their workgroup trees in a subgroup's registers where the
//! adapter has subgroups (shaders/reduce_subgroup.wgsl), and in workgroup memory alone where it
//! has not. Both pair the same values in the same order, so every record must be the same, bit
//! for bit: here the same tensors on one adapter opened twice, with and without `SUBGROUP`.
//! (tests/stats.rs and tests/stats_edges.rs hold the default path, the subgroup one where the
//! adapter has it, to the CPU reference.)

use gradstab::{Backend, DType, Gpu, GpuOptions, HostTensor};
use rand::Rng;

mod common;

/// The adapter opened with subgroups and without, each reading `per_thread` values a thread;
/// `None` where it has no subgroups (both would then take the same path).
fn both_paths(test: &str, per_thread: Option<usize>) -> Option<(Gpu, Gpu)> {
    common::gpu(test)?;
    let open = |disable_subgroups| {
        Gpu::new(&GpuOptions {
            disable_subgroups,
            reduction_per_thread: per_thread,
            ..GpuOptions::from_env().unwrap()
        })
        .unwrap()
    };
    let (with, without) = (open(false), open(true));
    assert_eq!(without.subgroup_lanes(), 1);
    if with.subgroup_lanes() == 1 {
        eprintln!("SKIPPED {test}: the adapter has no subgroups; both paths are the tree");
        return None;
    }
    Some((with, without))
}

/// The kinds of tensor each shape is tried with: the values the trees' min, max and Chan
/// steps could treat differently (±0, which min and max may order either way; NaN and ±inf,
/// which the extrema skip; subnormals; values near f32::MAX, whose scale is extreme).
const PATTERNS: [&str; 9] = [
    "normal",
    "mixed",
    "all NaN",
    "all +0",
    "all -0",
    "±0",
    "±inf and NaN",
    "subnormal",
    "near f32::MAX",
];

/// `len` values of `pattern`, for storage in `dtype` (subnormals of its format).
fn values<R: Rng>(rng: &mut R, pattern: &str, dtype: DType, len: usize) -> Vec<f32> {
    let tiny = match dtype {
        DType::F16 => 1e-6,
        _ => 1e-39,
    };
    let big = match dtype {
        DType::F16 => 6e4,
        _ => 3e38,
    };
    // ±1, each half the time; a product with it keeps every magnitude exactly.
    let sign = |rng: &mut R| if rng.random() { 1.0f32 } else { -1.0 };
    (0..len)
        .map(|_| match pattern {
            "normal" => rng.random_range(-1.0f32..1.0) * 3.0 + 0.5,
            "mixed" => match rng.random_range(0..10) {
                0 => f32::NAN,
                1 => sign(rng) * f32::INFINITY,
                2 => sign(rng) * 0.0,
                3 => sign(rng) * tiny * rng.random_range(0.0f32..1.0),
                4 => sign(rng) * big * rng.random_range(0.5f32..1.0),
                _ => rng.random_range(-1.0f32..1.0) * 2f32.powi(rng.random_range(-20..20)),
            },
            "all NaN" => f32::NAN,
            "all +0" => 0.0,
            "all -0" => -0.0,
            "±0" => sign(rng) * 0.0,
            "±inf and NaN" => match rng.random_range(0..3) {
                0 => f32::NAN,
                _ => sign(rng) * f32::INFINITY,
            },
            "subnormal" => sign(rng) * tiny * rng.random_range(0.0f32..1.0),
            "near f32::MAX" => sign(rng) * big * rng.random_range(0.9f32..1.0),
            other => unreachable!("{other}"),
        })
        .collect()
}

/// Every record of `tensors` (whole tensors, then per row) from both adapters, compared by
/// their Debug text, which writes each f64 exactly (shortest round trip, -0 apart from +0).
fn assert_same_records(with: &Gpu, without: &Gpu, tensors: &[(String, HostTensor)]) {
    let records = |gpu: &Gpu| -> Vec<String> {
        let uploaded: Vec<_> = tensors
            .iter()
            .map(|(_, t)| gpu.upload(t).unwrap())
            .collect();
        let pending = uploaded
            .iter()
            .map(|t| gpu.stats_later(t).unwrap())
            .collect();
        let mut all: Vec<String> = gpu
            .collect_stats(pending)
            .unwrap()
            .iter()
            .map(|r| format!("{r:?}"))
            .collect();
        for t in &uploaded {
            let rows = gpu.row_stats(t).unwrap();
            all.push(format!("{rows:?}"));
        }
        all
    };
    let (a, b) = (records(with), records(without));
    let names = tensors.iter().map(|(n, _)| format!("{n}, whole"));
    let names = names.chain(tensors.iter().map(|(n, _)| format!("{n}, per row")));
    for ((name, a), b) in names.zip(&a).zip(&b) {
        assert_eq!(a, b, "{name}: subgroups (left) and the tree (right) differ");
    }
}

fn shapes_of(
    rng: &mut impl Rng,
    shapes: &[(usize, usize)],
    dtypes: &[DType],
) -> Vec<(String, HostTensor)> {
    let mut tensors = Vec::new();
    for &dtype in dtypes {
        for &(rows, cols) in shapes {
            for pattern in PATTERNS {
                let v = values(rng, pattern, dtype, rows * cols);
                let t = HostTensor::from_f32_as(dtype, rows, cols, &v).unwrap();
                tensors.push((format!("{dtype} {rows}×{cols} {pattern}"), t));
            }
        }
    }
    tensors
}

/// Lengths around the subgroup (8 on lavapipe) and the workgroup (256 threads): tails of
/// every size, one chunk and several.
#[test]
fn subgroup_and_tree_give_the_same_bits() {
    let Some((with, without)) = both_paths("subgroup_and_tree_give_the_same_bits", None) else {
        return;
    };
    let mut rng = common::rng(41);
    let shapes = [
        (1, 1),
        (1, 2),
        (1, 7),
        (1, 9),
        (3, 17),
        (1, 255),
        (2, 257),
        (1, 1000),
        (1, 8191),
        (1, 8193),
        (2, 20_000),
    ];
    let tensors = shapes_of(&mut rng, &shapes, &[DType::F32, DType::F16, DType::Bf16]);
    assert_same_records(&with, &without, &tensors);
}

/// One value a thread: a chunk is 256 values, so the combine kernel's trees see many
/// partial records, and a tail chunk holds few.
#[test]
fn subgroup_and_tree_give_the_same_bits_over_many_chunks() {
    let Some((with, without)) = both_paths(
        "subgroup_and_tree_give_the_same_bits_over_many_chunks",
        Some(1),
    ) else {
        return;
    };
    let mut rng = common::rng(42);
    let shapes = [(1, 3), (1, 256), (1, 263), (2, 2049), (1, 70_001)];
    let tensors = shapes_of(&mut rng, &shapes, &[DType::F32, DType::Bf16]);
    assert_same_records(&with, &without, &tensors);
}
