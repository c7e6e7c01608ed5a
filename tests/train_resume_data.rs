//! Resuming a run that trained and evaluated on files: `--resume` reads `--data` and
//! `--val-data` again, and goes on where they are the run's, bit for bit as the
//! uninterrupted run; where they are not, it refuses them in one line that says so.
//!
//! The reference is the uninterrupted run through the command line, whose report (without its
//! timing) the resumed one must equal.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{gradstab_cli as gradstab, s, stderr_of};

fn scratch(test: &str) -> PathBuf {
    common::scratch_dir("train_resume_data", test)
}

/// `n` samples of 4 inputs, labels 0, 1, 2 in turn, as a safetensors file of `x` and `y`;
/// `shift` moves every input, so that two files of the same shape hold other data.
fn write_labelled(path: &Path, n: usize, shift: f32) {
    let x: Vec<u8> = (0..n * 4)
        .flat_map(|i| ((i as f32 * 0.37).sin() + shift).to_le_bytes())
        .collect();
    let y: Vec<u8> = (0..n)
        .flat_map(|i| ((i % 3) as i64).to_le_bytes())
        .collect();
    let views = [
        (
            "x",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, 4], &x).unwrap(),
        ),
        (
            "y",
            safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![n], &y).unwrap(),
        ),
    ];
    safetensors::tensor::serialize_to_file(views, None::<HashMap<String, String>>, path).unwrap();
}

