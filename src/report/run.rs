//! `gradstab run` output: the per-layer terminal table, CSV and JSON.

use std::io::Write;

use crate::backend::BackendInfo;
use crate::experiment::VariantRun;
use crate::network::fp8::Role;
use crate::network::NetworkConfig;
use crate::stats::StatsRecord;
use crate::train::Claim;

/// Everything one `gradstab run` produced; its JSON is the documented output format.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunReport {
    pub version: String,
    pub preset: Option<String>,
    /// The first variant's configuration (each run carries its own too).
    pub config: NetworkConfig,
    pub device: BackendInfo,
    pub runs: Vec<VariantRun>,
    /// A preset's claims, checked against these runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<Claim>,
}

fn sci(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.is_nan() => "NaN".into(),
        Some(v) if v.is_infinite() => "inf".into(),
        Some(v) => format!("{v:.2e}"),
    }
}

/// E[x²] over the record, or inf where the tensor holds a non-finite value.
fn second_moment(r: &Option<StatsRecord>) -> Option<f64> {
    r.as_ref().map(|s| {
        if s.nan + s.pos_inf + s.neg_inf > 0 {
            f64::INFINITY
        } else {
            s.second_moment()
        }
    })
}

/// What first happened at `layer` in each run, for the events column.
fn events(report: &RunReport, layer: usize) -> String {
    let mut out = Vec::new();
    for run in &report.runs {
        let s = &run.record.summary;
        let who = format!("{} {}", run.variant, run.record.precision);
        let f = run.record.storage;
        for (onset, crossed, what) in [
            (
                s.first_nonfinite_forward,
                s.first_nonfinite_forward_values,
                format!("inf/NaN forward in {f}"),
            ),
            (
                s.first_subnormal,
                s.first_subnormal_values,
                format!("subnormal forward in {f}"),
            ),
            (
                s.first_nonfinite_backward,
                s.first_nonfinite_backward_values,
                format!("inf/NaN gradient in {f}"),
            ),
            (s.first_all_zero_grad, None, "gradient all 0".to_string()),
        ] {
            if onset == Some(layer) {
                match crossed {
                    Some(c) => out.push(format!("{who}: {what} ({c})")),
                    None => out.push(format!("{who}: {what}")),
                }
            }
        }
    }
    out.join("; ")
}

