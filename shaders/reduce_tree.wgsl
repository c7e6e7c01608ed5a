// What shaders/reduce.wgsl names of the subgroup path, for a device without subgroups
// (LANES = 1): its trees then run to the end in workgroup memory, and these are never called.
struct Invocation {
    @builtin(local_invocation_index) t: u32,
}

fn extrema_in_subgroup(inv: Invocation) {}

fn chan_in_subgroup(inv: Invocation) {}
