//! The fp8 precision against references written here, on both backends:
//!
//! - `matmul_scaled` of FP8 operands (E4M3·E4M3, E5M2·E4M3), every transpose pair, unequal
//!   shapes and an out_scale ≠ 1, against exact f64 sums and GPU against CPU: the products of
//!   FP8 values are exact in f32, so only the f32 accumulation and the final scaling round;
//! - whole passes (`network::pass`, which `network::run` records) in fp8 with each scaling
//!   rule, layer by layer against an f64 emulation of Transformer Engine's quantisation
//!   (x·s rounded in f32, cast saturating), and every `Fp8Record` (scale, amax, saturated,
//!   flushed, count) against values counted here, with one net where saturation and flushing
//!   really happen;
//! - delayed scaling across steps: scale 1 first, then TE's formula on the largest amax of the
//!   last `history` steps, an all-zero window keeping the previous scale, through `Fp8Pass`
//!   with chosen amaxes and through `Trainer`;
//! - `unchanged_fraction` in bf16 and bf16acc32 against the weights before and after a step.

mod common;

use gradstab::format::Format;
use gradstab::init::InputInit;
use gradstab::network::fp8::{Fp8Pass, Role};
use gradstab::network::{self, Fp8Record, Fp8Scaling, Fp8State, GivenParameters, NetworkConfig};
use gradstab::ops::gamma;
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::precision::F32_UNIT_ROUNDOFF as U;
use gradstab::train::run::Trainer;
use gradstab::train::{run_training, LossScale, Task, TrainConfig};
use gradstab::{Activation, Backend, Cpu, DType, HostData, HostTensor, MatmulOp, Precision};
use rand::Rng;
use rand_distr::{Distribution, Normal};

const P: Precision = Precision::Fp8;

/// The value of x quantised with scale s: x·s rounded in f32, cast saturating, decoded.
fn quantised(format: Format, x: f32, s: f32) -> f64 {
    format.decode(format.encode_saturating(x * s)) as f64
}

/// `Float8CurrentScaling`'s scale for an amax, written from TE's `compute_scale_from_amax`:
/// max/amax in f32, 1 where amax is 0 or not finite, f32's largest where the quotient is inf.
fn te_current_scale(format: Format, amax: f64) -> f32 {
    te_scale(format.spec().max_finite() as f32, amax as f32, 1.0)
}

/// TE's scale update: `scaled_max / amax` in f32, `previous` for an amax of 0 or not finite.
fn te_scale(scaled_max: f32, amax: f32, previous: f32) -> f32 {
    if !(amax.is_finite() && amax > 0.0) {
        return previous;
    }
    let s = scaled_max / amax;
    if s.is_infinite() {
        f32::MAX
    } else {
        s
    }
}

/// (1/s_a)·(1/s_b) in f32, the `scale_inv` product TE's GEMM dequantises by.
fn dequantising(s_a: f32, s_b: f32) -> f32 {
    (1.0 / s_a) * (1.0 / s_b)
}

// ---------------------------------------------------------------------------------------
// 1. matmul_scaled

/// Random finite patterns of `format` (subnormals and zeros included).
fn random_fp8(rng: &mut impl Rng, format: Format, len: usize) -> Vec<u8> {
    let spec = format.spec();
    (0..len)
        .map(|_| loop {
            let b = rng.random_range(0..256u32);
            let magnitude = b & 0x7f;
            if magnitude <= spec.max_finite_bits() as u32 {
                return b as u8;
            }
        })
        .collect()
}