/// One row per layer: for each variant the theory's E\[z²\] and E\[g²\], then each precision's
/// measured E\[z²\] and E\[g²\] (pre-activation z and gradient g = ∂l/∂h; second moments, which
/// is what theory predicts and what decides overflow; "inf" where the tensor holds a
/// non-finite value), and the events that first happened at that layer.
pub fn table(out: &mut impl Write, report: &RunReport) -> std::io::Result<()> {
    let mut header = format!("{:>5}", "layer");
    let mut variants: Vec<&str> = Vec::new();
    for run in &report.runs {
        if !variants.contains(&run.variant.as_str()) {
            variants.push(&run.variant);
            header += &format!(" | {:>9} {:>9}", "E[z²] th", "E[g²] th");
        }
        header += &format!(
            " | {:>9} {:>9}",
            format!("E[z²] {}", run.record.precision),
            "E[g²]"
        );
    }
    writeln!(
        out,
        "runs: {}",
        report
            .runs
            .iter()
            .map(|r| format!("{} {}", r.variant, r.record.precision))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(
        out,
        "{}",
        super::model::line(report.runs.iter().map(|r| (r.variant.as_str(), &r.config)))
    )?;
    writeln!(out, "{header} | events")?;
    let depth = report
        .runs
        .iter()
        .map(|r| r.config.depth)
        .max()
        .unwrap_or(0);
    for t in 0..=depth {
        let mut row = format!("{t:>5}");
        let mut seen: Vec<&str> = Vec::new();
        for run in &report.runs {
            let Some(layer) = run.record.layers.get(t) else {
                continue;
            };
            if !seen.contains(&run.variant.as_str()) {
                seen.push(&run.variant);
                row += &format!(
                    " | {:>9} {:>9}",
                    sci(layer.theory.pre_activation_second_moment),
                    sci(Some(layer.theory.grad_second_moment))
                );
            }
            row += &format!(
                " | {:>9} {:>9}",
                sci(second_moment(&layer.pre_activation)),
                sci(second_moment(&layer.grad_activation))
            );
        }
        writeln!(out, "{row} | {}", events(report, t))?;
    }
    for run in &report.runs {
        fp8_table(out, run)?;
    }
    for run in &report.runs {
        writeln!(out, "{}", crate::experiment::conclusion(run))?;
    }
    for run in &report.runs {
        writeln!(out, "{}", time_line(run))?;
    }
    for c in &report.claims {
        let verdict = if c.holds { "holds: " } else { "FAILS: " };
        writeln!(out, "{verdict} {}: {}", c.claim, c.measured)?;
    }
    Ok(())
}

/// A run's wall time in the table's closing summary.
pub fn time_line(run: &VariantRun) -> String {
    format!(
        "time: {} {}: {}",
        run.variant,
        run.record.precision,
        super::timing::duration(run.wall_seconds)
    )
}

/// What FP8 quantisation did to each layer's matmul operands: the scale, and the share of
/// values that saturated at the format's largest finite or flushed to zero.
fn fp8_table(out: &mut impl Write, run: &VariantRun) -> std::io::Result<()> {
    if run.record.fp8.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "{} {}: FP8 operands, {} scaling (scale, saturated, flushed to zero)",
        run.variant,
        run.record.precision,
        run.config.fp8_scaling.name()
    )?;
    let mut header = format!("{:>5}", "layer");
    for role in Role::ALL {
        let format = run
            .record
            .fp8
            .iter()
            .find(|r| r.role == role)
            .map(|r| r.format.name())
            .unwrap_or("-");
        header += &format!(" | {:<28}", format!("{} ({format})", role.name()));
    }
    writeln!(out, "{header}")?;
    for t in 1..=run.config.depth {
        let mut row = format!("{t:>5}");
        for role in Role::ALL {
            let cell = match run
                .record
                .fp8
                .iter()
                .find(|r| r.layer == t && r.role == role)
            {
                Some(r) => format!(
                    "{:>8.2e} {:>8} {:>8}",
                    r.scale,
                    percent(r.saturated, r.count),
                    percent(r.flushed, r.count)
                ),
                None => "-".into(),
            };
            row += &format!(" | {cell:<28}");
        }
        writeln!(out, "{row}")?;
    }
    Ok(())
}

/// A share as a percentage that shows a single value out of millions as more than 0.
fn percent(count: u64, of: u64) -> String {
    if count == 0 {
        return "0%".into();
    }
    let p = 100.0 * count as f64 / of.max(1) as f64;
    if p < 0.01 {
        "<0.01%".into()
    } else {
        format!("{p:.2}%")
    }
}

/// CSV: one row per (variant, precision, layer, quantity) with every field of the record and
/// the theory's second moment where it predicts one.
pub fn csv(out: impl Write, report: &RunReport) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["variant", "precision", "layer", "quantity"];
    header.extend(super::columns::RECORD_COLUMNS);
    header.push("theory_second_moment");
    w.write_record(&header)?;
    for run in &report.runs {
        for layer in &run.record.layers {
            let quantities = [
                (
                    "pre_activation",
                    &layer.pre_activation,
                    layer.theory.pre_activation_second_moment,
                ),
                ("activation", &layer.activation, None),
                (
                    "grad_activation",
                    &layer.grad_activation,
                    Some(layer.theory.grad_second_moment),
                ),
                ("grad_weight", &layer.grad_weight, None),
            ];
            for (name, record, theory) in quantities {
                let Some(s) = record else { continue };
                let mut row = vec![
                    super::columns::text_cell(&run.variant),
                    run.record.precision.clone(),
                    layer.layer.to_string(),
                    name.into(),
                ];
                row.extend(super::columns::record_fields(s));
                row.push(theory.map(|v| format!("{v:e}")).unwrap_or_default());
                w.write_record(&row)?;
            }
        }
    }
    w.flush()?;
    Ok(())
}
