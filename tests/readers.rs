//! The file readers against what NumPy, PyTorch and the formats mean: Fortran-ordered arrays
//! read as NumPy shows them, integer labels of every width in .npy/.npz as in safetensors,
//! every declared size bounded before it is allocated, names that would shadow each other,
//! state-dict layers in numeric order, and non-finite weights and data refused where they are
//! used (but reported by `stats`).
//!
//! `tests/data/numpy_*.npz` were written by NumPy 2 (python3, numpy):
//!
//! ```python
//! A = np.arange(6, dtype=np.float32).reshape(2, 3)
//! cube = np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
//! np.savez("numpy_fortran.npz", x=A.T, cube=cube)          # both fortran_order: True
//! x = np.arange(10, dtype=np.float32).reshape(5, 2) / 4
//! labels = [0, 2, 1, 2, 0]
//! np.savez("numpy_labels.npz", x=x, y=np.array(labels, dtype=np.int64),
//!          y_i4=np.array(labels, dtype=np.int32), y_u1=np.array(labels, dtype=np.uint8),
//!          y_be=np.array(labels, dtype=">i8"), x_be=x.astype(">f4"))
//! ```
//!
//! Every other file is crafted here byte by byte.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use gradstab::files::{self, FileDType, FileTensor};
use gradstab::network::{load_data, load_parameters, Loss};
use gradstab::train::data::load_train_data;
use gradstab::train::{Targets, TrainData};

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradstab-readers-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn f32_le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A .npy file (format 1.0) of `descr`, `shape` and the raw `data`, as NumPy writes it.
fn npy(descr: &str, shape: &[usize], fortran: bool, data: &[u8]) -> Vec<u8> {
    common::npy_bytes_in_order(descr, shape, fortran, data)
}

