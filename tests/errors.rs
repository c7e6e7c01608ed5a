//! Bad input gives a clear `Err`, never a panic.

mod common;

use gradstab::{
    Activation, Backend, Cpu, DType, Error, Gpu, GpuOptions, HostTensor, MatmulOp, Precision, Shape,
};

fn ones(rows: usize, cols: usize) -> HostTensor {
    HostTensor::from_f32(rows, cols, vec![1.0; rows * cols]).unwrap()
}

fn assert_shape_errors<B: Backend>(backend: &B) {
    let a = backend.upload(&ones(2, 3)).unwrap();
    let b = backend.upload(&ones(4, 5)).unwrap();
    let err = backend
        .matmul(&a, &b, MatmulOp::default(), Precision::F32)
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("3 ≠ 4"), "{err}");
    // The same operands fit once B is read transposed? No: op(B) is 5×4, still 3 ≠ 5.
    assert!(backend
        .matmul(&a, &b, MatmulOp::new(false, true), Precision::F32)
        .is_err());
    let err = backend.hadamard(&a, &b, Precision::F32).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = backend.axpy(1.0, &a, &b, Precision::F32).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    // An f32 tensor under a precision that stores f16.
    let err = backend
        .activation(Activation::Relu, &a, Precision::F16Accumulate32)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::DTypeMismatch { .. } | Error::MissingFeature { .. }
        ),
        "{err}"
    );
}

#[test]
fn zero_dimensions_and_wrong_lengths_are_refused() {
    let err = HostTensor::from_f32(0, 3, vec![]).unwrap_err();
    assert!(matches!(err, Error::ZeroDimension { .. }), "{err}");
    let err = HostTensor::from_f32(2, 2, vec![1.0; 3]).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
}

#[test]
fn cpu_refuses_mismatched_shapes_and_dtypes() {
    assert_shape_errors(&Cpu);
}

#[test]
fn gpu_refuses_mismatched_shapes_and_dtypes() {
    if let Some(gpu) = common::gpu("gpu shape errors") {
        assert_shape_errors(&gpu);
        let err = gpu.zeros(Shape::new(0, 4), DType::F32).unwrap_err();
        assert!(matches!(err, Error::ZeroDimension { .. }), "{err}");
    }
}

#[test]
fn f16_without_shader_f16_names_the_adapter_and_the_way_out() {
    if common::gpu("f16 masked").is_none() {
        return;
    }
    let options = GpuOptions {
        disable_shader_f16: true,
        ..GpuOptions::from_env().unwrap()
    };
    let gpu = Gpu::new(&options).unwrap();
    assert!(!gpu.supports(Precision::F16));
    // f16 data can be held (and reduced, see tests/stats.rs), but no f16 kernel runs.
    let h = gpu.upload(&ones(2, 2).cast(DType::F16)).unwrap();
    let err = gpu
        .activation(Activation::Relu, &h, Precision::F16)
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::MissingFeature { .. }), "{message}");
    assert!(message.contains(&gpu.adapter_name()), "{message}");
    assert!(message.contains("SHADER_F16"), "{message}");
    assert!(message.contains("--precision f32"), "{message}");
    let a = gpu.upload(&ones(2, 2)).unwrap();
    for precision in [Precision::F16, Precision::F16Accumulate32] {
        let err = gpu
            .matmul(&a, &a, MatmulOp::default(), precision)
            .unwrap_err();
        assert!(matches!(err, Error::MissingFeature { .. }), "{err}");
    }
    // f32 still works on the masked device.
    let c = gpu
        .matmul(&a, &a, MatmulOp::default(), Precision::F32)
        .unwrap();
    assert_eq!(gpu.download(&c).unwrap().to_f32_vec(), vec![2.0; 4]);
}

#[test]
fn an_unknown_adapter_name_lists_the_available_ones() {
    if common::gpu("unknown adapter").is_none() {
        return;
    }
    let options = GpuOptions {
        adapter: Some("no-such-adapter-xyz".into()),
        ..GpuOptions::default()
    };
    let err = Gpu::new(&options).err().expect("no adapter has that name");
    assert!(matches!(err, Error::AdapterNotFound { .. }), "{err}");
    assert!(err.to_string().contains("no-such-adapter-xyz"), "{err}");
}

#[test]
fn a_tensor_beyond_the_binding_limit_is_refused_with_its_size() {
    let Some(gpu) = common::gpu("too large") else {
        return;
    };
    // 2^36 bytes: more than any adapter binds at once.
    let err = gpu
        .zeros(Shape::new(1 << 20, 1 << 14), DType::F32)
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("68719476736"), "{err}");
}

#[test]
fn a_grid_beyond_its_folded_limit_is_refused() {
    if common::gpu("grid too large").is_none() {
        return;
    }
    let gpu = Gpu::new(&GpuOptions {
        max_workgroups_per_dimension: Some(2),
        ..GpuOptions::from_env().unwrap()
    })
    .unwrap();
    // 4 · 256 + 1 elements need 5 workgroups; a 2 × 2 grid holds 4.
    let x = gpu.upload(&ones(1, 4 * 256 + 1)).unwrap();
    let err = gpu.scale(&x, 2.0, Precision::F32).unwrap_err();
    assert!(
        matches!(
            err,
            Error::GridTooLarge {
                groups: 5,
                limit: 4,
                ..
            }
        ),
        "{err}"
    );
    // Four workgroups fit, folded into two rows.
    let x = gpu.upload(&ones(1, 4 * 256)).unwrap();
    let y = gpu
        .download(&gpu.scale(&x, 2.0, Precision::F32).unwrap())
        .unwrap();
    assert!(y.to_f32_vec().iter().all(|&v| v == 2.0));
}
