//! Files written whole or not at all, and nothing written over what is not a file.
//!
//! A destination is written as it is:
//! - a regular file (or a name not yet taken) through a temporary file beside it, flushed,
//!   synced and renamed over it only once complete, keeping the old file's mode (and owner,
//!   where permitted); an interrupted run, a full disk or a failed render leaves the old file
//!   (or none), never half of a new one;
//! - a symlink is followed to its target, which is written as above: the link stays a link;
//! - anything else (a character device such as `/dev/null`, a FIFO, `/dev/stdout`) is opened
//!   and written directly, never replaced: renaming over `/dev/null` as root would replace the
//!   machine's device with a regular file;
//! - `-` is standard output.
//!
//! Destinations are checked before a run starts ([`check_outputs`]), so a bad path fails in
//! milliseconds, not after the work. Temporary files still open when a signal ends the process
//! are removed by [`remove_unfinished`], which the binary calls from its signal handler.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

fn file_error(path: &Path, problem: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
        source: None,
    }
}

/// What a destination path names once symlinks are followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// `-`: standard output.
    Stdout,
    /// A regular file, or a name not yet taken: written through a temporary file and a rename.
    File(PathBuf),
    /// An existing node that is not a regular file (a device, a FIFO, a socket): written in
    /// place, never replaced.
    Node(PathBuf),
}

/// How many symlinks may be followed before a path is taken to loop (Linux's own limit).
const MAX_SYMLINKS: usize = 40;

/// The longest file name most file systems take, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// Follows `path` through symlinks (a dangling link names the file it would create) and says
/// what it names.
pub fn resolve(path: &Path) -> Result<Destination> {
    if path.as_os_str() == "-" {
        return Ok(Destination::Stdout);
    }
    if path.as_os_str().is_empty() {
        return Err(file_error(path, "an empty path"));
    }
    // `new/` names a directory that does not exist yet; the rename would fail after the run.
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Err(file_error(path, "ends in /; give a file name"));
    }
    let name_bytes = path.file_name().map_or(0, |n| n.len());
    if name_bytes > MAX_NAME_BYTES {
        return Err(file_error(
            path,
            format!(
                "a file name of {name_bytes} bytes; file systems take at most {MAX_NAME_BYTES}"
            ),
        ));
    }
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match std::fs::symlink_metadata(&current) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Destination::File(current))
            }
            Err(e) => return Err(Error::io(path, e)),
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&current).map_err(|e| Error::io(path, e))?;
                current = directory_of(&current).join(target);
            }
            Ok(m) if m.is_dir() => {
                return Err(file_error(path, "is a directory; give a file name"))
            }
            Ok(m) if m.is_file() => return Ok(Destination::File(current)),
            Ok(_) => return Ok(Destination::Node(current)),
        }
    }
    Err(file_error(
        path,
        format!("more than {MAX_SYMLINKS} symlinks to follow (a loop?)"),
    ))
}

/// The directory a path is written in ("." for a bare file name).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A path as the file system resolves it, also for a file that does not exist yet (its
/// directory resolved, its name kept), so that `new.svg` and `./new.svg` compare equal.
pub fn resolved_path(path: &Path) -> Option<PathBuf> {
    let target = match resolve(path).ok()? {
        Destination::Stdout => return None,
        Destination::File(p) | Destination::Node(p) => p,
    };
    if let Ok(p) = target.canonicalize() {
        return Some(p);
    }
    let dir = directory_of(&target).canonicalize().ok()?;
    Some(dir.join(target.file_name()?))
}

/// Checks that `path` can be written, touching nothing that is there: it is not a directory,
/// its name is not too long, and the directory of a file exists and takes a new file (tried by
/// creating and removing a temporary one, which also catches a read-only file system).
pub fn check_destination(path: &Path) -> Result<()> {
    let target = match resolve(path)? {
        Destination::Stdout | Destination::Node(_) => return Ok(()),
        Destination::File(target) => target,
    };
    let dir = directory_of(&target);
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(file_error(
                path,
                format!("{} is not a directory", dir.display()),
            ))
        }
        Err(e) => {
            return Err(Error::file_caused_by(
                path,
                format!("its directory {}: {e}", dir.display()),
                e,
            ))
        }
    }
    TempFile::create_in(&dir, path).map(drop)
}