/// C = s·op(A)·op(B) of random FP8 operands, m ≠ k ≠ n, every transpose pair, both operand
/// pairs of the fp8 recipe: each result within s·γ_k·Σ|a||b| + u|c| of the exact f64 value
/// (the products are exact in f32; the accumulation and the one multiply by s round), and GPU
/// against CPU within twice that.
fn check_matmul_scaled<B: Backend>(backend: &B) {
    let cpu = Cpu::new();
    let mut rng = common::rng(31);
    let (m, k, n) = (5, 37, 3);
    // Not a power of two, so the final multiply rounds.
    let out_scale = 1.0f32 / 15.0;
    let mut largest_miss_without_scale = f64::INFINITY;
    for (fa, fb) in [(Format::E4m3, Format::E4m3), (Format::E5m2, Format::E4m3)] {
        for op in MatmulOp::ALL {
            let a_shape = if op.transpose_a { (k, m) } else { (m, k) };
            let b_shape = if op.transpose_b { (n, k) } else { (k, n) };
            let tensor = |format, (rows, cols), rng: &mut _| {
                let bits = random_fp8(rng, format, rows * cols);
                HostTensor::new(
                    gradstab::Shape::new(rows, cols),
                    HostData::Fp8 { format, bits },
                )
                .unwrap()
            };
            let a = tensor(fa, a_shape, &mut rng);
            let b = tensor(fb, b_shape, &mut rng);
            let (av, bv) = (a.to_f64_vec(), b.to_f64_vec());
            let a_at = |i: usize, l: usize| {
                if op.transpose_a {
                    av[l * m + i]
                } else {
                    av[i * k + l]
                }
            };
            let b_at = |l: usize, j: usize| {
                if op.transpose_b {
                    bv[j * k + l]
                } else {
                    bv[l * n + j]
                }
            };
            let got = {
                let (a, b) = (backend.upload(&a).unwrap(), backend.upload(&b).unwrap());
                let c = backend.matmul_scaled(&a, &b, op, P, out_scale).unwrap();
                backend.download(&c).unwrap()
            };
            let reference = {
                let (a, b) = (cpu.upload(&a).unwrap(), cpu.upload(&b).unwrap());
                let c = cpu.matmul_scaled(&a, &b, op, P, out_scale).unwrap();
                cpu.download(&c).unwrap()
            };
            assert_eq!(got.dtype(), DType::F32);
            assert_eq!((got.shape().rows, got.shape().cols), (m, n));
            let (got, reference) = (got.to_f64_vec(), reference.to_f64_vec());
            let g = gamma(k, U);
            let s = out_scale as f64;
            for i in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k).map(|l| a_at(i, l) * b_at(l, j)).sum();
                    let abs: f64 = (0..k).map(|l| (a_at(i, l) * b_at(l, j)).abs()).sum();
                    let (c, r) = (got[i * n + j], reference[i * n + j]);
                    let one = s * g * abs + U * c.abs();
                    let what = format!("{} {fa}·{fb} {op:?} [{i},{j}]", backend.info().adapter);
                    assert!(
                        (c - s * exact).abs() <= one,
                        "{what}: {c} against exact {}, bound {one}",
                        s * exact
                    );
                    let two = 2.0 * s * g * abs + U * (c.abs() + r.abs());
                    assert!(
                        (c - r).abs() <= two,
                        "{what}: {c} against the CPU's {r}, bound {two}"
                    );
                    if exact != 0.0 {
                        largest_miss_without_scale =
                            largest_miss_without_scale.min((exact - s * exact).abs() / one);
                    }
                }
            }
        }
    }
    // Without the multiply by out_scale every non-zero result would miss by far more.
    assert!(largest_miss_without_scale > 100.0);
}

on_both_backends!(
    check_matmul_scaled,
    fp8_matmul_against_f64_on_the_cpu,
    fp8_matmul_against_f64_and_the_cpu_on_the_gpu
);

/// The same products in each of the three matmul variants, not only the one the autotuner
/// picks here: each reads its packed FP8 operands through its own loads (staged in
/// workgroup memory, or straight from storage).
#[test]
fn fp8_matmul_in_every_variant_on_the_gpu() {
    if common::gpu("fp8 matmul variants").is_none() {
        return;
    }
    for variant in gradstab::ops::matmul::MatmulVariant::ALL {
        let gpu = gradstab::Gpu::new(&gradstab::GpuOptions {
            matmul_variant: Some(variant),
            ..gradstab::GpuOptions::from_env().unwrap()
        })
        .unwrap();
        assert_eq!(gpu.matmul_variant(P).unwrap(), variant);
        check_matmul_scaled(&gpu);
    }
}

// ---------------------------------------------------------------------------------------
// 2. Whole passes

/// Every tensor a pass hands out, downloaded as f32.
#[derive(Default)]
struct Downloads {
    input: Vec<f32>,
    z: Vec<Vec<f32>>,
    h: Vec<Vec<f32>>,
    /// ∂l/∂H^t at index t.
    g: Vec<Vec<f32>>,
    dw: Vec<Vec<f32>>,
}

