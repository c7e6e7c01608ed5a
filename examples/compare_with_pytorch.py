"""Compare gradstab's per-layer weight gradients with PyTorch's on the same model and data.

    pip install torch safetensors numpy
    python examples/compare_with_pytorch.py        # from the repository root, after cargo build --release

It builds an nn.Sequential of nn.Linear layers with an activation after every layer (gradstab's
`run` convention), saves its state dict and a batch, runs `gradstab run --weights --data --loss
mse --format json`, and prints each layer's ‖∂l/∂W‖ from both, with their relative difference.
In f32 the two agree to a few units of f32's rounding; in f16 gradstab shows what pure half
arithmetic does to the same numbers.
"""

import json
import subprocess
import sys

import numpy as np
import torch
from safetensors.torch import save_file

torch.manual_seed(0)
widths = [32, 64, 64, 16]
layers = []
for n_in, n_out in zip(widths, widths[1:]):
    layers += [torch.nn.Linear(n_in, n_out), torch.nn.Tanh()]
model = torch.nn.Sequential(*layers)
x = torch.randn(8, widths[0])
y = torch.randn(8, widths[-1])

save_file(model.state_dict(), "model.safetensors")
np.savez("data.npz", x=x.numpy(), y=y.numpy())

loss = torch.nn.MSELoss()(model(x), y)
loss.backward()
torch_norms = [m.weight.grad.norm().item() for m in model if isinstance(m, torch.nn.Linear)]

precision = sys.argv[1] if len(sys.argv) > 1 else "f32"
out = subprocess.run(
    ["target/release/gradstab", "run", "--weights", "model.safetensors", "--data", "data.npz",
     "--activation", "tanh", "--loss", "mse", "--precision", precision,
     "--format", "json", "--quiet"],
    check=True, capture_output=True, text=True,
)
report = json.loads(out.stdout)
layers = report["runs"][0]["layers"]
print(f"layer  ‖dW‖ PyTorch   ‖dW‖ gradstab {precision}   relative difference")
for t, ours in enumerate(torch_norms, start=1):
    theirs = layers[t]["grad_weight"]["l2_norm"]
    print(f"{t:>5}  {ours:>12.6e}  {theirs:>18.6e}   {abs(theirs - ours) / ours:.2e}")
