"""Epochs and drop_last against torch.utils.data.DataLoader: each epoch's batch sizes, and
without shuffling the exact samples of each batch, seen through each step's loss with the
model held still (lr=0)."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, SequentialSampler

import gradstab.torch as gt

N, BATCH, EPOCHS = 10, 4, 2


def model_and_data(tmp_path):
    torch.manual_seed(11)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))
    x = torch.randn(N, 6)
    y = torch.randn(N, 4)
    path = tmp_path / "d.npz"
    np.savez(path, x=x.numpy(), y=y.numpy())
    return model, x, y, path


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_epochs_batch_as_a_dataloader(tmp_path, drop_last, shuffle):
    model, x, y, path = model_and_data(tmp_path)
    r = gt.from_sequential(model).train(
        data=str(path), batch=BATCH, epochs=EPOCHS, drop_last=drop_last, shuffle=shuffle,
        lr=0.0, backend="cpu", seed=3,
    ).to_dict()
    steps = r["runs"][0]["steps"]
    # A deterministic sampler: the samples in order (a shuffling one draws another order,
    # which gradstab draws from its seed, but cuts it into the same sizes).
    loader = DataLoader(range(N), batch_size=BATCH, drop_last=drop_last,
                        sampler=SequentialSampler(range(N)))
    want = [list(map(int, b)) for _ in range(EPOCHS) for b in loader]
    assert len(steps) == len(want) == EPOCHS * len(loader)
    assert [s["batch"] for s in steps] == [len(b) for b in want]
    assert [s["epoch"] for s in steps] == [e + 1 for e in range(EPOCHS) for _ in loader]
    epochs = r["runs"][0]["epochs"]
    assert [e["steps"] for e in epochs] == [len(loader)] * EPOCHS
    if shuffle:
        return
    # The exact indices: each step's loss is torch's MSE (mean reduction over the batch's
    # own elements, a short batch's too) on DataLoader's batch, in f64.
    m64 = model.double()
    with torch.no_grad():
        for s, rows in zip(steps, want):
            ref = nn.functional.mse_loss(m64(x[rows].double()), y[rows].double()).item()
            # f32 forward of inner dimension ≤ 8 against f64: well within 1e-5 relative.
            assert abs(s["loss"] - ref) <= 1e-5 * max(ref, 1.0), (s["step"], rows)
        for e in epochs:
            losses = [s["loss"] for s in steps if s["epoch"] == e["epoch"]]
            assert e["mean_loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-12)


def test_epochs_and_steps_conflict(tmp_path):
    model, _, _, path = model_and_data(tmp_path)
    with pytest.raises(ValueError, match="steps cannot be used with epochs"):
        gt.from_sequential(model).train(data=str(path), epochs=2, steps=3, backend="cpu")
    with pytest.raises(ValueError, match="--drop-last with --batch 11"):
        gt.from_sequential(model).train(data=str(path), batch=11, drop_last=True, backend="cpu")