struct Downloader<'a, B> {
    backend: &'a B,
    got: Downloads,
}

impl<B: Backend> network::PassObserver<B::Tensor> for Downloader<'_, B> {
    fn input(&mut self, x: &B::Tensor) -> gradstab::Result<()> {
        self.got.input = self.backend.download(x)?.to_f32_vec();
        Ok(())
    }
    fn forward(&mut self, t: usize, z: &B::Tensor, h: &B::Tensor) -> gradstab::Result<()> {
        self.got.z[t] = self.backend.download(z)?.to_f32_vec();
        self.got.h[t] = self.backend.download(h)?.to_f32_vec();
        Ok(())
    }
    fn grad_activation(&mut self, t: usize, g: &B::Tensor) -> gradstab::Result<()> {
        self.got.g[t] = self.backend.download(g)?.to_f32_vec();
        Ok(())
    }
    fn grad_weight(&mut self, t: usize, dw: &B::Tensor) -> gradstab::Result<()> {
        self.got.dw[t] = self.backend.download(dw)?.to_f32_vec();
        Ok(())
    }
}

/// What quantising x with scale s must record, counted here from x·s in f32.
fn expected_record(t: usize, role: Role, format: Format, x: &[f32], scale: f32) -> Fp8Record {
    let spec = format.spec();
    let amax = x.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let mut saturated = 0;
    let mut flushed = 0;
    for &v in x {
        let y = (v * scale).abs() as f64;
        let midpoint = spec.overflow_midpoint();
        if y.is_infinite() || y > midpoint || (y == midpoint && spec.overflows_at_midpoint()) {
            saturated += 1;
        } else if y != 0.0 && quantised(format, v, scale) == 0.0 {
            flushed += 1;
        }
    }
    Fp8Record {
        layer: t,
        role,
        format,
        scale,
        amax,
        saturated,
        flushed,
        count: x.len() as u64,
    }
}

/// The scale a fresh pass quantises x with under `scaling`: delayed scaling's first step is
/// 1, as no scaling is.
fn first_pass_scale(scaling: Fp8Scaling, format: Format, x: &[f32]) -> f32 {
    match scaling {
        Fp8Scaling::Current => {
            te_current_scale(format, x.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64)))
        }
        Fp8Scaling::None | Fp8Scaling::Delayed { .. } => 1.0,
    }
}

/// C = s·(A·B) of the quantised operands in f64, with a [r, inner] and b given by `b_at`, and
/// each entry's bound s·(γ + u(1 + γ))·Σ|a||b|: the f32 sum, then the multiply by s.
fn scaled_product(
    a: &[f64],
    (rows, inner): (usize, usize),
    b_at: &dyn Fn(usize, usize) -> f64,
    cols: usize,
    s: f32,
) -> (Vec<f64>, Vec<f64>) {
    let g = gamma(inner, U);
    let s = s as f64;
    let mut value = vec![0.0; rows * cols];
    let mut bound = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            let (mut sum, mut abs) = (0.0, 0.0);
            for l in 0..inner {
                let p = a[i * inner + l] * b_at(l, j);
                sum += p;
                abs += p.abs();
            }
            value[i * cols + j] = s * sum;
            bound[i * cols + j] = s * abs * (g + U * (1.0 + g));
        }
    }
    (value, bound)
}

fn assert_close(what: &str, got: &[f32], want: &[f64], bound: &[f64], extra_rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for i in 0..got.len() {
        let g = got[i] as f64;
        let limit = bound[i] + extra_rel * g.abs();
        assert!(
            (g - want[i]).abs() <= limit,
            "{what} [{i}]: {g:e} against {:e}, bound {limit:e}",
            want[i]
        );
    }
}

