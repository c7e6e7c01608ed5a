//! The deep-network lab: initialisers, the lecture's claims, theory beside measurement, and
//! the GPU and CPU backends agreeing layer by layer.

mod common;

use gradstab::experiment::preset;
use gradstab::init::{calculate_gain, FanMode, Gain, Init, InputInit};
use gradstab::network::{run, Clip, Crossed, NetworkConfig, RunRecord};
use gradstab::theory::predict;
use gradstab::{Activation, Backend, Cpu, DType, Precision};

fn quiet() -> impl FnMut(usize, usize) -> gradstab::Result<()> {
    |_, _| Ok(())
}

fn run_cpu(config: &NetworkConfig, precision: Precision) -> RunRecord {
    run(&Cpu, config, precision, &mut quiet()).unwrap()
}

#[test]
fn initialisers_have_the_moments_of_their_formulas() {
    let relu = Activation::Relu;
    let inits = [
        Init::Normal { std: 0.3 },
        Init::Uniform { bound: 0.7 },
        Init::XavierNormal {
            gain: Gain::PyTorchDefault,
        },
        Init::XavierUniform {
            gain: Gain::Value(2.0),
        },
        Init::KaimingNormal {
            mode: FanMode::FanIn,
            gain: Gain::PyTorchDefault,
        },
        Init::KaimingNormal {
            mode: FanMode::FanOut,
            gain: Gain::PyTorchDefault,
        },
        Init::KaimingUniform {
            mode: FanMode::FanIn,
            gain: Gain::Value(1.0),
        },
        Init::KaimingUniform {
            mode: FanMode::FanOut,
            gain: Gain::PyTorchDefault,
        },
    ];
    for (fan_in, fan_out) in [(128, 64), (17, 300), (256, 256)] {
        for (i, init) in inits.iter().enumerate() {
            let mut rng = gradstab::init::stream(42, 1, i);
            let w: Vec<f64> = init
                .sample(fan_in, fan_out, &relu, &mut rng)
                .iter()
                .map(|&x| x as f64)
                .collect();
            let n = w.len() as f64;
            let v = init.second_moment(fan_in, fan_out, &relu);
            let mean = w.iter().sum::<f64>() / n;
            let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            // 5σ sampling bounds: Var[w̄] = v/n; Var[w²] = 2v² (normal) or 0.8v² (uniform).
            let kurtosis_excess = if matches!(
                init,
                Init::Uniform { .. } | Init::XavierUniform { .. } | Init::KaimingUniform { .. }
            ) {
                0.8
            } else {
                2.0
            };
            assert!(
                mean.abs() <= 5.0 * (v / n).sqrt(),
                "{init} {fan_in}×{fan_out}: mean {mean}"
            );
            assert!(
                (var - v).abs() <= 5.0 * (kurtosis_excess * v * v / n).sqrt() + 5.0 * v / n,
                "{init} {fan_in}×{fan_out}: variance {var} vs {v}"
            );
        }
    }
    // PyTorch's formulas, spelled out once: without a gain, xavier_normal_ uses 1 and
    // kaiming_normal_ its a = 0, 'leaky_relu' default, √2, whatever the activation; `:auto`
    // takes calculate_gain of the activation.
    let (fi, fo) = (128.0f64, 64.0f64);
    let tanh = Activation::Tanh;
    let moment = |s: &str| s.parse::<Init>().unwrap().second_moment(128, 64, &tanh);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-15 * b;
    assert!(close(moment("constant:0.5"), 0.25));
    assert!(close(moment("normal:0.3"), 0.09));
    assert!(close(moment("uniform:0.6"), 0.12));
    assert!(close(moment("xavier_normal"), 2.0 / (fi + fo)));
    assert!(close(moment("xavier_uniform"), 2.0 / (fi + fo)));
    let tanh_gain2 = (5.0f64 / 3.0).powi(2);
    assert!(close(
        moment("xavier_normal:auto"),
        tanh_gain2 * 2.0 / (fi + fo)
    ));
    assert!(close(moment("xavier_normal:0.5"), 0.25 * 2.0 / (fi + fo)));
    assert!(close(moment("kaiming_normal"), 2.0 / fi));
    assert!(close(moment("kaiming_uniform:fan_out"), 2.0 / fo));
    assert!(close(moment("kaiming_normal:auto"), tanh_gain2 / fi));
    assert!(close(
        moment("kaiming_normal:fan_out:auto"),
        tanh_gain2 / fo
    ));
    assert!(close(moment("kaiming_uniform:3"), 9.0 / fi));
    assert!(close(moment("orthogonal"), 1.0 / fi));
    assert!(close(moment("orthogonal:auto"), tanh_gain2 / fi));
    for bad in [
        "kaiming_normal:fan_in:2:3",
        "xavier_normal:auto:1",
        "orthogonal:-1",
    ] {
        assert!(bad.parse::<Init>().is_err(), "{bad} parsed");
    }
    for form in [
        "xavier_normal",
        "xavier_normal:auto",
        "kaiming_uniform:fan_out:auto",
        "orthogonal:1.5",
    ] {
        let init: Init = form.parse().unwrap();
        assert_eq!(
            init.to_string().parse::<Init>().unwrap(),
            init,
            "{form} round trip"
        );
    }
    let he = Init::KaimingNormal {
        mode: FanMode::FanOut,
        gain: Gain::PyTorchDefault,
    }
    .second_moment(128, 64, &relu);
    assert!((he - 2.0 / fo).abs() < 1e-15);
    assert_eq!(calculate_gain(&Activation::Sigmoid), 1.0);
    let slope = 0.01f32 as f64; // the activation keeps its slope as f32
    assert!(
        (calculate_gain(&Activation::LeakyRelu { slope: 0.01 })
            - (2.0 / (1.0 + slope * slope)).sqrt())
        .abs()
            < 1e-15
    );
}

