//! A validation error inside a batch becomes an `Err`: a dispatch is recorded outside error
//! scopes (`batch.rs`), so this checks that its error is still caught when the batch is
//! submitted, named, and that the device goes on working after it.

use super::device::{Device, DeviceOptions};
use super::header::Header;
use super::kernel::{KernelKey, KernelSource};
use crate::error::Error;
use crate::format::Format;
use crate::tensor::{HostTensor, Shape};

/// `output[i] = 2 · input[i]`, a kernel of this test's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Double;

impl KernelKey for Double {
    fn source(&self) -> KernelSource {
        KernelSource {
            file: "dispatch test",
            body: "@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = folded_index(id, groups.x);
    if (i < arrayLength(&input)) {
        output[i] = 2.0 * input[i];
    }
}
",
            header: Header::new(),
            entry_point: "main",
        }
    }
}

fn device() -> Option<Device> {
    match Device::open(&DeviceOptions::default()) {
        Ok(device) => Some(device),
        Err(e) if std::env::var("GRADSTAB_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("GRADSTAB_REQUIRE_GPU=1 but no GPU: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED the dispatch validation test: no GPU adapter ({e})");
            None
        }
    }
}

#[test]
fn a_validation_error_inside_a_batch_becomes_an_error_naming_it() {
    let Some(device) = device() else {
        return;
    };
    let n = 64;
    let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let x = device
        .upload_tensor(&HostTensor::from_f32(1, n, values.clone()).unwrap())
        .unwrap();
    let out = device.alloc(Shape::new(1, n), Format::F32, "out").unwrap();
    let pipeline = device.pipeline(Double).unwrap();
    let grid = device.element_grid(n, "double").unwrap();
    // A good dispatch, then one that binds one buffer both read-only and read-write, which
    // WebGPU forbids within one dispatch: wgpu finds it while recording the pass and keeps
    // it with the encoder.
    device
        .dispatch(&pipeline, &[(0, &x.buffer), (1, &out.buffer)], grid, "good")
        .unwrap();
    device
        .dispatch(
            &pipeline,
            &[(0, &x.buffer), (1, &x.buffer)],
            grid,
            "aliased",
        )
        .unwrap();
    match device.flush() {
        Err(Error::Gpu { during, .. }) => assert!(during.contains("aliased"), "{during}"),
        other => panic!("the aliased binding was not reported: {other:?}"),
    }
    // Nothing is left open: the next batch runs and computes.
    device
        .dispatch(&pipeline, &[(0, &x.buffer), (1, &out.buffer)], grid, "good")
        .unwrap();
    let got = device.download_tensor(&out).unwrap().to_f32_vec();
    let want: Vec<f32> = values.iter().map(|v| 2.0 * v).collect();
    assert_eq!(got, want);
}