/// A pass of `config` in fp8 on `backend`, layer by layer against the emulation on the
/// backend's own inputs to the layer (a free-running emulation could round one FP8 operand to
/// the other side of a tie, an error no small bound covers), and every record against the
/// counts of `expected_record`. Returns the (saturated, flushed) totals.
fn check_pass<B: Backend>(backend: &B, config: &NetworkConfig, name: &str) -> (u64, u64) {
    assert_eq!(
        config.activation,
        Activation::Relu,
        "the emulation is of ReLU"
    );
    let d = config.depth;
    let batch = config.batch;
    let widths = &config.widths;
    let what = format!(
        "{} {name} {}",
        backend.info().adapter,
        config.fp8_scaling.name()
    );
    let prepared = network::prepare(backend, config, P).unwrap();
    let mut observer = Downloader {
        backend,
        got: Downloads {
            z: vec![vec![]; d + 1],
            h: vec![vec![]; d + 1],
            g: vec![vec![]; d + 1],
            dw: vec![vec![]; d + 1],
            ..Default::default()
        },
    };
    let (_, records) = network::pass(backend, config, P, &prepared, &mut observer).unwrap();
    let got = observer.got;
    assert_eq!(
        got.input,
        config.input_batch(DType::F32).unwrap().to_f32_vec()
    );
    let upstream = config.upstream_gradient(DType::F32).unwrap().unwrap();
    assert_eq!(got.g[d], upstream.to_f32_vec(), "{what}: ∂l/∂H^d");

    let mut expected = Vec::new();
    for t in 1..=d {
        let (n_in, n_out) = (widths[t - 1], widths[t]);
        let h_prev = if t == 1 { &got.input } else { &got.h[t - 1] };
        let w = config.weight(t, DType::F32).unwrap().to_f32_vec();
        let bias = config.bias(t, DType::F32).unwrap().map(|b| b.to_f64_vec());
        let (e4, e5) = (Format::E4m3, Format::E5m2);
        let s_in = first_pass_scale(config.fp8_scaling, e4, h_prev);
        let s_w = first_pass_scale(config.fp8_scaling, e4, &w);
        let q_in: Vec<f64> = h_prev.iter().map(|&x| quantised(e4, x, s_in)).collect();
        let q_w: Vec<f64> = w.iter().map(|&x| quantised(e4, x, s_w)).collect();

        // Forward: Z = s·(q(H)·q(W)ᵀ) + b, H = relu(Z), or Z at a linear head.
        let (mut z, bound) = scaled_product(
            &q_in,
            (batch, n_in),
            &|l, j| q_w[j * n_in + l],
            n_out,
            dequantising(s_in, s_w),
        );
        if let Some(b) = &bias {
            for (i, v) in z.iter_mut().enumerate() {
                *v += b[i % n_out];
            }
        }
        // The bias added in f32: one more rounding of the result.
        let layer = format!("{what} layer {t}");
        assert_close(&format!("{layer} Z"), &got.z[t], &z, &bound, U / (1.0 - U));
        let linear_head = t == d && !config.output_activation;
        for (i, (&h, &zv)) in got.h[t].iter().zip(&got.z[t]).enumerate() {
            let want = if linear_head { zv } else { zv.max(0.0) };
            assert_eq!(h, want, "{layer} H [{i}]");
        }

        // Backward: dZ = dH ⊙ relu'(Z), quantised to E5M2; dW = s·q(dZ)ᵀ·q(H),
        // dH^{t−1} = s·q(dZ)·q(W), with H and W quantised as forward did.
        let dz: Vec<f32> = got.g[t]
            .iter()
            .zip(&got.z[t])
            .map(
                |(&g, &zv)| {
                    if linear_head || zv > 0.0 {
                        g
                    } else {
                        g * 0.0
                    }
                },
            )
            .collect();
        let s_g = first_pass_scale(config.fp8_scaling, e5, &dz);
        let q_g: Vec<f64> = dz.iter().map(|&x| quantised(e5, x, s_g)).collect();
        let q_g_t: Vec<f64> = (0..n_out * batch)
            .map(|r| q_g[(r % batch) * n_out + r / batch])
            .collect();
        let (dw, bound) = scaled_product(
            &q_g_t,
            (n_out, batch),
            &|i, k| q_in[i * n_in + k],
            n_in,
            dequantising(s_g, s_in),
        );
        assert_close(&format!("{layer} dW"), &got.dw[t], &dw, &bound, 0.0);
        let (dh, bound) = scaled_product(
            &q_g,
            (batch, n_out),
            &|j, k| q_w[j * n_in + k],
            n_in,
            dequantising(s_g, s_w),
        );
        assert_close(
            &format!("{layer} dH^{}", t - 1),
            &got.g[t - 1],
            &dh,
            &bound,
            0.0,
        );

        expected.push(expected_record(t, Role::Input, e4, h_prev, s_in));
        expected.push(expected_record(t, Role::Weight, e4, &w, s_w));
        expected.push(expected_record(t, Role::Gradient, e5, &dz, s_g));
    }
    assert_eq!(
        records.len(),
        expected.len(),
        "{what}: one record per operand"
    );
    for (r, e) in records.iter().zip(&expected) {
        assert_eq!(r, e, "{what}: layer {} {}", e.layer, e.role.name());
    }
    let saturated = expected.iter().map(|r| r.saturated).sum();
    let flushed = expected.iter().map(|r| r.flushed).sum();
    (saturated, flushed)
}

