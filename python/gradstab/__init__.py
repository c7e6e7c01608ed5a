"""gradstab: the numerical (in)stability of deep networks, measured on real GPU hardware.

The same library as the ``gradstab`` command line, from Python:

- :func:`run` runs a deep MLP forward and backward and records every layer, beside the theory;
- :func:`train` trains one and records every step;
- :func:`stats` gives the statistics of an array, a tensor or a file, and what a cast to f16,
  bf16, e4m3 or e5m2 would do to it;
- :mod:`gradstab.torch` inspects any PyTorch model (:func:`gradstab.torch.inspect`) and runs a
  ``Sequential`` of ``Linear`` layers directly (:func:`gradstab.torch.from_sequential`).

Every function takes ``backend`` ("gpu", "cpu" or None for the GPU with the CPU as fallback)
and ``adapter``; options have the command line's names (``--bias-std`` is ``bias_std``) and
forms. Errors are :class:`GradstabError` subclasses that are also ``ValueError``,
``OSError``, ``MemoryError`` or ``RuntimeError``, with the library's messages.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Union

from . import _native
from ._errors import (
    DeviceError,
    FileError,
    FileNotFound,
    GradstabError,
    InvalidArgument,
    PermissionDenied,
    WontFit,
)
from ._results import RunResult, StatsResult, TrainResult

__version__: str = _native.__version__
Device = _native.Device

_devices: Dict[tuple, Any] = {}


def device(
    backend: Optional[str] = None,
    adapter: Optional[str] = None,
    matmul_variant: Optional[str] = None,
) -> "Device":
    """The backend to run on, opened once and kept: ``backend`` is "gpu", "cpu" or None (the
    GPU, or the CPU with a logged notice when there is no adapter and no GPU was asked for);
    ``adapter`` a number or part of a name from :func:`devices`. A :class:`Device` passed as
    ``backend`` is used as it is."""
    if isinstance(backend, _native.Device):
        if adapter is not None or matmul_variant is not None:
            raise InvalidArgument("adapter and matmul_variant choose a device; this one is open")
        return backend
    key = (
        backend,
        adapter,
        matmul_variant,
        os.environ.get("GRADSTAB_ADAPTER"),
        os.environ.get("GRADSTAB_MATMUL_VARIANT"),
    )
    if key not in _devices:
        if backend != "cpu":
            _load_triton_first()
        _devices[key] = _native.Device(backend, adapter, matmul_variant)
    return _devices[key]


def _load_triton_first() -> None:
    """Imports triton, where PyTorch brought it, before a GPU is opened. Triton bundles its own
    LLVM, and loaded after the LLVM of Mesa's software GPU (lavapipe), it crashes the process
    with a segmentation fault at PyTorch's first optimizer; loaded first, both work."""
    import importlib.util

    if "triton" not in sys.modules and importlib.util.find_spec("triton") is not None:
        try:
            import triton  # noqa: F401
        except Exception:  # a broken triton is PyTorch's concern, not a reason to fail here
            pass


def devices() -> List[Dict[str, Any]]:
    """Every GPU adapter: name, backend, type, driver, f16 support and limits (as
    ``gradstab devices --format json``); the first is the default."""
    return json.loads(_native.devices())


def presets() -> List[Dict[str, str]]:
    """The presets of :func:`run` and :func:`train` (the lecture's experiments)."""
    return [
        {"command": command, "name": name, "summary": summary}
        for command, name, summary in _native.presets()
    ]


