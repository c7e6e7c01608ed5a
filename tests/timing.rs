//! Each run's timing (wall seconds, seconds per step) in the JSON and the tables, and the
//! progress reports training sends: each carries the loss of the step it reports.

use gradstab::api::run::{run_experiment, RunOptions};
use gradstab::api::train::{train_runs, TrainOptions};
use gradstab::api::Device;
use gradstab::report;
use gradstab::train::{StepTime, TrainSummary};
use gradstab::Gpu;

mod common;

/// Two small runs (two learning rates) of 6 steps each, on the CPU.
fn two_runs() -> TrainOptions {
    TrainOptions {
        depth: Some(3),
        widths: Some(vec![8]),
        samples: Some(16),
        steps: Some(6),
        lr: Some(vec![0.01, 0.05]),
        ..TrainOptions::default()
    }
}

#[test]
fn training_reports_its_wall_time_and_time_per_step() {
    let runs = two_runs().runs().unwrap();
    let outcome = train_runs(&Device::cpu(), &runs, None, false, &mut |_| Ok(())).unwrap();
    let report = &outcome.report;
    let json = serde_json::to_value(report).unwrap();
    let mut table = Vec::new();
    report::train::table(&mut table, report).unwrap();
    let table = String::from_utf8(table).unwrap();
    for (i, run) in report.runs.iter().enumerate() {
        let s = &run.summary;
        assert_eq!(s.steps_run, 6);
        for t in [s.wall_seconds, s.seconds_per_step] {
            assert!(t.is_finite() && t > 0.0, "{}: {t}", run.label);
        }
        // The wall time spans every step and the callbacks between them; the mean per step
        // is of the steps alone, from the same clock: steps × mean ≤ wall, up to the
        // rounding of one division and one product (a few units in the last place).
        let steps = s.steps_run as f64 * s.seconds_per_step;
        assert!(
            steps <= s.wall_seconds * (1.0 + 4.0 * f64::EPSILON),
            "{}: {} steps of {} s exceed the wall time {} s",
            run.label,
            s.steps_run,
            s.seconds_per_step,
            s.wall_seconds
        );
        // The JSON carries both, as the summary has them.
        let summary = &json["runs"][i]["summary"];
        assert_eq!(summary["wall_seconds"].as_f64(), Some(s.wall_seconds));
        assert_eq!(
            summary["seconds_per_step"].as_f64(),
            Some(s.seconds_per_step)
        );
        // The table's closing summary shows them, in its units.
        let line = format!(
            "time: {}: {} for 6 steps, {} per step",
            run.label,
            report::timing::duration(s.wall_seconds),
            report::timing::duration(s.seconds_per_step)
        );
        assert!(table.lines().any(|l| l == line), "no {line:?} in\n{table}");
    }
}

/// On the CPU every step reports its phases' host time (forward, backward, optimizer,
/// records): each positive, together within the step's own time, and added up in the summary.
#[test]
fn on_the_cpu_each_step_splits_its_time_into_phases() {
    let runs = two_runs().runs().unwrap();
    let outcome = train_runs(&Device::cpu(), &runs, None, false, &mut |_| Ok(())).unwrap();
    let json = serde_json::to_value(&outcome.report).unwrap();
    for (i, run) in outcome.report.runs.iter().enumerate() {
        let mut sum = 0.0;
        for (k, step) in run.steps.iter().enumerate() {
            let t = step.time.expect("the CPU times every step");
            for part in [t.forward_s, t.backward_s, t.optimizer_s, t.records_s] {
                assert!(part.is_finite() && part > 0.0, "step {}: {t:?}", step.step);
            }
            sum += t.sum();
            let fields = &json["runs"][i]["steps"][k]["time"];
            assert_eq!(fields["forward_s"].as_f64(), Some(t.forward_s));
            assert_eq!(fields["backward_s"].as_f64(), Some(t.backward_s));
            assert_eq!(fields["optimizer_s"].as_f64(), Some(t.optimizer_s));
            assert_eq!(fields["records_s"].as_f64(), Some(t.records_s));
        }
        // The phases are disjoint parts of the steps' time (from the same clock; a few ulps
        // for the sums and the mean's division and product).
        let steps = run.summary.steps_run as f64 * run.summary.seconds_per_step;
        assert!(
            sum <= steps * (1.0 + 16.0 * f64::EPSILON),
            "{}: phases {sum} s exceed the steps' {steps} s",
            run.label
        );
        let total = run.summary.time.expect("every step timed");
        assert!((total.sum() - sum).abs() <= 16.0 * f64::EPSILON * sum);
        let forward: f64 = run.steps.iter().map(|s| s.time.unwrap().forward_s).sum();
        assert_eq!(total.forward_s, forward);
        assert_eq!(
            json["runs"][i]["summary"]["time"]["records_s"].as_f64(),
            Some(total.records_s)
        );
    }
}

