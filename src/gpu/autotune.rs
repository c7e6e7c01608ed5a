//! Choosing the fastest matmul variant for a device: every variant gives the same bits, so the
//! choice is only about speed. At first use per precision the device times each variant on a
//! square product and keeps the fastest, in memory and in a small JSON cache on disk keyed by
//! adapter, driver and gradstab version. A cache that cannot be read, or that an older version
//! wrote, is ignored with a warning and written anew; it is never trusted blindly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::Gpu;
use crate::backend::{Backend, MatmulOp};
use crate::error::Result;
use crate::ops::matmul::gpu::matmul_with;
use crate::ops::matmul::MatmulVariant;
use crate::precision::Precision;
use crate::tensor::HostTensor;

/// Forces a variant (`tile64-shared`, `tile32-shared`, `tile64-direct`).
pub const VARIANT_ENV: &str = "GRADSTAB_MATMUL_VARIANT";
/// Where the autotune cache lives (default: `$XDG_CACHE_HOME/gradstab` or `~/.cache/gradstab`).
pub const CACHE_DIR_ENV: &str = "GRADSTAB_CACHE_DIR";
const CACHE_FORMAT: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct CacheFile {
    format: u32,
    gradstab: String,
    /// adapter key → precision → variant name.
    adapters: BTreeMap<String, BTreeMap<String, String>>,
}

/// The cache file of this machine, if a directory for it can be named.
pub fn default_cache_path() -> Option<PathBuf> {
    let dir = std::env::var_os(CACHE_DIR_ENV)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("gradstab")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("gradstab"))
        })?;
    Some(dir.join("autotune.json"))
}

/// Reads the cache: `Ok(None)` when there is none, `Err(why)` when it cannot be trusted.
fn read_cache(path: &Path) -> std::result::Result<Option<CacheFile>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("unreadable ({e})")),
    };
    let file: CacheFile = serde_json::from_str(&text).map_err(|e| format!("corrupt ({e})"))?;
    if file.format != CACHE_FORMAT || file.gradstab != env!("CARGO_PKG_VERSION") {
        return Err(format!(
            "stale (written by gradstab {} in format {})",
            file.gradstab, file.format
        ));
    }
    Ok(Some(file))
}

/// One timing of the autotune.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VariantTiming {
    pub variant: MatmulVariant,
    pub seconds: f64,
    pub gflops: f64,
}

impl Gpu {
    fn cache_key(&self) -> String {
        let i = &self.info;
        format!(
            "{} | {:?} | {} {}",
            i.name, i.backend, i.driver, i.driver_info
        )
    }

    fn warn(&self, message: String) {
        eprintln!("gradstab: warning: {message}");
        self.tuning
            .warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }

    /// Warnings the autotune cache gave so far (also printed on stderr).
    pub fn autotune_warnings(&self) -> Vec<String> {
        self.tuning
            .warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The variant matmul uses in `precision`: the forced one, else the one tuned for this
    /// device (from memory, the disk cache, or a fresh tuning run).
    pub fn matmul_variant(&self, precision: Precision) -> Result<MatmulVariant> {
        if let Some(v) = self.tuning.forced {
            return Ok(v);
        }
        if let Some(v) = self
            .tuning
            .chosen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&precision)
        {
            return Ok(*v);
        }
        let key = self.cache_key();
        let mut cached: Option<CacheFile> = None;
        if let Some(path) = &self.tuning.cache_path {
            match read_cache(path) {
                Ok(file) => cached = file,
                Err(why) => self.warn(format!(
                    "ignoring the autotune cache {}: {why}; tuning again",
                    path.display()
                )),
            }
        }
        let from_cache = cached
            .as_ref()
            .and_then(|f| f.adapters.get(&key))
            .and_then(|m| m.get(precision.name()));
        let variant = match from_cache.map(|name| name.parse::<MatmulVariant>()) {
            Some(Ok(v)) => v,
            other => {
                if let Some(Err(_)) = other {
                    self.warn(format!(
                        "the autotune cache names an unknown matmul variant '{}'; tuning again",
                        from_cache.map(String::as_str).unwrap_or("")
                    ));
                }
                let (best, _) = self.autotune(precision)?;
                if let Some(path) = &self.tuning.cache_path {
                    let mut file = cached.unwrap_or_default();
                    file.format = CACHE_FORMAT;
                    file.gradstab = env!("CARGO_PKG_VERSION").to_string();
                    file.adapters
                        .entry(key)
                        .or_default()
                        .insert(precision.name().to_string(), best.name().to_string());
                    if let Err(e) = write_cache(path, &file) {
                        self.warn(format!(
                            "could not write the autotune cache {}: {e}",
                            path.display()
                        ));
                    }
                }
                best
            }
        };
        self.tuning
            .chosen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(precision, variant);
        Ok(variant)
    }

    /// Times every variant on a square product (256 on a CPU-type adapter, 1024 on a GPU) and
    /// returns the fastest with all timings (the best of three runs after a warm-up each).
    pub fn autotune(&self, precision: Precision) -> Result<(MatmulVariant, Vec<VariantTiming>)> {
        if precision.needs_shader_f16() {
            self.require_f16()?;
        }
        let n = if self.info.device_type == wgpu::DeviceType::Cpu {
            256
        } else {
            1024
        };
        let values: Vec<f32> = (0..n * n)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let host = HostTensor::from_f32_as(precision.storage(), n, n, &values)?;
        let (a, b) = (self.upload(&host)?, self.upload(&host)?);
        let mut timings = Vec::new();
        for variant in MatmulVariant::ALL {
            let mut best = f64::INFINITY;
            for run in 0..4 {
                let start = Instant::now();
                let c = matmul_with(self, &a, &b, MatmulOp::default(), precision, variant)?;
                self.synchronize()?;
                drop(c);
                if run > 0 {
                    best = best.min(start.elapsed().as_secs_f64());
                }
            }
            timings.push(VariantTiming {
                variant,
                seconds: best,
                gflops: 2.0 * (n * n * n) as f64 / best / 1e9,
            });
        }
        let fastest = timings
            .iter()
            .min_by(|x, y| x.seconds.total_cmp(&y.seconds))
            .expect("at least one variant")
            .variant;
        Ok((fastest, timings))
    }
}

/// Writes the cache through a temporary file and a rename, so a reader never sees half a file.
fn write_cache(path: &Path, file: &CacheFile) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Unique per process and write, so concurrent writers never share a temporary file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("json.{}.{n}.tmp", std::process::id()));
    std::fs::write(
        &tmp,
        serde_json::to_string_pretty(file).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

/// The tuning state of one device.
#[derive(Default)]
pub(crate) struct Tuning {
    pub(crate) forced: Option<MatmulVariant>,
    pub(crate) cache_path: Option<PathBuf>,
    chosen: std::sync::Mutex<std::collections::HashMap<Precision, MatmulVariant>>,
    warnings: std::sync::Mutex<Vec<String>>,
}

impl Tuning {
    pub(crate) fn new(forced: Option<MatmulVariant>, cache_path: Option<PathBuf>) -> Self {
        Tuning {
            forced,
            cache_path,
            ..Tuning::default()
        }
    }
}
