//! The phase-diagram presets hold their claims when run whole, the claims fail on results that
//! contradict them, and the diagrams draw the theory where the theory says.

mod common;

use gradstab::ops::activation::Activation;
use gradstab::sweep::presets::{preset, TRAINED_ACCURACY};
use gradstab::sweep::{results, theory, PointResult};
use gradstab::theory::phase::{critical_sigma_w2, phase_point};
use serde_json::{json, Value};

use common::{cli, s, scratch_dir, stderr_of};

/// Runs a preset whole on the CPU; its results and what it printed.
fn run_preset(name: &str) -> (Vec<PointResult>, String) {
    let dir = scratch_dir("sweep_presets", name);
    let out = dir.join("r.jsonl");
    let o = cli([
        "sweep",
        "--preset",
        name,
        "--backend",
        "cpu",
        "--quiet",
        "--out",
        s(&out),
    ])
    .output();
    let printed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{printed}{}", stderr_of(&o));
    let svg = dir.join("d.svg");
    let (x, value) = (
        "sigma-w2",
        if name == "phase-diagram" {
            "train_accuracy"
        } else {
            "log10_grad_ratio"
        },
    );
    let o = cli([
        "sweep",
        "plot",
        s(&out),
        "--x",
        x,
        "--y",
        "depth",
        "--value",
        value,
        "--theory",
        "--out",
        s(&svg),
    ])
    .output();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("6 ξ_c"));
    (results::read(&out).unwrap(), printed)
}

#[test]
fn the_static_diagram_holds_its_claims() {
    let (results, printed) = run_preset("phase-diagram-static");
    let grid = preset("phase-diagram-static").unwrap().grid;
    assert_eq!(results.len(), grid.point_count().unwrap());
    assert_eq!(printed.matches("claim holds").count(), 2, "{printed}");
    assert!(!printed.contains("FAILS"), "{printed}");
    assert!(printed.contains("σ_w² = 1.761"), "{printed}");
}

#[test]
fn the_trained_diagram_holds_its_claims() {
    let (results, printed) = run_preset("phase-diagram");
    assert_eq!(results.len(), 40);
    assert_eq!(printed.matches("claim holds").count(), 3, "{printed}");
    assert!(!printed.contains("FAILS"), "{printed}");
}

/// A made-up point of a tanh grid at σ_b² = 0.05.
fn point(sigma_w2: f64, depth: usize, outcome: Value) -> PointResult {
    PointResult {
        sweep: "test".into(),
        index: 0,
        of: 1,
        point: json!({"sigma-b2": 0.05, "sigma-w2": sigma_w2, "depth": depth})
            .as_object()
            .unwrap()
            .clone(),
        command: gradstab::sweep::SweepCommand::Train,
        flags: vec![],
        config: json!({"network": {"activation": {"kind": "tanh"}, "widths": [32, 32], "bias_std": 0.05f64.sqrt()}}),
        outcome,
        seconds: 0.0,
        device: String::new(),
        version: String::new(),
    }
}

