"""Run-time helpers shared by every step: quick mode, device choice and seeding.

Quick mode shrinks image sizes and step counts so that every notebook runs in about a minute on a
2-core laptop CPU; full mode is what a learner with a GPU runs. The rule (:func:`quick_mode`):

1. ``CI`` or ``PCONV_QUICK`` set to a true value -> quick (tests and CI always run quick);
2. else ``PCONV_FULL`` set to a true value -> full (force the full version, e.g. on a fast CPU);
3. else quick when no CUDA GPU is present, full when one is.

So a learner who opens the notebooks on a laptop gets minutes, not hours, without setting
anything, and a learner on a GPU gets the full version.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def mode_reason() -> str:
    """Why :func:`quick_mode` decides what it decides, in a few words."""
    if _flag("CI") or _flag("PCONV_QUICK"):
        name = "CI" if _flag("CI") else "PCONV_QUICK"
        return f"{name} is set"
    if _flag("PCONV_FULL"):
        return "PCONV_FULL=1 is set"
    if torch.cuda.is_available():
        return "a CUDA GPU was found"
    return "no CUDA GPU was found"


def quick_mode() -> bool:
    """True for quick settings: ``CI``/``PCONV_QUICK`` set, or no ``PCONV_FULL`` and no CUDA GPU.

    Environment values 1/true/yes/on (case-insensitive) count as set.
    """
    if _flag("CI") or _flag("PCONV_QUICK"):
        return True
    if _flag("PCONV_FULL"):
        return False
    return not torch.cuda.is_available()


def describe_mode() -> str:
    """One line for the first cell of every notebook: the mode, why, and how to switch."""
    if quick_mode():
        switch = (
            "unset CI / PCONV_QUICK and set PCONV_FULL=1 before starting Jupyter"
            if _flag("CI") or _flag("PCONV_QUICK")
            else "start Jupyter with PCONV_FULL=1 (full sizes take hours on a CPU; meant for a GPU)"
        )
        return (
            f"quick mode ({mode_reason()}): small sizes and few steps, about a minute a notebook. "
            f"Full mode: {switch}."
        )
    switch = (
        "unset PCONV_FULL" if _flag("PCONV_FULL") else "start Jupyter with PCONV_QUICK=1"
    )
    return f"full mode ({mode_reason()}): full sizes and step counts. Quick mode: {switch}."


def pick_device(prefer: str | None = None) -> torch.device:
    """Pick the best available device: ``prefer`` if given, else cuda, then mps, then cpu."""
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """:func:`pick_device`, checking that a named device exists here.

    Raises:
        ValueError: an unknown device name, or CUDA / MPS asked for where it is not available.
    """
    if name is None or isinstance(name, torch.device):
        return pick_device(None if name is None else str(name))
    try:
        device = torch.device(str(name))
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps (or omit it)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name!r} asked for, but no CUDA GPU is available here "
                "(torch.cuda.is_available() is False): use --device cpu or leave --device out"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                f"numbered 0..{torch.cuda.device_count() - 1}"
            )
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {name!r} asked for, but Apple MPS is not available here: use cpu")
    elif device.type != "cpu":
        raise ValueError(f"device {name!r} is not supported: use cpu, cuda, cuda:N or mps")
    return device


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a fresh ``numpy.random.Generator`` for ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
