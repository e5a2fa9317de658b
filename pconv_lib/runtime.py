"""Run-time helpers shared by every step: quick mode, device choice and seeding.

Quick mode (environment variable ``CI`` or ``PCONV_QUICK`` set to a true value) shrinks image
sizes and step counts so that every notebook runs in about a minute on a 2-core laptop CPU. The
full mode is what a learner with a GPU runs.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

_TRUE = {"1", "true", "yes", "on"}


def quick_mode() -> bool:
    """True when ``CI`` or ``PCONV_QUICK`` is set to 1/true/yes/on (case-insensitive)."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("CI", "PCONV_QUICK"))


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
