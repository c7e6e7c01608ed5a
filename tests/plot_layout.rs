//! The plots read at a glance: no text of any plot overlaps another or runs off the figure,
//! series stay distinct however many there are, a diverged run does not decide the axis, and
//! tick labels are integers on counting axes and never "-0".
//!
//! The layout test renders the plots of several presets (small shapes and few steps, on the
//! CPU backend) and reads every `<text>` of the SVG: its position, anchor, vertical
//! alignment, rotation, font size and string. A text's box is estimated as a viewer lays it
//! out, 0.6 of the font size per character wide and one font size tall; no two boxes may
//! intersect and none may cross the figure's edge.

mod common;

use std::path::Path;

use common::{gradstab_cli as gradstab, scratch_dir, stderr_of};
use gradstab::report::axes::{clip_to, count_label, quantile_range, robust_range, value_label};
use gradstab::report::style::{marker_points, series_style, DISTINCT};

/// A text's estimated box, in SVG pixels.
#[derive(Debug, Clone)]
struct TextBox {
    text: String,
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

/// The value of attribute `name` in the tag `tag`.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

fn number(tag: &str, name: &str) -> f64 {
    attribute(tag, name)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name} of {tag}: {e}"))
}

/// The characters a viewer draws for `escaped` SVG text: each entity is one.
fn characters(escaped: &str) -> usize {
    let mut n = 0;
    let mut in_entity = false;
    for c in escaped.chars() {
        match c {
            '&' => {
                in_entity = true;
                n += 1;
            }
            ';' if in_entity => in_entity = false,
            _ if in_entity => {}
            _ => n += 1,
        }
    }
    n
}

/// The figure's size and the box of each non-empty `<text>`.
fn text_boxes(svg: &str) -> ((f64, f64), Vec<TextBox>) {
    let head = &svg[..svg.find('>').expect("an <svg> tag")];
    let size = (number(head, "width"), number(head, "height"));
    let mut boxes = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<text ") {
        rest = &rest[start..];
        let tag_end = rest.find('>').expect("a closed <text> tag");
        let tag = &rest[..tag_end];
        let close = rest.find("</text>").expect("a </text>");
        let content = rest[tag_end + 1..close].trim();
        rest = &rest[close..];
        if content.is_empty() {
            continue;
        }
        let (x, y, fs) = (number(tag, "x"), number(tag, "y"), number(tag, "font-size"));
        let w = 0.6 * fs * characters(content) as f64;
        let (left, right) = match attribute(tag, "text-anchor").unwrap_or("start") {
            "start" => (0.0, w),
            "middle" => (-w / 2.0, w / 2.0),
            "end" => (-w, 0.0),
            other => panic!("text-anchor {other}"),
        };
        // plotters places text by dy: its top, middle or bottom at y; else y is the baseline.
        let (top, bottom) = match attribute(tag, "dy") {
            Some("0.76em") => (0.0, fs),
            Some("0.5ex") => (-fs / 2.0, fs / 2.0),
            Some("-0.5ex") => (-fs, 0.0),
            _ => (-0.8 * fs, 0.2 * fs),
        };
        let mut corners = vec![(left, top), (right, top), (right, bottom), (left, bottom)];
        if let Some(t) = attribute(tag, "transform") {
            let inner = t
                .strip_prefix("rotate(")
                .and_then(|t| t.strip_suffix(')'))
                .unwrap_or_else(|| panic!("transform {t}"));
            let parts: Vec<f64> = inner
                .split(',')
                .map(|p| p.trim().parse().unwrap())
                .collect();
            assert_eq!(
                (parts[1], parts[2]),
                (x, y),
                "a rotation about the text's anchor"
            );
            let (sin, cos) = parts[0].to_radians().sin_cos();
            for c in &mut corners {
                *c = (c.0 * cos - c.1 * sin, c.0 * sin + c.1 * cos);
            }
        }
        let xs = corners.iter().map(|c| x + c.0);
        let ys = corners.iter().map(|c| y + c.1);
        boxes.push(TextBox {
            text: content.to_string(),
            x0: xs.clone().fold(f64::INFINITY, f64::min),
            x1: xs.fold(f64::NEG_INFINITY, f64::max),
            y0: ys.clone().fold(f64::INFINITY, f64::min),
            y1: ys.fold(f64::NEG_INFINITY, f64::max),
        });
    }
    (size, boxes)
}