/// Trains `options` on `gpu` and returns each step's phases (device seconds), with the
/// run's summary, or `None` where the adapter has no timestamp queries: then the split is
/// `null`, per step and in the summary, since a host clock would measure submissions, not the
/// device's work.
fn device_phases(gpu: Gpu, options: TrainOptions) -> Option<(Vec<StepTime>, TrainSummary)> {
    let timed = gpu.times_passes();
    let runs = options.runs().unwrap();
    let outcome = train_runs(&Device::Gpu(gpu), &runs, None, false, &mut |_| Ok(())).unwrap();
    let json = serde_json::to_value(&outcome.report).unwrap();
    let run = &outcome.report.runs[0];
    if !timed {
        for step in json["runs"][0]["steps"].as_array().unwrap() {
            assert!(step.get("time").is_some_and(|t| t.is_null()), "{step}");
        }
        assert!(json["runs"][0]["summary"]["time"].is_null());
        eprintln!("the adapter has no timestamp queries: the GPU's split is null");
        return None;
    }
    let times: Vec<StepTime> = run.steps.iter().map(|s| s.time.unwrap()).collect();
    for (k, t) in times.iter().enumerate() {
        let fields = &json["runs"][0]["steps"][k]["time"];
        assert_eq!(fields["forward_s"].as_f64(), Some(t.forward_s));
        assert_eq!(fields["backward_s"].as_f64(), Some(t.backward_s));
        assert_eq!(fields["optimizer_s"].as_f64(), Some(t.optimizer_s));
        assert_eq!(fields["records_s"].as_f64(), Some(t.records_s));
    }
    Some((times, run.summary.clone()))
}

