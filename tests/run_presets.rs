//! The claims of `run`'s presets, checked on both backends, and shown to fail when the effect
//! they describe is absent.

mod common;

use gradstab::experiment::{preset, VariantRun};
use gradstab::network::run;
use gradstab::{Backend, Cpu, Precision};

fn runs_of<B: Backend>(backend: &B, name: &str) -> Vec<VariantRun> {
    let e = preset(name).unwrap();
    let mut runs = Vec::new();
    for (label, config) in &e.variants {
        for &precision in &e.precisions {
            runs.push(VariantRun {
                variant: label.clone(),
                config: config.clone(),
                wall_seconds: 0.0,
                record: run(backend, config, precision, &mut |_, _| Ok(())).unwrap(),
            });
        }
    }
    runs
}

fn assert_all_hold(name: &str, runs: &[VariantRun], expected: usize) {
    let claims = (preset(name).unwrap().claims.expect("a preset with claims"))(runs);
    assert_eq!(claims.len(), expected, "{name}: {claims:#?}");
    for c in &claims {
        assert!(c.holds, "{name}: {} — measured {}", c.claim, c.measured);
    }
}

#[test]
fn bf16_range_holds_on_the_cpu() {
    assert_all_hold("bf16-range", &runs_of(&Cpu, "bf16-range"), 4);
}

#[test]
fn bf16_range_holds_on_the_gpu() {
    let Some(gpu) = common::gpu("bf16-range") else {
        return;
    };
    assert_all_hold("bf16-range", &runs_of(&gpu, "bf16-range"), 4);
}

#[test]
fn bf16_range_fails_where_bf16_had_f16s_range_or_f32s_precision() {
    let runs = runs_of(&Cpu, "bf16-range");
    let check = preset("bf16-range").unwrap().claims.unwrap();
    let with_bf16_as = |p: Precision| -> Vec<VariantRun> {
        let stand_in = runs
            .iter()
            .find(|r| r.record.precision == p.name())
            .unwrap();
        let mut swapped = runs.clone();
        let bf16 = swapped
            .iter_mut()
            .find(|r| r.record.precision == "bf16")
            .unwrap();
        bf16.record = stand_in.record.clone();
        bf16.record.precision = "bf16".into();
        swapped
    };
    // A "bf16" with f16's range overflows with f16, not with f32.
    let failed: Vec<String> = check(&with_bf16_as(Precision::F16))
        .into_iter()
        .filter(|c| !c.holds)
        .map(|c| c.claim)
        .collect();
    assert!(
        failed.iter().any(|c| c.contains("within one layer of f32")),
        "{failed:?}"
    );
    assert!(
        failed.iter().any(|c| c.contains("25 layers further")),
        "{failed:?}"
    );
    // A "bf16" with f32's precision does not depart from f32 by bf16's unit roundoff.
    let failed: Vec<String> = check(&with_bf16_as(Precision::F32))
        .into_iter()
        .filter(|c| !c.holds)
        .map(|c| c.claim)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("its cost is precision"), "{failed:?}");
}

#[test]
fn a_preset_whose_runs_flags_change_does_not_check_its_claims() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--backend",
            "cpu",
            "--preset",
            "bf16-range",
            "--quiet",
        ];
        args.extend(extra);
        args.extend(["--format", "json"]);
        common::gradstab_cli(&args)
    };
    let own = run(&[]);
    assert!(own.status.success(), "{}", common::stderr_of(&own));
    let report: serde_json::Value = serde_json::from_slice(&own.stdout).unwrap();
    assert_eq!(report["claims"].as_array().map(Vec::len), Some(4));
    let changed = run(&["--depth", "6"]);
    assert!(changed.status.success(), "{}", common::stderr_of(&changed));
    let report: serde_json::Value = serde_json::from_slice(&changed.stdout).unwrap();
    assert!(report.get("claims").is_none(), "{report}");
    assert!(common::stderr_of(&changed).contains("its claims are not checked"));
}