/// Every text that runs off the figure or overlaps another, in words (a rounding's half
/// pixel allowed).
fn layout_faults(svg: &str) -> Vec<String> {
    const SLACK: f64 = 0.5;
    let ((w, h), boxes) = text_boxes(svg);
    let mut faults = Vec::new();
    for b in &boxes {
        if b.x0 < -SLACK || b.y0 < -SLACK || b.x1 > w + SLACK || b.y1 > h + SLACK {
            faults.push(format!("{b:?} runs off the {w}×{h} figure"));
        }
    }
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            let dx = a.x1.min(b.x1) - a.x0.max(b.x0);
            let dy = a.y1.min(b.y1) - a.y0.max(b.y0);
            if dx > SLACK && dy > SLACK {
                faults.push(format!(
                    "{:?} overlaps {:?} by {dx:.1}×{dy:.1}",
                    a.text, b.text
                ));
            }
        }
    }
    faults
}

/// Runs gradstab with `args` plus `--plot` (and `--heatmap` for `train`) into `dir`, and
/// returns each plot's SVG.
fn plots(dir: &Path, name: &str, args: &[&str]) -> Vec<(String, String)> {
    let plot = dir.join(format!("{name}.svg"));
    let heat = dir.join(format!("{name}-heat.svg"));
    let out = dir.join(format!("{name}.json"));
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--backend", "cpu", "--quiet", "--format", "json"]);
    all.extend([
        "--out",
        out.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let train = args[0] == "train";
    if train {
        all.extend(["--heatmap", heat.to_str().unwrap()]);
    }
    let o = gradstab(&all);
    assert!(o.status.success(), "{all:?}: {}", stderr_of(&o));
    let mut svgs = vec![(name.to_string(), std::fs::read_to_string(&plot).unwrap())];
    if train {
        svgs.push((
            format!("{name} heat map"),
            std::fs::read_to_string(&heat).unwrap(),
        ));
    }
    svgs
}

#[test]
fn no_text_of_any_plot_overlaps_another_or_leaves_the_figure() {
    let dir = scratch_dir("plot_layout", "texts");
    let small = ["--width", "32", "--batch", "16"];
    let run = |preset: &str, extra: &[&str]| {
        let mut a = vec!["run", "--preset", preset];
        a.extend(small);
        a.extend(extra);
        plots(&dir, preset, &a)
    };
    let train = |preset: &str| {
        plots(
            &dir,
            preset,
            &[
                "train",
                "--preset",
                preset,
                "--steps",
                "20",
                "--record-every",
                "0",
            ],
        )
    };
    let mut svgs = Vec::new();
    svgs.extend(run("relu-explode", &[]));
    svgs.extend(run("scaled-sigmoid", &["--depth", "12"]));
    svgs.extend(run("bf16-range", &[]));
    // Every precision at once: six runs, their onsets, and the legend that names them all.
    svgs.extend(
        run(
            "precision-compare",
            &[
                "--precision",
                "f32,f16,f16acc32,bf16,bf16acc32,fp8",
                "--depth",
                "10",
            ],
        )
        .into_iter()
        .map(|(_, s)| ("six precisions".to_string(), s)),
    );
    svgs.extend(train("lr-sensitivity"));
    svgs.extend(train("loss-scaling"));
    // A classifier with a held-out set: each run's validation loss beside its training loss,
    // and the accuracy panel.
    let classifier = plots(
        &dir,
        "classifier",
        &[
            "train",
            "--task",
            "classify",
            "--depth",
            "2",
            "--width",
            "8,16,4",
            "--samples",
            "64",
            "--batch",
            "16",
            "--steps",
            "20",
            "--val-split",
            "0.25",
            "--eval-every",
            "5",
            "--optimizer",
            "adam",
            "--lr",
            "0.01,0.1",
            "--record-every",
            "0",
        ],
    );
    let loss_plot = &classifier[0].1;
    for text in [
        "lr=0.1: train",
        "lr=0.1: val",
        "accuracy (train: whole training set",
    ] {
        assert!(
            loss_plot.contains(text),
            "the classifier's plot has no '{text}'"
        );
    }
    svgs.extend(classifier);
    let mut faults = Vec::new();
    for (name, svg) in &svgs {
        let (_, boxes) = text_boxes(svg);
        assert!(boxes.len() > 20, "{name}: only {} texts", boxes.len());
        faults.extend(
            layout_faults(svg)
                .into_iter()
                .map(|f| format!("{name}: {f}")),
        );
    }
    assert!(
        faults.is_empty(),
        "{} layout faults:\n{}",
        faults.len(),
        faults.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_layout_check_finds_an_overlap_and_a_clipped_label() {
    // Two texts on one spot, and one whose end lies past the right edge (0.6 × 10 × 10 = 60
    // pixels from x = 50 in a figure 100 wide).
    let svg = r#"<svg width="100" height="80" viewBox="0 0 100 80">
<text x="10" y="10" dy="0.76em" text-anchor="start" font-size="10">abc</text>
<text x="12" y="14" dy="0.76em" text-anchor="start" font-size="10">de</text>
<text x="50" y="40" dy="0.76em" text-anchor="start" font-size="10">0123456789</text>
<text x="20" y="60" dy="0.76em" text-anchor="start" font-size="10">ok</text>
</svg>"#;
    let faults = layout_faults(svg);
    assert_eq!(faults.len(), 2, "{faults:#?}");
    assert!(faults[0].contains("0123456789") && faults[0].contains("runs off"));
    assert!(faults[1].contains("\"abc\" overlaps \"de\""));
    // A y-axis title rotated by 270° about its anchor stands in a column one font size wide.
    let (_, boxes) = text_boxes(
        r#"<svg width="100" height="100"><text x="5" y="50" dy="0.76em" text-anchor="middle" font-size="10" transform="rotate(270, 5, 50)">abcdef</text></svg>"#,
    );
    let b = &boxes[0];
    let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(
        near(b.x0, 5.0) && near(b.x1, 15.0) && near(b.y0, 32.0) && near(b.y1, 68.0),
        "{b:?}"
    );
}

#[test]
fn fourteen_series_and_every_series_up_to_distinct_get_their_own_style() {
    let styles: Vec<_> = (0..DISTINCT).map(series_style).collect();
    for n in [14, DISTINCT] {
        let set: std::collections::HashSet<_> = styles[..n].iter().collect();
        assert_eq!(set.len(), n, "{n} series share a style");
    }
    // 7 rates × 2 initialisations: the second seven repeat the colours with another dash.
    for i in 0..7 {
        assert_eq!(styles[i].colour, styles[i + 7].colour);
        assert_ne!(styles[i].dash, styles[i + 7].dash);
    }
    // Two series whose points coincide carry their markers at different points.
    let points: Vec<usize> = (0..40).collect();
    let a = marker_points(&points, 0, 8);
    let b = marker_points(&points, 2, 8);
    assert_eq!((a.len(), b.len()), (8, 8));
    assert!(a.iter().all(|p| !b.contains(p)), "{a:?} {b:?}");
    // A series of one point is its marker.
    assert_eq!(marker_points(&[(1.0, 2.0)], 5, 10), vec![(1.0, 2.0)]);
}

#[test]
fn a_diverged_series_does_not_widen_the_range_and_is_cut_at_its_edge() {
    let trained = [(1.0, 0.3), (2.0, 0.1), (3.0, -0.2)];
    let diverged = [(1.0, 0.3), (2.0, 4.0), (3.0, 19.0)];
    let range = robust_range(&[(&trained, false), (&diverged, true)]);
    assert_eq!(range, Some((-0.2, 0.3)));
    // Where every run diverged, their values are all there is.
    assert_eq!(robust_range(&[(&diverged, true)]), Some((0.3, 19.0)));
    assert_eq!(robust_range(&[(&[], false)]), None);
    // The diverged line ends where it crosses y = 1: a tenth of the way from step 1 to 2.
    let (cut, left) = clip_to(&diverged, (-1.0, 1.0));
    assert!(left);
    assert_eq!(cut.len(), 2);
    assert!(
        (cut[1].0 - (1.0 + 0.7 / 3.7)).abs() < 1e-12 && cut[1].1 == 1.0,
        "{cut:?}"
    );
    assert_eq!(clip_to(&trained, (-1.0, 1.0)), (trained.to_vec(), false));
    // A colour scale over 0..=99 and one stalled value at -12 and a NaN: 2% of 101 finite
    // values at each end lie beyond it (ranks 2 and 98 of 0..=100), so -12 does not set it.
    let mut values: Vec<f64> = (0..100).map(f64::from).collect();
    values.extend([-12.0, f64::NAN]);
    assert_eq!(quantile_range(&values, 0.02), Some((1.0, 97.0)));
    assert_eq!(quantile_range(&[f64::NAN], 0.02), None);
}

#[test]
fn tick_labels_are_integers_on_counting_axes_and_never_minus_zero() {
    assert_eq!(count_label(20.0), "20");
    assert_eq!(count_label(1.0), "1");
    assert_eq!(count_label(-0.0), "0");
    assert_eq!(count_label(2.5), "");
    // Ticks 0.1 apart need one decimal, 0.05 apart two; 20 apart none.
    assert_eq!(value_label(-1e-17, 0.8), "0");
    assert_eq!(value_label(-0.0, 0.8), "0");
    assert_eq!(value_label(0.30000000000000004, 0.8), "0.3");
    assert_eq!(value_label(-0.15, 0.4), "-0.15");
    assert_eq!(value_label(20.0, 160.0), "20");
    assert_eq!(value_label(-40.0, 160.0), "-40");
}
