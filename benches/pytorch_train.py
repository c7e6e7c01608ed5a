"""PyTorch's training step on this machine, for `cargo bench --bench train` to be compared with.

    python benches/pytorch_train.py [depth width batch]

The same model and step as the benchmark: an nn.Sequential of `depth` bias-free nn.Linear
layers of `width` with ReLU between them and a linear head, He-initialised
(kaiming_normal_), MSE against fixed targets on one batch of `batch` N(0, 1) inputs, and
torch.optim.SGD(lr=1e-4). A step is zero_grad, forward, loss, backward and optimizer.step.
It prints the median and the best of 20 timed steps after 3 warm-up steps, and the threads
PyTorch uses. gradstab's step does more: the statistics of every layer's gradient and update.
"""

import statistics
import sys
import time

import torch

depth, width, batch = (int(v) for v in sys.argv[1:4]) if len(sys.argv) == 4 else (20, 1024, 256)
torch.manual_seed(0)
layers = []
for t in range(depth):
    linear = torch.nn.Linear(width, width, bias=False)
    torch.nn.init.kaiming_normal_(linear.weight)
    layers.append(linear)
    if t < depth - 1:
        layers.append(torch.nn.ReLU())
model = torch.nn.Sequential(*layers)
x = torch.randn(batch, width)
y = torch.randn(batch, width)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
loss_fn = torch.nn.MSELoss()


def step():
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


for _ in range(3):
    step()
times = []
for _ in range(20):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
median = statistics.median(times)
print(
    f"pytorch {torch.__version__} threads {torch.get_num_threads()}: "
    f"depth {depth} width {width} batch {batch} SGD f32 step median {median * 1e3:.1f} ms "
    f"({1 / median:.2f} steps/s), best {min(times) * 1e3:.1f} ms"
)
