//! The table and CSV of `gradstab train` (its JSON is `TrainReport` serialized).

use std::io::Write;

use crate::network::fp8::Role;
use crate::train::{EvalRecord, TrainReport};

/// A number in at most 9 characters: plain where readable, scientific otherwise.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e4).contains(&a) {
        format!("{v:.4}")
    } else {
        format!("{v:.2e}")
    }
}

/// One row per run: the loss at the start, the end and its lowest, where it diverged, the
/// steps skipped, the final loss scale, and the mean ‖ΔW‖/‖W‖ of the first, middle and last
/// layers.
pub fn table(out: &mut impl Write, report: &TrainReport) -> std::io::Result<()> {
    if let (Some(p), Some(c)) = (&report.preset, &report.conclusion) {
        writeln!(out, "{p}: {c}")?;
    }
    writeln!(out, "device: {}", report.device.adapter)?;
    writeln!(
        out,
        "{}",
        super::model::line(
            report
                .runs
                .iter()
                .map(|r| (r.label.as_str(), &r.config.network))
        )
    )?;
    let width = report
        .runs
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(3)
        .max(3);
    writeln!(
        out,
        "{:<width$}  {:>9} {:>9} {:>9} {:>8} {:>7} {:>9}  {:>9} {:>9} {:>9}",
        "run",
        "start",
        "final",
        "lowest",
        "diverged",
        "skipped",
        "scale",
        "upd first",
        "upd mid",
        "upd last"
    )?;
    for run in &report.runs {
        let s = &run.summary;
        let [first, middle, last] = s.update_ratios_first_middle_last();
        writeln!(
            out,
            "{:<width$}  {:>9} {:>9} {:>9} {:>8} {:>7} {:>9}  {:>9} {:>9} {:>9}",
            run.label,
            num(s.start_loss),
            num(s.final_loss),
            num(s.min_loss),
            s.diverged_at
                .map_or("-".to_string(), |d| format!("step {d}")),
            s.skipped_steps,
            num(s.final_loss_scale),
            num(first),
            num(middle),
            num(last),
        )?;
    }
    // One line per epoch where an epoch is more than one step (with one, an epoch's mean is
    // its step's loss, which the JSON and CSV hold).
    for run in &report.runs {
        if run.config.steps_per_epoch() > 1 {
            for e in &run.epochs {
                writeln!(
                    out,
                    "{:<width$}  epoch {}: mean loss {} over {} steps",
                    run.label,
                    e.epoch,
                    num(e.mean_loss),
                    e.steps
                )?;
            }
        }
    }
    // One line per evaluation (after the update of its step).
    for run in &report.runs {
        for e in run.steps.iter().filter_map(|s| s.eval.as_ref()) {
            writeln!(
                out,
                "{:<width$}  eval after step {}: {}",
                run.label,
                e.step,
                eval_figures(e)
            )?;
        }
    }
    writeln!(
        out,
        "loss: mean over the minibatch before the step; upd: mean ‖ΔW‖/‖W‖ over applied steps"
    )?;
    if report.runs.iter().any(|r| r.summary.final_eval.is_some()) {
        writeln!(
            out,
            "eval: the model after the step's update, over the whole training and validation sets"
        )?;
    }
    for run in &report.runs {
        writeln!(out, "{}", time_line(&run.label, &run.summary))?;
    }
    for run in &report.runs {
        if let Some(e) = &run.summary.final_eval {
            writeln!(out, "final eval: {}: {}", run.label, eval_figures(e))?;
        }
    }
    for c in &report.claims {
        writeln!(
            out,
            "{} {}: {}",
            if c.holds { "holds: " } else { "FAILS: " },
            c.claim,
            c.measured
        )?;
    }
    Ok(())
}

/// An evaluation's losses and accuracies in one line: "train loss 0.4132 accuracy 87.50%,
/// val loss …", accuracy only for labels, val only with a validation set.
fn eval_figures(e: &EvalRecord) -> String {
    let part = |name: &str, loss: f64, accuracy: Option<f64>| {
        let mut s = format!("{name} loss {}", num(loss));
        if let Some(a) = accuracy {
            if a.is_finite() {
                s += &format!(" accuracy {:.2}%", 100.0 * a);
            } else {
                s += &format!(" accuracy {a}");
            }
        }
        s
    };
    let mut line = part("train", e.train_loss, e.train_accuracy);
    if let Some(loss) = e.val_loss {
        line += ", ";
        line += &part("val", loss, e.val_accuracy);
    }
    line
}

/// A run's timing in the table's closing summary: its wall time and mean time per step.
pub fn time_line(label: &str, summary: &crate::train::TrainSummary) -> String {
    format!(
        "time: {label}: {} for {} steps, {} per step",
        super::timing::duration(summary.wall_seconds),
        summary.steps_run,
        super::timing::duration(summary.seconds_per_step)
    )
}

/// One row per run, step and layer, with the step's evaluation where it had one; in FP8 runs, each operand's scale and the shares of its
/// values that saturated or flushed to zero (empty cells otherwise).
pub fn csv(out: impl Write, report: &TrainReport) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<String> = [
        "run",
        "precision",
        "lr",
        "step",
        "epoch",
        "batch",
        "loss",
        "loss_scale",
        "skipped",
        "layer",
        "grad_norm",
        "weight_norm",
        "update_ratio",
        "grad_zero_fraction",
        "grad_subnormal_fraction",
        "grad_non_finite_fraction",
        "unchanged_fraction",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
    ]
    .map(String::from)
    .to_vec();
    for role in ["input", "weight", "gradient"] {
        for what in ["scale", "saturated_fraction", "flushed_fraction"] {
            header.push(format!("fp8_{role}_{what}"));
        }
    }
    w.write_record(&header)?;
    for run in &report.runs {
        for step in &run.steps {
            for l in &step.layers {
                let mut row = vec![
                    super::columns::text_cell(&run.label),
                    run.config.precision.name().to_string(),
                    step.lr.to_string(),
                    step.step.to_string(),
                    step.epoch.to_string(),
                    step.batch.to_string(),
                    step.loss.to_string(),
                    step.loss_scale.to_string(),
                    step.skipped.to_string(),
                    l.layer.to_string(),
                    l.grad_norm.to_string(),
                    l.weight_norm.to_string(),
                    l.update_ratio.to_string(),
                    l.grad_zero_fraction.to_string(),
                    l.grad_subnormal_fraction.to_string(),
                    l.grad_non_finite_fraction.to_string(),
                    l.unchanged_fraction.to_string(),
                ];
                // The step's evaluation, where one was due; empty cells otherwise.
                let cell = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
                let e = step.eval.as_ref();
                row.push(cell(e.map(|e| e.train_loss)));
                row.push(cell(e.and_then(|e| e.train_accuracy)));
                row.push(cell(e.and_then(|e| e.val_loss)));
                row.push(cell(e.and_then(|e| e.val_accuracy)));
                for role in Role::ALL {
                    match step
                        .fp8
                        .iter()
                        .find(|r| r.layer == l.layer && r.role == role)
                    {
                        Some(r) => {
                            let n = r.count.max(1) as f64;
                            row.push(r.scale.to_string());
                            row.push((r.saturated as f64 / n).to_string());
                            row.push((r.flushed as f64 / n).to_string());
                        }
                        None => row.extend(["".to_string(), "".to_string(), "".to_string()]),
                    }
                }
                w.write_record(&row)?;
            }
        }
    }
    w.flush()?;
    Ok(())
}
