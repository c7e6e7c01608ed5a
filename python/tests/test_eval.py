"""Held-out evaluation against PyTorch: a classifier trained with ``val_split`` reports train
and validation accuracy that PyTorch's evaluation of the saved weights, on exactly the split
gradstab drew (``run["split"]["val_rows"]``), reproduces; the losses agree within a bound
derived from f32 rounding."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import gradstab

BACKENDS = [pytest.param(None, id="gpu"), pytest.param("cpu", id="cpu")]
U = 2.0**-24
SIZES = (50, 30, 17)


def blobs(path):
    """Three Gaussian blobs of unequal sizes (97 samples, not a multiple of the batch 10),
    integer labels, shuffled."""
    rng = np.random.default_rng(5)
    centres = np.array([[0, 0, 0, 0], [2.5, 0, 1, 0], [0, 2.5, 0, -1]], dtype=np.float64)
    x = np.concatenate([rng.normal(centres[c], 1.0, size=(k, 4)) for c, k in enumerate(SIZES)])
    y = np.concatenate([np.full(k, c) for c, k in enumerate(SIZES)])
    order = rng.permutation(len(y))
    x, y = x[order].astype(np.float32), y[order].astype(np.int64)
    np.savez(path, x=x, y=y)
    return torch.from_numpy(x), torch.from_numpy(y)


def gamma(k):
    return k * U / (1 - k * U)


def reference(model, x, y):
    """The f64 forward of the f32 model: mean cross-entropy, accuracy, a bound on how far an f32
    evaluation's mean loss may be from it, and the smallest gap between a row's top logit and
    its next, against twice the largest error bound of any logit.

    Each layer's logit error is |W|·e + γ_{k+1}·(|W|·(|h| + e) + |b|) (the matmul's k
    products and the bias's addition); ReLU moves nothing more. A row's cross-entropy moves by at
    most 2·max|Δz| (its gradient's ℓ1 norm is ≤ 2), and its own f32 evaluation errs by the exps'
    (3 + 2|x|) ulps (WGSL's bound), the log's 2^-21 and a rounding per addition."""
    m = model.double()
    h, e = x.double(), torch.zeros_like(x, dtype=torch.float64)
    layers = [l for l in m if isinstance(l, nn.Linear)]
    with torch.no_grad():
        for i, layer in enumerate(layers):
            w, b = layer.weight, layer.bias
            k = w.shape[1]
            z = h @ w.T + b
            e = e @ w.abs().T + gamma(k + 1) * ((h.abs() + e) @ w.abs().T + b.abs())
            h = z.clamp_min(0) if i + 1 < len(layers) else z
        z, moved = h, e.max(dim=1).values
        mx = z.max(dim=1).values
        shifted = z - mx[:, None]
        s = shifted.exp().sum(dim=1)
        row = s.log() + mx - z.gather(1, y[:, None])[:, 0]
        exps = (shifted.exp() * (4 + 2 * shifted.abs())).sum(dim=1) * U / s
        bound = 2 * moved + exps + 2.0**-21 + 4 * U * (s.log().abs() + mx.abs() + z.gather(1, y[:, None])[:, 0].abs())
        top2 = z.topk(2, dim=1).values
        margin = (top2[:, 0] - top2[:, 1] - 2 * moved).min().item()
        accuracy = (z.argmax(dim=1) == y).double().mean().item()
    model.float()
    return row.mean().item(), accuracy, bound.mean().item(), margin


@pytest.mark.parametrize("backend", BACKENDS)
def test_val_split_accuracy_matches_pytorch_on_the_saved_weights(tmp_path, backend):
    x, y = blobs(tmp_path / "blobs.npz")
    result = gradstab.train(
        data=str(tmp_path / "blobs.npz"), depth=3, width=[4, 16, 16, 3], activation="relu",
        bias=True, batch=10, shuffle=True, steps=40, lr=0.1, seed=2, val_split=0.25,
        eval_every=10, keep_weights=True, backend=backend,
    )
    result.save_weights(tmp_path / "model.safetensors")
    run = result.to_dict()["runs"][0]
    val_rows = run["split"]["val_rows"]
    assert len(val_rows) == 25 == run["split"]["val_samples"]  # ceil(0.25 · 97)
    train_rows = [r for r in range(len(y)) if r not in set(val_rows)]
    # Stratified: every class in the validation set, each near a quarter of its size.
    for c, k in enumerate(SIZES):
        held = int((y[val_rows] == c).sum())
        assert abs(held - 25 * k / 97) < 1, (c, held)

    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    model.load_state_dict(load_file(tmp_path / "model.safetensors"))
    final = run["summary"]["final_eval"]
    assert final["step"] == 40
    for part, rows in (("train", train_rows), ("val", val_rows)):
        xs, ys = x[rows], y[rows]
        loss64, accuracy64, bound, margin = reference(model, xs, ys)
        # No row's top two logits are within reach of the f32 rounding: argmax cannot flip.
        assert margin > 0, (part, margin)
        with torch.no_grad():
            logits = model(xs)
        torch_accuracy = (logits.argmax(dim=1) == ys).double().mean().item()
        torch_loss = nn.functional.cross_entropy(logits, ys).item()
        assert final[f"{part}_accuracy"] == torch_accuracy == accuracy64, part
        assert abs(final[f"{part}_loss"] - loss64) <= bound, (part, final[f"{part}_loss"], loss64, bound)
        assert abs(torch_loss - loss64) <= bound, (part, torch_loss, loss64, bound)

    frame = result.evaluations()
    assert list(frame["step"]) == [10, 20, 30, 40]
    assert frame.iloc[-1]["val_accuracy"] == final["val_accuracy"]


def test_val_data_arrays_give_the_numbers_of_the_same_rows_held_out(tmp_path):
    """``val_data=(x, y)`` beside ``data=(x, y)`` of the others trains and evaluates as the
    split did."""
    x, y = blobs(tmp_path / "blobs.npz")
    common = dict(depth=2, width=[4, 8, 3], batch=10, steps=12, lr=0.2, seed=4, eval_every=4, backend="cpu")
    split = gradstab.train(data=str(tmp_path / "blobs.npz"), val_split=0.2, **common)
    val_rows = split.to_dict()["runs"][0]["split"]["val_rows"]
    train_rows = [r for r in range(len(y)) if r not in set(val_rows)]
    given = gradstab.train(
        data=(x[train_rows], y[train_rows]), val_data=(x[val_rows].numpy(), y[val_rows].numpy()), **common
    )
    a, b = split.evaluations(), given.evaluations()
    assert len(a) == 3
    for column in ("step", "train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert list(a[column]) == list(b[column]), column


def test_regression_reports_no_accuracy_and_eval_every_alone_evaluates_the_training_set():
    r = gradstab.train(depth=2, width=4, samples=16, steps=4, eval_every=2, backend="cpu")
    frame = r.evaluations()
    assert list(frame["step"]) == [2, 4]
    assert frame["train_accuracy"].isna().all() and frame["val_loss"].isna().all()
    assert (frame["train_loss"] > 0).all()


@pytest.mark.parametrize(
    "options, needle",
    [
        (dict(val_split=0.0), "strictly between 0 and 1"),
        (dict(val_split=1.0), "strictly between 0 and 1"),
        (dict(val_split=float("nan")), "strictly between 0 and 1"),
        (dict(eval_every=0), "eval_every: expected a whole number"),
        (dict(val_data="x.npz"), "val_data needs data"),
    ],
)
def test_bad_evaluation_options_are_refused(options, needle):
    with pytest.raises(gradstab.InvalidArgument, match=needle.replace("-", r"\-")):
        gradstab.train(depth=2, width=4, samples=16, steps=2, backend="cpu", **options)
