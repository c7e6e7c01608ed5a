"""gradstab.torch.inspect against statistics computed independently in PyTorch and NumPy.

Reference values are taken from a deep copy of the model with our own forward hooks and
``torch.autograd.grad``; each reference statistic is computed in float64 from the stored
values, and each cast fraction from a real PyTorch cast.

Tolerances: the CPU backend reduces exactly in f64 (two passes), so mean and variance may
differ from NumPy's f64 only by f64 roundings (bounded by 4·n·2^-53 of the scale). The GPU
accumulates in f32; its documented bound (src/ops/reduce/mod.rs, ``moment_error_bounds``)
is 8·D·u·R for the mean and 8·D·u·σ(σ + |mean − K|) for the variance, u = 2^-24, with
D = PER_THREAD + 2·log2(THREADS) + ⌈chunks/THREADS⌉ + 3, K and R the centre and half range
of [min, max], plus 2^(⌈log2 abs_max⌉−120) for values scaled below f32's normal range.
Counts, abs_max and every cast fraction are exact.
"""

import copy
import math
import re
import os
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import gradstab  # noqa: E402
import gradstab.torch as gt  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from models import Mixed, mixed_inputs  # noqa: E402

SEED = 1234
MODULES = ["conv", "bn", "act", "embed", "proj", "norm", "attn", "attn.out_proj", "drop", "head"]
FORMATS = ("f16", "bf16", "e4m3", "e5m2")
# Smallest normal of each format, and the torch dtype of its cast.
MIN_NORMAL = {"f16": 2.0**-14, "bf16": 2.0**-126, "e4m3": 2.0**-6, "e5m2": 2.0**-14}
CAST = {
    "f16": torch.float16,
    "bf16": torch.bfloat16,
    "e4m3": torch.float8_e4m3fn,
    "e5m2": torch.float8_e5m2,
}
# E4M3 (fn) has no infinity and torch's cast saturates to ±448: a value overflows when it
# rounds beyond 448, i.e. |x| > 464 (448 + half an ULP of 32; 464 itself ties to the even 448).
E4M3_OVERFLOW = 464.0
U32 = 2.0**-24
EPS64 = 2.0**-53

BACKENDS = [pytest.param(None, id="gpu"), pytest.param("cpu", id="cpu")]


# ---- independent reference --------------------------------------------------------------


def cast_counts(t):
    """(overflow, underflow, subnormal) counts of each format, from real torch casts of t."""
    x = t.detach().to(torch.float64)
    finite = torch.isfinite(x)
    nonzero = (x != 0) & finite
    out = {}
    for f in FORMATS:
        if f == "e4m3":
            over = finite & (x.abs() > E4M3_OVERFLOW)
        else:
            over = finite & torch.isinf(t.detach().float().to(CAST[f]).double())
        c = t.detach().float().to(CAST[f]).double()
        c = torch.where(over | ~finite, torch.zeros_like(c), c)
        under = nonzero & ~over & (c == 0)
        sub = nonzero & ~over & (c != 0) & (c.abs() < MIN_NORMAL[f])
        out[f] = (int(over.sum()), int(under.sum()), int(sub.sum()))
    return out


def ref_stats(t):
    x = t.detach().to(torch.float64).cpu().numpy().reshape(-1)
    fin = x[np.isfinite(x)]
    mean = fin.mean() if fin.size else math.nan
    var = ((fin - mean) ** 2).mean() if fin.size else math.nan
    return {
        "count": x.size,
        "mean": mean,
        "variance": var,
        "abs_max": np.abs(fin).max() if fin.size else math.nan,
        "min": fin.min() if fin.size else math.nan,
        "max": fin.max() if fin.size else math.nan,
        "nan": int(np.isnan(x).sum()),
        "inf": int(np.isinf(x).sum()),
        "zero": int((x == 0).sum()),
        "cast": cast_counts(t),
    }


