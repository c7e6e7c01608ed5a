"""PyTorch's training step on this machine, for `cargo bench --bench train` to be compared with.

    python benches/pytorch_train.py [depth width batch]

The same model and step as the benchmark: an nn.Sequential of `depth` bias-free nn.Linear
layers of `width` with ReLU between them and a linear head, He-initialised
(kaiming_normal_), MSE against fixed targets on one batch of `batch` N(0, 1) inputs, and
each optimizer of the benchmark: torch.optim.SGD(lr=1e-4), SGD(lr=1e-4, momentum=0.9) and
Adam(lr=1e-4). A step is zero_grad, forward, loss, backward and optimizer.step (the plain
loop); "+ records" adds what gradstab records every step: each weight gradient's norm and
its zero, subnormal and non-finite counts, each update's norm and zero count, and each
weight's norm. Without arguments it measures both sizes of the benchmark (20, 1024, 256 and
8, 256, 128). It prints the median and the best of 20 timed steps after 3 warm-up steps, on
2 threads (`GRADSTAB_BENCH_THREADS` changes it), as `cargo bench` uses both cores.
"""

import os
import statistics
import sys
import time

import torch

SIZES = [(20, 1024, 256), (8, 256, 128)]
OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=1e-4),
    "sgd momentum": lambda p: torch.optim.SGD(p, lr=1e-4, momentum=0.9),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-4),
}
SMALLEST_NORMAL = torch.finfo(torch.float32).tiny


def model_and_data(depth, width, batch):
    torch.manual_seed(0)
    layers = []
    for t in range(depth):
        linear = torch.nn.Linear(width, width, bias=False)
        torch.nn.init.kaiming_normal_(linear.weight)
        layers.append(linear)
        if t < depth - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers), torch.randn(batch, width), torch.randn(batch, width)


def census(x):
    """gradstab's lean record of one tensor: its norm and class counts, read back."""
    a = x.abs()
    finite = torch.isfinite(x)
    return (
        torch.linalg.vector_norm(x).item(),
        (x == 0).sum().item(),
        ((a > 0) & (a < SMALLEST_NORMAL)).sum().item(),
        (~finite).sum().item(),
    )


def measure(depth, width, batch, name, records):
    model, x, y = model_and_data(depth, width, batch)
    optimizer = OPTIMIZERS[name](model.parameters())
    loss_fn = torch.nn.MSELoss()
    params = list(model.parameters())

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        if records:
            for p in params:
                census(p.grad)
            before = [p.detach().clone() for p in params]
        optimizer.step()
        if records:
            for p, b in zip(params, before):
                census(p.detach() - b)
                torch.linalg.vector_norm(p.detach()).item()
        return loss.item()

    for _ in range(3):
        step()
    times = []
    for _ in range(20):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    label = name + (" + records" if records else "")
    print(
        f"pytorch {torch.__version__} threads {torch.get_num_threads()}: "
        f"depth {depth} width {width} batch {batch} f32 {label}: step median "
        f"{median * 1e3:.1f} ms ({1 / median:.2f} steps/s), best {min(times) * 1e3:.1f} ms",
        flush=True,
    )


def main():
    torch.set_num_threads(int(os.environ.get("GRADSTAB_BENCH_THREADS", "2")))
    sizes = [tuple(int(v) for v in sys.argv[1:4])] if len(sys.argv) == 4 else SIZES
    for depth, width, batch in sizes:
        for name in OPTIMIZERS:
            for records in (False, True):
                measure(depth, width, batch, name, records)


if __name__ == "__main__":
    main()
