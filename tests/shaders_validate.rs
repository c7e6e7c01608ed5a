//! Every shader variant the library can compile is valid WGSL, checked by naga with no GPU.
//! A constant that a shader defined itself as well as receiving it from its Rust header would
//! be a redefinition, which fails here: shared constants are written once, in Rust.

use gradstab::shaders;

#[test]
fn every_shader_variant_validates_with_naga() {
    let kernels = shaders::all();
    // 6 precisions × (4 matmul transposes × 3 variants × 2 paths (checked; fast, with vector
    // views where the operands are f32 or f16) + 2 activation entries + 4 elementwise ops + 2
    // losses + 3 optimizers), FP8's two quantised operand pairs × 4 × 3 × 2 matmuls, 3
    // storage types × 2 reduction entries × 4 subgroup widths (none: workgroup memory alone;
    // 8, 16, 32 lanes), 2 arithmetic types × (1 probe + 2 roofline entries), and casts from 3
    // storage types to 3 packed formats, saturating or not.
    assert_eq!(
        kernels.len(),
        6 * (4 * 3 * 2 + 2 + 4 + 2 + 3) + 2 * 4 * 3 * 2 + 3 * 2 * 4 + 2 * (1 + 2) + 3 * 3 * 2
    );
    for kernel in kernels {
        let source = kernel.source();
        let name = format!("{} {} {:?}", kernel.file, kernel.entry_point, kernel.header);
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(&source)));
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        validator
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name} does not validate: {e:?}"));
        assert!(
            module
                .entry_points
                .iter()
                .any(|e| e.name == kernel.entry_point),
            "{name}: no entry point {}",
            kernel.entry_point
        );
    }
}
