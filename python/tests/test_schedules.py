"""``lr_schedule`` against torch.optim.lr_scheduler itself: the rate gradstab records for each
step equals, bit for bit, the rate PyTorch's scheduler leaves in a dummy optimizer before
each ``optimizer.step()``, in the loop ``optimizer.step(); scheduler.step()``.
"""

import warnings

import pytest

torch = pytest.importorskip("torch")
from torch.optim import lr_scheduler as L  # noqa: E402

import gradstab  # noqa: E402

STEPS = 40
BASE_LR = 0.1


def torch_rates(make, steps=STEPS, lr=BASE_LR):
    """The rates PyTorch's scheduler gives, read before each optimizer step."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make(opt)
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
    return rates


def gradstab_rates(spec, steps=STEPS, lr=BASE_LR):
    r = gradstab.train(
        depth=2, width=4, samples=8, steps=steps, lr=lr, lr_schedule=spec, backend="cpu"
    )
    return [float(x) for x in r.steps()["lr"]]


CASES = [
    ("step:7", lambda o: L.StepLR(o, 7)),
    ("step:3:0.7", lambda o: L.StepLR(o, 3, gamma=0.7)),
    # T_MAX defaults to the run's steps.
    ("cosine", lambda o: L.CosineAnnealingLR(o, STEPS)),
    # Past T_MAX: the turn at T_MAX + 1 and the climb back.
    ("cosine:9:0.003", lambda o: L.CosineAnnealingLR(o, 9, eta_min=0.003)),
    ("linear", lambda o: L.LinearLR(o)),
    ("linear:0.1:0.9:13", lambda o: L.LinearLR(o, 0.1, 0.9, 13)),
    (
        "linear:0.1:1:10,cosine@10",
        lambda o: L.SequentialLR(
            o, [L.LinearLR(o, 0.1, 1.0, 10), L.CosineAnnealingLR(o, STEPS - 10)], [10]
        ),
    ),
    (
        "linear:0.25:1:4,step:2:0.5@6,cosine:8:0.01@15",
        lambda o: L.SequentialLR(
            o,
            [L.LinearLR(o, 0.25, 1.0, 4), L.StepLR(o, 2, 0.5), L.CosineAnnealingLR(o, 8, 0.01)],
            [6, 15],
        ),
    ),
]


@pytest.mark.parametrize("spec,make", CASES, ids=[c[0] for c in CASES])
def test_rates_are_torchs_bit_for_bit(spec, make):
    ours = gradstab_rates(spec)
    theirs = torch_rates(make)
    assert len(ours) == STEPS
    # == on floats: the same bits (no NaN here).
    assert ours == theirs, [(i + 1, a, b) for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]


def test_each_base_rate_is_scheduled():
    r = gradstab.train(
        depth=2, width=4, samples=8, steps=12, lr=[0.1, 0.03], lr_schedule="step:4:0.5",
        backend="cpu",
    )
    steps = r.steps()
    for run, base in zip(r.to_dict()["runs"], [0.1, 0.03]):
        ours = list(steps[steps["run"] == run["label"]]["lr"])
        assert ours == torch_rates(lambda o: L.StepLR(o, 4, 0.5), steps=12, lr=base)
        assert run["config"]["lr"] == base
        assert run["config"]["lr_schedule"] == "step:4:0.5"


@pytest.mark.parametrize(
    "spec,match",
    [
        ("warmup", "lr schedule"),
        ("step", "lr schedule"),
        ("cosine:0", "T_MAX 0"),
        ("linear:0", "START 0"),
        ("linear,cosine", "lr schedule"),
        ("linear,cosine@3,step:2@3", "milestone"),
    ],
)
def test_bad_specs_are_refused(spec, match):
    with pytest.raises(gradstab.InvalidArgument, match=match):
        gradstab.train(depth=2, width=4, steps=2, lr_schedule=spec, backend="cpu")