def moment_tolerance(ref, backend):
    """(mean, variance) tolerances: f64 rounding on the CPU, the f32 bound on the GPU."""
    n, amax = ref["count"], ref["abs_max"]
    if not amax > 0:
        return 0.0, 0.0
    if backend == "cpu":
        return 4 * n * EPS64 * amax, 4 * n * EPS64 * amax * amax
    chunks = max(1, math.ceil(n / (32 * 256)))
    d = 32 + 8 + math.ceil(chunks / 256) + 8 + 3
    k = 0.5 * (ref["min"] + ref["max"])
    r = 0.5 * (ref["max"] - ref["min"])
    sigma = math.sqrt(ref["variance"])
    floor = 2.0 ** (math.ceil(math.log2(amax)) - 120)
    return 8 * d * U32 * r + floor, 8 * d * U32 * sigma * (sigma + abs(ref["mean"] - k)) + floor


def reference_rows(model, inputs, target):
    """[(module, kind, tensor name, values)] of a deep copy of model, in inspect's order."""
    m = copy.deepcopy(model)
    for mod in m.modules():
        if getattr(mod, "inplace", False):
            mod.inplace = False  # same values; keeps the BN output we capture intact
    outs = {}

    def capture(name):
        def hook(_m, _a, o):
            outs[name] = o[0] if isinstance(o, tuple) else o  # returns None: output unchanged

        return hook

    hooks = [
        mod.register_forward_hook(capture(name))
        for name, mod in m.named_modules()
        if name in MODULES
    ]
    # inspect hooks no module's inputs (its forward hooks only watch outputs), so
    # MultiheadAttention still sees `query is key is value` and takes the same path here.
    torch.manual_seed(SEED)
    out = m(*inputs)
    loss = F.cross_entropy(out, target)
    for h in hooks:
        h.remove()
    names = [n for n in MODULES if n in outs]
    mods = dict(m.named_modules())
    params = [(n, pn, p) for n in MODULES for pn, p in mods[n].named_parameters(recurse=False)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        grads = torch.autograd.grad(
            loss, [outs[n] for n in names] + [p for _, _, p in params], allow_unused=True
        )
    out_grads = dict(zip(names, grads[: len(names)]))
    param_grads = {(n, pn): g for (n, pn, _), g in zip(params, grads[len(names) :])}
    rows = []
    for n in MODULES:
        if n in outs:
            rows.append((n, "output", "output", outs[n].detach()))
            rows.append((n, "grad_output", "grad_output", out_grads[n]))
        for pn, p in mods[n].named_parameters(recurse=False):
            kind = "bias" if "bias" in pn else "weight"
            rows.append((n, kind, pn, p.detach()))
            if param_grads[(n, pn)] is not None:
                rows.append((n, f"grad_{kind}", pn, param_grads[(n, pn)]))
    return rows


def check_frame(df, rows, backend):
    assert list(zip(df["module"], df["kind"], df["tensor"])) == [r[:3] for r in rows]
    for (_, row), (module, kind, name, t) in zip(df.iterrows(), rows):
        where = f"{module} {kind} {name}"
        ref = ref_stats(t)
        assert row["dtype"] == str(t.dtype).replace("torch.", ""), where
        for col in ("count", "nan", "inf", "zero"):
            assert row[col] == ref[col], f"{where}: {col}"
        assert row["abs_max"] == ref["abs_max"], where
        mean_tol, var_tol = moment_tolerance(ref, backend)
        assert abs(row["mean"] - ref["mean"]) <= mean_tol, f"{where}: mean"
        assert abs(row["variance"] - ref["variance"]) <= var_tol, f"{where}: variance"
        for f in FORMATS:
            over, under, sub = ref["cast"][f]
            n = ref["count"]
            assert row[f"{f}_overflow"] == over / n, f"{where}: {f}_overflow"
            assert row[f"{f}_underflow"] == under / n, f"{where}: {f}_underflow"
            assert row[f"{f}_subnormal"] == sub / n, f"{where}: {f}_subnormal"


def make_model(dtype=torch.float32):
    torch.manual_seed(0)
    model = Mixed()
    with torch.no_grad():
        # Spread the magnitudes so that every cast column has something to count: large
        # values (f16/e4m3/e5m2 overflow) in one head row, tiny ones in the conv bias.
        model.head.weight[0].mul_(3e5)
        model.conv.bias.copy_(torch.tensor([1e-6, 3e-8, -2e-9, 0.5]))
        model.embed.weight[3].mul_(1e-5)
    return model.to(dtype)


@pytest.fixture
def batch():
    image, tokens = mixed_inputs(batch=3, seed=5)
    return image, tokens, torch.tensor([0, 2, 1])


# ---- every column, per row ------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_every_column_matches_reference(backend, dtype, batch):
    image, tokens, target = batch
    model = make_model(dtype)
    inputs = (image.to(dtype), tokens)
    rows = reference_rows(model, inputs, target)
    torch.manual_seed(SEED)
    df = gt.inspect(model, inputs, target, loss_fn=F.cross_entropy, backend=backend, verbose=False)
    check_frame(df, rows, backend)
    # The planted magnitudes do reach the cast columns (the check above is not vacuous).
    assert df["f16_overflow"].max() > 0 and df["e4m3_overflow"].max() > 0
    assert df["f16_underflow"].max() > 0 and df["f16_subnormal"].max() > 0
    assert set(df["dtype"]) == {str(dtype).replace("torch.", "")}


def test_e4m3_overflow_threshold_is_464():
    """A tensor straddling E4M3's rounding boundary: 464 ties to 448, anything above rounds
    beyond it; the same for negative values."""
    model = nn.Sequential(nn.Linear(4, 4, bias=False))
    vals = torch.tensor([[448.0, 460.0, 464.0, 464.0001], [-464.0, -464.5, 470.0, 1e4]])
    vals = torch.cat([vals, torch.full((2, 4), 0.25)])
    with torch.no_grad():
        model[0].weight.copy_(vals)
    df = gt.inspect(model, torch.ones(1, 4), backend="cpu", verbose=False)
    w = df[(df["kind"] == "weight")].iloc[0]
    assert w["e4m3_overflow"] == 4 / 16  # 464.0001, -464.5, 470, 1e4
    assert w["e5m2_overflow"] == 0 and w["f16_overflow"] == 0


def test_f16_inputs(batch):
    image, tokens, target = batch
    model = nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)).half()
    x = image.reshape(3, 16).half()
    df = gt.inspect(model, x, target, loss_fn=F.cross_entropy, backend="cpu", verbose=False)
    assert set(df["dtype"]) == {"float16"}
    # The first Linear's output agrees with PyTorch's.
    out = model[0](x)
    row = df[(df["module"] == "0") & (df["kind"] == "output")].iloc[0]
    assert row["abs_max"] == out.abs().max().item()
    assert row["count"] == out.numel()


