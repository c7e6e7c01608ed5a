//! The casts of `gradstab::format` against PyTorch itself, bit for bit, without torch at test
//! time: `tests/data/torch_casts.npz` holds what PyTorch's CPU casts gave
//! (`torch.from_numpy(f32).to(torch.bfloat16 / float16 / float8_e4m3fn / float8_e5m2)`, read
//! back as bits) for every f16 and every bf16 pattern as an f32, for every tie between
//! neighbouring values of each format with the f32 on either side of it, for the overflow and
//! underflow regions, and how PyTorch decodes every bf16, f16 and FP8 pattern.
//! `tools/torch_cast_tables.py` wrote it; its `meta` member names the torch version.
//!
//! Every number, infinity and signed zero must match PyTorch's bits exactly, E4M3's
//! saturation included (PyTorch 2.15 casts every |x| > 464 and ±inf to ±448, 0x7E/0xFE, since
//! pytorch/pytorch#178817; `src/format.rs` says `Overflow::Saturate`). A NaN input
//! must give a NaN, of the same sign except in bf16, but its pattern is not compared: PyTorch's
//! own NaN pattern depends on the code path, not on the value. Its vectorised CPU cast to
//! bf16 (AVX2/AVX-512, any contiguous tensor, even of one element) writes 0xFFFF for every
//! NaN (`cvtfp32_bf16` in ATen/cpu/vec/vec512/vec512_bfloat16.h blends in
//! `_mm512_set1_epi32(0xffff)`), while its scalar path (a strided or 0-dim tensor, or
//! `ATEN_CPU_CAPABILITY=default`) writes 0x7FC0 (`round_to_nearest_even` in
//! c10/util/BFloat16.h), both whatever the sign; its f16 cast keeps the NaN's payload
//! (0x7FBFFFFF → 0x7FFF); its FP8 casts write 0x7F with the sign, where gradstab writes
//! E5M2's quiet NaN 0x7E. No value read back can tell these apart.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use gradstab::format::Format;

/// The arrays of the table, by member name, as raw little-endian npy payloads.
struct Table {
    members: HashMap<String, Vec<u8>>,
}

impl Table {
    fn load() -> Table {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/torch_casts.npz");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (tools/torch_cast_tables.py writes it)",
                path.display()
            )
        });
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut members = HashMap::new();
        for i in 0..archive.len() {
            let mut member = archive.by_index(i).unwrap();
            let name = member.name().trim_end_matches(".npy").to_string();
            let mut data = Vec::new();
            member.read_to_end(&mut data).unwrap();
            members.insert(name, data);
        }
        Table { members }
    }

    fn array<T: npyz::Deserialize>(&self, name: &str) -> Vec<T> {
        let data = self
            .members
            .get(name)
            .unwrap_or_else(|| panic!("torch_casts.npz has no member {name}"));
        let npy = npyz::NpyFile::new(&data[..]).unwrap();
        assert_eq!(npy.shape().len(), 1, "{name}: one dimension expected");
        npy.into_vec::<T>()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The table's metadata (JSON): the torch version and what the script found.
    fn meta(&self) -> serde_json::Value {
        let bytes = self.array::<u8>("meta");
        serde_json::from_slice(&bytes).expect("meta is JSON")
    }
}

fn width(format: Format) -> u32 {
    format.spec().total_bits()
}

fn is_nan_pattern(format: Format, bits: u32) -> bool {
    format.decode(bits).is_nan()
}

/// The f32 of f16 pattern `i`, widened exactly; a NaN keeps its payload with the quiet bit
/// set, as the table's script widened it (checked against torch's `.float()` there and
/// against the table's `d_f16` below).
fn f16_widened(i: u32) -> f32 {
    let sign = (i & 0x8000) << 16;
    let exponent = (i >> 10) & 0x1f;
    let mantissa = i & 0x3ff;
    if exponent == 0x1f && mantissa != 0 {
        return f32::from_bits(sign | 0x7f80_0000 | 0x40_0000 | mantissa << 13);
    }
    Format::F16.decode(i)
}

/// One disagreement with PyTorch, for the report.
struct Mismatch {
    case: String,
    input: u32,
    want: u32,
    got: u32,
}

