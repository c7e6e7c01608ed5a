//! One FP8 GEMM as the fp8 precision computes it, for docs/pytorch_parity.py to hold against
//! `torch._scaled_mm`: A [m, k] and B [n, k] (f32, from a safetensors file) are each scaled by
//! Transformer Engine's current scale 448/amax, cast to E4M3 (saturating), and multiplied as
//! C = A_q·B_qᵀ · (1/s_a)(1/s_b) with f32 accumulation, through `Backend::matmul_scaled`.
//!
//!     cargo run --release --example scaled_mm -- IN.safetensors [cpu|gpu]
//!
//! Prints one JSON object: the two scales and C, row-major (Rust prints each f32 with the
//! fewest digits that read back to the same value, so the comparison can be bit for bit).

use std::path::Path;

use gradstab::format::Format;
use gradstab::network::fp8::{current_scale, out_scale};
use gradstab::ops::cast::Overflowing;
use gradstab::{files, Backend, Cpu, Gpu, GpuOptions, HostTensor, MatmulOp, Precision};

/// The operand quantised as the fp8 precision's current scaling does: x·s, then E4M3.
fn quantise<B: Backend>(backend: &B, x: &HostTensor) -> gradstab::Result<(B::Tensor, f32)> {
    let amax = x.f32_values().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = current_scale(Format::E4m3, amax);
    let on_device = backend.upload(x)?;
    let scaled = backend.scale(&on_device, scale, Precision::Fp8)?;
    let q = backend.cast(&scaled, Format::E4m3, Overflowing::Saturate)?;
    Ok((q, scale))
}

fn gemm<B: Backend>(backend: &B, a: &HostTensor, b: &HostTensor) -> gradstab::Result<String> {
    let (a_q, s_a) = quantise(backend, a)?;
    let (b_q, s_b) = quantise(backend, b)?;
    let op = MatmulOp::new(false, true);
    let c = backend.matmul_scaled(&a_q, &b_q, op, Precision::Fp8, out_scale(s_a, s_b))?;
    let c = backend.download(&c)?;
    Ok(serde_json::json!({
        "scale_a": s_a,
        "scale_b": s_b,
        "rows": c.shape().rows,
        "cols": c.shape().cols,
        "c": c.to_f32_vec(),
    })
    .to_string())
}

fn main() -> gradstab::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: scaled_mm IN.safetensors [cpu|gpu]");
    let tensors = files::load(Path::new(path))?;
    // A file's tensor comes as one row of values; its shape says the matrix.
    let named = |name: &str| -> gradstab::Result<HostTensor> {
        let t = tensors.iter().find(|t| t.name == name);
        let (Some(t), [rows, cols]) = (t, t.map_or(&[][..], |t| &t.shape[..])) else {
            panic!("{path} has no matrix {name}");
        };
        let values = t.values.as_ref().map_or(vec![], |v| v.to_f32_vec());
        HostTensor::from_f32(*rows, *cols, values)
    };
    let (a, b) = (named("a")?, named("b")?);
    let json = match args.get(2).map(String::as_str) {
        Some("gpu") => gemm(&Gpu::new(&GpuOptions::default())?, &a, &b)?,
        _ => gemm(&Cpu::new(), &a, &b)?,
    };
    println!("{json}");
    Ok(())
}
