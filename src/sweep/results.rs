//! A sweep's results: one JSON line per point, appended whole as each point finishes, so a
//! killed sweep loses at most the points it was running, and a restarted one skips what is
//! there. Shards write their own files (or share one: lines are appended with one write each);
//! `merge` checks that the files hold every point exactly once.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::output::{resolve, Destination};

use super::grid::SweepCommand;

/// One line of a results file: a point, how it was run, and what it found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointResult {
    /// The grid's fingerprint (`Grid::id`).
    pub sweep: String,
    pub index: usize,
    /// The points of the grid.
    pub of: usize,
    /// Each axis's value: a number where it reads as one.
    pub point: Map<String, Value>,
    pub command: SweepCommand,
    /// The command line that reproduces the point: `gradstab COMMAND FLAGS…`.
    pub flags: Vec<String>,
    /// The configuration the report gives, every default filled in.
    pub config: Value,
    pub outcome: Value,
    /// Wall seconds of the point (not part of its result: it differs from run to run).
    pub seconds: f64,
    /// The adapter (or CPU) it ran on.
    pub device: String,
    pub version: String,
}

impl PointResult {
    /// Whether two lines are the same result: all but how long it took and where (the same
    /// point gives the same numbers on one core or on all of them, on any machine).
    pub fn same_result(&self, other: &PointResult) -> bool {
        let bare = |r: &PointResult| PointResult {
            seconds: 0.0,
            device: String::new(),
            ..r.clone()
        };
        bare(self) == bare(other)
    }

    /// An axis value as JSON: a number where it reads as a finite one, true or false, else
    /// the text.
    pub fn json_value(text: &str) -> Value {
        if let Ok(i) = text.parse::<i64>() {
            return Value::from(i);
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Value::from(v),
            _ => match text {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(text.to_string()),
            },
        }
    }
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
        source: None,
    }
}

/// Parses the lines of `text`; `torn_tail` allows (and reports the length of) a last line
/// without its newline, which a killed writer leaves.
fn parse_lines(path: &Path, text: &str, torn_tail: bool) -> Result<(Vec<PointResult>, usize)> {
    let (whole, tail) = match text.rfind('\n') {
        Some(end) => text.split_at(end + 1),
        None => ("", text),
    };
    if !tail.is_empty() && !torn_tail {
        return Err(file_error(
            path,
            "its last line is unfinished (a sweep killed while writing it?): run the sweep \
             again on this file, which completes it, before merging",
        ));
    }
    let mut results = Vec::new();
    for (n, line) in whole.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let result: PointResult = serde_json::from_str(line)
            .map_err(|e| file_error(path, format!("line {}: not a sweep result ({e})", n + 1)))?;
        results.push(result);
    }
    Ok((results, tail.len()))
}

/// Every line of a finished results file (for merging and plotting).
pub fn read(path: &Path) -> Result<Vec<PointResult>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file_caused_by(path, format!("cannot be read ({e})"), e))?;
    Ok(parse_lines(path, &text, false)?.0)
}

/// Where a sweep writes its lines, and the points already there.
pub struct ResultsFile {
    path: PathBuf,
    out: Out,
    /// Indices of this sweep's points the file already holds.
    done: std::collections::BTreeSet<usize>,
}

enum Out {
    File(File),
    /// A device, a FIFO or standard output: written, never read back or replaced.
    Stream(Box<dyn Write + Send>),
}

