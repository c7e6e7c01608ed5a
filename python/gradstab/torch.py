"""gradstab for PyTorch models: which layers of *your* model would overflow or flush to zero
in f16, bf16 or FP8 (:func:`inspect`), and ``gradstab.run``/``gradstab.train`` on an
``nn.Sequential`` of ``Linear`` layers as it is (:func:`from_sequential`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

import gradstab
from ._errors import InvalidArgument

#: The formats of the cast report, in its order.
FORMATS = ("f16", "bf16", "e4m3", "e5m2")

#: A tensor loses at least this fraction of its values to zero: its module is "at risk".
UNDERFLOW_RISK = 0.01


def _first_tensor(value: Any) -> Optional[torch.Tensor]:
    """The module's output tensor: the value itself, or the first tensor of a tuple, list or
    dict (``MultiheadAttention`` returns ``(output, weights)``)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _inspected_modules(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """Every leaf module, and every module that holds parameters of its own
    (``MultiheadAttention``'s ``in_proj_weight``), with its qualified name."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if not any(True for _ in module.children())
        or any(True for _ in module.parameters(recurse=False))
    ]


def _kind(parameter_name: str) -> str:
    return "bias" if "bias" in parameter_name else "weight"


class _Captured:
    """What the hooks saw of one module: its outputs and the gradients of its outputs."""

    def __init__(self) -> None:
        self.outputs: List[torch.Tensor] = []
        self.grads: List[torch.Tensor] = []


def _joined(tensors: List[torch.Tensor]) -> torch.Tensor:
    """One call's tensor as it is; a module called several times, all its calls' values."""
    if len(tensors) == 1:
        return tensors[0]
    dtype = tensors[0].dtype
    if any(t.dtype != dtype for t in tensors):
        dtype = torch.float64
    return torch.cat([t.reshape(-1).to(dtype) for t in tensors])


@contextlib.contextmanager
def _model_left_as_it_was(model: nn.Module, devices: List[int]):
    """Restores what a forward pass may change: each module's training flag, its buffers
    (BatchNorm's running statistics), as the same tensor objects with the same values even
    where the forward rebinds one, and the random number generators (dropout draws from
    them)."""
    modes = {m: m.training for m in model.modules()}
    buffers = [
        (m, name, b, None if b is None else b.detach().clone())
        for m in model.modules()
        for name, b in m._buffers.items()
    ]
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        for m, training in modes.items():
            m.training = training
        with torch.no_grad():
            for m, name, b, saved in buffers:
                m._buffers[name] = b
                if b is not None:
                    b.copy_(saved)


def inspect(
    model: nn.Module,
    inputs: Any,
    target: Any = None,
    loss_fn: Optional[Callable[..., torch.Tensor]] = None,
    formats: Sequence[str] = FORMATS,
    backend: Union[None, str, "gradstab.Device"] = None,
    *,
    adapter: Optional[str] = None,
    training: Optional[bool] = None,
    underflow_risk: float = UNDERFLOW_RISK,
    verbose: bool = True,
):
    """One forward and backward pass of ``model`` in PyTorch, with every module's output,
    output gradient, parameters and parameter gradients measured by gradstab on ``backend``
    (the GPU when there is one): which of them would overflow, flush to zero or turn
    subnormal in each of ``formats``.

    ``inputs`` is a tensor, a tuple of positional inputs or a dict of keyword inputs. The loss
    is ``loss_fn(output, target)`` (``loss_fn(output)`` without a target), or
    ``output.sum()`` without a ``loss_fn``. ``training`` runs the pass in train (True) or eval
    (False) mode; by default, in the model's own mode.

    Returns a pandas DataFrame, one row per (module, tensor): ``module`` (its qualified
    name), ``kind`` (output, grad_output, weight, grad_weight, bias, grad_bias), ``tensor``
    (the parameter's own name, or the kind), ``dtype``, ``count``, ``mean``, ``variance``,
    ``abs_max``, ``nan``, ``inf``, ``zero``, and for each format F the fractions of the
    tensor's values that would overflow (``F_overflow``; E4M3 saturates to ±448 instead),
    become zero though non-zero (``F_underflow``) or become subnormal (``F_subnormal``).
    ``df.attrs["verdicts"]`` holds a one-line verdict per format naming the modules at risk
    (a value overflows, or at least ``underflow_risk`` of a tensor flushes to zero), printed
    when ``verbose``.

    The model is left as it was: hooks removed; parameters, buffers and ``.grad`` fields
    unchanged (the gradients are taken with ``torch.autograd.grad``); training flags and
    the random number generators restored.
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgument(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    formats = tuple(formats) if not isinstance(formats, str) else (formats,)
    for f in formats:
        if f not in FORMATS:
            raise InvalidArgument(
                f"format '{f}': inspect reports the casts to {', '.join(FORMATS)}"
            )
    if target is not None and loss_fn is None:
        raise InvalidArgument("target needs a loss_fn(output, target) to compare it with")
    if not 0 < underflow_risk <= 1:
        raise InvalidArgument(f"underflow_risk: expected a fraction in (0, 1], got {underflow_risk}")
    # The device first: a backend that cannot be had is refused before the model is touched.
    device = gradstab.device(backend, adapter)

    modules = _inspected_modules(model)
    captured: Dict[str, _Captured] = {name: _Captured() for name, _ in modules}
    cuda = sorted(
        {t.device.index or 0 for t in list(model.parameters()) + list(model.buffers()) if t.is_cuda}
    )
    handles = []
    with _model_left_as_it_was(model, cuda):
        try:
            for name, module in modules:
                seen = captured[name]

                def forward_hook(_module, _args, output, seen=seen):
                    out = _first_tensor(output)
                    if out is None:
                        return
                    # A copy: the parent's forward may still edit the tensor in place.
                    seen.outputs.append(out.detach().clone())
                    # The gradient of this very tensor, as it was when the module returned it
                    # (a hook on a tensor sees its gradient before any later in-place edit,
                    # such as a residual block's `out += identity`).
                    if out.requires_grad:
                        out.register_hook(lambda grad, seen=seen: seen.grads.append(grad.detach().clone()))

                handles.append(module.register_forward_hook(forward_hook))
            if training is not None:
                model.train(training)
            parameters = [
                (mname, pname, p)
                for mname, module in modules
                for pname, p in module.named_parameters(recurse=False)
            ]
            grads = _forward_backward(model, inputs, target, loss_fn, parameters)
        finally:
            for h in handles:
                h.remove()

    # Module by module, in the model's order: its output and output gradient, then each of
    # its parameters and that parameter's gradient.
    grads_of = {(m, n): (p, g) for (m, n, p), g in zip(parameters, grads)}
    tensors: List[Tuple[str, str, str, torch.Tensor]] = []
    for name, module in modules:
        seen = captured[name]
        if seen.outputs:
            tensors.append((name, "output", "output", _joined(seen.outputs)))
        if seen.grads:
            tensors.append((name, "grad_output", "grad_output", _joined(seen.grads)))
        for pname, _ in module.named_parameters(recurse=False):
            p, grad = grads_of[(name, pname)]
            kind = _kind(pname)
            tensors.append((name, kind, pname, p.detach()))
            if grad is not None:
                tensors.append((name, f"grad_{kind}", pname, grad))
    frame = _frame(tensors, formats, device)
    frame.attrs["verdicts"] = _verdicts(frame, formats, underflow_risk)
    if verbose:
        for line in frame.attrs["verdicts"].values():
            print(line)
    return frame


def _forward_backward(model, inputs, target, loss_fn, parameters):
    """The model's forward pass and the gradients of the loss with respect to each parameter
    (None for one that does not take part), leaving ``.grad`` alone. A model with no
    parameter that requires grad (frozen, or without parameters) is differentiated with
    respect to its floating-point inputs instead, so that its modules' output gradients are
    still measured."""
    if torch.is_inference_mode_enabled():
        raise InvalidArgument(
            "inspect needs autograd for the backward pass: call it outside torch.inference_mode()"
        )
    wanted = [p for _, _, p in parameters if p.requires_grad]
    if not wanted:
        inputs, wanted = _differentiable(inputs)
        if not wanted:
            raise InvalidArgument(
                "nothing to differentiate: no parameter requires grad and no input is a "
                "floating-point tensor"
            )
    with torch.enable_grad():
        if isinstance(inputs, dict):
            output = model(**inputs)
        elif isinstance(inputs, tuple):
            output = model(*inputs)
        else:
            output = model(inputs)
        if loss_fn is not None:
            loss = loss_fn(output, target) if target is not None else loss_fn(output)
        else:
            out = _first_tensor(output)
            if out is None:
                raise InvalidArgument("the model returned no tensor to sum; give a loss_fn")
            loss = out.sum()
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise InvalidArgument("the loss must be a tensor of one value (a scalar)")
        if not loss.requires_grad:
            raise InvalidArgument("the loss does not depend on anything that requires grad")
        got = iter(torch.autograd.grad(loss, wanted, allow_unused=True))
    return [next(got) if p.requires_grad else None for _, _, p in parameters]


def _differentiable(inputs):
    """The inputs with each floating-point tensor replaced by a copy that requires grad (the
    caller's tensors are left alone), and those copies."""
    made: List[torch.Tensor] = []

    def leaf(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            copy = value.detach().requires_grad_(True)
            made.append(copy)
            return copy
        return value

    if isinstance(inputs, dict):
        return {k: leaf(v) for k, v in inputs.items()}, made
    if isinstance(inputs, tuple):
        return tuple(leaf(v) for v in inputs), made
    return leaf(inputs), made


def _frame(tensors, formats, device):
    import pandas as pd

    result = gradstab.stats(
        {str(i): t for i, (_, _, _, t) in enumerate(tensors)}, backend=device
    ).to_dict()
    rows = []
    for (module, kind, name, t), report in zip(tensors, result["tensors"]):
        s = report["stats"]
        count = s["count"] if s else 0
        row = {
            "module": module,
            "kind": kind,
            "tensor": name,
            "dtype": str(t.dtype).replace("torch.", ""),
            "count": count,
            "mean": _num(s and s["mean"]),
            "variance": _num(s and s["variance"]),
            "abs_max": _num(s and s["abs_max"]),
            "nan": s["nan"] if s else 0,
            "inf": (s["pos_inf"] + s["neg_inf"]) if s else 0,
            "zero": s["zero"] if s else 0,
        }
        for f in formats:
            cast = s["cast"][f] if s else {"overflow": 0, "zero": 0, "subnormal": 0}
            share = (lambda n: n / count) if count else (lambda n: 0.0)
            row[f"{f}_overflow"] = share(cast["overflow"])
            row[f"{f}_underflow"] = share(cast["zero"])
            row[f"{f}_subnormal"] = share(cast["subnormal"])
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["device"] = result["device"]
    return frame


def _num(value):
    return float("nan") if value is None else value


def _verdicts(frame, formats, underflow_risk) -> Dict[str, str]:
    verdicts = {}
    modules = list(dict.fromkeys(frame["module"]))
    for f in formats:
        risks = []
        for module in modules:
            rows = frame[frame["module"] == module]
            worst_over = rows.loc[rows[f"{f}_overflow"].idxmax()] if len(rows) else None
            worst_under = rows.loc[rows[f"{f}_underflow"].idxmax()] if len(rows) else None
            reasons = []
            if worst_over is not None and worst_over[f"{f}_overflow"] > 0:
                what = "saturates" if f == "e4m3" else "overflows"
                reasons.append(f"{_label(worst_over)} {what} ({_pct(worst_over[f'{f}_overflow'])})")
            if worst_under is not None and worst_under[f"{f}_underflow"] >= underflow_risk:
                reasons.append(
                    f"{_label(worst_under)} flushes to zero ({_pct(worst_under[f'{f}_underflow'])})"
                )
            if reasons:
                risks.append(f"{module or '(the model)'}: {', '.join(reasons)}")
        if risks:
            verdicts[f] = f"{f}: {len(risks)} of {len(modules)} modules at risk: " + "; ".join(risks)
        else:
            verdicts[f] = (
                f"{f}: no module at risk (no value overflows; no tensor loses "
                f"{_pct(underflow_risk)} or more of its values to zero)"
            )
    return verdicts


def _label(row) -> str:
    """A row's tensor as a verdict names it: 'grad_output', 'grad_bias', 'in_proj_bias'."""
    kind, name = row["kind"], row["tensor"]
    if name in ("output", "grad_output", "weight", "bias"):
        return kind
    return name if not kind.startswith("grad_") else f"grad of {name}"


def _pct(fraction: float) -> str:
    p = 100 * fraction
    return f"{p:.3g}%" if p >= 0.01 else "<0.01%"


# ---------------------------------------------------------------------------------------------

_ACTIVATIONS = {
    nn.ReLU: lambda m: "relu",
    nn.Tanh: lambda m: "tanh",
    nn.Sigmoid: lambda m: "sigmoid",
    nn.Identity: lambda m: "linear",
    nn.LeakyReLU: lambda m: f"leaky_relu:{m.negative_slope!r}",
}


class Sequential:
    """An ``nn.Sequential`` of ``Linear`` layers and one kind of activation, ready for
    :func:`gradstab.run` and :func:`gradstab.train` with its own weights, activation and
    parameter names."""

    def __init__(self, model: nn.Module):
        if not isinstance(model, nn.Sequential):
            raise InvalidArgument(
                f"from_sequential takes an nn.Sequential, got {type(model).__name__}; "
                "gradstab.torch.inspect takes any model"
            )
        linears: List[Tuple[str, nn.Linear]] = []
        activations: List[Tuple[str, nn.Module]] = []
        last_is_activation = False
        for name, module in model.named_children():
            if isinstance(module, nn.Linear):
                linears.append((name, module))
                last_is_activation = False
            elif type(module) in _ACTIVATIONS:
                if not linears or last_is_activation:
                    raise InvalidArgument(
                        f"module '{name}' ({type(module).__name__}): gradstab's networks are "
                        "Linear layers with one activation after each"
                    )
                activations.append((name, module))
                last_is_activation = True
            else:
                raise InvalidArgument(
                    f"module '{name}' is a {type(module).__name__}: from_sequential takes "
                    "Linear layers and ReLU, Tanh, Sigmoid, LeakyReLU or Identity between them "
                    "(gradstab.torch.inspect takes any model)"
                )
        if not linears:
            raise InvalidArgument("the Sequential holds no Linear layer")
        kinds = {_ACTIVATIONS[type(m)](m) for _, m in activations}
        if len(kinds) > 1:
            raise InvalidArgument(
                f"the Sequential mixes activations ({', '.join(sorted(kinds))}); gradstab "
                "runs one activation throughout"
            )
        between = len(linears) - 1
        if len(activations) < between:
            raise InvalidArgument(
                "two Linear layers follow each other without an activation between them; "
                "put nn.Identity() there for a linear one"
            )
        self.model = model
        self.activation = kinds.pop() if kinds else "linear"
        #: Whether an activation follows the last Linear layer.
        self.output_activation = last_is_activation
        #: The model's own names of each Linear layer's weight and bias.
        self.names = [
            (f"{name}.weight", f"{name}.bias" if layer.bias is not None else None)
            for name, layer in linears
        ]
        self._linears = [layer for _, layer in linears]

    def _write(self, directory: str) -> str:
        """The weights as a bare Sequential's state dict ('0.weight', '2.weight', …)."""
        tensors = {}
        for i, layer in enumerate(self._linears):
            tensors[f"{2 * i}.weight"] = layer.weight
            if layer.bias is not None:
                tensors[f"{2 * i}.bias"] = layer.bias
        path = os.path.join(directory, "weights.safetensors")
        _save_safetensors(tensors, path)
        return path

    def run(self, **options: Any) -> "gradstab.RunResult":
        """:func:`gradstab.run` from this model's weights, activation and head (a model ending
        in a Linear layer runs with ``output_activation=False``)."""
        self._refuse(options, "run")
        with tempfile.TemporaryDirectory() as d:
            return gradstab.run(
                weights=self._write(d),
                activation=self.activation,
                output_activation=self.output_activation,
                **options,
            )

    def train(self, **options: Any) -> "SequentialTrainResult":
        """:func:`gradstab.train` from this model's weights, activation and head;
        :meth:`SequentialTrainResult.save_weights` writes the model's own parameter names."""
        self._refuse(options, "train")
        # The trained model is kept for save_weights when there is one model to keep: one
        # learning rate and one precision.
        options.setdefault("keep_weights", _runs(options) == 1)
        if options.get("resume") is not None:
            # The checkpoint holds the model's weights and activation: the model gives only
            # its names, for save_weights.
            return SequentialTrainResult(gradstab.train(**options), self.names)
        with tempfile.TemporaryDirectory() as d:
            result = gradstab.train(
                weights=self._write(d),
                activation=self.activation,
                output_activation=self.output_activation,
                **options,
            )
        return SequentialTrainResult(result, self.names)

    @staticmethod
    def _refuse(options: Dict[str, Any], command: str) -> None:
        for taken in ("weights", "activation", "output_activation", "depth", "width", "init", "bias", "preset"):
            if taken in options:
                raise InvalidArgument(
                    f"{taken}: from_sequential's {command} takes it from the model"
                )


class SequentialTrainResult(gradstab.TrainResult):
    """A :class:`gradstab.TrainResult` whose ``save_weights`` writes the model's names."""

    def __init__(self, result: "gradstab.TrainResult", names):
        super().__init__(result._native)
        self._names = names

    def save_weights(self, path) -> None:
        """Writes the trained weights as a safetensors state dict under the model's own
        parameter names, so ``model.load_state_dict(safetensors.torch.load_file(path))``
        takes it; refused for a run that diverged."""
        self._native.save_weights(path, self._names)


def _runs(options: Dict[str, Any]) -> int:
    """How many runs `train` makes of these options: one per learning rate and precision."""

    def count(value: Any) -> int:
        if value is None:
            return 1
        if isinstance(value, str):
            return len(value.split(","))
        if isinstance(value, (list, tuple)):
            return len(value)
        return 1

    return count(options.get("lr")) * count(options.get("precision"))


def from_sequential(model: nn.Module) -> Sequential:
    """``model`` (an ``nn.Sequential`` of ``Linear`` layers with one kind of activation
    between them) ready for gradstab's ``run`` and ``train``: ``from_sequential(m).train(
    precision=["f32", "bf16"], steps=200)``. The activation comes from the model, never a
    default; anything else in it is refused."""
    return Sequential(model)


def _save_safetensors(tensors: Dict[str, torch.Tensor], path: str) -> None:
    """A safetensors file of ``tensors`` (written here, so that safetensors is not needed)."""
    import json
    import struct

    names = {
        torch.float32: "F32",
        torch.float16: "F16",
        torch.bfloat16: "BF16",
        torch.float64: "F64",
    }
    header: Dict[str, Any] = {}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype not in names:
            raise InvalidArgument(f"parameter {name} is {t.dtype}: expected a float dtype")
        data = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
