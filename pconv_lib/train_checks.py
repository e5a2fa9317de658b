"""Checks a training run makes before any work, each refusing with one line that says what to
change: sizes BatchNorm can train on, a batch that fits in memory, data that holds a batch, and a
checkpoint that the run can resume.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from pconv_lib.runs.run_folder import is_inside, newer_state
from pconv_lib.train_config import TrainConfig
from pconv_lib.util import files as files_lib
from pconv_lib.util.errors import BadValue, DataWorkerKilled, TrainingDiverged

__all__ = [
    "batchnorm_hint",
    "check_batchnorm_batch",
    "check_before_training",
    "check_finite_loss",
    "check_fit_options",
    "check_resumable",
    "check_training_memory",
    "training_memory_estimate",
]

#: The settings that define the model: a resumed run must have the checkpoint's.
MODEL_SETTINGS = ("depth", "width", "layer", "hole_fill", "image_size", "stage")


def check_batchnorm_batch(batch_size: int, image_size: int, depth: int) -> None:
    """Refuse sizes where training BatchNorm sees one value per channel (it then fails with
    "Expected more than 1 value per channel"): ``batch_size * (image_size / 2**depth)**2 < 2``."""
    side = image_size // 2**depth
    if batch_size * side * side < 2:
        raise BadValue(
            f"batch size {batch_size} with {image_size}x{image_size} images at depth {depth} leaves "
            f"the innermost layer {side}x{side} with one value per channel, and BatchNorm cannot "
            "train on that; use a batch size of 2 or more, a larger image size or a smaller depth"
        )


def training_memory_estimate(batch_size: int, image_size: int, width: float) -> int:
    """A lower bound (bytes) of the memory one training step of a PConvUNet needs for its
    activations: measured on the CPU at about 580 + 2200 * width bytes per image pixel (forward
    and backward, without the VGG16 loss); 400 + 1500 * width is used so that a refusal is
    certain to be right."""
    return int(batch_size * image_size * image_size * (400 + 1500 * width))


def check_training_memory(
    batch_size: int, image_size: int, width: float, device: torch.device | str = "cpu"
) -> None:
    """Refuse, before anything is allocated, a batch that cannot fit in the free memory of
    ``device`` (CPU: available RAM; CUDA: free GPU memory; others are not checked).

    Raises:
        ValueError: one line with the estimate, what is free, and the flags to lower.
    """
    device = torch.device(device)
    free: int | None = None
    if device.type == "cpu":
        free = files_lib.available_memory()
    elif device.type == "cuda" and torch.cuda.is_available():
        try:
            free = int(torch.cuda.mem_get_info(device)[0])
        except RuntimeError:
            free = None
    need = training_memory_estimate(batch_size, image_size, width)
    if free is not None and need > free:
        where = "GPU memory" if device.type == "cuda" else "memory"
        raise BadValue(
            f"a batch of {batch_size} images of {image_size}x{image_size} at width {width} needs at least "
            f"about {need / 1e9:.1f} GB of {where} per training step, and {free / 1e9:.1f} GB is free: "
            "lower --batch-size, --image-size or --width"
        )


def check_before_training(
    config: TrainConfig, device: torch.device, world_size: int, datasets: dict[str, Dataset | None]
) -> None:
    """The sizes (:func:`check_batchnorm_batch`), the memory (:func:`check_training_memory`) and
    that each of ``datasets`` (``{"training": data, "validation": data or None}``) holds at least
    one batch of ``config.batch_size * world_size`` items."""
    check_batchnorm_batch(config.batch_size, config.image_size, config.depth)
    check_training_memory(config.batch_size, config.image_size, config.width, device)
    for what, data in datasets.items():
        if data is None:
            continue
        count, batch = len(data), config.batch_size * world_size  # type: ignore[arg-type]
        if count < batch:
            raise BadValue(
                f"the {what} data has {count} item(s), fewer than one batch of {batch}: "
                f"add {what} images or lower the batch size"
            )


def check_resumable(
    path: str | os.PathLike,
    state: dict[str, Any],
    saved: TrainConfig,
    config: TrainConfig,
    overwrite: bool,
    *,
    flags: bool = False,
) -> None:
    """The rules for resuming checkpoint ``path`` (``state``, its config ``saved``) in a run with
    ``config``, written once for the command line and the API (``flags``: name command-line flags
    in the messages):

    1. the file holds a training state (optimiser state and step), not model weights only;
    2. the settings that define the model (:data:`MODEL_SETTINGS`) are the checkpoint's;
    3. no newer state is discarded: a checkpoint of the run folder holding a later step (e.g.
       ``last.pt`` when ``best.pt`` or an old ``interrupted.pt`` is resumed) would be overwritten and
       the metrics logged after it dropped, so this is refused unless ``overwrite`` (which, for a
       checkpoint of the run folder itself, means "discard the later state", never "delete the run").
    """
    if "optimizer" not in state or "step" not in state:
        raise BadValue(
            f"cannot resume {path}: it holds model weights only (no optimiser state or step); "
            "start a new run from it with --checkpoint instead"
        )
    for key in MODEL_SETTINGS:
        before, now = getattr(saved, key), getattr(config, key)
        if before != now:
            flag = "--" + key.replace("_", "-")
            this = f"{flag} {now!r}" if flags else f"{key}={now!r}"
            raise BadValue(
                f"cannot resume {path}: it was trained with {key}={before!r}, this run has {this}"
                + (f"; drop {flag}, or start a new run from it (--checkpoint, a new --name)" if flags else "")
            )
    step = int(state["step"])
    newer = newer_state(config.run_dir, path, step) if is_inside(path, config.run_dir) else None
    if newer is not None and not overwrite:
        later, held = newer
        raise BadValue(
            f"cannot resume {path} (step {step}): {later} holds a later step ({held}), which continuing "
            f"from step {step} would overwrite (and the metrics logged after step {step} would be dropped); "
            f"resume {later} instead, or pass --overwrite to discard the later state"
            + ("" if flags else " (API: Trainer(..., overwrite=True))")
        )


def check_finite_loss(loss: torch.Tensor, step: int, run_dir: Path) -> None:
    """Stop a run whose loss (a scalar tensor) at ``step`` is NaN or infinite.

    Raises:
        TrainingDiverged: the loss, the step, and whether ``run_dir/last.pt`` holds a checkpoint.
    """
    if torch.isfinite(loss):
        return
    last = run_dir / "last.pt"
    kept = (
        f"{last} still holds the last good checkpoint"
        if last.is_file()
        else "no checkpoint (last.pt) had been written yet"
    )
    raise TrainingDiverged(
        f"training stopped: the loss is {loss.item()} at step {step}; {kept}. "
        "Lower the learning rate or check the data (e.g. images or masks with NaN)."
    )


def check_fit_options(val_data: Dataset | None, validates: bool, time_budget_s: float | None) -> None:
    """Refuse options of :meth:`Trainer.fit` it cannot honour: a validation (``validate_first`` /
    ``validate_last``) without validation data, a time budget that is not a number > 0."""
    if validates and val_data is None:
        raise BadValue("validate_first and validate_last need validation data: give the Trainer val_data")
    if time_budget_s is not None and not (
        isinstance(time_budget_s, (int, float)) and not isinstance(time_budget_s, bool) and time_budget_s > 0
    ):
        raise BadValue(f"time_budget_s must be a number of seconds > 0, got {time_budget_s!r}")


def killed_data_workers(batches: object) -> list[tuple[int, int]]:
    """``(pid, signal)`` of the worker processes of a DataLoader iterator ``batches`` that a signal
    ended (their exit code is minus the signal): the cause read from the processes themselves,
    not from the text of the error the DataLoader raised."""
    dead = []
    for worker in getattr(batches, "_workers", None) or []:
        code = worker.exitcode  # None while it runs
        if code is not None and code < 0:
            dead.append((worker.pid, -code))
    return dead


def check_data_workers(
    batches: object, saved: Path | None, step: int, workers: int, error: BaseException
) -> None:
    """While ``error`` propagates from training at ``step``: if a worker of the DataLoader iterator
    ``batches`` was ended by a signal (:func:`killed_data_workers`), raise :class:`DataWorkerKilled`
    instead: the cause, the checkpoint ``saved`` (or that none was) and the command to continue."""
    import signal

    dead = killed_data_workers(batches)
    if not dead:
        return
    pid, signum = dead[0]
    name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else f"signal {signum}"
    oom = " - on Linux usually the out-of-memory killer: the machine ran out of memory"
    oom = oom if name == "SIGKILL" else ""
    fewer = f"--num-workers {max(0, workers // 2)} or a smaller --batch-size"
    then = (f"saved {saved} at step {step}: continue with the same command plus --resume {saved} and {fewer}"
            if saved is not None else f"no checkpoint was saved since the last one: rerun with {fewer}")
    raise DataWorkerKilled(f"data-loading worker process {pid} was killed by {name}{oom}; {then}") from error


@contextlib.contextmanager
def batchnorm_hint(image: torch.Tensor, depth: int) -> Iterator[None]:
    """Turn BatchNorm's "Expected more than 1 value per channel" (a batch ``image`` (N, C, H, W) too
    small for a model of ``depth``) into one line saying what to change."""
    try:
        yield
    except ValueError as error:
        if "Expected more than 1 value per channel" not in str(error):
            raise
        raise BadValue(
            f"BatchNorm got one value per channel (batch of {image.shape[0]} at "
            f"{image.shape[-2]}x{image.shape[-1]}, depth {depth}): use a batch "
            "size of 2 or more, larger images or a smaller depth"
        ) from None