/// An .npz as `np.savez` writes it (stored members), through the zip crate.
fn npz(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in members {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file(*name, options).unwrap();
        std::io::Write::write_all(&mut zip, bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// CRC-32 (IEEE), as zip stores it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One central-directory entry of a crafted archive: its name, the member (by index) whose
/// local header it points at, and the uncompressed size it declares (zip64 above u32).
struct CentralEntry<'a> {
    name: &'a str,
    member: usize,
    declared: u64,
    method: u16,
}

/// A zip archive written field by field (PKWARE APPNOTE 4.3.7, 4.3.12, 4.3.16), so that
/// its central directory can lie: entries pointing at one member, sizes and compression that
/// are not the members'. Readers take both from the central directory; the local headers
/// say "stored" with the members' true sizes.
fn crafted_zip(members: &[(&str, &[u8])], central: &[CentralEntry]) -> Vec<u8> {
    let u16le = |v: usize| (v as u16).to_le_bytes();
    let u32le = |v: u64| (v as u32).to_le_bytes();
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for (name, data) in members {
        offsets.push(out.len() as u64);
        out.extend(b"PK\x03\x04");
        out.extend(u16le(20)); // version needed
        out.extend(u16le(0)); // flags
        out.extend(u16le(0)); // stored
        out.extend([0; 4]); // time, date
        out.extend(crc32(data).to_le_bytes());
        out.extend(u32le(data.len() as u64)); // compressed
        out.extend(u32le(data.len() as u64)); // uncompressed
        out.extend(u16le(name.len()));
        out.extend(u16le(0)); // extra field
        out.extend(name.as_bytes());
        out.extend(*data);
    }
    let directory = out.len() as u64;
    for e in central {
        let (_, data) = members[e.member];
        // A size beyond u32 goes in the zip64 extended information extra field.
        let zip64 = e.declared >= u32::MAX as u64;
        let extra: Vec<u8> = if zip64 {
            [
                &1u16.to_le_bytes()[..],
                &8u16.to_le_bytes(),
                &e.declared.to_le_bytes(),
            ]
            .concat()
        } else {
            Vec::new()
        };
        out.extend(b"PK\x01\x02");
        out.extend(u16le(45)); // made by
        out.extend(u16le(if zip64 { 45 } else { 20 }));
        out.extend(u16le(0)); // flags
        out.extend(u16le(e.method as usize));
        out.extend([0; 4]); // time, date
        out.extend(crc32(data).to_le_bytes());
        out.extend(u32le(data.len() as u64));
        out.extend(if zip64 {
            u32::MAX.to_le_bytes()
        } else {
            u32le(e.declared)
        });
        out.extend(u16le(e.name.len()));
        out.extend(u16le(extra.len()));
        out.extend(u16le(0)); // comment
        out.extend(u16le(0)); // disk
        out.extend(u16le(0)); // internal attributes
        out.extend([0; 4]); // external attributes
        out.extend(u32le(offsets[e.member]));
        out.extend(e.name.as_bytes());
        out.extend(extra);
    }
    let directory_len = out.len() as u64 - directory;
    out.extend(b"PK\x05\x06");
    out.extend([0; 4]); // disks
    out.extend(u16le(central.len()));
    out.extend(u16le(central.len()));
    out.extend(u32le(directory_len));
    out.extend(u32le(directory));
    out.extend(u16le(0)); // comment
    out
}

/// A deflate stream (RFC 1951 §3.2.6) of one block with fixed Huffman codes: a zero byte,
/// then `matches` copies of 258 bytes from distance 1, 13 bits each: 1 + 258·matches zeros.
fn deflated_zeros(matches: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut filled) = (0u64, 0);
    // Header fields go least significant bit first; Huffman codes most significant first.
    let mut put = |value: u32, bits: u32, msb_first: bool| {
        let value = if msb_first {
            value.reverse_bits() >> (32 - bits)
        } else {
            value
        };
        acc |= (value as u64) << filled;
        filled += bits;
        while filled >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
    };
    put(1, 1, false); // BFINAL
    put(1, 2, false); // BTYPE 01: fixed codes
    put(0x30, 8, true); // literal 0
    for _ in 0..matches {
        put(0xC5, 8, true); // length 258 (symbol 285)
        put(0, 5, true); // distance 1 (code 0)
    }
    put(0, 7, true); // end of block (symbol 256)
    put(0, 7, false); // pad the last byte
    out
}

const STORED: u16 = 0;
const DEFLATED: u16 = 8;

/// Each central entry pointing at its own member, declaring its true size.
fn honest(members: &[(&str, &[u8])]) -> Vec<u8> {
    let central: Vec<CentralEntry> = members
        .iter()
        .enumerate()
        .map(|(i, (name, data))| CentralEntry {
            name,
            member: i,
            declared: data.len() as u64,
            method: STORED,
        })
        .collect();
    crafted_zip(members, &central)
}

/// A safetensors file with this JSON header (padded as the format allows) and data.
fn safetensors_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

fn values(t: &FileTensor) -> Vec<f32> {
    t.values.as_ref().map_or(Vec::new(), |v| v.to_f32_vec())
}

fn tensor<'a>(tensors: &'a [FileTensor], name: &str) -> &'a FileTensor {
    tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
}

fn refused(result: gradstab::Result<impl std::fmt::Debug>, needle: &str) {
    match result {
        Ok(v) => panic!("read where '{needle}' was expected: {v:?}"),
        Err(e) => assert!(
            e.to_string().contains(needle),
            "'{needle}' missing from: {e}"
        ),
    }
}

/// `gradstab stats --backend cpu FILE`, in an address space of 1 GiB where `sh` can set one:
/// a reader that allocates what a header declares aborts there instead of succeeding lazily.
fn stats_bounded(path: &Path) -> Output {
    let start = Instant::now();
    let out = common::cli(["stats", "--backend", "cpu"])
        .arg(path)
        .through("sh", ["-c", "ulimit -v 1048576 && exec \"$0\" \"$@\""])
        .output();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{} took {:?}",
        path.display(),
        start.elapsed()
    );
    out
}

fn assert_stats_refuse(path: &Path, needle: &str) {
    let out = stats_bounded(path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}: {err}", path.display());
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "'{needle}' missing from: {err}");
}