/// Depth 4, unequal widths, nn.Linear biases, a linear head: what the initialisers draw.
fn drawn_net(scaling: Fp8Scaling) -> NetworkConfig {
    NetworkConfig {
        linear_bias: true,
        output_activation: false,
        fp8_scaling: scaling,
        seed: 11,
        ..NetworkConfig::new(4, 6, 3)
    }
    .with_widths(&[6, 9, 5, 7, 3])
    .unwrap()
}

/// Depth 3, unequal widths, biases, weights given: W^1 of std 200 (some beyond E4M3's 448),
/// which makes H^1 large (layer 2's input saturates unscaled), and W^2, W^3 of std 5·10^-4
/// (many below E4M3's smallest subnormal), which make the gradients reaching layer 1 smaller
/// than E5M2's smallest subnormal.
fn extreme_net(scaling: Fp8Scaling) -> NetworkConfig {
    let widths = [5, 7, 4, 6];
    let mut rng = common::rng(5);
    let stds = [200.0, 5e-4, 5e-4];
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    for t in 1..=3 {
        let (n_in, n_out) = (widths[t - 1], widths[t]);
        let normal = Normal::new(0.0, stds[t - 1]).unwrap();
        let w: Vec<f32> = (0..n_in * n_out).map(|_| normal.sample(&mut rng)).collect();
        weights.push(HostTensor::from_f32(n_out, n_in, w).unwrap());
        let b: Vec<f32> = (0..n_out).map(|_| rng.random_range(-1.0..1.0)).collect();
        biases.push(Some(HostTensor::from_f32(1, n_out, b).unwrap()));
    }
    let given = GivenParameters::sequential("extreme_net", weights, biases);
    NetworkConfig {
        fp8_scaling: scaling,
        input: InputInit::Normal { std: 1.0 },
        seed: 3,
        ..NetworkConfig::new(3, 5, 3)
    }
    .with_given_parameters(given)
}

const RULES: [Fp8Scaling; 3] = [
    Fp8Scaling::None,
    Fp8Scaling::Delayed {
        history: 1024,
        margin: 0,
    },
    Fp8Scaling::Current,
];

fn check_passes<B: Backend>(backend: &B) {
    for rule in RULES {
        check_pass(backend, &drawn_net(rule), "drawn net");
        let (saturated, flushed) = check_pass(backend, &extreme_net(rule), "extreme net");
        if rule != Fp8Scaling::Current {
            // Unscaled, the large activations saturate and the small gradients flush.
            assert!(
                saturated > 0 && flushed > 0,
                "{rule:?}: {saturated} saturated, {flushed} flushed"
            );
        }
    }
    // `run` returns the same records as the pass.
    let config = extreme_net(Fp8Scaling::Current);
    let run = network::run(backend, &config, P, &mut |_, _| Ok(())).unwrap();
    assert_eq!(run.fp8.len(), 9);
    assert!(run.fp8.iter().all(|r| r.scale != 1.0));
}

on_both_backends!(
    check_passes,
    fp8_passes_follow_the_emulation_on_the_cpu,
    fp8_passes_follow_the_emulation_on_the_gpu
);

// ---------------------------------------------------------------------------------------
// 3. Delayed scaling across steps

