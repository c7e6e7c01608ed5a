"""gradstab's Python front door: stats against NumPy, zero copy, run/train/from_sequential
against the command line, and the library's errors as Python exceptions.

Mean and variance tolerances are those of test_inspect.moment_tolerance: f64 rounding on the
CPU backend (exact two-pass f64), the documented f32 accumulation bound on the GPU.
"""

import json
import os
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import gradstab  # noqa: E402
import gradstab.torch as gt  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from test_inspect import moment_tolerance  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.path.join(ROOT, "target", "release", "gradstab")
BACKENDS = [pytest.param(None, id="gpu"), pytest.param("cpu", id="cpu")]


def cli(*args):
    if not os.path.exists(CLI):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    out = subprocess.run([CLI, *map(str, args)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


# ---- stats against NumPy --------------------------------------------------------------------

# Smallest normal of the format the values are read as (float64 is analysed as f32).
MIN_NORMAL = {
    "float32": 2.0**-126, "float64": 2.0**-126, "float16": 2.0**-14, "bfloat16": 2.0**-126,
    "float8_e4m3fn": 2.0**-6, "float8_e5m2": 2.0**-14,
}
SPECIAL = [0.0, -0.0, np.nan, np.inf, -np.inf]


def numpy_case(dtype):
    rng = np.random.default_rng(7)
    extra = {
        np.float32: [1e-40, -3e-42, 1e30, 0.0],
        np.float16: [1e-6, -3e-7, 60000.0, 0.0],
        # beyond f32: 1e-300 narrows to 0, 1e300 to inf, 1e-40 to an f32 subnormal (the
        # library analyses f64 as f32)
        np.float64: [1e-300, 1e300, 0.1, 1e-40],
    }[dtype]
    x = np.concatenate([rng.standard_normal(61) * 3 + 1, SPECIAL, extra])
    return x.astype(dtype).reshape(10, 7)


def torch_case(dtype):
    g = torch.Generator().manual_seed(9)
    base = torch.randn(61, generator=g) * 3 + 1
    extra = {
        torch.float32: [1e-40, 1e30],
        torch.float16: [1e-6, 60000.0],
        torch.bfloat16: [1e-39, 1e38],
        torch.float8_e4m3fn: [2.0**-8, 448.0],  # 2^-8 is E4M3 subnormal
        torch.float8_e5m2: [2.0**-16, 57344.0],  # 2^-16 is E5M2 subnormal
    }[dtype]
    special = SPECIAL if dtype != torch.float8_e4m3fn else [0.0, -0.0, np.nan]  # no inf
    x = torch.cat([base, torch.tensor(special + extra, dtype=torch.float32)])
    x = torch.cat([x, torch.zeros(70 - x.numel())]) if x.numel() < 70 else x
    return x.to(dtype).reshape(10, 7)


def reference(values, dtype_name):
    """The statistics of the stored values (as f64; a float64 array as the f32 it is read as)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if dtype_name == "float64":
        with np.errstate(over="ignore"):  # 1e300 becomes inf, as in the library
            x = x.astype(np.float32).astype(np.float64)
    fin = x[np.isfinite(x)]
    mean = fin.mean()
    ax = np.abs(x)
    return {
        "count": x.size, "mean": mean, "variance": ((fin - mean) ** 2).mean(),
        "min": fin.min(), "max": fin.max(), "abs_max": np.abs(fin).max(),
        "zero": int((x == 0).sum()), "nan": int(np.isnan(x).sum()),
        "pos_inf": int((x == np.inf).sum()), "neg_inf": int((x == -np.inf).sum()),
        "subnormal": int(((ax > 0) & (ax < MIN_NORMAL[dtype_name])).sum()),
    }


def check_stats(s, ref, backend):
    for key in ("count", "zero", "nan", "pos_inf", "neg_inf", "subnormal"):
        assert s[key] == ref[key], key
    for key in ("min", "max", "abs_max"):
        assert s[key] == ref[key], key
    mean_tol, var_tol = moment_tolerance(ref, backend)
    assert abs(s["mean"] - ref["mean"]) <= mean_tol
    assert abs(s["variance"] - ref["variance"]) <= var_tol


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64], ids=lambda d: d.__name__)
def test_stats_numpy(dtype, backend):
    a = numpy_case(dtype)
    r = gradstab.stats(a, name="a", backend=backend)
    d = r.to_dict()["tensors"][0]
    assert (d["name"], d["shape"], d["dtype"]) == ("a", [10, 7], np.dtype(dtype).name)
    ref = reference(a, np.dtype(dtype).name)
    check_stats(r.stats, ref, backend)
    if dtype is np.float64:
        assert d["note"] and "1 values beyond f32's range became inf, 1 became 0" in d["note"]
    # A transposed (strided) view: the same numbers as its contiguous copy, and the reference.
    t = gradstab.stats(a.T, backend=backend)
    assert t.to_dict()["tensors"][0]["shape"] == [7, 10]
    assert t.stats == gradstab.stats(np.ascontiguousarray(a.T), backend=backend).stats
    check_stats(t.stats, ref, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "dtype",
    [torch.float32, torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2],
    ids=lambda d: str(d).replace("torch.", ""),
)
def test_stats_torch(dtype, backend):
    x = torch_case(dtype)
    name = str(dtype).replace("torch.", "")
    r = gradstab.stats(x, backend=backend)
    assert r.to_dict()["tensors"][0]["dtype"] == name
    ref = reference(x.to(torch.float64).numpy(), name)
    assert ref["subnormal"] > 0 and ref["nan"] == 1  # the case exercises those counters
    check_stats(r.stats, ref, backend)
    t = gradstab.stats(x.t(), backend=backend)
    assert t.stats == gradstab.stats(x.t().contiguous(), backend=backend).stats
    check_stats(t.stats, ref, backend)


def test_stats_state_dict():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    sd = model.state_dict()
    r = gradstab.stats(sd, backend="cpu")
    df = r.tensors()
    assert list(df["name"]) == list(sd)
    for (_, row), (name, t) in zip(df.iterrows(), sd.items()):
        ref = reference(t.numpy(), "float32")
        assert row["count"] == ref["count"] and row["abs_max"] == ref["abs_max"], name


def test_stats_file_matches_cli(tmp_path):
    path = tmp_path / "t.npz"
    np.savez(path, a=numpy_case(np.float32), b=numpy_case(np.float16), c=numpy_case(np.float64))
    lib = gradstab.stats(path, backend="cpu").to_dict()
    assert len(lib["tensors"]) == 3
    assert lib["tensors"] == cli("stats", path, "--format", "json", "--backend", "cpu")["tensors"]
    # And the file's tensors agree with the same arrays passed in memory.
    mem = gradstab.stats({"a": numpy_case(np.float32)}, backend="cpu").to_dict()["tensors"][0]
    assert mem["stats"] == lib["tensors"][0]["stats"]


# ---- zero copy ------------------------------------------------------------------------------


@pytest.fixture
def seen_arrays(monkeypatch):
    seen = []
    original = gradstab._as_array

    def spy(x):
        out = original(x)
        seen.append(out[0])
        return out

    monkeypatch.setattr(gradstab, "_as_array", spy)
    return seen


def test_zero_copy_numpy(seen_arrays):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    gradstab.stats(a, backend="cpu")
    assert np.shares_memory(seen_arrays[0], a)


def test_zero_copy_torch(seen_arrays):
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    b = torch.arange(12, dtype=torch.float32).to(torch.bfloat16)
    r = gradstab.stats({"t": t, "b": b}, backend="cpu")
    assert np.shares_memory(seen_arrays[0], t.numpy())
    assert np.shares_memory(seen_arrays[1], b.view(torch.int16).numpy())
    assert r.to_dict()["tensors"][1]["stats"]["max"] == 11.0


# ---- run and train against the command line -------------------------------------------------


TIMING = ("wall_seconds", "seconds_per_step", "time")


def without(report, keys):
    """The report without the fields named in keys, wherever they occur."""
    if isinstance(report, dict):
        return {k: without(v, keys) for k, v in report.items() if k not in keys}
    if isinstance(report, list):
        return [without(v, keys) for v in report]
    return report


def without_timing(report):
    """The report without its timing: the host clock differs from one run to the next."""
    return without(report, TIMING)


def test_run_matches_cli():
    r = gradstab.run(depth=3, width=8, batch=4, seed=1, backend="cpu")
    # On the CPU backend (no GPU traffic counters) only the timing legitimately differs.
    assert all(run["wall_seconds"] > 0 for run in r.to_dict()["runs"])
    assert without_timing(r.to_dict()) == without_timing(cli(
        "run", "--depth", 3, "--width", 8, "--batch", 4, "--seed", 1, "--format", "json",
        "--backend", "cpu",
    ))
    df = r.layers()
    header = r.to_csv().splitlines()[0].split(",")
    assert list(df.columns) == header
    acts = [
        layer["activation"]["variance"] for layer in r.to_dict()["runs"][0]["layers"]
    ]
    got = df[df["quantity"] == "activation"]["variance"].tolist()
    assert got == pytest.approx(acts, rel=1e-15)


def test_train_matches_cli():
    r = gradstab.train(depth=2, width=8, steps=5, samples=16, seed=3, backend="cpu")
    c = cli(
        "train", "--depth", 2, "--width", 8, "--steps", 5, "--samples", 16, "--seed", 3,
        "--format", "json", "--backend", "cpu",
    )
    assert r.to_dict()["runs"][0]["summary"]["seconds_per_step"] > 0
    assert without_timing(r.to_dict()) == without_timing(c)
    steps = r.steps()
    losses = [s["loss"] for s in c["runs"][0]["steps"]]
    assert len(steps) == 5 and list(steps["step"]) == [1, 2, 3, 4, 5]
    assert list(steps["loss"]) == losses
    assert losses[-1] < losses[0]


# ---- from_sequential ------------------------------------------------------------------------


def without_weights_file(report):
    """The report without "weights_file" and the timing: the only fields that legitimately
    differ, since from_sequential writes the weights to a temporary file of its own."""
    return without(report, ("weights_file",) + TIMING)


def save_state_dict(model, path):
    st = pytest.importorskip("safetensors.torch")
    st.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def tanh_net():
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))


@pytest.mark.parametrize("tail", ["linear", "tanh"])
def test_from_sequential_train_matches_cli(tmp_path, tail):
    model = tanh_net()
    # A PyTorch state dict says neither activation: the CLI is given both.
    extra = ["--output-activation", "no"]
    if tail == "tanh":  # ends in an activation: the CLI's --output-activation yes
        model.append(nn.Tanh())
        extra = ["--output-activation", "yes"]
    save_state_dict(model, tmp_path / "w.safetensors")
    r = gt.from_sequential(model).train(steps=3, samples=16, backend="cpu", seed=2)
    c = cli(
        "train", "--weights", tmp_path / "w.safetensors", "--activation", "tanh", "--steps", 3,
        "--samples", 16, "--seed", 2, "--backend", "cpu", "--format", "json", *extra,
    )
    assert "weights_file" in json.dumps(c)
    assert without_weights_file(r.to_dict()) == without_weights_file(c)


@pytest.mark.parametrize("named", [False, True], ids=["bare", "ordered_dict"])
def test_from_sequential_save_weights(tmp_path, named):
    st = pytest.importorskip("safetensors.torch")
    safetensors = pytest.importorskip("safetensors")
    if named:
        torch.manual_seed(4)
        model = nn.Sequential(
            OrderedDict(fc1=nn.Linear(6, 8), act=nn.Tanh(), fc2=nn.Linear(8, 4))
        )
    else:
        model = tanh_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = gt.from_sequential(model).train(steps=3, samples=16, backend="cpu", seed=2)
    path = tmp_path / "trained.safetensors"
    r.save_weights(path)
    saved = st.load_file(str(path))
    assert set(saved) == set(model.state_dict())
    model.load_state_dict(saved)
    # The training moved the weights (the file is the trained model, not the initial one).
    assert any(not torch.equal(before[k], saved[k]) for k in saved)
    # The file carries the activation too, which PyTorch ignores and gradstab reads back.
    with safetensors.safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["gradstab.activation"] == "tanh"
    assert meta["gradstab.output_activation"] == "false"


@pytest.mark.parametrize("runs", [{"precision": ["f32", "bf16"]}, {"lr": "0.01,0.1"}])
def test_from_sequential_trains_several_runs(runs):
    # Several runs are one call: the trained model is kept only where there is one to keep,
    # so the comparison of precisions or rates is not refused for want of save_weights.
    r = gt.from_sequential(tanh_net()).train(steps=2, samples=8, backend="cpu", **runs)
    assert len(r.to_dict()["runs"]) == 2
    with pytest.raises(gradstab.InvalidArgument, match="no trained weights"):
        r.save_weights("/tmp/never-written.safetensors")


@pytest.mark.parametrize(
    "model, match",
    [
        (nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1), nn.Linear(4, 2)), "Dropout"),
        (nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)),
         "mixes activations"),
        (nn.Linear(4, 4), "nn.Sequential"),
    ],
)
def test_from_sequential_refuses(model, match):
    with pytest.raises(gradstab.InvalidArgument, match=match):
        gt.from_sequential(model)


def test_from_sequential_run(tmp_path):
    # A model ending in a Linear layer runs as it is: its head without the activation.
    model = tanh_net()
    save_state_dict(model, tmp_path / "head.safetensors")
    r = gt.from_sequential(model).run(batch=4, seed=1, backend="cpu")
    c = cli(
        "run", "--weights", tmp_path / "head.safetensors", "--activation", "tanh",
        "--output-activation", "no", "--batch", 4, "--seed", 1, "--backend", "cpu",
        "--format", "json",
    )
    assert r.to_dict()["config"]["output_activation"] is False
    assert without_weights_file(r.to_dict()) == without_weights_file(c)
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU())
    save_state_dict(model, tmp_path / "w.safetensors")
    r = gt.from_sequential(model).run(batch=4, seed=1, backend="cpu")
    c = cli(
        "run", "--weights", tmp_path / "w.safetensors", "--activation", "relu", "--batch", 4,
        "--seed", 1, "--backend", "cpu", "--format", "json",
    )
    assert without_weights_file(r.to_dict()) == without_weights_file(c)


# ---- errors ---------------------------------------------------------------------------------

ERRORS = [
    (dict(depth=0), gradstab.InvalidArgument, "depth: expected a whole number ≥ 1, got 0"),
    (dict(width=[0]), gradstab.InvalidArgument, "width: expected a whole number ≥ 1, got 0"),
    (dict(precision="f12"), gradstab.InvalidArgument, "invalid precision 'f12'"),
    (dict(activation="nope"), gradstab.InvalidArgument, "invalid activation 'nope'"),
    (dict(seed=-1), gradstab.InvalidArgument, "seed: expected a whole number ≥ 0, got -1"),
    (dict(weights="/nonexistent.safetensors"), FileNotFoundError, "/nonexistent.safetensors"),
    (dict(weights="/nonexistent.safetensors", depth=2), gradstab.InvalidArgument,
     "depth cannot be used with weights"),
    (dict(bogus=1), TypeError, "bogus"),
]


@pytest.mark.parametrize("fn", [gradstab.run, gradstab.train], ids=["run", "train"])
@pytest.mark.parametrize("kwargs, exc, match", ERRORS, ids=[str(e[0]) for e in ERRORS])
def test_errors(fn, kwargs, exc, match):
    with pytest.raises(exc, match=match) as info:
        fn(backend="cpu", **kwargs)
    assert "Panic" not in type(info.value).__name__
    if exc is gradstab.InvalidArgument:
        assert isinstance(info.value, ValueError)
    if exc is FileNotFoundError:
        assert isinstance(info.value, gradstab.FileNotFound)


def test_train_only_errors():
    with pytest.raises(gradstab.InvalidArgument, match=r"lr \[-1.0\]: expected finite numbers"):
        gradstab.train(lr=-1, backend="cpu")
    with pytest.raises(gradstab.InvalidArgument, match="depth cannot be used with preset"):
        gradstab.train("fp8-scaling", depth=2, backend="cpu")


class Stop(Exception):
    pass


@pytest.mark.parametrize("fn, kwargs, total", [
    (gradstab.train, dict(depth=2, width=4, samples=8, steps=40), 40),
    (gradstab.run, dict(depth=5, width=4, batch=2), 10),
], ids=["train", "run"])
def test_progress_is_reported_and_an_exception_in_it_stops_the_call(fn, kwargs, total):
    # A progress callback hears every step as (done, total, label); an exception it raises
    # (as Ctrl-C's KeyboardInterrupt does) ends the call at once and reaches the caller
    # unchanged, and the device goes on working.
    heard = []

    def listen(done, total_, label):
        heard.append((done, total_, label))

    full = fn(backend="cpu", progress=listen, **kwargs)
    assert [d for d, _, _ in heard][-1] == total
    assert all(t == total for _, t, _ in heard) and all(isinstance(l, str) for _, _, l in heard)

    def stop_at_3(done, total_, label):
        heard.append(done)
        if done >= 3:
            raise Stop()

    heard.clear()
    with pytest.raises(Stop):
        fn(backend="cpu", progress=stop_at_3, **kwargs)
    assert heard == [1, 2, 3], "nothing runs after the exception"
    again = fn(backend="cpu", **kwargs)
    assert without_timing(again.to_dict()["runs"]) == without_timing(full.to_dict()["runs"])


def test_numpy_integers_and_odd_arrays():
    r = gradstab.run(depth=np.int64(2), width=np.int32(4), batch=2, backend="cpu")
    assert r.to_dict()["config"]["depth"] == 2 and r.to_dict()["config"]["widths"] == [4, 4, 4]
    # A 0-d array keeps its shape; a big-endian one is read by value; an int tensor keeps
    # its dtype's name.
    assert gradstab.stats(np.float32(3.5), backend="cpu").to_dict()["tensors"][0]["shape"] == []
    big = np.array([1.5, -2.0, 0.0], dtype=">f4")
    s = gradstab.stats(big, backend="cpu").stats
    assert (s["min"], s["max"], s["zero"]) == (-2.0, 1.5, 1)
    t = gradstab.stats(torch.arange(4), backend="cpu").to_dict()["tensors"][0]
    assert t["dtype"] == "int64" and t["stats"]["max"] == 3.0
    # A lazily negated view (the imaginary part of a conjugate) has no plain memory to read.
    neg = torch.tensor([1 + 1j, 2 - 2j]).conj().imag
    assert neg.is_neg()
    s = gradstab.stats(neg, backend="cpu").stats
    assert (s["min"], s["max"]) == (-1.0, 2.0)


def test_ctrl_c_stops_a_long_training():
    # SIGINT while the library trains without the GIL: Python's handler only flags it, and the
    # call must look for it between steps and raise KeyboardInterrupt there, long before the
    # 300,000 steps (about 15 s here) are done.
    import signal
    import threading
    import time

    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        gradstab.train(depth=2, width=4, samples=8, steps=300_000, backend="cpu")
    assert time.monotonic() - start < 5
    timer.join()


def test_pytorch_optimizers_work_after_gradstab_opened_the_gpu():
    # Triton's LLVM, loaded after lavapipe's, crashed the process at PyTorch's first
    # optimizer; gradstab loads triton first. A crash kills the process, so it runs apart.
    script = (
        "import numpy as np, torch, gradstab\n"
        "gradstab.stats(np.ones(10, dtype=np.float32))\n"
        "torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr[-2000:])


def test_times_split_each_step_on_the_cpu_and_on_a_gpu_with_timestamps():
    parts = ["forward_s", "backward_s", "optimizer_s", "records_s"]
    r = gradstab.train(depth=2, width=8, steps=4, samples=16, seed=3, backend="cpu")
    times = r.times()
    assert list(times.columns) == ["run", "step"] + parts
    assert list(times["step"]) == [1, 2, 3, 4]
    assert (times[parts] > 0).all().all()
    summary = r.to_dict()["runs"][0]["summary"]
    # The phases are disjoint parts of the steps' time; the summary adds them up.
    assert times[parts].to_numpy().sum() <= 4 * summary["seconds_per_step"] * (1 + 1e-12)
    for p in parts:
        assert summary["time"][p] == pytest.approx(times[p].sum(), rel=1e-12)
    g = gradstab.train(depth=2, width=8, steps=2, samples=16, seed=3)
    if g.to_dict()["device"]["backend"] != "cpu":
        gt = g.times()[parts]
        gsummary = g.to_dict()["runs"][0]["summary"]
        if gsummary["time"] is None:
            # An adapter without timestamp queries: no split.
            assert gt.isna().all().all()
        else:
            # Device seconds of each phase's kernels: every phase runs some, and the passes
            # run within the steps.
            assert (gt > 0).all().all()
            assert gt.to_numpy().sum() <= 2 * gsummary["seconds_per_step"]
            for p in parts:
                assert gsummary["time"][p] == pytest.approx(gt[p].sum(), rel=1e-12)
