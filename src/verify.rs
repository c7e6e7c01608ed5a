//! `gradstab verify`: every kernel, in every precision and transpose combination, on the chosen
//! device against the CPU backend, each element held to the bound its op derives. This is how a
//! user comes to trust their own GPU; the test suite runs the same comparisons.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::backend::cpu::Cpu;
use crate::backend::gpu::Gpu;
use crate::backend::Backend;
use crate::error::Result;
use crate::gpu::probe::{probe, ProbeReport};
use crate::ops::activation::Activation;
use crate::ops::bounds::result_distance;
use crate::ops::cast::Overflowing;
use crate::ops::elementwise::ElementwiseOp;
use crate::ops::matmul::gpu::matmul_with;
use crate::ops::matmul::{self, MatmulOp, MatmulVariant};
use crate::precision::{DType, Precision};
use crate::tensor::HostTensor;

/// The outcome of comparing many elements against their bounds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Comparison {
    pub elements: usize,
    /// The largest |gpu − cpu| over all elements, and the bound of that element.
    pub max_error: f64,
    pub bound_at_max_error: f64,
    /// The largest error / bound over all elements (≤ 1 passes).
    pub worst_ratio: f64,
    /// The error and bound of the element with the worst ratio.
    pub error_at_worst: f64,
    pub bound_at_worst: f64,
    pub bit_identical: usize,
    /// The first element that broke its bound, described.
    pub first_failure: Option<String>,
}

impl Comparison {
    pub fn passed(&self) -> bool {
        self.first_failure.is_none()
    }

    pub fn bit_identical_fraction(&self) -> f64 {
        self.bit_identical as f64 / self.elements.max(1) as f64
    }

    fn record(&mut self, got: f64, expected: f64, bound: f64, describe: impl FnOnce() -> String) {
        let err = result_distance(got, expected);
        self.elements += 1;
        self.bit_identical += (got.to_bits() == expected.to_bits()) as usize;
        if err > self.max_error || self.elements == 1 {
            self.max_error = err;
            self.bound_at_max_error = bound;
        }
        let ratio = if err == 0.0 { 0.0 } else { err / bound };
        if ratio > self.worst_ratio || self.elements == 1 {
            self.worst_ratio = ratio;
            self.error_at_worst = err;
            self.bound_at_worst = bound;
        }
        if err > bound && self.first_failure.is_none() {
            self.first_failure = Some(format!(
                "{}: gpu {got:e}, cpu {expected:e}, error {err:e} > bound {bound:e}",
                describe()
            ));
        }
    }

    /// Folds another comparison of the same kernel into this one.
    pub fn merge(&mut self, other: Comparison) {
        if other.elements > 0 && (other.max_error > self.max_error || self.elements == 0) {
            self.max_error = other.max_error;
            self.bound_at_max_error = other.bound_at_max_error;
        }
        if other.elements > 0 && (other.worst_ratio > self.worst_ratio || self.elements == 0) {
            self.worst_ratio = other.worst_ratio;
            self.error_at_worst = other.error_at_worst;
            self.bound_at_worst = other.bound_at_worst;
        }
        self.elements += other.elements;
        self.bit_identical += other.bit_identical;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

/// N(0, std²) values rounded to `dtype`, from `rng`.
pub fn normal_tensor(
    rng: &mut impl Rng,
    dtype: DType,
    rows: usize,
    cols: usize,
    std: f32,
) -> Result<HostTensor> {
    let values: Vec<f32> = (0..rows * cols)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            std * z as f32
        })
        .collect();
    HostTensor::from_f32_as(dtype, rows, cols, &values)
}

fn rng(seed: u64) -> crate::init::Stream {
    crate::init::Stream::seed_from_u64(seed)
}

