"""OpenBLAS sgemm through NumPy, the outside reference for the CPU f32 matmul: the median and
spread of 20 timed products per size after a warm-up, in GFLOP/s (2·n³ per product).

    python3 benches/openblas_sgemm.py [n ...]        # default 1024
"""
import statistics
import sys
import time

import numpy as np


def measure(n, repeats=20):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates), min(rates), max(rates)


if __name__ == "__main__":
    for n in [int(v) for v in sys.argv[1:]] or [1024]:
        median, low, high = measure(n)
        print(f"openblas sgemm {n}^3: median {median:.1f} GFLOP/s (min {low:.1f}, max {high:.1f})")
