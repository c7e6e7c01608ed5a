//! Choosing the fastest matmul variant for a device: every variant gives the same bits, so the
//! choice is only about speed. At first use per precision the device times each variant on a
//! square product and keeps the fastest, in memory and in a small JSON cache on disk keyed by
//! adapter, driver and gradstab version. A cache that cannot be read, or that an older version
//! wrote, is ignored with a warning and written anew; it is never trusted blindly.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use super::gpu::matmul_with;
use super::{MatmulOp, MatmulVariant};
use crate::error::Result;
use crate::gpu::Device;
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

/// The cache file the environment names: `GRADSTAB_CACHE_DIR`, else `$XDG_CACHE_HOME/gradstab`,
/// else `~/.cache/gradstab`. Read only by `GpuOptions::from_env`, which a caller chooses.
pub fn cache_path_from_env() -> Option<PathBuf> {
    let dir = std::env::var_os(CACHE_DIR_ENV)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("gradstab")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("gradstab"))
        })?;
    Some(dir.join("autotune.json"))
}

/// The variant `GRADSTAB_MATMUL_VARIANT` names, if it is set. Read only by
/// `GpuOptions::from_env`.
pub fn variant_from_env() -> Result<Option<MatmulVariant>> {
    match std::env::var(VARIANT_ENV) {
        Ok(name) if !name.trim().is_empty() => Ok(Some(name.parse::<MatmulVariant>()?)),
        _ => Ok(None),
    }
}

/// Reads the cache: `Ok(None)` when there is none, `Err(why)` when it cannot be trusted.
fn read_cache(path: &Path) -> std::result::Result<Option<CacheFile>, String> {
    // A FIFO or a device in its place would block every GPU command, or never end.
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err("not a regular file".into()),
        _ => {}
    }
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

/// The tuning state of one device: a forced variant, or the choices made so far.
#[derive(Default)]
pub struct Tuning {
    forced: Option<MatmulVariant>,
    cache_path: Option<PathBuf>,
    chosen: Mutex<HashMap<Precision, MatmulVariant>>,
    warnings: Mutex<Vec<String>>,
}

fn cache_key(gpu: &Device) -> String {
    let i = gpu.adapter_info();
    format!(
        "{} | {:?} | {} {}",
        i.name, i.backend, i.driver, i.driver_info
    )
}

impl Tuning {
    /// `forced`, else tuning, with the cache at `cache_path` (`None`: tuned in memory only).
    pub fn new(forced: Option<MatmulVariant>, cache_path: Option<PathBuf>) -> Result<Tuning> {
        Ok(Tuning {
            forced,
            cache_path,
            ..Tuning::default()
        })
    }

    /// A warning through the `log` facade (the command line prints it), kept for reports too.
    fn warn(&self, message: String) {
        log::warn!("{message}");
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }

    /// Warnings the autotune cache gave so far (also printed on stderr).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The variant matmul uses in `precision` on `gpu`: the forced one, else the one tuned for
    /// this device (from memory, the disk cache, or a fresh tuning run).
    pub fn variant(&self, gpu: &Device, precision: Precision) -> Result<MatmulVariant> {
        if let Some(v) = self.forced {
            return Ok(v);
        }
        if let Some(v) = self
            .chosen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&precision)
        {
            return Ok(*v);
        }
        let key = cache_key(gpu);
        let mut cached: Option<CacheFile> = None;
        if let Some(path) = &self.cache_path {
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
                let (best, _) = autotune(gpu, precision)?;
                if let Some(path) = &self.cache_path {
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
        self.chosen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(precision, variant);
        Ok(variant)
    }
}

/// Times every variant on a square product (256 on a CPU-type adapter, 1024 on a GPU) and
/// returns the fastest with all timings (the best of three runs after a warm-up each).
pub fn autotune(gpu: &Device, precision: Precision) -> Result<(MatmulVariant, Vec<VariantTiming>)> {
    if !gpu.supports(precision) {
        return Err(gpu.missing_f16());
    }
    let n = if gpu.is_hardware() { 1024 } else { 256 };
    let values: Vec<f32> = (0..n * n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let host = HostTensor::from_f32_as(precision.storage(), n, n, &values)?;
    let (a, b) = (gpu.upload_tensor(&host)?, gpu.upload_tensor(&host)?);
    let mut timings = Vec::new();
    for variant in MatmulVariant::ALL {
        let mut best = f64::INFINITY;
        for run in 0..4 {
            let start = Instant::now();
            let c = matmul_with(gpu, &a, &b, MatmulOp::default(), precision, variant)?;
            gpu.wait_idle()?;
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

/// Writes the cache whole or not at all (a temporary file and a rename; nothing is left behind
/// when it fails). Something other than a regular file in its place is left alone.
fn write_cache(path: &Path, file: &CacheFile) -> std::result::Result<(), String> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err("not a regular file; left alone".into());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let text = serde_json::to_string_pretty(file).map_err(|e| e.to_string())?;
    crate::output::write_atomically(path, |out| out.write_all(text.as_bytes()))
        .map_err(|e| e.to_string())
}
