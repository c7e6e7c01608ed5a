//! Shader templating: the generated header in front of every kernel, built from a typed list
//! of what the shader body expects (element types, tensor bindings, constants written from
//! their Rust definitions).

use super::codec::{self, Access};
use crate::precision::{DType, Precision};

/// Threads per workgroup of the one-dimensional kernels (one thread per element). Every header
/// defines `WORKGROUP_SIZE` and `folded_index`, which recovers an element's index from a grid
/// folded into y.
pub const WORKGROUP_SIZE: u32 = 256;

/// One item of a generated header. The header is a list of these, and that list, not the text
/// it renders to, is what the pipeline cache is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Item {
    /// `alias S`, `alias A` and `is_nan_bits(x: A)`.
    ElementTypes {
        storage: DType,
        arithmetic: DType,
    },
    Alias(String, DType),
    Tensor {
        index: u32,
        name: String,
        format: DType,
        access: Access,
        value: String,
    },
    /// `load4_<name>`, through a vector view at binding `index` or four scalar loads.
    VectorView {
        index: Option<u32>,
        name: String,
        format: DType,
        value: String,
    },
    /// The casts of a packed format, with no binding (for a shader that rounds to it).
    Casts(DType),
    /// `fn NAME(x: f32) -> f32`, x rounded to a format and widened back.
    Rounding(String, DType),
    /// A WGSL function an op family generates from its own Rust tables.
    Function(String),
    /// `fn NAME(x: ARG) -> RET`, another name for a generated function.
    FunctionAlias {
        name: String,
        target: String,
        arg: String,
        ret: String,
    },
    U32(String, u32),
    I32(String, i32),
    Bool(String, bool),
    /// An f64 by its bits, so that the item can be hashed.
    Float(String, u64),
}

/// The generated part of a kernel's source: a typed description of the element types, tensor
/// bindings and constants a shader body expects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Header {
    items: Vec<Item>,
}

impl Header {
    pub fn new() -> Self {
        Header::default()
    }

    /// `alias S` (storage) and `alias A` (arithmetic), and `is_nan_bits(x: A)`, a NaN test on
    /// the raw bits that a compiler assuming finite math cannot fold away. `S` exists only where
    /// WGSL has the storage type; a packed format is reached through [`Header::tensor`].
    pub fn element_types(mut self, storage: DType, arithmetic: DType) -> Self {
        assert!(
            arithmetic.native_wgsl().is_some(),
            "arithmetic in {arithmetic}"
        );
        self.items.push(Item::ElementTypes {
            storage,
            arithmetic,
        });
        self
    }

    /// The element types of a precision policy.
    pub fn precision(self, precision: Precision) -> Self {
        self.element_types(precision.storage(), precision.arithmetic())
    }

    /// One more element type, `alias NAME = f32|f16;`.
    pub fn alias(mut self, name: &str, dtype: DType) -> Self {
        assert!(dtype.native_wgsl().is_some(), "alias {name} = {dtype}");
        self.items.push(Item::Alias(name.to_string(), dtype));
        self
    }

    /// Binding `index`, a tensor named `name` stored as `format`: `load_<name>(i) -> T` and,
    /// where written, `store_<name>(i, v: T)`, T being the WGSL type `value` (`A`, `f32`…).
    pub fn tensor(
        mut self,
        index: u32,
        name: &str,
        format: DType,
        access: Access,
        value: &str,
    ) -> Self {
        self.items.push(Item::Tensor {
            index,
            name: name.to_string(),
            format,
            access,
            value: value.to_string(),
        });
        self
    }

    /// `load4_<name>(i) -> vec4<T>`, elements i … i+3 of the tensor `name` declared before:
    /// with `Some(index)` one load through a second binding of the same buffer as an array of
    /// vec4 (the caller binds the buffer there too, and only where every i is a multiple of 4), with
    /// `None` four scalar loads (the same values, for a body that calls it either way).
    pub fn vector_view(
        mut self,
        index: Option<u32>,
        name: &str,
        format: DType,
        value: &str,
    ) -> Self {
        self.items.push(Item::VectorView {
            index,
            name: name.to_string(),
            format,
            value: value.to_string(),
        });
        self
    }

    /// `decode_<f>`, `encode_<f>` and `encode_<f>_saturating` of a packed format.
    pub fn casts(mut self, format: DType) -> Self {
        self.items.push(Item::Casts(format));
        self
    }

    /// `fn NAME(x: f32) -> f32`: x rounded once to `format` (to nearest even) and widened.
    pub fn rounding(mut self, name: &str, format: DType) -> Self {
        self.items.push(Item::Rounding(name.to_string(), format));
        self
    }

    /// `fn NAME(x: ARG) -> RET { return TARGET(x); }`: a shader body calls one name whatever
    /// the generated function it stands for.
    pub fn function_alias(mut self, name: &str, target: &str, arg: &str, ret: &str) -> Self {
        self.items.push(Item::FunctionAlias {
            name: name.to_string(),
            target: target.to_string(),
            arg: arg.to_string(),
            ret: ret.to_string(),
        });
        self
    }

    /// A WGSL function generated from Rust data (after the constants it may use).
    pub fn function(mut self, text: &str) -> Self {
        self.items.push(Item::Function(text.to_string()));
        self
    }

