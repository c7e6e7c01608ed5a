//! The runtime's promises about order: kernels are recorded and submitted in batches, and a
//! dropped tensor's buffer is reused at once, yet every result is what it would be if each
//! command ran and finished before the next began.

mod common;

use gradstab::{Backend, HostTensor};

#[test]
fn an_upload_into_a_reused_buffer_waits_for_the_commands_that_read_it_before() {
    let Some(gpu) = common::gpu("upload into a reused buffer") else {
        return;
    };
    let precision = gradstab::Precision::F32;
    let n = 4096;
    let x_values: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let x = gpu
        .upload(&HostTensor::from_f32(1, n, x_values.clone()).unwrap())
        .unwrap();
    // Recorded, not yet submitted: it reads x's buffer.
    let y = gpu.scale(&x, 2.0, precision).unwrap();
    let reused_before = gpu.traffic().buffers_reused;
    drop(x);
    // Same size: the upload gets x's buffer back from the pool. Its write must land after the
    // scale above has read the old contents.
    let z = gpu
        .upload(&HostTensor::from_f32(1, n, vec![-1.0; n]).unwrap())
        .unwrap();
    assert_eq!(
        gpu.traffic().buffers_reused,
        reused_before + 1,
        "the buffer is reused"
    );
    let y = gpu.download(&y).unwrap().to_f32_vec();
    let expected: Vec<f32> = x_values.iter().map(|v| 2.0 * v).collect();
    assert_eq!(y, expected);
    assert_eq!(gpu.download(&z).unwrap().to_f32_vec(), vec![-1.0; n]);
}

#[test]
fn a_chain_longer_than_one_submission_computes_in_order_through_reused_buffers() {
    // 200 dependent kernels (more than three submissions' worth), each output dropped after
    // the next reads it: every buffer after the first two is reused, and the result is the
    // sequential one, exactly (adding 1 to small integers is exact in f32 and f16).
    let Some(gpu) = common::gpu("long chain") else {
        return;
    };
    for precision in [gradstab::Precision::F32, gradstab::Precision::F16] {
        if !gpu.supports(precision) {
            continue;
        }
        let dtype = precision.storage();
        let n = 1000;
        let ones = gpu
            .upload(&HostTensor::from_f32_as(dtype, 1, n, &vec![1.0; n]).unwrap())
            .unwrap();
        let mut acc = gpu
            .upload(&HostTensor::from_f32_as(dtype, 1, n, &vec![0.0; n]).unwrap())
            .unwrap();
        let created = gpu.traffic().buffers_created;
        let steps = 200;
        assert!(steps > 3 * gradstab::gpu::PASSES_PER_SUBMISSION);
        // The first output and the one uniform block every step shares; then only reuse.
        for _ in 0..steps {
            acc = gpu.axpy(1.0, &ones, &acc, precision).unwrap();
        }
        assert!(
            gpu.traffic().buffers_created <= created + 2,
            "{precision}: {} new buffers",
            gpu.traffic().buffers_created - created
        );
        let got = gpu.download(&acc).unwrap().to_f32_vec();
        assert_eq!(got, vec![steps as f32; n], "{precision}");
    }
}
