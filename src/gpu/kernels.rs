//! Shader templating, the per-device pipeline cache and dispatch.
//!
//! Each op family is one `.wgsl` file under `shaders/`. A variant is that file behind a short
//! generated header that names the storage type `S`, the arithmetic type `A`, a NaN test on the
//! raw bits of `A` and, for matmul, the transpose flags. Pipelines are compiled once per
//! (family, types, flags, entry point) and reused.

use std::collections::HashMap;
use std::sync::Mutex;

use wgpu::util::DeviceExt;

use super::Gpu;
use crate::backend::MatmulOp;
use crate::error::{Error, Result};
use crate::ops::matmul::MatmulVariant;
use crate::precision::{DType, Precision};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShaderFamily {
    Matmul,
    Activation,
    Elementwise,
    Reduce,
    Roofline,
    Probe,
}

impl ShaderFamily {
    pub const ALL: [ShaderFamily; 6] = [
        ShaderFamily::Matmul,
        ShaderFamily::Activation,
        ShaderFamily::Elementwise,
        ShaderFamily::Reduce,
        ShaderFamily::Roofline,
        ShaderFamily::Probe,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            ShaderFamily::Matmul => "matmul.wgsl",
            ShaderFamily::Activation => "activation.wgsl",
            ShaderFamily::Elementwise => "elementwise.wgsl",
            ShaderFamily::Reduce => "reduce.wgsl",
            ShaderFamily::Roofline => "roofline.wgsl",
            ShaderFamily::Probe => "probe.wgsl",
        }
    }

    fn body(self) -> &'static str {
        match self {
            ShaderFamily::Matmul => include_str!("../../shaders/matmul.wgsl"),
            ShaderFamily::Activation => include_str!("../../shaders/activation.wgsl"),
            ShaderFamily::Elementwise => include_str!("../../shaders/elementwise.wgsl"),
            ShaderFamily::Reduce => include_str!("../../shaders/reduce.wgsl"),
            ShaderFamily::Roofline => include_str!("../../shaders/roofline.wgsl"),
            ShaderFamily::Probe => include_str!("../../shaders/probe.wgsl"),
        }
    }
}

/// One compiled variant of a shader family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelSpec {
    pub family: ShaderFamily,
    pub storage: DType,
    pub arithmetic: DType,
    pub matmul_op: MatmulOp,
    pub matmul_variant: MatmulVariant,
    pub entry_point: &'static str,
}

impl KernelSpec {
    pub fn new(family: ShaderFamily, precision: Precision, entry_point: &'static str) -> Self {
        KernelSpec {
            family,
            storage: precision.storage(),
            arithmetic: precision.arithmetic(),
            matmul_op: MatmulOp::default(),
            matmul_variant: MatmulVariant::Tile64Shared,
            entry_point,
        }
    }

    pub fn matmul(precision: Precision, op: MatmulOp, variant: MatmulVariant) -> Self {
        KernelSpec {
            matmul_op: op,
            matmul_variant: variant,
            ..KernelSpec::new(ShaderFamily::Matmul, precision, "main")
        }
    }

    /// A roofline kernel (`fma_peak` or `copy`) for arithmetic in `dtype`.
    pub fn roofline(dtype: DType, entry_point: &'static str) -> Self {
        KernelSpec {
            family: ShaderFamily::Roofline,
            ..KernelSpec::probe(dtype)
        }
        .with_entry(entry_point)
    }

    fn with_entry(mut self, entry_point: &'static str) -> Self {
        self.entry_point = entry_point;
        self
    }

    /// The device probe for one format.
    pub fn probe(dtype: DType) -> Self {
        KernelSpec {
            family: ShaderFamily::Probe,
            storage: dtype,
            arithmetic: dtype,
            matmul_op: MatmulOp::default(),
            matmul_variant: MatmulVariant::Tile64Shared,
            entry_point: "main",
        }
    }

    /// A reduction over data stored as `dtype`, read as raw words (no f16 arithmetic).
    pub fn reduce(dtype: DType, entry_point: &'static str) -> Self {
        KernelSpec {
            family: ShaderFamily::Reduce,
            storage: dtype,
            arithmetic: DType::F32,
            matmul_op: MatmulOp::default(),
            matmul_variant: MatmulVariant::Tile64Shared,
            entry_point,
        }
    }

    /// Whether the variant needs `SHADER_F16`. Reductions decode f16 from raw bits and do not.
    pub fn uses_f16(&self) -> bool {
        self.family != ShaderFamily::Reduce
            && (self.storage == DType::F16 || self.arithmetic == DType::F16)
    }

