"""The settings of a training run: :class:`TrainConfig` (stored in every checkpoint) and the valid
ranges of its numbers (:data:`LIMITS`), checked before any work with one line naming the setting.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pconv_lib.losses import LossWeights
from pconv_lib.model import LAYERS, MAX_DEPTH, MIN_DEPTH
from pconv_lib.util.errors import BadValue

STAGE_LR = {"train": 2e-4, "finetune": 5e-5}
CHECKPOINT_FORMAT = 1

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


def setting(default: Any, help: str, *, range: tuple[int | float, int | float] | None = None,
            choices: tuple[str, ...] | None = None, flag_default: Any = MISSING) -> Any:
    """A :class:`TrainConfig` field that is also a flag of ``python -m pconv_lib train``.

    ``help`` is the flag's help; ``range`` its valid range (:data:`LIMITS`), ``choices`` its allowed
    values (both checked by the config and by the command line); ``flag_default`` a different default
    on the command line (``None``: derived there, e.g. ``--depth`` from ``--image-size``).
    """
    metadata: dict[str, Any] = {"help": help}
    if range is not None:
        metadata["range"] = range
    if choices is not None:
        metadata["choices"] = choices
    if flag_default is not MISSING:
        metadata["flag_default"] = flag_default
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint.

    Sizes: ``image_size`` must be a multiple of ``2**depth`` (256 with depth 7 and 512 with
    depth 8 are the paper's). ``lr=None`` takes the stage's learning rate (2e-4 / 5e-5).
    GPU speed options (ignored on the CPU except ``compile``): ``amp`` with ``amp_dtype``
    ``"float16"`` (with loss scaling) or ``"bfloat16"`` (no scaling needed; Ampere or newer),
    ``compile`` (``torch.compile`` the model; the first steps are slow while it compiles),
    ``channels_last`` (NHWC memory format, usually faster convolutions with AMP).

    The fields made with :func:`setting` are the ``train`` command's flags (``--image-size`` for
    ``image_size``; ``amp`` is ``--no-amp``): their help, ranges and choices are written here once.
    """

    name: str = "pconv"
    stage: str = setting(
        "train", "train: lr 2e-4 with BN; finetune: lr 5e-5, encoder BN frozen (needs --checkpoint)",
        choices=tuple(STAGE_LR),
    )
    image_size: int = setting(256, "crop size of the training photos (a multiple of 2**depth)",
                              range=(1, 8192))
    depth: int = setting(7, "default: 7 for 256, 8 for 512", range=(MIN_DEPTH, MAX_DEPTH), flag_default=None)
    width: float = setting(1.0, "channel multiplier (1.0 = paper)", range=(0.01, 8.0))
    layer: str = "partial"
    hole_fill: float | list[float] = 0.5
    batch_size: int = setting(4, "photos per step", range=(1, 65536))
    lr: float | None = setting(None, "default: 2e-4 train, 5e-5 finetune")
    steps: int = setting(100_000, "total optimiser steps", range=(1, 10**9))
    steps_per_epoch: int = setting(10_000, "steps between two validations", range=(1, 10**9))
    val_steps: int = setting(1_000, "validation batches each time", range=(1, 10**9))
    log_every: int = setting(100, "steps between two log lines", range=(1, 10**9))
    sample_every: int = setting(1_000, "steps between two sample grids of --test", range=(1, 10**9))
    checkpoint_every: int = setting(1_000, "steps between two checkpoints", range=(1, 10**9))
    keep_step_checkpoints: bool = False
    amp: bool = setting(True, "disable mixed precision on GPU")
    amp_dtype: str = setting(
        "float16", "mixed precision type on GPU (bfloat16 needs no loss scaling; Ampere or newer)",
        choices=("float16", "bfloat16"),
    )
    compile: bool = setting(False, "torch.compile the model (faster steps on GPU)")
    channels_last: bool = setting(False, "channels_last memory format (GPU)")
    seed: int = setting(0, "random seed (masks, crops, initial weights)", range=(0, 2**32 - 1))
    num_workers: int = setting(0, "DataLoader worker processes", range=(0, 256), flag_default=4)
    vgg_weights: str | None = "imagenet"
    out_dir: str = "runs"
    loss_weights: dict[str, float] = field(default_factory=lambda: LossWeights().as_dict())

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise BadValue(f"layer must be one of {LAYERS}, got {self.layer!r}")
        for item in fields(self):
            choices = item.metadata.get("choices")
            if choices is not None and getattr(self, item.name) not in choices:
                allowed = " or ".join(repr(c) for c in choices)
                raise BadValue(f"{item.name} must be {allowed}, got {getattr(self, item.name)!r}")
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


#: Valid ranges (inclusive) of the numeric settings, from :class:`TrainConfig`'s fields; the config
#: and the command line refuse values outside them with one line naming the setting and the range,
#: before any work.
LIMITS: dict[str, tuple[int | float, int | float]] = {
    item.name: item.metadata["range"] for item in fields(TrainConfig) if "range" in item.metadata
}
#: The settings that are flags of the ``train`` command (made with :func:`setting`), in field order.
FLAG_SETTINGS = tuple(item for item in fields(TrainConfig) if "help" in item.metadata)


def changed_settings(old: TrainConfig, new: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{setting: (old value, new value)}`` for every setting but ``name`` and ``out_dir`` that
    differs between two configs (what a resumed run changes)."""
    mine = asdict(new)
    return {
        key: (value, mine[key])
        for key, value in asdict(old).items()
        if key not in ("name", "out_dir") and value != mine[key]
    }
