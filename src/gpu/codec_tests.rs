//! The WGSL casts that `codec.rs` generates, run on a device against the Rust casts of
//! `format.rs`. A file of its own: a test inside `codec.rs` would need the device, which
//! reaches `codec.rs` through the header, and the module graph stays free of cycles.

use super::codec::suffix;
use super::device::{Device, DeviceOptions};
use super::header::Header;
use super::kernel::{KernelKey, KernelSource};
use crate::format::Format;
use crate::tensor::{HostTensor, Shape};

/// The test kernel of one format (its body is generated, and leaked once per format).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CastsKernel(Format);

impl KernelKey for CastsKernel {
    fn source(&self) -> KernelSource {
        let format = self.0;
        let f = suffix(format);
        let body = format!(
            "@group(0) @binding(0) var<storage, read> inputs: array<u32>;
@group(0) @binding(1) var<storage, read_write> outputs: array<u32>;
@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {{
let i = folded_index(id, groups.x);
if (i >= arrayLength(&inputs)) {{
    return;
}}
let x = bitcast<f32>(inputs[i]);
outputs[2u * i] = encode_{f}(x);
outputs[2u * i + 1u] = encode_{f}_saturating(x);
}}
"
        );
        KernelSource {
            file: "codec test",
            body: Box::leak(body.into_boxed_str()),
            header: Header::new().casts(format),
            entry_point: "main",
        }
    }
}

/// f32 inputs that reach every branch of a cast to `format`: every bf16 pattern as an f32
/// (every exponent, both signs, inf and NaN), f32 on both sides of the format's overflow
/// midpoint and of its smallest subnormal, NaN payloads, and a sweep of all f32.
fn inputs(format: Format) -> Vec<u32> {
    let spec = format.spec();
    let mut v: Vec<u32> = (0..1u32 << 16).map(|b| b << 16).collect();
    for edge in [spec.overflow_midpoint(), spec.min_subnormal() / 2.0] {
        let bits = (edge as f32).to_bits();
        for b in bits - 300..bits + 300 {
            v.extend([b, b | 0x8000_0000]);
        }
    }
    v.extend([
        0x7f80_0001,
        0xffbf_ffff,
        0x7fc0_0000,
        0x7f7f_ffff,
        0xff7f_ffff,
    ]);
    v.extend((0..=u32::MAX).step_by(65_521));
    v
}

/// The generated WGSL casts, run on the device, give `Format::encode` and
/// `Format::encode_saturating` bit for bit: overflow, ±inf and NaN as the row says.
#[test]
fn generated_wgsl_casts_match_the_rust_casts_on_the_device() {
    let device = match Device::open(&DeviceOptions::default()) {
        Ok(device) => device,
        Err(e) if std::env::var("GRADSTAB_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("GRADSTAB_REQUIRE_GPU=1 but no GPU: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED the WGSL casts: no GPU adapter ({e})");
            return;
        }
    };
    for format in [Format::Bf16, Format::E4m3, Format::E5m2] {
        let bits = inputs(format);
        let values: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let input = HostTensor::from_f32(1, values.len(), values).unwrap();
        let input = device.upload_tensor(&input).unwrap();
        let output = device
            .alloc(Shape::new(1, 2 * bits.len()), Format::F32, "casts")
            .unwrap();
        let pipeline = device.pipeline(CastsKernel(format)).unwrap();
        let grid = device.element_grid(bits.len(), "casts").unwrap();
        device
            .dispatch(
                &pipeline,
                &[(0, &input.buffer), (1, &output.buffer)],
                grid,
                "casts",
            )
            .unwrap();
        let got = device.download_tensor(&output).unwrap();
        let got = got.data();
        let mut wrong = 0;
        for (i, &b) in bits.iter().enumerate() {
            let x = f32::from_bits(b);
            let want = [format.encode(x), format.encode_saturating(x)];
            let gpu = [got.bits(2 * i), got.bits(2 * i + 1)];
            if gpu != want {
                wrong += 1;
                if wrong <= 8 {
                    eprintln!("{format}: {b:#010x} ({x:e}): device {gpu:x?}, want {want:x?}");
                }
            }
        }
        assert_eq!(wrong, 0, "{format}: {wrong} of {} casts differ", bits.len());
    }
}
