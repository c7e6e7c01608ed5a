//! Files written whole or not at all: every output goes to a temporary file beside its
//! destination and is renamed over it only once it is complete and on disk, so an interrupted
//! run, a full disk or a failed render leaves the old file (or none), never half of a new one.
//! Destinations are checked before a run starts, so a bad path fails in milliseconds, not
//! after the work.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

fn file_error(path: &Path, problem: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// The directory a path is written in ("." for a bare file name).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks that `path` can be written: its directory exists and `path` is not a directory. The
/// file itself is not touched.
pub fn check_destination(path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(file_error(path, "an empty path"));
    }
    if path.is_dir() {
        return Err(file_error(path, "is a directory; give a file name"));
    }
    let dir = directory_of(path);
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(file_error(
            path,
            format!("{} is not a directory", dir.display()),
        )),
        Err(e) => Err(file_error(
            path,
            format!("its directory {}: {e}", dir.display()),
        )),
    }
}

/// Writes `path` through `write`, whole or not at all: into a temporary file in the same
/// directory (so the rename cannot cross file systems), flushed and synced, then renamed over
/// `path`. On any error, the writer's included, the temporary file is removed and `path` is
/// left as it was.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    check_destination(path)?;
    let dir = directory_of(path);
    let mut tmp = tempfile_in(&dir, path)?;
    let written = (|| {
        let mut out = std::io::BufWriter::new(tmp.file.as_mut().expect("open"));
        write(&mut out)?;
        out.flush()?;
        drop(out);
        tmp.file.as_ref().expect("open").sync_all()
    })();
    if let Err(e) = written {
        return Err(file_error(
            path,
            format!("not written ({e}); the file is unchanged"),
        ));
    }
    tmp.file = None;
    std::fs::rename(&tmp.path, path)
        .map_err(|e| file_error(path, format!("not written ({e}); the file is unchanged")))?;
    tmp.renamed = true;
    Ok(())
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
    }
}

/// A new file `.NAME.PID.N.tmp` beside `path`; `create_new` so two writers never share one.
fn tempfile_in(dir: &Path, path: &Path) -> Result<TempFile> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    loop {
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => {
                return Ok(TempFile {
                    path: tmp,
                    file: Some(file),
                    renamed: false,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(file_error(path, format!("cannot be written ({e})"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let dir = scratch("ok");
        let path = dir.join("plot.svg");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, |out: &mut dyn Write| out.write_all(b"<svg/>")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "<svg/>");
        assert_eq!(entries(&dir), ["plot.svg"]);
    }

    #[test]
    fn destinations_are_checked_without_touching_them() {
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
}
