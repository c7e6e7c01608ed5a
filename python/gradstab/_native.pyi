"""Type stubs of the compiled module gradstab._native (python/src), which gradstab wraps."""

from os import PathLike
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

_Path = Union[str, PathLike]
_Int = int
_Widths = Union[int, Sequence[int], str]
_Names = Union[str, Sequence[str]]

__version__: str

class Device:
    """An opened backend: the GPU, or the CPU backend with the same numeric semantics."""

    def __new__(
        cls,
        backend: Optional[str] = None,
        adapter: Optional[str] = None,
        matmul_variant: Optional[str] = None,
    ) -> "Device": ...
    @property
    def kind(self) -> str: ...
    def info_json(self) -> str: ...

def devices() -> str: ...
def presets() -> List[Tuple[str, str, str]]: ...

class StatsReport:
    def json(self) -> str: ...
    def csv(self) -> str: ...
    def table(self, histogram: bool = False) -> str: ...

def stats_of_arrays(device: Device, arrays: List[Tuple[Any, str, str, str]]) -> StatsReport: ...
def stats_of_file(device: Device, path: _Path) -> StatsReport: ...

class RunReport:
    def json(self) -> str: ...
    def csv(self) -> str: ...
    def table(self) -> str: ...
    def plot(self, path: _Path) -> None: ...

def run(
    device: Device,
    *,
    preset: Optional[str] = None,
    depth: Optional[_Int] = None,
    width: Optional[_Widths] = None,
    batch: Optional[_Int] = None,
    activation: Optional[str] = None,
    init: Optional[str] = None,
    input: Optional[str] = None,
    bias_std: Optional[float] = None,
    residual: bool = False,
    output_activation: Optional[bool] = None,
    loss: Optional[str] = None,
    clip_norm: Optional[float] = None,
    clip_value: Optional[float] = None,
    precision: Optional[_Names] = None,
    fp8_scaling: Optional[str] = None,
    fp8_history: Optional[_Int] = None,
    fp8_margin: Optional[int] = None,
    seed: Optional[_Int] = None,
    weights: Optional[_Path] = None,
    data: Optional[_Path] = None,
    max_memory: Optional[Union[int, str]] = None,
    progress: Optional[Callable[[int, int, str], object]] = None,
) -> RunReport: ...

class TrainReport:
    def json(self) -> str: ...
    def csv(self) -> str: ...
    def table(self) -> str: ...
    def plot(self, path: _Path) -> None: ...
    def heatmap(self, path: _Path) -> None: ...
    def save_weights(
        self, path: _Path, names: Optional[Sequence[Tuple[str, Optional[str]]]] = None
    ) -> None: ...

def train(
    device: Device,
    *,
    preset: Optional[str] = None,
    depth: Optional[_Int] = None,
    width: Optional[_Widths] = None,
    outputs: Optional[_Int] = None,
    activation: Optional[str] = None,
    init: Optional[str] = None,
    bias: bool = False,
    bias_std: Optional[float] = None,
    residual: bool = False,
    output_activation: Optional[bool] = None,
    seed: Optional[_Int] = None,
    weights: Optional[_Path] = None,
    keep_weights: bool = False,
    task: Optional[str] = None,
    teacher_depth: Optional[_Int] = None,
    teacher_width: Optional[_Int] = None,
    samples: Optional[_Int] = None,
    data: Optional[_Path] = None,
    batch: Optional[_Int] = None,
    shuffle: bool = False,
    drop_last: bool = False,
    steps: Optional[_Int] = None,
    epochs: Optional[_Int] = None,
    record_every: Optional[_Int] = None,
    optimizer: Optional[str] = None,
    lr: Optional[Union[float, Sequence[float]]] = None,
    lr_schedule: Optional[str] = None,
    momentum: Optional[float] = None,
    nesterov: bool = False,
    weight_decay: Optional[float] = None,
    betas: Optional[Tuple[float, float]] = None,
    eps: Optional[float] = None,
    precision: Optional[_Names] = None,
    fp8_scaling: Optional[str] = None,
    fp8_history: Optional[_Int] = None,
    fp8_margin: Optional[int] = None,
    loss_scale: Optional[Union[str, float]] = None,
    init_scale: Optional[float] = None,
    growth_factor: Optional[float] = None,
    backoff_factor: Optional[float] = None,
    growth_interval: Optional[_Int] = None,
    clip_norm: Optional[float] = None,
    clip_value: Optional[float] = None,
    max_memory: Optional[Union[int, str]] = None,
    checkpoint: Optional[_Path] = None,
    checkpoint_every: Optional[_Int] = None,
    resume: Optional[_Path] = None,
    val_data: Optional[_Path] = None,
    val_split: Optional[float] = None,
    eval_every: Optional[_Int] = None,
    progress: Optional[Callable[[int, int, str], object]] = None,
) -> TrainReport: ...