    pub fn constant_u32(mut self, name: &str, value: u32) -> Self {
        self.items.push(Item::U32(name.to_string(), value));
        self
    }

    pub fn constant_i32(mut self, name: &str, value: i32) -> Self {
        self.items.push(Item::I32(name.to_string(), value));
        self
    }

    pub fn constant_bool(mut self, name: &str, value: bool) -> Self {
        self.items.push(Item::Bool(name.to_string(), value));
        self
    }

    /// An abstract-float constant: the shader converts it to `A` at compile time, rounding the
    /// decimal value once, as the CPU reference rounds the same f64.
    pub fn constant_float(mut self, name: &str, value: f64) -> Self {
        assert!(value.is_finite(), "{name} = {value}");
        self.items
            .push(Item::Float(name.to_string(), value.to_bits()));
        self
    }

    /// Whether the kernel needs `SHADER_F16`.
    pub fn uses_f16(&self) -> bool {
        let f16 = |d: &DType| *d == DType::F16;
        self.items.iter().any(|item| match item {
            Item::ElementTypes {
                storage,
                arithmetic,
            } => f16(storage) || f16(arithmetic),
            Item::Alias(_, d) => f16(d),
            Item::Tensor { format, value, .. } | Item::VectorView { format, value, .. } => {
                f16(format) || value == "f16"
            }
            Item::Rounding(_, d) => f16(d),
            _ => false,
        })
    }

    /// The packed formats whose casts the header must define, each once.
    fn packed_formats(&self) -> Vec<DType> {
        let mut formats: Vec<DType> = Vec::new();
        for item in &self.items {
            let format = match item {
                Item::Tensor { format, .. } | Item::Casts(format) | Item::Rounding(_, format) => {
                    *format
                }
                Item::ElementTypes { storage, .. } => *storage,
                _ => continue,
            };
            if format.native_wgsl().is_none() && !formats.contains(&format) {
                formats.push(format);
            }
        }
        formats
    }

    /// The WGSL text.
    pub(crate) fn text(&self) -> String {
        let mut text =
            String::from("// Generated header (src/gpu/kernel.rs and the op's gpu.rs).\n");
        text.push_str(&format!(
            "const WORKGROUP_SIZE: u32 = {WORKGROUP_SIZE}u;\n\
             // The linear index of an invocation in a grid of `groups_x` workgroups per row.\n\
             fn folded_index(id: vec3<u32>, groups_x: u32) -> u32 {{\n    \
             return id.y * (groups_x * WORKGROUP_SIZE) + id.x;\n}}\n"
        ));
        let packed = self.packed_formats();
        if !packed.is_empty() {
            text.push_str(codec::ROUND_SHIFT);
        }
        for format in packed {
            text.push_str(&codec::casts(format));
        }
        for item in &self.items {
            match item {
                Item::ElementTypes {
                    storage,
                    arithmetic,
                } => {
                    if let Some(s) = storage.native_wgsl() {
                        text.push_str(&format!("alias S = {s};\n"));
                    }
                    let a = arithmetic.native_wgsl().expect("checked when added");
                    text.push_str(&format!("alias A = {a};\n"));
                    // Widening f16 to f32 keeps NaN a NaN; naga has no 16-bit bitcast.
                    text.push_str(
                        "fn is_nan_bits(x: A) -> bool {\n    return (bitcast<u32>(f32(x)) & 0x7fffffffu) > 0x7f800000u;\n}\n",
                    );
                }
                Item::Alias(name, dtype) => {
                    let t = dtype.native_wgsl().expect("checked when added");
                    text.push_str(&format!("alias {name} = {t};\n"));
                }
                Item::Tensor {
                    index,
                    name,
                    format,
                    access,
                    value,
                } => text.push_str(&codec::tensor_binding(
                    *index, name, *format, *access, value,
                )),
                Item::VectorView {
                    index,
                    name,
                    format,
                    value,
                } => text.push_str(&codec::vector_view(*index, name, *format, value)),
                Item::Casts(_) => {}
                Item::Function(function) => text.push_str(function),
                Item::FunctionAlias {
                    name,
                    target,
                    arg,
                    ret,
                } => text.push_str(&format!(
                    "fn {name}(x: {arg}) -> {ret} {{\n    return {target}(x);\n}}\n"
                )),
                Item::Rounding(name, format) => {
                    let rounded = match format.native_wgsl() {
                        Some("f32") => "x".to_string(),
                        Some(native) => format!("f32({native}(x))"),
                        None => format!("decode_{0}(encode_{0}(x))", format.name()),
                    };
                    text.push_str(&format!(
                        "fn {name}(x: f32) -> f32 {{\n    return {rounded};\n}}\n"
                    ));
                }
                Item::U32(name, v) => text.push_str(&format!("const {name}: u32 = {v}u;\n")),
                Item::I32(name, v) => text.push_str(&format!("const {name}: i32 = {v}i;\n")),
                Item::Bool(name, v) => text.push_str(&format!("const {name}: bool = {v};\n")),
                // `{:?}` writes the shortest decimal that reads back as the same f64, with a
                // point.
                Item::Float(name, bits) => {
                    text.push_str(&format!("const {name} = {:?};\n", f64::from_bits(*bits)))
                }
            }
        }
        text
    }
}
