"""A whole training run against PyTorch's loop: the same model and data, a DataLoader with a
short last batch over several epochs, cross-entropy on integer labels, an optimizer whose rate
a scheduler changes every step (AdamW under LinearLR warm-up then CosineAnnealingLR; SGD with
Nesterov momentum under StepLR). Each step's loss, each step's rate and the saved weights
must be PyTorch's.

The reference is PyTorch's loop in float64. gradstab trains in float32, and so can PyTorch:
both are f32 evaluations of the same arithmetic whose sums run in different orders, so each
is as far from the f64 run as the other, within a small factor. The test measures PyTorch's
own f32 distance from f64 in the same run and allows gradstab eight times it (plus 16 units
of f32 rounding of the value itself, the floor where PyTorch happens to land on the f64
value). A wrong schedule, a missing weight decay or a batch cut elsewhere moves the loss by
orders of magnitude more, which the planted-bug check below shows.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
from torch import nn  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import gradstab.torch as gt  # noqa: E402

U = 2.0**-24
# 70 samples in batches of 16: four full batches and a short one of 6, each epoch.
N, FEATURES, CLASSES, BATCH, EPOCHS = 70, 10, 5, 16, 4
STEPS = EPOCHS * -(-N // BATCH)

CASES = {
    # AdamW (decoupled decay, PyTorch's default 0.01) warming up over 5 steps, then a cosine
    # over the remaining 15.
    "adamw-warmup-cosine": dict(
        options=dict(optimizer="adamw", lr=0.01, lr_schedule="linear:0.1:1:5,cosine:15@5"),
        torch_optimizer=lambda p: torch.optim.AdamW(p, lr=0.01),
        torch_schedule=lambda o: lr_scheduler.SequentialLR(
            o,
            [lr_scheduler.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=5),
             lr_scheduler.CosineAnnealingLR(o, T_max=15)],
            milestones=[5],
        ),
    ),
    "sgd-nesterov-step": dict(
        options=dict(optimizer="sgd", lr=0.2, momentum=0.9, nesterov=True,
                     weight_decay=1e-3, lr_schedule="step:6:0.5"),
        torch_optimizer=lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, nesterov=True,
                                                  weight_decay=1e-3),
        torch_schedule=lambda o: lr_scheduler.StepLR(o, step_size=6, gamma=0.5),
    ),
}


def model_and_data():
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Linear(FEATURES, 24), nn.Tanh(),
        nn.Linear(24, 24), nn.Tanh(),
        nn.Linear(24, 16), nn.Tanh(),
        nn.Linear(16, CLASSES),
    )
    # Blobs around one centre per class, in unequal numbers.
    labels = torch.tensor([i % CLASSES if i % 7 else 0 for i in range(N)])
    centres = torch.randn(CLASSES, FEATURES)
    x = centres[labels] + 0.8 * torch.randn(N, FEATURES)
    return model, x, labels


def torch_run(model, x, labels, case, dtype):
    model = model.to(dtype)
    optimizer = case["torch_optimizer"](model.parameters())
    schedule = case["torch_schedule"](optimizer)
    loader = DataLoader(TensorDataset(x.to(dtype), labels), batch_size=BATCH, shuffle=False)
    losses, rates = [], []
    for _ in range(EPOCHS):
        for xb, yb in loader:
            rates.append(optimizer.param_groups[0]["lr"])
            loss = nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
    return np.array(losses), rates, {k: v.double() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("backend", ["cpu", None], ids=["cpu", "gpu"])
@pytest.mark.parametrize("name", CASES)
def test_a_scheduled_run_is_pytorchs_loop(tmp_path, name, backend):
    case = CASES[name]
    model, x, labels = model_and_data()
    data = tmp_path / "data.npz"
    np.savez(data, x=x.numpy(), y=labels.numpy())
    start = {k: v.clone() for k, v in model.state_dict().items()}

    result = gt.from_sequential(model).train(
        data=str(data), batch=BATCH, epochs=EPOCHS, precision="f32", backend=backend,
        **case["options"],
    )
    result.save_weights(tmp_path / "trained.safetensors")
    steps = result.to_dict()["runs"][0]["steps"]
    got_loss = np.array([s["loss"] for s in steps])
    got_rates = [s["lr"] for s in steps]
    got_weights = safetensors_torch.load_file(str(tmp_path / "trained.safetensors"))

    runs = {}
    for dtype in (torch.float64, torch.float32):
        model.load_state_dict(start)
        runs[dtype] = torch_run(model, x, labels, case, dtype)
    loss64, rates64, weights64 = runs[torch.float64]
    loss32, _, weights32 = runs[torch.float32]

    assert len(steps) == STEPS
    # The rates are the scheduler's, bit for bit (the schedule is computed in f64 as
    # PyTorch's is).
    assert got_rates == rates64
    # Each step's loss: PyTorch's f32 distance from f64 so far, times eight.
    torch_error = np.maximum.accumulate(np.abs(loss32 - loss64))
    allowed = 8 * torch_error + 16 * U * np.abs(loss64)
    assert np.all(np.abs(got_loss - loss64) <= allowed), np.abs(got_loss - loss64) / allowed
    # The trained weights, under the model's own names.
    assert set(got_weights) == set(weights64)
    for key, want in weights64.items():
        torch_dist = (weights32[key] - want).norm().item()
        got_dist = (got_weights[key].double() - want).norm().item()
        assert got_dist <= 8 * torch_dist + 16 * U * want.norm().item(), key


def test_the_comparison_sees_a_wrong_schedule(tmp_path):
    """The tolerance above is tight enough to see a schedule one step late: the bug it is for."""
    case = CASES["adamw-warmup-cosine"]
    model, x, labels = model_and_data()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    late = dict(case, torch_schedule=lambda o: lr_scheduler.SequentialLR(
        o,
        [lr_scheduler.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=6),
         lr_scheduler.CosineAnnealingLR(o, T_max=15)],
        milestones=[5],
    ))
    runs = {}
    for label, c, dtype in (("ref", case, torch.float64), ("f32", case, torch.float32),
                            ("late", late, torch.float64)):
        model.load_state_dict(start)
        runs[label] = torch_run(model, x, labels, c, dtype)[0]
    allowed = 8 * np.maximum.accumulate(np.abs(runs["f32"] - runs["ref"])) + 16 * U * np.abs(runs["ref"])
    assert np.any(np.abs(runs["late"] - runs["ref"]) > allowed)