/// `Fp8Pass` over eight steps of chosen amaxes, history 2 and margin 1: step 1 quantises with
/// 1; then each step with (max·2^−1)/amax of the largest amax of the two steps before it,
/// or with the previous scale where both were 0. The amaxes are chosen so that forgetting
/// the window (all steps) or keeping only the last step gives other scales.
fn check_delayed_rule<B: Backend>(backend: &B) {
    let (history, margin) = (2, 1);
    let mut state = Fp8State::new(Fp8Scaling::Delayed { history, margin }, 1);
    // Per step: the input's amax (E4M3) and the gradient's (E5M2).
    let amaxes: [(f32, f32); 8] = [
        (2.0, 1e-3),
        (8.0, 4e-3),
        (1.0, 0.5),
        (0.5, 0.25),
        (0.0, 0.0),
        (0.0, 0.0),
        (3.0, 2.0),
        (0.75, 1e-4),
    ];
    let pattern = [1.0f32, -0.5, 0.25, 0.1, -1.0];
    let mut window: [Vec<f32>; 2] = [vec![], vec![]];
    let mut next = [1.0f32; 2];
    // Whether some step's window gave another scale than all steps, or than the last one.
    let (mut slid, mut not_last) = ([false; 2], [false; 2]);
    for (step, amax) in amaxes.iter().enumerate() {
        let mut pass = Fp8Pass::new(&mut state, P);
        for (k, (role, format, a)) in [
            (Role::Input, Format::E4m3, amax.0),
            (Role::Gradient, Format::E5m2, amax.1),
        ]
        .into_iter()
        .enumerate()
        {
            let x: Vec<f32> = pattern.iter().map(|p| p * a).collect();
            let host = HostTensor::from_f32(1, x.len(), x.clone()).unwrap();
            let (q, scale) = pass
                .quantise(backend, &backend.upload(&host).unwrap(), 1, role)
                .unwrap();
            assert_eq!(scale, next[k], "step {} {}", step + 1, role.name());
            let q = backend.download(&q).unwrap();
            assert_eq!(q.dtype(), format);
            for (i, &v) in x.iter().enumerate() {
                assert_eq!(q.data().bits(i), format.encode_saturating(v * scale));
            }
            // TE's update after this step.
            let w = &mut window[k];
            w.push(a);
            if w.len() > history {
                w.remove(0);
            }
            let window_max = w.iter().fold(0.0f32, |m, &v| m.max(v));
            let scaled_max = format.spec().max_finite() as f32 * 2f32.powi(-margin);
            let previous = next[k];
            next[k] = te_scale(scaled_max, window_max, previous);
            let all_max = amaxes[..=step]
                .iter()
                .map(|a| if k == 0 { a.0 } else { a.1 })
                .fold(0.0f32, f32::max);
            slid[k] |= te_scale(scaled_max, all_max, previous) != next[k];
            not_last[k] |= te_scale(scaled_max, a, previous) != next[k];
        }
        let records = pass.finish(backend).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].amax, amax.0 as f64);
        assert_eq!(records[1].amax, amax.1 as f64);
    }
    assert_eq!((slid, not_last), ([true; 2], [true; 2]));
}

on_both_backends!(
    check_delayed_rule,
    delayed_scaling_slides_its_window_on_the_cpu,
    delayed_scaling_slides_its_window_on_the_gpu
);

/// Training in fp8 with delayed scaling, history 2: step 1 uses scale 1 for every operand, and
/// step t the TE update of the amaxes steps t − 2 and t − 1 recorded.
fn check_training_scales<B: Backend>(backend: &B) {
    let (history, margin) = (2usize, 0);
    let config = TrainConfig {
        network: NetworkConfig {
            linear_bias: true,
            output_activation: false,
            fp8_scaling: Fp8Scaling::Delayed { history, margin },
            seed: 7,
            ..NetworkConfig::new(3, 5, 16)
        }
        .with_widths(&[5, 8, 6, 3])
        .unwrap(),
        task: Task::Teacher { depth: 2, width: 8 },
        samples: 64,
        shuffle: true,
        drop_last: false,
        steps: 6,
        record_every: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr: 0.2,
        lr_schedule: None,
        precision: P,
        loss_scale: LossScale::None,
        evaluation: Default::default(),
    };
    let mut trainer = Trainer::new(backend, &config).unwrap();
    while trainer.step().unwrap() {}
    let steps = trainer.records().to_vec();
    assert_eq!(steps.len(), config.steps);
    let (mut slid, mut not_last) = (false, false);
    for s in 0..steps.len() {
        assert_eq!(steps[s].fp8.len(), 9, "step {}", s + 1);
        for (i, r) in steps[s].fp8.iter().enumerate() {
            let amax_at = |k: usize| steps[k].fp8[i].amax as f32;
            let scaled_max = r.format.spec().max_finite() as f32 * 2f32.powi(-margin);
            // Replay TE's update over every earlier step.
            let mut scale = 1.0f32;
            for k in 0..s {
                let from = (k + 1).saturating_sub(history);
                let window_max = (from..=k).map(amax_at).fold(0.0f32, f32::max);
                scale = te_scale(scaled_max, window_max, scale);
                if k + 1 == s {
                    let all_max = (0..=k).map(amax_at).fold(0.0f32, f32::max);
                    slid |= window_max != all_max;
                    not_last |= window_max != amax_at(k);
                }
            }
            assert_eq!(
                r.scale,
                scale,
                "step {} layer {} {}",
                s + 1,
                r.layer,
                r.role.name()
            );
        }
    }
    assert!(slid, "no step's window differed from the whole history");
    assert!(not_last, "no step's window differed from its last step");
}

