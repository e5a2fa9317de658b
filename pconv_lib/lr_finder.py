"""The learning-rate range test of the original course (Smith 2015; fastai's ``lr_find``):
:func:`lr_find` sweeps the learning rate exponentially on a copy of a model and suggests the one
where the smoothed loss falls fastest (:class:`LRFindResult`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pconv_lib.runtime import resolve_device
from pconv_lib.util.errors import BadValue

__all__ = ["LRFindResult", "check_lr_sweep", "lr_find"]

@dataclass
class LRFindResult:
    """What :func:`lr_find` measured.

    ``lrs[i]`` is the learning rate of step ``i``; ``losses[i]`` the bias-corrected exponential
    moving average of the total loss up to that step (``raw_losses[i]``: the loss itself).
    ``suggestion`` is the lr where the smoothed loss falls fastest against log(lr), or ``None``
    when too few steps ran to tell. ``stopped_early`` is True when the loss diverged.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float | None
    stopped_early: bool

    def summary(self) -> str:
        """One line: the suggestion, the range swept, and whether the loss diverged."""
        where = (
            f"suggested lr {self.suggestion:.2g} (steepest descent of the smoothed loss)"
            if self.suggestion is not None
            else "no suggestion (too few steps before the loss diverged: lower --start-lr or add steps)"
        )
        end = "diverged and stopped" if self.stopped_early else "ran to the end"
        return (
            f"{where}; swept lr {self.lrs[0]:.1e} .. {self.lrs[-1]:.1e} over {len(self.lrs)} steps, "
            f"the loss {end}"
        )

    def plot(self, ax: Any = None, title: str | None = None) -> Any:
        """Smoothed loss against lr (log axis), the suggestion marked; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(self.lrs, self.raw_losses, color="0.8", lw=1, label="loss at each step")
        ax.plot(self.lrs, self.losses, lw=2, label="smoothed")
        if self.suggestion is not None:
            index = self.lrs.index(self.suggestion)
            ax.plot([self.suggestion], [self.losses[index]], "o", color="C3",
                    label=f"steepest descent: lr {self.suggestion:.1e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("total loss")
        ax.set_title(title or "learning-rate finder")
        ax.legend(fontsize=8)
        return ax


def _steepest_descent(lrs: list[float], smoothed: list[float]) -> float | None:
    """The lr where ``d smoothed / d log(lr)`` is most negative (edges skipped), else None."""
    if len(lrs) < 5:
        return None
    slopes = torch.tensor(smoothed, dtype=torch.float64)
    log_lrs = torch.tensor(lrs, dtype=torch.float64).log()
    gradient = (slopes[2:] - slopes[:-2]) / (log_lrs[2:] - log_lrs[:-2])  # central differences
    skip = max(1, len(lrs) // 10)  # the first steps are noise around the starting loss
    gradient = gradient[skip - 1 :]
    return float(lrs[int(torch.argmin(gradient)) + skip]) if len(gradient) else None


def check_lr_sweep(
    start_lr: float, end_lr: float, steps: int, *, beta: float = 0.9, diverge_factor: float = 4.0
) -> None:
    """Raise ``ValueError`` (one line saying what to change) for arguments :func:`lr_find` rejects."""
    if not 0 < start_lr < end_lr or not math.isfinite(end_lr):
        raise BadValue(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if steps < 5:
        raise BadValue(f"steps must be >= 5 to see a trend, got {steps}")
    if not 0 <= beta < 1:
        raise BadValue(f"beta must be in [0, 1), got {beta}")
    if diverge_factor <= 1:
        raise BadValue(f"diverge_factor must be > 1, got {diverge_factor}")


def lr_find(
    model: nn.Module,
    data: Dataset,
    loss: nn.Module,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    steps: int = 100,
    batch_size: int = 4,
    beta: float = 0.9,
    diverge_factor: float = 4.0,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> LRFindResult:
    """The learning-rate range test of the original course (Smith 2015; fastai's ``lr_find``).

    Trains a **copy** of ``model`` with Adam for ``steps`` steps while the learning rate grows
    exponentially from ``start_lr`` to ``end_lr`` (step ``i`` uses
    ``start_lr * (end_lr / start_lr) ** (i / (steps - 1))``), recording the total loss. At tiny
    learning rates the loss barely moves, then it falls, then it explodes; a good learning rate
    lies where it falls fastest (``suggestion``), usually a little below the minimum. The sweep
    stops early when the smoothed loss exceeds ``diverge_factor`` times its lowest value or
    becomes inf/NaN. ``model`` (weights, BatchNorm statistics, train/eval mode) is unchanged.

    Args:
        model: a :class:`~pconv_lib.model.PConvUNet` (anything called as ``model(image, mask)``
            returning the output or ``(output, mask)``).
        data: a dataset of dicts with ``image`` (3, H, W) in [0, 1] and ``mask`` (1, H, W),
            1 = valid (e.g. :func:`pconv_lib.data.sample_photo_dataset`); cycled as needed.
        loss: a :class:`~pconv_lib.losses.PConvLoss` (or anything returning ``{"total": ...}``
            or a scalar tensor) called as ``loss(output, image, mask, image * mask)``.
        start_lr, end_lr: the sweep, ``0 < start_lr < end_lr``.
        steps: number of optimiser steps (>= 5); a few hundred for a real run, a few dozen for
            a look on a CPU.
        batch_size: images per step.
        beta: smoothing of the loss curve (exponential moving average, bias-corrected).
        diverge_factor: stop once the smoothed loss is this many times its best value.
        device: default :func:`pick_device`.
        seed: seeds the batch order (and nothing else: the global RNG state is restored).
        progress: a tqdm bar on stderr (steps done, time left, current lr and smoothed loss).

    Returns:
        :class:`LRFindResult` (``lrs``, smoothed ``losses``, ``raw_losses``, ``suggestion``,
        ``stopped_early``; ``.plot()`` and ``.summary()``).
    """
    import copy

    check_lr_sweep(start_lr, end_lr, steps, beta=beta, diverge_factor=diverge_factor)
    if len(data) < batch_size:  # type: ignore[arg-type]
        raise BadValue(
            f"the dataset has {len(data)} items, fewer than one batch of {batch_size}: "  # type: ignore[arg-type]
            "lower batch_size or add images"
        )
    device = resolve_device(device)
    trial = copy.deepcopy(model).to(device).train()
    loss = loss.to(device)
    optimizer = torch.optim.Adam([p for p in trial.parameters() if p.requires_grad], lr=start_lr)
    factor = (end_lr / start_lr) ** (1 / (steps - 1))

    def batches() -> Iterator[dict]:
        generator = torch.Generator().manual_seed(seed)
        while True:
            yield from DataLoader(
                data, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator
            )

    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    average, best, stopped = 0.0, math.inf, False
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc="lr-find", unit="step", disable=not progress)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for step, batch in zip(range(steps), batches()):
            lr = start_lr * factor**step
            for group in optimizer.param_groups:
                group["lr"] = lr
            image = batch["image"].to(device)
            mask = batch["mask"].to(device)
            output = trial(image * mask, mask)
            output = output[0] if isinstance(output, tuple) else output
            terms = loss(output.float(), image, mask, image * mask)
            total = terms["total"] if isinstance(terms, dict) else terms
            value = float(total.detach())
            if not math.isfinite(value):
                stopped = True
                break
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            average = beta * average + (1 - beta) * value
            current = average / (1 - beta ** (step + 1))
            lrs.append(lr)
            raw.append(value)
            smoothed.append(current)
            best = min(best, current)
            bar.update(1)
            bar.set_postfix(lr=f"{lr:.1e}", loss=f"{current:.4g}", refresh=False)
            if current > diverge_factor * best:
                stopped = True
                break
    bar.close()
    if not lrs:
        raise FloatingPointError(
            f"the loss was not finite at the first step (lr {start_lr:g}): check the data and the model"
        )
    # Beyond the divergence point the curve only says "too large": look for the descent before it.
    cut = len(lrs)
    if stopped:
        cut = next((i for i, v in enumerate(smoothed) if v > 2 * best and i > smoothed.index(best)), cut)
    return LRFindResult(lrs, smoothed, raw, _steepest_descent(lrs[:cut], smoothed[:cut]), stopped)
