//! Bad input gives a clear `Err`, never a panic; and an `Err` that another error caused (the
//! system's, a file format crate's) keeps that error as its source, so a caller can walk
//! `std::error::Error::source()` down to it and downcast it.

mod common;

use std::error::Error as _;

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

/// The first error of type `T` among the sources of `err`, walked one `source()` at a time
/// (`err` itself excluded: the point is what lies underneath it).
fn cause<T: std::error::Error + 'static>(err: &Error) -> Option<&T> {
    let mut next = err.source();
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

fn scratch_file(test: &str, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = common::scratch_dir("errors", test).join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A safetensors file as the format lays it out: the header's length (u64, little-endian),
/// the JSON header, the data.
fn safetensors_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

#[test]
fn a_missing_file_keeps_its_io_error_as_the_source() {
    let missing = common::scratch_dir("errors", "missing").join("missing.safetensors");
    let err = gradstab::files::load(&missing).unwrap_err();
    let io = cause::<std::io::Error>(&err)
        .unwrap_or_else(|| panic!("no io::Error among the sources of {err:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    // The message is the one it always was: the path, then the system's words.
    assert_eq!(err.to_string(), format!("{}: {io}", missing.display()));
}

#[test]
fn a_write_that_fails_keeps_its_io_error_as_the_source() {
    let path = scratch_file("write", "report.json", b"the old report");
    let err = gradstab::output::write_atomically(&path, |_| {
        Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
    })
    .unwrap_err();
    let io = cause::<std::io::Error>(&err)
        .unwrap_or_else(|| panic!("no io::Error among the sources of {err:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not written ({io}); the file is unchanged",
            path.display()
        )
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"the old report");
}

#[test]
fn a_truncated_safetensors_file_keeps_the_crate_error_as_the_source() {
    // Two f32 values declared, one given: the data stop short of the header's offsets.
    let header = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let path = scratch_file(
        "truncated",
        "w.safetensors",
        &safetensors_bytes(header, &1f32.to_le_bytes()),
    );
    let err = gradstab::files::load(&path).unwrap_err();
    let format = cause::<safetensors::SafeTensorError>(&err)
        .unwrap_or_else(|| panic!("no SafeTensorError among the sources of {err:?}"));
    assert!(
        matches!(
            format,
            safetensors::SafeTensorError::MetadataIncompleteBuffer
        ),
        "{format:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("{}: not a valid safetensors file: {format}", path.display())
    );
}

#[test]
fn a_safetensors_header_that_is_not_json_keeps_serde_jsons_error_two_sources_down() {
    let path = scratch_file(
        "json",
        "w.safetensors",
        &safetensors_bytes("{not json}", &[]),
    );
    let err = gradstab::files::load(&path).unwrap_err();
    // gradstab's error → the safetensors crate's → serde_json's, each the source of the last.
    let format = err
        .source()
        .and_then(|e| e.downcast_ref::<safetensors::SafeTensorError>())
        .unwrap_or_else(|| panic!("the source of {err:?} is not a SafeTensorError"));
    assert!(
        matches!(
            format,
            safetensors::SafeTensorError::InvalidHeaderDeserialization(_)
        ),
        "{format:?}"
    );
    let json = cause::<serde_json::Error>(&err)
        .unwrap_or_else(|| panic!("no serde_json::Error among the sources of {err:?}"));
    assert!(json.is_syntax(), "{json}");
}

#[test]
fn an_npz_that_is_not_a_zip_archive_keeps_the_zip_error_as_the_source() {
    let path = scratch_file("zip", "data.npz", b"not a zip archive at all");
    let err = gradstab::files::load(&path).unwrap_err();
    let zip = cause::<zip::result::ZipError>(&err)
        .unwrap_or_else(|| panic!("no ZipError among the sources of {err:?}"));
    assert!(
        matches!(zip, zip::result::ZipError::InvalidArchive(_)),
        "{zip:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("{}: not a valid .npz (zip) archive: {zip}", path.display())
    );
}

/// A problem gradstab finds itself has no source to offer: none is made up.
#[test]
fn a_problem_found_by_gradstab_itself_has_no_source() {
    let path = scratch_file("empty", "w.safetensors", b"");
    let err = gradstab::files::load(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: the file is empty", path.display())
    );
    assert!(err.source().is_none(), "{err:?}");
}