/// Checks every output of a command before it runs: each can be written, has the extension
/// its writer produces, and no two of them, nor an output and an input, are one file once
/// paths and symlinks are resolved. `inputs` and `outputs` are `(flag, path)`; `extension`
/// gives what a flag's file must end in, where it matters.
pub fn check_outputs(
    inputs: &[(&str, &Path)],
    outputs: &[(&str, &Path)],
    extension: impl Fn(&str) -> Option<&'static str>,
) -> Result<()> {
    let usage = |m: String| Err(Error::InvalidArgument(m));
    let same = |a: &Path, b: &Path| {
        a == b || matches!((resolved_path(a), resolved_path(b)), (Some(x), Some(y)) if x == y)
    };
    for (i, &(flag, path)) in outputs.iter().enumerate() {
        let destination = resolve(path)?;
        if let (Some(ext), Destination::File(_)) = (extension(flag), &destination) {
            let named = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case(ext));
            if !named {
                return usage(format!(
                    "{flag} {}: give a file name ending in .{ext}",
                    path.display()
                ));
            }
        }
        check_destination(path)?;
        match destination {
            // Two writers of one device (`--out /dev/null --plot /dev/null`) harm nothing.
            Destination::Node(_) => continue,
            // Two on standard output would interleave into something neither reader reads.
            Destination::Stdout => {
                if let Some((other, _)) = outputs[..i].iter().find(|(_, p)| p.as_os_str() == "-") {
                    return usage(format!(
                        "{other} and {flag} are both - (standard output); give one a file"
                    ));
                }
                continue;
            }
            Destination::File(_) => {}
        }
        if let Some((input, _)) = inputs.iter().find(|(_, p)| same(p, path)) {
            return usage(format!(
                "{flag} {} is the file of {input}; it would be overwritten",
                path.display()
            ));
        }
        if let Some((other, _)) = outputs[..i].iter().find(|(_, p)| same(p, path)) {
            return usage(format!(
                "{other} and {flag} are both {}; one would overwrite the other",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Writes `path` through `write`, as its kind asks (see the module documentation): a file
/// whole or not at all, a device or FIFO in place, `-` to standard output. On any error, the
/// writer's included, a file is left as it was and no temporary file remains.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let not_written =
        |e: std::io::Error| Error::file_caused_by(path, format!("not written ({e})"), e);
    let target = match resolve(path)? {
        Destination::Stdout => {
            let mut out = std::io::stdout().lock();
            return write(&mut out)
                .and_then(|()| out.flush())
                .map_err(not_written);
        }
        Destination::Node(node) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&node)
                .map_err(not_written)?;
            let mut out = std::io::BufWriter::new(file);
            return write(&mut out)
                .and_then(|()| out.flush())
                .map_err(not_written);
        }
        Destination::File(target) => target,
    };
    check_destination(path)?;
    let mut tmp = TempFile::create_in(&directory_of(&target), path)?;
    let written = (|| {
        let file = tmp.file.as_mut().expect("open until renamed");
        let mut out = std::io::BufWriter::new(&mut *file);
        write(&mut out)?;
        out.flush()?;
        drop(out);
        keep_mode_and_owner(&target, file)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        return Err(Error::file_caused_by(
            path,
            format!("not written ({e}); the file is unchanged"),
            e,
        ));
    }
    tmp.file = None;
    std::fs::rename(&tmp.path, &target).map_err(|e| {
        Error::file_caused_by(path, format!("not written ({e}); the file is unchanged"), e)
    })?;
    tmp.renamed = true;
    Ok(())
}

/// Gives the new file the mode of the file it replaces, and its owner where the process may
/// (root may; another user gets EPERM, which leaves the new file theirs, as `cp` does).
fn keep_mode_and_owner(target: &Path, file: &std::fs::File) -> std::io::Result<()> {
    let Ok(old) = std::fs::metadata(target) else {
        return Ok(());
    };
    // The owner first: a change of owner clears the setuid and setgid bits of the mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Err(e) = std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid())) {
            if e.kind() != std::io::ErrorKind::PermissionDenied {
                return Err(e);
            }
        }
    }
    file.set_permissions(old.permissions())
}

/// Temporary files not yet renamed or removed, for [`remove_unfinished`].
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The registry, also after a panic elsewhere poisoned it: a list of paths stays valid.
fn unfinished() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    UNFINISHED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes every temporary file a write has open, and returns the registry still locked, so
/// that no write can create another until the caller lets it go. For a signal handler, which
/// then ends the process holding it: the destinations keep their old contents.
pub fn remove_unfinished() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    let mut paths = unfinished();
    for path in paths.drain(..) {
        let _ = std::fs::remove_file(path);
    }
    paths
}

fn forget_unfinished(path: &Path) {
    unfinished().retain(|p| p != path);
}

/// A temporary file that removes itself unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    renamed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            self.file = None;
            let _ = std::fs::remove_file(&self.path);
        }
        forget_unfinished(&self.path);
    }
}