on_both_backends!(
    check_training_scales,
    training_scales_follow_delayed_scaling_on_the_cpu,
    training_scales_follow_delayed_scaling_on_the_gpu
);

// ---------------------------------------------------------------------------------------
// 4. unchanged_fraction

/// A tanh net whose weights all lie in ±[0.5, 1), where bf16's half unit in the last place is
/// 2^-9, trained one SGD step with lr 10^-4: every update lr·|g| is below that half
/// unit (checked from the f32 masters' updates), so pure bf16 leaves every weight as it was,
/// while bf16acc32's f32 masters (half a unit at most 2^-25) move almost all of them. Each
/// fraction equals the count from the weights downloaded before and after.
fn check_unchanged_fraction<B: Backend>(backend: &B) {
    let widths = [6, 8, 5, 3];
    let mut rng = common::rng(17);
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    for t in 1..widths.len() {
        let (n_in, n_out) = (widths[t - 1], widths[t]);
        let w: Vec<f32> = (0..n_in * n_out)
            .map(|_| {
                let bf16 = Format::Bf16.round_f32(rng.random_range(0.5f32..1.0));
                if rng.random::<bool>() {
                    bf16
                } else {
                    -bf16
                }
            })
            .collect();
        weights.push(HostTensor::from_f32(n_out, n_in, w).unwrap());
        biases.push(Some(
            HostTensor::from_f32(1, n_out, vec![0.0; n_out]).unwrap(),
        ));
    }
    let given = GivenParameters::sequential("unchanged", weights.clone(), biases);
    let config = |precision| TrainConfig {
        network: NetworkConfig {
            activation: Activation::Tanh,
            output_activation: false,
            seed: 9,
            ..NetworkConfig::new(3, 6, 16)
        }
        .with_given_parameters(given.clone()),
        task: Task::Teacher { depth: 2, width: 8 },
        samples: 16,
        shuffle: false,
        drop_last: false,
        steps: 1,
        record_every: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr: 1e-4,
        lr_schedule: None,
        precision,
        loss_scale: LossScale::None,
        evaluation: Default::default(),
    };
    let mut fractions = Vec::new();
    for precision in [Precision::Bf16, Precision::Bf16Accumulate32] {
        if !backend.supports(precision) {
            eprintln!(
                "SKIPPED unchanged_fraction in {precision}: {}",
                backend.unsupported(precision)
            );
            return;
        }
        let outcome = run_training(
            backend,
            &config(precision),
            "unchanged",
            true,
            &mut |_, _| Ok(()),
        )
        .unwrap();
        let step = &outcome.run.steps[0];
        assert!(!step.skipped);
        let after = outcome.weights.unwrap().weights;
        let mut per_layer = Vec::new();
        for t in 0..weights.len() {
            let before = weights[t].to_f32_vec();
            let now = after[t].to_f32_vec();
            let same = before.iter().zip(&now).filter(|(a, b)| a == b).count();
            let direct = same as f64 / before.len() as f64;
            assert_eq!(
                step.layers[t].unchanged_fraction,
                direct,
                "{precision} layer {}",
                t + 1
            );
            if precision == Precision::Bf16Accumulate32 {
                // The premise: every update is below half of bf16's half unit at the weight
                // (2^-9 on [0.5, 1)), leaving room for bf16's own gradients to differ.
                for (a, b) in before.iter().zip(&now) {
                    let half_unit = 2f64.powi(-9);
                    assert!(
                        ((b - a) as f64).abs() < half_unit / 2.0,
                        "layer {}: {a} → {b}",
                        t + 1
                    );
                }
            }
            per_layer.push(direct);
        }
        fractions.push(per_layer);
    }
    assert!(
        fractions[0].iter().all(|&f| f == 1.0),
        "bf16: {:?}",
        fractions[0]
    );
    assert!(
        fractions[1].iter().all(|&f| f < 0.1),
        "bf16acc32: {:?}",
        fractions[1]
    );
}

