//! Vanishing gradients: a deep sigmoid MLP with Xavier weights. σ' ≤ 1/4, so each layer shrinks
//! the gradient's second moment by at least 16; the bottom layers get nothing, and in f16 the
//! gradient becomes exactly zero.
//!
//! `cargo run --release --example vanish`

use gradstab::init::{Gain, Init};
use gradstab::network::{run, NetworkConfig};
use gradstab::{Activation, Cpu, Precision};

fn main() -> gradstab::Result<()> {
    let config = NetworkConfig {
        activation: Activation::Sigmoid,
        init: Init::XavierNormal {
            gain: Gain::Value(1.0),
        },
        ..NetworkConfig::new(40, 128, 16)
    };
    for precision in [Precision::F32, Precision::F16] {
        let record = run(&Cpu, &config, precision, &mut |_, _| Ok(()))?;
        let s = &record.summary;
        print!(
            "{precision}: E[g²] at the bottom / at the top = {:.2e}",
            s.grad_second_moment_ratio
        );
        match s.first_all_zero_grad {
            Some(t) => println!("; the gradient is exactly 0 from layer {t} down"),
            None => println!(),
        }
    }
    Ok(())
}