#[test]
fn orthogonal_weights_are_orthonormal() {
    for (fan_in, fan_out) in [(64, 64), (100, 30), (30, 100)] {
        let gain = 1.5;
        let init = Init::Orthogonal {
            gain: Gain::Value(gain),
        };
        let w = init.sample(
            fan_in,
            fan_out,
            &Activation::Relu,
            &mut gradstab::init::stream(7, 1, 0),
        );
        let at = |r: usize, c: usize| w[r * fan_in + c] as f64 / gain;
        // Rows orthonormal when out ≤ in, columns otherwise (as torch.nn.init.orthogonal_):
        // vector i, entry k.
        let rows_orthonormal = fan_out <= fan_in;
        let (count, len) = if rows_orthonormal {
            (fan_out, fan_in)
        } else {
            (fan_in, fan_out)
        };
        let get = |i: usize, k: usize| if rows_orthonormal { at(i, k) } else { at(k, i) };
        for i in 0..count {
            for j in 0..count {
                let dot: f64 = (0..len).map(|k| get(i, k) * get(j, k)).sum();
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (dot - expected).abs() < 1e-5,
                    "{fan_out}×{fan_in}: ⟨{i},{j}⟩ = {dot}"
                );
            }
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_weights_everywhere() {
    let config = NetworkConfig::new(5, 33, 4);
    for t in 1..=5 {
        assert_eq!(
            config.weight(t, DType::F32).unwrap(),
            config.weight(t, DType::F32).unwrap()
        );
        // f16 storage holds the same draws, rounded.
        assert_eq!(
            config.weight(t, DType::F16).unwrap(),
            config.weight(t, DType::F32).unwrap().cast(DType::F16)
        );
    }
    assert_ne!(
        config.weight(1, DType::F32).unwrap(),
        config.weight(2, DType::F32).unwrap()
    );
    if let Some(gpu) = common::gpu("same weights") {
        let w = config.weight(3, DType::F16).unwrap();
        assert_eq!(gpu.download(&gpu.upload(&w).unwrap()).unwrap(), w);
    }
}

#[test]
fn powers_of_1_5_overflow_f16_at_28_and_powers_of_0_8_turn_subnormal_at_44() {
    let experiment = preset("powers").unwrap();
    let (up, down) = (&experiment.variants[0].1, &experiment.variants[1].1);
    let check = |up_run: RunRecord, down_run: RunRecord, precision: Precision| {
        if precision == Precision::F16 {
            assert_eq!(
                up_run.summary.first_nonfinite_forward,
                Some(28),
                "1.5^28 = 85222 > 65504"
            );
            assert_eq!(
                down_run.summary.first_subnormal,
                Some(44),
                "0.8^44 = 5.4e-5 < 2^-14"
            );
            // The one value of z and of h at that layer both crossed.
            let all_two = Some(Crossed { count: 2, of: 2 });
            assert_eq!(up_run.summary.first_nonfinite_forward_values, all_two);
            assert_eq!(down_run.summary.first_subnormal_values, all_two);
        } else {
            assert_eq!(up_run.summary.first_nonfinite_forward, None);
            assert_eq!(down_run.summary.first_subnormal, None);
            // 1.5^100 ≈ 4.07e17, 0.8^100 ≈ 2.04e-10 (docs/theory.md).
            let top = |r: &RunRecord| r.layers[100].activation.as_ref().unwrap().max;
            assert!((top(&up_run) / 4.0656e17 - 1.0).abs() < 1e-4);
            assert!((top(&down_run) / 2.0370e-10 - 1.0).abs() < 1e-4);
        }
    };
    for precision in [Precision::F32, Precision::F16] {
        check(run_cpu(up, precision), run_cpu(down, precision), precision);
    }
    // On the GPU, what the device must do follows from its probe: WGSL lets it saturate an
    // overflow at 65504 instead of inf, and flush a subnormal to zero.
    let Some((gpu, probe)) = common::gpu_with_probe("powers") else {
        return;
    };
    let Some(f16) = probe.f16.as_ref() else {
        eprintln!(
            "SKIPPED powers on the GPU: {} has no SHADER_F16",
            probe.adapter
        );
        return;
    };
    let f16_run = |c| run(&gpu, c, Precision::F16, &mut quiet()).unwrap();
    let (up_run, down_run) = (f16_run(up), f16_run(down));
    let h = |r: &RunRecord, t: usize| r.layers[t].activation.clone().unwrap();
    if f16.overflow_result == "inf" {
        assert_eq!(up_run.summary.first_nonfinite_forward, Some(28));
    } else {
        // Saturating: pinned at the largest finite value from layer 28 on, finite throughout.
        assert_eq!(up_run.summary.first_nonfinite_forward, None);
        assert!(h(&up_run, 27).max < 65504.0 && h(&up_run, 28).max == 65504.0);
    }
    if f16.subnormal_results_kept {
        assert_eq!(down_run.summary.first_subnormal, Some(44));
    } else {
        // Flushing: 0.8^44 ≈ 5.4e-5 becomes 0 where it would have been subnormal.
        assert_eq!(down_run.summary.first_subnormal, None);
        assert!(h(&down_run, 43).min > 0.0 && h(&down_run, 44).zero == 1);
    }
}

#[test]
fn a_linear_net_with_standard_normal_weights_grows_the_second_moment_by_the_width() {
    // Each layer multiplies E[z²] by n·σ² = n; log of that factor per layer fluctuates like
    // log(χ²_n / n): variance 2/n, bias −1/n. Over T layers the mean log growth has standard
    // deviation √(2/(nT)).
    let (depth, width) = (30, 64);
    let config = NetworkConfig {
        activation: Activation::IDENTITY,
        init: Init::Normal { std: 1.0 },
        ..NetworkConfig::new(depth, width, 16)
    };
    let r = run_cpu(&config, Precision::F32);
    let q = |t: usize| {
        r.layers[t]
            .pre_activation
            .as_ref()
            .unwrap()
            .second_moment()
            .ln()
    };
    let growth = (q(depth) - q(1)) / (depth - 1) as f64;
    let tolerance = 5.0 * (2.0 / (width * (depth - 1)) as f64).sqrt() + 1.0 / width as f64;
    assert!(
        (growth - (width as f64).ln()).abs() <= tolerance,
        "log growth {growth} vs ln {width}"
    );
    // The 4×4 matrix product of the lecture reaches 1e20..1e28-scale entries in f32.
    let product = run_cpu(
        &preset("matrix-product").unwrap().variants[0].1,
        Precision::F32,
    );
    let top = product.layers[100].activation.as_ref().unwrap().abs_max;
    assert!(
        (1e20..1e28).contains(&top),
        "100 products of 4×4 N(0,1): {top:e}"
    );
}

/// Measurement against theory over the layers of a wide net, two ways:
/// - each layer's gain given its measured input: E[z_t²] against n·E[w²]·E[h_{t−1}²] + σ_b²,
///   whose relative sampling error over n_out rows of W is at most √(2/n_out) (tr C² ≤ (tr C)²
///   for the input's covariance C), held to 5σ;
/// - the whole trajectory: log(measured/theory) does a random walk with variance ≈ 5·t/n per
///   layer for ReLU (Hanin and Rolnick 2018; smaller for tanh), held to 5σ.
fn assert_tracks_theory(config: &NetworkConfig, run: &RunRecord) {
    let prediction = predict(&config.mean_field());
    let n = config.widths[1] as f64;
    let per_layer = 5.0 * (2.0 / n).sqrt();
    for t in 1..=config.depth {
        let q = run.layers[t]
            .pre_activation
            .as_ref()
            .unwrap()
            .second_moment();
        let m_prev = run.layers[t - 1]
            .activation
            .as_ref()
            .unwrap()
            .second_moment();
        let v =
            config
                .init
                .second_moment(config.widths[t - 1], config.widths[t], &config.activation);
        let expected = config.widths[t - 1] as f64 * v * m_prev + config.bias_std.powi(2);
        assert!(
            (q / expected - 1.0).abs() <= per_layer,
            "layer {t}: E[z²] {q} vs {expected} given its input"
        );
        let walk = 5.0 * (5.0 * t as f64 / n + 2.0 / (n * config.batch as f64)).sqrt();
        let forward = (q / prediction.pre_activation_second_moment[t]).ln();
        assert!(
            forward.abs() <= walk,
            "layer {t}: forward log ratio {forward} beyond {walk}"
        );
        let g = run.layers[t - 1]
            .grad_activation
            .as_ref()
            .unwrap()
            .second_moment();
        let backward = (g / prediction.grad_second_moment[t - 1]).ln();
        let walk_back = 5.0
            * (5.0 * (config.depth - t + 1) as f64 / n + 2.0 / (n * config.batch as f64)).sqrt();
        assert!(
            backward.abs() <= walk_back,
            "layer {}: backward log ratio {backward} beyond {walk_back}",
            t - 1
        );
    }
}

#[test]
fn he_relu_and_xavier_tanh_track_mean_field_theory_over_60_layers() {
    for (activation, init) in [
        (
            Activation::Relu,
            Init::KaimingNormal {
                mode: FanMode::FanIn,
                gain: Gain::PyTorchDefault,
            },
        ),
        (
            Activation::Tanh,
            Init::XavierNormal {
                gain: Gain::Value(1.0),
            },
        ),
        (
            Activation::Tanh,
            Init::XavierNormal {
                gain: Gain::OfActivation,
            },
        ),
    ] {
        let config = NetworkConfig {
            activation,
            init,
            ..NetworkConfig::new(60, 512, 64)
        };
        assert_tracks_theory(&config, &run_cpu(&config, Precision::F32));
    }
    // With biases the recursion adds σ_b² per layer.
    let config = NetworkConfig {
        activation: Activation::Tanh,
        init: Init::XavierNormal {
            gain: Gain::Value(1.0),
        },
        bias_std: 0.3,
        ..NetworkConfig::new(30, 512, 64)
    };
    assert_tracks_theory(&config, &run_cpu(&config, Precision::F32));
}

#[test]
fn sigmoid_starves_the_bottom_layers_and_the_scaled_sigmoid_does_not() {
    let experiment = preset("scaled-sigmoid").unwrap();
    let sigmoid = run_cpu(&experiment.variants[0].1, Precision::F32);
    let scaled = run_cpu(&experiment.variants[1].1, Precision::F32);
    assert!(
        sigmoid.summary.grad_second_moment_ratio < 1e-30,
        "{}",
        sigmoid.summary.grad_second_moment_ratio
    );
    assert!(
        scaled.summary.grad_second_moment_ratio > 1e-3,
        "{}",
        scaled.summary.grad_second_moment_ratio
    );
    // In f16 the sigmoid's gradient reaches exact zeros.
    let f16 = run_cpu(&experiment.variants[0].1, Precision::F16);
    assert!(f16.summary.first_all_zero_grad.is_some());
}

/// The layer where theory expects the largest |z| of batch·width values to pass `limit`:
/// the largest of N draws of N(0, q) is about √q·√(2 ln 2N).
fn predicted_overflow_layer(config: &NetworkConfig, limit: f64) -> Option<usize> {
    let prediction = predict(&config.mean_field());
    let samples = (config.batch * config.widths[1]) as f64;
    let typical_max = (2.0 * (2.0 * samples).ln()).sqrt();
    (1..=config.depth)
        .find(|&t| prediction.pre_activation_second_moment[t].sqrt() * typical_max >= limit)
}

#[test]
fn the_f16_and_f32_overflow_layers_of_a_relu_net_are_where_theory_puts_them() {
    let config = preset("relu-explode").unwrap().variants[0].1.clone();
    let f16 = predicted_overflow_layer(&config, 65520.0);
    let f32 = predicted_overflow_layer(&config, f32::MAX as f64);
    assert_eq!(f16, Some(4));
    assert_eq!(f32, Some(36));
    let f16_run = run_cpu(&config, Precision::F16);
    assert_eq!(f16_run.summary.first_nonfinite_forward, f16);
    // The onset rests on the tail: the largest of z and h at layer 4 cross, a few percent of
    // the 2·64·256 values of those two tensors, not most of them.
    let crossed = f16_run.summary.first_nonfinite_forward_values.unwrap();
    assert_eq!(crossed.of, 2 * 64 * 256);
    assert!(
        crossed.count > 0 && crossed.count < crossed.of / 20,
        "{crossed}"
    );
    assert_eq!(
        run_cpu(&config, Precision::F32)
            .summary
            .first_nonfinite_forward,
        f32
    );
}

#[test]
fn clipping_follows_pytorch() {
    let base = NetworkConfig {
        activation: Activation::Relu,
        init: Init::Normal { std: 0.2 },
        ..NetworkConfig::new(6, 32, 8)
    };
    let unclipped = run_cpu(&base, Precision::F32);
    let norm: f64 = (1..=6)
        .map(|t| {
            unclipped.layers[t]
                .grad_weight
                .as_ref()
                .unwrap()
                .l2_norm
                .powi(2)
        })
        .sum::<f64>()
        .sqrt();
    let max_norm = norm / 10.0;
    let clipped = run_cpu(
        &NetworkConfig {
            clip: Some(Clip::Norm(max_norm)),
            ..base.clone()
        },
        Precision::F32,
    );
    assert!((clipped.grad_norm_before_clip.unwrap() / norm - 1.0).abs() < 1e-9);
    let coefficient = clipped.clip_coefficient.unwrap();
    assert!((coefficient - max_norm / (norm + 1e-6)).abs() < 1e-12);
    let after: f64 = (1..=6)
        .map(|t| {
            clipped.layers[t]
                .grad_weight
                .as_ref()
                .unwrap()
                .l2_norm
                .powi(2)
        })
        .sum::<f64>()
        .sqrt();
    assert!(
        (after / max_norm - 1.0).abs() < 1e-5,
        "{after} vs {max_norm}"
    );
    let limit = unclipped.layers[3].grad_weight.as_ref().unwrap().abs_max / 4.0;
    let by_value = run_cpu(
        &NetworkConfig {
            clip: Some(Clip::Value(limit)),
            ..base
        },
        Precision::F32,
    );
    for t in 1..=6 {
        assert!(by_value.layers[t].grad_weight.as_ref().unwrap().abs_max <= limit as f32 as f64);
    }
}

#[test]
fn gpu_and_cpu_give_the_same_layers() {
    let Some(gpu) = common::gpu("network gpu vs cpu") else {
        return;
    };
    let configs = [
        NetworkConfig {
            activation: Activation::Tanh,
            init: Init::XavierNormal {
                gain: Gain::OfActivation,
            },
            bias_std: 0.1,
            ..NetworkConfig::new(6, 48, 8)
        },
        NetworkConfig {
            residual: true,
            loss: gradstab::network::Loss::Mse,
            ..NetworkConfig::new(5, 40, 6)
        },
        NetworkConfig {
            init: Init::Normal { std: 1.0 },
            input: InputInit::Uniform { bound: 2.0 },
            ..NetworkConfig::new(8, 48, 8)
        },
        // Deep enough for f16's gradients to turn subnormal and then all zero.
        NetworkConfig {
            activation: Activation::Sigmoid,
            init: Init::XavierNormal {
                gain: Gain::PyTorchDefault,
            },
            ..NetworkConfig::new(24, 32, 4)
        },
    ];
    let Some((_, probe)) = common::gpu_with_probe("network gpu vs cpu probe") else {
        return;
    };
    // The onsets are the CPU's only on a device that overflows to inf and keeps subnormals, as
    // the CPU does; elsewhere WGSL lets them differ.
    let same_edges = probe.f16.as_ref().is_some_and(|f| {
        f.overflow_result == "inf" && f.subnormal_results_kept && f.subnormal_inputs_kept
    });
    let mut reached_all_zero = false;
    for config in &configs {
        // f32: second moments agree within the accumulated rounding of the layers: each of
        // ≤ 3d matmuls and activations perturbs a value by a few k·u relative (k ≤ 48), and a
        // second moment moves by at most twice that, well inside 1e-4 for these sizes.
        let (g, c) = (
            run(&gpu, config, Precision::F32, &mut quiet()).unwrap(),
            run_cpu(config, Precision::F32),
        );
        for (lg, lc) in g.layers.iter().zip(&c.layers) {
            for (a, b) in [
                (&lg.pre_activation, &lc.pre_activation),
                (&lg.grad_activation, &lc.grad_activation),
                (&lg.grad_weight, &lc.grad_weight),
            ] {
                if let (Some(a), Some(b)) = (a, b) {
                    let (x, y) = (a.second_moment(), b.second_moment());
                    assert!(
                        (x - y).abs() <= 1e-4 * y.abs() + 1e-30,
                        "layer {}: {x} vs {y}",
                        lg.layer
                    );
                }
            }
        }
        // f16: the same onset layers.
        for precision in [Precision::F16, Precision::F16Accumulate32] {
            if !same_edges {
                eprintln!("SKIPPED f16 onsets: this device flushes or saturates ({probe:?})");
                break;
            }
            let (g, c) = (
                run(&gpu, config, precision, &mut quiet()).unwrap(),
                run_cpu(config, precision),
            );
            reached_all_zero |= c.summary.first_all_zero_grad.is_some();
            assert_eq!(
                g.summary.first_nonfinite_forward,
                c.summary.first_nonfinite_forward
            );
            assert_eq!(
                g.summary.first_nonfinite_backward,
                c.summary.first_nonfinite_backward
            );
            // A whole tensor of zeros is robust to rounding; the first single subnormal is
            // not (one value near 2^-14 decides it, and an unfused device rounds differently),
            // so it is not compared. tests/reference.rs holds the values themselves.
            assert_eq!(g.summary.first_all_zero_grad, c.summary.first_all_zero_grad);
        }
    }
    assert!(
        reached_all_zero || !same_edges,
        "no configuration reached all-zero gradients"
    );
}

#[test]
fn a_thousand_layers_of_width_1024_fit_in_two_and_a_half_gib() {
    let config = NetworkConfig::new(1000, 1024, 256);
    // The weights alone would take 4 GiB: they are drawn again in backward instead of kept.
    assert_eq!(config.weight_bytes(DType::F32), 1000 * 1024 * 1024 * 4);
    assert!(!config.keeps_weights(DType::F32));
    let bytes = config.memory_estimate(Precision::F32, false).device_bytes;
    assert!(bytes <= 5 * (1 << 29), "{bytes} bytes");
}

#[test]
fn weights_drawn_again_in_backward_give_the_bits_of_kept_weights() {
    // Beyond `keep_weights_bytes` backward draws each layer's weights again from
    // (seed, layer); a threshold of 0 takes that path on a small net, which must give every
    // tensor bit for bit as keeping them does.
    use gradstab::network::trace;
    let kept = NetworkConfig {
        activation: Activation::Tanh,
        bias_std: 0.3,
        seed: 5,
        ..NetworkConfig::new(4, 24, 8)
            .with_widths(&[24, 40, 16, 32, 8])
            .unwrap()
    };
    let redrawn = NetworkConfig {
        keep_weights_bytes: 0,
        ..kept.clone()
    };
    assert!(kept.keeps_weights(DType::F32) && !redrawn.keeps_weights(DType::F32));
    let gpu = common::gpu("redrawn weights");
    for precision in [Precision::F32, Precision::F16] {
        let on = |backend: &dyn Fn(&NetworkConfig) -> gradstab::network::Trace| {
            let (a, b) = (backend(&kept), backend(&redrawn));
            assert_eq!(a.activation, b.activation, "{precision}");
            assert_eq!(a.grad_activation, b.grad_activation, "{precision}");
            assert_eq!(a.grad_weight, b.grad_weight, "{precision}");
        };
        on(&|c| trace(&Cpu, c, precision).unwrap());
        if let Some(gpu) = &gpu {
            if gpu.supports(precision) {
                on(&|c| trace(gpu, c, precision).unwrap());
            }
        }
    }
}

/// The README's claim for each preset, as it states it.
mod preset_claims {
    use super::*;

    #[test]
    fn matrix_product_reaches_1e20_to_1e28_in_f32_and_inf_long_before_the_end_in_f16() {
        let config = &preset("matrix-product").unwrap().variants[0].1;
        let f32 = run_cpu(config, Precision::F32);
        let top = f32.layers[100].activation.as_ref().unwrap().abs_max;
        assert!((1e20..1e28).contains(&top), "{top:e}");
        // Theory: the top Lyapunov exponent of 4×4 N(0, 1) products is (ln 2 + ψ(2))/2 ≈ 0.558
        // per step, so |entries| ≈ e^55.8 ≈ 1.7e24 after 100, give or take the fluctuations.
        let f16 = run_cpu(config, Precision::F16);
        let onset = f16.summary.first_nonfinite_forward.expect("inf in f16");
        assert!(onset <= 20, "f16 overflows only at step {onset}");
    }

    #[test]
    fn relu_explode_gradients_explode_past_f32_in_both_precisions() {
        let config = &preset("relu-explode").unwrap().variants[0].1;
        // Theory puts E[(∂l/∂h^0)²] at 1.9e84, beyond f32's largest square (1.2e77).
        let prediction = predict(&config.mean_field());
        assert!(prediction.grad_second_moment[0] > (f32::MAX as f64).powi(2));
        for precision in [Precision::F32, Precision::F16] {
            let r = run_cpu(config, precision);
            assert_eq!(r.summary.first_nonfinite_backward, Some(40), "{precision}");
        }
    }

    #[test]
    fn xavier_tanh_follows_theory_a_slow_decay_not_a_collapse() {
        let config = &preset("xavier-tanh").unwrap().variants[0].1;
        let r = run_cpu(config, Precision::F32);
        assert_tracks_theory(config, &r);
        // Theory: E[(∂l/∂h^0)²]/E[(∂l/∂h^100)²] ≈ 7.1e-3: a decay, three decades short of a
        // collapse (the sigmoid preset reaches 1e-37).
        let predicted = predict(&config.mean_field()).grad_second_moment[0];
        assert!((1e-3..1e-1).contains(&predicted), "{predicted}");
        let measured = r.summary.grad_second_moment_ratio;
        assert!((1e-3..1.0).contains(&measured), "{measured}");
    }

    #[test]
    fn he_relu_has_no_trend_beyond_the_finite_width_walk_over_100_layers() {
        let config = &preset("he-relu").unwrap().variants[0].1;
        let r = run_cpu(config, Precision::F32);
        assert_tracks_theory(config, &r);
        // Theory is exactly flat for He with ReLU (q^t = q^1, and χ = 1 backward), and the
        // theory check above holds the measured trajectory to the random walk around it.
        let prediction = predict(&config.mean_field());
        let q = &prediction.pre_activation_second_moment;
        let g = &prediction.grad_second_moment;
        for t in 1..=config.depth {
            assert!((q[t] / q[1] - 1.0).abs() < 1e-9, "theory q^{t}");
            assert!(
                (g[t - 1] / g[config.depth] - 1.0).abs() < 1e-9,
                "theory g^{t}"
            );
        }
    }

    #[test]
    fn precision_compare_starts_its_gradients_near_f16s_subnormal_range() {
        let experiment = preset("precision-compare").unwrap();
        let config = &experiment.variants[0].1;
        let top = |r: &RunRecord| r.layers[config.depth].grad_activation.clone().unwrap();
        let f32 = run_cpu(config, Precision::F32);
        let rms = top(&f32).second_moment().sqrt();
        // 2(h − y)/N with N = 64·256: an rms within 8 times the smallest normal 2^-14.
        assert!((2f64.powi(-14)..2f64.powi(-11)).contains(&rms), "{rms:e}");
        assert_eq!(f32.summary.first_subnormal_backward, None);
        for precision in [Precision::F16, Precision::F16Accumulate32] {
            let r = run_cpu(config, precision);
            let g = top(&r);
            assert!(
                g.subnormal > 0,
                "{precision}: no subnormal gradients at the top"
            );
            assert_eq!(r.summary.first_subnormal_backward, Some(config.depth));
        }
    }
}