/// The median of one phase over the steps after the first (whose kernels the device may
/// still be compiling).
fn median(times: &[StepTime], phase: impl Fn(&StepTime) -> f64) -> f64 {
    let mut v: Vec<f64> = times[1..].iter().map(phase).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// On a GPU with timestamp queries every step reports its phases' device time: each phase
/// runs kernels, so each is positive (the optimizer's on an applied step), and the device's
/// passes, run one after another within the step, take at most the step's host time.
#[test]
fn on_a_gpu_each_step_splits_its_device_time_into_phases() {
    let Some(gpu) = common::gpu("on_a_gpu_each_step_splits_its_device_time_into_phases") else {
        return;
    };
    let options = TrainOptions {
        lr: Some(vec![0.01]),
        ..two_runs()
    };
    let Some((times, summary)) = device_phases(gpu, options) else {
        return;
    };
    assert_eq!(times.len(), 6);
    let mut sum = 0.0;
    for t in &times {
        for part in [t.forward_s, t.backward_s, t.optimizer_s, t.records_s] {
            assert!(part.is_finite() && part > 0.0, "{t:?}");
        }
        sum += t.sum();
    }
    let steps = summary.steps_run as f64 * summary.seconds_per_step;
    assert!(sum <= steps, "phases {sum} s exceed the steps' {steps} s");
    let total = summary.time.expect("every step timed");
    assert!((total.sum() - sum).abs() <= 16.0 * f64::EPSILON * sum);
    assert_eq!(
        total.forward_s,
        times.iter().map(|t| t.forward_s).sum::<f64>()
    );
}

/// The device's time lands in the phase whose kernels spent it: a network four times deeper
/// takes longer forward; with a large batch, forward and backward (matmuls over 1024 rows)
/// take longer than the optimizer (one update of 64 × 64 weights a layer) and forward longer
/// than the records (a census of each gradient, the loss's record). Phases swapped, or all
/// zero, fail one of these.
#[test]
fn on_a_gpu_each_phase_gets_its_own_kernels_time() {
    let Some(gpu) = common::gpu("on_a_gpu_each_phase_gets_its_own_kernels_time") else {
        return;
    };
    let shallow = TrainOptions {
        depth: Some(2),
        widths: Some(vec![32]),
        samples: Some(64),
        steps: Some(7),
        lr: Some(vec![0.01]),
        ..TrainOptions::default()
    };
    let deep = TrainOptions {
        depth: Some(8),
        ..shallow.clone()
    };
    let large_batch = TrainOptions {
        depth: Some(3),
        widths: Some(vec![64]),
        samples: Some(1024),
        ..shallow.clone()
    };
    let Some((shallow, _)) = device_phases(gpu, shallow) else {
        return;
    };
    let gpu = common::gpu("on_a_gpu_each_phase_gets_its_own_kernels_time").unwrap();
    let (deep, _) = device_phases(gpu, deep).unwrap();
    let forward = |t: &StepTime| t.forward_s;
    assert!(
        median(&deep, forward) > median(&shallow, forward),
        "forward: depth 8 {deep:?}, depth 2 {shallow:?}"
    );
    let gpu = common::gpu("on_a_gpu_each_phase_gets_its_own_kernels_time").unwrap();
    let (large, _) = device_phases(gpu, large_batch).unwrap();
    let optimizer = median(&large, |t| t.optimizer_s);
    assert!(median(&large, forward) > optimizer, "{large:?}");
    assert!(median(&large, |t| t.backward_s) > optimizer, "{large:?}");
    assert!(
        median(&large, forward) > median(&large, |t| t.records_s),
        "{large:?}"
    );
}

#[test]
fn each_progress_report_carries_the_loss_of_its_step() {
    let runs = two_runs().runs().unwrap();
    let mut seen: Vec<(usize, Option<f64>, String)> = Vec::new();
    let outcome = train_runs(&Device::cpu(), &runs, None, false, &mut |p| {
        seen.push((p.done, p.loss, p.label.to_string()));
        Ok(())
    })
    .unwrap();
    let runs = &outcome.report.runs;
    // Every step of every run reported once, in order: step k of run r is done 6r + k.
    assert_eq!(seen.len(), 12);
    for (i, (done, loss, label)) in seen.iter().enumerate() {
        let (r, k) = (i / 6, i % 6);
        assert_eq!(*done, 6 * r + k + 1);
        assert_eq!(label, &runs[r].label);
        // Exactly the recorded loss of that step (the same f64, not a neighbour's).
        assert_eq!(*loss, Some(runs[r].steps[k].loss), "{label} step {}", k + 1);
    }
    // The losses differ from step to step, so a report a step behind would not match.
    assert!(runs[0].steps.windows(2).all(|w| w[0].loss != w[1].loss));
}

#[test]
fn a_run_reports_its_wall_time() {
    let experiment = RunOptions {
        depth: Some(3),
        widths: Some(vec![8]),
        batch: Some(4),
        ..RunOptions::default()
    }
    .experiment()
    .unwrap();
    let mut losses = Vec::new();
    let report = run_experiment(&Device::cpu(), &experiment, None, &mut |p| {
        losses.push(p.loss);
        Ok(())
    })
    .unwrap();
    // A run's layers have no loss to report.
    assert!(!losses.is_empty() && losses.iter().all(Option::is_none));
    let json = serde_json::to_value(&report).unwrap();
    let mut table = Vec::new();
    report::run::table(&mut table, &report).unwrap();
    let table = String::from_utf8(table).unwrap();
    for (i, run) in report.runs.iter().enumerate() {
        assert!(run.wall_seconds.is_finite() && run.wall_seconds > 0.0);
        assert_eq!(
            json["runs"][i]["wall_seconds"].as_f64(),
            Some(run.wall_seconds)
        );
        let line = format!(
            "time: {} {}: {}",
            run.variant,
            run.record.precision,
            report::timing::duration(run.wall_seconds)
        );
        assert!(table.lines().any(|l| l == line), "no {line:?} in\n{table}");
    }
}
