//! Exploding activations: a deep ReLU MLP with N(0, 1) weights, in f32 and f16, on the best
//! adapter (or the CPU backend). Theory says each layer multiplies E[z²] by width/2, so f16
//! (largest finite 65504) overflows within a few layers and f32 (3.4e38) some thirty later.
//!
//! `cargo run --release --example explode`

use gradstab::init::Init;
use gradstab::network::{run, NetworkConfig};
use gradstab::{Activation, Backend, Cpu, Gpu, GpuOptions, Precision};

fn explode<B: Backend>(backend: &B) -> gradstab::Result<()> {
    let config = NetworkConfig {
        activation: Activation::Relu,
        init: Init::Normal { std: 1.0 },
        ..NetworkConfig::new(40, 128, 16)
    };
    for precision in [Precision::F32, Precision::F16] {
        let record = run(backend, &config, precision, &mut |_, _| Ok(()))?;
        match record.summary.first_nonfinite_forward {
            Some(t) => println!("{precision}: activations overflow at layer {t}"),
            None => println!("{precision}: finite through all {} layers", config.depth),
        }
    }
    Ok(())
}

fn main() -> gradstab::Result<()> {
    match Gpu::new(&GpuOptions::from_env()?) {
        Ok(gpu) if gpu.supports(Precision::F16) => explode(&gpu),
        _ => explode(&Cpu),
    }
}
