//! The library's error type: every failure names what went wrong and, where there is one, what
//! to do instead.

use thiserror::Error;

pub type Result<T> = std::result::Result<T, Error>;

/// The error underneath one of ours (from wgpu, the system, or a file format's crate), kept
/// so that a caller can walk `std::error::Error::source()` to it and downcast it. Its text is
/// also in our message, which is what the command line prints.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// An I/O failure on `path`, its `std::io::Error` kept as the source.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// A problem with the file at `path` that another error value caused (a malformed
    /// archive, a write that failed): `problem` is the message, which quotes that error;
    /// `source` keeps the error itself.
    pub fn file_caused_by(
        path: &std::path::Path,
        problem: impl std::fmt::Display,
        source: impl Into<Source>,
    ) -> Error {
        Error::File {
            path: path.display().to_string(),
            problem: problem.to_string(),
            source: Some(source.into()),
        }
    }
}

#[derive(Debug, Error)]
pub enum Error {
    #[error("no GPU adapter found{detail}; install a Vulkan driver (for a software GPU on Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`)")]
    NoAdapter { detail: String },

    /// A GPU was asked for (by name, variant or backend) and there is none: the caller is
    /// told how to run on the CPU instead, in words that fit the command line and Python.
    #[error(
        "{cause}; the cpu backend (`--backend cpu`, or backend=\"cpu\") runs on the CPU instead"
    )]
    GpuRequested {
        #[source]
        cause: Box<Error>,
    },

    #[error("no adapter matches '{requested}'; available: {available}")]
    AdapterNotFound {
        requested: String,
        available: String,
    },

    #[error("adapter '{adapter}' lacks {feature}; {hint}")]
    MissingFeature {
        adapter: String,
        feature: &'static str,
        hint: &'static str,
    },

    /// wgpu's `RequestDeviceError` is the source.
    #[error("adapter '{adapter}' refused a device: {source}")]
    DeviceRequest {
        adapter: String,
        #[source]
        source: Source,
    },

    #[error("{op}: shapes do not fit: {detail}")]
    ShapeMismatch { op: &'static str, detail: String },

    #[error("{op}: a dimension is zero ({detail}); every dimension must be at least 1")]
    ZeroDimension { op: &'static str, detail: String },

    #[error(
        "{op}: a {found} tensor cannot be used with precision {precision}, which stores {expected}"
    )]
    DTypeMismatch {
        op: &'static str,
        precision: String,
        expected: String,
        found: String,
    },

    #[error("{what} needs {bytes} bytes, over the limit of {limit} bytes on '{adapter}'; use a smaller shape")]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        adapter: String,
    },

    #[error("{what} needs {groups} workgroups, more than the {limit} a folded grid holds on '{adapter}'; use a smaller shape")]
    GridTooLarge {
        what: String,
        groups: u64,
        limit: u64,
        adapter: String,
    },

    /// The source is what wgpu reported: an error caught by an error scope (`wgpu::Error`), a
    /// failed wait (`wgpu::PollError`) or a failed read-back (`wgpu::BufferAsyncError`, …).
    #[error("GPU error on '{adapter}' during {during}: {source}")]
    Gpu {
        adapter: String,
        during: String,
        #[source]
        source: Source,
    },

    #[error("invalid {what} '{value}': expected {expected}")]
    Parse {
        what: &'static str,
        value: String,
        expected: &'static str,
    },

    /// A file gradstab cannot use: malformed, of the wrong shape, or not writable. Where
    /// another error value caused it (a zip, npy or safetensors error, an I/O error while
    /// writing), that value is the source; a problem gradstab found itself has none.
    #[error("{path}: {problem}")]
    File {
        path: String,
        problem: String,
        #[source]
        source: Option<Source>,
    },

    /// The system could not read or inspect a file; the `std::io::Error` stays the source, so
    /// a caller can tell its kind (not found, permission denied…).
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    InvalidArgument(String),

    /// The caller stopped the call (a progress callback returned this: a Ctrl-C).
    #[error("interrupted")]
    Interrupted,

    /// One point of a sweep failed: which, and why.
    #[error("sweep point {index}: {source}")]
    SweepPoint {
        index: usize,
        #[source]
        source: Box<Error>,
    },

    /// A run that cannot fit in memory, refused before it allocates.
    #[error("{0}")]
    WontFit(String),
}