/// Compares `format.encode` of each f32 input with PyTorch's pattern for it; numbers bit for
/// bit, NaN inputs by NaN-ness (and sign, except bf16).
fn compare_casts(
    case: &str,
    format: Format,
    inputs: &[u32],
    torch: &[u32],
    out: &mut Vec<Mismatch>,
) -> usize {
    assert_eq!(
        inputs.len(),
        torch.len(),
        "{case}: inputs and outputs differ in length"
    );
    let sign_bit = 1 << (width(format) - 1);
    for (&input, &want) in inputs.iter().zip(torch) {
        let x = f32::from_bits(input);
        let got = format.encode(x);
        let agrees = if x.is_nan() {
            let sign_agrees = format == Format::Bf16 || got & sign_bit == want & sign_bit;
            is_nan_pattern(format, got) && is_nan_pattern(format, want) && sign_agrees
        } else {
            got == want
        };
        if !agrees {
            out.push(Mismatch {
                case: case.to_string(),
                input,
                want,
                got,
            });
        }
    }
    inputs.len()
}

/// Compares `format.decode` of every pattern with PyTorch's f32: bits, or NaN for NaN.
fn compare_decodes(case: &str, format: Format, torch: &[u32], out: &mut Vec<Mismatch>) -> usize {
    assert_eq!(
        torch.len(),
        1 << width(format),
        "{case}: one value per pattern expected"
    );
    for (pattern, &want) in (0u32..).zip(torch) {
        let got = format.decode(pattern).to_bits();
        let agrees = if f32::from_bits(want).is_nan() {
            f32::from_bits(got).is_nan()
        } else {
            got == want
        };
        if !agrees {
            out.push(Mismatch {
                case: case.to_string(),
                input: pattern,
                want,
                got,
            });
        }
    }
    torch.len()
}

fn widen<T: Into<u32> + Copy>(v: &[T]) -> Vec<u32> {
    v.iter().map(|&x| x.into()).collect()
}

fn outputs(table: &Table, name: &str, format: Format) -> Vec<u32> {
    match width(format) {
        8 => widen(&table.array::<u8>(name)),
        16 => widen(&table.array::<u16>(name)),
        w => panic!("{name}: no table of {w}-bit outputs"),
    }
}

fn fail_on(mismatches: &[Mismatch], checked: usize, torch: &str) {
    if mismatches.is_empty() {
        return;
    }
    let mut report = format!(
        "{} of {checked} casts disagree with PyTorch {torch} (case: input → torch, gradstab):\n",
        mismatches.len()
    );
    let mut per_case: Vec<(&str, usize)> = Vec::new();
    for m in mismatches {
        match per_case.iter_mut().find(|(c, _)| *c == m.case) {
            Some((_, n)) => *n += 1,
            None => per_case.push((&m.case, 1)),
        }
    }
    for (case, n) in &per_case {
        report += &format!("  {case}: {n}\n");
    }
    let mut shown: HashMap<&str, usize> = HashMap::new();
    for m in mismatches {
        let n = shown.entry(&m.case).or_default();
        *n += 1;
        if *n > 8 {
            continue;
        }
        report += &format!(
            "  {}: {:#010x} ({:e}) → torch {:#06x}, gradstab {:#06x}\n",
            m.case,
            m.input,
            f32::from_bits(m.input),
            m.want,
            m.got
        );
    }
    panic!("{report}");
}