# ---- the model is left as it was ------------------------------------------------------------


def snapshot(model):
    return {
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "buffers": {n: b.detach().clone() for n, b in model.named_buffers()},
        "grads": {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        "modes": {n: m.training for n, m in model.named_modules()},
        "inplace": {n: m.inplace for n, m in model.named_modules() if hasattr(m, "inplace")},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
    }


def assert_same(a, b):
    for key in ("params", "buffers"):
        assert a[key].keys() == b[key].keys()
        for n in a[key]:
            assert a[key][n].dtype == b[key][n].dtype
            assert torch.equal(a[key][n].view(-1).view(torch.uint8) if a[key][n].is_floating_point()
                               else a[key][n], b[key][n].view(-1).view(torch.uint8)
                               if b[key][n].is_floating_point() else b[key][n]), f"{key} {n}"
    for n, g in a["grads"].items():
        if g is None:
            assert b["grads"][n] is None, n
        else:
            assert torch.equal(g, b["grads"][n]), n
    for key in ("modes", "inplace", "requires_grad"):
        assert a[key] == b[key], key


@pytest.mark.parametrize("training", [None, True, False])
def test_model_left_unchanged(training, batch):
    image, tokens, target = batch
    model = make_model()
    model.train()
    model.drop.eval()  # a mix of modes
    model.head.weight.grad = torch.full_like(model.head.weight, 0.5)
    model.conv.bias.grad = torch.arange(4.0)
    # Run once so BatchNorm's running statistics and counter are not their initial values.
    with torch.no_grad():
        model(image, tokens)
    before = snapshot(model)
    assert before["buffers"]["bn.num_batches_tracked"].item() == 1
    torch.manual_seed(77)
    rng = torch.get_rng_state()
    gt.inspect(model, (image, tokens), target, loss_fn=F.cross_entropy, training=training,
               backend="cpu", verbose=False)
    assert torch.equal(torch.get_rng_state(), rng)
    assert_same(before, snapshot(model))
    assert model.act.inplace is True
    for name, m in model.named_modules():
        for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            assert len(getattr(m, hooks)) == 0, f"{name}.{hooks}"
        assert m._is_full_backward_hook is None, name
    # ... so a regular backward hook can still be registered afterwards.
    model.head.register_backward_hook(lambda *_: None).remove()


def test_training_flag_is_used(batch):
    """training=False runs in eval mode: BatchNorm uses its running statistics (0 and 1 at
    first), so its output equals its input divided by sqrt(1 + eps)."""
    image, tokens, target = batch
    model = make_model()
    df = gt.inspect(model, (image, tokens), target, loss_fn=F.cross_entropy, training=False,
                    backend="cpu", verbose=False)
    model.eval()
    with torch.no_grad():
        expected = model.bn(model.conv(image))
    row = df[(df["module"] == "bn") & (df["kind"] == "output")].iloc[0]
    assert row["abs_max"] == expected.abs().max().item()
    assert model.training is False  # set by our model.eval() above, not by inspect


# ---- bad arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(formats=["f32"]), "format 'f32'"),
        (dict(formats="e3m4"), "format 'e3m4'"),
        (dict(target=torch.tensor([0, 1, 2])), "loss_fn"),
        (dict(underflow_risk=0), "underflow_risk"),
        (dict(underflow_risk=1.5), "underflow_risk"),
        (dict(backend="tpu"), "tpu"),
    ],
)
def test_bad_arguments(kwargs, match, batch):
    image, tokens, _ = batch
    model = make_model()
    before = snapshot(model)
    with pytest.raises(gradstab.InvalidArgument, match=match) as info:
        gt.inspect(model, (image, tokens), verbose=False, **kwargs)
    assert isinstance(info.value, ValueError)
    assert_same(before, snapshot(model))


