"""`gradstab.run(loss="cross-entropy")` on a PyTorch classifier: the gradients it measures at
the logits, the first hidden layer, the input and the weights equal PyTorch's on the same
model and data, read with backward hooks.

The reference is the same model in float64, so its own error (~1e-16) is negligible. The
tolerance is a forward error bound of an f32 pass, computed elementwise in f64 alongside it:

- a matmul or its bias add over k terms errs by at most 2γ_k·|A||B| (+ u|result| for the
  add), the library's documented bound (γ_k = k·u/(1 − k·u), u = 2^-24), in any order;
  earlier errors propagate through |W|; ReLU is 1-Lipschitz and exact;
- softmax's gradient moves by at most 2·p_j·max_k|δz_k| under an error δz of the logits, and
  its f32 evaluation (a max, C exponentials summed, a division, the one-hot subtraction, the
  1/N factor and the store) adds (C + 6)·u·(p_j + 1)/N;
- a ReLU derivative may flip only where |z| is within z's bound, costing |g| there.

A statistic then errs by the norm of the elementwise bound e: ‖g̃‖₂ within ‖e‖₂, max|g̃|
within max e, the mean within mean(e) (the CPU backend's statistics are f64, whose rounding
is added as 4·n·ε₆₄·max|g|). PyTorch's own float32 pass obeys the same bound, which the test
checks too, so the bound is one both implementations meet and not a fit to gradstab.
"""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import gradstab  # noqa: E402

U = 2.0**-24
EPS64 = 2.0**-53
N, WIDTHS, CLASSES = 32, [6, 16, 16], 4


def gamma(k):
    return k * U / (1 - k * U)


