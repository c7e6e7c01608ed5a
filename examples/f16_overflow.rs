//! A dot product whose partial sums pass f16's largest finite value, 65504, in each precision
//! and on each backend: pure f16 overflows to inf part way, f16acc32 (f32 accumulation, one
//! rounding on store) gets the exact 40000, as does f32.
//!
//! `cargo run --release --example f16_overflow`

use gradstab::{Backend, Cpu, Gpu, GpuOptions, HostTensor, MatmulOp, Precision};

fn dot<B: Backend>(backend: &B, precision: Precision) -> gradstab::Result<f32> {
    let dtype = precision.storage();
    // 200·200 + 200·200 − 200·200: the running sum reaches 80000 before it comes back.
    let a = HostTensor::from_f32_as(dtype, 1, 3, &[200.0, 200.0, 200.0])?;
    let b = HostTensor::from_f32_as(dtype, 3, 1, &[200.0, 200.0, -200.0])?;
    let c = backend.matmul(
        &backend.upload(&a)?,
        &backend.upload(&b)?,
        MatmulOp::default(),
        precision,
    )?;
    Ok(backend.download(&c)?.to_f32_vec()[0])
}

fn main() -> gradstab::Result<()> {
    let gpu = Gpu::new(&GpuOptions::from_env()?);
    if let Err(e) = &gpu {
        eprintln!("no GPU ({e}); showing the CPU backend only");
    }
    println!("200·200 + 200·200 − 200·200 = 40000, summed left to right:");
    for precision in Precision::ALL {
        let on_cpu = dot(&Cpu, precision)?;
        let on_gpu = match &gpu {
            Ok(gpu) if gpu.supports(precision) => {
                format!("{}", dot(gpu, precision)?)
            }
            _ => "-".into(),
        };
        println!("  {:<9} cpu {:<8} gpu {}", precision.name(), on_cpu, on_gpu);
    }
    println!(
        "Pure f16 overflows inside the sum although the answer fits; f32 accumulation does not."
    );
    Ok(())
}