impl ResultsFile {
    /// Opens `path` for sweep `sweep` of `of` points: a regular file is read first (its
    /// points are done; lines of another sweep are refused; an unfinished last line is cut
    /// off, with a warning), then appended to. `-`, a device or a FIFO is written only.
    pub fn open(path: &Path, sweep: &str, of: usize) -> Result<ResultsFile> {
        let stream = |out: Box<dyn Write + Send>| ResultsFile {
            path: path.to_path_buf(),
            out: Out::Stream(out),
            done: Default::default(),
        };
        let target = match resolve(path)? {
            Destination::Stdout => return Ok(stream(Box::new(std::io::stdout()))),
            Destination::Node(node) => {
                let file = OpenOptions::new().append(true).open(&node).map_err(|e| {
                    Error::file_caused_by(path, format!("cannot be opened ({e})"), e)
                })?;
                return Ok(stream(Box::new(file)));
            }
            Destination::File(target) => target,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&target)
            .map_err(|e| Error::file_caused_by(path, format!("cannot be opened ({e})"), e))?;
        // Held while reading and cutting, so a shard sharing the file cannot be midway through
        // a line that this one takes for a killed writer's (released when the file closes).
        file.lock()
            .map_err(|e| Error::file_caused_by(path, format!("cannot be locked ({e})"), e))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| Error::file_caused_by(path, format!("cannot be read ({e})"), e))?;
        let (lines, torn) = parse_lines(path, &text, true)?;
        if torn > 0 {
            log::warn!(
                "{}: its last line was unfinished (a sweep killed while writing it); cut off, \
                 and that point runs again",
                path.display()
            );
            file.set_len((text.len() - torn) as u64)
                .map_err(|e| Error::file_caused_by(path, format!("cannot be cut ({e})"), e))?;
        }
        let mut done = std::collections::BTreeSet::new();
        for line in lines {
            if line.sweep != sweep || line.of != of {
                return Err(Error::InvalidArgument(format!(
                    "{} holds points of another sweep (grid {} of {} points, this one is {sweep} \
                     of {of}): write this sweep to another file",
                    path.display(),
                    line.sweep,
                    line.of
                )));
            }
            done.insert(line.index);
        }
        file.unlock()
            .map_err(|e| Error::file_caused_by(path, format!("cannot be unlocked ({e})"), e))?;
        Ok(ResultsFile {
            path: path.to_path_buf(),
            out: Out::File(file),
            done,
        })
    }

    /// Whether point `index` is already in the file.
    pub fn has(&self, index: usize) -> bool {
        self.done.contains(&index)
    }

    /// Appends one line in one write, so lines of processes sharing the file never interleave.
    pub fn append(&mut self, result: &PointResult) -> Result<()> {
        let mut line = serde_json::to_string(result).map_err(|e| file_error(&self.path, e))?;
        line.push('\n');
        let written = match &mut self.out {
            Out::File(f) => f
                .lock()
                .and_then(|_| f.write_all(line.as_bytes()))
                .and_then(|_| f.flush())
                .and_then(|_| f.unlock()),
            Out::Stream(w) => w.write_all(line.as_bytes()).and_then(|_| w.flush()),
        };
        written.map_err(|e| Error::file_caused_by(&self.path, format!("not written ({e})"), e))?;
        self.done.insert(result.index);
        Ok(())
    }
}

/// The points of `files` sorted by index, checked to be one sweep's, each exactly once.
pub fn merge(files: &[PathBuf]) -> Result<Vec<PointResult>> {
    let mut by_index: BTreeMap<usize, Vec<(PointResult, &Path)>> = BTreeMap::new();
    let mut sweep: Option<(String, usize, &Path)> = None;
    for path in files {
        for line in read(path)? {
            match &sweep {
                None => sweep = Some((line.sweep.clone(), line.of, path)),
                Some((id, of, first)) if *id != line.sweep || *of != line.of => {
                    return Err(Error::InvalidArgument(format!(
                        "{} and {} hold different sweeps (grids {id} of {of} points and {} of {})",
                        first.display(),
                        path.display(),
                        line.sweep,
                        line.of
                    )))
                }
                _ => {}
            }
            by_index.entry(line.index).or_default().push((line, path));
        }
    }
    let Some((_, of, _)) = sweep else {
        return Err(Error::InvalidArgument(
            "merge: the files hold no points".into(),
        ));
    };
    let describe = |indices: &[usize]| {
        let shown: Vec<String> = indices.iter().take(10).map(usize::to_string).collect();
        let more = indices.len().saturating_sub(10);
        if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    let missing: Vec<usize> = (0..of).filter(|i| !by_index.contains_key(i)).collect();
    let outside: Vec<usize> = by_index.keys().copied().filter(|&i| i >= of).collect();
    let twice: Vec<(usize, Vec<&Path>)> = by_index
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(&i, v)| (i, v.iter().map(|(_, p)| *p).collect()))
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "{} of {of} points missing: {}",
            missing.len(),
            describe(&missing)
        ));
    }
    if !outside.is_empty() {
        problems.push(format!(
            "points beyond the grid's {of}: {}",
            describe(&outside)
        ));
    }
    if let Some((first, in_files)) = twice.first() {
        let names: Vec<String> = in_files.iter().map(|p| p.display().to_string()).collect();
        let indices: Vec<usize> = twice.iter().map(|(i, _)| *i).collect();
        problems.push(format!(
            "{} points present more than once: {} (point {first} in {})",
            twice.len(),
            describe(&indices),
            names.join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "merge: {}",
            problems.join("; ")
        )));
    }
    Ok(by_index.into_values().map(|mut v| v.remove(0).0).collect())
}