#[test]
fn every_cast_in_the_torch_table_matches_pytorch_bit_for_bit() {
    let table = Table::load();
    let meta = table.meta();
    let torch = meta["torch"]
        .as_str()
        .expect("meta names the torch version")
        .to_string();
    let mut mismatches = Vec::new();
    let mut checked = 0;

    // (a) every f16 pattern as an f32; (b) every bf16 pattern as an f32.
    let every_f16: Vec<u32> = (0..1 << 16).map(|i| f16_widened(i).to_bits()).collect();
    let every_bf16: Vec<u32> = (0..1u32 << 16).map(|i| i << 16).collect();
    // The widened f16 inputs are the ones the script cast: torch decodes each pattern to them.
    assert_eq!(
        every_f16,
        table.array::<u32>("d_f16"),
        "f16 widening differs from the table's"
    );
    for (prefix, inputs, targets) in [
        (
            "a",
            &every_f16,
            &[Format::Bf16, Format::E4m3, Format::E5m2][..],
        ),
        (
            "b",
            &every_bf16,
            &[Format::E4m3, Format::E5m2, Format::F16][..],
        ),
    ] {
        for &format in targets {
            let name = format!("{prefix}_{format}");
            let want = outputs(&table, &name, format);
            checked += compare_casts(&name, format, inputs, &want, &mut mismatches);
        }
    }

    // (c) ties, their neighbours, the overflow and underflow regions, specials, random f32.
    let c_inputs = table.array::<u32>("c_inputs");
    for format in [Format::Bf16, Format::F16, Format::E4m3, Format::E5m2] {
        let name = format!("c_{format}");
        let want = outputs(&table, &name, format);
        checked += compare_casts(&name, format, &c_inputs, &want, &mut mismatches);
    }

    // (d) every pattern decoded.
    for format in [Format::E4m3, Format::E5m2, Format::Bf16, Format::F16] {
        let name = format!("d_{format}");
        checked += compare_decodes(&name, format, &table.array::<u32>(&name), &mut mismatches);
    }

    fail_on(&mismatches, checked, &torch);
    eprintln!("{checked} casts and decodes agree with PyTorch {torch}");
}

/// The table is the one the script writes: complete, and holding the cases that matter, so
/// that a truncated or regenerated-with-fewer-inputs table cannot pass silently.
#[test]
fn the_torch_table_holds_every_pattern_and_the_boundary_cases() {
    let table = Table::load();
    let meta = table.meta();
    assert!(
        meta["torch"].as_str().is_some_and(|v| v.starts_with('2')),
        "{meta}"
    );
    for name in ["a_bf16", "b_f16"] {
        assert_eq!(table.array::<u16>(name).len(), 1 << 16, "{name}");
    }
    for name in ["d_bf16", "d_f16"] {
        assert_eq!(table.array::<u32>(name).len(), 1 << 16, "{name}");
    }
    for name in ["a_e4m3", "a_e5m2", "b_e4m3", "b_e5m2"] {
        assert_eq!(table.array::<u8>(name).len(), 1 << 16, "{name}");
    }
    for name in ["d_e4m3", "d_e5m2"] {
        assert_eq!(table.array::<u32>(name).len(), 256, "{name}");
    }
    let c_inputs = table.array::<u32>("c_inputs");
    let has = |x: f32| c_inputs.contains(&x.to_bits());
    let bf16_midpoint = f32::from_bits(0x7f7f_8000); // (2 − 2⁻⁸)·2¹²⁷, bf16's overflow tie
    let musts = [
        464.0,
        480.0,
        61440.0,
        65520.0,
        448.0,
        57344.0,
        65504.0,
        bf16_midpoint,
        f32::INFINITY,
        -0.0,
        1.0 + 2f32.powi(-8),
        2f32.powi(-134),
        f32::from_bits(1),
    ];
    for x in musts {
        assert!(has(x), "c_inputs lacks {x:e}");
        assert!(has(-x), "c_inputs lacks {:e}", -x);
        let (up, down) = (
            f32::from_bits(x.to_bits() + 1),
            f32::from_bits(x.to_bits() - 1),
        );
        if x.is_finite() && x != 0.0 && x.to_bits() != 1 {
            assert!(
                has(up) && has(down),
                "c_inputs lacks the neighbours of {x:e}"
            );
        }
    }
    // Every tie of every narrow format, with its neighbours, both signs.
    for format in [Format::Bf16, Format::F16, Format::E4m3, Format::E5m2] {
        let s = format.spec();
        let last = s.max_finite_bits() as u32;
        for p in 0..=last {
            let lo = format.decode(p) as f64;
            let hi = if p == last {
                s.overflow_midpoint() * 2.0 - lo
            } else {
                format.decode(p + 1) as f64
            };
            let mid = ((lo + hi) / 2.0) as f32;
            for x in [mid, -mid] {
                let b = x.to_bits();
                assert!(
                    has(x) && has(f32::from_bits(b + 1)) && has(f32::from_bits(b - 1)),
                    "{format}: c_inputs lacks the tie {x:e} or its neighbours"
                );
            }
        }
    }
}
