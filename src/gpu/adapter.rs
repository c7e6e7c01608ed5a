//! Adapter discovery and choice.

use crate::error::{Error, Result};

/// The environment variable that picks an adapter by a substring of its name.
pub const ADAPTER_ENV: &str = "GRADSTAB_ADAPTER";

/// What `gradstab devices` shows for one adapter.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub shader_f16: bool,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_storage_size: u32,
}

impl AdapterSummary {
    pub fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            shader_f16: adapter.features().contains(wgpu::Features::SHADER_F16),
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        }
    }
}

pub(crate) fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter the instance can see, best first.
pub(crate) fn ranked_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| std::cmp::Reverse(rank(&a.get_info())));
    adapters
}

/// A hardware GPU first, then a software Vulkan adapter such as lavapipe; among equals, the
/// native compute APIs before OpenGL.
fn rank(info: &wgpu::AdapterInfo) -> u32 {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 40,
        wgpu::DeviceType::IntegratedGpu => 30,
        wgpu::DeviceType::VirtualGpu => 20,
        wgpu::DeviceType::Cpu => 10,
        wgpu::DeviceType::Other => 0,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 0,
        _ => 1,
    };
    device + backend
}

/// All adapters, best first, as `gradstab devices` lists them.
pub fn list_adapters() -> Vec<AdapterSummary> {
    ranked_adapters(&instance())
        .iter()
        .map(AdapterSummary::of)
        .collect()
}

/// How `--adapter` and `gradstab devices` name an adapter: "name (Backend)".
fn label(adapter: &wgpu::Adapter) -> String {
    let i = adapter.get_info();
    format!("{} ({:?})", i.name, i.backend)
}

/// Picks the best adapter, or the one `filter` names: its number in `gradstab devices`, or
/// the first whose "name (Backend)" contains `filter` (case-insensitive), so that two
/// adapters of one name on two backends can each be chosen.
pub(crate) fn choose_adapter(
    instance: &wgpu::Instance,
    filter: Option<&str>,
) -> Result<wgpu::Adapter> {
    let adapters = ranked_adapters(instance);
    if adapters.is_empty() {
        return Err(Error::NoAdapter {
            detail: backend_env_hint(),
        });
    }
    let Some(wanted) = filter else {
        return Ok(adapters.into_iter().next().expect("not empty"));
    };
    let names: Vec<String> = adapters
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{i}: {}", label(a)))
        .collect();
    let not_found = || Error::AdapterNotFound {
        requested: wanted.to_string(),
        available: names.join(", "),
    };
    if let Ok(index) = wanted.trim().parse::<usize>() {
        return adapters.into_iter().nth(index).ok_or_else(not_found);
    }
    let needle = wanted.trim().to_lowercase();
    if needle.is_empty() {
        return Err(not_found());
    }
    adapters
        .into_iter()
        .find(|a| label(a).to_lowercase().contains(&needle))
        .ok_or_else(not_found)
}

/// When no adapter is found and `WGPU_BACKEND` is set, it may be why: wgpu searches only the
/// backends it names, and ignores a name it does not know.
fn backend_env_hint() -> String {
    match std::env::var("WGPU_BACKEND") {
        Ok(v) if !v.trim().is_empty() => format!(
            " (WGPU_BACKEND is '{v}': only the backends it names are searched; known names: \
             vulkan, metal, dx12, gl, webgpu)"
        ),
        _ => String::new(),
    }
}