/// `op(A)·op(B)` of N(0, 1) operands of an `m × k` by `k × n` product, GPU (with `variant`)
/// against CPU.
pub fn compare_matmul(
    gpu: &Gpu,
    flushes_subnormals: bool,
    precision: Precision,
    op: MatmulOp,
    variant: MatmulVariant,
    (m, k, n): (usize, usize, usize),
    seed: u64,
) -> Result<Comparison> {
    let mut rng = rng(seed);
    let (a_shape, b_shape) = op.operand_shapes(m, k, n);
    let dtype = precision.storage();
    let a = normal_tensor(&mut rng, dtype, a_shape.rows, a_shape.cols, 1.0)?;
    let b = normal_tensor(&mut rng, dtype, b_shape.rows, b_shape.cols, 1.0)?;
    let expected = Cpu.matmul(&a, &b, op, precision)?.to_f64_vec();
    gpu.require(precision)?;
    let got = matmul_with(
        gpu,
        &gpu.upload(&a)?,
        &gpu.upload(&b)?,
        op,
        precision,
        variant,
    )?;
    let got = gpu.download(&got)?.to_f64_vec();
    let (a64, b64) = (a.to_f64_vec(), b.to_f64_vec());
    let sums = matmul::sum_abs_products(&a64, &b64, op, m, k, n);
    // Pure f16 sums in order on both sides: each result lies within the running error bound of
    // the exact product, far tighter than γ_k·Σ|a||b| once k is large.
    let in_order = (precision == Precision::F16)
        .then(|| matmul::f16_in_order_error_bounds(&a64, &b64, op, (m, k, n)));
    let mut cmp = Comparison::default();
    for i in 0..m * n {
        let bound = match &in_order {
            Some(bounds) => 2.0 * bounds[i],
            None => matmul::error_bound(
                precision,
                k,
                sums[i],
                got[i],
                expected[i],
                flushes_subnormals,
            ),
        };
        cmp.record(got[i], expected[i], bound, || {
            format!(
                "matmul {} {precision} m={m} k={k} n={n} element ({}, {})",
                op.name(),
                i / n,
                i % n
            )
        });
    }
    Ok(cmp)
}

/// Where activations meet the edges of the formats: ±0, the smallest f16 subnormal, ±1, either
/// side of where `exp` overflows f16 (11.09), far saturation, ±inf and NaN.
pub const ACTIVATION_SPECIAL_POINTS: [f64; 15] = [
    0.0,
    -0.0,
    5.960464477539063e-8, // 2^-24
    -5.960464477539063e-8,
    1.0,
    -1.0,
    11.0,
    -11.0,
    12.0,
    -12.0,
    1e4,
    -1e4,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
];

/// The special points and a dense grid over [−20, 20]: where activations saturate, overflow
/// `exp` in f16, and keep relative accuracy near 0.
pub fn activation_inputs() -> Vec<f64> {
    let grid = (-2560..=2560).map(|i| i as f64 / 128.0);
    ACTIVATION_SPECIAL_POINTS.into_iter().chain(grid).collect()
}

/// act (or act') of `xs` stored in `precision` on `backend`: the stored inputs and the outputs.
pub fn run_activation<B: Backend>(
    backend: &B,
    act: Activation,
    xs: &[f64],
    precision: Precision,
    derivative: bool,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let values: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
    let host = HostTensor::from_f32_as(precision.storage(), 1, values.len(), &values)?;
    let x = backend.upload(&host)?;
    let out = if derivative {
        backend.activation_derivative(act, &x, precision)?
    } else {
        backend.activation(act, &x, precision)?
    };
    Ok((host.to_f64_vec(), backend.download(&out)?.to_f64_vec()))
}

