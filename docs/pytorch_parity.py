"""Train the same model on the same data with PyTorch and with gradstab, and compare.

    pip install torch safetensors numpy
    cargo build --release
    python docs/pytorch_parity.py            # from the repository root; add --backend gpu for the GPU

It builds an nn.Sequential of nn.Linear layers (PyTorch's default initialisation, with
biases) with Tanh between them and a linear head, saves its state dict and the data with
safetensors, trains it with torch.optim for 50 full-batch steps, runs `gradstab train` from
the same files with the same optimizer, and prints both loss curves side by side with their
largest relative difference, then the largest difference of the trained weights. Three
cases: SGD with Nesterov momentum and weight decay on MSE, Adam on cross-entropy with
integer labels, and AdamW on MSE.
"""

import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

backend = sys.argv[sys.argv.index("--backend") + 1] if "--backend" in sys.argv else "cpu"
torch.manual_seed(0)
widths = [16, 32, 32, 4]
samples, steps = 64, 50
work = tempfile.mkdtemp(prefix="gradstab-parity-")


def build():
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(widths) - 2:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def torch_curve(model, x, y, loss_fn, make_optimizer):
    optimizer = make_optimizer(model.parameters())
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        losses.append(loss.item())  # the loss before the step, as gradstab records it
        loss.backward()
        optimizer.step()
    return losses


def case(name, loss_fn, y, torch_optimizer, flags):
    model = build()
    x = torch.randn(samples, widths[0])
    weights = os.path.join(work, f"{name}-model.safetensors")
    data = os.path.join(work, f"{name}-data.safetensors")
    trained = os.path.join(work, f"{name}-trained.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    save_file({"x": x, "y": y}, data)
    reference = torch_curve(model, x, y, loss_fn, torch_optimizer)
    out = subprocess.run(
        ["target/release/gradstab", "train", "--weights", weights, "--data", data,
         "--activation", "tanh", "--steps", str(steps), "--backend", backend, "--quiet",
         "--format", "json", "--save-weights", trained] + flags,
        check=True, capture_output=True, text=True)
    ours = [s["loss"] for s in json.loads(out.stdout)["runs"][0]["steps"]]
    print(f"\n{name}: step, PyTorch loss, gradstab loss, relative difference")
    worst = 0.0
    for i, (a, b) in enumerate(zip(reference, ours)):
        rel = abs(a - b) / abs(a)
        worst = max(worst, rel)
        if i % 10 == 0 or i == steps - 1:
            print(f"  {i + 1:3d}  {a:.7f}  {b:.7f}  {rel:.1e}")
    final = load_file(trained)
    weight_diff = max(
        ((final[k] - v).abs().max() / v.abs().max()).item()
        for k, v in model.state_dict().items())
    print(f"  largest relative loss difference over {steps} steps: {worst:.1e}; "
          f"trained parameters differ by at most {weight_diff:.1e} of their largest value")


case("sgd-mse", torch.nn.MSELoss(), torch.randn(samples, widths[-1]),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
     ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--nesterov",
      "--weight-decay", "1e-4"])
case("adam-cross-entropy", torch.nn.CrossEntropyLoss(),
     torch.randint(0, widths[-1], (samples,)),
     lambda p: torch.optim.Adam(p, lr=1e-2),
     ["--optimizer", "adam", "--lr", "1e-2"])
case("adamw-mse", torch.nn.MSELoss(), torch.randn(samples, widths[-1]),
     lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.05),
     ["--optimizer", "adamw", "--lr", "1e-2", "--weight-decay", "0.05"])
