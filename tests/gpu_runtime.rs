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
    // Dependent kernels, more than three submissions' worth, all of a submission in one
    // compute pass (so each must see the last one's write through wgpu's barriers), each output dropped after
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
        let steps = 3 * gradstab::gpu::COMMANDS_PER_SUBMISSION + 100;
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

#[test]
fn kernels_go_to_the_queue_in_batches_of_exactly_commands_per_submission() {
    let Some(gpu) = common::gpu("submission batches") else {
        return;
    };
    let precision = gradstab::Precision::F32;
    let per = gradstab::gpu::COMMANDS_PER_SUBMISSION;
    let x = gpu
        .upload(&HostTensor::from_f32(1, 64, vec![1.0; 64]).unwrap())
        .unwrap();
    gpu.synchronize().unwrap();
    let submissions_for = |kernels: usize| {
        let before = gpu.traffic().submissions;
        for _ in 0..kernels {
            drop(gpu.scale(&x, 2.0, precision).unwrap());
        }
        gpu.synchronize().unwrap();
        gpu.traffic().submissions - before
    };
    // A full batch waits for the host to ask; one kernel more starts a second.
    assert_eq!(submissions_for(per), 1);
    assert_eq!(submissions_for(per + 1), 2);
    assert_eq!(submissions_for(3 * per), 3);
    // Statistics are two kernels each: half as many fill one batch.
    let before = gpu.traffic().submissions;
    let pending: Vec<_> = (0..per / 2).map(|_| gpu.stats_later(&x).unwrap()).collect();
    gpu.synchronize().unwrap();
    assert_eq!(gpu.traffic().submissions - before, 1);
    let records = gpu.collect_stats(pending).unwrap();
    assert!(records.iter().all(|r| r.count == 64 && r.mean == 1.0));
}

#[test]
fn a_buffer_that_goes_back_and_forth_is_kept_without_its_count_drifting() {
    // 300 rounds of a 1 MiB tensor made and dropped: the pool hands the same buffer back
    // every time (its count of kept bytes must not drift towards the 256 MiB cap). The first
    // zeros takes the dirty buffer; it reads as zeros (a planted missing clear was not caught
    // on lavapipe, see docs/testing.md).
    let Some(gpu) = common::gpu("pool round trips") else {
        return;
    };
    let n = 1 << 18;
    let shape = gradstab::tensor::Shape::new(1, n);
    let dirty = gpu
        .upload(&HostTensor::from_f32(1, n, vec![7.0; n]).unwrap())
        .unwrap();
    drop(dirty);
    let created = gpu.traffic().buffers_created;
    for round in 0..300 {
        let zeros = gpu.zeros(shape, gradstab::DType::F32).unwrap();
        if round == 0 {
            assert!(gpu
                .download(&zeros)
                .unwrap()
                .to_f32_vec()
                .iter()
                .all(|&v| v == 0.0));
        }
        let filled = gpu.scale(&zeros, 0.0, gradstab::Precision::F32).unwrap();
        drop((zeros, filled));
    }
    // New: the first round's second tensor, its uniform block and the read-back buffer. A
    // pool whose count drifted would create one or two per round once it reached its cap.
    assert!(
        gpu.traffic().buffers_created <= created + 3,
        "{:?}",
        gpu.traffic()
    );
}

#[test]
fn the_pool_keeps_at_most_its_cap_and_counts_what_it_hands_out() {
    let Some(gpu) = common::gpu("pool cap") else {
        return;
    };
    gpu.release_kept_buffers();
    let mib = 1u64 << 20;
    let shape = gradstab::tensor::Shape::new(1, (mib / 4) as usize);
    let cap = gradstab::gpu::RETAINED_BYTES;
    let alive: Vec<_> = (0..cap / mib + 20)
        .map(|_| gpu.zeros(shape, gradstab::DType::F32).unwrap())
        .collect();
    assert_eq!(gpu.kept_bytes(), 0);
    drop(alive);
    // 20 MiB beyond the cap were released, the rest kept.
    assert_eq!(gpu.kept_bytes(), cap);
    let again: Vec<_> = (0..10)
        .map(|_| gpu.zeros(shape, gradstab::DType::F32).unwrap())
        .collect();
    assert_eq!(gpu.kept_bytes(), cap - 10 * mib);
    drop(again);
    assert_eq!(gpu.kept_bytes(), cap);
    gpu.release_kept_buffers();
    assert_eq!(gpu.kept_bytes(), 0);
}

#[test]
fn a_second_identical_pass_compiles_no_pipeline_and_creates_no_bind_group() {
    // A network pass, twice on one device: the first compiles its kernels and binds its
    // buffers; the second finds every pipeline, and every bind group (the pool hands back the
    // same buffers, the uniform cache the same blocks), in the caches, and computes the same.
    let Some(gpu) = common::gpu("steady state") else {
        return;
    };
    let config = gradstab::network::NetworkConfig::new(5, 24, 6);
    let run = || {
        let record =
            gradstab::network::run(&gpu, &config, gradstab::Precision::F32, &mut |_, _| Ok(()))
                .unwrap();
        serde_json::to_string(&record).unwrap()
    };
    let first = run();
    let after_first = gpu.traffic();
    let second = run();
    let after_second = gpu.traffic();
    assert!(after_first.pipelines_created > 0 && after_first.bind_groups_created > 0);
    assert_eq!(
        after_second.pipelines_created, after_first.pipelines_created,
        "{after_first:?} → {after_second:?}"
    );
    assert_eq!(
        after_second.bind_groups_created, after_first.bind_groups_created,
        "{after_first:?} → {after_second:?}"
    );
    assert_eq!(first, second);
}

#[test]
fn a_freed_buffer_s_bind_group_never_serves_a_new_buffer() {
    // Each round binds new buffers to the one scale pipeline after the last round's were freed,
    // first by the pool refusing them (it is kept full by a filler), then by
    // `release_kept_buffers`. A new buffer may take a freed one's place in memory, by which
    // wgpu compares buffers, and has its size: a cache that served a bind group by either
    // would make the scale read the last round's input and write the last round's output.
    let Some(gpu) = common::gpu("bind groups of freed buffers") else {
        return;
    };
    // Two halves: one tensor may not exceed a binding's limit (128 MiB on lavapipe).
    let half = gradstab::Shape::new(1, (gradstab::gpu::RETAINED_BYTES / 8) as usize);
    let filler = [0, 1].map(|_| gpu.zeros(half, gradstab::DType::F32).unwrap());
    drop(filler);
    assert_eq!(
        gpu.kept_bytes(),
        gradstab::gpu::RETAINED_BYTES,
        "the pool is full"
    );
    let n = 256;
    for round in 0..40 {
        let values: Vec<f32> = (0..n).map(|i| (round * n + i + 1) as f32).collect();
        let x = gpu
            .upload(&HostTensor::from_f32(1, n, values.clone()).unwrap())
            .unwrap();
        let y = gpu.scale(&x, 0.5, gradstab::Precision::F32).unwrap();
        let got = gpu.download(&y).unwrap().to_f32_vec();
        let want: Vec<f32> = values.iter().map(|v| v * 0.5).collect();
        assert!(
            got == want,
            "round {round}: {:?}… for {:?}…",
            &got[..4],
            &want[..4]
        );
        drop((x, y));
        if round >= 20 {
            // The filler goes with the first; from then on each round's buffers are released
            // by hand.
            gpu.release_kept_buffers();
        }
    }
}
