//! The matmul autotune cache: used when valid, ignored with a warning and rebuilt when corrupt
//! or stale, never trusted blindly; a forced variant skips it.

mod common;

use gradstab::ops::matmul::MatmulVariant;
use gradstab::{Gpu, GpuOptions, Precision};

fn gpu_with_cache(path: &std::path::Path) -> Gpu {
    Gpu::new(&GpuOptions {
        autotune_cache: Some(path.to_path_buf()),
        ..GpuOptions::from_env().unwrap()
    })
    .unwrap()
}

fn cache_path(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gradstab-autotune-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("autotune.json")
}

/// The variant the cache file holds for f32 on this adapter, if any.
fn cached_f32(path: &std::path::Path) -> Option<String> {
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let adapters = file["adapters"].as_object()?;
    adapters.values().next()?["f32"].as_str().map(String::from)
}

#[test]
fn a_fresh_cache_is_written_and_then_used() {
    if common::gpu("autotune fresh").is_none() {
        return;
    }
    let path = cache_path("fresh");
    let _ = std::fs::remove_file(&path);
    let gpu = gpu_with_cache(&path);
    let chosen = gpu.matmul_variant(Precision::F32).unwrap();
    assert!(
        gpu.autotune_warnings().is_empty(),
        "{:?}",
        gpu.autotune_warnings()
    );
    assert_eq!(cached_f32(&path).as_deref(), Some(chosen.name()));
    // A second device reads the choice instead of tuning: plant a different valid variant and
    // see it used.
    let other = MatmulVariant::ALL
        .into_iter()
        .find(|v| *v != chosen)
        .unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(chosen.name(), other.name());
    std::fs::write(&path, text).unwrap();
    let again = gpu_with_cache(&path);
    assert_eq!(again.matmul_variant(Precision::F32).unwrap(), other);
    assert!(again.autotune_warnings().is_empty());
}

#[test]
fn a_corrupt_cache_is_ignored_with_a_warning_and_rebuilt() {
    if common::gpu("autotune corrupt").is_none() {
        return;
    }
    let path = cache_path("corrupt");
    std::fs::write(&path, b"{ this is not json").unwrap();
    let gpu = gpu_with_cache(&path);
    let chosen = gpu.matmul_variant(Precision::F32).unwrap();
    let warnings = gpu.autotune_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("corrupt") && warnings[0].contains("tuning again"),
        "{}",
        warnings[0]
    );
    assert_eq!(cached_f32(&path).as_deref(), Some(chosen.name()), "rebuilt");
}

#[test]
fn a_stale_cache_or_an_unknown_variant_is_not_trusted() {
    if common::gpu("autotune stale").is_none() {
        return;
    }
    // Written by another version of gradstab.
    let path = cache_path("stale");
    std::fs::write(
        &path,
        r#"{"format": 1, "gradstab": "0.0.1", "adapters": {}}"#,
    )
    .unwrap();
    let gpu = gpu_with_cache(&path);
    gpu.matmul_variant(Precision::F32).unwrap();
    assert!(
        gpu.autotune_warnings()[0].contains("stale"),
        "{:?}",
        gpu.autotune_warnings()
    );
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains(env!("CARGO_PKG_VERSION")));
    // A variant name this version does not know.
    let text = std::fs::read_to_string(&path).unwrap();
    let planted = text.replace(&cached_f32(&path).unwrap(), "tile128-magic");
    std::fs::write(&path, planted).unwrap();
    let gpu = gpu_with_cache(&path);
    let chosen = gpu.matmul_variant(Precision::F32).unwrap();
    assert!(
        gpu.autotune_warnings()[0].contains("tile128-magic"),
        "{:?}",
        gpu.autotune_warnings()
    );
    assert_eq!(cached_f32(&path).as_deref(), Some(chosen.name()));
}

#[test]
fn a_forced_variant_skips_tuning_and_a_bad_name_is_an_error() {
    if common::gpu("autotune forced").is_none() {
        return;
    }
    let path = cache_path("forced");
    let _ = std::fs::remove_file(&path);
    let gpu = Gpu::new(&GpuOptions {
        matmul_variant: Some(MatmulVariant::Tile32Shared),
        autotune_cache: Some(path.clone()),
        ..GpuOptions::from_env().unwrap()
    })
    .unwrap();
    assert_eq!(
        gpu.matmul_variant(Precision::F32).unwrap(),
        MatmulVariant::Tile32Shared
    );
    assert!(!path.exists(), "no tuning, no cache");
    let err = "tile7".parse::<MatmulVariant>().unwrap_err();
    assert!(err.to_string().contains("tile64-shared"), "{err}");
}

#[test]
fn a_cache_that_is_not_a_regular_file_is_neither_read_nor_replaced() {
    // A FIFO in the cache's place would block every GPU command on open.
    if common::gpu("autotune fifo").is_none() || !cfg!(unix) {
        return;
    }
    let path = cache_path("fifo");
    let _ = std::fs::remove_file(&path);
    let made = std::process::Command::new("mkfifo").arg(&path).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: mkfifo is not available");
        return;
    }
    let gpu = gpu_with_cache(&path);
    gpu.matmul_variant(Precision::F32).unwrap();
    let warnings = gpu.autotune_warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("not a regular file") && warnings[0].contains("tuning again"));
    assert!(warnings[1].contains("left alone"), "{}", warnings[1]);
    assert!(
        !std::fs::metadata(&path).unwrap().is_file(),
        "the FIFO was replaced"
    );
    // No temporary file is left beside it.
    let dir = path.parent().unwrap();
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

/// The library reads the environment only where a caller asks it to (`GpuOptions::from_env`):
/// a bad `GRADSTAB_MATMUL_VARIANT` is an error there and nowhere else. One test sets the
/// variable, so it runs the binary rather than change this process's environment.
#[test]
fn the_environment_is_read_only_by_from_env() {
    let Some(gpu) = common::gpu("environment") else {
        return;
    };
    drop(gpu);
    let out = common::cli([
        "run", "--depth", "2", "--width", "4", "--batch", "2", "--quiet",
    ])
    .env("GRADSTAB_MATMUL_VARIANT", "bogus")
    .output();
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr_of(&out));
    assert!(common::stderr_of(&out).contains("bogus"));
    // Default options name no cache and no variant, whatever the environment says.
    let defaults = GpuOptions::default();
    assert!(defaults.autotune_cache.is_none() && defaults.matmul_variant.is_none());
}
