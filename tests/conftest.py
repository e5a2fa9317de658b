"""Shared test set-up: one torch thread per pytest-xdist worker, and the library's thread policy.

``pytest -n 2`` on a 2-core machine runs two workers; with torch's default of one thread per core
each would start two threads, four threads would share two cores, and every thread waiting for one
that lost its core slows both workers down (issue 17: the suite took 199 s at torch's defaults,
92 s at one thread per worker). So a worker gets ``PCONV_THREADS=1`` (unless the variable is already
set), before any test module imports ``pconv_lib`` or torch; a fixed count, so the policy does not
adapt it to other programs' load there. Child processes the tests start inherit the variable.
Without xdist (``pytest tests/test_x.py``) the policy's own count is used.
"""

from __future__ import annotations

import os
import warnings

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("PCONV_THREADS", "1")

from pconv_lib.runtime import apply_thread_policy  # noqa: E402

apply_thread_policy()  # the library's thread policy, explicitly (importing pconv_lib changes nothing)


@pytest.fixture(scope="session")
def loss():
    """The paper's loss with a random VGG16 (no download; the warning about it is expected).
    Shared by the training tests; a module may define its own ``loss`` instead."""
    from pconv_lib.losses import PConvLoss

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random VGG weights, on purpose
        return PConvLoss(vgg_weights=None)
