//! `gradstab sweep` from the outside: shards that merge to exactly the unsharded sweep, a
//! restarted sweep that completes a killed one, a merge that names what is missing or twice,
//! each point's outcome the same numbers its own `run` or `train` reports, and one-line
//! refusals (exit 2) before anything is written.

mod common;

use std::path::{Path, PathBuf};

use gradstab::sweep::{results, PointResult};
use serde_json::Value;

use common::cli;
use common::{s, scratch_dir, stderr_of};

/// A small run grid: 3 σ_w² × 2 depths on the CPU, milliseconds a point.
const RUN_GRID: [&str; 7] = [
    "--command",
    "run",
    "--grid",
    "sigma-w2=1:3:1",
    "--grid",
    "depth=3,7",
    "--quiet",
];
fn sweep_run(out: &Path, extra: &[&str]) -> std::process::Output {
    cli(["sweep", "--backend", "cpu", "--out", s(out)])
        .args(RUN_GRID)
        .args(extra)
        .args([
            "--",
            "--activation",
            "tanh",
            "--width",
            "16",
            "--batch",
            "8",
            "--bias-std",
            "0.3",
        ])
        .output()
}

/// The points of a results file, by index (points run side by side finish in any order).
fn lines(path: &Path) -> Vec<PointResult> {
    by_index(results::read(path).unwrap())
}

fn assert_same(a: &[PointResult], b: &[PointResult]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!(x.same_result(y), "point {} differs:\n{x:?}\n{y:?}", x.index);
    }
}

fn by_index(mut v: Vec<PointResult>) -> Vec<PointResult> {
    v.sort_by_key(|r| r.index);
    v
}