impl TempFile {
    /// A new file `.gradstab-PID-N.tmp` in `dir`: short whatever the destination's name (a
    /// 250-byte name stays writable), hidden, and `create_new` so two writers never share one.
    fn create_in(dir: &Path, destination: &Path) -> Result<TempFile> {
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        loop {
            let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.join(format!(".gradstab-{}-{n}.tmp", std::process::id()));
            // Created and registered under the lock: a signal's handler, which takes it too,
            // sees the file either not yet made or registered, and never removes a name this
            // process did not create.
            let mut paths = unfinished();
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    paths.push(path.clone());
                    return Ok(TempFile {
                        path,
                        file: Some(file),
                        renamed: false,
                    });
                }
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::AlreadyExists {
                        return Err(Error::file_caused_by(
                            destination,
                            format!("cannot be written ({e})"),
                            e,
                        ));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `remove_unfinished` removes every write's temporary file, so these tests take turns.
    static TURN: Mutex<()> = Mutex::new(());

    fn scratch(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gradstab-output-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_writer_that_fails_halfway_leaves_the_old_file_and_no_temporary() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        // What a full disk or an interrupted run does, made deterministic: the writer gets
        // half of the new content out, then fails.
        let dir = scratch("fails");
        let path = dir.join("report.json");
        std::fs::write(&path, "the old, complete report").unwrap();
        let result = write_atomically(&path, |out: &mut dyn Write| {
            out.write_all(b"{\"half\": ")?;
            Err(std::io::Error::other("no space left on device"))
        });
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("no space left") && err.contains("unchanged"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "the old, complete report"
        );
        assert_eq!(entries(&dir), ["report.json"]);
    }

    #[test]
    fn a_complete_write_replaces_the_file_and_leaves_nothing_else() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let dir = scratch("ok");
        let path = dir.join("plot.svg");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, |out: &mut dyn Write| out.write_all(b"<svg/>")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "<svg/>");
        assert_eq!(entries(&dir), ["plot.svg"]);
    }

    #[test]
    fn destinations_are_checked_without_touching_them() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let dir = scratch("check");
        assert!(check_destination(&dir.join("new.csv")).is_ok());
        let err = check_destination(&dir).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let err = check_destination(&dir.join("missing/new.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("its directory"), "{err}");
        assert!(check_destination(Path::new("")).is_err());
        assert_eq!(entries(&dir), Vec::<String>::new());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_followed_and_stays_a_link() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let dir = scratch("symlink");
        let target = dir.join("real.json");
        std::fs::write(&target, "old").unwrap();
        let link = dir.join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        write_atomically(&link, |out: &mut dyn Write| out.write_all(b"new")).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        // A dangling link names the file it creates.
        let dangling = dir.join("dangling.json");
        std::os::unix::fs::symlink("created.json", &dangling).unwrap();
        write_atomically(&dangling, |out: &mut dyn Write| out.write_all(b"made")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("created.json")).unwrap(),
            "made"
        );
        assert_eq!(
            entries(&dir),
            ["created.json", "dangling.json", "link.json", "real.json"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_replaced_file_keeps_its_mode() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("mode");
        let path = dir.join("shared.csv");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, |out: &mut dyn Write| out.write_all(b"new")).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn a_name_of_250_bytes_is_written_and_one_of_256_refused_before_any_work() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let dir = scratch("long");
        let long = dir.join(format!("{}.json", "n".repeat(245)));
        write_atomically(&long, |out: &mut dyn Write| out.write_all(b"{}")).unwrap();
        assert_eq!(std::fs::read_to_string(&long).unwrap(), "{}");
        let too_long = dir.join(format!("{}.json", "n".repeat(251)));
        let err = check_destination(&too_long).unwrap_err().to_string();
        assert!(err.contains("256 bytes"), "{err}");
    }

    #[test]
    fn unfinished_temporaries_are_removed_on_request() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let dir = scratch("signal");
        let tmp = TempFile::create_in(&dir, &dir.join("x.json")).unwrap();
        assert_eq!(entries(&dir).len(), 1);
        // What the signal handler does while a write is under way.
        drop(remove_unfinished());
        assert_eq!(entries(&dir), Vec::<String>::new());
        drop(tmp);
    }

    #[test]
    fn outputs_that_are_one_file_once_resolved_are_refused() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let dir = scratch("same");
        let a = dir.join("new.svg");
        let b = dir.join(".").join("new.svg");
        let err = check_outputs(&[], &[("--plot", &a), ("--heatmap", &b)], |_| Some("svg"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--plot and --heatmap"), "{err}");
        let err = check_outputs(&[("--data", &a)], &[("--out", &b)], |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("file of --data"), "{err}");
        let err = check_outputs(&[], &[("--plot", &dir.join("p.png"))], |_| Some("svg"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(".svg"), "{err}");
        let dash = Path::new("-");
        let err = check_outputs(&[], &[("--out", dash), ("--save-weights", dash)], |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("both - (standard output)"), "{err}");
    }
}