def classifier(seed=0):
    torch.manual_seed(seed)
    layers = []
    for n_in, n_out in zip(WIDTHS, WIDTHS[1:] + [CLASSES]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # logits: no activation after the last Linear


def dataset(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, WIDTHS[0], generator=g) * 2
    y = torch.randint(0, CLASSES, (N,), generator=g)
    return x, y


def torch_gradients(model, x, y, dtype):
    """∂l/∂H^t (t = 0..d) and ∂l/∂W^t of F.cross_entropy(model(x), y), from backward hooks."""
    m = copy.deepcopy(model).to(dtype)
    linears = [mod for mod in m if isinstance(mod, nn.Linear)]
    d = len(linears)
    grad_h = [None] * (d + 1)

    def hook(t):
        def record(_mod, grad_input, grad_output):
            grad_h[t - 1] = grad_input[0].detach().clone()  # ∂l/∂H^{t−1}, the Linear's input
            if t == d:
                grad_h[d] = grad_output[0].detach().clone()  # ∂l/∂logits

        return record

    handles = [lin.register_full_backward_hook(hook(t + 1)) for t, lin in enumerate(linears)]
    xs = x.detach().clone().to(dtype).requires_grad_(True)
    F.cross_entropy(m(xs), y).backward()
    for h in handles:
        h.remove()
    grad_w = [None] + [lin.weight.grad.detach().clone() for lin in linears]
    return [g.double().numpy() for g in grad_h], [None] + [g.double().numpy() for g in grad_w[1:]]


def f32_error_bounds(model, x, y):
    """The elementwise bound of an f32 pass's error in ∂l/∂H^t and ∂l/∂W^t, in f64."""
    ws = [lin.weight.detach().double().numpy() for lin in model if isinstance(lin, nn.Linear)]
    bs = [lin.bias.detach().double().numpy() for lin in model if isinstance(lin, nn.Linear)]
    d = len(ws)
    h = [x.double().numpy()]
    zs, err_h, err_z = [None], [np.zeros_like(h[0])], [None]
    for t in range(1, d + 1):
        w, b = np.abs(ws[t - 1]), bs[t - 1]
        z = h[-1] @ ws[t - 1].T + b
        k = w.shape[1]
        e = 2 * gamma(k) * (np.abs(h[-1]) @ w.T) + err_h[-1] @ w.T + U * (np.abs(z) + np.abs(b))
        zs.append(z)
        err_z.append(e)
        if t < d:
            h.append(np.maximum(z, 0))
            err_h.append(e)
    logits, e_logits = zs[d], err_z[d]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(CLASSES)[y.numpy()]
    g = (p - onehot) / N
    e_g = (2 * p * e_logits.max(1, keepdims=True) + (CLASSES + 6) * U * (p + 1)) / N
    grads, errs, err_w = [None] * (d + 1), [None] * (d + 1), [None] * (d + 1)
    grads[d], errs[d] = g, e_g
    for t in range(d, 0, -1):
        w = ws[t - 1]
        if t == d:
            dz, e_dz = grads[t], errs[t]
        else:
            on = zs[t] > 0
            flips = np.abs(zs[t]) <= err_z[t]
            dz = grads[t] * on
            e_dz = errs[t] * on + np.abs(grads[t]) * flips
        errs[t - 1] = 2 * gamma(w.shape[0]) * (np.abs(dz) @ np.abs(w)) + e_dz @ np.abs(w)
        grads[t - 1] = dz @ w
        h_prev = h[t - 1]
        err_w[t] = (
            2 * gamma(N) * (np.abs(dz).T @ np.abs(h_prev))
            + e_dz.T @ np.abs(h_prev)
            + np.abs(dz).T @ err_h[t - 1]
        )
    return errs, err_w


def within(label, got, ref, err):
    """gradstab's (or f32 PyTorch's) statistics of a tensor against the f64 reference's."""
    n, amax = ref.size, np.abs(ref).max()
    stats64 = 4 * n * EPS64 * amax
    checks = [
        ("l2_norm", got["l2_norm"], np.linalg.norm(ref), np.linalg.norm(err) + stats64),
        ("abs_max", got["abs_max"], amax, err.max() + stats64),
        ("mean", got["mean"], ref.mean(), err.mean() + stats64),
    ]
    for name, g, r, tol in checks:
        assert abs(g - r) <= tol, f"{label} {name}: {g!r}, PyTorch (f64) {r!r}, bound {tol:.3g}"


def stats_of(a):
    a = np.asarray(a, dtype=np.float64)
    return {"l2_norm": np.linalg.norm(a), "abs_max": np.abs(a).max(), "mean": a.mean()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("classifier")
    model = classifier()
    x, y = dataset()
    weights = directory / "model.safetensors"
    safetensors_torch.save_file(model.state_dict(), str(weights))
    data = directory / "data.safetensors"
    safetensors_torch.save_file({"x": x, "y": y}, str(data))  # y: int64 labels [N]
    return model, x, y, weights, data


def rows(result, quantity, layer):
    frame = result.layers()
    row = frame[(frame["quantity"] == quantity) & (frame["layer"] == layer)]
    assert len(row) == 1, f"{quantity} of layer {layer}: {len(row)} rows"
    return row.iloc[0]


def test_cross_entropy_gradients_equal_pytorchs_hooks(files):
    model, x, y, weights, data = files
    d = len(WIDTHS)
    result = gradstab.run(
        weights=str(weights), activation="relu", data=str(data), loss="cross-entropy",
        output_activation=False, backend="cpu",
    )
    ref_h, ref_w = torch_gradients(model, x, y, torch.float64)
    f32_h, f32_w = torch_gradients(model, x, y, torch.float32)
    err_h, err_w = f32_error_bounds(model, x, y)
    # The logits' gradient is no longer tiny next to the bound: the check has teeth.
    assert np.linalg.norm(err_h[d]) < 1e-3 * np.linalg.norm(ref_h[d])
    for t in (d, 1, 0):
        label = f"grad_activation of layer {t}"
        within(label, rows(result, "grad_activation", t), ref_h[t], err_h[t])
        within("PyTorch f32 " + label, stats_of(f32_h[t]), ref_h[t], err_h[t])
    for t in (d, 1):
        label = f"grad_weight of layer {t}"
        within(label, rows(result, "grad_weight", t), ref_w[t], err_w[t])
        within("PyTorch f32 " + label, stats_of(f32_w[t]), ref_w[t], err_w[t])
    # The theory's top gradient for cross-entropy: (C − 1)/(C²·N²), the equal-logit value.
    top = rows(result, "grad_activation", d)["theory_second_moment"]
    assert top == pytest.approx((CLASSES - 1) / (CLASSES**2 * N**2), rel=1e-12)


def test_cross_entropy_defaults_to_logits_and_an_explicit_flag_wins(files):
    model, x, y, weights, data = files
    d = len(WIDTHS)
    default = gradstab.run(weights=str(weights), activation="relu", data=str(data), loss="cross_entropy",
                           backend="cpu")
    config = default.to_dict()["config"]
    assert config["output_activation"] is False and config["loss"] == "cross_entropy"
    ref_h, _ = torch_gradients(model, x, y, torch.float64)
    err_h, _ = f32_error_bounds(model, x, y)
    within("default grad_activation of the logits", rows(default, "grad_activation", d),
           ref_h[d], err_h[d])
    # output_activation=True puts the ReLU on the logits: H^d = relu(Z^d), not Z^d.
    forced = gradstab.run(weights=str(weights), activation="relu", data=str(data), loss="cross-entropy",
                          output_activation=True, backend="cpu")
    assert forced.to_dict()["config"]["output_activation"] is True
    h_d = rows(forced, "activation", d)
    assert h_d["min"] >= 0.0
    with torch.no_grad():
        relu_logits = torch.relu(copy.deepcopy(model).double()(x.double())).numpy()
    assert h_d["abs_max"] == pytest.approx(np.abs(relu_logits).max(), rel=1e-5)


def test_missing_and_out_of_range_labels_are_refused(files, tmp_path):
    model, x, y, weights, data = files
    with pytest.raises(gradstab.GradstabError, match="no integer y"):
        path = tmp_path / "no_y.safetensors"
        safetensors_torch.save_file({"x": x}, str(path))
        gradstab.run(weights=str(weights), activation="relu", data=str(path), loss="cross-entropy", backend="cpu")
    bad = y.clone()
    bad[5] = CLASSES
    path = tmp_path / "bad.safetensors"
    safetensors_torch.save_file({"x": x, "y": bad}, str(path))
    with pytest.raises(gradstab.GradstabError, match=r"label 4 \(row 5\).*4 outputs"):
        gradstab.run(weights=str(weights), activation="relu", data=str(path), loss="cross-entropy", backend="cpu")


def test_probe_and_sum_ignore_y_whatever_its_dtype_and_say_so(files, tmp_path, caplog):
    model, x, y, weights, _ = files
    # Float y of the wrong shape, and labels: neither is read by the probe or the sum.
    for name, y_file in [("floats", torch.randn(3, 7)), ("labels", y)]:
        path = tmp_path / f"{name}.safetensors"
        safetensors_torch.save_file({"x": x, "y": y_file}, str(path))
        for loss in ("probe", "sum"):
            caplog.clear()
            with caplog.at_level("WARNING"):
                r = gradstab.run(weights=str(weights), activation="relu", data=str(path), loss=loss, backend="cpu")
            assert r.to_dict()["config"]["loss"] == loss
            assert any("y of" in m and "ignored" in m for m in caplog.messages), caplog.messages
