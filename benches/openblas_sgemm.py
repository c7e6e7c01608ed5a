"""The outside references for the CPU f32 matmul: OpenBLAS sgemm through NumPy and
torch.matmul, the median and spread of 20 timed products per shape after a warm-up, in
GFLOP/s (2·m·n·k per product).

    python3 benches/openblas_sgemm.py [n ...]     # square n³ products, default 1024
    python3 benches/openblas_sgemm.py --shapes    # the four shapes of benches/cpu_f32.rs

The shapes are the three products of an MLP layer at width 1024, batch 256 (NN, NT, TN, as
op(A)·op(B) with the transposes read as views, never copied) and 1024³ NN. Threads: all cores,
unless OPENBLAS_NUM_THREADS=N says otherwise (torch.set_num_threads(N) follows it).
"""
import os
import statistics
import sys
import time

import numpy as np

SHAPES = [
    ("NN", 256, 1024, 1024),
    ("NT", 256, 1024, 1024),
    ("TN", 1024, 256, 1024),
    ("NN", 1024, 1024, 1024),
]


def operands(op, m, k, n, rng):
    """Stored A and B for op(A)·op(B), and op(A), op(B) as (transposed) views."""
    a = rng.standard_normal((k, m) if op[0] == "T" else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if op[1] == "T" else (k, n), dtype=np.float32)
    return (a.T if op[0] == "T" else a), (b.T if op[1] == "T" else b)


def rates(product, flops, repeats=20):
    product()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        product()
        out.append(flops / (time.perf_counter() - start) / 1e9)
    return statistics.median(out), min(out), max(out)


def report(label, figures):
    median, low, high = figures
    print(f"{label}: median {median:.1f} GFLOP/s (min {low:.1f}, max {high:.1f})")


def main(argv):
    try:
        import torch
    except ImportError:
        torch = None
    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    if torch is not None and threads:
        torch.set_num_threads(int(threads))
    rng = np.random.default_rng(1)
    if argv and argv[0] == "--shapes":
        shapes = SHAPES
    else:
        shapes = [("NN", n, n, n) for n in (int(v) for v in argv)] or [("NN", 1024, 1024, 1024)]
    for op, m, k, n in shapes:
        a, b = operands(op, m, k, n, rng)
        name = f"{op} {m}x{k}x{n}"
        report(f"openblas sgemm {name}", rates(lambda: a @ b, 2 * m * n * k))
        if torch is not None:
            ta = torch.from_numpy(a.base if op[0] == "T" else a)
            ta = ta.T if op[0] == "T" else ta
            tb = torch.from_numpy(b.base if op[1] == "T" else b)
            tb = tb.T if op[1] == "T" else tb
            report(f"torch.matmul   {name}", rates(lambda: torch.matmul(ta, tb), 2 * m * n * k))


if __name__ == "__main__":
    main(sys.argv[1:])
