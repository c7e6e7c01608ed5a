"""Train the same model on the same data with PyTorch and with gradstab, and compare.

    pip install torch safetensors numpy
    cargo build --release
    python docs/pytorch_parity.py            # from the repository root; add --backend gpu for the GPU

It builds an nn.Sequential of nn.Linear layers (PyTorch's default initialisation, with
biases) with Tanh between them and a linear head, saves its state dict and the data with
safetensors, trains it with torch.optim for 50 full-batch steps, runs `gradstab train` from
the same files with the same optimizer, and prints both loss curves side by side with their
largest relative difference, then the largest difference of the trained weights. Three
cases in f32: SGD with Nesterov momentum and weight decay on MSE, Adam on cross-entropy with
integer labels, and AdamW on MSE. Then SGD and Adam on MSE in bf16 (`model.bfloat16()`
against `--precision bf16`) and under bf16 autocast (against `--precision bf16acc32`), each
also against PyTorch made to round where gradstab rounds; and one FP8 GEMM, torch._scaled_mm
against gradstab's matmul_scaled (examples/scaled_mm.rs). docs/pytorch-parity.md explains
the differences.
"""

import json
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F
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


def gradstab_train(weights, data, trained, flags):
    """gradstab's loss before every step, and its trained parameters."""
    out = subprocess.run(
        ["target/release/gradstab", "train", "--weights", weights, "--data", data,
         "--activation", "tanh", "--output-activation", "no", "--steps", str(steps), "--backend", backend, "--quiet",
         "--format", "json", "--save-weights", trained] + flags,
        check=True, capture_output=True, text=True)
    return [s["loss"] for s in json.loads(out.stdout)["runs"][0]["steps"]], load_file(trained)