#[test]
fn fortran_ordered_arrays_are_read_as_numpy_shows_them() {
    // NumPy's own files: x = A.T of A = arange(6).reshape(2, 3), so x[i][j] = 3j + i; the
    // cube is arange(24).reshape(2, 3, 4), stored column-major.
    let tensors = files::load(&fixture("numpy_fortran.npz")).unwrap();
    let x = tensor(&tensors, "x");
    assert_eq!(x.shape, [3, 2]);
    assert_eq!(values(x), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    let cube = tensor(&tensors, "cube");
    assert_eq!(cube.shape, [2, 3, 4]);
    assert_eq!(values(cube), (0..24).map(|v| v as f32).collect::<Vec<_>>());

    // Crafted: element (i, j, k) of a [2, 3, 4] array is 100i + 10j + k, stored at
    // i + 2j + 6k; row-major order is then 0, 1, 2, 3, 10, 11, …
    let dir = temp_dir("fortran");
    let shape = [2, 3, 4];
    let mut stored = vec![0f32; 24];
    let mut row_major = Vec::new();
    for i in 0..2 {
        for j in 0..3 {
            for k in 0..4 {
                let v = (100 * i + 10 * j + k) as f32;
                stored[i + 2 * j + 6 * k] = v;
                row_major.push(v);
            }
        }
    }
    let path = write(
        &dir,
        "cube.npy",
        &npy("<f4", &shape, true, &f32_le(&stored)),
    );
    assert_eq!(values(&files::load(&path).unwrap()[0]), row_major);
    // A column-major f16 matrix too (the other storage type), and a 1-D array, whose order
    // is the same either way.
    // [[1, 2, 3], [4, 5, 6]] column by column.
    let halves: Vec<u8> = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0]
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let path = write(&dir, "m.npy", &npy("<f2", &[2, 3], true, &halves));
    let m = &files::load(&path).unwrap()[0];
    assert_eq!(m.dtype, FileDType::F16);
    assert_eq!(values(m), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let path = write(
        &dir,
        "v.npy",
        &npy("<f4", &[3], true, &f32_le(&[7.0, 8.0, 9.0])),
    );
    assert_eq!(values(&files::load(&path).unwrap()[0]), [7.0, 8.0, 9.0]);

    // What training sees: the rows of x = A.T as NumPy prints them.
    let data = npz(&[
        (
            "x.npy",
            npy(
                "<f4",
                &[3, 2],
                true,
                &f32_le(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
            ),
        ),
        (
            "y.npy",
            npy(
                "<i8",
                &[3],
                false,
                &[0, 1, 1].map(|v: i64| v.to_le_bytes()).concat(),
            ),
        ),
    ]);
    let path = write(&dir, "train.npz", &data);
    let train = load_train_data(&path).unwrap();
    assert_eq!(train.x.to_f32_vec(), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
}

/// x and labels of the given little-endian width, as `descr` says, in an .npz.
fn labelled_npz(dir: &Path, descr: &str, labels: &[u8]) -> PathBuf {
    let x = f32_le(&[0.5, -1.0, 2.0, 0.25, -0.75, 1.5]);
    let data = npz(&[
        ("x.npy", npy("<f4", &[3, 2], false, &x)),
        ("y.npy", npy(descr, &[3], false, labels)),
    ]);
    write(
        dir,
        &format!("labels{}.npz", descr.replace(['<', '>', '|'], "_")),
        &data,
    )
}

#[test]
fn integer_labels_in_npy_and_npz_train_as_safetensors_labels_do() {
    let dir = temp_dir("labels");
    // The reference: the same set with i64 labels in safetensors, which was read before.
    let x = f32_le(&[0.5, -1.0, 2.0, 0.25, -0.75, 1.5]);
    let labels: Vec<u8> = [2i64, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},\
                  \"y\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[24,48]}}";
    let reference_path = write(
        &dir,
        "reference.safetensors",
        &safetensors_file(header, &[x.clone(), labels].concat()),
    );
    let reference = load_train_data(&reference_path).unwrap();
    assert_eq!(reference.targets, Targets::Labels(vec![2, 0, 1]));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("<i1", vec![2, 0, 1]),
        (
            "<i2",
            [2i16, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "<i4",
            [2i32, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "<i8",
            [2i64, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        ("|u1", vec![2, 0, 1]),
        (
            "<u2",
            [2u16, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "<u4",
            [2u32, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "<u8",
            [2u64, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        // Big-endian, as on a big-endian machine or with an explicit '>' dtype.
        (
            ">i4",
            [2i32, 0, 1].iter().flat_map(|v| v.to_be_bytes()).collect(),
        ),
        (
            ">u8",
            [2u64, 0, 1].iter().flat_map(|v| v.to_be_bytes()).collect(),
        ),
    ];
    for (descr, bytes) in &cases {
        let path = labelled_npz(&dir, descr, bytes);
        let got: TrainData = load_train_data(&path).unwrap_or_else(|e| panic!("{descr}: {e}"));
        assert_eq!(got, reference, "{descr}");
    }

    // NumPy's own file: <i8, <i4, |u1 and >i8 labels, and a >f4 copy of x.
    let tensors = files::load(&fixture("numpy_labels.npz")).unwrap();
    let x = values(tensor(&tensors, "x"));
    assert_eq!(x, (0..10).map(|v| v as f32 / 4.0).collect::<Vec<_>>());
    assert_eq!(values(tensor(&tensors, "x_be")), x);
    for (name, dtype) in [
        ("y", FileDType::I64),
        ("y_i4", FileDType::I32),
        ("y_u1", FileDType::U8),
        ("y_be", FileDType::I64),
    ] {
        let t = tensor(&tensors, name);
        assert_eq!(t.dtype, dtype, "{name}");
        assert_eq!(values(t), [0.0, 2.0, 1.0, 2.0, 0.0], "{name}");
    }
    let numpy = load_train_data(&fixture("numpy_labels.npz")).unwrap();
    assert_eq!(numpy.targets, Targets::Labels(vec![0, 2, 1, 2, 0]));

    // Big-endian floats are read, not refused.
    let be: Vec<u8> = [1.5f64, -2.25]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let path = write(&dir, "be.npy", &npy(">f8", &[2], false, &be));
    assert_eq!(values(&files::load(&path).unwrap()[0]), [1.5, -2.25]);

    // A label beyond 2^24 would not survive f32: training refuses it, stats reads it with a
    // note, as for safetensors.
    let big: Vec<u8> = [0i64, (1 << 24) + 1, 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let path = labelled_npz(&dir, "<i8", &big);
    refused(
        load_train_data(&path),
        "holds the integer 16777217, beyond the ±2^24",
    );
    let y = files::load(&path).unwrap().remove(1);
    assert!(y.note.unwrap().contains("16777217"));

    // Dtypes that are not numbers of one of these kinds are refused, saying which are read.
    for (descr, item) in [("<c8", 8), ("|b1", 1), ("<f16", 16), ("<m8[s]", 8)] {
        let path = write(
            &dir,
            "odd.npy",
            &npy(descr, &[2], false, &vec![0; 2 * item]),
        );
        refused(files::load(&path), &format!("unsupported dtype '{descr}'"));
    }
}

#[test]
fn declared_sizes_are_bounded_before_anything_is_allocated() {
    let dir = temp_dir("bounds");
    let array = npy("<f4", &[4], false, &f32_le(&[1.0, 2.0, 3.0, 4.0]));
    let one = |name, declared, method| CentralEntry {
        name,
        member: 0,
        declared,
        method,
    };
    // The control: the crafted archive, honest, reads back.
    let path = write(&dir, "honest.npz", &honest(&[("x.npy", &array)]));
    assert_eq!(
        values(&files::load(&path).unwrap()[0]),
        [1.0, 2.0, 3.0, 4.0]
    );
    assert!(stats_bounded(&path).status.success());

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // 15 bytes whose preamble declares a 4 GiB header.
        (
            "header.npy",
            b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}\n".to_vec(),
            "declares a header ending at byte 4294967307, but the file holds 15 bytes",
        ),
        (
            "header1.npy",
            [&b"\x93NUMPY\x01\x00\xff\xff{"[..], &[b' '; 100]].concat(),
            "declares a header ending at byte 65545",
        ),
        // A member declaring 2^62 bytes (zip64): no machine has a third of that.
        (
            "huge.npz",
            crafted_zip(&[("x.npy", &array)], &[one("x.npy", 1 << 62, DEFLATED)]),
            "the archive's members decompressed (4.0 EiB) would take more than a third of",
        ),
        // 1 MiB from the array's 144 bytes: more than stored data (or deflate, at 1032:1)
        // can hold.
        (
            "stored.npz",
            crafted_zip(&[("x.npy", &array)], &[one("x.npy", 1 << 20, STORED)]),
            "member x.npy declares 1048576 bytes, more than its 144 compressed bytes can hold",
        ),
        (
            "deflated.npz",
            crafted_zip(
                &[("x.npy", &array)],
                &[one("x.npy", 1032 * array.len() as u64 + 1, DEFLATED)],
            ),
            "member x.npy declares 148609 bytes, more than its 144 compressed bytes",
        ),
        // A member that holds more than it declares is not read past its declaration.
        (
            "more.npz",
            crafted_zip(&[("x.npy", &array)], &[one("x.npy", 100, STORED)]),
            "member x.npy decompresses to more bytes than the 100 it declares",
        ),
        // 128 bytes declared, 1.2 GiB of zeros inside: read only as far as declared.
        (
            "lying.npz",
            crafted_zip(
                &[("x.npy", &deflated_zeros(5 << 20))],
                &[one("x.npy", 128, DEFLATED)],
            ),
            "member x.npy decompresses to more bytes than the 128 it declares",
        ),
        // Compressed data said to run into the central directory.
        (
            "past.npz",
            {
                let mut zip = honest(&[("x.npy", &array)]);
                let entry = zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
                zip[entry + 20..entry + 24].copy_from_slice(&1000u32.to_le_bytes());
                zip
            },
            "member x.npy runs past the archive's data",
        ),
        // A zip bomb's shape: entries sharing one member's data.
        (
            "bomb.npz",
            crafted_zip(
                &[("a.npy", &array)],
                &[
                    one("a.npy", array.len() as u64, STORED),
                    one("b.npy", array.len() as u64, STORED),
                    one("c.npy", array.len() as u64, STORED),
                ],
            ),
            "overlap in the file (as in a zip bomb)",
        ),
        // safetensors: a header length beyond the file, and beyond any header.
        (
            "header.safetensors",
            [&(50u64 << 20).to_le_bytes()[..], b"{}"].concat(),
            "not a valid safetensors file",
        ),
        (
            "huge.safetensors",
            [&u64::MAX.to_le_bytes()[..], b"{}"].concat(),
            "header too large",
        ),
        // Data offsets that overlap.
        (
            "overlap.safetensors",
            safetensors_file(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\
                  \"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                &[0; 12],
            ),
            "invalid offset",
        ),
    ];
    for (name, bytes, needle) in &cases {
        let path = write(&dir, name, bytes);
        refused(files::load(&path), needle);
        assert_stats_refuse(&path, needle);
    }
}

#[test]
fn names_that_would_shadow_each_other_are_refused_naming_both() {
    let dir = temp_dir("duplicates");
    let ones = npy("<f4", &[2], false, &f32_le(&[1.0, 1.0]));
    let zeros = npy("<f4", &[2], false, &f32_le(&[0.0, 0.0]));
    let path = write(
        &dir,
        "twice.npz",
        &honest(&[("x.npy", &ones), ("y.npy", &ones), ("x.npy", &zeros)]),
    );
    refused(files::load(&path), "two entries are named x.npy");
    // Distinct names read as before (the control).
    let path = write(
        &dir,
        "once.npz",
        &honest(&[("x.npy", &ones), ("y.npy", &zeros)]),
    );
    let tensors = files::load(&path).unwrap();
    assert_eq!(values(tensor(&tensors, "x")), [1.0, 1.0]);
    assert_eq!(values(tensor(&tensors, "y")), [0.0, 0.0]);

    // One key twice in a safetensors header (the same bytes, so the offsets check passes).
    let path = write(
        &dir,
        "twice.safetensors",
        &safetensors_file(
            "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\
              \"x\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
            &f32_le(&[1.0, 2.0]),
        ),
    );
    refused(files::load(&path), "the header lists 'x' twice");

    // Two state-dict keys for one parameter.
    let weight = f32_le(&[1.0, 2.0]);
    let entry = |name: &str, offset: usize| {
        format!(
            "\"{name}\":{{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[{offset},{}]}}",
            offset + 8
        )
    };
    for (a, b, needle) in [
        (
            "0.weight",
            "00.weight",
            "'0.weight' and '00.weight' both name the weight of layer 0",
        ),
        (
            "2.weight",
            "+2.weight",
            "'+2.weight' and '2.weight' both name the weight of layer 2",
        ),
        ("net.0.weight", "0.weight", "does not share the prefix"),
    ] {
        let header = format!("{{{},{}}}", entry(a, 0), entry(b, 8));
        let path = write(
            &dir,
            "state.safetensors",
            &safetensors_file(&header, &[weight.clone(), weight.clone()].concat()),
        );
        refused(load_parameters(&path), needle);
    }
}

#[test]
fn state_dict_layers_are_taken_in_numeric_order() {
    // Twelve layers 0..=11 of widths 2, 3, …, 14: in string order '10.weight' would follow
    // '1.weight' and the widths would not chain. W^t[i][j] = 1000t + 10i + j says where
    // every value landed.
    let dir = temp_dir("order");
    let depth = 12;
    let widths: Vec<usize> = (0..=depth).map(|t| t + 2).collect();
    let mut header = Vec::new();
    let mut data = Vec::new();
    let mut expected = Vec::new();
    for t in 0..depth {
        let (rows, cols) = (widths[t + 1], widths[t]);
        let w: Vec<f32> = (0..rows * cols)
            .map(|k| (1000 * t + 10 * (k / cols) + k % cols) as f32)
            .collect();
        header.push(format!(
            "\"{t}.weight\":{{\"dtype\":\"F32\",\"shape\":[{rows},{cols}],\"data_offsets\":[{},{}]}}",
            data.len(),
            data.len() + 4 * w.len()
        ));
        data.extend(f32_le(&w));
        expected.push(w);
    }
    let path = write(
        &dir,
        "deep.safetensors",
        &safetensors_file(&format!("{{{}}}", header.join(",")), &data),
    );
    let given = load_parameters(&path).unwrap();
    assert_eq!(given.widths(), widths);
    for (t, w) in given.weights.iter().enumerate() {
        assert_eq!(w.to_f32_vec(), expected[t], "layer {t}");
    }
}

#[test]
fn non_finite_weights_and_data_are_refused_where_used_and_reported_by_stats() {
    let dir = temp_dir("finite");
    let (nan, inf) = (f32::NAN, f32::INFINITY);
    let x = [0.5, nan, 2.0, inf, -inf, 1.5];
    let y = [1.0, 2.0, 3.0];
    let data = npz(&[
        ("x.npy", npy("<f4", &[3, 2], false, &f32_le(&x))),
        ("y.npy", npy("<f4", &[3, 1], false, &f32_le(&y))),
    ]);
    let path = write(&dir, "data.npz", &data);
    let needle = "'x' holds 3 non-finite values (NaN or inf)";
    refused(load_train_data(&path), needle);
    refused(load_data(&path, Loss::Mse), needle);
    // stats reports them: 1 NaN, 2 infinities.
    let out = common::cli(["stats", "--backend", "cpu", "--format", "csv"])
        .arg(&path)
        .output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv
        .lines()
        .find(|l| l.starts_with("x,"))
        .unwrap()
        .split(',')
        .collect();
    let column = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(
        (column("nan"), column("pos_inf"), column("neg_inf")),
        ("1", "1", "1")
    );

    // In y, and in f16 storage.
    let y16: Vec<u8> = [1.0, nan, nan]
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let data = npz(&[
        (
            "x.npy",
            npy("<f4", &[3, 1], false, &f32_le(&[1.0, 2.0, 3.0])),
        ),
        ("y.npy", npy("<f2", &[3, 1], false, &y16)),
    ]);
    let path = write(&dir, "y.npz", &data);
    refused(load_train_data(&path), "'y' holds 2 non-finite values");
    refused(load_data(&path, Loss::Mse), "'y' holds 2 non-finite values");

    // In a state dict's weight and bias.
    for (name, shape, bytes) in [
        ("0.weight", "[1,2]", f32_le(&[1.0, -inf])),
        ("0.bias", "[1]", f32_le(&[nan])),
    ] {
        let mut header = vec![
            "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}".to_string(),
        ];
        let mut data = f32_le(&[1.0, 2.0]);
        if name == "0.weight" {
            data = bytes;
        } else {
            header.push(format!(
                "\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":[8,12]}}"
            ));
            data.extend(bytes);
        }
        let path = write(
            &dir,
            "w.safetensors",
            &safetensors_file(&format!("{{{}}}", header.join(",")), &data),
        );
        refused(
            load_parameters(&path),
            &format!("'{name}' holds 1 non-finite values (NaN or inf)"),
        );
    }
}

#[test]
fn run_reads_x_from_a_file_whose_y_is_labels() {
    // The probe and sum losses ignore y (and say so), MSE needs floats, cross-entropy reads
    // the labels.
    let data = load_data(&fixture("numpy_labels.npz"), Loss::Probe).unwrap();
    assert_eq!(
        (&data.y, &data.labels, data.y_ignored),
        (&None, &None, true)
    );
    let data = load_data(&fixture("numpy_labels.npz"), Loss::CrossEntropy).unwrap();
    assert_eq!(data.y, None);
    assert!(!data.y_ignored);
    assert_eq!(data.labels, Some(vec![0, 2, 1, 2, 0]));
    assert_eq!(
        data.x.to_f32_vec(),
        (0..10).map(|v| v as f32 / 4.0).collect::<Vec<_>>()
    );
    let run = |loss: &str| {
        common::cli(["run", "--backend", "cpu", "--quiet", "--depth", "2"])
            .args(["--loss", loss, "--data"])
            .arg(fixture("numpy_labels.npz"))
            .output()
    };
    let out = run("probe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run("mse");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--loss mse needs targets"), "{err}");
    assert!(err.contains("no float y"), "{err}");
}

#[test]
fn archives_with_directories_other_members_and_scalars_read_as_numpy_reads_them() {
    let dir = temp_dir("neighbours");
    // A 0-d array (shape "()", as np.save(f, np.float32(3.5)) writes it) holds one value.
    let path = write(&dir, "scalar.npy", &npy("<f4", &[], false, &f32_le(&[3.5])));
    let t = &files::load(&path).unwrap()[0];
    assert_eq!((t.shape.clone(), values(t)), (vec![], vec![3.5]));

    // A directory entry and a member that is not an array are skipped; an array in a
    // folder is named by its path, as `np.load(...).files` names it.
    let array = npy("<f4", &[2], false, &f32_le(&[1.0, 2.0]));
    let path = write(
        &dir,
        "folders.npz",
        &honest(&[
            ("sub/", b""),
            ("sub/x.npy", &array),
            ("notes.txt", b"hello"),
        ]),
    );
    let tensors = files::load(&path).unwrap();
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["sub/x"]);
    // An archive with no arrays says so.
    let path = write(&dir, "empty.npz", &honest(&[("notes.txt", b"hello")]));
    refused(files::load(&path), "the archive holds no .npy arrays");
}

#[test]
fn training_targets_of_the_wrong_kind_or_count_are_refused_saying_what_is_read() {
    let dir = temp_dir("targets");
    let x = npy(
        "<f4",
        &[3, 2],
        false,
        &f32_le(&[0.5, -1.0, 2.0, 0.25, -0.75, 1.5]),
    );
    let i64_le = |v: &[i64]| -> Vec<u8> { v.iter().flat_map(|v| v.to_le_bytes()).collect() };
    let cases = [
        // Cast to u32, a negative label would train as class 0.
        (
            "negative",
            npy("<i8", &[3], false, &i64_le(&[1, -1, 0])),
            "y holds the label -1; labels are ≥ 0",
        ),
        // [N] floats are neither labels nor [N, outputs] values: not read as labels.
        (
            "flat",
            npy("<f4", &[3], false, &f32_le(&[1.0, 0.0, 1.0])),
            "'y' has shape [3], but float targets y must be a non-empty 2-D matrix",
        ),
        // Integer [N, 1]: labels are [N], and integers are not MSE targets.
        (
            "column",
            npy("<i8", &[3, 1], false, &i64_le(&[1, 0, 1])),
            "integer y must be [N] labels, got shape [3, 1]",
        ),
        (
            "few labels",
            npy("<i8", &[2], false, &i64_le(&[1, 0])),
            "x has 3 rows but y has 2 labels",
        ),
        (
            "few values",
            npy("<f4", &[2, 1], false, &f32_le(&[1.0, 0.0])),
            "x has 3 rows but y has 2",
        ),
    ];
    for (name, y, needle) in cases {
        let path = write(
            &dir,
            &format!("{name}.npz"),
            &npz(&[("x.npy", x.clone()), ("y.npy", y)]),
        );
        refused(load_train_data(&path), needle);
    }
}

#[test]
fn empty_matrices_are_refused_by_their_shape_in_every_reader() {
    // A zero in either dimension: the shape is named, not only "no elements".
    let dir = temp_dir("empty");
    let empty = |name: &str, shape: &str| {
        format!("\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":[0,0]}}")
    };
    for (shape, shown) in [("[0,5]", "[0, 5]"), ("[5,0]", "[5, 0]")] {
        let header = format!("{{{},{}}}", empty("x", shape), empty("y", shape));
        let path = write(&dir, "data.safetensors", &safetensors_file(&header, &[]));
        let needle = format!("'x' has shape {shown}, but the input batch x must be a non-empty");
        refused(load_data(&path, Loss::Probe), &needle);
        let needle = format!("'x' has shape {shown}, but the inputs x must be a non-empty");
        refused(load_train_data(&path), &needle);
        let header = format!("{{{}}}", empty("0.weight", shape));
        let path = write(&dir, "state.safetensors", &safetensors_file(&header, &[]));
        let needle =
            format!("'0.weight' has shape {shown}, but an nn.Linear weight must be a non-empty");
        refused(load_parameters(&path), &needle);
    }
}

#[test]
fn fp8_safetensors_tensors_read_as_their_exact_values() {
    // Every pattern of each FP8 format, as PyTorch's safetensors writes float8 tensors.
    let dir = temp_dir("fp8");
    let patterns: Vec<u8> = (0..=255).collect();
    let data = [patterns.clone(), patterns.clone()].concat();
    let header = r#"{"e4m3":{"dtype":"F8_E4M3","shape":[16,16],"data_offsets":[0,256]},"e5m2":{"dtype":"F8_E5M2","shape":[256],"data_offsets":[256,512]}}"#;
    let path = write(&dir, "fp8.safetensors", &safetensors_file(header, &data));
    let tensors = files::load(&path).unwrap();
    for (name, dtype, format, nan, inf) in [
        (
            "e4m3",
            FileDType::F8E4m3,
            gradstab::format::Format::E4m3,
            2,
            0,
        ),
        (
            "e5m2",
            FileDType::F8E5m2,
            gradstab::format::Format::E5m2,
            6,
            2,
        ),
    ] {
        let t = tensor(&tensors, name);
        assert_eq!(t.dtype, dtype);
        let got = values(t);
        assert_eq!(got.len(), 256);
        for (bits, v) in patterns.iter().zip(&got) {
            let want = format.decode(*bits as u32);
            assert!(
                v.to_bits() == want.to_bits() || (v.is_nan() && want.is_nan()),
                "{name} {bits:#04x}: {v:e}, want {want:e}"
            );
        }
        assert_eq!(got.iter().filter(|v| v.is_nan()).count(), nan, "{name}");
        assert_eq!(
            got.iter().filter(|v| v.is_infinite()).count(),
            inf,
            "{name}"
        );
    }
    // The largest finite of each, read through `gradstab stats`.
    let out = common::cli(["stats", "--backend", "cpu", "--format", "json"])
        .arg(&path)
        .output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = report.to_string();
    assert!(
        text.contains("\"f8_e4m3\"") && text.contains("\"f8_e5m2\""),
        "{text}"
    );
}
