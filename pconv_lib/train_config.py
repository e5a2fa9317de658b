"""The settings of a training run: :class:`TrainConfig` (stored in every checkpoint) and the valid
ranges of its numbers (:data:`LIMITS`), checked before any work with one line naming the setting.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pconv_lib.errors import BadValue
from pconv_lib.losses import LossWeights
from pconv_lib.model import LAYERS, MAX_DEPTH, MIN_DEPTH

STAGE_LR = {"train": 2e-4, "finetune": 5e-5}
CHECKPOINT_FORMAT = 1

#: Valid ranges (inclusive) of the numeric settings; :class:`TrainConfig` and the command line
#: refuse values outside them with one line naming the setting and the range, before any work.
LIMITS: dict[str, tuple[int | float, int | float]] = {
    "image_size": (1, 8192),
    "depth": (MIN_DEPTH, MAX_DEPTH),  # PConvUNet's range
    "width": (0.01, 8.0),
    "batch_size": (1, 65536),
    "steps": (1, 10**9),
    "steps_per_epoch": (1, 10**9),
    "val_steps": (1, 10**9),
    "log_every": (1, 10**9),
    "sample_every": (1, 10**9),
    "checkpoint_every": (1, 10**9),
    "seed": (0, 2**32 - 1),
    "num_workers": (0, 256),
}


def range_error(name: str, value: object, flag: str | None = None) -> str | None:
    """The one-line complaint about ``value`` for setting ``name`` (see :data:`LIMITS`), or None
    when it is in range. ``flag`` is how the setting is spelt to the user (default: ``name``)."""
    low, high = LIMITS[name]
    shown = flag or name
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return f"{shown} must be a number in {low}..{high}, got {value!r}"
    if isinstance(low, int) and isinstance(high, int) and value != int(value):
        return f"{shown} must be a whole number in {low}..{high}, got {value!r}"
    if value < low:
        return f"{shown} must be at least {low} (valid: {low}..{high}), got {value}"
    if value > high:
        return f"{shown} must be at most {high} (valid: {low}..{high}), got {value}"
    return None


def lr_error(value: float | None, flag: str = "lr") -> str | None:
    """The complaint about a learning rate (a finite number > 0), or None when it is fine."""
    if value is None or (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        return None
    return f"{flag} must be a finite number > 0 (e.g. 2e-4), got {value!r}"


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint.

    Sizes: ``image_size`` must be a multiple of ``2**depth`` (256 with depth 7 and 512 with
    depth 8 are the paper's). ``lr=None`` takes the stage's learning rate (2e-4 / 5e-5).
    GPU speed options (ignored on the CPU except ``compile``): ``amp`` with ``amp_dtype``
    ``"float16"`` (with loss scaling) or ``"bfloat16"`` (no scaling needed; Ampere or newer),
    ``compile`` (``torch.compile`` the model; the first steps are slow while it compiles),
    ``channels_last`` (NHWC memory format, usually faster convolutions with AMP).
    """

    name: str = "pconv"
    stage: str = "train"
    image_size: int = 256
    depth: int = 7
    width: float = 1.0
    layer: str = "partial"
    hole_fill: float | list[float] = 0.5
    batch_size: int = 4
    lr: float | None = None
    steps: int = 100_000
    steps_per_epoch: int = 10_000
    val_steps: int = 1_000
    log_every: int = 100
    sample_every: int = 1_000
    checkpoint_every: int = 1_000
    keep_step_checkpoints: bool = False
    amp: bool = True
    amp_dtype: str = "float16"
    compile: bool = False
    channels_last: bool = False
    seed: int = 0
    num_workers: int = 0
    vgg_weights: str | None = "imagenet"
    out_dir: str = "runs"
    loss_weights: dict[str, float] = field(default_factory=lambda: LossWeights().as_dict())

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise BadValue(f"layer must be one of {LAYERS}, got {self.layer!r}")
        if self.amp_dtype not in ("float16", "bfloat16"):
            raise BadValue(f"amp_dtype must be 'float16' or 'bfloat16', got {self.amp_dtype!r}")
        if self.stage not in STAGE_LR:
            raise BadValue(f"stage must be 'train' or 'finetune', got {self.stage!r}")
        for name in LIMITS:  # before 2**depth: a huge depth must not build a huge number
            problem = range_error(name, getattr(self, name))
            if problem:
                raise BadValue(problem)
        problem = lr_error(self.lr)
        if problem:
            raise BadValue(problem)
        multiple = 2**self.depth
        if self.image_size % multiple:
            raise BadValue(
                f"image_size {self.image_size} is not a multiple of 2**depth = {multiple}; "
                f"use {max(multiple, self.image_size // multiple * multiple)} or a smaller depth"
            )

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else STAGE_LR[self.stage]

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def changed_settings(old: TrainConfig, new: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{setting: (old value, new value)}`` for every setting but ``name`` and ``out_dir`` that
    differs between two configs (what a resumed run changes)."""
    mine = asdict(new)
    return {
        key: (value, mine[key])
        for key, value in asdict(old).items()
        if key not in ("name", "out_dir") and value != mine[key]
    }