/// act (or act') on `xs`, GPU against CPU; each is within `error_bound` of the exact value, so
/// they are within twice that of each other.
pub fn compare_activation(
    gpu: &Gpu,
    act: Activation,
    precision: Precision,
    derivative: bool,
    xs: &[f64],
) -> Result<Comparison> {
    let (inputs, got) = run_activation(gpu, act, xs, precision, derivative)?;
    let (_, expected) = run_activation(&Cpu, act, xs, precision, derivative)?;
    let mut cmp = Comparison::default();
    for i in 0..inputs.len() {
        let bound = 2.0 * act.error_bound(inputs[i], precision, derivative);
        cmp.record(got[i], expected[i], bound, || {
            format!(
                "{act}{} {precision} at x = {:e}",
                if derivative { "'" } else { "" },
                inputs[i]
            )
        });
    }
    Ok(cmp)
}

/// N(0, 1) values scaled by powers of two from 2^-30 to 2^30, so that f16 sees overflow,
/// subnormals and zeros.
pub fn spread_tensor(
    rng: &mut impl Rng,
    dtype: DType,
    len: usize,
    shift: i32,
) -> Result<HostTensor> {
    let base = normal_tensor(rng, DType::F32, 1, len, 1.0)?.to_f32_vec();
    let v: Vec<f32> = base
        .iter()
        .enumerate()
        .map(|(i, x)| x * 2f32.powi(((i % 61) as i32 * 7 + shift) % 61 - 30))
        .collect();
    HostTensor::from_f32_as(dtype, 1, len, &v)
}

/// A cast of `len` spread values (±2^±30, with NaN, ±inf and zeros among them) to `target`,
/// GPU against CPU: the same integer routine on both, so every value must agree exactly.
pub fn compare_cast(
    gpu: &Gpu,
    target: DType,
    overflowing: Overflowing,
    len: usize,
    seed: u64,
) -> Result<Comparison> {
    let mut rng = rng(seed);
    let mut values = spread_tensor(&mut rng, DType::F32, len, 3)?.to_f32_vec();
    for (i, v) in values.iter_mut().enumerate() {
        match i % 89 {
            5 => *v = f32::NAN,
            17 => *v = f32::INFINITY,
            31 => *v = f32::NEG_INFINITY,
            43 => *v = -0.0,
            _ => {}
        }
    }
    let x = HostTensor::from_f32(1, len, values)?;
    let expected = Cpu.cast(&x, target, overflowing)?.to_f64_vec();
    let got = gpu.download(&gpu.cast(&gpu.upload(&x)?, target, overflowing)?)?;
    let got = got.to_f64_vec();
    let mut cmp = Comparison::default();
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        cmp.record(*g, *e, 0.0, || format!("cast of value {i} to {target}"));
    }
    Ok(cmp)
}

/// A product of FP8 operands (E4M3 by E4M3, or E5M2 by E4M3), quantised with scales and
/// dequantised by the matmul, GPU against CPU: the products are exact in f32, so only the
/// order of the f32 sums and the one scaling multiply differ.
pub fn compare_fp8_matmul(
    gpu: &Gpu,
    flushes_subnormals: bool,
    lhs: DType,
    op: MatmulOp,
    (m, k, n): (usize, usize, usize),
    seed: u64,
) -> Result<Comparison> {
    let mut rng = rng(seed);
    let (a_shape, b_shape) = op.operand_shapes(m, k, n);
    let scales = (64.0f32, 256.0f32);
    let quantise = |t: HostTensor, format: DType, s: f32| -> Result<HostTensor> {
        let scaled = Cpu.scale(&t, s, Precision::Fp8)?;
        Cpu.cast(&scaled, format, Overflowing::Saturate)
    };
    let a = normal_tensor(&mut rng, DType::F32, a_shape.rows, a_shape.cols, 1.0)?;
    let b = normal_tensor(&mut rng, DType::F32, b_shape.rows, b_shape.cols, 1.0)?;
    let (a, b) = (
        quantise(a, lhs, scales.0)?,
        quantise(b, DType::E4m3, scales.1)?,
    );
    let out_scale = crate::network::fp8::out_scale(scales.0, scales.1);
    let expected = Cpu.matmul_scaled(&a, &b, op, Precision::Fp8, out_scale)?;
    let (ga, gb) = (gpu.upload(&a)?, gpu.upload(&b)?);
    let got = gpu.download(&gpu.matmul_scaled(&ga, &gb, op, Precision::Fp8, out_scale)?)?;
    let (expected, got) = (expected.to_f64_vec(), got.to_f64_vec());
    let (a64, b64) = (a.to_f64_vec(), b.to_f64_vec());
    let sums = matmul::sum_abs_products(&a64, &b64, op, m, k, n);
    let mut cmp = Comparison::default();
    for i in 0..m * n {
        // The f32 accumulation's bound, scaled, and the multiply's rounding of each side.
        let bound = matmul::error_bound(
            Precision::Fp8,
            k,
            sums[i] * out_scale as f64,
            got[i],
            expected[i],
            flushes_subnormals,
        ) + 2.0 * DType::F32.unit_roundoff() * expected[i].abs();
        cmp.record(got[i], expected[i], bound, || {
            format!("fp8 matmul {} {m}×{k}×{n} [{i}]", op.name())
        });
    }
    Ok(cmp)
}

