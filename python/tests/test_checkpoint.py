"""Checkpoints from Python: a resumed run is the uninterrupted run, and the file is one a
PyTorch user can read: its `model.` tensors load into the model with load_state_dict, and its
optimizer tensors are torch.optim.Adam's state after the same steps.

The optimizer state is compared with PyTorch's loop in float64; gradstab trains in float32
and so, in the same test, does PyTorch: gradstab may be eight times as far from the f64 state
as PyTorch's own f32 state is (plus 16 units of f32 rounding), the argument of
test_train_parity.py.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
from torch import nn  # noqa: E402

import gradstab  # noqa: E402
import gradstab.torch as gt  # noqa: E402

U = 2.0**-24
TIMING = ("wall_seconds", "seconds_per_step", "time")


def without_timing(report):
    for run in report["runs"]:
        for key in TIMING:
            run["summary"].pop(key, None)
        for step in run["steps"]:
            step.pop("time", None)
    return report


@pytest.mark.parametrize("backend", ["cpu", None], ids=["cpu", "gpu"])
def test_five_steps_and_a_resume_of_five_are_ten(tmp_path, backend):
    options = dict(depth=4, width=[5, 9, 7, 6, 3], optimizer="adam", lr=0.01, steps=10,
                   batch=8, samples=20, shuffle=True, lr_schedule="cosine:10", seed=4,
                   backend=backend)
    # (The first part's last step took its full statistics for ending; the resumed run keeps
    # them only where record_every says, as the uninterrupted run does.)
    whole = gradstab.train(**options).to_dict()
    path = tmp_path / "ckpt.safetensors"
    gradstab.train(**dict(options, steps=5), checkpoint=path)
    resumed = gradstab.train(resume=path, steps=10, backend=backend).to_dict()
    assert without_timing(resumed)["runs"] == without_timing(whole)["runs"]


def test_a_run_stopped_after_a_checkpoint_goes_on_from_it(tmp_path):
    """The preemption workflow: a run of 12 steps writing a checkpoint every 4 is stopped at
    step 6 (here by its progress callback); resuming without options finishes the 12 steps
    from step 4, its cosine over the 12 steps it was planned for."""
    options = dict(depth=3, width=6, optimizer="sgd", momentum=0.9, lr=0.05, steps=12,
                   batch=5, samples=13, shuffle=True, lr_schedule="cosine", seed=9,
                   backend="cpu")
    whole = gradstab.train(**options).to_dict()
    path = tmp_path / "ckpt.safetensors"

    def stop_at_six(done, total, label):
        if done == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gradstab.train(**options, checkpoint=path, checkpoint_every=4, progress=stop_at_six)
    resumed = gradstab.train(resume=path, backend="cpu").to_dict()
    assert without_timing(resumed)["runs"] == without_timing(whole)["runs"]


def test_a_sequential_resumes_from_its_checkpoint_and_saves_under_its_names(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    options = dict(steps=6, samples=16, backend="cpu", seed=1, record_every=3)
    whole = gt.from_sequential(model).train(**options)
    path = tmp_path / "ckpt.safetensors"
    gt.from_sequential(model).train(**dict(options, steps=3), checkpoint=path)
    resumed = gt.from_sequential(model).train(resume=path, steps=6, backend="cpu")
    got, want = without_timing(resumed.to_dict()), without_timing(whole.to_dict())
    # The weights file each run was given is a temporary copy of the model, named apart.
    for r in (got, want):
        r["runs"][0]["config"]["network"].pop("weights_file")
        r["runs"][0]["steps"][2].pop("snapshot", None)
    assert got["runs"] == want["runs"]
    resumed.save_weights(tmp_path / "trained.safetensors")
    whole.save_weights(tmp_path / "whole.safetensors")
    a = safetensors_torch.load_file(str(tmp_path / "trained.safetensors"))
    b = safetensors_torch.load_file(str(tmp_path / "whole.safetensors"))
    assert a.keys() == b.keys() == model.state_dict().keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_never_replaces_the_data_it_trains_on(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.linspace(-1, 1, 40, dtype=np.float32).reshape(10, 4),
             y=np.arange(10) % 2)
    before = data.read_bytes()
    for name in ("data", "val_data"):
        options = dict(data=str(data), depth=2, steps=2, backend="cpu")
        if name == "val_data":
            options["val_data"] = str(data)
        with pytest.raises(gradstab.InvalidArgument, match="would be overwritten"):
            gradstab.train(**options, checkpoint=str(data))
        assert data.read_bytes() == before


def test_a_contradicting_option_is_refused(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    gradstab.train(depth=2, width=4, steps=2, backend="cpu", checkpoint=path)
    with pytest.raises(gradstab.InvalidArgument, match="lr"):
        gradstab.train(resume=path, steps=4, lr=0.5, backend="cpu")


def test_the_checkpoint_holds_pytorchs_model_and_adam_state(tmp_path):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 8), nn.Tanh(),
                          nn.Linear(8, 3))
    x, y = torch.randn(12, 6), torch.randn(12, 3)
    data = tmp_path / "d.npz"
    np.savez(data, x=x.numpy(), y=y.numpy())
    start = {k: v.clone() for k, v in model.state_dict().items()}
    steps, lr = 5, 0.02

    path = tmp_path / "ckpt.safetensors"
    gt.from_sequential(model).train(data=str(data), optimizer="adam", lr=lr, steps=steps,
                                    backend="cpu", checkpoint=path)
    saved = safetensors_torch.load_file(str(path))

    def torch_state(dtype):
        model.load_state_dict(start)
        m = model.to(dtype)
        optimizer = torch.optim.Adam(m.parameters(), lr=lr)
        for _ in range(steps):  # the whole data set is one batch
            loss = nn.functional.mse_loss(m(x.to(dtype)), y.to(dtype))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return ({k: v.double() for k, v in m.state_dict().items()},
                optimizer.state_dict()["state"])

    (model64, adam64), (model32, adam32) = torch_state(torch.float64), torch_state(torch.float32)

    def close(got, want, torch32, what):
        got, want, torch32 = got.double(), want.double(), torch32.double()
        allowed = 8 * (torch32 - want).norm() + 16 * U * want.norm()
        assert (got - want).norm() <= allowed, what

    # The model, under the model's own names, loads into it strictly.
    weights = {k[len("model."):]: v for k, v in saved.items() if k.startswith("model.")}
    model.float().load_state_dict(weights, strict=True)
    for key, want in model64.items():
        close(weights[key], want, model32[key], key)
    # Adam's state, indexed as model.parameters() and named as its state_dict names it.
    assert len(adam64) == len(list(model.parameters()))
    for i, want in adam64.items():
        assert float(saved[f"optimizer.state.{i}.step"]) == float(want["step"]) == steps
        for name in ("exp_avg", "exp_avg_sq"):
            close(saved[f"optimizer.state.{i}.{name}"], want[name], adam32[i][name],
                  f"{i}.{name}")