    /// The full WGSL source of this variant.
    pub fn source(&self) -> String {
        let mut header = String::from("// Generated header (src/gpu/kernels.rs).\n");
        if self.family == ShaderFamily::Reduce {
            header.push_str(&format!(
                "const F16_INPUT: bool = {};\n\n",
                self.storage == DType::F16
            ));
            return header + self.family.body();
        }
        if self.uses_f16() {
            header.push_str("enable f16;\n");
        }
        header.push_str(&format!(
            "alias S = {};\nalias A = {};\n",
            self.storage.wgsl(),
            self.arithmetic.wgsl()
        ));
        header.push_str(match self.arithmetic {
            DType::F32 => {
                "fn is_nan_bits(x: A) -> bool {\n    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;\n}\n"
            }
            DType::F16 => {
                // Widening f16 to f32 keeps NaN a NaN; naga has no 16-bit bitcast.
                "fn is_nan_bits(x: A) -> bool {\n    return (bitcast<u32>(f32(x)) & 0x7fffffffu) > 0x7f800000u;\n}\n"
            }
        });
        if self.family == ShaderFamily::Matmul {
            header.push_str(&format!(
                "const TRANSPOSE_A: bool = {};\nconst TRANSPOSE_B: bool = {};\nconst REG: u32 = {}u;\nconst USE_SHARED: bool = {};\n",
                self.matmul_op.transpose_a,
                self.matmul_op.transpose_b,
                self.matmul_variant.register_block(),
                self.matmul_variant.uses_workgroup_memory()
            ));
        }
        header.push('\n');
        header + self.family.body()
    }

    /// Every variant the library can compile: what the naga validation test checks.
    pub fn all() -> Vec<KernelSpec> {
        let mut specs = Vec::new();
        for precision in Precision::ALL {
            for op in MatmulOp::ALL {
                for variant in MatmulVariant::ALL {
                    specs.push(KernelSpec::matmul(precision, op, variant));
                }
            }
            for entry in ["forward", "derivative"] {
                specs.push(KernelSpec::new(ShaderFamily::Activation, precision, entry));
            }
            for op in crate::ops::elementwise::ElementwiseOp::ALL {
                specs.push(KernelSpec::new(
                    ShaderFamily::Elementwise,
                    precision,
                    op.entry_point(),
                ));
            }
        }
        for dtype in [DType::F32, DType::F16] {
            for entry in crate::ops::reduce::gpu::ENTRY_POINTS {
                specs.push(KernelSpec::reduce(dtype, entry));
            }
            specs.push(KernelSpec::probe(dtype));
            for entry in ["fma_peak", "copy"] {
                specs.push(KernelSpec::roofline(dtype, entry));
            }
        }
        specs
    }
}

/// One dispatch of a multi-kernel submission.
pub(crate) struct Dispatch<'a> {
    pub pipeline: &'a wgpu::ComputePipeline,
    pub buffers: &'a [(u32, &'a wgpu::Buffer)],
    pub grid: (u32, u32),
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    pipelines: Mutex<HashMap<KernelSpec, wgpu::ComputePipeline>>,
}

impl Gpu {
    /// The compiled pipeline of `spec`, built on first use.
    pub(crate) fn pipeline(&self, spec: KernelSpec) -> Result<wgpu::ComputePipeline> {
        if spec.uses_f16() {
            self.require_f16()?;
        }
        let mut cache = self
            .pipelines
            .pipelines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(p) = cache.get(&spec) {
            return Ok(p.clone());
        }
        let label = format!("{:?} {:?}", spec.family, spec);
        let pipeline = self.checked(&format!("compiling {}", spec.family.file_name()), || {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&label),
                    source: wgpu::ShaderSource::Wgsl(spec.source().into()),
                });
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: None,
                    module: &module,
                    entry_point: Some(spec.entry_point),
                    compilation_options: Default::default(),
                    cache: None,
                })
        })?;
        cache.insert(spec, pipeline.clone());
        Ok(pipeline)
    }

    /// A small uniform buffer holding `params`.
    pub(crate) fn uniform<T: bytemuck::Pod>(&self, params: &T) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Lays `groups` workgroups out on a grid: up to the adapter's per-dimension limit along x,
    /// folded into rows along y beyond it. Kernels recover their linear index as
    /// `y · groups_x + x` and skip the padding of the last row.
    pub(crate) fn grid(&self, groups: u64, what: &str) -> Result<(u32, u32)> {
        let max = self.grid_limit as u64;
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(Error::GridTooLarge {
                what: what.to_string(),
                groups,
                limit: max * max,
                adapter: self.adapter_name(),
            });
        }
        Ok((x as u32, y as u32))
    }

    /// Runs one dispatch of `pipeline` with each `(binding, buffer)` bound in group 0. Only the
    /// bindings an entry point uses exist in its layout, so each caller names those.
    pub(crate) fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[(u32, &wgpu::Buffer)],
        grid: (u32, u32),
        label: &str,
    ) -> Result<()> {
        self.dispatch_all(
            &[Dispatch {
                pipeline,
                buffers,
                grid,
            }],
            label,
        )
    }

    /// Runs several dispatches in order in one submission; each sees the writes of the last.
    pub(crate) fn dispatch_all(&self, dispatches: &[Dispatch<'_>], label: &str) -> Result<()> {
        self.checked(label, || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
            for d in dispatches {
                let layout = d.pipeline.get_bind_group_layout(0);
                let entries: Vec<wgpu::BindGroupEntry> = d
                    .buffers
                    .iter()
                    .map(|&(binding, b)| wgpu::BindGroupEntry {
                        binding,
                        resource: b.as_entire_binding(),
                    })
                    .collect();
                let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(label),
                    layout: &layout,
                    entries: &entries,
                });
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(label),
                    timestamp_writes: None,
                });
                pass.set_pipeline(d.pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
            }
            self.queue.submit([encoder.finish()]);
        })
    }
}