/// One elementwise op on `len` spread values, GPU against CPU.
pub fn compare_elementwise(
    gpu: &Gpu,
    flushes_subnormals: bool,
    op: ElementwiseOp,
    precision: Precision,
    len: usize,
    seed: u64,
) -> Result<Comparison> {
    let mut rng = rng(seed);
    let dtype = precision.storage();
    let x = spread_tensor(&mut rng, dtype, len, 0)?;
    let y = spread_tensor(&mut rng, dtype, len, 13)?;
    let s = -0.3f32;
    let expected = match op {
        ElementwiseOp::Hadamard => Cpu.hadamard(&x, &y, precision)?,
        ElementwiseOp::Scale => Cpu.scale(&x, s, precision)?,
        ElementwiseOp::Axpy => Cpu.axpy(s, &x, &y, precision)?,
        ElementwiseOp::Clamp => Cpu.clamp_abs(&x, s.abs(), precision)?,
    }
    .to_f64_vec();
    let (xg, yg) = (gpu.upload(&x)?, gpu.upload(&y)?);
    let got = match op {
        ElementwiseOp::Hadamard => gpu.hadamard(&xg, &yg, precision)?,
        ElementwiseOp::Scale => gpu.scale(&xg, s, precision)?,
        ElementwiseOp::Axpy => gpu.axpy(s, &xg, &yg, precision)?,
        ElementwiseOp::Clamp => gpu.clamp_abs(&xg, s.abs(), precision)?,
    };
    let got = gpu.download(&got)?.to_f64_vec();
    let (xs, ys) = (x.to_f64_vec(), y.to_f64_vec());
    let s_arith = precision.arithmetic().round(s as f64);
    let mut cmp = Comparison::default();
    for i in 0..len {
        let product = match op {
            ElementwiseOp::Hadamard => (xs[i] * ys[i]).abs(),
            _ => (s_arith * xs[i]).abs(),
        };
        let bound = op.error_bound(precision, product, got[i], expected[i], flushes_subnormals);
        cmp.record(got[i], expected[i], bound, || {
            format!(
                "{op} {precision} element {i} (x = {:e}, y = {:e})",
                xs[i], ys[i]
            )
        });
    }
    Ok(cmp)
}

