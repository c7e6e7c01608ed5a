//! Train one sigmoid MLP with Adam in f32 and in mixed precision without and with dynamic
//! loss scaling, on the best backend, and print what happened to the bottom layer.
//!
//!     cargo run --release --example train_mixed_precision

use gradstab::init::{Gain, Init};
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::train::presets::base;
use gradstab::train::{run_training, DynamicScaling, LossScale, TrainConfig};
use gradstab::{Activation, Backend, Cpu, Gpu, GpuOptions, Precision};

fn train_all<B: Backend>(backend: &B) -> gradstab::Result<()> {
    let net = TrainConfig {
        steps: 60,
        optimizer: OptimizerConfig::new(OptimizerKind::Adam),
        lr: 1e-3,
        lr_schedule: None,
        ..base(
            10,
            64,
            Activation::Sigmoid,
            Init::XavierNormal {
                gain: Gain::PyTorchDefault,
            },
        )
    };
    let runs = [
        ("f32", Precision::F32, LossScale::None),
        (
            "f16acc32, no scaling",
            Precision::F16Accumulate32,
            LossScale::None,
        ),
        (
            "f16acc32, dynamic scaling",
            Precision::F16Accumulate32,
            LossScale::Dynamic(DynamicScaling::default()),
        ),
    ];
    for (label, precision, loss_scale) in runs {
        let config = TrainConfig {
            precision,
            loss_scale,
            ..net.clone()
        };
        let run = run_training(backend, &config, label, false, &mut |_, _| Ok(()))?.run;
        let first = &run.steps[0].layers[0];
        println!(
            "{label:<26} final loss {:.4}; layer 1: {:5.1}% of gradient values zero at step 1, mean ‖ΔW‖/‖W‖ {:.1e}",
            run.summary.final_loss,
            100.0 * first.grad_zero_fraction,
            run.summary.mean_update_ratio[0]
        );
    }
    Ok(())
}

fn main() -> gradstab::Result<()> {
    match Gpu::new(&GpuOptions::from_env()?) {
        Ok(gpu) => {
            println!("on {}", gpu.adapter_name());
            train_all(&gpu)
        }
        Err(e) => {
            println!("no GPU ({e}); on the CPU backend");
            train_all(&Cpu)
        }
    }
}