#[test]
fn shards_merge_to_exactly_the_unsharded_sweep() {
    let dir = scratch_dir("sweep", "shards");
    let whole = dir.join("whole.jsonl");
    let o = sweep_run(&whole, &["--jobs", "1"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let all = lines(&whole);
    assert_eq!(
        all.iter().map(|r| r.index).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    // First axis slowest: point 3 is σ_w² = 2, depth 7.
    assert_eq!(all[3].point["sigma-w2"], Value::from(2));
    assert_eq!(all[3].point["depth"], Value::from(7));
    assert_eq!(all[3].config["depth"], Value::from(7));
    let gain = all[3].config["init"]["gain"].as_f64().unwrap();
    assert_eq!(gain, 2f64.sqrt(), "σ_w² = 2 is a kaiming_normal gain of √2");

    let mut shard_files = Vec::new();
    for i in 0..4 {
        let f = dir.join(format!("shard-{i}.jsonl"));
        // Two points at once in some shards, one in others: the numbers must not care.
        let jobs = if i % 2 == 0 { "2" } else { "1" };
        let o = sweep_run(&f, &["--shard", &format!("{i}/4"), "--jobs", jobs]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        let expected: Vec<usize> = (0..6).filter(|p| p % 4 == i).collect();
        assert_eq!(
            lines(&f).iter().map(|r| r.index).collect::<Vec<_>>(),
            expected
        );
        shard_files.push(f);
    }
    let merged = dir.join("merged.jsonl");
    let o = cli(["sweep", "merge"])
        .args(shard_files.iter().map(|p| s(p)))
        .args(["--out", s(&merged)])
        .output();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_same(&lines(&merged), &all);
}

#[test]
fn cluster_variables_pick_the_shard() {
    let dir = scratch_dir("sweep", "cluster");
    let run = |name: &str, vars: &[(&str, &str)], extra: &[&str]| -> Vec<usize> {
        let f = dir.join(name);
        let o = cli(["sweep", "--backend", "cpu", "--out", s(&f)])
            .args(RUN_GRID)
            .args(extra)
            .envs(vars)
            .args(["--", "--width", "8", "--batch", "4"])
            .output();
        assert!(o.status.success(), "{}", stderr_of(&o));
        lines(&f).iter().map(|r| r.index).collect()
    };
    // --array=0-2: task 1 of 3.
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "1"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ];
    assert_eq!(run("slurm.jsonl", &slurm, &[]), [1, 4]);
    // --array=10-11: the IDs start at 10.
    let offset = [
        ("SLURM_ARRAY_TASK_ID", "11"),
        ("SLURM_ARRAY_TASK_MIN", "10"),
        ("SLURM_ARRAY_TASK_MAX", "11"),
    ];
    assert_eq!(run("offset.jsonl", &offset, &[]), [1, 3, 5]);
    assert_eq!(
        run(
            "k8s.jsonl",
            &[("JOB_COMPLETION_INDEX", "0")],
            &["--shards", "4"]
        ),
        [0, 4]
    );
    // An Indexed Job's index without the count is refused: guessing would run the wrong part.
    let f = dir.join("refused.jsonl");
    let o = cli(["sweep", "--backend", "cpu", "--out", s(&f)])
        .args(RUN_GRID)
        .env("JOB_COMPLETION_INDEX", "2")
        .output();
    assert_eq!(o.status.code(), Some(2), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("--shards"), "{}", stderr_of(&o));
    assert!(!f.exists());
}

#[test]
fn a_restarted_sweep_completes_a_killed_one() {
    let dir = scratch_dir("sweep", "resume");
    let whole = dir.join("whole.jsonl");
    assert!(sweep_run(&whole, &[]).status.success());
    let all = lines(&whole);
    // A sweep killed after two points, midway through writing the third's line.
    let text = std::fs::read_to_string(&whole).unwrap();
    let kept: Vec<&str> = text.lines().take(2).collect();
    let third = text.lines().nth(2).unwrap();
    let killed = dir.join("killed.jsonl");
    std::fs::write(
        &killed,
        format!("{}\n{}", kept.join("\n"), &third[..third.len() / 2]),
    )
    .unwrap();
    let o = sweep_run(&killed, &[]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("4 points run, 2 already"),
        "{}",
        stderr_of(&o)
    );
    assert!(stderr_of(&o).contains("unfinished"), "{}", stderr_of(&o));
    let resumed = lines(&killed);
    assert_eq!(
        &std::fs::read_to_string(&killed).unwrap()[..kept.join("\n").len()],
        kept.join("\n")
    );
    assert_same(&resumed, &all);
    // Run again: nothing left to do, nothing written.
    let before = std::fs::read(&killed).unwrap();
    let o = sweep_run(&killed, &[]);
    assert!(
        stderr_of(&o).contains("0 points run, 6 already"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(std::fs::read(&killed).unwrap(), before);
    // Another grid on the same file is refused, the file untouched.
    let o = cli([
        "sweep",
        "--backend",
        "cpu",
        "--out",
        s(&killed),
        "--command",
        "run",
        "--grid",
        "depth=2,3",
    ])
    .output();
    assert_eq!(o.status.code(), Some(2), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("another sweep"), "{}", stderr_of(&o));
    assert_eq!(std::fs::read(&killed).unwrap(), before);
}

#[test]
fn merge_names_missing_and_duplicated_points() {
    let dir = scratch_dir("sweep", "merge");
    let shard = |i: usize| -> PathBuf {
        let f = dir.join(format!("s{i}.jsonl"));
        assert!(sweep_run(&f, &["--shard", &format!("{i}/3")])
            .status
            .success());
        f
    };
    let (a, b, c) = (shard(0), shard(1), shard(2));
    let merged = dir.join("m.jsonl");
    let merge = |files: &[&Path]| {
        cli(["sweep", "merge"])
            .args(files.iter().map(|p| s(p)))
            .args(["--out", s(&merged)])
            .output()
    };
    let o = merge(&[&a, &b]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("2 of 6 points missing: 2, 5"),
        "{}",
        stderr_of(&o)
    );
    assert!(!merged.exists());
    let o = merge(&[&a, &b, &c, &b]);
    assert!(
        stderr_of(&o).contains("2 points present more than once: 1, 4"),
        "{}",
        stderr_of(&o)
    );
    // A shard of another sweep.
    let other = dir.join("other.jsonl");
    let o = cli([
        "sweep",
        "--backend",
        "cpu",
        "--out",
        s(&other),
        "--command",
        "run",
        "--grid",
        "depth=2,3",
        "--quiet",
    ])
    .output();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let o = merge(&[&a, &b, &c, &other]);
    assert!(
        stderr_of(&o).contains("different sweeps"),
        "{}",
        stderr_of(&o)
    );
    // A shard killed while writing: merge says to finish it first.
    let torn = dir.join("torn.jsonl");
    let text = std::fs::read_to_string(&c).unwrap();
    std::fs::write(&torn, &text[..text.len() - 5]).unwrap();
    let o = merge(&[&a, &b, &torn]);
    assert!(stderr_of(&o).contains("unfinished"), "{}", stderr_of(&o));
    assert!(merge(&[&c, &a, &b]).status.success());
    assert_eq!(
        lines(&merged).iter().map(|r| r.index).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
}

/// The JSON report of `gradstab COMMAND FLAGS --format json` on the CPU.
fn report(command: &str, flags: &[String]) -> Value {
    let o = cli([command, "--backend", "cpu", "--format", "json", "--quiet"])
        .args(flags)
        .output();
    assert!(o.status.success(), "{}", stderr_of(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn each_outcome_is_what_its_own_command_reports() {
    let dir = scratch_dir("sweep", "outcomes");
    let f = dir.join("run.jsonl");
    assert!(sweep_run(&f, &["--jobs", "2"]).status.success());
    for r in lines(&f) {
        let rep = report("run", &r.flags);
        let run = &rep["runs"][0];
        let layers = run["layers"].as_array().unwrap();
        let theory = |l: &Value| l["theory"]["grad_second_moment"].as_f64().unwrap();
        let depth = r.point["depth"].as_u64().unwrap() as usize;
        assert_eq!(layers.len(), depth + 1);
        assert_eq!(
            r.outcome["grad_ratio"],
            run["summary"]["grad_second_moment_ratio"]
        );
        assert_eq!(
            r.outcome["theory_grad_ratio"].as_f64().unwrap(),
            theory(&layers[0]) / theory(&layers[depth])
        );
        assert_eq!(r.config, run["config"]);
    }
    // Training: 11 layers (more than 9), minibatches drawn in a shuffled order, a held-out
    // split, unequal widths given whole.
    let f = dir.join("train.jsonl");
    let o = cli([
        "sweep",
        "--backend",
        "cpu",
        "--out",
        s(&f),
        "--command",
        "train",
        "--quiet",
    ])
    .args(["--grid", "lr=0.01,0.1", "--grid", "optimizer=sgd,adam"])
    .args([
        "--",
        "--depth",
        "11",
        "--width",
        "12,20,12,20,12,20,12,20,12,20,12,6",
        "--steps",
        "7",
    ])
    .args([
        "--batch",
        "16",
        "--shuffle",
        "--samples",
        "64",
        "--val-split",
        "0.25",
        "--seed",
        "5",
    ])
    .output();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let points = lines(&f);
    assert_eq!(points.len(), 4);
    for r in points {
        let rep = report("train", &r.flags);
        let summary = &rep["runs"][0]["summary"];
        for (ours, theirs) in [
            ("final_loss", "final_loss"),
            ("min_loss", "min_loss"),
            ("start_loss", "start_loss"),
            ("baseline_loss", "baseline_loss"),
            ("steps_run", "steps_run"),
        ] {
            assert_eq!(r.outcome[ours], summary[theirs], "{ours} of {:?}", r.flags);
        }
        assert_eq!(r.outcome["val_loss"], summary["final_eval"]["val_loss"]);
        assert_eq!(r.outcome["steps_run"], Value::from(7));
        assert_eq!(r.config, rep["runs"][0]["config"]);
        assert_eq!(r.config["optimizer"]["kind"], r.point["optimizer"]);
    }
}

#[test]
fn requests_a_sweep_cannot_honour_are_refused_before_anything_runs() {
    let dir = scratch_dir("sweep", "refusals");
    let out = dir.join("never.jsonl");
    let refused = |args: &[&str], says: &str| {
        let o = cli(["sweep", "--backend", "cpu", "--out", s(&out)])
            .args(args)
            .output();
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: expected {says:?} in {err}");
        assert!(!out.exists(), "{args:?} wrote its file");
    };
    refused(
        &["--command", "run", "--grid", "depht=1,2"],
        "not a flag of `gradstab run`",
    );
    refused(&["--command", "run", "--grid", "depth=1:0:1"], "STOP");
    refused(
        &["--command", "run", "--grid", "depth=0,2"],
        "sweep point 0",
    );
    refused(
        &["--command", "run", "--grid", "sigma-w=1,-2"],
        "expected a number ≥ 0",
    );
    refused(
        &[
            "--command",
            "run",
            "--grid",
            "depth=2",
            "--",
            "--format",
            "csv",
        ],
        "a sweep sets it",
    );
    refused(
        &[
            "--command",
            "run",
            "--grid",
            "depth=2",
            "--",
            "--depth",
            "3",
        ],
        "shared flags set too",
    );
    refused(
        &[
            "--command",
            "run",
            "--grid",
            "sigma-w=1",
            "--",
            "--init",
            "xavier_normal",
        ],
        "shared flags set too",
    );
    refused(
        &[
            "--command",
            "train",
            "--grid",
            "depth=2",
            "--",
            "--lr",
            "0.1,0.2",
        ],
        "put the list on an axis",
    );
    refused(
        &["--command", "train", "--grid", "residual=maybe"],
        "takes true or false",
    );
    refused(&["--preset", "phase-diagram-nope"], "no sweep preset");
    refused(
        &["--command", "run", "--grid", "depth=2", "--shard", "4/4"],
        "shard",
    );
}

#[test]
fn switches_on_an_axis_are_given_or_left_out() {
    let dir = scratch_dir("sweep", "switches");
    let out = dir.join("r.jsonl");
    let o = cli([
        "sweep",
        "--backend",
        "cpu",
        "--out",
        s(&out),
        "--command",
        "run",
        "--quiet",
    ])
    .args([
        "--grid",
        "residual=false,true",
        "--",
        "--depth",
        "3",
        "--width",
        "8",
        "--batch",
        "4",
    ])
    .output();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let r = lines(&out);
    assert_eq!(r[0].config["residual"], Value::Bool(false));
    assert_eq!(r[1].config["residual"], Value::Bool(true));
    assert!(r[1].flags.contains(&"--residual".to_string()));
}
