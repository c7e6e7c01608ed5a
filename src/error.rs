//! The library's error type: every failure names what went wrong and, where there is one, what
//! to do instead.

use thiserror::Error;

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O failure on `path`, its `std::io::Error` kept as the source.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            source,
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

    #[error("adapter '{adapter}' refused a device: {reason}")]
    DeviceRequest { adapter: String, reason: String },

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

    #[error("GPU error on '{adapter}' during {during}: {message}")]
    Gpu {
        adapter: String,
        during: String,
        message: String,
    },

    #[error("invalid {what} '{value}': expected {expected}")]
    Parse {
        what: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error("{path}: {problem}")]
    File { path: String, problem: String },

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

    /// A run that cannot fit in memory, refused before it allocates.
    #[error("{0}")]
    WontFit(String),
}
