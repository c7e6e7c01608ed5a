#!/usr/bin/env python3
"""Plants one bug at a time in the shaders (which cargo-mutants cannot mutate) and in a few
places the tests were once blind to, runs the tests that cover it, and reports whether the
suite caught it. The tree is restored after every mutant, also on Ctrl-C.

    python3 tools/plant_mutants.py            # every mutant (about 20 minutes on 2 cores)
    python3 tools/plant_mutants.py reduce     # only mutants whose name contains "reduce"

Needs a GPU adapter (lavapipe will do): the shader mutants are only visible on one. Prints a
Markdown table for docs/testing.md and exits non-zero if any mutant survived.
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, file, text to replace, replacement, test targets that must catch it)
MUTANTS = [
    # matmul.wgsl
    ("matmul: accumulation dropped in the staged variants (a dropped term)", "shaders/matmul.wgsl",
     "acc[i * REG + j] = fma(a_reg[i], b_reg[j], acc[i * REG + j]);",
     "acc[i * REG + j] = a_reg[i] * b_reg[j];", ["matmul"]),
    ("matmul: op(A) read untransposed (a swapped transpose)", "shaders/matmul.wgsl",
     "return load_lhs(kk * params.m + row);", "return load_lhs(row * params.k + kk);", ["matmul"]),
    ("matmul: k bound off by one", "shaders/matmul.wgsl",
     "if (row >= params.m || kk >= params.k) {", "if (row >= params.m || kk > params.k) {",
     ["matmul"]),
    ("matmul: direct variant steps rows by 1, not THREADS_PER_EDGE (an off-by-one index)",
     "shaders/matmul.wgsl",
     "a_reg[i] = load_a(row0 + local.y + i * THREADS_PER_EDGE, kk);",
     "a_reg[i] = load_a(row0 + local.y + i, kk);", ["matmul"]),
    # activation.wgsl
    ("activation: tanh sign flipped for negative x (a flipped sign)", "shaders/activation.wgsl",
     "return select(t, -t, xc < A(0));", "return select(-t, t, xc < A(0));", ["activation"]),
    ("activation: sigmoid' as s·(1 − s), which cancels in the tails", "shaders/activation.wgsl",
     "return (A(1) / d) * (e / d);", "return (A(1) / d) * (A(1) - A(1) / d);", ["activation"]),
    ("activation: relu'(0) = 1 instead of PyTorch's 0", "shaders/activation.wgsl",
     "return select(A(0), A(1), x > A(0));", "return select(A(0), A(1), x >= A(0));",
     ["activation"]),
    ("activation: tanh polynomial's x^5 coefficient sign", "src/ops/activation/mod.rs",
     "    0.13333333333,", "    -0.13333333333,", ["activation"]),
    # elementwise.wgsl
    ("elementwise: axpy drops a·x (a dropped term)", "shaders/elementwise.wgsl",
     "store_out(i, load_y(i) + product);", "store_out(i, load_y(i));", ["elementwise"]),
    ("elementwise: clamp ignores its lower limit", "shaders/elementwise.wgsl",
     "store_out(i, clamp(v, -A(params.scalar), A(params.scalar)));",
     "store_out(i, min(v, A(params.scalar)));", ["elementwise"]),
    # reduce.wgsl
    ("reduce: Chan's δ² term dropped (a dropped term)", "shaders/reduce.wgsl",
     "a.z + b.z + delta * delta * (a.x * (b.x / n))", "a.z + b.z", ["stats"]),
    ("reduce: the fold of several partials keeps only the first", "shaders/reduce.wgsl",
     "            acc = chan(acc, vec3<f32>(n, mean, ldexp(partials[i].m2, 2 * f)));",
     "            if (c == t) { acc = chan(acc, vec3<f32>(n, mean, ldexp(partials[i].m2, 2 * f))); }",
     ["stats"]),
    ("reduce: a chunk's shift not moved to the segment's scale", "shaders/reduce.wgsl",
     "(ldexp(partials[i].shift, f) - shift)", "(partials[i].shift - shift)", ["stats"]),
    ("reduce: a chunk's M2 scaled by 2^f, not 2^2f", "shaders/reduce.wgsl",
     "ldexp(partials[i].m2, 2 * f)", "ldexp(partials[i].m2, f)", ["stats"]),
    ("reduce: a chunk's mean not moved to the segment's scale", "shaders/reduce.wgsl",
     "+ ldexp(partials[i].mean, f);", "+ partials[i].mean;", ["stats"]),
    ("gpu runtime: an upload does not submit the commands recorded before it",
     "src/gpu/buffer.rs", "        self.flush()?;\n        self.checked(\"upload\"", "        self.checked(\"upload\"",
     ["gpu_runtime"]),
    ("gpu runtime: the record queue refills a block whose records are still pending",
     "src/ops/reduce/gpu.rs", "if Arc::strong_count(block) == 1 {",
     "if Arc::strong_count(block) >= 1 {", ["stats"]),
    ("reduce: histogram bin off by one (an off-by-one index)", "shaders/reduce.wgsl",
     "atomicAdd(&wg_hist[d.biased_exp], 1u);", "atomicAdd(&wg_hist[d.biased_exp + 1u], 1u);",
     ["stats"]),
    ("reduce: NaN counted as an infinity (a swapped select)", "shaders/reduce.wgsl",
     "return select(select(SLOT_POS_INF, SLOT_NEG_INF, negative), SLOT_NAN, mantissa != 0u);",
     "return select(SLOT_NAN, select(SLOT_POS_INF, SLOT_NEG_INF, negative), mantissa != 0u);",
     ["stats"]),
    ("reduce: f16 subnormals decoded at twice their value", "shaders/reduce.wgsl",
     "let v = f32(m) * 5.9604644775390625e-8;", "let v = f32(m) * 1.1920928955078125e-7;",
     ["stats"]),
    # The network's backward pass, where GPU-against-CPU comparisons could not see a bug.
    ("network: dH = dZ·Wᵀ instead of dZ·W", "src/network/steps.rs",
     "backend.matmul(&dz, w.get(), MatmulOp::default(), precision)?,",
     "backend.matmul(&dz, w.get(), MatmulOp::new(false, true), precision)?,",
     ["reference"]),
    ("network: dW without act'", "src/network/steps.rs",
     "backend.matmul(&dz, h_prev, MatmulOp::new(true, false), precision)?,",
     "backend.matmul(&g, h_prev, MatmulOp::new(true, false), precision)?,",
     ["reference"]),
    # Training: the optimizer and loss kernels, and the step's wiring.
    ("optimizer: Adam without its second bias correction", "shaders/optimizer.wgsl",
     "let denom = rm(rm(rm(sqrt(v)) / params.bias_correction2_sqrt) + params.eps);",
     "let denom = rm(rm(sqrt(v)) + params.eps);", ["train_steps", "train_agreement"]),
    ("optimizer: SGD momentum buffer forgets the gradient", "shaders/optimizer.wgsl",
     "buf = rm(rm(load_first_moment(i) * params.momentum) + g);",
     "buf = rm(load_first_moment(i) * params.momentum);", ["train_steps", "train_agreement"]),
    ("optimizer: lerp's second formula with the wrong weight", "shaders/optimizer.wgsl",
     "m = rm(g - (g - m_old) * (1.0 - weight));", "m = rm(g - (g - m_old) * weight);",
     ["train_steps", "train_agreement"]),
    ("optimizer: the mixed-precision model copy not written", "shaders/optimizer.wgsl",
     "        store_model(i, w_new);", "        store_model(i, load_model(i));", ["train_agreement", "train_presets"]),
    ("loss: cross-entropy without the max shift (exp overflows)", "shaders/loss.wgsl",
     "        sum = sum + exp(f32(load_output(start + j)) - m);", "        sum = sum + exp(f32(load_output(start + j)));",
     ["train_steps"]),
    ("loss: MSE gradient without its coefficient", "shaders/loss.wgsl",
     "store_grad(start + j, d * A(params.coefficient));", "store_grad(start + j, d);",
     ["train_steps", "train_gradient"]),
    ("train: bias gradient from ∂l/∂H instead of ∂l/∂Z (act' dropped)", "src/network/steps.rs",
     "Some(backend.matmul(ones, &dz, MatmulOp::new(true, false), precision)?)",
     "Some(backend.matmul(ones, &g, MatmulOp::new(true, false), precision)?)",
     ["train_gradient"]),
    ("train: unscaling skipped (gradients stay times the loss scale)", "src/train/run.rs",
     "            grad_scale: scaler.inv_scale() as f64,", "            grad_scale: 1.0,",
     ["train_presets"]),
    ("train: the scaler never backs off", "src/train/scaler.rs",
     "            self.scale *= d.backoff_factor as f32;", "",
     ["train_steps", "train_agreement"]),
    # The training loop's wiring (tests/train_wiring.rs): each of these passed every other
    # test, since the GPU and the CPU share the loop.
    ("train: Adam's step count advances on steps the scaler skipped", "src/train/run.rs",
     "            step: self.optimizer_steps,", "            step: step as u64,",
     ["train_wiring"]),
    ("train: grad_norm still times the loss scale", "src/train/run.rs",
     "grad_norm: g.l2_norm * inv_scale,", "grad_norm: g.l2_norm,", ["train_wiring"]),
    ("train: update_ratio divided by ‖W‖ after the step", "src/train/run.rs",
     "ratios[t - 1] = delta.l2_norm / self.weight_norms[t - 1];",
     "ratios[t - 1] = delta.l2_norm / records[d + t - 1].l2_norm;", ["train_wiring"]),
    ("train: mixed precision saves the head from its f16 copy", "src/train/run.rs",
     "let master = match &self.weight_slots[t - 1].master {",
     "let master = match &self.weight_slots[t - 1].master.as_ref().filter(|_| t < d) {",
     ["train_wiring"]),
    ("train: mixed precision saves the biases from their f16 copy", "src/train/run.rs",
     "                            master: Some(m), ..\n                        }),\n"
     "                        _,\n                    ) => Some(backend.download(m)?),",
     "                            master: Some(_), ..\n                        }),\n"
     "                        Some(model),\n                    ) => Some(backend.download(model)?),",
     ["train_wiring"]),
    ("train: saved layers keyed 0, 1, 2, … instead of nn.Sequential's 0, 2, 4, …",
     "src/train/weights.rs", "let index = 2 * i;", "let index = i;", ["train_wiring"]),
    ("train: a shuffled minibatch's labels taken by position", "src/train/data.rs",
     "rows.iter().map(|&r| labels[r] as f32).collect(),",
     "(0..rows.len()).map(|r| labels[r] as f32).collect(),", ["train_wiring"]),
    ("train: the scaler's growth count survives a skip", "src/train/scaler.rs",
     "            self.scale *= d.backoff_factor as f32;\n            self.growth_tracker = 0;",
     "            self.scale *= d.backoff_factor as f32;", ["train_wiring"]),
    ("train: the scaler grows one step after its interval", "src/train/scaler.rs",
     "if successful == d.growth_interval {", "if successful > d.growth_interval {",
     ["train_wiring"]),
    ("loss: cross-entropy's row maximum started at 0", "shaders/loss.wgsl",
     "var m = f32(load_output(start));", "var m = 0.0;", ["train_wiring"]),
    ("loss: cross-entropy's row maximum misses the last column", "shaders/loss.wgsl",
     "for (var j = 1u; j < params.cols; j = j + 1u) {\n        m = max(",
     "for (var j = 1u; j < params.cols - 1u; j = j + 1u) {\n        m = max(", ["train_wiring"]),
    ("loss: the CPU's cross-entropy row maximum started at 0", "src/ops/loss/cpu.rs",
     "let m = o[1..].iter().fold(o[0], |m, &v| m.max(v));",
     "let m = o[1..].iter().fold(0.0f32, |m, &v| m.max(v));", ["train_wiring"]),
    ("loss: the CPU's cross-entropy row maximum misses the last column", "src/ops/loss/cpu.rs",
     "let m = o[1..].iter().fold(o[0], |m, &v| m.max(v));",
     "let m = o[1..cols - 1].iter().fold(o[0], |m, &v| m.max(v));", ["train_wiring"]),
    ("theory: backward scaled by the fan-in instead of the fan-out", "src/theory.rs",
     "let n_out = network.widths[t];", "let n_out = network.widths[t - 1];", ["lib"]),
    # Reliability: what outputs do to what is at their paths, and train's refusals.
    ("reliability: a device or FIFO given as an output is renamed over", "src/output.rs",
     "Ok(_) => return Ok(Destination::Node(current)),",
     "Ok(_) => return Ok(Destination::File(current)),", ["outputs"]),
    ("reliability: a replaced file loses its mode", "src/output.rs",
     "    file.set_permissions(old.permissions())\n", "    let _ = &old;\n    Ok(())\n", ["outputs"]),
    ("reliability: train streams its report before it writes the model", "src/cli/train.rs",
     "    // Files first, the report last",
     "    super::args::write_output(args.out.as_deref(), render)?;\n    // Files first, the report last",
     ["outputs"]),
    ("reliability: a flag's value that is inf in f32 passes", "src/checked.rs",
     "if !narrow.is_finite() {", "if narrow.is_nan() {", ["train_refusals"]),
    ("reliability: the teacher left out of train's memory estimate", "src/train/memory.rs",
     "samples * inputs * 12 + 2 * samples * wide * 8 + wide * wide * 8", "0",
     ["train_refusals"]),
    ("reliability: labels with gaps decide the outputs", "src/cli/train.rs",
     "if present < classes {", "if present < classes && false {", ["train_refusals"]),
    ("reliability: a diverged model is saved", "src/cli/train.rs",
     "Some(step) => refused_weights = Some((path, step)),",
     "Some(_) => train::weights::save(weights, path)?,", ["train_refusals"]),
    ("reliability: CSV cells that are formulas go out as they are", "src/report/columns.rs",
     "if text.starts_with(['=', '+', '-', '@', '\\t', '\\r']) {",
     "if text.starts_with(['\\r']) {", ["train_refusals"]),
    # The FP8 cast report.
    ("stats: E4M3's overflow counted from the tie at 464, which rounds down to 448", "src/stats.rs",
     "        overflow: if spec.overflows_at_midpoint() {", "        overflow: if true {",
     ["stats", "stats_edges"]),
    ("reduce: the overflow thresholds taken as exclusive on the GPU", "src/ops/reduce/gpu.rs",
     "select(0u, 1u, mag >= {f}_OVERFLOW)", "select(0u, 1u, mag > {f}_OVERFLOW)",
     ["stats", "stats_edges"]),
    # Formats as data: the generated casts, packed tensors, FP8 quantisation and its scales.
    ("codec: the generated casts round ties away from zero", "src/gpu/codec.rs",
     "rest > half || (rest == half && (kept & 1u) == 1u)", "rest >= half",
     ["formats_gpu", "reference"]),
    ("codec: a packed store clears its whole word (a neighbour's value lost)", "src/gpu/codec.rs",
     "atomicAnd(&{name}[i / {per_word}u], ~({mask}u << shift));",
     "atomicAnd(&{name}[i / {per_word}u], 0u);", ["formats_gpu", "reference"]),
    ("header: the bf16 master rounding left out (pure bf16 keeps f32 updates)", "src/gpu/header.rs",
     'None => format!("decode_{0}(encode_{0}(x))", format.name()),', 'None => "x".to_string(),',
     ["fp8", "train_agreement"]),
    ("matmul: FP8 products not dequantised", "shaders/matmul.wgsl",
     "c = c * A(params.out_scale);", "c = c;", ["fp8", "formats_gpu"]),
    ("fp8: quantisation follows the format's overflow rule, not saturation", "src/network/fp8.rs",
     "Ok((backend.cast(y, format, Overflowing::Saturate)?, scale))",
     "Ok((backend.cast(y, format, Overflowing::AsFormat)?, scale))", ["fp8"]),
    ("fp8: delayed scaling keeps only the last amax", "src/network/fp8.rs",
     "while h.len() > history {", "while h.len() > 1 {", ["fp8"]),
    ("fp8: dW dequantised with the weight's scale instead of the input's", "src/network/steps.rs",
     "out_scale(s_g, s_h)", "out_scale(s_g, s_w)", ["fp8"]),
    ("train: unchanged_fraction counts subnormal updates, not zero ones", "src/train/run.rs",
     "unchanged[t - 1] = delta.zero as f64", "unchanged[t - 1] = delta.subnormal as f64", ["fp8"]),
]


def run_tests(targets):
    env = dict(os.environ, GRADSTAB_REQUIRE_GPU="1")
    # lavapipe refuses a shared /tmp as its runtime directory, and says so on stderr.
    env.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp())
    args = ["cargo", "test", "--release", "--quiet"]
    for t in targets:
        # "lib" is the crate's unit tests.
        args += ["--lib"] if t == "lib" else ["--test", t]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    return result.returncode == 0, result.stdout + result.stderr


def main():
    wanted = sys.argv[1] if len(sys.argv) > 1 else ""
    rows, survived = [], 0
    for name, path, old, new, targets in MUTANTS:
        if wanted not in name:
            continue
        full = os.path.join(ROOT, path)
        original = open(full, encoding="utf-8").read()
        if old not in original:
            sys.exit(f"{name}: the text to replace is not in {path}")
        try:
            # The first occurrence only (matmul's staged path, where a line repeats).
            open(full, "w", encoding="utf-8").write(original.replace(old, new, 1))
            passed, _ = run_tests(targets)
        finally:
            open(full, "w", encoding="utf-8").write(original)
        verdict = "survived" if passed else "caught"
        survived += passed
        rows.append(f"| {name} | `{path}` | {', '.join(targets)} | {verdict} |")
        print(rows[-1], flush=True)
    print()
    print("| mutant | file | tests | result |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n{len(rows) - survived} of {len(rows)} caught")
    sys.exit(1 if survived else 0)


if __name__ == "__main__":
    main()
