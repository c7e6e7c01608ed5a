//! `gradstab probe`: what this device actually does at the edges of f32 and f16, measured by a
//! tiny kernel (shaders/probe.wgsl) rather than assumed. WGSL lets an implementation flush
//! subnormals, fuse or not fuse multiply-adds, and assume finite math; these answers differ
//! between devices, and the error bounds of the tests depend on them.

use half::f16;

use super::device::Device;
use super::kernel::{Header, KernelKey, KernelSource};
use crate::error::Result;
use crate::precision::DType;
use crate::tensor::{HostTensor, Shape};

/// What one number format does on this device.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FormatBehaviour {
    pub format: String,
    /// tiny × tiny with a subnormal exact result: kept (true) or flushed to zero.
    pub subnormal_results_kept: bool,
    /// subnormal × 1: the subnormal input kept (true) or flushed to zero.
    pub subnormal_inputs_kept: bool,
    /// The `fma` builtin rounds once.
    pub fma_builtin_fused: bool,
    /// A plain `a * b + c` was contracted into one rounding.
    pub mul_add_contracted: bool,
    /// What largest-finite × 2 gave: "inf", "largest finite" or the value.
    pub overflow_result: String,
    /// What max(NaN, 1) gave: "NaN" or the value.
    pub max_with_nan: String,
    /// NaN + 1 is NaN.
    pub nan_survives_add: bool,
}

impl FormatBehaviour {
    /// (question, answer) pairs, in the order `gradstab probe` prints them.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
        vec![
            (
                "subnormal results kept",
                yes_no(self.subnormal_results_kept),
            ),
            ("subnormal inputs kept", yes_no(self.subnormal_inputs_kept)),
            ("fma builtin fused", yes_no(self.fma_builtin_fused)),
            ("a*b + c contracted", yes_no(self.mul_add_contracted)),
            ("overflow gives", self.overflow_result.clone()),
            ("max(NaN, 1) gives", self.max_with_nan.clone()),
            ("NaN + 1 is NaN", yes_no(self.nan_survives_add)),
        ]
    }
}

/// The probe's findings for the device.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProbeReport {
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    pub f32: FormatBehaviour,
    /// `None` where the device has no `SHADER_F16`.
    pub f16: Option<FormatBehaviour>,
}

impl ProbeReport {
    /// Whether any format in use flushes subnormals: the error bounds then allow the smallest
    /// normal as the absolute error of one operation.
    pub fn flushes_subnormals(&self) -> bool {
        let flushes = |b: &FormatBehaviour| !b.subnormal_results_kept || !b.subnormal_inputs_kept;
        flushes(&self.f32) || self.f16.as_ref().is_some_and(flushes)
    }
}

/// The probe inputs of shaders/probe.wgsl, in f64, for one format.
fn inputs(dtype: DType) -> [f64; 11] {
    let (tiny, subnormal, max) = match dtype {
        // 1e-20² = 1e-40 is subnormal in f32; 2^-140 is a subnormal f32.
        DType::F32 => (1e-20, 2f64.powi(-140), f32::MAX as f64),
        // 2^-9 · 2^-9 = 2^-18 is subnormal in f16; 2^-20 is a subnormal f16.
        DType::F16 => (2f64.powi(-9), 2f64.powi(-20), f16::MAX.to_f64()),
        other => unreachable!("the probe measures arithmetic formats, not {other}"),
    };
    // (1 + 2^-12)² = 1 + 2^-11 + 2^-24: the last term is lost by any rounding to f16, and is a
    // tie that rounds away in f32 (23 fraction bits); one rounding of a·b − (1 + 2^-11) keeps
    // it. f16 uses (1 + 2^-6)² = 1 + 2^-5 + 2^-12 likewise.
    let (e, sq_rounded) = match dtype {
        DType::F32 => (2f64.powi(-12), 1.0 + 2f64.powi(-11)),
        DType::F16 => (2f64.powi(-6), 1.0 + 2f64.powi(-5)),
        other => unreachable!("the probe measures arithmetic formats, not {other}"),
    };
    [
        tiny,
        tiny,
        subnormal,
        1.0,
        1.0 + e,
        1.0 + e,
        -sq_rounded,
        max,
        2.0,
        f64::NAN,
        1.0,
    ]
}

fn describe_overflow(v: f64, max: f64) -> String {
    if v == f64::INFINITY {
        "inf".into()
    } else if v == max {
        "largest finite".into()
    } else {
        format!("{v:e}")
    }
}

/// The probe kernel for one format.
/// The pipeline-cache key of [`kernel`]: built and hashed on every dispatch, rendered only on
/// a miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key(DType);

impl KernelKey for Key {
    fn source(&self) -> KernelSource {
        kernel(self.0)
    }
}

pub fn kernel(dtype: DType) -> KernelSource {
    KernelSource {
        file: "probe.wgsl",
        body: include_str!("../../shaders/probe.wgsl"),
        header: Header::new().element_types(dtype, dtype),
        entry_point: "main",
    }
}

fn probe_format(gpu: &Device, dtype: DType) -> Result<FormatBehaviour> {
    let values = inputs(dtype);
    let values_f32: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let input = HostTensor::from_f32_as(dtype, 1, values.len(), &values_f32)?;
    let input = gpu.upload_tensor(&input)?;
    let output = gpu.alloc(Shape::new(1, 7), dtype, "probe output")?;
    let pipeline = gpu.pipeline(Key(dtype))?;
    gpu.dispatch(
        &pipeline,
        &[(0, &input.buffer), (1, &output.buffer)],
        (1, 1),
        "probe",
    )?;
    let out = gpu.download_tensor(&output)?.to_f64_vec();
    let max = dtype.spec().max_finite();
    Ok(FormatBehaviour {
        format: dtype.name().into(),
        subnormal_results_kept: out[0] != 0.0,
        subnormal_inputs_kept: out[1] != 0.0,
        fma_builtin_fused: out[2] != 0.0,
        mul_add_contracted: out[3] != 0.0,
        overflow_result: describe_overflow(out[4], max),
        max_with_nan: if out[5].is_nan() {
            "NaN".into()
        } else {
            format!("{}", out[5])
        },
        nan_survives_add: out[6].is_nan(),
    })
}

/// Runs the probe on `gpu`.
pub fn probe(gpu: &Device) -> Result<ProbeReport> {
    let info = gpu.adapter_info();
    Ok(ProbeReport {
        adapter: info.name.clone(),
        backend: format!("{:?}", info.backend),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        f32: probe_format(gpu, DType::F32)?,
        f16: if gpu.supports(crate::precision::Precision::F16) {
            Some(probe_format(gpu, DType::F16)?)
        } else {
            None
        },
    })
}