/// Statistics of `len` spread values with NaN, ±inf and zeros mixed in, GPU against the exact
/// f64 record: every count and extremum exactly, mean and variance within
/// `reduce::moment_error_bounds`. Each record contributes its mean, variance, extrema and
/// counts as elements of the comparison.
pub fn compare_stats(gpu: &Gpu, dtype: DType, len: usize, seed: u64) -> Result<Comparison> {
    let mut rng = rng(seed);
    let mut values = spread_tensor(&mut rng, DType::F32, len, 5)?.to_f32_vec();
    for (i, v) in values.iter_mut().enumerate() {
        match i % 97 {
            13 => *v = f32::NAN,
            29 => *v = f32::INFINITY,
            41 => *v = f32::NEG_INFINITY,
            53 => *v = 0.0,
            _ => {}
        }
    }
    let host = HostTensor::from_f32_as(dtype, 1, len, &values)?;
    let exact = crate::ops::reduce::cpu::reference(&host);
    let got = gpu.stats(&gpu.upload(&host)?)?;
    let (mean_bound, variance_bound) = crate::ops::reduce::moment_error_bounds(&exact, len);
    let mut cmp = Comparison::default();
    let what = |field: &str| format!("statistics of {len} {dtype} values: {field}");
    cmp.record(got.mean, exact.mean, mean_bound, || what("mean"));
    cmp.record(got.variance, exact.variance, variance_bound, || {
        what("variance")
    });
    for (field, g, e) in [
        ("min", got.min, exact.min),
        ("max", got.max, exact.max),
        ("abs_max", got.abs_max, exact.abs_max),
    ] {
        cmp.record(g, e, 0.0, || what(field));
    }
    let counts = |r: &crate::stats::StatsRecord| -> Vec<u64> {
        [r.count, r.nan, r.pos_inf, r.neg_inf, r.zero, r.subnormal]
            .into_iter()
            .chain(crate::stats::CAST_FORMATS.into_iter().flat_map(|f| {
                let c = r.cast.of(f);
                [c.overflow, c.subnormal, c.zero]
            }))
            .collect()
    };
    for (g, e) in counts(&got).into_iter().zip(counts(&exact)) {
        cmp.record(g as f64, e as f64, 0.0, || what("a class count"));
    }
    let same_histogram = (got.histogram == exact.histogram) as u8 as f64;
    cmp.record(same_histogram, 1.0, 0.0, || what("the exponent histogram"));
    Ok(cmp)
}

/// Lengths for the statistics: 1, primes, one past a workgroup's chunk, and 10^6.
pub const STATS_LENGTHS: [usize; 5] = [1, 3, 101, 8209, 1_000_000];

/// One row of the verify table: a kernel in one precision over all shapes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyRow {
    pub kernel: String,
    pub precision: String,
    pub shapes: usize,
    pub passed: bool,
    #[serde(flatten)]
    pub comparison: Comparison,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyReport {
    pub probe: ProbeReport,
    pub rows: Vec<VerifyRow>,
}

impl VerifyReport {
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.passed)
    }
}

/// The matmul shapes `(m, k, n)`: 1, primes, non-multiples of the 64-wide tile, k ≥ 1000.
pub const MATMUL_SHAPES: [(usize, usize, usize); 5] = [
    (1, 1, 1),
    (13, 7, 31),
    (65, 33, 127),
    (63, 129, 64),
    (17, 1031, 19),
];

/// A product whose 65537 column tiles need a folded grid (run for `NN` only: the transposes
/// change how tiles are loaded, not how the grid is laid out).
pub const MATMUL_FOLDED_SHAPE: (usize, usize, usize) = (1, 2, 64 * 65536 + 5);

/// Elementwise lengths: 1, primes, and one that needs 65539 workgroups of 256.
pub const ELEMENTWISE_LENGTHS: [usize; 4] = [1, 3, 10_007, 65535 * 256 + 1000];