def case(name, loss_fn, y, torch_optimizer, flags):
    model = build()
    x = torch.randn(samples, widths[0])
    weights = os.path.join(work, f"{name}-model.safetensors")
    data = os.path.join(work, f"{name}-data.safetensors")
    trained = os.path.join(work, f"{name}-trained.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    save_file({"x": x, "y": y}, data)
    reference = torch_curve(model, x, y, loss_fn, torch_optimizer)
    ours, final = gradstab_train(weights, data, trained, flags)
    print(f"\n{name}: step, PyTorch loss, gradstab loss, relative difference")
    worst = print_curves(reference, ours)
    print(f"  largest relative loss difference over {steps} steps: {worst:.1e}; "
          f"trained parameters differ by at most {weight_diff(final, model.state_dict()):.1e} "
          f"of their largest value")


def print_curves(reference, ours):
    """Both loss curves every tenth step; returns their largest relative difference."""
    worst = 0.0
    for i, (a, b) in enumerate(zip(reference, ours)):
        rel = abs(a - b) / abs(a)
        worst = max(worst, rel)
        if i % 10 == 0 or i == steps - 1:
            print(f"  {i + 1:3d}  {a:.7f}  {b:.7f}  {rel:.1e}")
    return worst


def weight_diff(final, reference):
    """The largest difference of each trained parameter, over its largest value, the worst."""
    return max(((final[k].float() - v.float()).abs().max() / v.float().abs().max()).item()
               for k, v in reference.items())


def differing(final, reference):
    """How many trained parameters differ from the reference's, of how many."""
    return (sum((final[k].float() != v.float()).sum().item() for k, v in reference.items()),
            sum(v.numel() for v in reference.values()))


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


# bf16 and bf16acc32. PyTorch's model.bfloat16() on the CPU rounds to bf16 at three points
# where gradstab does not (docs/pytorch-parity.md): nn.Linear adds the bias inside the matmul
# (addmm, one rounding), Tanh's backward forms g·(1 − y²) from the bf16 output y in one op,
# and a bf16 `add(other, alpha=a)` rounds a itself to bf16 (SGD's lr, momentum and weight
# decay). The "rounding as gradstab" runs put gradstab's rounding points into PyTorch: the
# functions below, and SGD with f32 scalars.

def bf(t):
    return t.float().bfloat16()


class LinearAsGradstab(torch.autograd.Function):
    """Z = bf16(bf16(H·Wᵀ) + b): the matmul rounded, then the bias added and rounded again.
    H, W and b are cast to bf16 here, as autocast does, where they are f32."""

    @staticmethod
    def forward(ctx, h, w, b):
        h, w, b = bf(h), bf(w), bf(b)
        ctx.save_for_backward(h, w)
        with torch.autocast("cpu", enabled=False):  # the f32 matmul stays f32
            return bf(bf(h.float() @ w.float().T).float() + b.float())

    @staticmethod
    def backward(ctx, g):
        h, w = ctx.saved_tensors
        grad_w, grad_b = bf(g.float().T @ h.float()), bf(g.float().sum(0))
        return bf(g.float() @ w.float()), grad_w, grad_b


class TanhAsGradstab(torch.autograd.Function):
    """tanh rounded once; backward bf16(g · bf16(tanh'(z))), tanh'(z) = 4e^{−2|z|}/(1 + e^{−2|z|})²
    from the bf16 pre-activation z, as gradstab's activation derivative and hadamard do."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return torch.tanh(z)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        e = torch.exp(-2 * z.float().abs())
        return bf(g.float() * bf(4 * e / ((1 + e) * (1 + e))).float())


class SgdF32Scalars:
    """torch.optim.SGD's single-tensor rule for bf16 parameters, each op in f32 and rounded to
    bf16 once, with lr, momentum and weight decay kept in f32 (gradstab's optimizer kernel)."""

    def __init__(self, params, lr, momentum, weight_decay):
        self.params, self.buffers = list(params), None
        self.lr, self.momentum, self.weight_decay = (
            torch.tensor(v, dtype=torch.float32) for v in (lr, momentum, weight_decay))

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        grads = [bf(p.grad.float() + self.weight_decay * p.float()) for p in self.params]
        if self.buffers is None:
            self.buffers = [g.clone() for g in grads]
        else:
            self.buffers = [bf(bf(b.float() * self.momentum).float() + g.float())
                            for b, g in zip(self.buffers, grads)]
        for p, g, b in zip(self.params, grads, self.buffers):
            nesterov = bf(g.float() + self.momentum * b.float())
            p.copy_(bf(p.float() - self.lr * nesterov.float()))


def bf16_forward(params, x, as_gradstab):
    """The model on x, params = [W1, b1, W2, b2, W3, b3], in bf16 or under autocast."""
    h = x
    for t in range(len(widths) - 1):
        w, b = params[2 * t], params[2 * t + 1]
        h = LinearAsGradstab.apply(h, w, b) if as_gradstab else F.linear(h, w, b)
        if t < len(widths) - 2:
            h = TanhAsGradstab.apply(h) if as_gradstab else torch.tanh(h)
    return h


def bf16_torch_curve(state, x, y, precision, optimizer, as_gradstab):
    """PyTorch's loss before every step and its trained parameters: `model.bfloat16()` with
    bf16 data (precision bf16), or f32 parameters with the forward and loss under
    torch.autocast("cpu", dtype=torch.bfloat16) (bf16acc32)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    params = [torch.nn.Parameter(v.to(dtype, copy=True)) for v in state.values()]
    if optimizer == "sgd" and as_gradstab and precision == "bf16":
        opt = SgdF32Scalars(params, lr=0.05, momentum=0.9, weight_decay=1e-4)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    else:
        opt = torch.optim.Adam(params, lr=1e-2)
    x, y = x.to(dtype), y.to(dtype)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16acc32"):
            out = bf16_forward(params, x, as_gradstab)
            loss = F.mse_loss(out, y)  # bf16 in bf16; on autocast's f32 list under autocast
        # The loss before the step in f32 from the bf16 output, as gradstab records it
        # (PyTorch's own bf16 loss value is rounded to 8 bits).
        losses.append(((out.float() - y.float()) ** 2).mean().item())
        loss.backward()
        opt.step()
    return losses, dict(zip(state.keys(), (p.detach() for p in params)))


def bf16_case(name, precision, optimizer, flags):
    model = build()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    x, y = torch.randn(samples, widths[0]), torch.randn(samples, widths[-1])
    if precision == "bf16":
        # model.bfloat16() takes bf16 data; gradstab casts the inputs to bf16 but reads the
        # targets in f32, so both get targets already in bf16.
        x, y = bf(x).float(), bf(y).float()
    weights = os.path.join(work, f"{name}-model.safetensors")
    data = os.path.join(work, f"{name}-data.safetensors")
    trained = os.path.join(work, f"{name}-trained.safetensors")
    save_file(state, weights)
    save_file({"x": x, "y": y}, data)
    reference, final_torch = bf16_torch_curve(state, x, y, precision, optimizer, False)
    ours, final = gradstab_train(weights, data, trained, flags + ["--precision", precision])
    print(f"\n{name}: step, PyTorch loss, gradstab loss, relative difference")
    worst = print_curves(reference, ours)
    n, total = differing(final, final_torch)
    print(f"  largest relative loss difference over {steps} steps: {worst:.1e}; trained "
          f"parameters differ by at most {weight_diff(final, final_torch):.1e} of their largest "
          f"value; {n} of {total} differ")
    emulated, final_emulated = bf16_torch_curve(state, x, y, precision, optimizer, True)
    n, total = differing(final, final_emulated)
    worst = max(abs(a - b) / abs(a) for a, b in zip(emulated, ours))
    copies = ""
    if precision == "bf16acc32":
        n_bf16, _ = differing({k: bf(v) for k, v in final.items()},
                              {k: bf(v) for k, v in final_emulated.items()})
        copies = f" ({n_bf16} of their bf16 copies)"
    print(f"  PyTorch rounding as gradstab: largest relative loss difference {worst:.1e}; "
          f"trained parameters differ by at most {weight_diff(final, final_emulated):.1e} of "
          f"their largest value; {n} of {total} differ{copies}")


sgd_flags = ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--nesterov",
             "--weight-decay", "1e-4"]
adam_flags = ["--optimizer", "adam", "--lr", "1e-2"]
bf16_case("bf16-sgd-mse", "bf16", "sgd", sgd_flags)
bf16_case("bf16-adam-mse", "bf16", "adam", adam_flags)
bf16_case("bf16acc32-sgd-mse", "bf16acc32", "sgd", sgd_flags)
bf16_case("bf16acc32-adam-mse", "bf16acc32", "adam", adam_flags)


# One FP8 GEMM: E4M3 operands with per-tensor current scales (448/amax), f32 output, through
# torch._scaled_mm (which runs on the CPU) and gradstab's Backend::matmul_scaled
# (examples/scaled_mm.rs, which quantises the same way).
a, b = torch.randn(64, 32), 0.05 * torch.randn(48, 32)
operands = os.path.join(work, "scaled-mm.safetensors")
save_file({"a": a, "b": b}, operands)
subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "scaled_mm"], check=True)
out = subprocess.run(["target/release/examples/scaled_mm", operands, backend],
                     check=True, capture_output=True, text=True)
ours = json.loads(out.stdout)
scale_a, scale_b = (torch.tensor(448.0) / t.abs().max() for t in (a, b))
assert (ours["scale_a"], ours["scale_b"]) == (scale_a.item(), scale_b.item())
a_q, b_q = (a * scale_a).to(torch.float8_e4m3fn), (b * scale_b).to(torch.float8_e4m3fn)
c_torch = torch._scaled_mm(a_q, b_q.t(), scale_a=1 / scale_a, scale_b=1 / scale_b,
                           out_dtype=torch.float32)
c_ours = torch.tensor(ours["c"], dtype=torch.float32).reshape(ours["rows"], ours["cols"])
exact = (a_q.double() @ b_q.double().t()) / scale_a.double() / scale_b.double()
dequantised_first = (a_q.float() * (1 / scale_a)) @ (b_q.float() * (1 / scale_b)).t()
scaled_last = (a_q.float() @ b_q.float().t()) * ((1 / scale_a) * (1 / scale_b))
largest = exact.abs().max().item()
print(f"\nfp8 GEMM [64, 32]·[48, 32]ᵀ, E4M3, scales {scale_a.item():.6g} and {scale_b.item():.6g}:")
print(f"  identical: {(c_torch == c_ours).sum().item()} of {c_ours.numel()}; largest difference "
      f"{(c_torch - c_ours).abs().max().item() / largest:.1e} of the largest |C|")
print(f"  from the exact product: PyTorch {(c_torch.double() - exact).abs().max().item() / largest:.1e}"
      f", gradstab {(c_ours.double() - exact).abs().max().item() / largest:.1e} of the largest |C|")
print(f"  PyTorch equals (A_q·s_a⁻¹)(B_q·s_b⁻¹)ᵀ in f32: {torch.equal(c_torch, dequantised_first)}; "
      f"gradstab equals (A_q·B_qᵀ)·(s_a⁻¹·s_b⁻¹) in f32: {torch.equal(c_ours, scaled_last)}")
