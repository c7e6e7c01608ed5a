#!/usr/bin/env python3
"""Writes tests/data/torch_casts.npz: PyTorch's own CPU casts, as bit patterns, for
tests/formats_torch.rs to hold src/format.rs to without torch at test time.

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch numpy
    /tmp/tv/bin/python tools/torch_cast_tables.py [tests/data/torch_casts.npz]

Every cast is `torch.from_numpy(f32).to(dtype)` on one contiguous CPU tensor (the vectorised
path PyTorch takes for real tensors), read back with `.view(torch.int16 / torch.uint8)`.
The same casts through a strided view (PyTorch's scalar path) are compared with it: the two
must agree on every non-NaN input, or the script stops. NaN patterns do differ between the
paths (bf16: 0xFFFF vectorised, 0x7FC0 scalar), which the metadata records.

Members (outputs in pattern order where the inputs are implicit; u32 = f32 bit pattern):

  a_<to>     every f16 pattern i (0..65536) widened exactly to f32, cast to bf16, e4m3, e5m2
  b_<to>     every bf16 pattern i as the f32 with bits i << 16, cast to e4m3, e5m2, f16
  c_inputs   u32: every midpoint between neighbouring finite values of bf16, f16, e4m3 and
             e5m2 (both signs) with its two f32 neighbours, the overflow and underflow
             regions, specials, f32 subnormals and random f32
  c_<to>     c_inputs cast to bf16, f16, e4m3, e5m2
  d_<from>   u32: every pattern of e4m3, e5m2 (256), bf16 and f16 (65536) decoded to f32
  meta       u8: UTF-8 JSON: torch and numpy versions, CPU capability, NaN findings

The f16 → f32 widening of (a) is exact for numbers; NaNs are widened as IEEE hardware does
(payload shifted up, quiet bit set), which the script checks against torch's own `.float()`.
"""

import json
import sys

import numpy as np
import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/data/torch_casts.npz"

TARGETS = {
    "bf16": (torch.bfloat16, torch.int16, np.uint16),
    "f16": (torch.float16, torch.int16, np.uint16),
    "e4m3": (torch.float8_e4m3fn, torch.uint8, np.uint8),
    "e5m2": (torch.float8_e5m2, torch.uint8, np.uint8),
}


def cast(bits_u32, to, strided=False):
    """torch's cast of the f32 values with these bit patterns, as bit patterns."""
    dtype, view, np_out = TARGETS[to]
    f = np.ascontiguousarray(bits_u32, dtype=np.uint32).view(np.float32)
    if strided:
        # Every other element of a tensor twice as long: not contiguous, so the scalar loop.
        wide = np.zeros(2 * len(f), dtype=np.float32)
        wide[::2] = f
        t = torch.from_numpy(wide)[::2]
        assert len(f) < 2 or not t.is_contiguous()
    else:
        t = torch.from_numpy(f.copy())
    out = t.to(dtype).contiguous().view(view).numpy()
    return out.astype(np_out) if out.dtype != np_out else out


def decode(patterns, dtype, view):
    """torch's value (f32 bits) of each pattern of a narrow format."""
    t = torch.from_numpy(patterns).view(view).view(dtype).float()
    return t.numpy().view(np.uint32).copy()


def f16_widened(i):
    """The f32 bits of f16 pattern i, widened exactly (NaN: payload kept, quiet bit set)."""
    i = i.astype(np.uint32)
    sign = (i & 0x8000) << 16
    exp = (i >> 10) & 0x1F
    man = i & 0x3FF
    v = np.array(i, dtype=np.uint16).view(np.float16).astype(np.float64)
    with np.errstate(invalid="ignore"):
        out = np.abs(v).astype(np.float32).view(np.uint32) | sign  # exact for finite and inf
    nan = (exp == 0x1F) & (man != 0)
    out[nan] = sign[nan] | 0x7F800000 | 0x400000 | (man[nan] << 13)
    return out.astype(np.uint32)