/// Runs every kernel on `gpu` in every precision it supports. `quick` leaves out the shapes
/// whose grids need folding, which take tens of seconds on a software rasteriser.
pub fn verify(
    gpu: &Gpu,
    quick: bool,
    mut progress: impl FnMut(&VerifyRow),
) -> Result<VerifyReport> {
    let probe = probe(gpu)?;
    let flushes = probe.flushes_subnormals();
    let precisions: Vec<Precision> = Precision::ALL
        .into_iter()
        .filter(|&p| gpu.supports(p))
        .collect();
    let mut rows = Vec::new();
    let mut push = |kernel: String, precision: Precision, shapes: usize, comparison: Comparison| {
        let row = VerifyRow {
            kernel,
            precision: precision.name().into(),
            shapes,
            passed: comparison.passed(),
            comparison,
        };
        progress(&row);
        rows.push(row);
    };
    // Every variant the autotuner may pick, not only the one it picked here.
    for variant in MatmulVariant::ALL {
        for op in MatmulOp::ALL {
            for &precision in &precisions {
                let mut shapes: Vec<_> = MATMUL_SHAPES.to_vec();
                if !quick && op == MatmulOp::default() {
                    shapes.push(MATMUL_FOLDED_SHAPE);
                }
                let mut total = Comparison::default();
                for (i, &shape) in shapes.iter().enumerate() {
                    let seed = i as u64;
                    total.merge(compare_matmul(
                        gpu, flushes, precision, op, variant, shape, seed,
                    )?);
                }
                let kernel = format!("matmul {} {variant}", op.name());
                push(kernel, precision, shapes.len(), total);
            }
        }
    }
    // One row per activation, so a user sees which function their GPU gets wrong.
    let xs = activation_inputs();
    for act in Activation::representatives() {
        for derivative in [false, true] {
            for &precision in &precisions {
                let comparison = compare_activation(gpu, act, precision, derivative, &xs)?;
                let pass = if derivative { "derivative" } else { "forward" };
                push(format!("{act} {pass}"), precision, 1, comparison);
            }
        }
    }
    for op in ElementwiseOp::ALL {
        for &precision in &precisions {
            let lengths: Vec<usize> = ELEMENTWISE_LENGTHS
                .into_iter()
                .filter(|&len| !quick || len < 1 << 20)
                .collect();
            let mut total = Comparison::default();
            for (i, &len) in lengths.iter().enumerate() {
                total.merge(compare_elementwise(
                    gpu, flushes, op, precision, len, i as u64,
                )?);
            }
            push(op.name().into(), precision, lengths.len(), total);
        }
    }
    if precisions.contains(&Precision::Fp8) {
        for target in [DType::Bf16, DType::E4m3, DType::E5m2] {
            for overflowing in [Overflowing::AsFormat, Overflowing::Saturate] {
                let mut total = Comparison::default();
                for (i, &len) in [1usize, 3, 4097].iter().enumerate() {
                    total.merge(compare_cast(gpu, target, overflowing, len, i as u64)?);
                }
                let kernel = match overflowing {
                    Overflowing::AsFormat => format!("cast to {target}"),
                    Overflowing::Saturate => format!("cast to {target}, saturating"),
                };
                push(kernel, Precision::Fp8, 3, total);
            }
        }
        for lhs in [DType::E4m3, DType::E5m2] {
            for op in MatmulOp::ALL {
                let mut total = Comparison::default();
                for (i, &shape) in MATMUL_SHAPES.iter().enumerate() {
                    total.merge(compare_fp8_matmul(gpu, flushes, lhs, op, shape, i as u64)?);
                }
                let kernel = format!("matmul {} {lhs}×e4m3 scaled", op.name());
                push(kernel, Precision::Fp8, MATMUL_SHAPES.len(), total);
            }
        }
    }
    for dtype in crate::ops::reduce::gpu::REDUCED_ON_DEVICE {
        let mut total = Comparison::default();
        for (i, &len) in STATS_LENGTHS.iter().enumerate() {
            total.merge(compare_stats(gpu, dtype, len, i as u64)?);
        }
        let row = VerifyRow {
            kernel: "statistics".into(),
            precision: dtype.name().into(),
            shapes: STATS_LENGTHS.len(),
            passed: total.passed(),
            comparison: total,
        };
        progress(&row);
        rows.push(row);
    }
    Ok(VerifyReport { probe, rows })
}