on_both_backends!(
    check_unchanged_fraction,
    bf16_loses_updates_below_half_a_unit_on_the_cpu,
    bf16_loses_updates_below_half_a_unit_on_the_gpu
);

/// Extreme scales: (1/s_a)·(1/s_b) may round to 0 or to a subnormal in f32; the matmul takes
/// them (Transformer Engine's GEMM gives the product times that factor), and refuses only a
/// NaN or negative factor. A whole fp8 run of a net whose values underflow then completes.
fn check_extreme_out_scales<B: Backend>(backend: &B) {
    let a = HostTensor::new(
        gradstab::Shape::new(2, 2),
        HostData::Fp8 {
            format: Format::E4m3,
            bits: vec![0x38, 0x40, 0xb8, 0x30], // 1, 2, −1, 0.5
        },
    )
    .unwrap();
    let (a, b) = (backend.upload(&a).unwrap(), backend.upload(&a).unwrap());
    let op = MatmulOp::default();
    let subnormal = f32::from_bits(3);
    for factor in [0.0f32, subnormal] {
        let c = backend
            .matmul_scaled(&a, &b, op, Precision::Fp8, factor)
            .unwrap();
        // Row 0 of A·A: (1·1 + 2·−1, 1·2 + 2·0.5) = (−1, 3), times the factor in f32 (a device
        // that flushes subnormals may give 0 for the subnormal factor).
        let got = backend.download(&c).unwrap().to_f32_vec();
        let flushed = got[1] == 0.0 && factor != 0.0;
        assert!(
            got[1] == 3.0 * factor || flushed,
            "{}: {got:?} for factor {factor:e}",
            backend.info().adapter
        );
    }
    for bad in [f32::NAN, -1.0] {
        let err = backend
            .matmul_scaled(&a, &b, op, Precision::Fp8, bad)
            .unwrap_err();
        assert!(err.to_string().contains("at least 0"), "{err}");
    }
    let tiny = NetworkConfig {
        activation: Activation::Tanh,
        init: "normal:1e-12".parse().unwrap(),
        fp8_scaling: Fp8Scaling::Current,
        ..NetworkConfig::new(5, 8, 4)
    };
    let record = network::run(backend, &tiny, Precision::Fp8, &mut |_, _| Ok(())).unwrap();
    assert_eq!(record.fp8.len(), 3 * 5);
}

#[test]
fn extreme_dequantising_factors_are_taken_on_the_cpu() {
    check_extreme_out_scales(&Cpu);
}

#[test]
fn extreme_dequantising_factors_are_taken_on_the_gpu() {
    let Some(gpu) = common::gpu("fp8 extreme scales") else {
        return;
    };
    check_extreme_out_scales(&gpu);
}

#[test]
fn statistics_of_an_fp8_tensor_on_the_gpu_are_the_cpus() {
    let Some(gpu) = common::gpu("fp8 statistics") else {
        return;
    };
    // Every E5M2 pattern, NaNs and infinities included, in a 16 × 16 tensor.
    let t = HostTensor::new(
        gradstab::Shape::new(16, 16),
        HostData::Fp8 {
            format: Format::E5m2,
            bits: (0..=255).collect(),
        },
    )
    .unwrap();
    let on_cpu = Cpu.stats(&t).unwrap();
    let on_gpu = gpu.stats(&gpu.upload(&t).unwrap()).unwrap();
    assert_eq!((on_gpu.nan, on_gpu.pos_inf, on_gpu.neg_inf), (6, 1, 1));
    assert_eq!(format!("{on_gpu:?}"), format!("{on_cpu:?}"));
    let rows_cpu = Cpu.row_stats(&t).unwrap();
    let rows_gpu = gpu.row_stats(&gpu.upload(&t).unwrap()).unwrap();
    assert_eq!(format!("{rows_gpu:?}"), format!("{rows_cpu:?}"));
}