def test_not_a_module():
    with pytest.raises(gradstab.InvalidArgument, match="torch.nn.Module") as info:
        gt.inspect(lambda x: x, torch.ones(2), verbose=False)
    assert isinstance(info.value, ValueError)


# ---- verdicts -------------------------------------------------------------------------------


def test_verdicts(batch, capsys):
    image, tokens, target = batch
    torch.manual_seed(0)
    model = Mixed()
    with torch.no_grad():
        model.proj.weight.mul_(1e5 / model.proj.weight.abs().max())
    df = gt.inspect(model, (image, tokens), target, loss_fn=F.cross_entropy, backend="cpu")
    verdicts = df.attrs["verdicts"]
    assert list(verdicts) == list(FORMATS)
    printed = capsys.readouterr().out.splitlines()
    assert printed == list(verdicts.values())
    for f in FORMATS:
        assert verdicts[f].startswith(f"{f}: ")
    # 1e5 > 65504: proj's weight overflows f16, and is named; bf16's range holds everything.
    proj_w = df[(df["module"] == "proj") & (df["kind"] == "weight")].iloc[0]
    assert proj_w["f16_overflow"] > 0 and df["bf16_overflow"].max() == 0
    # The verdict names each module's worst tensor: proj's output overflows more than its weight.
    assert re.search(r"proj: [^;]*overflows", verdicts["f16"]), verdicts["f16"]
    assert re.search(r"proj: [^;]*saturates", verdicts["e4m3"]), verdicts["e4m3"]
    assert df["bf16_underflow"].max() < 0.01
    assert verdicts["bf16"].startswith("bf16: no module at risk")
    # Modules that do not overflow in f16 are not named for overflow.
    assert not re.search(r"(head|norm|bn): [^;]*overflows", verdicts["f16"]), verdicts["f16"]


