// The last log2(LANES) steps of shaders/reduce.wgsl's workgroup trees, in one subgroup's
// registers instead of workgroup memory, where the device has subgroups of at least LANES
// lanes (a power of two). The tree's step of stride s sets element t < s to
// op(element t, element t + s); after its steps of stride ≥ LANES, elements 0 … LANES − 1
// hold what the remaining steps combine. Here lane l holds element l, and each step of stride
// s = LANES/2, …, 1 sets lane l < s to op(lane l, lane l + s), the other taken by
// subgroupShuffleDown: the same operands in the same order as the tree, so the same bits
// (not subgroupAdd/Min/Max, whose order is the implementation's). Lanes l ≥ s compute
// values no later step reads, as the tree leaves elements ≥ s alone.
//
// One subgroup does it: the one holding invocation 0 (which lanes that is depends on how the
// implementation lays out subgroups; the lane numbers within it do not). Lanes beyond LANES,
// on a device with larger subgroups, only ever feed lanes ≥ LANES.
struct Invocation {
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_invocation_id) lane: u32,
}

// Finishes workgroup_reduce's tree of (wg_a, wg_b, wg_c) = (min, max, abs_max) into element 0.
fn extrema_in_subgroup(inv: Invocation) {
    if (subgroupAny(inv.t == 0u)) {
        let i = min(inv.lane, LANES - 1u);
        var lo = wg_a[i];
        var hi = wg_b[i];
        var amax = wg_c[i];
        for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
            let lo_up = subgroupShuffleDown(lo, stride);
            let hi_up = subgroupShuffleDown(hi, stride);
            let amax_up = subgroupShuffleDown(amax, stride);
            if (inv.lane < stride) {
                lo = min(lo, lo_up);
                hi = max(hi, hi_up);
                amax = max(amax, amax_up);
            }
        }
        if (inv.lane == 0u) {
            wg_a[0] = lo;
            wg_b[0] = hi;
            wg_c[0] = amax;
        }
    }
}

// Finishes workgroup_chan's tree of (wg_a, wg_b, wg_c) = (n, mean, M2) into element 0.
fn chan_in_subgroup(inv: Invocation) {
    if (subgroupAny(inv.t == 0u)) {
        let i = min(inv.lane, LANES - 1u);
        var acc = vec3<f32>(wg_a[i], wg_b[i], wg_c[i]);
        for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
            let up = subgroupShuffleDown(acc, stride);
            if (inv.lane < stride) {
                acc = chan(acc, up);
            }
        }
        if (inv.lane == 0u) {
            wg_a[0] = acc.x;
            wg_b[0] = acc.y;
            wg_c[0] = acc.z;
        }
    }
}