def run(
    preset: Optional[str] = None,
    *,
    backend: Union[None, str, "Device"] = None,
    adapter: Optional[str] = None,
    matmul_variant: Optional[str] = None,
    **options: Any,
) -> RunResult:
    """Runs a deep MLP forward and backward and records every layer, as ``gradstab run``.

    ``options`` are the command line's: ``depth``, ``width`` (an int or a list, input first),
    ``batch``, ``activation``, ``init``, ``input``, ``bias_std``, ``residual``,
    ``output_activation``, ``loss`` (probe, sum, mse or cross-entropy), ``clip_norm``, ``clip_value``, ``precision`` (a name or a list: f32, f16, f16acc32, bf16,
    bf16acc32, fp8), ``fp8_scaling``, ``fp8_history``, ``fp8_margin``, ``seed``, ``weights``
    (a safetensors state dict of an ``nn.Sequential``; its activation is the file's where
    gradstab wrote it, else ``activation`` must name it), ``data`` and ``max_memory``.
    A preset's other options override it. ``progress=callable(done, total, label)`` hears
    every layer; an exception it raises, or Ctrl-C, stops the run.
    """
    dev = device(backend, adapter, matmul_variant)
    return RunResult(_native.run(dev, preset=preset, **options))


def train(
    preset: Optional[str] = None,
    *,
    backend: Union[None, str, "Device"] = None,
    adapter: Optional[str] = None,
    matmul_variant: Optional[str] = None,
    **options: Any,
) -> TrainResult:
    """Trains a deep MLP and records every step, as ``gradstab train``.

    ``options`` are the command line's: the model (``depth``, ``width``, ``activation``,
    ``init``, ``bias``, ``residual``, ``output_activation``, ``weights``), the data (``task``,
    ``teacher_depth``, ``teacher_width``, ``samples``, ``data``, ``batch``, ``shuffle``, ``drop_last``), the
    optimizer (``optimizer``, ``lr`` (a number or a list), ``lr_schedule`` (the command
    line's ``--lr-schedule`` spec, such as ``"linear:0.1:1:10,cosine@10"``, stepped once per
    step), ``momentum``, ``nesterov``, ``weight_decay``, ``betas``, ``eps``), the precision (``precision``, ``fp8_*``,
    ``loss_scale``, ``init_scale``, ``growth_factor``, ``backoff_factor``,
    ``growth_interval``), ``clip_norm``, ``clip_value``, ``steps`` or ``epochs``, ``record_every``, ``seed``
    and ``max_memory``; ``keep_weights=True`` keeps the trained model for
    :meth:`TrainResult.save_weights`, which writes the activation into the file for
    ``weights=`` to read back (a plain PyTorch state dict needs ``activation`` and
    ``output_activation`` given). A preset takes only ``steps``, ``seed`` and
    ``record_every``. ``progress=callable(done, total, label)`` hears every step; an
    exception it raises, or Ctrl-C, stops the training.

    Evaluation: ``val_data`` (a file as ``data``, or an ``(x, y)`` pair of arrays, which
    ``data`` takes too: they are written to a temporary ``.npz`` whose name the report's
    config then carries) or ``val_split=F`` (ceil(F·N) samples held out, drawn from the seed,
    stratified by class for labels; the rows in ``run["split"]["val_rows"]``), and
    ``eval_every=K``: the loss, and the accuracy for labels, over the whole training and
    validation sets after every K steps and after the last (:meth:`TrainResult.evaluations`).
    """
    dev = device(backend, adapter, matmul_variant)
    with tempfile.TemporaryDirectory(prefix="gradstab-") as scratch:
        for name in ("data", "val_data"):
            if isinstance(options.get(name), tuple):
                options[name] = _write_xy(options[name], os.path.join(scratch, name + ".npz"))
        return TrainResult(_native.train(dev, preset=preset, **options))


def _write_xy(pair, path: str) -> str:
    """An ``(x, y)`` pair written as an ``.npz`` that ``data`` reads: x as f32 [N, inputs],
    y as integer labels [N] or f32 targets [N, outputs], as given."""
    import numpy as np

    if len(pair) != 2:
        raise ValueError(f"expected (x, y), got a tuple of {len(pair)}")
    x, y = (np.asarray(v.detach().cpu() if _is_torch_tensor(v) else v) for v in pair)
    if y.dtype.kind not in "iu":
        y = y.astype(np.float32)
    np.savez(path, x=x.astype(np.float32), y=y)
    return path