def finite_positive(fmt):
    """Every finite positive value of a format, ascending, as f64."""
    if fmt == "bf16":
        p = np.arange(1, 0x7F80, dtype=np.uint32) << 16
        return p.view(np.float32).astype(np.float64)
    if fmt == "f16":
        return np.arange(1, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    dtype, view = {"e4m3": (torch.float8_e4m3fn, torch.uint8), "e5m2": (torch.float8_e5m2, torch.uint8)}[fmt]
    v = decode(np.arange(0, 256, dtype=np.uint8), dtype, view).view(np.float32).astype(np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    return np.unique(v)


def ties_and_boundaries(rng):
    xs = []
    for fmt in ("bf16", "f16", "e4m3", "e5m2"):
        v = finite_positive(fmt)
        below = np.concatenate([[0.0], v])
        # Midpoints between neighbours, and between the largest finite and the next power
        # step (the overflow midpoint), each exact in f32 (checked below).
        step = v[-1] - v[-2]
        above = np.concatenate([v, [v[-1] + step]])
        mids = (below + above) / 2
        mids32 = mids.astype(np.float32)
        assert np.all(mids32.astype(np.float64) == mids), fmt
        # The values themselves and their neighbours only for FP8: (a) and (b) already cast
        # every f16 and bf16 value.
        for m in (mids32, v.astype(np.float32)) if fmt in ("e4m3", "e5m2") else (mids32,):
            xs += [m, np.nextafter(m, np.float32(np.inf)), np.nextafter(m, np.float32(0))]
    special = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, 448, 464, 480, 57344, 61440, 65504, 65520, 65536,
         3.3895313892515355e38, 3.3961775292304019e38, np.finfo(np.float32).max,
         2.0**-133, 2.0**-134, 1.5 * 2**-134, 2.0**-126, 2.0**-149, 2.0**-24, 2.0**-25,
         2.0**-9, 2.0**-10, 2.0**-16, 2.0**-17, 1.0, 1 + 2**-8, 1 + 3 * 2**-8],
        dtype=np.float32,
    )
    with np.errstate(invalid="ignore"):
        xs += [special, np.nextafter(special, np.float32(np.inf)), np.nextafter(special, np.float32(-np.inf))]
    bits = np.concatenate([x.astype(np.float32).view(np.uint32) for x in xs])
    bits = np.concatenate([bits, bits ^ 0x80000000])  # both signs
    # f32 subnormals (the smallest, and a spread), NaNs of several payloads, random f32.
    sub = np.concatenate([np.arange(1, 4097), rng.integers(1, 0x800000, 1024)]).astype(np.uint32)
    nans = np.array([0x7FC00000, 0x7F800001, 0x7FBFFFFF, 0x7FFFFFFF, 0x7FC12345, 0x7FA00000], dtype=np.uint32)
    rand = rng.integers(0, 2**32, 4096, dtype=np.uint64).astype(np.uint32)
    bits = np.concatenate([bits, sub, sub | 0x80000000, nans, nans | 0x80000000, rand])
    return np.unique(bits)  # sorted, no repeats: the outputs then compress to little


def main():
    rng = np.random.default_rng(20240611)
    members = {}
    findings = {}

    all16 = np.arange(65536, dtype=np.uint32)
    a_in = f16_widened(all16)
    torch_widened = decode(all16.astype(np.uint16), torch.float16, torch.int16)
    findings["f16_widening_matches_torch_float"] = bool(np.array_equal(a_in, torch_widened))
    assert findings["f16_widening_matches_torch_float"], "torch's f16 -> f32 differs from the exact widening"
    b_in = all16 << 16
    c_in = ties_and_boundaries(rng)
    members["c_inputs"] = c_in

    nan_diff = {}
    for name, inputs, targets in (
        ("a", a_in, ("bf16", "e4m3", "e5m2")),
        ("b", b_in, ("e4m3", "e5m2", "f16")),
        ("c", c_in, ("bf16", "f16", "e4m3", "e5m2")),
    ):
        is_nan = np.isnan(inputs.view(np.float32))
        for to in targets:
            vec = cast(inputs, to)
            sca = cast(inputs, to, strided=True)
            differ = vec != sca
            assert not np.any(differ & ~is_nan), (name, to, inputs[differ & ~is_nan][:10])
            if np.any(differ):
                nan_diff[f"{name}_{to}"] = sorted(
                    {f"{int(x):#x}->{int(v):#x} (scalar {int(s):#x})" for x, v, s in
                     zip(inputs[differ][:4], vec[differ][:4], sca[differ][:4])})
            members[f"{name}_{to}"] = vec

    members["d_e4m3"] = decode(np.arange(256, dtype=np.uint8), torch.float8_e4m3fn, torch.uint8)
    members["d_e5m2"] = decode(np.arange(256, dtype=np.uint8), torch.float8_e5m2, torch.uint8)
    members["d_bf16"] = decode(all16.astype(np.uint16), torch.bfloat16, torch.int16)
    members["d_f16"] = torch_widened

    def nan_out(to, x, n):
        bits = np.full(n, x, dtype=np.uint32)
        return {
            "contiguous": sorted({f"{int(v):#x}" for v in cast(bits, to)}),
            "strided": sorted({f"{int(v):#x}" for v in cast(bits, to, strided=True)}),
        }

    findings["nan_outputs_by_target_input_and_length"] = {
        to: {f"{x:#x}": {n: nan_out(to, x, n) for n in (1, 7, 4096)} for x in (0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF)}
        for to in TARGETS
    }
    findings["nan_patterns_vectorised_vs_scalar_differ"] = nan_diff
    meta = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "made_by": "tools/torch_cast_tables.py",
        "findings": findings,
    }
    members["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez_compressed(OUT, **members)
    print(json.dumps(meta, indent=1, sort_keys=True))
    for k, v in members.items():
        print(k, v.dtype, v.shape)
    print(OUT)


if __name__ == "__main__":
    main()
