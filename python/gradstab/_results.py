"""Result objects: the library's reports, as dicts (the command line's JSON) and DataFrames."""

from __future__ import annotations

import io
import json
from typing import Any, Dict, List


def _pandas():
    """pandas, imported only when a DataFrame is asked for (it is optional)."""
    try:
        import pandas
    except ImportError as e:  # pragma: no cover - exercised without pandas installed
        raise ImportError(
            "this method returns a pandas DataFrame: pip install pandas"
        ) from e
    return pandas


def _frame(csv_text: str):
    # An empty cell (a quantity without a theory) is NaN; "inf" and "nan" read as floats.
    return _pandas().read_csv(io.StringIO(csv_text))


class _Report:
    def __init__(self, native: Any):
        self._native = native
        self._dict: Dict[str, Any] | None = None

    def to_dict(self) -> Dict[str, Any]:
        """The report as the command line's ``--format json`` writes it."""
        if self._dict is None:
            self._dict = json.loads(self._native.json())
        return self._dict

    def to_json(self) -> str:
        """The command line's ``--format json``, as text."""
        return self._native.json()

    def to_csv(self) -> str:
        """The command line's ``--format csv``, as text."""
        return self._native.csv()

    def table(self) -> str:
        """The command line's terminal table."""
        return self._native.table()

    def __str__(self) -> str:
        return self.table()

    @property
    def device(self) -> Dict[str, Any]:
        """The adapter, backend and driver that ran it."""
        return self.to_dict()["device"]


class _Runs(_Report):
    """A report of runs (``run`` or ``train``)."""

    @property
    def claims(self) -> List[Dict[str, Any]]:
        """A preset's claims, each with whether it held (empty without a preset)."""
        return self.to_dict().get("claims", [])

    def layers(self):
        """The command line's CSV as a DataFrame: one row per layer of each run (and, for
        ``train``, of each recorded step)."""
        return _frame(self.to_csv())

    def plot(self, path) -> None:
        """Draws the command line's ``--plot`` figure to an SVG file."""
        self._native.plot(path)

    def __repr__(self) -> str:
        runs = self.to_dict()["runs"]
        return f"<gradstab.{type(self).__name__}: {len(runs)} run(s) on {self.device['adapter']}>"


class RunResult(_Runs):
    """What ``gradstab.run`` measured: every layer of every run, beside the theory.
    ``layers()`` has one row per (variant, precision, layer, quantity); ``plot(path)`` draws
    log10 variance against depth."""


class TrainResult(_Runs):
    """What ``gradstab.train`` recorded: the loss of every step, every layer's statistics.
    ``layers()`` has one row per (run, recorded step, layer); ``plot(path)`` draws the loss
    curves."""

    def steps(self):
        """One row per (run, step): the step's learning rate (``lr_schedule``'s, or the run's
        ``lr``), the loss, the loss scale and whether the step was skipped."""
        rows = []
        for run in self.to_dict()["runs"]:
            config = run["config"]
            for step in run["steps"]:
                rows.append(
                    {
                        "run": run["label"],
                        "precision": config["precision"],
                        "lr": step["lr"],
                        "step": step["step"],
                        "loss": _number(step["loss"]),
                        "loss_scale": step["loss_scale"],
                        "skipped": step["skipped"],
                    }
                )
        return _pandas().DataFrame(rows)

    def times(self):
        """One row per (run, step): where the step's time went, in host seconds, on the CPU
        backend: ``forward_s`` (the batch, forward and the loss), ``backward_s``,
        ``optimizer_s`` (0 on a skipped step) and ``records_s`` (every gradient's and
        update's record). On a GPU whose adapter has timestamp queries, the device seconds of
        each phase's kernels (docs/cli.md, ``steps[].time``); NaN on one without, whose work
        is asynchronous: a host clock would not measure it. Timing, not a result: it differs
        from one run to the next."""
        parts = ["forward_s", "backward_s", "optimizer_s", "records_s"]
        rows = []
        for run in self.to_dict()["runs"]:
            for step in run["steps"]:
                time = step.get("time") or {}
                row = {"run": run["label"], "step": step["step"]}
                row.update({p: _number(time.get(p)) for p in parts})
                rows.append(row)
        return _pandas().DataFrame(rows, columns=["run", "step"] + parts)

    def evaluations(self):
        """One row per (run, evaluation): the step it followed, the mean loss and (labels
        only, else NaN) the accuracy over the whole training set and the validation set (NaN
        without one). The last row of a run is its ``summary["final_eval"]``."""
        rows = []
        for run in self.to_dict()["runs"]:
            for step in run["steps"]:
                e = step.get("eval")
                if e is None:
                    continue
                rows.append(
                    {
                        "run": run["label"],
                        "step": e["step"],
                        "train_loss": _number(e["train_loss"]),
                        "train_accuracy": _number(e["train_accuracy"]),
                        "val_loss": _number(e["val_loss"]),
                        "val_accuracy": _number(e["val_accuracy"]),
                    }
                )
        columns = ["run", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]
        return _pandas().DataFrame(rows, columns=columns)

    def heatmap(self, path) -> None:
        """Draws log10 ‖ΔW‖/‖W‖ per layer and step to an SVG file (``--heatmap``)."""
        self._native.heatmap(path)

    def save_weights(self, path) -> None:
        """Writes the trained model as a safetensors state dict that ``load_state_dict`` takes
        (needs ``keep_weights=True``; refused for a run that diverged)."""
        self._native.save_weights(path)


class StatsResult(_Report):
    """The statistics of tensors, and what a cast to f16, bf16, e4m3 or e5m2 would do to them."""

    def tensors(self):
        """One row per tensor: the command line's CSV."""
        return _frame(self.to_csv())

    def table(self, histogram: bool = False) -> str:
        """The command line's terminal table (with ``histogram``, the exponent histograms)."""
        return self._native.table(histogram)

    @property
    def stats(self) -> Dict[str, Any] | None:
        """The record of the first (for an array, the only) tensor: count, mean, variance,
        extrema, class counts, exponent histogram and cast report; None for no values."""
        return self.to_dict()["tensors"][0]["stats"]

    def __repr__(self) -> str:
        return f"<gradstab.StatsResult: {len(self.to_dict()['tensors'])} tensor(s)>"


def _number(value):
    """JSON's null for a loss that is inf or NaN, as NaN."""
    return float("nan") if value is None else value