# What each array dtype is read as, and the gradstab format of its bits.
_NUMPY_FORMATS = {"float32": "f32", "float16": "f16", "float64": "f64"}
_TORCH_FORMATS = {
    "torch.float32": ("f32", None),
    "torch.float16": ("f16", None),
    "torch.float64": ("f64", None),
    "torch.bfloat16": ("bf16", "int16"),
    "torch.float8_e4m3fn": ("e4m3", "uint8"),
    "torch.float8_e5m2": ("e5m2", "uint8"),
}


def _is_torch_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "dtype")


def _as_array(x: Any):
    """(a C-contiguous NumPy array sharing ``x``'s memory where it can, the format its values
    are read as, the dtype to report)."""
    import numpy as np

    if _is_torch_tensor(x):
        import torch

        dtype = str(x.dtype)
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        # A lazily negated or conjugated view has no plain memory to read.
        t = t.resolve_neg().resolve_conj()
        if dtype in _TORCH_FORMATS:
            fmt, bits = _TORCH_FORMATS[dtype]
            t = t.contiguous()
            if bits is not None:
                t = t.view(getattr(torch, bits))
            return t.numpy(), fmt, dtype.replace("torch.", "")
        if t.is_complex():
            raise InvalidArgument(f"a tensor of {dtype}: gradstab reads real numbers")
        # Other floats (the fnuz FP8 variants, e8m0) widen to f32 exactly; integers and
        # booleans are read as float64, then as the f32 a GPU holds.
        wide = torch.float32 if t.is_floating_point() else torch.float64
        array, fmt, _ = _as_array(t.to(wide))
        return array, fmt, dtype.replace("torch.", "")
    a = np.asarray(x)
    name = a.dtype.name
    if a.dtype.kind in "biu":
        return np.ascontiguousarray(a, dtype=np.float64).reshape(a.shape), "f64", name
    if name not in _NUMPY_FORMATS:
        raise InvalidArgument(
            f"an array of {name}: gradstab reads float16, float32 and float64 arrays, integer "
            "arrays, and PyTorch's tensors of every real dtype"
        )
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if not (a.flags.c_contiguous and a.flags.aligned):
        # Read in place where the layout allows; a strided or misaligned array is copied.
        a = a.copy(order="C")
    return a, _NUMPY_FORMATS[name], name


def stats(
    x: Any,
    *,
    name: str = "",
    backend: Union[None, str, "Device"] = None,
    adapter: Optional[str] = None,
) -> StatsResult:
    """Statistics of ``x`` on the chosen backend, and what a cast to f16, bf16, e4m3 and e5m2
    would do to it (overflow, flush to zero, subnormal).

    ``x`` is a NumPy array or a PyTorch tensor of any float dtype (bfloat16 and float8
    included; a contiguous CPU tensor or array is read in place, without a copy), a mapping
    of names to them (a ``state_dict``), or the path of a .npy, .npz or .safetensors file.
    """
    dev = device(backend, adapter)
    if isinstance(x, (str, os.PathLike)):
        return StatsResult(_native.stats_of_file(dev, os.fspath(x)))
    named = x.items() if isinstance(x, Mapping) else [(name, x)]
    # Each array is kept alive in this list while the library reads its memory.
    arrays = [(*_as_array(v), str(k)) for k, v in named]
    return StatsResult(
        _native.stats_of_arrays(dev, [(a, fmt, key, dtype) for a, fmt, dtype, key in arrays])
    )


__all__ = [
    "Device",
    "DeviceError",
    "FileError",
    "FileNotFound",
    "GradstabError",
    "InvalidArgument",
    "PermissionDenied",
    "RunResult",
    "StatsResult",
    "TrainResult",
    "WontFit",
    "device",
    "devices",
    "presets",
    "run",
    "stats",
    "train",
]
