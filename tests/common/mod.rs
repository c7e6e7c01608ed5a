//! Shared test helpers: the GPU (mandatory in CI), the binary (`binary.rs`), seeded random
//! tensors and comparisons.
#![allow(dead_code)]

use gradstab::gpu::probe::{probe, ProbeReport};
use gradstab::{Backend, DType, Gpu, GpuOptions, HostTensor, MatmulOp, Precision};
use rand::{Rng, SeedableRng};

mod binary;
pub use binary::cli;

/// Set to 1 (as `.ci/run` does) to make a missing adapter a test failure instead of a skip.
pub const REQUIRE_GPU_ENV: &str = "GRADSTAB_REQUIRE_GPU";
/// Set to 1 to run the GPU tests as on an adapter without `SHADER_F16`.
pub const WITHOUT_F16_ENV: &str = "GRADSTAB_TEST_WITHOUT_F16";

/// The GPU of `GRADSTAB_ADAPTER` (or the best one). Without an adapter this returns `None`
/// after printing a notice, or panics when `GRADSTAB_REQUIRE_GPU=1`.
pub fn gpu(test: &str) -> Option<Gpu> {
    // GRADSTAB_TEST_WITHOUT_F16=1 opens the adapter without SHADER_F16, to run the suite as
    // on an adapter that lacks it: every f16 check must then skip, loudly, not fail.
    let options = GpuOptions {
        disable_shader_f16: std::env::var(WITHOUT_F16_ENV).is_ok_and(|v| v == "1"),
        ..GpuOptions::from_env().unwrap()
    };
    match Gpu::new(&options) {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            if std::env::var(REQUIRE_GPU_ENV).is_ok_and(|v| v == "1") {
                panic!("{test}: {REQUIRE_GPU_ENV}=1 but no GPU: {e}");
            }
            eprintln!("SKIPPED {test}: no GPU adapter ({e}); set {REQUIRE_GPU_ENV}=1 to make this a failure");
            None
        }
    }
}

/// A GPU with `SHADER_F16` and its probe report, or `None` as for [`gpu`].
pub fn gpu_with_probe(test: &str) -> Option<(Gpu, ProbeReport)> {
    let gpu = gpu(test)?;
    let report = probe(&gpu).expect("probe runs");
    Some((gpu, report))
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// N(0, std²) values, rounded to `dtype`.
pub fn normal_tensor(
    rng: &mut impl Rng,
    dtype: DType,
    rows: usize,
    cols: usize,
    std: f32,
) -> HostTensor {
    gradstab::verify::normal_tensor(rng, dtype, rows, cols, std).unwrap()
}

/// `op(A)·op(B)` on any backend, from host tensors to a host tensor.
pub fn matmul_on<B: Backend>(
    backend: &B,
    a: &HostTensor,
    b: &HostTensor,
    op: MatmulOp,
    precision: Precision,
) -> HostTensor {
    let (a, b) = (backend.upload(a).unwrap(), backend.upload(b).unwrap());
    backend
        .download(&backend.matmul(&a, &b, op, precision).unwrap())
        .unwrap()
}

/// The precisions `backend` can run; each one it cannot is named in a SKIPPED line (an adapter
/// without `SHADER_F16` runs f32 only).
pub fn precisions<B: Backend>(backend: &B, test: &str) -> Vec<Precision> {
    Precision::ALL
        .into_iter()
        .filter(|&p| runs(backend, p, test))
        .collect()
}

/// Whether `backend` runs `precision`; where not, a SKIPPED line says so.
pub fn runs<B: Backend>(backend: &B, precision: Precision, test: &str) -> bool {
    let ok = backend.supports(precision);
    if !ok {
        eprintln!(
            "SKIPPED {test} in {precision}: {}",
            backend.unsupported(precision)
        );
    }
    ok
}

/// A version 1.0 .npy file: magic, header length, a padded dict, the little-endian data.
pub fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    npy_bytes_in_order(descr, shape, false, data)
}

/// A version 1.0 .npy file, as NumPy writes it, with the data in Fortran (column-major)
/// order where `fortran`.
pub fn npy_bytes_in_order(descr: &str, shape: &[usize], fortran: bool, data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

/// The `gradstab` binary run with `args` and nothing else, its output captured: the short
/// form of `cli(args).output()`.
pub fn gradstab_cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    cli(args).output()
}

/// What a command printed on stderr.
pub fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A new, empty scratch directory for one test of one test file.
pub fn scratch_dir(file: &str, test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gradstab-{file}-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names in a directory, sorted.
pub fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// PyTorch's `float8_e4m3fn` cast (2.15, pytorch/pytorch#178817): it saturates, so every
/// |x| > 464, ±inf included, is ±448 (S.1111.110); 464 itself is a tie that goes to the even
/// 448; NaN stays NaN (S.1111.111). Within range, round to nearest even, which `float8` does.
pub fn pytorch_e4m3(x: f64) -> u32 {
    let sign = if x.is_sign_negative() { 0x80 } else { 0 };
    if x.is_nan() {
        return sign | 0x7f;
    }
    if x.abs() > 464.0 {
        return sign | 0x7e;
    }
    float8::F8E4M3::from_f64(x).to_bits() as u32
}

/// PyTorch's `float8_e5m2` cast: IEEE, so |x| ≥ 61440 (the tie above 57344, whose last bit
/// is odd) is ±inf, and NaN stays NaN.
pub fn pytorch_e5m2(x: f64) -> u32 {
    let sign = if x.is_sign_negative() { 0x80 } else { 0 };
    if x.is_nan() {
        return sign | 0x7f;
    }
    if x.abs() >= 61440.0 {
        return sign | 0x7c;
    }
    float8::F8E5M2::from_f64(x).to_bits() as u32
}

/// What PyTorch's casts to E4M3FN and E5M2 do to a finite, non-zero x, read from the bits
/// they give (not from gradstab's thresholds): (overflow, subnormal, zero) for each.
///
/// E4M3 saturates, so an overflow gives the same pattern as 448 itself; it is read instead
/// from the cast of x/2, one binade lower, where the rounding that overflows (to 480) is a
/// finite pattern: x overflows exactly when x/2 rounds beyond 224 (S.1110.110). Halving is
/// exact and commutes with rounding there, and an x/2 that overflows too saturates beyond 224.
pub fn fp8_cast_kinds(x: f64) -> [(bool, bool, bool); 2] {
    let e4m3 = pytorch_e4m3(x) & 0x7f;
    let e4m3_overflow = (pytorch_e4m3(x / 2.0) & 0x7f) > 0x76;
    let e5m2 = pytorch_e5m2(x) & 0x7f;
    [
        (e4m3_overflow, e4m3 >> 3 == 0 && e4m3 != 0, e4m3 == 0),
        (e5m2 >> 2 == 0x1f, e5m2 >> 2 == 0 && e5m2 != 0, e5m2 == 0),
    ]
}

/// A path as a command-line argument.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// A check on the CPU, and the same check as a second test on the GPU (skipped, with a notice,
/// only where there is no adapter and `GRADSTAB_REQUIRE_GPU` is unset). A file that uses it
/// imports `Cpu` and declares `mod common`.
#[macro_export]
macro_rules! on_both_backends {
    ($check:ident, $cpu:ident, $gpu:ident) => {
        #[test]
        fn $cpu() {
            $check(&Cpu::new());
        }

        #[test]
        fn $gpu() {
            if let Some(gpu) = common::gpu(stringify!($gpu)) {
                $check(&gpu);
            }
        }
    };
}
