//! What the binary's outputs (`--out`, `--plot`, `--heatmap`, `--save-weights`) do to what is
//! already at their paths: a device or a FIFO is written in place and stays what it was, a
//! symlink stays a link to its rewritten target, a replaced file keeps its mode, trained
//! weights survive a reader of standard output that goes away, and a signal leaves no
//! temporary file. Device nodes are made with `mknod` in a scratch directory, never the
//! system's `/dev`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{file_names as names, gradstab_cli as gradstab, s, stderr_of};

fn scratch(test: &str) -> PathBuf {
    common::scratch_dir("outputs", test)
}

/// A three-layer run on the CPU, with `extra` flags.
fn small_run(extra: &[&str]) -> Output {
    let base = [
        "run",
        "--backend",
        "cpu",
        "--depth",
        "3",
        "--width",
        "8",
        "--batch",
        "2",
        "--quiet",
    ];
    gradstab(&[&base[..], extra].concat())
}

/// Ten steps of a small training run on the CPU.
const SMALL_TRAIN: [&str; 12] = [
    "train",
    "--backend",
    "cpu",
    "--depth",
    "3",
    "--width",
    "8",
    "--samples",
    "16",
    "--steps",
    "10",
    "--quiet",
];

/// `SMALL_TRAIN` with `extra` flags.
fn small_train(extra: &[&str]) -> Output {
    gradstab(&[&SMALL_TRAIN[..], extra].concat())
}

#[cfg(unix)]
fn make_node(path: &Path, mode: libc::mode_t, major: u32, minor: u32) -> bool {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mknod only creates a file system node.
    unsafe { libc::mknod(c.as_ptr(), mode | 0o666, libc::makedev(major, minor)) == 0 }
}

#[cfg(unix)]
fn is_char_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .file_type()
        .is_char_device()
}