/// A small classifier on `data` with `extra`, its report as JSON.
fn train_args(data: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--data",
        s(data),
        "--depth",
        "2",
        "--width",
        "4,6,3",
        "--batch",
        "7",
        "--shuffle",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn resume_args(checkpoint: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--format",
        "json",
        "--resume",
        s(checkpoint),
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// The report of a successful command, without the host's timing.
fn report(args: &[String]) -> serde_json::Value {
    let out = gradstab(args);
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for run in v["runs"].as_array_mut().unwrap() {
        let summary = run["summary"].as_object_mut().unwrap();
        summary.remove("wall_seconds");
        summary.remove("seconds_per_step");
        summary.remove("time");
        for step in run["steps"].as_array_mut().unwrap() {
            step.as_object_mut().unwrap().remove("time");
        }
    }
    v
}

/// `--data` with `--val-split`: the run trains on the rows the split leaves, and a checkpoint
/// of it resumes, from the path it had or from `--data`, into the uninterrupted run.
/// In `dir`: 40 labelled samples and 10 to validate on, evaluated every 2 steps; the report of
/// `whole` uninterrupted steps, and a checkpoint after `cut` of them. Returns the data, the
/// validation data, the checkpoint and that report.
fn checkpointed_with_val_data(
    dir: &Path,
    whole: usize,
    cut: usize,
) -> (PathBuf, PathBuf, PathBuf, serde_json::Value) {
    let data = dir.join("d.safetensors");
    write_labelled(&data, 40, 0.0);
    let val = dir.join("v.safetensors");
    write_labelled(&val, 10, 0.5);
    let ck = dir.join("c.safetensors");
    let first = ["--val-data", s(&val), "--eval-every", "2"];
    let (whole, cut) = (whole.to_string(), cut.to_string());
    let report_of_whole = report(&train_args(
        &data,
        &[&first[..], &["--steps", &whole]].concat(),
    ));
    report(&train_args(
        &data,
        &[&first[..], &["--steps", &cut, "--checkpoint", s(&ck)]].concat(),
    ));
    (data, val, ck, report_of_whole)
}

#[test]
fn a_run_on_a_file_with_a_split_resumes_into_the_uninterrupted_run() {
    let dir = scratch("split");
    let data = dir.join("d.safetensors");
    write_labelled(&data, 40, 0.0);
    let ck = dir.join("c.safetensors");
    // Evaluations and full statistics every 5 steps: the cut at 5 is one of them.
    let split = [
        "--val-split",
        "0.25",
        "--eval-every",
        "5",
        "--record-every",
        "5",
    ];
    let whole = report(&train_args(
        &data,
        &[&split[..], &["--steps", "11"]].concat(),
    ));
    let mut first: Vec<&str> = split.to_vec();
    first.extend(["--steps", "5", "--checkpoint", s(&ck)]);
    report(&train_args(&data, &first));
    assert_eq!(report(&resume_args(&ck, &["--steps", "11"])), whole);
    assert_eq!(
        report(&resume_args(&ck, &["--steps", "11", "--data", s(&data)])),
        whole
    );
    // The epochs are of the 30 rows the split leaves: 5 batches of 7, 7, 7, 7 and 2.
    let epochs: Vec<u64> = whole["runs"][0]["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["steps"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [5, 5, 1]);
}

/// A run stopped at its end took its last step's full statistics and evaluation there
/// because it ended; resumed into a longer run, that step is the uninterrupted run's again,
/// which records neither there (here: full statistics at steps 1 and 11 only, evaluations
/// every 3 steps and at 11).
#[test]
fn a_finished_run_resumed_drops_what_its_end_alone_recorded() {
    let dir = scratch("end");
    let ck = dir.join("c.safetensors");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--depth",
            "2",
            "--width",
            "5",
            "--samples",
            "24",
            "--batch",
            "5",
            "--shuffle",
            "--task",
            "classify",
            "--val-split",
            "0.25",
            "--eval-every",
            "3",
            "--format",
            "json",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let whole = report(&args(&["--steps", "11"]));
    report(&args(&["--steps", "5", "--checkpoint", s(&ck)]));
    let resumed = report(&resume_args(&ck, &["--steps", "11"]));
    let step5 = &resumed["runs"][0]["steps"][4];
    assert!(
        step5.get("snapshot").is_none(),
        "step 5's full statistics stay"
    );
    assert!(step5.get("eval").is_none(), "step 5's evaluation stays");
    assert_eq!(resumed, whole);
    // Resumed to the step it reached, the run is the one that ended there.
    let same = report(&resume_args(&ck, &["--steps", "5"]));
    let step5 = &same["runs"][0]["steps"][4];
    assert!(step5.get("snapshot").is_some() && step5.get("eval").is_some());
}

/// A resume reads `--data` and `--val-data` again: the run's own (at another path too) are
/// taken, and others are refused as other data (exit 2), not as a checkpoint that does not
/// read back, whatever their size.
#[test]
fn a_resume_refuses_other_data_and_other_validation_data() {
    let dir = scratch("other");
    let (data, val, ck, whole) = checkpointed_with_val_data(&dir, 8, 4);
    // The same validation data at another path.
    let copy = dir.join("copy.safetensors");
    std::fs::copy(&val, &copy).unwrap();
    let resumed = report(&resume_args(
        &ck,
        &["--steps", "8", "--data", s(&data), "--val-data", s(&copy)],
    ));
    assert_eq!(resumed, whole);

    let refused = |extra: &[&str], needle: &str| {
        let mut args = resume_args(&ck, &["--steps", "8"]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let out = gradstab(&args);
        let e = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{e}");
        assert!(e.contains(needle), "{args:?}: '{needle}' missing from {e}");
    };
    let other_val = dir.join("other_val.safetensors");
    write_labelled(&other_val, 10, 0.25);
    let shorter_val = dir.join("shorter_val.safetensors");
    write_labelled(&shorter_val, 7, 0.5);
    for v in [&other_val, &shorter_val] {
        refused(
            &["--data", s(&data), "--val-data", s(v)],
            "not the validation data the checkpoint's run evaluated on",
        );
    }
    let shorter = dir.join("shorter.safetensors");
    write_labelled(&shorter, 37, 0.0);
    refused(
        &["--data", s(&shorter), "--val-data", s(&val)],
        "not the data the checkpoint's run trained on",
    );
}

/// A checkpoint never replaces a file the run reads: the data, the validation data or the
/// weights given to the library (as Python gives them, with no command line to check its
/// outputs), nor the data file a resumed run reads again from the path it had.
#[test]
fn a_checkpoint_never_replaces_a_file_the_run_reads() {
    use gradstab::api::train::TrainOptions;
    let dir = scratch("inputs");
    let data = dir.join("d.safetensors");
    write_labelled(&data, 40, 0.0);
    let val = dir.join("v.safetensors");
    write_labelled(&val, 10, 0.5);
    let refused = |options: TrainOptions, file: &Path| {
        let before = std::fs::read(file).unwrap();
        match options.plan() {
            Err(gradstab::Error::InvalidArgument(m)) => {
                assert!(m.contains("would be overwritten"), "{m}")
            }
            Err(e) => panic!("expected a usage error, got {e}"),
            Ok(_) => panic!("a checkpoint onto {} was planned", file.display()),
        }
        assert_eq!(std::fs::read(file).unwrap(), before);
    };
    let on_data = TrainOptions {
        data: Some(data.clone()),
        steps: Some(2),
        ..TrainOptions::default()
    };
    refused(
        TrainOptions {
            checkpoint: Some(data.clone()),
            ..on_data.clone()
        },
        &data,
    );
    refused(
        TrainOptions {
            val_data: Some(val.clone()),
            checkpoint: Some(val.clone()),
            ..on_data.clone()
        },
        &val,
    );

    // Resumed without --data, the run reads its data from the path it had.
    let ck = dir.join("c.safetensors");
    report(&train_args(
        &data,
        &["--steps", "2", "--checkpoint", s(&ck)],
    ));
    let before = std::fs::read(&data).unwrap();
    let out = gradstab(&resume_args(
        &ck,
        &["--steps", "3", "--checkpoint", s(&data)],
    ));
    let e = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("would be overwritten"), "{e}");
    assert_eq!(
        std::fs::read(&data).unwrap(),
        before,
        "the data file is as it was"
    );
}

/// A run whose validation file moved resumes with `--val-data` alone, as the refusal of the
/// old path says: the data file is still read from the path the run had.
#[test]
fn a_moved_validation_file_is_given_with_val_data_alone() {
    let dir = scratch("moved");
    let (_data, val, ck, whole) = checkpointed_with_val_data(&dir, 6, 3);
    let moved = dir.join("moved.safetensors");
    std::fs::rename(&val, &moved).unwrap();
    let out = gradstab(&resume_args(&ck, &["--steps", "6"]));
    let e = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("--val-data"), "{e}");
    let resumed = report(&resume_args(
        &ck,
        &["--steps", "6", "--val-data", s(&moved)],
    ));
    assert_eq!(resumed, whole);
}
