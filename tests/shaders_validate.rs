//! Every shader variant the library can compile is valid WGSL, checked by naga with no GPU.

use gradstab::gpu::kernels::KernelSpec;

#[test]
fn every_shader_variant_validates_with_naga() {
    let specs = KernelSpec::all();
    // 3 precisions × (4 matmul transposes × 3 variants + 2 activation entries + 4 elementwise
    // ops) + 2 storage types × (4 reduction entries + 1 probe + 2 roofline entries).
    assert_eq!(specs.len(), 3 * (4 * 3 + 2 + 4) + 2 * (4 + 1 + 2));
    for spec in specs {
        let source = spec.source();
        let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
            panic!("{:?} does not parse:\n{}", spec, e.emit_to_string(&source))
        });
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        validator
            .validate(&module)
            .unwrap_or_else(|e| panic!("{spec:?} does not validate: {e:?}"));
        assert!(
            module
                .entry_points
                .iter()
                .any(|e| e.name == spec.entry_point),
            "{spec:?}: no entry point {}",
            spec.entry_point
        );
    }
}