#[test]
fn claims_fail_on_results_that_contradict_them() {
    let claims = preset("phase-diagram").unwrap().claims;
    let grid = |accuracy: &dyn Fn(f64, usize) -> f64| -> Vec<PointResult> {
        let mut v = Vec::new();
        for s in [1.0, 1.75, 4.0] {
            for d in [8, 24, 48] {
                v.push(point(s, d, json!({"train_accuracy": accuracy(s, d)})));
            }
        }
        v
    };
    let holds = |r: &[PointResult]| claims(r).iter().map(|c| c.holds).collect::<Vec<_>>();
    // As the theory has it: shallow trains everywhere, 24 only near the boundary.
    let good = grid(&|s, d| {
        if d == 8 || (d == 24 && s == 1.75) {
            1.0
        } else {
            0.3
        }
    });
    assert_eq!(holds(&good), [true, true, true]);
    // Depth 48 at σ_w² = 1 (6 ξ_c ≈ 22) trained: beyond the theory's depth.
    let deep = grid(&|s, d| {
        if d == 8 || (d == 24 && s == 1.75) || (d == 48 && s == 1.0) {
            1.0
        } else {
            0.3
        }
    });
    assert!(!holds(&deep)[0]);
    // Widest at the ends, not at the boundary.
    let ends = grid(&|s, d| {
        if d == 8 || (d == 24 && s != 1.75) {
            TRAINED_ACCURACY
        } else {
            0.3
        }
    });
    assert!(!holds(&ends)[1]);
    // A shallow network that does not train: the task would not be learnable.
    let unlearnable = grid(&|s, d| {
        if d == 8 && s == 4.0 {
            0.5
        } else if d == 8 || (d == 24 && s == 1.75) {
            1.0
        } else {
            0.3
        }
    });
    assert!(!holds(&unlearnable)[2]);

    let claims = preset("phase-diagram-static").unwrap().claims;
    let ratio = |s: f64, d: usize, shift: f64| {
        let p = phase_point(&Activation::Tanh, s, 0.05).unwrap();
        let theory = p.log10_gradient_ratio(d);
        point(
            s,
            d,
            json!({"log10_grad_ratio": theory + shift, "log10_theory_grad_ratio": theory}),
        )
    };
    let agreeing: Vec<PointResult> = [1.0, 1.5, 2.5, 4.0]
        .iter()
        .map(|&s| ratio(s, 100, 0.1))
        .collect();
    assert_eq!(
        claims(&agreeing)
            .iter()
            .map(|c| c.holds)
            .collect::<Vec<_>>(),
        [true, true]
    );
    // Off the theory by 4.5 standard deviations of width 32's scatter at depth 100.
    let sd = (2.0f64 * 100.0 / 32.0).sqrt() / std::f64::consts::LN_10;
    let mut off = agreeing.clone();
    off[0] = ratio(1.0, 100, 4.5 * sd);
    assert!(!claims(&off)[0].holds);
    // A chaotic σ_w² whose gradient shrank: the boundary is not where χ₁ = 1.
    let mut flipped = agreeing;
    let p = phase_point(&Activation::Tanh, 4.0, 0.05).unwrap();
    flipped[3] = point(
        4.0,
        100,
        json!({"log10_grad_ratio": -1.0, "log10_theory_grad_ratio": p.log10_gradient_ratio(100)}),
    );
    assert!(!claims(&flipped)[1].holds);
}

#[test]
fn the_overlay_is_the_theory_of_the_points() {
    let points: Vec<PointResult> = [1.0, 2.0, 4.0]
        .iter()
        .map(|&s| point(s, 10, json!({"x": 1})))
        .collect();
    let overlay = theory::overlay(&points, "sigma-w2").unwrap();
    let critical = critical_sigma_w2(&Activation::Tanh, 0.05).unwrap();
    assert_eq!(overlay.boundary, Some(critical));
    // The curve is 6 ξ_c at each of its σ_w², from 1 to 4.
    let (first, last) = (overlay.depth_curve[0], *overlay.depth_curve.last().unwrap());
    assert_eq!((first.0, last.0), (1.0, 4.0));
    for &(s, d) in overlay.depth_curve.iter().step_by(40) {
        assert_eq!(
            d,
            6.0 * phase_point(&Activation::Tanh, s, 0.05).unwrap().xi_c
        );
    }
    // In σ_w units, the same boundary at √σ_w².
    let by_sigma: Vec<PointResult> = [1.0f64, 2.0]
        .iter()
        .map(|&s| {
            let mut p = point(s, 10, json!({}));
            p.point.remove("sigma-w2");
            p.point.insert("sigma-w".into(), json!(s));
            p
        })
        .collect();
    assert_eq!(
        theory::overlay(&by_sigma, "sigma-w").unwrap().boundary,
        Some(critical.sqrt())
    );
    // Points of two activations have no one theory.
    let mut mixed = points.clone();
    mixed[1].config["network"]["activation"] = json!({"kind": "relu"});
    assert!(theory::overlay(&mixed, "sigma-w2")
        .unwrap_err()
        .to_string()
        .contains("activation varies"));
    assert!(theory::overlay(&points, "depth").is_err());
}