#[cfg(unix)]
#[test]
fn a_device_given_as_an_output_is_written_in_place_and_stays_a_device() {
    let dir = scratch("device");
    // A null device (1, 3) and a full one (1, 7) of our own, as root may make them.
    let (null, full) = (dir.join("null"), dir.join("full"));
    if !make_node(&null, libc::S_IFCHR, 1, 3) || !make_node(&full, libc::S_IFCHR, 1, 7) {
        eprintln!("SKIPPED: mknod needs root (CAP_MKNOD); as root, CI runs this");
        assert_ne!(
            unsafe { libc::geteuid() },
            0,
            "root could not make a device node"
        );
        return;
    }
    let out = small_run(&["--out", s(&null), "--format", "json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        is_char_device(&null),
        "--out replaced the device with a file"
    );
    // A device needs no .svg name to take a plot, and both outputs may share it.
    let out = small_run(&["--out", s(&null), "--plot", s(&null)]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(is_char_device(&null));
    let out = small_train(&["--plot", s(&dir.join("curves.svg")), "--out", s(&null)]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(is_char_device(&null));
    // A device that refuses the write: the error is the device's, and it stays a device.
    let out = small_run(&["--out", s(&full)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("No space left"),
        "{}",
        stderr_of(&out)
    );
    assert!(is_char_device(&full));
    assert_eq!(names(&dir), ["curves.svg", "full", "null"]);
}

#[cfg(unix)]
#[test]
fn a_fifo_given_as_an_output_is_written_through_and_stays_a_fifo() {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch("fifo");
    let fifo = dir.join("report.fifo");
    assert!(make_node(&fifo, libc::S_IFIFO, 0, 0), "mkfifo");
    // The reader opens first, without blocking, so that a run that replaced the FIFO instead
    // of writing it fails this test rather than hanging it. The report fits the pipe's buffer.
    let mut reader = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap()
    };
    let out = small_run(&["--out", s(&fifo), "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("variant,precision,layer"), "{text}");
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced");
    assert_eq!(names(&dir), ["report.fifo"]);
}

#[cfg(unix)]
#[test]
fn a_symlink_is_followed_and_a_replaced_file_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("symlink");
    let target = dir.join("report.json");
    std::fs::write(&target, "old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o604)).unwrap();
    let link = dir.join("latest.json");
    std::os::unix::fs::symlink("report.json", &link).unwrap();
    let out = small_run(&["--out", s(&link), "--format", "json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains("\"runs\""), "{text}");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o604, "the replaced file lost its mode");
    // The link and the file it names are one output, and an input's link is its file.
    let out = small_run(&["--out", s(&link), "--plot", s(&dir.join("p.svg"))]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let plot_link = dir.join("plot-link.svg");
    std::os::unix::fs::symlink("p.svg", &plot_link).unwrap();
    let out = small_run(&["--out", s(&dir.join("p.svg")), "--plot", s(&plot_link)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("one would overwrite the other"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        names(&dir),
        ["latest.json", "p.svg", "plot-link.svg", "report.json"]
    );
}

#[test]
fn outputs_that_resolve_to_one_file_are_refused_before_the_run() {
    let dir = scratch("same");
    let plain = dir.join("new.svg");
    let dotted = dir.join(".").join("new.svg");
    let out = small_train(&["--plot", s(&plain), "--heatmap", s(&dotted)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("--plot and --heatmap"),
        "{}",
        stderr_of(&out)
    );
    let out = small_train(&[
        "--save-weights",
        s(&dir.join("w.safetensors")),
        "--out",
        s(&dir.join("sub/../w.safetensors")),
    ]);
    // sub/ does not exist, so the path cannot be written at all: refused either way.
    assert!(!out.status.success());
    assert_eq!(names(&dir), Vec::<String>::new());
}

#[test]
fn an_unwritable_directory_is_refused_before_the_run() {
    // /proc takes no new files, even from root: the one directory every Linux machine has
    // that root cannot write in.
    let start = std::time::Instant::now();
    let out = gradstab(&[
        "train",
        "--backend",
        "cpu",
        "--steps",
        "100000",
        "--quiet",
        "--out",
        "/proc/gradstab-report.json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("cannot be written"),
        "{}",
        stderr_of(&out)
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[cfg(unix)]
#[test]
fn trained_weights_and_plots_survive_a_reader_that_goes_away() {
    let dir = scratch("pipe");
    let (weights, plot) = (dir.join("w.safetensors"), dir.join("loss.svg"));
    let mut child = common::cli(SMALL_TRAIN)
        .args(["--format", "csv"])
        .args(["--save-weights", s(&weights), "--plot", s(&plot)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    drop(child.stdout.take()); // `| head -0`: the reader is gone before the first line
    let out = child.wait_with_output().unwrap();
    assert!(!stderr_of(&out).contains("panicked"), "{}", stderr_of(&out));
    assert!(
        std::fs::metadata(&weights).is_ok_and(|m| m.len() > 100),
        "the trained weights were lost"
    );
    assert!(std::fs::read_to_string(&plot)
        .unwrap()
        .trim_end()
        .ends_with("</svg>"));
}

#[cfg(unix)]
#[test]
fn a_signal_ends_a_run_without_leaving_a_temporary_file() {
    let dir = scratch("signal");
    let out_path = dir.join("report.json");
    std::fs::write(&out_path, "the old report").unwrap();
    let child = common::cli([
        "train",
        "--backend",
        "cpu",
        "--depth",
        "3",
        "--width",
        "64",
        "--samples",
        "64",
        "--steps",
        "1000000",
        "--quiet",
        "--format",
        "json",
    ])
    .args(["--out", s(&out_path)])
    .stderr(Stdio::piped())
    .spawn();
    std::thread::sleep(std::time::Duration::from_millis(800));
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    // The handler ran (exit 130, not death by the signal), and left the old report alone.
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap(),
        "the old report"
    );
    assert_eq!(names(&dir), ["report.json"]);
}

#[test]
fn standard_output_takes_one_output_and_a_directory_name_is_refused_before_the_run() {
    // Without --out the report is on standard output: a model there would be mixed into it.
    let out = small_train(&["--save-weights", "-"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("the report (without --out) and --save-weights are both -"),
        "{}",
        stderr_of(&out)
    );
    let dir = scratch("slash");
    let new_dir = format!("{}/", s(&dir.join("new")));
    let out = small_run(&["--out", &new_dir]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("ends in /"), "{}", stderr_of(&out));
    assert_eq!(names(&dir), Vec::<String>::new());
}

#[test]
fn a_dash_writes_to_standard_output() {
    let out = small_run(&["--out", "-", "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("variant,precision"));
    assert!(!Path::new("-").exists(), "a file named '-' was written");
}

#[test]
fn printing_commands_report_a_full_device_instead_of_panicking() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("SKIPPED: no /dev/full on this machine");
        return;
    };
    for args in [
        &["presets"][..],
        &["devices"],
        &["demo", "--backend", "cpu"],
    ] {
        let out = common::cli(args).stdout(full.try_clone().unwrap()).output();
        let e = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{args:?}: {e}");
        assert!(e.contains("No space left on device"), "{args:?}: {e}");
    }
}