def test_verdict_underflow_risk(batch):
    """A tensor that loses half its values to zero in f16 is at risk under the default 1%
    threshold, and not under underflow_risk=0.9."""
    model = nn.Sequential(nn.Linear(4, 2))
    with torch.no_grad():
        model[0].bias.copy_(torch.tensor([1e-9, 1.0]))
    x = torch.ones(1, 4)
    df = gt.inspect(model, x, formats=["f16"], backend="cpu", verbose=False)
    assert list(df.attrs["verdicts"]) == ["f16"]
    assert "0: bias flushes to zero (50%)" in df.attrs["verdicts"]["f16"]
    df = gt.inspect(model, x, formats=("f16",), backend="cpu", underflow_risk=0.9, verbose=False)
    assert "no module at risk" in df.attrs["verdicts"]["f16"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_values(backend):
    """A weight holding +inf, -inf and NaN: inf counts both signs, the moments and abs_max
    are over the finite values only, and no cast counts a non-finite value."""
    model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(
            [[math.inf, -math.inf, math.nan, 1e5], [0.5, -2.0, 1e-9, 0.0], [3.0, 4.0, -1.0, 2.0]]
        ))
    df = gt.inspect(model, torch.ones(2, 4), backend=backend, verbose=False)
    row = df[(df["module"] == "0") & (df["kind"] == "weight")].iloc[0]
    ref = ref_stats(model[0].weight)
    assert (row["inf"], row["nan"], row["zero"], row["count"]) == (2, 1, 1, 12)
    assert row["abs_max"] == ref["abs_max"] == 1e5
    mean_tol, var_tol = moment_tolerance(ref, backend)
    assert abs(row["mean"] - ref["mean"]) <= mean_tol
    assert abs(row["variance"] - ref["variance"]) <= var_tol
    for f in FORMATS:
        over, under, sub = ref["cast"][f]
        assert (row[f"{f}_overflow"], row[f"{f}_underflow"], row[f"{f}_subnormal"]) == (
            over / 12, under / 12, sub / 12
        ), f
    assert row["f16_overflow"] == 1 / 12 and row["f16_underflow"] == 1 / 12


class Residual(nn.Module):
    """torchvision's BasicBlock in small: a module's output edited in place by its parent."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.bn(self.fc(x))
        out += x
        return self.relu(out)


def test_a_module_output_edited_in_place_is_measured_as_returned():
    # bn's output is edited twice after bn returns it (`out += x`, then an in-place ReLU):
    # its row must hold the values bn returned and the gradient with respect to those.
    torch.manual_seed(3)
    model, x = Residual(), torch.randn(5, 4)
    df = gt.inspect(model, x, backend="cpu", verbose=False)
    ref = copy.deepcopy(model)
    seen = {}

    def hook(_m, _a, out):
        seen["out"] = out.detach().clone()
        out.register_hook(lambda g: seen.__setitem__("grad", g.detach().clone()))

    ref.bn.register_forward_hook(hook)
    ref(x.clone()).sum().backward()
    rows = df[df.module == "bn"].set_index("kind")
    for kind, t in (("output", seen["out"]), ("grad_output", seen["grad"])):
        r = ref_stats(t)
        assert rows.loc[kind, "abs_max"] == r["abs_max"], kind
        assert rows.loc[kind, "zero"] == r["zero"], kind
        assert abs(rows.loc[kind, "mean"] - r["mean"]) <= 1e-12 * max(1.0, r["abs_max"]), kind


def test_a_frozen_model_is_differentiated_with_respect_to_its_inputs():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    model.requires_grad_(False)
    x = torch.randn(4, 3)
    df = gt.inspect(model, x, backend="cpu", verbose=False)
    assert not x.requires_grad, "the caller's input is left alone"
    assert set(df[df.module == "0"].kind) == {"output", "grad_output", "weight", "bias"}
    # d(sum y)/dh for the last Linear is a row of its weight sums for every sample.
    grad = df[(df.module == "1") & (df.kind == "grad_output")].iloc[0]
    expected = model[2].weight.sum(0).repeat(4, 1)
    assert grad["abs_max"] == expected.abs().max().item()


def test_a_rebound_buffer_is_restored():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x):
            self.calls = self.calls + 1  # a new tensor, not an in-place edit
            return self.fc(x)

    model = Counter()
    before = model.calls
    gt.inspect(model, torch.randn(1, 2), backend="cpu", verbose=False)
    assert model.calls is before and model.calls.item() == 0


def test_inference_mode_is_refused_with_a_reason():
    with torch.inference_mode():
        with pytest.raises(gradstab.InvalidArgument, match="inference_mode"):
            gt.inspect(nn.Linear(2, 2), torch.randn(1, 2), backend="cpu", verbose=False)
