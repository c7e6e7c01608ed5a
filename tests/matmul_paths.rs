//! The fast paths of the GPU matmul (unchecked loads and stores in interior workgroups, vector
//! loads where an operand's contiguous dimension is a multiple of 4) against the checked path
//! that tests every load: the same bits, element for element, in every precision, operand
//! format, transpose combination and variant. The checked path itself is held to the CPU
//! reference by tests/matmul.rs.

mod common;

use gradstab::ops::matmul::gpu::{matmul_with_paths, MatmulPaths};
use gradstab::ops::matmul::MatmulVariant;
use gradstab::{Backend, DType, HostTensor, MatmulOp, Precision};

/// Shapes (m, k, n) with interior and boundary workgroups of both tile sizes (32 and 64), and
/// k-blocks (16) whole and ragged:
/// - 128 × 48 × 128: every workgroup interior, every k-block whole, every dimension a multiple
///   of 4 (every operand read through its vector view);
/// - 132 × 52 × 68: a boundary row and column of workgroups around interior ones, a last
///   k-block of 4, dimensions multiples of 4;
/// - 127 × 37 × 70: odd m and k (no vector view where they are contiguous), n ≡ 2 (mod 4), one
///   row short of a whole last row of workgroups.
const SHAPES: [(usize, usize, usize); 3] = [(128, 48, 128), (132, 52, 68), (127, 37, 70)];

/// The operand formats a precision's matmul takes: its storage format, and for FP8 the packed
/// E4M3 operands of the forward product (the dequantising kernel).
fn operand_formats(precision: Precision) -> Vec<DType> {
    let mut formats = vec![precision.storage()];
    if let Some(q) = precision.quantised() {
        formats.push(q.forward);
    }
    formats
}

#[test]
fn the_fast_paths_give_the_bits_of_the_checked_path() {
    let Some(gpu) = common::gpu("matmul fast paths") else {
        return;
    };
    let mut compared = 0;
    for (m, k, n) in SHAPES {
        for precision in common::precisions(&gpu, "matmul fast paths") {
            for format in operand_formats(precision) {
                for op in MatmulOp::ALL {
                    let mut rng = common::rng(57);
                    let (a_shape, b_shape) = op.operand_shapes(m, k, n);
                    let a =
                        common::normal_tensor(&mut rng, format, a_shape.rows, a_shape.cols, 1.0);
                    let b =
                        common::normal_tensor(&mut rng, format, b_shape.rows, b_shape.cols, 1.0);
                    let (ga, gb) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
                    for variant in MatmulVariant::ALL {
                        let product = |paths| -> HostTensor {
                            let c =
                                matmul_with_paths(&gpu, &ga, &gb, op, precision, variant, paths);
                            gpu.download(&c.unwrap()).unwrap()
                        };
                        let (checked, fast) =
                            (product(MatmulPaths::Checked), product(MatmulPaths::Fast));
                        let what =
                            format!("{variant} {precision} {format} {} {m}×{k}×{n}", op.name());
                        assert_eq!(checked.len(), m * n, "{what}");
                        assert_eq!(fast.len(), m * n, "{what}");
                        // N(0, 1) operands: a product of all zeros would mean nothing ran.
                        assert!(checked.to_f32_vec().iter().any(|&c| c != 0.0), "{what}");
                        for i in 0..m * n {
                            // The stored bits, so that a NaN or a signed zero must match too.
                            let (c, f) = (checked.data().bits(i), fast.data().bits(i));
                            assert_eq!(
                                c,
                                f,
                                "{what}: C[{}, {}] has bits {c:#x} on the checked path but {f:#x} on the fast one",
                                i / n,
                                i % n
                            );
                        }
                        compared += 1;
                    }
                }
            }
        }
    }
    // Every shape, at least f32, every transpose and variant.
    assert!(
        compared >= SHAPES.len() * 4 * 3,
        "{compared} products compared"
    );
}
