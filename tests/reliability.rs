//! What a new user's mistakes and a hostile environment do to the `gradstab` binary: no panic,
//! no hang, no silent wrong answer, no half-written file. Each test is one kind of input: a
//! flag, a crafted file, an environment variable, a closed pipe.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::gradstab_cli as gradstab;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure the user can read: a non-zero exit and one line on stderr, never a panic.
fn assert_refused(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit status; stderr: {err}");
    assert!(!err.contains("panicked"), "a panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "'{needle}' missing from: {err}");
}

#[test]
fn values_the_parser_accepts_but_no_run_can_hold_are_refused_without_a_panic() {
    let cases: &[(&[&str], i32, &str)] = &[
        // depth + 1 wrapped around.
        (&["run", "--depth", "18446744073709551615"], 2, "--depth"),
        // A uniform range wider than f64 holds, and draws that would all be inf in f32.
        (&["run", "--init", "uniform:1e308"], 2, "3.4e38"),
        (&["run", "--input", "uniform:1e308"], 2, "3.4e38"),
        (&["run", "--init", "xavier_normal:1e300"], 2, "3.4e38"),
        (&["run", "--max-memory", "lots"], 2, "--max-memory"),
        (&["run", "--bias-std", "1e308"], 2, "drawn as f32"),
    ];
    for (args, code, needle) in cases {
        let out = gradstab(args);
        assert_refused(&out, *code, needle);
    }
}

#[test]
fn a_run_that_cannot_fit_is_refused_before_it_allocates() {
    // Terabytes on the CPU backend, gigabytes against a small budget, a million layers: each
    // is refused with the estimate and the limit, in far less time than any of it would take
    // to allocate (the allocator would abort, or the OOM killer end the machine's session).
    let cases: &[&[&str]] = &[
        &[
            "run",
            "--backend",
            "cpu",
            "--depth",
            "100",
            "--width",
            "65536",
            "--batch",
            "65536",
        ],
        &[
            "run",
            "--backend",
            "cpu",
            "--depth",
            "1000000",
            "--width",
            "4096",
        ],
        &[
            "run",
            "--backend",
            "cpu",
            "--depth",
            "20",
            "--width",
            "1024",
            "--max-memory",
            "1M",
        ],
    ];
    for args in cases {
        let start = Instant::now();
        let out = gradstab(args);
        assert_refused(&out, 1, "this run needs about");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{args:?} took {:?} to refuse",
            start.elapsed()
        );
    }
    let out = gradstab(cases[2]);
    assert!(
        stderr(&out).contains("1.0 MiB budget of --max-memory"),
        "{}",
        stderr(&out)
    );
    // On a GPU, a tensor larger than one buffer is refused before the first layer, not after
    // a minute of work.
    if common::gpu("memory refusal").is_some() {
        let start = Instant::now();
        let args = [
            "run",
            "--backend",
            "gpu",
            "--depth",
            "100",
            "--width",
            "65536",
            "--batch",
            "65536",
        ];
        let out = gradstab(&args);
        assert_refused(&out, 1, "that one buffer of this backend can hold");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }
    // Within the budget, the same run goes ahead.
    let out = gradstab(&[
        "run",
        "--backend",
        "cpu",
        "--depth",
        "3",
        "--width",
        "16",
        "--batch",
        "4",
        "--max-memory",
        "64M",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_closed_pipe_ends_every_printing_command_quietly() {
    // `gradstab presets | head -1`: the reader leaves first. Every command that prints must
    // end without a panic or an error message, as other Unix tools do.
    let dir = temp_dir("pipe");
    let npy = dir.join("x.npy").to_str().unwrap().to_string();
    std::fs::write(
        &npy,
        common::npy_bytes("<f4", &[3], &f32_bytes(&[1.0, 2.0, 3.0])),
    )
    .unwrap();
    let commands: &[&[&str]] = &[
        &["presets"],
        &["devices"],
        &["devices", "--format", "json"],
        &[&SMALL_CPU_RUN[..], &["--format", "csv", "--quiet"]].concat(),
        &["demo", "--backend", "cpu"],
        &["bench", "--backend", "cpu", "--quick"],
        &["stats", "--backend", "cpu", "--format", "json", &npy],
        &["stats", "--backend", "cpu", "--format", "csv", &npy],
    ];
    for args in commands {
        let mut child = common::cli(*args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        drop(child.stdout.take()); // the reader is gone before the first line
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(
            !err.contains("panicked") && !err.contains("error"),
            "{args:?}: {err}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert!(
                out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
                "{args:?} ended with {:?}: {err}",
                out.status
            );
        }
    }
}

/// An environment where wgpu finds no adapter: a backend this machine does not have.
fn no_adapter_env() -> (&'static str, &'static str) {
    let backend = if cfg!(target_os = "macos") {
        "dx12"
    } else {
        "metal"
    };
    ("WGPU_BACKEND", backend)
}

#[test]
fn an_adapter_variant_or_backend_asked_for_is_honoured_or_refused_never_replaced() {
    let small = ["--depth", "2", "--width", "4", "--batch", "2", "--quiet"];
    fn with<'a>(small: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [&["run"][..], small, extra].concat()
    }
    let run = |extra: &[&'static str]| with(&small, extra);
    // Named and missing: an error that lists what exists, by flag or environment.
    let out = gradstab(&run(&["--adapter", "nonsense-adapter"]));
    let (code, err) = (out.status.code(), stderr(&out));
    if common::gpu("explicit adapter").is_some() {
        assert_refused(
            &out,
            1,
            "no adapter matches 'nonsense-adapter'; available: 0: ",
        );
        let out = common::cli(["demo"])
            .env("GRADSTAB_ADAPTER", "nonsense-adapter")
            .output();
        assert_refused(&out, 1, "no adapter matches 'nonsense-adapter'");
        let out = gradstab(&["stats", "--adapter", "99", "Cargo.toml"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        // Two adapters of one name on two backends: each is reachable by its number.
        let out = gradstab(&["probe", "--adapter", "0"]);
        assert!(out.status.success(), "{}", stderr(&out));
    } else {
        assert_eq!(code, Some(1), "{err}");
    }
    // A value that cannot be read is a usage error (2), by flag or environment alike.
    let out = common::cli(run(&[]))
        .env("GRADSTAB_MATMUL_VARIANT", "bogus")
        .output();
    assert_refused(&out, 2, "tile64-shared, tile32-shared or tile64-direct");
    // No adapter at all: --backend gpu asked for one, so it is an error that says why,
    // including the WGPU_BACKEND that narrowed the search.
    let out = common::cli(run(&["--backend", "gpu"]))
        .envs(&[no_adapter_env()])
        .output();
    assert_refused(&out, 1, "no GPU adapter found (WGPU_BACKEND is");
    assert!(stderr(&out)
        .contains("the cpu backend (`--backend cpu`, or backend=\"cpu\") runs on the CPU instead"));
    // Nothing asked for: the fallback, with its notice, and the run goes ahead.
    let out = common::cli(run(&[])).envs(&[no_adapter_env()]).output();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("running on the CPU backend instead"));
}

/// `gradstab stats` of `path` on the CPU backend in `format`.
fn stats_on_cpu(path: &std::path::Path, format: &str) -> Output {
    let path = path.to_str().unwrap();
    gradstab(&["stats", "--backend", "cpu", "--format", format, path])
}

fn temp_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gradstab-reliability-{test}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn crafted_files_are_refused_with_what_is_wrong_never_read_without_bound() {
    let dir = temp_dir("files");
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let structured = {
        // A record dtype, which the shared helper cannot write.
        let mut header =
            "{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, 'shape': (1,), }"
                .to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((header.len() as u16).to_le_bytes());
        b.extend(header.as_bytes());
        b.extend([0u8; 8]);
        b
    };
    let cases: Vec<(String, &str)> = vec![
        // The shape's product overflows: no "no elements", no statistics of 2 values.
        (
            write(
                "overflow.npy",
                common::npy_bytes("<f4", &[1 << 32, 1 << 32, 16], &f32_bytes(&[1.0, 2.0])),
            ),
            "has more elements than any file holds",
        ),
        // More data than the header declares: not truncated without a word.
        (
            write(
                "extra.npy",
                common::npy_bytes("<f4", &[2], &f32_bytes(&[1.0, 2.0, 3.0])),
            ),
            "the data hold 12 bytes, but the header's shape [2] of <f4 declares 8",
        ),
        // Fewer.
        (
            write(
                "short.npy",
                common::npy_bytes("<f4", &[4], &f32_bytes(&[1.0, 2.0])),
            ),
            "truncated",
        ),
        // A 16-byte float is not "f16".
        (
            write("f128.npy", common::npy_bytes("<f16", &[1], &[0u8; 16])),
            "unsupported dtype '<f16'",
        ),
        (
            write("record.npy", structured),
            "a structured (record) dtype",
        ),
        ("/dev/zero".to_string(), "not a regular file"),
        (dir.to_str().unwrap().to_string(), "a directory"),
    ];
    for (path, needle) in &cases {
        let start = Instant::now();
        let out = gradstab(&["stats", "--backend", "cpu", path]);
        assert_refused(&out, 1, needle);
        assert!(
            !stderr(&out).contains("Record("),
            "a Debug dump: {}",
            stderr(&out)
        );
        assert!(start.elapsed() < Duration::from_secs(10), "{path}");
    }
    #[cfg(unix)]
    {
        // A FIFO with no writer would block the reader for ever.
        let fifo = dir.join("fifo.npy");
        let made = Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let mut child = common::cli(["stats", "--backend", "cpu", fifo.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn();
            let start = Instant::now();
            while child.try_wait().unwrap().is_none() {
                if start.elapsed() > Duration::from_secs(20) {
                    child.kill().unwrap();
                    panic!("stats on a FIFO hangs");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let out = child.wait_with_output().unwrap();
            assert_refused(&out, 1, "not a regular file");
        }
    }
}

#[test]
fn statistics_without_finite_values_say_so_instead_of_nan() {
    let dir = temp_dir("allinf");
    let path = dir.join("allinf.npy");
    let inf = f32::INFINITY;
    std::fs::write(
        &path,
        common::npy_bytes("<f4", &[3], &f32_bytes(&[inf, -inf, inf])),
    )
    .unwrap();
    let out = gradstab(&["stats", "--backend", "cpu", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    // The tensor's row and notes (the legend below them, which may name NaN, is left out).
    let rows: String = table
        .lines()
        .filter(|l| !l.starts_with("mean, std"))
        .collect();
    assert!(!rows.contains("NaN"), "{table}");
    assert!(table.contains("no finite values"), "{table}");
    let out = stats_on_cpu(&path, "csv");
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    // No moments or extrema, but a norm: ‖x‖₂ counts the infinities.
    assert!(
        !csv.contains("NaN") && csv.contains("allinf,3,f32,3,,,,,,inf,0,2,1,"),
        "{csv}"
    );
}

#[test]
fn names_with_control_characters_are_printed_escaped() {
    // A tensor named with a newline and a terminal escape code cannot rewrite the report.
    let dir = temp_dir("names");
    let path = dir.join("names.safetensors");
    let name = "evil\nname\u{1b}[31m";
    let data = f32_bytes(&[1.0, 2.0]);
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap();
    std::fs::write(
        &path,
        safetensors::serialize(vec![(name.to_string(), view)], None).unwrap(),
    )
    .unwrap();
    let out = gradstab(&["stats", "--backend", "cpu", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !table.contains('\u{1b}') && table.contains("evil\\nname\\u{1b}[31m"),
        "{table}"
    );
    // CSV escapes them too; JSON, whose strings escape every control character, carries the
    // name exactly as the file has it.
    let csv = stats_on_cpu(&path, "csv");
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    assert!(
        !csv.contains('\u{1b}') && csv.contains("evil\\nname"),
        "{csv}"
    );
    let json = stats_on_cpu(&path, "json");
    assert!(
        !json.stdout.contains(&0x1b),
        "a raw escape code in the JSON"
    );
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let names: Vec<&str> = json["tensors"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, [name], "{json}");
}

/// A three-layer run on the CPU backend.
const SMALL_CPU_RUN: [&str; 9] = [
    "run",
    "--backend",
    "cpu",
    "--depth",
    "3",
    "--width",
    "8",
    "--batch",
    "2",
];

/// `SMALL_CPU_RUN` without a progress bar, with `extra` flags.
fn small_cpu_run(extra: &[&str]) -> Output {
    gradstab(&[&SMALL_CPU_RUN[..], &["--quiet"], extra].concat())
}

#[test]
fn destinations_are_checked_before_the_run_and_written_whole() {
    let dir = temp_dir("outputs");
    let at = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let with = small_cpu_run;
    let (png, both, missing) = (at("x.png"), at("both.svg"), at("no/such/dir/out.csv"));
    let start = Instant::now();
    assert_refused(
        &with(&["--plot", &png]),
        2,
        "give a file name ending in .svg",
    );
    assert_refused(
        &with(&["--out", &both, "--plot", &both]),
        2,
        "one would overwrite the other",
    );
    // A path that cannot be written is a file problem (1), as a missing input is.
    assert_refused(&with(&["--out", &missing]), 1, "its directory");
    assert_refused(
        &with(&["--out", dir.to_str().unwrap()]),
        1,
        "is a directory",
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    // A good run writes both whole, and nothing else is left in the directory.
    let (csv, svg) = (at("out.csv"), at("plot.svg"));
    let out = with(&["--format", "csv", "--out", &csv, "--plot", &svg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_to_string(&csv).unwrap().lines().count() > 3);
    assert!(std::fs::read_to_string(&svg)
        .unwrap()
        .trim_end()
        .ends_with("</svg>"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["out.csv", "plot.svg"]);
}

#[test]
fn requests_that_cannot_mean_what_they_say_are_refused() {
    let with = small_cpu_run;
    // Two identical, unlabelled columns.
    assert_refused(&with(&["--precision", "f32,f32"]), 2, "each at most once");
    // A limit that rounds to 0 would zero every gradient without a word; in f16 that happens
    // far above f32's limit, and the f32 run before it does not start either.
    // Usage errors (exit 2), as every value refused in the type it becomes.
    assert_refused(&with(&["--clip-value", "1e-320"]), 2, "rounds to 0 in f32");
    assert_refused(
        &with(&["--clip-norm", "1e-320"]),
        2,
        "--clip-norm 1e-320: rounds to 0",
    );
    let out = with(&["--clip-value", "1e-9", "--precision", "f32,f16"]);
    assert_refused(&out, 2, "rounds to 0 in f16");
    assert!(out.stdout.is_empty(), "the f32 run went ahead");
    assert!(with(&["--clip-value", "1e-9"]).status.success());
}

#[test]
fn usage_errors_name_the_flag_and_what_it_accepts() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--format", "bogus"],
            "[possible values: table, json, csv]",
        ),
        (
            &["stats", "--format", "xml", "x.npy"],
            "[possible values: table, json, csv]",
        ),
        (
            &["run", "--backend", "tpu"],
            "[possible values: auto, gpu, cpu]",
        ),
        (
            &["bench", "--backend", "tpu"],
            "[possible values: auto, gpu, cpu]",
        ),
        (&["run", "--width", "-3"], "'--width <WIDTH>'"),
        (
            &["run", "--batch", "-3"],
            "invalid value '-3' for '--batch <BATCH>'",
        ),
        (&["run", "--seed", "-1"], "'--seed <SEED>'"),
        (&["demo", "--seed", "x"], "'--seed <SEED>'"),
        (
            &["run", "--init", "kaiming_normal:fan_in:2:3"],
            "kaiming_normal[:fan_in|fan_out][:GAIN|auto]",
        ),
    ];
    for (args, needle) in cases {
        assert_refused(&gradstab(args), 2, needle);
    }
    // probe takes no --backend, so with no adapter it must not suggest one.
    let out = common::cli(["probe"]).envs(&[no_adapter_env()]).output();
    assert_refused(&out, 1, "no GPU adapter found");
    assert!(!stderr(&out).contains("--backend cpu"), "{}", stderr(&out));
}
