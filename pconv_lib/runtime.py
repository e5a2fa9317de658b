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


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a fresh ``numpy.random.Generator`` for ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
